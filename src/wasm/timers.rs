//! Bots' timers. They belong to the bot's name, not to one version, so hot
//! reload keeps them, and they are written to the store before `set` returns,
//! so a restart (`kill -9` included) keeps them too. The bot's runner waits on
//! [`Timers::due`] beside its events and calls `on-timer` in the same queue.
//!
//! A one-shot timer that came due while the bridge was down fires once at
//! start-up. A repeating one fires at most once for all the runs it missed,
//! then keeps its period. A firing is written back after the call, so a crash
//! during the call fires it again (at least once, never lost).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::store::{KvStore, StateError};

/// Longest tag, bytes.
pub const MAX_TAG: usize = 256;

/// A timer as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub schedule: Schedule,
    /// Unix milliseconds of the next firing.
    pub next: i64,
}

/// When a timer fires, as kept (`after` is kept as the `once` it means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    Once { at: i64 },
    Every { period_ms: u64 },
    Cron { expression: String, time_zone: Option<String> },
}

/// What a bot asks for.
pub enum Request {
    After(u64),
    At(i64),
    Every(u64),
    Cron { expression: String, time_zone: Option<String> },
}

/// A bot's timer caps, from its `NAME.toml`.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_timers: u32,
    pub min_period_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("the bot already has {0} timers, its max_timers")]
    TooMany(u32),
    #[error("a repeating timer may fire at most once per {0} ms (min_timer_period_ms)")]
    TooFrequent(u64),
    #[error("bad schedule: {0}")]
    BadSchedule(String),
    #[error("a tag is 1 to {MAX_TAG} bytes")]
    BadTag,
    #[error("the timer could not be stored")]
    Store(#[from] StateError),
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The first firing of a cron schedule strictly after `after` (unix ms).
fn cron_next(expression: &str, time_zone: Option<&str>, after: i64) -> Result<i64, TimerError> {
    let cron = croner::Cron::from_str(expression).map_err(|e| TimerError::BadSchedule(e.to_string()))?;
    let tz = match time_zone {
        Some(name) => {
            chrono_tz::Tz::from_str(name).map_err(|_| TimerError::BadSchedule(format!("unknown time zone {name:?}")))?
        }
        None => chrono_tz::UTC,
    };
    let start = chrono::DateTime::from_timestamp_millis(after)
        .ok_or_else(|| TimerError::BadSchedule("time out of range".into()))?
        .with_timezone(&tz);
    cron.find_next_occurrence(&start, false)
        .map(|t| t.timestamp_millis())
        .map_err(|e| TimerError::BadSchedule(format!("it never fires ({e})")))
}

impl Schedule {
    /// The firing after one at `last`, no earlier than `now`: missed runs
    /// are not made up one by one.
    fn following(&self, last: i64, now: i64) -> Option<i64> {
        match self {
            Schedule::Once { .. } => None,
            Schedule::Every { period_ms } => {
                let period = *period_ms as i64;
                let next = last.saturating_add(period);
                Some(if next > now { next } else { now.saturating_add(period) })
            }
            Schedule::Cron { expression, time_zone } => cron_next(expression, time_zone.as_deref(), now).ok(),
        }
    }
}

/// Every bot's timers, loaded from the store on first use.
pub struct TimerBook {
    store: Option<Arc<dyn KvStore>>,
    loaded: Mutex<HashMap<String, Arc<Timers>>>,
}

impl TimerBook {
    pub fn new(store: Option<Arc<dyn KvStore>>) -> Self {
        Self { store, loaded: Mutex::new(HashMap::new()) }
    }

    /// Bot `name`'s timers.
    pub async fn timers(&self, name: &str) -> Arc<Timers> {
        if let Some(t) = self.loaded.lock().get(name) {
            return t.clone();
        }
        // Kept in the kv store under a bucket no bot can have (`:` is not
        // allowed in a bot's name).
        let bucket = format!("{name}:timers");
        let mut map = Book::default();
        if let Some(store) = &self.store {
            match store.load(&bucket).await {
                Ok(stored) => {
                    for (tag, bytes) in stored {
                        match serde_json::from_slice::<Timer>(&bytes) {
                            Ok(timer) => {
                                map.insert(tag, timer);
                            }
                            Err(e) => tracing::error!(bot = name, tag, "unreadable stored timer, dropped: {e}"),
                        }
                    }
                }
                Err(e) => tracing::error!(bot = name, "cannot load timers: {}", crate::error_chain(&e)),
            }
        }
        let timers = Arc::new(Timers {
            bucket,
            store: self.store.clone(),
            map: Mutex::new(map),
            changed: tokio::sync::Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        });
        self.loaded.lock().entry(name.to_owned()).or_insert(timers).clone()
    }
}

/// The timers by tag, and their tags by next firing (so the soonest is
/// found without a scan).
#[derive(Default)]
struct Book {
    by_tag: BTreeMap<String, Timer>,
    by_time: std::collections::BTreeSet<(i64, String)>,
}

impl Book {
    fn insert(&mut self, tag: String, timer: Timer) {
        self.remove(&tag);
        self.by_time.insert((timer.next, tag.clone()));
        self.by_tag.insert(tag, timer);
    }

    fn remove(&mut self, tag: &str) -> Option<Timer> {
        let timer = self.by_tag.remove(tag)?;
        self.by_time.remove(&(timer.next, tag.to_owned()));
        Some(timer)
    }

    fn soonest(&self) -> Option<&(i64, String)> {
        self.by_time.first()
    }
}

/// One bot's timers.
pub struct Timers {
    bucket: String,
    store: Option<Arc<dyn KvStore>>,
    map: Mutex<Book>,
    /// Woken when a timer is set or cancelled, so `due` looks again.
    changed: tokio::sync::Notify,
    /// One store write at a time, so the store and the map agree.
    writing: tokio::sync::Mutex<()>,
}

impl Timers {
    /// Sets (or replaces) timer `tag`; stored before it returns.
    pub async fn set(&self, tag: String, request: Request, caps: Caps) -> Result<(), TimerError> {
        if tag.is_empty() || tag.len() > MAX_TAG {
            return Err(TimerError::BadTag);
        }
        let now = now_ms();
        let timer = match request {
            Request::After(ms) => {
                Timer { schedule: Schedule::Once { at: now.saturating_add(ms.min(i64::MAX as u64) as i64) }, next: 0 }
            }
            Request::At(at) => Timer { schedule: Schedule::Once { at }, next: 0 },
            Request::Every(period_ms) => {
                if period_ms < caps.min_period_ms.max(1) {
                    return Err(TimerError::TooFrequent(caps.min_period_ms.max(1)));
                }
                Timer {
                    schedule: Schedule::Every { period_ms },
                    next: now.saturating_add(period_ms.min(i64::MAX as u64) as i64),
                }
            }
            Request::Cron { expression, time_zone } => {
                let next = cron_next(&expression, time_zone.as_deref(), now)?;
                let after = cron_next(&expression, time_zone.as_deref(), next)?;
                if ((after - next) as u64) < caps.min_period_ms {
                    return Err(TimerError::TooFrequent(caps.min_period_ms));
                }
                Timer { schedule: Schedule::Cron { expression, time_zone }, next }
            }
        };
        let timer = match timer.schedule {
            Schedule::Once { at } => Timer { next: at, ..timer },
            _ => timer,
        };
        let _one = self.writing.lock().await;
        {
            let map = self.map.lock();
            if !map.by_tag.contains_key(&tag) && map.by_tag.len() >= caps.max_timers as usize {
                return Err(TimerError::TooMany(caps.max_timers));
            }
        }
        self.write(&tag, Some(&timer)).await?;
        self.map.lock().insert(tag, timer);
        self.changed.notify_one();
        Ok(())
    }

    /// Cancels timer `tag`; false when there was none.
    pub async fn cancel(&self, tag: &str) -> Result<bool, TimerError> {
        let _one = self.writing.lock().await;
        if !self.map.lock().by_tag.contains_key(tag) {
            return Ok(false);
        }
        self.write(tag, None).await?;
        self.map.lock().remove(tag);
        self.changed.notify_one();
        Ok(true)
    }

    /// Every timer, soonest first.
    pub fn list(&self) -> Vec<(String, Timer)> {
        let map = self.map.lock();
        map.by_time.iter().filter_map(|(_, tag)| Some((tag.clone(), map.by_tag.get(tag)?.clone()))).collect()
    }

    /// The tag of a timer due now (the soonest; ties by tag), without waiting:
    /// what a bot with events queued looks at before each one.
    pub fn due_now(&self) -> Option<String> {
        let map = self.map.lock();
        let (next, tag) = map.soonest()?;
        (*next <= now_ms()).then(|| tag.clone())
    }

    /// Waits until a timer is due and returns its tag (the soonest; ties by tag).
    /// Changes nothing, so it may be dropped at any point.
    pub async fn due(&self) -> String {
        loop {
            let changed = self.changed.notified();
            let soonest = self.map.lock().soonest().cloned();
            match soonest {
                Some((next, tag)) => {
                    let wait = next.saturating_sub(now_ms());
                    if wait <= 0 {
                        return tag;
                    }
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Moves timer `tag` past its firing (a one-shot goes), in memory only,
    /// and returns it as it was; [`Timers::settle`] writes it after the call.
    pub fn advance(&self, tag: &str) -> Option<Timer> {
        let now = now_ms();
        let mut map = self.map.lock();
        let was = map.remove(tag)?;
        if let Some(next) = was.schedule.following(was.next, now) {
            map.insert(tag.to_owned(), Timer { next, ..was.clone() });
        }
        Some(was)
    }

    /// Puts back a timer that was advanced but not fired (the bot stopped).
    pub fn restore(&self, tag: &str, timer: Timer) {
        self.map.lock().insert(tag.to_owned(), timer);
        self.changed.notify_one();
    }

    /// Writes timer `tag` as it now is (it may have been set again by the call).
    pub async fn settle(&self, tag: &str) {
        let _one = self.writing.lock().await;
        let timer = self.map.lock().by_tag.get(tag).cloned();
        if let Err(e) = self.write(tag, timer.as_ref()).await {
            tracing::error!(bucket = self.bucket, tag, "cannot store a fired timer: {}", crate::error_chain(&e));
        }
    }

    async fn write(&self, tag: &str, timer: Option<&Timer>) -> Result<(), StateError> {
        let Some(store) = &self.store else { return Ok(()) };
        let bytes = timer.map(|t| serde_json::to_vec(t).unwrap_or_default());
        store.write(&self.bucket, tag, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_runs_are_not_made_up() {
        let every = Schedule::Every { period_ms: 1000 };
        assert_eq!(every.following(10_000, 10_500), Some(11_000));
        assert_eq!(every.following(10_000, 99_999), Some(100_999));
        assert_eq!(Schedule::Once { at: 5 }.following(5, 6), None);
    }

    #[test]
    fn cron_in_a_time_zone() {
        // 2026-01-01T00:00:00Z; 09:00 in Shanghai is 01:00 UTC.
        let t0 = 1_767_225_600_000;
        let next = cron_next("0 9 * * *", Some("Asia/Shanghai"), t0).unwrap();
        assert_eq!(next, t0 + 3_600_000);
        assert!(cron_next("0 9 * * *", Some("Mars/Olympus"), t0).is_err());
        assert!(cron_next("61 * * * *", None, t0).is_err());
        assert!(cron_next("0 0 30 2 *", None, t0).is_err(), "February 30th never comes");
    }

    #[tokio::test]
    async fn listed_soonest_first() {
        let book = TimerBook::new(None);
        let t = book.timers("b").await;
        let caps = Caps { max_timers: 10, min_period_ms: 1 };
        t.set("c".into(), Request::After(900), caps).await.unwrap();
        t.set("a".into(), Request::After(300), caps).await.unwrap();
        t.set("b".into(), Request::After(600), caps).await.unwrap();
        let tags: Vec<_> = t.list().into_iter().map(|(tag, _)| tag).collect();
        assert_eq!(tags, ["a", "b", "c"]);
    }
}
