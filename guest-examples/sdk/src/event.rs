//! What a bot receives: [`Event`], with messages from every scene as one
//! [`Message`] type.

use crate::bindings::botbridge::bot::types::{self as wit, EventData, MessageEvent};
use crate::chain::text_of;
use crate::{ops, Chain, Element, Error, Friend, Group, GroupEvent, Member, Permission, Revoke, Sent, UserEvent};

/// One event, in the order the bridge saw it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A group, friend or temp message.
    Message(Message),
    /// A message was recalled.
    Recall(Revoke),
    /// About the account: online, offline, friend requests, group invites, …
    User(UserEvent),
    /// About a group: join requests, mutes, admins, members joining and leaving.
    Group(GroupEvent),
}

/// Where a message was said, and by whom.
#[derive(Debug, Clone)]
pub enum Scene {
    Group {
        group: Group,
        sender: Member,
        anonymous: bool,
    },
    Friend {
        sender: Friend,
    },
    /// A private message from a stranger, by way of `group`.
    Temp {
        group: Group,
        sender: Friend,
    },
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub seq: u64,
    pub time: i64,
    /// The account that received it.
    pub account: i64,
    pub scene: Scene,
    /// Answers this message in its scene: see [`Message::reply`].
    pub reply_key: String,
    /// The chain as received; the first element is its `MessageSource`.
    pub chain: Vec<Element>,
}

impl Message {
    /// The plain text of the message.
    pub fn text(&self) -> String {
        text_of(&self.chain)
    }

    /// The argument of command `/name`: `Some("a b")` for "/name a b",
    /// `Some("")` for "/name" alone, `None` for anything else ("/names" too).
    pub fn command(&self, name: &str) -> Option<String> {
        let text = self.text();
        let rest = text.trim_start().strip_prefix('/')?.strip_prefix(name)?;
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            Some(rest.trim().to_string())
        } else {
            None
        }
    }

    /// The message's registry ID, for [`ops::recall`] or a quote.
    pub fn source_id(&self) -> Option<&str> {
        self.chain.iter().find_map(|e| match e {
            Element::MessageSource(id) => Some(id.as_str()),
            _ => None,
        })
    }

    pub fn sender_id(&self) -> i64 {
        match &self.scene {
            Scene::Group { sender, .. } => sender.id,
            Scene::Friend { sender } | Scene::Temp { sender, .. } => sender.id,
        }
    }

    /// The name to call the sender by: group card, else nick.
    pub fn sender_name(&self) -> &str {
        match &self.scene {
            Scene::Group { sender, .. } => &sender.name_card_or_nick,
            Scene::Friend { sender } | Scene::Temp { sender, .. } => &sender.nick,
        }
    }

    /// The sender's rank, in group messages.
    pub fn sender_permission(&self) -> Option<Permission> {
        match &self.scene {
            Scene::Group { sender, .. } => Some(sender.permission),
            _ => None,
        }
    }

    /// The group, for group and temp messages.
    pub fn group(&self) -> Option<&Group> {
        match &self.scene {
            Scene::Group { group, .. } | Scene::Temp { group, .. } => Some(group),
            Scene::Friend { .. } => None,
        }
    }

    /// Answers in the message's scene (group, friend or temp).
    pub fn reply(&self, message: impl Into<Chain>) -> Result<Sent, Error> {
        ops::reply(&self.reply_key, message)
    }

    /// Replies, and logs a warning when that fails: for bots that have
    /// nothing better to do with the error.
    pub fn reply_or_log(&self, message: impl Into<Chain>) {
        if let Err(e) = self.reply(message) {
            crate::log::warn(format!("reply to message {} failed: {e}", self.seq));
        }
    }

    /// Recalls this message (the account needs a higher rank than the sender).
    pub fn recall(&self) -> Result<(), Error> {
        match self.source_id() {
            Some(id) => ops::recall(id),
            None => Err(Error { code: wit::ErrorCode::UnknownMessage, message: "no MessageSource".into() }),
        }
    }
}

/// The account of the event being handled (0 before the first).
static ACCOUNT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The account that received the event being handled: how a bot tells
/// whether a poke, a mute or a kick was about itself.
pub fn account() -> i64 {
    ACCOUNT.load(std::sync::atomic::Ordering::Relaxed)
}

impl From<wit::Event> for Event {
    fn from(event: wit::Event) -> Self {
        ACCOUNT.store(event.bot, std::sync::atomic::Ordering::Relaxed);
        match event.data {
            EventData::Msg(m) => {
                let (scene, reply_key, chain) = match m {
                    MessageEvent::Group(g) => (
                        Scene::Group { group: g.group, sender: g.sender, anonymous: g.anonymous },
                        g.reply_key,
                        g.message,
                    ),
                    MessageEvent::Friend(f) => (Scene::Friend { sender: f.sender }, f.reply_key, f.message),
                    MessageEvent::Temp(t) => (Scene::Temp { group: t.group, sender: t.sender }, t.reply_key, t.message),
                };
                Event::Message(Message {
                    seq: event.seq,
                    time: event.time,
                    account: event.bot,
                    scene,
                    reply_key,
                    chain,
                })
            }
            EventData::Revoke(r) => Event::Recall(r),
            EventData::User(u) => Event::User(u),
            EventData::Group(g) => Event::Group(g),
        }
    }
}
