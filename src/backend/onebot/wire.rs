//! OneBot v11's JSON, turned into botbridge's terms and back: message segments
//! (array form, and CQ strings with their escapes), and events. Pure
//! functions; the connection lives in `mod.rs`.
//!
//! Numbers arrive as JSON numbers or as strings (the specification writes
//! `"qq": "10001"`; implementations differ): both are read. Unknown segments
//! become `Element::Other` and go back out unchanged.

use serde_json::{Map, Value, json};

use crate::backend::{BackendEvent, OutgoingMessage, QuoteRef};
use crate::schema::{
    AccountId, Element, ForwardNode, GroupEvent, GroupFile, GroupId, ImageTag, MemberModel, NestedImage, Permission,
    SourceId, Target, UpstreamMsgId, UserEvent, UserId,
};

/// One message segment: `{"type": …, "data": {…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub kind: String,
    pub data: Map<String, Value>,
}

/// An integer given as a number or a string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A message in either form: an array of segments or a CQ string.
pub fn segments(message: &Value) -> Vec<Segment> {
    match message {
        Value::String(s) => parse_cq(s),
        Value::Array(items) => items
            .iter()
            .filter_map(|item| {
                let kind = item.get("type")?.as_str()?.to_owned();
                let data = item.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
                Some(Segment { kind, data })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn unescape(s: &str, in_param: bool) -> String {
    let s = s.replace("&#91;", "[").replace("&#93;", "]");
    let s = if in_param { s.replace("&#44;", ",") } else { s };
    s.replace("&amp;", "&")
}

fn text_segment(text: &str) -> Segment {
    let mut data = Map::new();
    data.insert("text".into(), Value::String(unescape(text, false)));
    Segment { kind: "text".into(), data }
}

/// Parses a CQ-code string: plain text with `[CQ:type,key=value,…]` codes.
/// Text escapes `&amp; &#91; &#93;`; parameters also escape `&#44;`. A code
/// with no closing bracket is text.
pub fn parse_cq(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("[CQ:") {
        let Some(len) = rest[start..].find(']') else { break };
        if start > 0 {
            out.push(text_segment(&rest[..start]));
        }
        let code = &rest[start + 4..start + len];
        let mut parts = code.split(',');
        let kind = parts.next().unwrap_or_default().trim().to_owned();
        let mut data = Map::new();
        for part in parts {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            data.insert(k.to_owned(), Value::String(unescape(v, true)));
        }
        out.push(Segment { kind, data });
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        out.push(text_segment(rest));
    }
    out
}

/// Segments → the chain's content elements and the quoted message, if any.
pub fn elements(segments: &[Segment]) -> (Vec<Element>, Option<QuoteRef>) {
    let mut quote = None;
    let mut out = Vec::new();
    for seg in segments {
        let d = &seg.data;
        let get = |k: &str| str_of(d.get(k));
        let element = match seg.kind.as_str() {
            "text" => Element::Plain { msg: get("text") },
            "at" if get("qq") == "all" => Element::AtAll,
            "at" => match d.get("qq").and_then(int) {
                Some(target) => Element::At { target: UserId(target), display: get("name") },
                None => other(seg),
            },
            "face" => match d.get("id").and_then(int) {
                Some(id) => Element::Face { id },
                None => other(seg),
            },
            "image" => {
                let url = if get("url").is_empty() { get("file") } else { get("url") };
                if get("type") == "flash" {
                    Element::FlashImage { image: NestedImage { tag: ImageTag::Image, id: get("file"), url } }
                } else {
                    Element::Image { id: get("file"), url }
                }
            }
            "record" => Element::Voice {
                url: if get("url").is_empty() { get("file") } else { get("url") },
                filename: get("file"),
            },
            "poke" => Element::Poke { poke_type: d.get("type").and_then(int).unwrap_or(0), name: get("name") },
            "json" => Element::LightApp { content: get("data") },
            "xml" => Element::Service { id: d.get("id").and_then(int).unwrap_or(0), content: get("data") },
            // The nodes come inline (NapCat's `content`) or are fetched by `id`.
            "forward" => {
                Element::Forward { id: get("id"), nodes: d.get("content").map(forward_nodes).unwrap_or_default() }
            }
            "reply" => {
                if let Some(id) = d.get("id").and_then(int) {
                    quote = Some(QuoteRef { backend_id: UpstreamMsgId(id), to: None, time: None, text: None });
                    continue;
                }
                other(seg)
            }
            _ => other(seg),
        };
        out.push(element);
    }
    (out, quote)
}

/// The nodes of a forwarded message: `get_forward_msg`'s `messages`, or a
/// forward segment's inline `content`. Each is a message object with its
/// `sender`, `time` and `message` (or `content`); a node's quote is dropped.
pub fn forward_nodes(messages: &Value) -> Vec<ForwardNode> {
    let items = match messages {
        Value::Array(items) => items.as_slice(),
        _ => return Vec::new(),
    };
    items
        .iter()
        .map(|m| {
            // A `node` segment wraps its message in `data`.
            let m = if m.get("type").and_then(Value::as_str) == Some("node") { m.get("data").unwrap_or(m) } else { m };
            let sender = m.get("sender").unwrap_or(m);
            let content = m.get("message").or_else(|| m.get("content")).cloned().unwrap_or(Value::Null);
            let name = str_of(sender.get("nickname").or_else(|| sender.get("name")));
            ForwardNode {
                sender: UserId(sender.get("user_id").or_else(|| sender.get("uin")).and_then(int).unwrap_or(0)),
                name,
                time: m.get("time").and_then(int).unwrap_or(0),
                message: elements(&segments(&content)).0,
            }
        })
        .collect()
}

/// Nodes to send as `send_*_forward_msg`'s `messages`.
pub fn to_nodes(nodes: &[ForwardNode]) -> Vec<Value> {
    nodes
        .iter()
        .map(|n| {
            let content = to_segments(&OutgoingMessage { quote: None, elements: n.message.clone() });
            json!({"type": "node", "data": {"user_id": n.sender.to_string(), "nickname": n.name, "content": content}})
        })
        .collect()
}

fn other(seg: &Segment) -> Element {
    Element::Other { kind: seg.kind.clone(), data: Value::Object(seg.data.clone()) }
}

/// An outgoing message as array-form segments.
pub fn to_segments(message: &OutgoingMessage) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(id) = message.quote {
        out.push(json!({"type": "reply", "data": {"id": id.to_string()}}));
    }
    for e in &message.elements {
        let seg = match e {
            Element::Plain { msg } => json!({"type": "text", "data": {"text": msg}}),
            Element::At { target, .. } => json!({"type": "at", "data": {"qq": target.to_string()}}),
            Element::AtAll => json!({"type": "at", "data": {"qq": "all"}}),
            Element::Face { id } => json!({"type": "face", "data": {"id": id.to_string()}}),
            Element::Image { url, .. } => json!({"type": "image", "data": {"file": file_url(url)}}),
            Element::FlashImage { image } => {
                json!({"type": "image", "data": {"file": file_url(&image.url), "type": "flash"}})
            }
            Element::Poke { poke_type, .. } => {
                json!({"type": "poke", "data": {"type": poke_type.to_string(), "id": "-1"}})
            }
            Element::LightApp { content } => json!({"type": "json", "data": {"data": content}}),
            Element::Service { content, .. } => json!({"type": "xml", "data": {"data": content}}),
            Element::Other { kind, data } => json!({"type": kind, "data": data}),
            // Received forwards are sent on by their ID.
            Element::Forward { id, .. } => json!({"type": "forward", "data": {"id": id}}),
            // The bridge refuses these before they reach a backend.
            Element::MessageSource { .. } | Element::Quote { .. } | Element::Voice { .. } => continue,
        };
        out.push(seg);
    }
    out
}

/// The schema's `base64:` prefix is OneBot's `base64://`.
fn file_url(url: &str) -> String {
    match url.strip_prefix("base64:") {
        Some(rest) if !rest.starts_with("//") => format!("base64://{rest}"),
        _ => url.to_owned(),
    }
}

pub fn permission(role: &str) -> Permission {
    match role {
        "owner" => Permission::Owner,
        "admin" => Permission::Administrator,
        _ => Permission::Member,
    }
}

/// A group member from a message's `sender` or a member-list entry.
pub fn member(v: &Value) -> MemberModel {
    let nick = str_of(v.get("nickname"));
    let card = str_of(v.get("card"));
    MemberModel {
        id: UserId(v.get("user_id").and_then(int).unwrap_or(0)),
        name_card_or_nick: if card.is_empty() { nick.clone() } else { card.clone() },
        nick,
        name_card: card,
        permission: permission(v.get("role").and_then(Value::as_str).unwrap_or("member")),
        special_title: str_of(v.get("title")),
    }
}

/// Where a received message was said.
#[derive(Debug, Clone, PartialEq)]
pub enum Scene {
    Group {
        group: GroupId,
    },
    Friend,
    /// A private message by way of a group (`sub_type` "group").
    Temp {
        group: GroupId,
    },
}

/// An upstream event, mapped as far as it can be without asking upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// A message; the group's model is filled in from the account's cache.
    Message {
        scene: Scene,
        sender: Value,
        message_id: UpstreamMsgId,
        time: i64,
        segments: Vec<Segment>,
        /// An anonymous sender's `anonymous` object (`id`, `name`, `flag`).
        anonymous: Option<Value>,
    },
    Event(BackendEvent),
    /// `lifecycle` (enable/connect: true; disable: false).
    Lifecycle {
        online: bool,
    },
    Heartbeat {
        interval_ms: Option<u64>,
        online: Option<bool>,
    },
    /// Not for bots: an unknown post type, a message the account itself sent, …
    Ignored,
}

fn req(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(int)
}

fn user_of(v: &Value, key: &str) -> Option<UserId> {
    req(v, key).map(UserId)
}

fn group_of(v: &Value, key: &str) -> Option<GroupId> {
    req(v, key).map(GroupId)
}

fn message_of(v: &Value, key: &str) -> Option<UpstreamMsgId> {
    req(v, key).map(UpstreamMsgId)
}

/// Maps one event frame (it has `post_type`). `None`: a required field is
/// missing or malformed.
pub fn event(v: &Value, self_id: AccountId) -> Option<Upstream> {
    let kind = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let time = req(v, "time").unwrap_or(0);
    let up = match kind("post_type") {
        "message" => {
            let scene = match (kind("message_type"), kind("sub_type")) {
                ("group", _) => Scene::Group { group: group_of(v, "group_id")? },
                // A temp chat names its group; without one it can only be answered privately.
                ("private", "group") => match group_of(v, "group_id") {
                    Some(group) => Scene::Temp { group },
                    None => Scene::Friend,
                },
                ("private", _) => Scene::Friend,
                _ => return Some(Upstream::Ignored),
            };
            let mut sender = v.get("sender").cloned().unwrap_or(json!({}));
            let user_id = user_of(v, "user_id")?;
            if let Some(obj) = sender.as_object_mut() {
                obj.insert("user_id".into(), json!(user_id));
            }
            Upstream::Message {
                scene,
                sender,
                message_id: message_of(v, "message_id")?,
                time,
                segments: segments(v.get("message")?),
                anonymous: v.get("anonymous").filter(|a| a.is_object()).cloned(),
            }
        }
        "message_sent" => Upstream::Ignored,
        "notice" => notice(v, self_id)?,
        "request" => request(v)?,
        "meta_event" => match kind("meta_event_type") {
            "lifecycle" => Upstream::Lifecycle { online: kind("sub_type") != "disable" },
            "heartbeat" => Upstream::Heartbeat {
                interval_ms: req(v, "interval").and_then(|i| u64::try_from(i).ok()),
                online: v.pointer("/status/online").and_then(Value::as_bool),
            },
            _ => Upstream::Ignored,
        },
        _ => Upstream::Ignored,
    };
    Some(up)
}

fn group_event(event: GroupEvent) -> Upstream {
    Upstream::Event(BackendEvent::group(event))
}

/// A group event about message `message_id` of `group` (its source ID is the bridge's to fill in).
fn group_event_about(event: GroupEvent, group: GroupId, message_id: UpstreamMsgId) -> Upstream {
    Upstream::Event(BackendEvent::Group {
        event,
        request_token: None,
        about: Some((Target::Group { group }, message_id)),
    })
}

/// What makes an upstream frame the same as one already handled: for a
/// message its scene, ID, sender and time (IDs repeat across scenes); for a
/// request its flag; for a notice all of it (a repeat after a reconnect is
/// the same frame). Hashed, so remembering one costs a few bytes. None for
/// frames that are never repeats (heartbeats, lifecycle).
pub fn identity(v: &Value) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let field = |k: &str| str_of(v.get(k));
    let key = match v.get("post_type").and_then(Value::as_str)? {
        "message" | "message_sent" => format!(
            "m:{}:{}:{}:{}:{}:{}",
            field("message_type"),
            field("sub_type"),
            field("message_id"),
            field("user_id"),
            field("group_id"),
            field("time"),
        ),
        "request" => format!("r:{}:{}", field("request_type"), field("flag")),
        "notice" => format!("n:{v}"),
        _ => return None,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    Some(hasher.finish())
}

fn user_event(event: UserEvent) -> Upstream {
    Upstream::Event(BackendEvent::User { event, request_token: None })
}

fn notice(v: &Value, self_id: AccountId) -> Option<Upstream> {
    let sub = v.get("sub_type").and_then(Value::as_str).unwrap_or_default();
    let user = user_of(v, "user_id");
    // The account appears in notices as a user.
    let me = Some(self_id.as_user());
    Some(match v.get("notice_type").and_then(Value::as_str).unwrap_or_default() {
        "group_recall" => {
            let group = group_of(v, "group_id")?;
            Upstream::Event(BackendEvent::Recall {
                target: Target::Group { group },
                backend_id: message_of(v, "message_id")?,
                revoker: user_of(v, "operator_id").or(user)?,
                revokee: user?,
            })
        }
        "friend_recall" => {
            let friend = user?;
            Upstream::Event(BackendEvent::Recall {
                target: Target::Friend { friend },
                backend_id: message_of(v, "message_id")?,
                revoker: friend,
                revokee: friend,
            })
        }
        "group_ban" => group_event(GroupEvent::Mute {
            who: user.unwrap_or_default(),
            group: group_of(v, "group_id")?,
            operator: user_of(v, "operator_id").unwrap_or_default(),
            duration: if sub == "lift_ban" { 0 } else { req(v, "duration").unwrap_or(0) },
        }),
        "group_admin" => {
            group_event(GroupEvent::Admin { who: user?, group: group_of(v, "group_id")?, status: sub == "set" })
        }
        "group_increase" if user == me => user_event(UserEvent::GroupJoined { which: group_of(v, "group_id")? }),
        "group_increase" => group_event(GroupEvent::MemberJoined { who: user?, group: group_of(v, "group_id")? }),
        "group_decrease" if sub == "kick_me" || user == me => user_event(UserEvent::GroupLeft {
            which: group_of(v, "group_id")?,
            operator: user_of(v, "operator_id").unwrap_or_default(),
        }),
        "group_decrease" => group_event(GroupEvent::MemberLeft {
            who: user?,
            group: group_of(v, "group_id")?,
            // "leave": the member left by themself.
            operator: if sub == "leave" { user? } else { user_of(v, "operator_id").unwrap_or_default() },
        }),
        "friend_add" => user_event(UserEvent::FriendAdded { who: user?, nick: String::new() }),
        // Extensions (NapCat, Lagrange, go-cqhttp).
        "notify" => match (sub, group_of(v, "group_id")) {
            ("poke", Some(group)) => {
                group_event(GroupEvent::Poke { from: user?, target: user_of(v, "target_id")?, group })
            }
            ("poke", None) => user_event(UserEvent::Poke {
                from: user_of(v, "sender_id").or(user)?,
                target: user_of(v, "target_id")?,
            }),
            ("honor", Some(group)) => {
                group_event(GroupEvent::Honor { who: user?, group, honor: str_of(v.get("honor_type")) })
            }
            ("title", Some(group)) => {
                group_event(GroupEvent::Title { who: user?, group, title: str_of(v.get("title")) })
            }
            _ => Upstream::Ignored,
        },
        // NapCat: `likes` lists the emoji, `is_add` (absent in older versions: an add).
        "group_msg_emoji_like" => {
            let group = group_of(v, "group_id")?;
            let like = v.get("likes").and_then(Value::as_array).and_then(|l| l.first())?;
            let event = GroupEvent::Reaction {
                who: user?,
                group,
                message_source: SourceId::default(),
                emoji: str_of(like.get("emoji_id")),
                add: v.get("is_add").and_then(Value::as_bool).unwrap_or(true),
            };
            group_event_about(event, group, message_of(v, "message_id")?)
        }
        // Lagrange: `code` is the emoji, `sub_type` add or remove.
        "reaction" => {
            let group = group_of(v, "group_id")?;
            let event = GroupEvent::Reaction {
                who: user_of(v, "operator_id").or(user)?,
                group,
                message_source: SourceId::default(),
                emoji: str_of(v.get("code")),
                add: sub != "remove",
            };
            group_event_about(event, group, message_of(v, "message_id")?)
        }
        "essence" => {
            let group = group_of(v, "group_id")?;
            let event = GroupEvent::Essence {
                group,
                message_source: SourceId::default(),
                sender: user_of(v, "sender_id").unwrap_or_default(),
                operator: user_of(v, "operator_id").unwrap_or_default(),
                set: sub != "delete",
            };
            group_event_about(event, group, message_of(v, "message_id")?)
        }
        "group_card" => group_event(GroupEvent::MemberCard {
            who: user?,
            group: group_of(v, "group_id")?,
            card: str_of(v.get("card_new")),
            old: str_of(v.get("card_old")),
        }),
        "group_upload" => {
            let file = v.get("file")?;
            group_event(GroupEvent::FileUpload {
                who: user?,
                group: group_of(v, "group_id")?,
                file: GroupFile {
                    id: str_of(file.get("id")),
                    name: str_of(file.get("name")),
                    size: file.get("size").and_then(int).unwrap_or(0),
                },
            })
        }
        _ => Upstream::Ignored,
    })
}

/// Request tokens carry what answering needs: `friend:FLAG`, `add:FLAG`, `invite:FLAG`.
fn request(v: &Value) -> Option<Upstream> {
    let flag = str_of(v.get("flag"));
    let comment = str_of(v.get("comment"));
    let user = user_of(v, "user_id")?;
    Some(match (v.get("request_type")?.as_str()?, v.get("sub_type").and_then(Value::as_str).unwrap_or_default()) {
        ("friend", _) => Upstream::Event(BackendEvent::User {
            event: UserEvent::NewFriendRequest {
                who: user,
                nick: String::new(),
                source: String::new(),
                comment,
                request_id: None,
            },
            request_token: Some(format!("friend:{flag}")),
        }),
        ("group", "invite") => Upstream::Event(BackendEvent::User {
            event: UserEvent::GroupInvite {
                group: group_of(v, "group_id")?,
                group_name: String::new(),
                inviter: user,
                request_id: None,
            },
            request_token: Some(format!("invite:{flag}")),
        }),
        ("group", _) => Upstream::Event(BackendEvent::Group {
            about: None,
            event: GroupEvent::JoinRequest {
                who: user,
                group: group_of(v, "group_id")?,
                comment,
                inviter: user_of(v, "invitor_id").unwrap_or_default(),
                request_id: None,
            },
            request_token: Some(format!("add:{flag}")),
        }),
        _ => Upstream::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cq_strings_with_escapes() {
        let segs = parse_cq(
            "a &#91;b&#93; &amp; c[CQ:at,qq=123][CQ:image,file=x.png,url=http://h/p?a=1&amp;b=2&#44;3]tail[CQ:broken",
        );
        assert_eq!(segs[0], text_segment("a &#91;b&#93; &amp; c"));
        assert_eq!(str_of(segs[0].data.get("text")), "a [b] & c");
        assert_eq!(segs[1].kind, "at");
        assert_eq!(str_of(segs[2].data.get("url")), "http://h/p?a=1&b=2,3");
        assert_eq!(str_of(segs[3].data.get("text")), "tail[CQ:broken");
        let (els, quote) = elements(&parse_cq("[CQ:reply,id=-5]hi [CQ:face,id=14][CQ:mface,emoji_id=abc]"));
        assert_eq!(quote.map(|q| q.backend_id), Some(UpstreamMsgId(-5)));
        assert_eq!(els[0], Element::Plain { msg: "hi ".into() });
        assert_eq!(els[1], Element::Face { id: 14 });
        assert_eq!(els[2], Element::Other { kind: "mface".into(), data: json!({"emoji_id": "abc"}) });
    }

    #[test]
    fn unknown_segments_go_back_out_unchanged() {
        let seg = json!({"type": "markdown", "data": {"content": "**hi**", "n": 3}});
        let (els, _) = elements(&segments(&json!([seg])));
        let out = to_segments(&OutgoingMessage { quote: Some(UpstreamMsgId(-7)), elements: els });
        assert_eq!(out, vec![json!({"type": "reply", "data": {"id": "-7"}}), seg]);
    }
}
