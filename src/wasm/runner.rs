//! A bot's task: takes its events from the bus in `seq` order, and its due
//! timers, and calls the bot for each, one call at a time. A failed call
//! (trap, deadline, memory cap) costs that one call: the Store is dropped and
//! the next call gets a fresh instance, after a backoff that grows with
//! consecutive failures. A crash loop parks the bot until its file changes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::logbook::LogLevel;
use super::store::{BotTemplate, LiveBot};
use crate::bus::{Bus, Frame, Payload, Subscription};

/// Failures within `CRASH_WINDOW` that park a bot.
pub const CRASH_LIMIT: usize = 5;
pub const CRASH_WINDOW: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunState {
    Running,
    /// Crash loop: no more events until the file changes.
    Parked {
        reason: String,
    },
}

/// What an operator (or a test) can see of a bot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BotStatus {
    pub name: String,
    /// Content hash of the running version.
    pub version: String,
    /// Its SHA-256, what `sha256 = "…"` in `NAME.toml` pins.
    pub sha256: String,
    /// Its `NAME.toml`.
    pub config: super::limits::BotConfig,
    #[serde(flatten)]
    pub state: RunState,
    pub loaded_at: SystemTime,
    /// Events and timers handled without error.
    pub handled: u64,
    pub failures: u64,
    /// Fresh instances made after a failure.
    pub restarts: u64,
    pub last_error: Option<String>,
    /// Why the newest file could not replace this version, if it could not.
    pub rejected: Option<String>,
}

/// What the bot is called for next.
enum Work {
    Event(Arc<Frame>),
    Timer(String),
}

/// What a failure is logged as: `event 12`, `timer "tick"`.
impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(frame) => write!(f, "event {}", frame.seq),
            Self::Timer(tag) => write!(f, "timer {tag:?}"),
        }
    }
}

pub struct Runner {
    pub template: Arc<BotTemplate>,
    pub live: Option<LiveBot>,
    pub sub: Subscription,
    pub bus: Arc<Bus>,
    pub stop: CancellationToken,
    pub status: Arc<Mutex<BotStatus>>,
}

impl Runner {
    /// Runs until stopped; returns the `seq` of the last event taken.
    pub async fn run(mut self) -> u64 {
        let name = self.template.name.clone();
        let timers = self.template.timers.clone();
        let mut last = self.sub.last_seq;
        let mut pending: VecDeque<Arc<Frame>> = std::mem::take(&mut self.sub.replay).into();
        if let Some(first) = pending.front() {
            last = first.seq.saturating_sub(1);
        }
        let mut failures: VecDeque<Instant> = VecDeque::new();
        let mut consecutive = 0u32;
        let mut timer_last = false;
        loop {
            // What is ready is taken without a `select!`: a bot with events
            // queued (a burst) goes from one to the next. A due timer goes
            // first, but not twice in a row while events wait, so a bot that
            // keeps re-arming a timer for "now" still takes its events.
            let mut event = || pending.pop_front().or_else(|| self.sub.try_recv()).map(Work::Event);
            let ready = if timer_last {
                event().or_else(|| timers.due_now().map(Work::Timer))
            } else {
                timers.due_now().map(Work::Timer).or_else(event)
            };
            let work = match ready {
                // Counted against the task's budget, so a long queue still
                // lets the other tasks on this worker run.
                Some(work) => {
                    tokio::task::consume_budget().await;
                    work
                }
                None => tokio::select! {
                    _ = self.stop.cancelled() => return last,
                    tag = timers.due() => Work::Timer(tag),
                    frame = self.sub.recv() => match frame {
                        Some(frame) => Work::Event(frame),
                        None if self.sub.lagged() => {
                            tracing::warn!(bot = %name, last, "bot fell behind; resuming from the replay buffer");
                            self.sub = self.bus.subscribe_paced(&name, Some(last));
                            if let Some(missed) = self.sub.missed {
                                tracing::error!(bot = %name, from = missed.from, to = missed.to, "events lost to a slow bot");
                            }
                            pending.extend(std::mem::take(&mut self.sub.replay));
                            continue;
                        }
                        None => return last,
                    },
                },
            };
            if self.stop.is_cancelled() {
                return last;
            }
            timer_last = matches!(work, Work::Timer(_));
            let fired = match &work {
                Work::Event(frame) => {
                    if !matches!(frame.payload, Payload::Event(_)) {
                        continue;
                    }
                    last = frame.seq;
                    None
                }
                // Past this firing before the call, so a failing call does
                // not fire it again at once; written after the call.
                Work::Timer(tag) => timers.advance(tag),
            };
            let outcome = self.call(&work, consecutive).await;
            if let Work::Timer(tag) = &work {
                if outcome.is_some() {
                    self.template.metrics.timers_fired.inc();
                }
                match (&outcome, fired) {
                    // Stopped before the call: the next version fires it.
                    (None, Some(timer)) => timers.restore(tag, timer),
                    _ => timers.settle(tag).await,
                }
                // A bot that re-arms a timer for "now" from `on-timer` would
                // otherwise keep this worker thread from every other task.
                tokio::task::yield_now().await;
            }
            match outcome {
                None => return last,
                Some(Ok(())) => {
                    consecutive = 0;
                    self.status.lock().handled += 1;
                    self.template.metrics.handled.inc();
                }
                Some(Err(error)) => {
                    if self.failed(&mut failures, &mut consecutive, &work.to_string(), error) {
                        return self.parked(last).await;
                    }
                }
            }
        }
    }

    /// One call into the bot, with a fresh instance (after a backoff) if the
    /// last call failed. None when stopped meanwhile.
    async fn call(&mut self, work: &Work, consecutive: u32) -> Option<Result<(), String>> {
        if self.live.is_none() {
            if consecutive > 0 {
                let backoff = Duration::from_millis(20u64 << consecutive.min(7));
                tokio::select! {
                    _ = self.stop.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
            match self.template.instantiate().await {
                Ok(live) => {
                    self.live = Some(live);
                    self.status.lock().restarts += 1;
                    self.template.metrics.restarts.inc();
                }
                Err(e) => return Some(Err(crate::error_chain(&e))),
            }
        }
        let live = self.live.as_mut()?;
        let result = match work {
            Work::Event(frame) => match &frame.payload {
                Payload::Event(event) => live.handle(&super::convert::shared_event(frame, event)).await,
                _ => Ok(()),
            },
            Work::Timer(tag) => live.on_timer(tag.clone()).await,
        };
        Some(result.map_err(|e| {
            self.live = None;
            crate::error_chain(&e)
        }))
    }

    /// Records a failure; true when it completes a crash loop.
    fn failed(&self, failures: &mut VecDeque<Instant>, consecutive: &mut u32, what: &str, error: String) -> bool {
        let name = &self.template.name;
        tracing::warn!(bot = %name, what, "call failed, the next call gets a fresh instance: {error}");
        let logbook = &self.template.logbook;
        logbook.record(name, LogLevel::Warn, &format!("{what} failed: {error}"));
        *consecutive += 1;
        let now = Instant::now();
        failures.push_back(now);
        while failures.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            failures.pop_front();
        }
        self.template.metrics.failures.inc();
        let mut status = self.status.lock();
        status.failures += 1;
        status.last_error = Some(error.clone());
        if failures.len() >= CRASH_LIMIT {
            let reason = format!("{} failures within {}s; last: {error}", failures.len(), CRASH_WINDOW.as_secs());
            tracing::error!(bot = %name, "parked until its file changes: {reason}");
            logbook.record(name, LogLevel::Error, &format!("parked until its file changes: {reason}"));
            status.state = RunState::Parked { reason };
            drop(status);
            logbook.changed();
            return true;
        }
        drop(status);
        logbook.changed();
        false
    }

    async fn parked(self, last: u64) -> u64 {
        drop(self.sub);
        self.stop.cancelled().await;
        last
    }
}
