//! Heartbeats: an implementation that promised them and stopped sending them
//! counts as offline, even while its socket looks open.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Inner, MISSED_HEARTBEATS};

impl Inner {
    /// Marks the account offline when heartbeats stop coming.
    pub(super) async fn watch_heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let late = self.heartbeat.lock().is_some_and(|(at, every)| at.elapsed() > every * MISSED_HEARTBEATS);
            if late && self.online.load(Ordering::SeqCst) {
                tracing::warn!("no heartbeat for {MISSED_HEARTBEATS} intervals: offline");
                self.set_online(false);
            }
        }
    }
}
