//! The event bus: numbers each event (`seq`), keeps the last ones for `?since=`
//! replay, and fans every frame out to every consumer through its own bounded
//! queue. Publishing never waits: a consumer whose queue is full is dropped (and
//! counted, and logged); it learns so when its queue runs dry (`lagged`) and can
//! resume with `since`. So one slow consumer never delays another, and each
//! consumer sees frames in `seq` order.
//!
//! Wasm bots subscribe as *paced* consumers: a publisher that can wait (a
//! client injecting simulated events, before it reads more operations) waits
//! while a paced consumer's queue is more than half full (`wait_for_room`), so
//! a burst slows down to the bots' pace instead of making them lose events. A
//! bot that has taken nothing for `patience` is not waited for: a stuck bot
//! falls behind (and resumes from the replay buffer) instead.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::schema::{AccountId, Event, EventFrame, Outgoing, OutgoingFrame, OutgoingTag};
use crate::store::{EventLog, Restored};

/// What a frame carries, for consumers that want the typed form (wasm bots).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Event(EventFrame),
    Outgoing(OutgoingFrame),
}

/// A frame's JSON text, serialized once and shared (cheaply cloned) by every
/// consumer; the transports turn it into their own message type at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(Arc<str>);

impl Json {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text as `Bytes`, sharing this allocation (no copy).
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(ArcStrBytes(self.0.clone()))
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

/// `Arc<str>` as bytes, for `Bytes::from_owner`.
struct ArcStrBytes(Arc<str>);

impl AsRef<[u8]> for ArcStrBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// One published frame, serialized once and shared by every consumer.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    pub payload: Payload,
    pub json: Json,
    /// The payload in a consumer's own form (the wasm bots' WIT value), made
    /// by the first consumer that needs it; the others read it without a lock.
    pub converted: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Frame {
    fn new(seq: u64, payload: Payload, json: Json) -> Self {
        Self { seq, payload, json, converted: OnceLock::new() }
    }

    pub fn is_outgoing(&self) -> bool {
        matches!(self.payload, Payload::Outgoing(_))
    }

    /// What the frame holds in memory, roughly: its JSON, its typed form and
    /// its converted one (each about as big again) and the bookkeeping.
    pub fn cost(&self) -> usize {
        3 * self.json.len() + 256
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    /// Frames a consumer may have queued before it counts as lagging.
    pub queue: usize,
    /// Frames kept for `since` replay.
    pub replay: usize,
    /// Bytes of frames kept for `since` replay (see `Frame::cost`).
    pub replay_bytes: usize,
    /// How long a paced consumer (a wasm bot) may take nothing before
    /// publishers stop waiting for it.
    pub patience: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { queue: 4096, replay: 10_000, replay_bytes: 64 << 20, patience: Duration::from_millis(500) }
    }
}

struct Consumer {
    id: u64,
    name: String,
    wants_outgoing: bool,
    tx: mpsc::Sender<Arc<Frame>>,
    lagged: Arc<AtomicBool>,
    /// A paced consumer's progress; None for the others.
    pace: Option<Arc<Pace>>,
}

/// When a paced consumer last took a frame, in ms since the bus began.
struct Pace {
    began: Instant,
    last_take_ms: AtomicU64,
}

struct Inner {
    last_seq: u64,
    ring: VecDeque<Arc<Frame>>,
    /// The sum of the ring's `Frame::cost`.
    ring_bytes: usize,
    consumers: Vec<Consumer>,
    next_consumer: u64,
}

pub struct Bus {
    config: BusConfig,
    inner: Mutex<Inner>,
    began: Instant,
    /// Woken when a paced consumer's queue drains to a quarter.
    room: Notify,
    dropped_consumers: AtomicU64,
    /// Frames queued for consumers, ever (for `/metrics`).
    delivered: AtomicU64,
    /// Where events are kept for `since=` across restarts (None: memory only).
    log: Option<Arc<dyn EventLog>>,
}

/// Events a resuming consumer can no longer get: `from..=to` fell out of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    pub from: u64,
    pub to: u64,
}

/// A consumer's end of the bus. Dropping it unsubscribes.
pub struct Subscription {
    /// The last event `seq` when the subscription began.
    pub last_seq: u64,
    /// Buffered frames after the requested `since`, oldest first.
    pub replay: Vec<Arc<Frame>>,
    /// Set when `since` was older than the replay buffer.
    pub missed: Option<Missed>,
    rx: mpsc::Receiver<Arc<Frame>>,
    id: u64,
    lagged: Arc<AtomicBool>,
    pace: Option<Arc<Pace>>,
    bus: Weak<Bus>,
    /// Process-wide, for `consumed_by`.
    tag: u64,
    /// The task's waker and the `OwnWaker` made from it, kept while it is the same.
    waker: Option<(Waker, Waker)>,
}

/// Tags for `consumed_by`, unique in the process (buses in one process share
/// threads).
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The tag of the subscription whose task this thread is polling, 0 for none.
    static POLLING: Cell<u64> = const { Cell::new(0) };
}

/// A subscription's waker that ignores the wake-ups its own task causes while
/// it is being polled: a client whose operation publishes an event it is
/// subscribed to. Passed on, such a wake-up would reschedule the running task
/// as if it had yielded, which wakes an idle worker to steal it: a cross-CPU
/// wake-up per round of the connection loop, for nothing.
struct OwnWaker {
    tag: u64,
    task: Waker,
}

impl Wake for OwnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if POLLING.with(Cell::get) != self.tag {
            self.task.wake_by_ref();
        }
    }
}

/// Runs `task`, the one future that consumes the subscription `tag`, so that
/// frames its own polls publish to that subscription do not wake it (see
/// `OwnWaker`). `task` must look at the subscription again (`recv`) before it
/// waits on anything that never returns to it: frames that arrive meanwhile
/// are seen there, not woken for.
pub async fn consumed_by<F: Future>(tag: u64, task: F) -> F::Output {
    /// Restores the thread's tag even if the poll panics.
    struct Polling(u64);
    impl Drop for Polling {
        fn drop(&mut self) {
            POLLING.with(|p| p.set(self.0));
        }
    }
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(move |cx| {
        let _restore = Polling(POLLING.with(|p| p.replace(tag)));
        task.as_mut().poll(cx)
    })
    .await
}

impl Subscription {
    /// The next live frame; `None` once the bus dropped this consumer or closed.
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        let frame = std::future::poll_fn(|cx| {
            let (rx, tag) = (&mut self.rx, self.tag);
            let waker = match &self.waker {
                Some((task, own)) if task.will_wake(cx.waker()) => own,
                _ => {
                    let own = Waker::from(Arc::new(OwnWaker { tag, task: cx.waker().clone() }));
                    &self.waker.insert((cx.waker().clone(), own)).1
                }
            };
            rx.poll_recv(&mut Context::from_waker(waker))
        })
        .await;
        self.took();
        frame
    }

    /// What `consumed_by` takes to run this subscription's task.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// A frame already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Frame>> {
        let frame = self.rx.try_recv().ok();
        if frame.is_some() {
            self.took();
        }
        frame
    }

    /// Frames queued for this consumer.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// A paced consumer's progress; at a quarter full, it wakes waiting publishers.
    fn took(&self) {
        let Some(pace) = &self.pace else { return };
        pace.last_take_ms.store(pace.began.elapsed().as_millis() as u64, Ordering::Relaxed);
        let quarter = self.rx.max_capacity() / 4;
        if self.rx.len() == quarter
            && let Some(bus) = self.bus.upgrade()
        {
            bus.room.notify_waiters();
        }
    }

    /// True when the bus dropped this consumer because its queue was full.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.inner.lock().consumers.retain(|c| c.id != self.id);
        }
    }
}

impl Bus {
    pub fn new(config: BusConfig) -> Arc<Self> {
        Self::build(config, 0, VecDeque::new(), None)
    }

    /// A bus kept in `log`: its replay buffer restored, numbering past
    /// every `seq` that may have been handed out.
    pub fn restore(config: BusConfig, log: Arc<dyn EventLog>, restored: &Restored) -> Arc<Self> {
        let ring = restored
            .events
            .iter()
            .filter_map(|(seq, json)| {
                let frame: EventFrame = serde_json::from_str(json).ok()?;
                Some(Arc::new(Frame::new(*seq, Payload::Event(frame), Json::from(json.clone()))))
            })
            .collect();
        Self::build(config, restored.next_seq - 1, ring, Some(log))
    }

    fn build(
        config: BusConfig,
        last_seq: u64,
        ring: VecDeque<Arc<Frame>>,
        log: Option<Arc<dyn EventLog>>,
    ) -> Arc<Self> {
        let ring_bytes = ring.iter().map(|f| f.cost()).sum();
        let mut inner = Inner { last_seq, ring, ring_bytes, consumers: Vec::new(), next_consumer: 0 };
        inner.trim(&config);
        Arc::new(Self {
            config,
            inner: Mutex::new(inner),
            began: Instant::now(),
            room: Notify::new(),
            dropped_consumers: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            log,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.inner.lock().last_seq
    }

    /// Frames queued for consumers, ever.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// How many consumers were dropped for lagging, ever.
    pub fn dropped_consumers(&self) -> u64 {
        self.dropped_consumers.load(Ordering::Relaxed)
    }

    pub fn consumer_count(&self) -> usize {
        self.inner.lock().consumers.len()
    }

    /// Numbers `event`, buffers it and fans it out. Returns its `seq`.
    pub fn publish_event(&self, account: AccountId, time: i64, event: Event) -> u64 {
        let mut inner = self.inner.lock();
        let seq = inner.last_seq + 1;
        let frame = EventFrame { event, seq, time, account };
        let json = to_json(&frame);
        inner.last_seq = seq;
        let stored = self.log.as_ref().map(|_| json.clone());
        self.fan_out(&mut inner, Arc::new(Frame::new(seq, Payload::Event(frame), json)));
        // The stored log keeps what the ring keeps.
        let keep_from = inner.ring.front().map_or(seq + 1, |f| f.seq);
        drop(inner);
        // Recorded outside the lock: a store that commits never holds up a publisher.
        if let (Some(log), Some(json)) = (&self.log, stored) {
            log.record(seq, json, keep_from);
        }
        seq
    }

    /// Publishes an audit frame; it carries the current `seq` and does not advance it.
    pub fn publish_outgoing(&self, account: AccountId, time: i64, data: Outgoing) {
        let mut inner = self.inner.lock();
        let seq = inner.last_seq;
        let frame = OutgoingFrame { tag: OutgoingTag::Outgoing, seq, time, account, data };
        let json = to_json(&frame);
        self.fan_out(&mut inner, Arc::new(Frame::new(seq, Payload::Outgoing(frame), json)));
    }

    fn fan_out(&self, inner: &mut Inner, frame: Arc<Frame>) {
        if self.config.replay > 0 {
            inner.ring_bytes += frame.cost();
            inner.ring.push_back(frame.clone());
            inner.trim(&self.config);
        }
        let outgoing = frame.is_outgoing();
        let mut delivered = 0;
        inner.consumers.retain(|c| {
            if outgoing && !c.wants_outgoing {
                return true;
            }
            match c.tx.try_send(frame.clone()) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.lagged.store(true, Ordering::Release);
                    self.dropped_consumers.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(consumer = %c.name, seq = frame.seq, "consumer lagged: queue full, dropped");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
    }

    /// True while a paced consumer that took a frame within `patience` has
    /// its queue more than half full.
    pub fn backlogged(&self) -> bool {
        let now = self.began.elapsed().as_millis() as u64;
        let patience = self.config.patience.as_millis() as u64;
        let half = self.config.queue / 2;
        self.inner.lock().consumers.iter().any(|c| {
            c.pace.as_ref().is_some_and(|p| {
                c.tx.max_capacity() - c.tx.capacity() > half
                    && now.saturating_sub(p.last_take_ms.load(Ordering::Relaxed)) < patience
            })
        })
    }

    /// Waits while the bus is `backlogged`: what a publisher that can wait
    /// does before it publishes more.
    pub async fn wait_for_room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.backlogged() {
                return;
            }
            // Woken by a draining consumer, or to look again once a stuck one
            // has run out of patience.
            let _ = tokio::time::timeout(self.config.patience, room).await;
        }
    }

    /// Adds a consumer. With `since`, the frames after it that are still buffered
    /// come back in `replay`, atomically with the subscription: none is missed
    /// or repeated between the replay and the live queue.
    pub fn subscribe(self: &Arc<Self>, name: &str, wants_outgoing: bool, since: Option<u64>) -> Subscription {
        self.add_consumer(name, wants_outgoing, since, false)
    }

    /// Adds a paced consumer (a wasm bot): events only, see `wait_for_room`.
    pub fn subscribe_paced(self: &Arc<Self>, name: &str, since: Option<u64>) -> Subscription {
        self.add_consumer(name, false, since, true)
    }

    fn add_consumer(
        self: &Arc<Self>,
        name: &str,
        wants_outgoing: bool,
        since: Option<u64>,
        paced: bool,
    ) -> Subscription {
        let now = self.began.elapsed().as_millis() as u64;
        let pace = paced.then(|| Arc::new(Pace { began: self.began, last_take_ms: AtomicU64::new(now) }));
        let (tx, rx) = mpsc::channel(self.config.queue.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        let mut inner = self.inner.lock();
        let id = inner.next_consumer;
        inner.next_consumer += 1;
        let mut replay = Vec::new();
        let mut missed = None;
        if let Some(since) = since {
            let oldest_event = inner.ring.iter().find(|f| !f.is_outgoing()).map(|f| f.seq);
            let first_kept = oldest_event.unwrap_or(inner.last_seq + 1);
            if since + 1 < first_kept && since < inner.last_seq {
                missed = Some(Missed { from: since + 1, to: first_kept - 1 });
            }
            replay =
                inner.ring.iter().filter(|f| f.seq > since && (wants_outgoing || !f.is_outgoing())).cloned().collect();
        }
        let consumer =
            Consumer { id, name: name.to_owned(), wants_outgoing, tx, lagged: lagged.clone(), pace: pace.clone() };
        inner.consumers.push(consumer);
        let last_seq = inner.last_seq;
        drop(inner);
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        Subscription { last_seq, replay, missed, rx, id, lagged, pace, bus: Arc::downgrade(self), tag, waker: None }
    }
}

impl Inner {
    /// Drops the oldest frames until the ring fits its count and its bytes.
    fn trim(&mut self, config: &BusConfig) {
        while self.ring.len() > config.replay || (self.ring_bytes > config.replay_bytes && !self.ring.is_empty()) {
            if let Some(old) = self.ring.pop_front() {
                self.ring_bytes -= old.cost();
            }
        }
    }
}

/// Serializes into a per-thread scratch buffer, then copies the text once
/// into its shared allocation of the exact size: a frame's text grows from
/// empty (three or four reallocations of a few hundred bytes) only once per
/// thread, and the ring holds no spare capacity.
fn to_json<T: serde::Serialize>(value: &T) -> Json {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        // Serializing our own schema types cannot fail: no maps with non-string keys.
        if serde_json::to_writer(&mut *buf, value).is_err() {
            buf.clear();
        }
        let json = Json(Arc::from(std::str::from_utf8(buf).unwrap_or_default()));
        // One huge frame does not pin its buffer for the thread's life.
        if buf.capacity() > 1 << 16 {
            *buf = Vec::with_capacity(1024);
        }
        json
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{UserEvent, UserId};

    fn online() -> Event {
        Event::User(UserEvent::Online)
    }

    #[tokio::test]
    async fn every_consumer_gets_every_event_in_order() {
        let bus = Bus::new(BusConfig { queue: 16, replay: 16, ..BusConfig::default() });
        let mut a = bus.subscribe("a", false, None);
        let mut b = bus.subscribe("b", false, None);
        for _ in 0..10 {
            bus.publish_event(AccountId(1), 0, online());
        }
        for sub in [&mut a, &mut b] {
            for seq in 1..=10 {
                assert_eq!(sub.recv().await.map(|f| f.seq), Some(seq));
            }
        }
    }

    /// Counts the wake-ups a task gets.
    struct Wakes(AtomicU64);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_consumers_own_publishes_do_not_wake_it_and_are_still_seen() {
        let bus = Bus::new(BusConfig { queue: 16, replay: 16, ..BusConfig::default() });
        let mut sub = bus.subscribe("own", false, None);
        let wakes = Arc::new(Wakes(AtomicU64::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let tag = sub.tag();
        // In the consumer's own poll: it waits (the queue is empty), then an
        // operation of its publishes, then it looks at the queue again.
        let mut own = std::pin::pin!(consumed_by(tag, async {
            assert!(futures::poll!(std::pin::pin!(sub.recv())).is_pending());
            bus.publish_event(AccountId(1), 0, online());
            assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "its own publish woke it");
            let seen = sub.recv().await.map(|f| f.seq);
            // Waiting again; now someone else publishes.
            assert!(futures::poll!(std::pin::pin!(sub.recv())).is_pending());
            seen
        }));
        assert_eq!(own.as_mut().poll(&mut cx), std::task::Poll::Ready(Some(1)));
        bus.publish_event(AccountId(1), 0, online());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "another task's publish must wake it");
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_consumer() {
        let bus = Bus::new(BusConfig { queue: 4, replay: 100, ..BusConfig::default() });
        let mut slow = bus.subscribe("slow", false, None);
        let mut fast = bus.subscribe("fast", false, None);
        for seq in 1..=20 {
            bus.publish_event(AccountId(1), 0, online());
            assert_eq!(fast.recv().await.map(|f| f.seq), Some(seq));
        }
        for seq in 1..=4 {
            assert_eq!(slow.recv().await.map(|f| f.seq), Some(seq));
        }
        assert!(slow.recv().await.is_none());
        assert!(slow.lagged());
        assert!(!fast.lagged());
        assert_eq!(bus.dropped_consumers(), 1);
        assert_eq!(bus.consumer_count(), 1);
    }

    #[tokio::test]
    async fn since_replays_and_reports_what_fell_out() {
        let bus = Bus::new(BusConfig { queue: 16, replay: 5, ..BusConfig::default() });
        for _ in 0..10 {
            bus.publish_event(AccountId(1), 0, online());
        }
        let sub = bus.subscribe("r", false, Some(7));
        assert_eq!(sub.replay.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert_eq!(sub.missed, None);
        let sub = bus.subscribe("r", false, Some(2));
        assert_eq!(sub.replay.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![6, 7, 8, 9, 10]);
        assert_eq!(sub.missed, Some(Missed { from: 3, to: 5 }));
        let sub = bus.subscribe("r", false, Some(10));
        assert!(sub.replay.is_empty() && sub.missed.is_none());
    }

    #[tokio::test]
    async fn the_replay_buffer_is_bounded_in_bytes() {
        let bus = Bus::new(BusConfig { queue: 64, replay: 1000, replay_bytes: 20_000, ..BusConfig::default() });
        let big = || Event::User(UserEvent::FriendAdded { who: UserId(1), nick: "x".repeat(2000) });
        for _ in 0..50 {
            bus.publish_event(AccountId(1), 0, big());
        }
        let sub = bus.subscribe("r", false, Some(0));
        let kept: usize = sub.replay.iter().map(|f| f.cost()).sum();
        assert!(kept <= 20_000 && !sub.replay.is_empty(), "{kept}");
        assert_eq!(sub.replay.last().map(|f| f.seq), Some(50));
        let first = sub.replay[0].seq;
        assert_eq!(sub.missed, Some(Missed { from: 1, to: first - 1 }));
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes() {
        let bus = Bus::new(BusConfig::default());
        let sub = bus.subscribe("x", false, None);
        assert_eq!(bus.consumer_count(), 1);
        drop(sub);
        assert_eq!(bus.consumer_count(), 0);
    }
}
