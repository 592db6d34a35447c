//! The default simulated world as the tests and the benches see it: its IDs,
//! a bridge's settings on port 0 with fresh folders, and a typical message.
//! Shared by `tests/all` and `benches/` (included by path).

use botbridge::backend::{BackendEvent, IncomingMessage, Sender};
use botbridge::config::Settings;
use botbridge::schema::{Element, GroupId, GroupModel, MemberModel, Permission, Target, UpstreamMsgId, UserId};

pub const BOT: i64 = 10001;
/// In the default world: the account is admin of GROUP, plain member of LOBBY.
pub const GROUP: i64 = 20001;
pub const LOBBY: i64 = 20002;
pub const OWNER: i64 = 30001;
pub const ADMIN: i64 = 30002;
pub const MEMBER: i64 = 30003;
pub const FRIEND: i64 = 40001;
pub const STRANGER: i64 = 50001;

/// Settings for a bridge on port 0 with its own empty bots and state folders.
pub fn settings() -> Settings {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Settings {
        listen: "127.0.0.1:0".into(),
        bots: dir.join("bots"),
        state_dir: dir.join("state"),
        ..Settings::default()
    }
}

/// A group message from MEMBER in GROUP, as a backend reports it.
pub fn message(i: i64, text: &str) -> BackendEvent {
    BackendEvent::Message(IncomingMessage {
        target: Target::Group { group: GroupId(GROUP) },
        group: Some(GroupModel {
            id: GroupId(GROUP),
            name: "botbridge dev".into(),
            bot_permission: Permission::Administrator,
        }),
        sender: Sender::Member(MemberModel {
            id: UserId(MEMBER),
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
