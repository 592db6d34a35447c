//! Send pacing per account: every message that leaves for an account, from
//! any bot or client, waits for its turn here, so many bots together cannot
//! send faster than the platform's risk control tolerates. One chat's messages
//! leave in the order they came (a FIFO lock per chat), at least a chat's gap
//! apart; the whole account at least `60 000 / per_minute` ms apart; each with
//! a little jitter. The queue is bounded, and so is each sender's share of it
//! (a bot or client), so one flooding bot cannot crowd the others out: past
//! either, the answer is `rate_limited` at once. Recalls, mutes and the like
//! never wait here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::schema::{ErrorCode, OpError, Target};

/// `[account.pacing]`: how fast one account may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    pub enabled: bool,
    /// Least time between two messages to one group, ms.
    pub group_gap_ms: u64,
    /// Least time between two private messages to one person, ms.
    pub friend_gap_ms: u64,
    /// Most messages the account sends per minute, all chats together.
    pub per_minute: u32,
    /// Up to this much is added at random to each wait, ms.
    pub jitter_ms: u64,
    /// Most messages waiting for their turn; one more is `rate_limited`.
    pub queue: usize,
    /// Most of them from one sender (a wasm bot or a client); more than
    /// `queue` is `queue`.
    pub queue_per_sender: usize,
}

/// Most messages a pacer may hold waiting.
pub const MAX_PACING_QUEUE: usize = 100_000;
/// Longest gap or jitter a pacer may be given: ten minutes.
pub const MAX_PACING_MS: u64 = 600_000;

impl PacingConfig {
    /// A real account's default: conservative, after what operators report
    /// keeps accounts out of risk control (about one message a second).
    pub const CONSERVATIVE: Self = Self {
        enabled: true,
        group_gap_ms: 1000,
        friend_gap_ms: 1000,
        per_minute: 60,
        jitter_ms: 200,
        queue: 200,
        queue_per_sender: 50,
    };

    /// The sim world's default: no pacing.
    pub const OFF: Self = Self { enabled: false, ..Self::CONSERVATIVE };

    /// Why these values cannot be used, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.per_minute == 0 {
            return Err("per_minute must be at least 1 (use enabled = false for no pacing)".into());
        }
        if self.queue == 0 || self.queue > MAX_PACING_QUEUE {
            return Err(format!("queue must be 1..={MAX_PACING_QUEUE}"));
        }
        // Above `queue` it is `queue` in effect: the whole queue is full first.
        if self.queue_per_sender == 0 || self.queue_per_sender > MAX_PACING_QUEUE {
            return Err(format!("queue_per_sender must be 1..={MAX_PACING_QUEUE}"));
        }
        for (key, ms) in
            [("group_gap_ms", self.group_gap_ms), ("friend_gap_ms", self.friend_gap_ms), ("jitter_ms", self.jitter_ms)]
        {
            if ms > MAX_PACING_MS {
                return Err(format!("{key} must be at most {MAX_PACING_MS}"));
            }
        }
        Ok(())
    }

    fn gap(&self, target: Target) -> Duration {
        Duration::from_millis(match target {
            Target::Group { .. } => self.group_gap_ms,
            Target::Friend { .. } | Target::Temp { .. } => self.friend_gap_ms,
        })
    }
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self::CONSERVATIVE
    }
}

/// One account's pacer.
pub struct Pacer {
    config: PacingConfig,
    /// Messages admitted and not yet sent.
    queued: AtomicUsize,
    state: Mutex<State>,
}

struct State {
    /// The earliest the account may send next.
    next_any: Instant,
    /// Per chat: when its last message left. The lock is held by the one
    /// message of the chat whose turn it is; the rest wait in order.
    chats: HashMap<Target, Arc<tokio::sync::Mutex<Option<Instant>>>>,
    /// Messages waiting, per sender that has any.
    senders: HashMap<Arc<str>, usize>,
}

/// Chats remembered before idle ones are forgotten.
const CHATS_KEPT: usize = 4096;

/// Gives the queue's place back however the send ends (also when cancelled).
struct Waiting<'a> {
    pacer: &'a Pacer,
    sender: Arc<str>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pacer.queued.fetch_sub(1, Ordering::AcqRel);
        let mut state = self.pacer.state.lock();
        if let Some(n) = state.senders.get_mut(&self.sender) {
            *n -= 1;
            if *n == 0 {
                state.senders.remove(&self.sender);
            }
        }
    }
}

impl Pacer {
    pub fn new(config: PacingConfig) -> Self {
        Self {
            config,
            queued: AtomicUsize::new(0),
            state: Mutex::new(State { next_any: Instant::now(), chats: HashMap::new(), senders: HashMap::new() }),
        }
    }

    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    /// Messages waiting for their turn now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Runs `send` (a message to `target` from `sender`) when its turn
    /// comes; its answer comes back once the upstream has accepted it.
    pub async fn send<T>(
        &self,
        target: Target,
        sender: &str,
        send: impl Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        if !self.config.enabled {
            return send.await;
        }
        let (chat, sender) = {
            let mut state = self.state.lock();
            let mine = state.senders.get(sender).copied().unwrap_or(0);
            if mine >= self.config.queue_per_sender {
                return Err(OpError::new(
                    ErrorCode::RateLimited,
                    format!("{mine} of your messages already wait in the account's send queue"),
                ));
            }
            if self.queued.fetch_add(1, Ordering::AcqRel) >= self.config.queue {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(OpError::new(
                    ErrorCode::RateLimited,
                    format!("the account's send queue is full ({} waiting)", self.config.queue),
                ));
            }
            let sender: Arc<str> = Arc::from(sender);
            *state.senders.entry(sender.clone()).or_default() += 1;
            if state.chats.len() >= CHATS_KEPT {
                // Forget chats nobody waits for; their last message is long gone.
                state.chats.retain(|_, chat| Arc::strong_count(chat) > 1);
            }
            (state.chats.entry(target).or_default().clone(), sender)
        };
        let waiting = Waiting { pacer: self, sender };
        let mut last = chat.lock().await;
        let jitter = match self.config.jitter_ms {
            0 => Duration::ZERO,
            ms => Duration::from_millis(rand::random_range(0..=ms)),
        };
        let at = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let chat_free = last.map(|t| t + self.config.gap(target)).unwrap_or(now);
            let at = now.max(chat_free).max(state.next_any) + jitter;
            state.next_any = at + Duration::from_millis(60_000 / u64::from(self.config.per_minute));
            at
        };
        tokio::time::sleep_until(at).await;
        drop(waiting);
        *last = Some(Instant::now());
        send.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::GroupId;

    fn pacer(queue: usize) -> Arc<Pacer> {
        Arc::new(Pacer::new(PacingConfig {
            group_gap_ms: 100,
            friend_gap_ms: 100,
            per_minute: 6000,
            jitter_ms: 0,
            queue,
            queue_per_sender: queue,
            enabled: true,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn one_chat_keeps_its_gap_and_order_and_a_full_queue_refuses() {
        // The first send leaves at once; the next two wait their turn and fill the queue.
        let p = pacer(2);
        let target = Target::Group { group: GroupId(1) };
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (p, sent) = (p.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                p.send(target, "bot", async {
                    sent.lock().push((i, Instant::now()));
                    Ok::<_, OpError>(())
                })
                .await
            }));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(p.queued(), 2);
        let full = p.send(target, "other", async { Ok::<_, OpError>(()) }).await;
        assert_eq!(full.map_err(|e| e.code), Err(ErrorCode::RateLimited));
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let sent = sent.lock();
        assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        for pair in sent.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(100), "{sent:?}");
        }
        assert_eq!(p.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_sender_holds_no_more_than_its_share() {
        let p = Arc::new(Pacer::new(PacingConfig { queue_per_sender: 2, jitter_ms: 0, ..PacingConfig::CONSERVATIVE }));
        let target = Target::Group { group: GroupId(1) };
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move { p.send(target, "flood", async { Ok::<_, OpError>(()) }).await }));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        // The first left at once; two wait: the flood's share is used up, not the queue.
        let more = p.send(target, "flood", async { Ok::<_, OpError>(()) });
        assert_eq!(more.await.map_err(|e| e.code), Err(ErrorCode::RateLimited));
        let other = p.clone();
        let polite = tokio::spawn(async move { other.send(target, "polite", async { Ok::<_, OpError>(()) }).await });
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        polite.await.unwrap().expect("another sender still gets in");
        assert!(p.state.lock().senders.is_empty(), "shares are given back");
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = PacingConfig { per_minute: 0, ..PacingConfig::CONSERVATIVE };
        assert!(bad.check().unwrap_err().contains("per_minute"));
        let bad = PacingConfig { jitter_ms: MAX_PACING_MS + 1, ..PacingConfig::CONSERVATIVE };
        assert!(bad.check().unwrap_err().contains("jitter_ms"));
        let bad = PacingConfig { queue_per_sender: 0, ..PacingConfig::CONSERVATIVE };
        assert!(bad.check().unwrap_err().contains("queue_per_sender"));
        assert!(PacingConfig::CONSERVATIVE.check().is_ok());
    }
}
