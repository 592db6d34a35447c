//! Shared by the benches (the world they share with the tests is in
//! `tests/common/world.rs`).

use std::time::Duration;

use botbridge::bridge::Bridge;
use botbridge::config::Settings;
use botbridge::schema::AccountId;

/// Events published per burst; at most two bursts are in flight.
pub const CHUNK: u64 = 2048;

/// A bridge on port 0 with its own folders; `durable`: with the state file.
pub fn settings(durable: bool) -> Settings {
    Settings { ephemeral: !durable, ..crate::world::settings() }
}

/// Publishes `events` group messages as fast as the slowest consumer keeps up
/// (`done` reports how many it has taken), so that no queue overflows; returns
/// once `done` reaches `events`.
pub async fn publish_paced(bridge: &Bridge, events: u64, text: &str, done: impl Fn() -> u64) {
    let mut published = 0;
    while published < events {
        while published >= 2 * CHUNK && done() < published - 2 * CHUNK {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        for _ in 0..CHUNK.min(events - published) {
            bridge.ingest(AccountId(crate::world::BOT), crate::world::message(published as i64, text));
            published += 1;
        }
        tokio::task::yield_now().await;
    }
    while done() < events {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// The `q` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}
