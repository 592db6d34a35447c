//! The wire protocol: every JSON shape that crosses a transport, and nothing else.
//!
//! `docs/protocol.md` describes every shape here, in prose and tables; where
//! the original design documents disagreed, that file records the decision.
//! Transports (`ws`, `wasm`) serialize these types; they never define their own.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::ids::{AccountId, GroupId, ReceiptId, ReplyKey, RequestId, SourceId, UpstreamMsgId, UserId};

/// Version announced in the `hello` frame.
pub const PROTOCOL_VERSION: u32 = 1;

// ───────────────────────────── models ─────────────────────────────

/// A member's or the account's rank in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Member,
    Administrator,
    Owner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendModel {
    pub id: UserId,
    pub nick: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberModel {
    pub id: UserId,
    pub nick: String,
    #[serde(default)]
    pub name_card: String,
    #[serde(default)]
    pub name_card_or_nick: String,
    pub permission: Permission,
    #[serde(default)]
    pub special_title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupModel {
    pub id: GroupId,
    pub name: String,
    pub bot_permission: Permission,
}

// ─────────────────────────── message elements ───────────────────────────

/// The `"type": "Image"` tag of the image nested in a `FlashImage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageTag {
    #[default]
    Image,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedImage {
    #[serde(rename = "type", default)]
    pub tag: ImageTag,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub url: String,
}

/// One element of a message chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum Element {
    /// First element of every received or sent chain; `id` is a registry ID.
    MessageSource {
        id: SourceId,
    },
    /// Text. `Plain` is written; `PlainText` is read too.
    #[serde(alias = "PlainText")]
    Plain {
        msg: String,
    },
    At {
        target: UserId,
        #[serde(default)]
        display: String,
    },
    AtAll,
    Face {
        id: i64,
    },
    /// `url` is a valid URL when received; `file://`, `http(s)://` or `base64:` when sent.
    Image {
        #[serde(default)]
        id: String,
        #[serde(default)]
        url: String,
    },
    FlashImage {
        image: NestedImage,
    },
    Poke {
        poke_type: i64,
        name: String,
    },
    /// Receive only.
    Voice {
        #[serde(default)]
        url: String,
        #[serde(default)]
        filename: String,
    },
    /// A reply to the message whose MessageSource ID is `id`; `to`, `time` and
    /// `text` are filled in when known.
    Quote {
        id: SourceId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    LightApp {
        content: String,
    },
    Service {
        id: i64,
        content: String,
    },
    /// A forwarded message (extension): its nodes, each a message of its own.
    /// Received: expanded from the upstream's `forward` segment (`id` is the
    /// upstream's forward ID). Sent with `SendForward`, not inside a chain.
    Forward {
        #[serde(default)]
        id: String,
        #[serde(default)]
        nodes: Vec<ForwardNode>,
    },
    /// A segment of an upstream kind botbridge has no element for (a OneBot
    /// `mface`, `markdown`, …), kept as it came: `kind` is its type, `data` its
    /// fields. Sent back unchanged to the same kind of upstream.
    Other {
        kind: String,
        data: Value,
    },
}

pub type MessageChain = Vec<Element>;

/// One message of a forwarded message: who said it, under what name, when,
/// and what (a chain without MessageSource or Quote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardNode {
    pub sender: UserId,
    #[serde(default)]
    pub name: String,
    /// Seconds since the epoch; 0 when not known (or, sent: now).
    #[serde(default)]
    pub time: i64,
    pub message: MessageChain,
}

/// A file uploaded to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFile {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub size: i64,
}

/// The plain text of a chain: its `Plain` elements joined.
pub fn chain_text(chain: &[Element]) -> String {
    chain
        .iter()
        .filter_map(|e| match e {
            Element::Plain { msg } => Some(msg.as_str()),
            _ => None,
        })
        .collect()
}

// ───────────────────────────── events ─────────────────────────────

/// A message event, the `data` of a `msg` envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum MessageEvent {
    GroupMessage {
        group: GroupModel,
        sender: MemberModel,
        reply_key: ReplyKey,
        message: MessageChain,
        #[serde(rename = "bot")]
        account: AccountId,
        /// The sender is anonymous.
        #[serde(default, skip_serializing_if = "is_false")]
        anonymous: bool,
    },
    FriendMessage {
        sender: FriendModel,
        message: MessageChain,
        reply_key: ReplyKey,
        #[serde(rename = "bot")]
        account: AccountId,
    },
    /// A private message from a stranger; `group` is where they came from.
    TempMessage {
        group: GroupModel,
        sender: FriendModel,
        message: MessageChain,
        reply_key: ReplyKey,
        #[serde(rename = "bot")]
        account: AccountId,
    },
}

impl MessageEvent {
    pub fn message(&self) -> &MessageChain {
        match self {
            Self::GroupMessage { message, .. }
            | Self::FriendMessage { message, .. }
            | Self::TempMessage { message, .. } => message,
        }
    }
    pub fn reply_key(&self) -> &ReplyKey {
        match self {
            Self::GroupMessage { reply_key, .. }
            | Self::FriendMessage { reply_key, .. }
            | Self::TempMessage { reply_key, .. } => reply_key,
        }
    }
    /// The registry ID of this message (its leading MessageSource).
    pub fn source_id(&self) -> Option<&SourceId> {
        self.message().iter().find_map(|e| match e {
            Element::MessageSource { id } => Some(id),
            _ => None,
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Private,
    Group,
}

/// A recall. `channel` is the group, or the other party in private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeEvent {
    #[serde(rename = "type")]
    pub kind: ChatKind,
    pub revoker: UserId,
    pub revokee: UserId,
    pub channel: i64,
    #[serde(rename = "msgID")]
    pub msg_id: SourceId,
}

/// Events of the account itself. Requests carry a `requestId` to answer them with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum UserEvent {
    Online,
    Offline,
    NewFriendRequest {
        who: UserId,
        #[serde(default)]
        nick: String,
        #[serde(default)]
        source: String,
        #[serde(default)]
        comment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    GroupInvite {
        group: GroupId,
        #[serde(default)]
        group_name: String,
        inviter: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    FriendAdded {
        who: UserId,
        #[serde(default)]
        nick: String,
    },
    FriendRemoved {
        who: UserId,
        #[serde(default)]
        nick: String,
    },
    GroupJoined {
        which: GroupId,
    },
    GroupLeft {
        which: GroupId,
        operator: UserId,
    },
    /// Extension: `from` poked `target` in a private chat (one of them is the account).
    Poke {
        from: UserId,
        target: UserId,
    },
}

/// Events in a group. `who: 0` on `mute` is the whole group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum GroupEvent {
    JoinRequest {
        who: UserId,
        group: GroupId,
        #[serde(default)]
        comment: String,
        #[serde(default)]
        inviter: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// `duration` in seconds; 0 lifts the mute.
    Mute {
        who: UserId,
        group: GroupId,
        operator: UserId,
        duration: i64,
    },
    Admin {
        who: UserId,
        group: GroupId,
        status: bool,
    },
    MemberJoined {
        who: UserId,
        group: GroupId,
    },
    MemberLeft {
        who: UserId,
        group: GroupId,
        operator: UserId,
    },
    /// Extension: `from` poked `target` in the group.
    Poke {
        from: UserId,
        target: UserId,
        group: GroupId,
    },
    /// Extension: `who` added (`add`) or took back an emoji reaction to the
    /// message `messageSource`. `emoji` is the face's ID as the upstream gives it.
    Reaction {
        who: UserId,
        group: GroupId,
        message_source: SourceId,
        emoji: String,
        add: bool,
    },
    /// Extension: `operator` made the message `messageSource` (by `sender`)
    /// an essence message (`set`), or took it back.
    Essence {
        group: GroupId,
        message_source: SourceId,
        sender: UserId,
        operator: UserId,
        set: bool,
    },
    /// Extension: `who`'s group card changed from `old` to `card`.
    MemberCard {
        who: UserId,
        group: GroupId,
        card: String,
        #[serde(default)]
        old: String,
    },
    /// Extension: `who` uploaded a file to the group.
    FileUpload {
        who: UserId,
        group: GroupId,
        file: GroupFile,
    },
    /// Extension: `who` got a group honor (`talkative`, `performer`, `emotion`, …).
    Honor {
        who: UserId,
        group: GroupId,
        honor: String,
    },
    /// Extension: `who` got a special title.
    Title {
        who: UserId,
        group: GroupId,
        title: String,
    },
}

impl GroupEvent {
    /// The message a reaction or essence event is about, whose source ID the
    /// bridge fills in.
    pub fn message_source_mut(&mut self) -> Option<&mut SourceId> {
        match self {
            Self::Reaction { message_source, .. } | Self::Essence { message_source, .. } => Some(message_source),
            _ => None,
        }
    }
}

/// The categories: `{"type": "msg" | "revoke" | "user" | "group", "data": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum Event {
    Msg(MessageEvent),
    Revoke(RevokeEvent),
    User(UserEvent),
    Group(GroupEvent),
}

/// Server → client event envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    #[serde(flatten)]
    pub event: Event,
    pub seq: u64,
    pub time: i64,
    #[serde(rename = "bot")]
    pub account: AccountId,
}

// ───────────────────────────── other server frames ─────────────────────────────

/// The first frame on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    #[serde(rename = "type")]
    pub tag: HelloTag,
    pub protocol: u32,
    /// The last event `seq` so far; resume later with `?since=` this.
    pub seq: u64,
    #[serde(rename = "bots")]
    pub accounts: Vec<AccountId>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HelloTag {
    #[default]
    Hello,
}

/// Sent after `hello` when `?since=` asked for events older than the replay buffer:
/// events `from..=to` are gone; replay continues after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    #[serde(rename = "type")]
    pub tag: GapTag,
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapTag {
    #[default]
    Gap,
}

/// Where a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Target {
    Group { group: GroupId },
    Friend { friend: UserId },
    Temp { group: GroupId, user: UserId },
}

/// The audit frame for every message the bridge sent for anyone (`?outgoing=1`).
/// Its `seq` is the last event `seq` at the time; outgoing frames do not advance it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingFrame {
    #[serde(rename = "type")]
    pub tag: OutgoingTag,
    pub seq: u64,
    pub time: i64,
    #[serde(rename = "bot")]
    pub account: AccountId,
    pub data: Outgoing,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutgoingTag {
    #[default]
    Outgoing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    pub target: Target,
    pub message: MessageChain,
    pub source_id: SourceId,
    /// The wasm bot's name or the client's name.
    pub by: String,
}

/// The answer to one operation; `id` echoes the request's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFrame {
    #[serde(rename = "type")]
    pub tag: ResultTag,
    pub id: Value,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<OpData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OpError>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultTag {
    #[default]
    Result,
}

impl ResultFrame {
    pub fn new(id: Value, outcome: Result<OpData, OpError>) -> Self {
        match outcome {
            Ok(data) => Self { tag: ResultTag::Result, id, ok: true, data: Some(data), error: None },
            Err(err) => Self { tag: ResultTag::Result, id, ok: false, data: None, error: Some(err) },
        }
    }
}

// ───────────────────────────── operations ─────────────────────────────

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyContent {
    /// A `replyKey` from a message event.
    pub id: ReplyKey,
    pub message: MessageChain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendToGroupContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
    pub message: MessageChain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendToFriendContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub friend: UserId,
    pub message: MessageChain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallReceiptContent {
    pub receipt: ReceiptId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecallContent {
    pub message_source: SourceId,
}

/// Mutes `member` in `group`, or the sender of `messageSource` (the way to
/// mute an anonymous sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MuteMemberContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_source: Option<SourceId>,
    /// Seconds; 0 lifts the mute.
    pub time: i64,
}

/// Removes `member` from `group`; `rejectRejoin` refuses their later join requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KickMemberContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
    pub member: UserId,
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject_rejoin: bool,
}

/// Mutes the whole group (`enable`) or lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteAllContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
    pub enable: bool,
}

/// Sets `member`'s group card; an empty card clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMemberCardContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
    pub member: UserId,
    pub card: String,
}

/// Makes `member` an administrator (`enable`) or a plain member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetGroupAdminContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
    pub member: UserId,
    pub enable: bool,
}

/// Pokes `target`: in `group`, or privately without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPokeContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    pub target: UserId,
}

/// A message by its source ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetMessageContent {
    pub message_source: SourceId,
}

/// Sends a forwarded message made of `nodes` to `group` or `friend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendForwardContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friend: Option<UserId>,
    pub nodes: Vec<ForwardNode>,
}

/// Answer to a `newFriendRequest`, `groupInvite` or `joinRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandleRequestContent {
    pub request_id: RequestId,
    pub accept: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMembersContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub group: GroupId,
}

/// Sim only: a simulated user sends a message. `group` alone: a group message;
/// `friend`: a friend's private message; `group` + `temp: true`: a temp message
/// from `sender` (a stranger) by way of that group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMessageContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friend: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<UserId>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub temp: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub anonymous: bool,
    pub message: MessageChain,
}

/// Sim only: any `revoke`, `user` or `group` event, as `{"type": …, "data": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEventContent {
    #[serde(rename = "bot", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub event: Event,
}

/// The one list of operations: generates `Operation` (the wire shape
/// `{"type": NAME, "content": {…}}`), `OpKind` (the operation's name as a type,
/// for permissions and logs) and the decoder's arms.
macro_rules! operations {
    ($( $name:ident($(#[$attr:meta])* $content:ty), )*) => {
        /// Every operation, as `{"type": NAME, "content": {…}}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "content")]
        pub enum Operation {
            $( $name($(#[$attr])* $content), )*
        }

        /// An operation's kind: its name, typed, so a misspelt one cannot load.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum OpKind {
            $( $name, )*
        }

        impl OpKind {
            pub const ALL: &[OpKind] = &[$( OpKind::$name, )*];

            pub fn name(self) -> &'static str {
                match self {
                    $( OpKind::$name => stringify!($name), )*
                }
            }
        }

        impl Operation {
            pub fn kind(&self) -> OpKind {
                match self {
                    $( Self::$name(_) => OpKind::$name, )*
                }
            }

            /// Decodes `content` as operation `name`; None for an unknown name.
            fn decode_content(name: &str, content: &str) -> Option<Result<Operation, serde_json::Error>> {
                Some(match name {
                    $( stringify!($name) => serde_json::from_str(content).map(Operation::$name), )*
                    _ => return None,
                })
            }
        }
    };
}

operations! {
    Reply(ReplyContent),
    SendToGroup(SendToGroupContent),
    SendToFriend(SendToFriendContent),
    RecallReceipt(RecallReceiptContent),
    Recall(RecallContent),
    MuteMember(MuteMemberContent),
    KickMember(KickMemberContent),
    MuteAll(MuteAllContent),
    SetMemberCard(SetMemberCardContent),
    SetGroupAdmin(SetGroupAdminContent),
    SendPoke(SendPokeContent),
    GetMessage(GetMessageContent),
    SendForward(SendForwardContent),
    HandleFriendRequest(HandleRequestContent),
    HandleGroupInvite(HandleRequestContent),
    HandleJoinRequest(HandleRequestContent),
    ListFriends(#[serde(default)] AccountContent),
    ListGroups(#[serde(default)] AccountContent),
    ListMembers(ListMembersContent),
    SimMessage(SimMessageContent),
    SimEvent(SimEventContent),
}

impl Operation {
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A client's request: an operation plus its correlation `id` (string or number).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub op: Operation,
}

/// A request that could not be decoded, with whatever `id` could be read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    pub id: Value,
    pub error: OpError,
}

/// A request frame's outer shape; `content` is parsed once its `type` is known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(borrow, default)]
    content: Option<&'a serde_json::value::RawValue>,
}

impl Request {
    /// Why `text` is not a request: not JSON, not an object, or a bad field.
    fn explain(text: &str, error: String) -> BadRequest {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => BadRequest {
                id: obj.get("id").filter(|id| id.is_string() || id.is_number()).cloned().unwrap_or(Value::Null),
                error: OpError::new(ErrorCode::BadRequest, error),
            },
            Ok(_) => BadRequest {
                id: Value::Null,
                error: OpError::new(ErrorCode::MalformedJson, "a request is a JSON object"),
            },
            Err(e) => {
                BadRequest { id: Value::Null, error: OpError::new(ErrorCode::MalformedJson, format!("not JSON: {e}")) }
            }
        }
    }

    /// Decodes one client text frame. Every failure carries a stable code and the
    /// request's `id` when it had a readable one, so the answer can be correlated.
    pub fn decode(text: &str) -> Result<Request, BadRequest> {
        // serde would also read a struct from an array: only objects are requests.
        if !text.trim_start().starts_with('{') {
            return Err(Self::explain(text, "a request is a JSON object".into()));
        }
        let raw: RawRequest = serde_json::from_str(text).map_err(|e| Self::explain(text, e.to_string()))?;
        let id = raw.id.unwrap_or(Value::Null);
        let bad = |code, message: String| BadRequest { id: id.clone(), error: OpError::new(code, message) };
        if !matches!(id, Value::String(_) | Value::Number(_)) {
            return Err(BadRequest {
                id: Value::Null,
                error: OpError::new(ErrorCode::BadRequest, "`id` must be a string or a number"),
            });
        }
        let name = match raw.kind {
            Some(Value::String(name)) => name,
            Some(_) => return Err(bad(ErrorCode::BadRequest, "`type` must be a string".into())),
            None => return Err(bad(ErrorCode::BadRequest, "missing field `type`".into())),
        };
        let content = raw.content.map(|c| c.get()).unwrap_or("{}");
        if !content.trim_start().starts_with('{') {
            return Err(bad(ErrorCode::BadRequest, "`content` must be an object".into()));
        }
        let Some(op) = Operation::decode_content(&name, content) else {
            return Err(bad(ErrorCode::UnknownType, format!("unknown operation type `{name}`")));
        };
        op.map(|op| Request { id: id.clone(), op }).map_err(|e| bad(ErrorCode::BadRequest, format!("{name}: {e}")))
    }
}

/// What a successful operation returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpData {
    #[serde(rename_all = "camelCase")]
    Sent {
        receipt_id: ReceiptId,
        source_id: SourceId,
    },
    /// The `seq` of the event a Sim operation caused.
    Caused {
        seq: u64,
    },
    Friends {
        friends: Vec<FriendModel>,
    },
    Groups {
        groups: Vec<GroupModel>,
    },
    Members {
        members: Vec<MemberModel>,
    },
    /// `GetMessage`'s answer.
    Message {
        message: FetchedMessage,
    },
    /// Recall, mute and request answers return an empty object.
    Done {},
}

/// A message fetched by its source ID (`GetMessage`): where and when it was
/// said, by whom, and its chain (MessageSource first, then its Quote if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchedMessage {
    pub target: Target,
    pub sender: UserId,
    #[serde(default)]
    pub sender_name: String,
    pub time: i64,
    pub message: MessageChain,
}

/// The one list of error codes: the Rust variant and its wire name. The WIT
/// enum's cases are the same names in kebab case, and `wasm::convert` maps
/// them through this list too, so a code missing from either side cannot compile.
macro_rules! for_each_error_code {
    ($m:ident) => {
        $m! {
            MalformedJson = "malformed_json",
            BadRequest = "bad_request",
            UnknownType = "unknown_type",
            UnknownBot = "unknown_bot",
            AmbiguousBot = "ambiguous_bot",
            UnknownReplyKey = "unknown_reply_key",
            ExpiredReplyKey = "expired_reply_key",
            UnknownMessage = "unknown_message",
            ExpiredMessage = "expired_message",
            UnknownReceipt = "unknown_receipt",
            ExpiredReceipt = "expired_receipt",
            UnknownRequest = "unknown_request",
            ExpiredRequest = "expired_request",
            AlreadyHandled = "already_handled",
            AlreadyRecalled = "already_recalled",
            NotInGroup = "not_in_group",
            NotFriend = "not_friend",
            UnknownMember = "unknown_member",
            PermissionDenied = "permission_denied",
            Muted = "muted",
            BadMessage = "bad_message",
            Unsupported = "unsupported",
            Forbidden = "forbidden",
            RateLimited = "rate_limited",
            Offline = "offline",
            Timeout = "timeout",
            UpstreamError = "upstream_error",
            Internal = "internal",
        }
    };
}

macro_rules! define_error_code {
    ($( $name:ident = $wire:literal, )*) => {
        /// Stable error codes, shared by the WebSocket protocol and the WIT world.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $( #[serde(rename = $wire)] $name, )*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$( ErrorCode::$name, )*];

            /// The wire name, e.g. `unknown_reply_key`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$name => $wire, )*
                }
            }
        }
    };
}

for_each_error_code!(define_error_code);
pub(crate) use for_each_error_code;

/// A failed operation: a stable `code` to match on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct OpError {
    pub code: ErrorCode,
    pub message: String,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}
