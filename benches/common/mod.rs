//! Shared by the benches.

use botbridge::backend::{BackendEvent, IncomingMessage, Sender};
use botbridge::schema::{Element, GroupModel, MemberModel, Permission, Target};

/// A typical group message from member 30003 in group 20001, as a backend reports it.
pub fn message(i: i64, text: &str) -> BackendEvent {
    BackendEvent::Message(IncomingMessage {
        target: Target::Group { group: 20001 },
        group: Some(GroupModel { id: 20001, name: "botbridge dev".into(), bot_permission: Permission::Administrator }),
        sender: Sender::Member(MemberModel {
            id: 30003,
            nick: "Mia".into(),
            name_card: String::new(),
            name_card_or_nick: "Mia".into(),
            permission: Permission::Member,
            special_title: String::new(),
        }),
        backend_id: i,
        time: 1_732_230_000,
        quote: None,
        elements: vec![Element::Plain { msg: text.into() }],
        anonymous: false,
    })
}
