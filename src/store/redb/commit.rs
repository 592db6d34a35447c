//! Group commit: one thread writes every tenant's pending records in one
//! transaction. When anyone waits for durability (an acknowledgement, a kv
//! write), a commit starts as soon as the previous one ends and takes
//! everything queued meanwhile, so all who waited share one fsync; with nobody
//! waiting, records go at most `GROUP_COMMIT` after the first of them. Commits
//! are numbered: a waiter holds the number of the first commit that takes its
//! records. A batch whose commit failed goes back into the queue, so a record
//! is durable once its commit or any later one succeeds.

use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Notify;

use super::{GROUP_COMMIT, MAX_UNCOMMITTED, MAX_UNCOMMITTED_BYTES, Pending, Shared};
use crate::store::StateError;

pub(super) struct Committer {
    queue: Mutex<Queue>,
    /// The commit thread waits here for work.
    work: Condvar,
    /// Blocking waiters (a recorder over the cap, `commit_now`) wait here.
    progress: Condvar,
    /// Async waiters wait here.
    committed: Notify,
    /// How long each commit took, for `/metrics`.
    pub(super) seconds: Histogram,
}

#[derive(Default)]
struct Queue {
    pending: Pending,
    /// The last batch written, emptied, to take the next records.
    spare: Option<Pending>,
    /// When the oldest pending record came.
    since: Option<Instant>,
    /// The number of the last commit started.
    started: u64,
    /// The highest commit number someone waits for.
    wanted: u64,
    /// The last commit that succeeded, the last that failed, and why.
    succeeded: u64,
    failed: u64,
    error: Option<Arc<StateError>>,
    closed: bool,
}

/// Which commit makes a waiter's records durable.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl Queue {
    /// Done (`Some(Ok)`), failed, or still to come (`None`).
    fn outcome(&self, Ticket(n): Ticket) -> Option<Result<(), StateError>> {
        if self.succeeded >= n {
            Some(Ok(()))
        } else if self.failed >= n {
            let cause = self.error.clone();
            Some(Err(cause.map_or(StateError::Closed, StateError::Commit)))
        } else if self.closed {
            Some(Err(StateError::Closed))
        } else {
            None
        }
    }
}

impl Committer {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::default(),
            work: Condvar::new(),
            progress: Condvar::new(),
            committed: Notify::new(),
            // 100 µs … about 1.6 s.
            seconds: Histogram::new(exponential_buckets(100e-6, 2.0, 15)),
        })
    }

    /// Adds records to the queue. Past half the cap the commit thread starts
    /// at once; at the cap the recorder waits until it took the batch, so at
    /// most twice the cap is ever uncommitted (what a crash may skip).
    pub(super) fn record(&self, add: impl FnOnce(&mut Pending)) {
        let mut q = self.queue.lock();
        add(&mut q.pending);
        if q.since.is_none() {
            q.since = Some(Instant::now());
            self.work.notify_one();
        }
        let (records, bytes) = q.pending.size();
        if records >= MAX_UNCOMMITTED / 2 || bytes >= MAX_UNCOMMITTED_BYTES / 2 {
            q.wanted = q.wanted.max(q.started + 1);
            self.work.notify_one();
        }
        while !q.closed && {
            let (records, bytes) = q.pending.size();
            records >= MAX_UNCOMMITTED || bytes >= MAX_UNCOMMITTED_BYTES
        } {
            self.progress.wait(&mut q);
        }
    }

    /// The commit that will hold everything recorded so far; asks for it.
    pub(super) fn ticket(&self) -> Ticket {
        let mut q = self.queue.lock();
        if q.pending.is_empty() {
            // Only what is being written now, if anything.
            return Ticket(q.started);
        }
        let n = q.started + 1;
        q.wanted = q.wanted.max(n);
        self.work.notify_one();
        Ticket(n)
    }

    /// Waits for `ticket`'s commit, without blocking a thread.
    pub(super) async fn wait(&self, ticket: Ticket) -> Result<(), StateError> {
        loop {
            let committed = self.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            if let Some(outcome) = self.queue.lock().outcome(ticket) {
                return outcome;
            }
            committed.await;
        }
    }

    /// Waits for `ticket`'s commit on this thread.
    pub(super) fn wait_blocking(&self, ticket: Ticket) -> Result<(), StateError> {
        let mut q = self.queue.lock();
        loop {
            if let Some(outcome) = q.outcome(ticket) {
                return outcome;
            }
            self.progress.wait(&mut q);
        }
    }

    /// Commits that succeeded so far.
    pub(super) fn commits(&self) -> u64 {
        self.queue.lock().succeeded
    }

    /// Stops the commit thread; what is still queued is not written.
    pub(super) fn close(&self) {
        self.queue.lock().closed = true;
        self.work.notify_all();
        self.progress.notify_all();
        self.committed.notify_waiters();
    }

    /// The commit thread: runs until closed or the store is gone.
    pub(super) fn run(&self, store: Weak<Shared>) {
        while let Some((n, mut batch)) = self.next_batch() {
            let Some(shared) = store.upgrade() else { return };
            let began = Instant::now();
            let result = shared.write(&batch);
            self.seconds.observe(began.elapsed().as_secs_f64());
            drop(shared);
            if result.is_ok() {
                batch.clear();
            }
            let mut q = self.queue.lock();
            match result {
                Ok(()) => {
                    q.succeeded = n;
                    q.spare = Some(batch);
                }
                Err(e) => {
                    tracing::error!("state commit failed (retried with the next): {}", crate::error_chain(&e));
                    q.failed = n;
                    q.error = Some(Arc::new(e));
                    let newer = std::mem::replace(&mut q.pending, batch);
                    q.pending.append(newer);
                    q.since = Some(Instant::now());
                }
            }
            drop(q);
            self.progress.notify_all();
            self.committed.notify_waiters();
        }
    }

    /// Waits until a commit is due; takes its number and the batch.
    fn next_batch(&self) -> Option<(u64, Pending)> {
        let mut q = self.queue.lock();
        loop {
            if q.closed {
                return None;
            }
            if q.wanted > q.started {
                break;
            }
            match q.since {
                None => self.work.wait(&mut q),
                Some(first) => {
                    let due = first + GROUP_COMMIT;
                    if Instant::now() >= due {
                        break;
                    }
                    self.work.wait_until(&mut q, due);
                }
            }
        }
        q.started += 1;
        q.since = None;
        let next = q.spare.take().unwrap_or_default();
        let batch = std::mem::replace(&mut q.pending, next);
        self.progress.notify_all();
        Some((q.started, batch))
    }
}
