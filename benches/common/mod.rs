//! Shared by the benches.

use std::time::Duration;

use botbridge::backend::{BackendEvent, IncomingMessage, Sender};
use botbridge::bridge::Bridge;
use botbridge::config::Settings;
use botbridge::schema::{
    AccountId, Element, GroupId, GroupModel, MemberModel, Permission, Target, UpstreamMsgId, UserId,
};

/// Events published per burst; at most two bursts are in flight.
pub const CHUNK: u64 = 2048;

/// A bridge on port 0 with its own folders; `durable`: with the state file.
pub fn settings(durable: bool) -> Settings {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Settings {
        listen: "127.0.0.1:0".into(),
        bots: dir.join("bots"),
        state_dir: dir.join("state"),
        ephemeral: !durable,
        ..Settings::default()
    }
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
            bridge.ingest(AccountId(10001), message(published as i64, text));
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

/// A typical group message from member 30003 in group 20001, as a backend reports it.
pub fn message(i: i64, text: &str) -> BackendEvent {
    BackendEvent::Message(IncomingMessage {
        target: Target::Group { group: GroupId(20001) },
        group: Some(GroupModel {
            id: GroupId(20001),
            name: "botbridge dev".into(),
            bot_permission: Permission::Administrator,
        }),
        sender: Sender::Member(MemberModel {
            id: UserId(30003),
            nick: "Mia".into(),
            name_card: String::new(),
            name_card_or_nick: "Mia".into(),
            permission: Permission::Member,
            special_title: String::new(),
        }),
        backend_id: UpstreamMsgId(i),
        time: 1_732_230_000,
        quote: None,
        elements: vec![Element::Plain { msg: text.into() }],
        anonymous: false,
    })
}
