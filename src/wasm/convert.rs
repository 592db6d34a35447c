//! Schema ⇄ WIT: the same events and operations, as WIT types. Operations from
//! a bot become `schema::Operation`s and take the bridge's one path.

use std::borrow::Cow;
use std::sync::Arc;

use crate::bus::Frame;
use crate::schema as s;

use super::bindings::botbridge::bot::types as w;

/// An event frame in WIT form, converted by the first bot that takes the
/// frame and kept with it (`Frame::converted`): the other bots lower the same
/// value, each into its own memory, with no lock or count to share.
pub fn shared_event<'a>(frame: &'a Frame, event: &s::EventFrame) -> Cow<'a, Arc<w::Event>> {
    let converted = frame.converted.get_or_init(|| Box::new(Arc::new(self::event(event))));
    match converted.downcast_ref::<Arc<w::Event>>() {
        Some(shared) => Cow::Borrowed(shared),
        // Another consumer's form: not one the bridge has, but convert anyway.
        None => Cow::Owned(Arc::new(self::event(event))),
    }
}

fn permission(p: s::Permission) -> w::Permission {
    match p {
        s::Permission::Member => w::Permission::Member,
        s::Permission::Administrator => w::Permission::Administrator,
        s::Permission::Owner => w::Permission::Owner,
    }
}

pub fn friend(f: &s::FriendModel) -> w::Friend {
    w::Friend { id: f.id.0, nick: f.nick.clone() }
}

pub fn member(m: &s::MemberModel) -> w::Member {
    w::Member {
        id: m.id.0,
        nick: m.nick.clone(),
        name_card: m.name_card.clone(),
        name_card_or_nick: m.name_card_or_nick.clone(),
        permission: permission(m.permission),
        special_title: m.special_title.clone(),
    }
}

pub fn group(g: &s::GroupModel) -> w::Group {
    w::Group { id: g.id.0, name: g.name.clone(), bot_permission: permission(g.bot_permission) }
}

pub fn element(e: &s::Element) -> w::Element {
    match e {
        s::Element::MessageSource { id } => w::Element::MessageSource(id.0.clone()),
        s::Element::Plain { msg } => w::Element::Plain(msg.clone()),
        s::Element::At { target, display } => w::Element::At(w::At { target: target.0, display: display.clone() }),
        s::Element::AtAll => w::Element::AtAll,
        s::Element::Face { id } => w::Element::Face(*id),
        s::Element::Image { id, url } => w::Element::Image(w::Image { id: id.clone(), url: url.clone() }),
        s::Element::FlashImage { image } => {
            w::Element::FlashImage(w::Image { id: image.id.clone(), url: image.url.clone() })
        }
        s::Element::Poke { poke_type, name } => w::Element::Poke(w::Poke { poke_type: *poke_type, name: name.clone() }),
        s::Element::Voice { url, filename } => {
            w::Element::Voice(w::Voice { url: url.clone(), filename: filename.clone() })
        }
        s::Element::Quote { id, to, time, text } => {
            w::Element::Quote(w::Quote { id: id.0.clone(), to: to.map(|t| t.0), time: *time, text: text.clone() })
        }
        s::Element::LightApp { content } => w::Element::LightApp(content.clone()),
        s::Element::Service { id, content } => w::Element::Service(w::Service { id: *id, content: content.clone() }),
        s::Element::Other { kind, data } => w::Element::Other(w::Other { kind: kind.clone(), data: data.to_string() }),
        s::Element::Forward { id, nodes } => {
            w::Element::Forward(w::Forward { id: id.clone(), nodes: nodes.iter().map(node).collect() })
        }
    }
}

fn node(n: &s::ForwardNode) -> w::ForwardNode {
    w::ForwardNode {
        sender: n.sender.0,
        name: n.name.clone(),
        time: n.time,
        message: n.message.iter().map(node_element).collect(),
    }
}

/// A node's element; what a node cannot hold (a nested forward, a quote)
/// arrives as `other` with the element's JSON.
fn node_element(e: &s::Element) -> w::NodeElement {
    match element(e) {
        w::Element::Plain(t) => w::NodeElement::Plain(t),
        w::Element::At(a) => w::NodeElement::At(a),
        w::Element::AtAll => w::NodeElement::AtAll,
        w::Element::Face(id) => w::NodeElement::Face(id),
        w::Element::Image(i) => w::NodeElement::Image(i),
        w::Element::FlashImage(i) => w::NodeElement::FlashImage(i),
        w::Element::Poke(p) => w::NodeElement::Poke(p),
        w::Element::Voice(v) => w::NodeElement::Voice(v),
        w::Element::LightApp(c) => w::NodeElement::LightApp(c),
        w::Element::Service(x) => w::NodeElement::Service(x),
        w::Element::Other(x) => w::NodeElement::Other(x),
        w::Element::MessageSource(_) | w::Element::Quote(_) | w::Element::Forward(_) => {
            let data = serde_json::to_value(e).unwrap_or_default();
            let kind = data.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            w::NodeElement::Other(w::Other { kind, data: data.to_string() })
        }
    }
}

pub fn node_from(n: w::ForwardNode) -> s::ForwardNode {
    let message = n
        .message
        .into_iter()
        .map(|e| {
            element_from(match e {
                w::NodeElement::Plain(t) => w::Element::Plain(t),
                w::NodeElement::At(a) => w::Element::At(a),
                w::NodeElement::AtAll => w::Element::AtAll,
                w::NodeElement::Face(id) => w::Element::Face(id),
                w::NodeElement::Image(i) => w::Element::Image(i),
                w::NodeElement::FlashImage(i) => w::Element::FlashImage(i),
                w::NodeElement::Poke(p) => w::Element::Poke(p),
                w::NodeElement::Voice(v) => w::Element::Voice(v),
                w::NodeElement::LightApp(c) => w::Element::LightApp(c),
                w::NodeElement::Service(x) => w::Element::Service(x),
                w::NodeElement::Other(x) => w::Element::Other(x),
            })
        })
        .collect();
    s::ForwardNode { sender: s::UserId(n.sender), name: n.name, time: n.time, message }
}

pub fn fetched(m: &s::FetchedMessage) -> w::FetchedMessage {
    let (chat, channel, group) = match m.target {
        s::Target::Group { group } => (w::Chat::Group, group.0, group.0),
        s::Target::Friend { friend } => (w::Chat::Friend, friend.0, 0),
        s::Target::Temp { group, user } => (w::Chat::Temp, user.0, group.0),
    };
    w::FetchedMessage {
        chat,
        channel,
        group,
        sender: m.sender.0,
        sender_name: m.sender_name.clone(),
        time: m.time,
        message: chain(&m.message),
    }
}

pub fn element_from(e: w::Element) -> s::Element {
    match e {
        w::Element::MessageSource(id) => s::Element::MessageSource { id: s::SourceId(id) },
        w::Element::Plain(msg) => s::Element::Plain { msg },
        w::Element::At(a) => s::Element::At { target: s::UserId(a.target), display: a.display },
        w::Element::AtAll => s::Element::AtAll,
        w::Element::Face(id) => s::Element::Face { id },
        w::Element::Image(i) => s::Element::Image { id: i.id, url: i.url },
        w::Element::FlashImage(i) => {
            s::Element::FlashImage { image: s::NestedImage { tag: s::ImageTag::Image, id: i.id, url: i.url } }
        }
        w::Element::Poke(p) => s::Element::Poke { poke_type: p.poke_type, name: p.name },
        w::Element::Voice(v) => s::Element::Voice { url: v.url, filename: v.filename },
        w::Element::Quote(q) => {
            s::Element::Quote { id: s::SourceId(q.id), to: q.to.map(s::UserId), time: q.time, text: q.text }
        }
        w::Element::LightApp(content) => s::Element::LightApp { content },
        w::Element::Service(x) => s::Element::Service { id: x.id, content: x.content },
        w::Element::Other(x) => s::Element::Other {
            data: serde_json::from_str(&x.data).unwrap_or(serde_json::Value::String(x.data)),
            kind: x.kind,
        },
        w::Element::Forward(f) => s::Element::Forward { id: f.id, nodes: f.nodes.into_iter().map(node_from).collect() },
    }
}

pub fn chain_from(chain: Vec<w::Element>) -> s::MessageChain {
    chain.into_iter().map(element_from).collect()
}

fn chain(c: &[s::Element]) -> Vec<w::Element> {
    c.iter().map(element).collect()
}

fn request_id(id: &Option<s::RequestId>) -> String {
    id.as_ref().map(|r| r.0.clone()).unwrap_or_default()
}

pub fn event(frame: &s::EventFrame) -> w::Event {
    let data = match &frame.event {
        s::Event::Msg(m) => w::EventData::Msg(message_event(m)),
        s::Event::Revoke(r) => w::EventData::Revoke(revoke(r)),
        s::Event::User(u) => w::EventData::User(user_event(u)),
        s::Event::Group(g) => w::EventData::Group(group_event(g)),
    };
    w::Event { seq: frame.seq, time: frame.time, bot: frame.account.0, data }
}

fn message_event(m: &s::MessageEvent) -> w::MessageEvent {
    match m {
        s::MessageEvent::GroupMessage { group: g, sender, reply_key, message, anonymous, .. } => {
            w::MessageEvent::Group(w::GroupMessage {
                group: group(g),
                sender: member(sender),
                reply_key: reply_key.0.clone(),
                message: chain(message),
                anonymous: *anonymous,
            })
        }
        s::MessageEvent::FriendMessage { sender, message, reply_key, .. } => {
            w::MessageEvent::Friend(w::FriendMessage {
                sender: friend(sender),
                reply_key: reply_key.0.clone(),
                message: chain(message),
            })
        }
        s::MessageEvent::TempMessage { group: g, sender, message, reply_key, .. } => {
            w::MessageEvent::Temp(w::TempMessage {
                group: group(g),
                sender: friend(sender),
                reply_key: reply_key.0.clone(),
                message: chain(message),
            })
        }
    }
}

fn revoke(r: &s::RevokeEvent) -> w::Revoke {
    w::Revoke {
        kind: match r.kind {
            s::ChatKind::Private => w::ChatKind::Private,
            s::ChatKind::Group => w::ChatKind::Group,
        },
        revoker: r.revoker.0,
        revokee: r.revokee.0,
        channel: r.channel,
        msg_id: r.msg_id.0.clone(),
    }
}

fn user_event(u: &s::UserEvent) -> w::UserEvent {
    match u {
        s::UserEvent::Online => w::UserEvent::Online,
        s::UserEvent::Offline => w::UserEvent::Offline,
        s::UserEvent::NewFriendRequest { who, nick, source, comment, request_id: id } => {
            w::UserEvent::NewFriendRequest(w::FriendRequest {
                who: who.0,
                nick: nick.clone(),
                source: source.clone(),
                comment: comment.clone(),
                request_id: request_id(id),
            })
        }
        s::UserEvent::GroupInvite { group, group_name, inviter, request_id: id } => {
            w::UserEvent::GroupInvite(w::GroupInvite {
                group: group.0,
                group_name: group_name.clone(),
                inviter: inviter.0,
                request_id: request_id(id),
            })
        }
        s::UserEvent::FriendAdded { who, nick } => {
            w::UserEvent::FriendAdded(w::Person { who: who.0, nick: nick.clone() })
        }
        s::UserEvent::FriendRemoved { who, nick } => {
            w::UserEvent::FriendRemoved(w::Person { who: who.0, nick: nick.clone() })
        }
        s::UserEvent::GroupJoined { which } => w::UserEvent::GroupJoined(which.0),
        s::UserEvent::GroupLeft { which, operator } => {
            w::UserEvent::GroupLeft(w::GroupLeft { which: which.0, operator: operator.0 })
        }
        s::UserEvent::Poke { from, target } => {
            w::UserEvent::Poke(w::PokeEvent { from: from.0, target: target.0, group: 0 })
        }
    }
}

fn group_event(g: &s::GroupEvent) -> w::GroupEvent {
    match g {
        s::GroupEvent::JoinRequest { who, group, comment, inviter, request_id: id } => {
            w::GroupEvent::JoinRequest(w::JoinRequest {
                who: who.0,
                group: group.0,
                comment: comment.clone(),
                inviter: inviter.0,
                request_id: request_id(id),
            })
        }
        s::GroupEvent::Mute { who, group, operator, duration } => {
            w::GroupEvent::Mute(w::Mute { who: who.0, group: group.0, operator: operator.0, duration: *duration })
        }
        s::GroupEvent::Admin { who, group, status } => {
            w::GroupEvent::Admin(w::Admin { who: who.0, group: group.0, status: *status })
        }
        s::GroupEvent::MemberJoined { who, group } => {
            w::GroupEvent::MemberJoined(w::MemberJoined { who: who.0, group: group.0 })
        }
        s::GroupEvent::MemberLeft { who, group, operator } => {
            w::GroupEvent::MemberLeft(w::MemberLeft { who: who.0, group: group.0, operator: operator.0 })
        }
        s::GroupEvent::Poke { from, target, group } => {
            w::GroupEvent::Poke(w::PokeEvent { from: from.0, target: target.0, group: group.0 })
        }
        s::GroupEvent::Reaction { who, group, message_source, emoji, add } => w::GroupEvent::Reaction(w::Reaction {
            who: who.0,
            group: group.0,
            message_source: message_source.0.clone(),
            emoji: emoji.clone(),
            add: *add,
        }),
        s::GroupEvent::Essence { group, message_source, sender, operator, set } => w::GroupEvent::Essence(w::Essence {
            group: group.0,
            message_source: message_source.0.clone(),
            sender: sender.0,
            operator: operator.0,
            set: *set,
        }),
        s::GroupEvent::MemberCard { who, group, card, old } => w::GroupEvent::MemberCard(w::MemberCard {
            who: who.0,
            group: group.0,
            card: card.clone(),
            old: old.clone(),
        }),
        s::GroupEvent::FileUpload { who, group, file } => w::GroupEvent::FileUpload(w::FileUpload {
            who: who.0,
            group: group.0,
            file: w::GroupFile { id: file.id.clone(), name: file.name.clone(), size: file.size },
        }),
        s::GroupEvent::Honor { who, group, honor } => {
            w::GroupEvent::Honor(w::Honor { who: who.0, group: group.0, honor: honor.clone() })
        }
        s::GroupEvent::Title { who, group, title } => {
            w::GroupEvent::Title(w::Title { who: who.0, group: group.0, title: title.clone() })
        }
    }
}

pub fn error(e: s::OpError) -> w::Error {
    macro_rules! to_wit {
        ($( $name:ident = $wire:literal, )*) => {
            match e.code {
                $( s::ErrorCode::$name => w::ErrorCode::$name, )*
            }
        };
    }
    let code = s::for_each_error_code!(to_wit);
    w::Error { code, message: e.message }
}
