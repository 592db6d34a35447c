//! Chat accounts: the trait every account kind implements, and what flows
//! between a backend and the bridge. Backends speak in their own message IDs
//! (`i64`); registry IDs never reach them.

pub mod onebot;
pub mod sim;

use std::sync::Arc;

use async_trait::async_trait;

use crate::schema::{
    AccountId, Element, ErrorCode, ForwardNode, FriendModel, GroupEvent, GroupId, GroupModel, MemberModel, OpError,
    Target, UpstreamMsgId, UserEvent, UserId,
};

/// Who sent an incoming message, as the model its event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Member(MemberModel),
    Friend(FriendModel),
}

impl Sender {
    pub fn id(&self) -> UserId {
        match self {
            Self::Member(m) => m.id,
            Self::Friend(f) => f.id,
        }
    }
}

/// The message a quote points at, in backend terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRef {
    pub backend_id: UpstreamMsgId,
    pub to: Option<UserId>,
    pub time: Option<i64>,
    pub text: Option<String>,
}

/// A message a backend received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub target: Target,
    /// The group model for group and temp messages.
    pub group: Option<GroupModel>,
    pub sender: Sender,
    pub backend_id: UpstreamMsgId,
    pub time: i64,
    pub quote: Option<QuoteRef>,
    /// The content: no MessageSource, no Quote.
    pub elements: Vec<Element>,
    pub anonymous: bool,
}

/// Everything a backend reports. Request events carry the backend's own token
/// for answering; the bridge swaps it for a registry ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    Message(IncomingMessage),
    Recall {
        target: Target,
        backend_id: UpstreamMsgId,
        revoker: UserId,
        revokee: UserId,
    },
    User {
        event: UserEvent,
        request_token: Option<String>,
    },
    /// `about`: the message a reaction or essence event names, in backend terms.
    Group {
        event: GroupEvent,
        request_token: Option<String>,
        about: Option<(Target, UpstreamMsgId)>,
    },
}

impl BackendEvent {
    /// A group event that names no message and answers no request.
    pub fn group(event: GroupEvent) -> Self {
        Self::Group { event, request_token: None, about: None }
    }
}

/// A message fetched from the backend by its ID (`GetMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub sender: UserId,
    pub sender_name: String,
    pub time: i64,
    pub quote: Option<QuoteRef>,
    /// The content: no MessageSource, no Quote.
    pub elements: Vec<Element>,
}

/// A message to send: its content and the backend ID of the message it quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub quote: Option<UpstreamMsgId>,
    /// No MessageSource, no Quote, no Voice.
    pub elements: Vec<Element>,
}

/// A message a backend sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub backend_id: UpstreamMsgId,
    pub time: i64,
}

/// A simulated user's action, resolved to backend terms (sim backend only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulated {
    Message {
        target: Target,
        sender: UserId,
        anonymous: bool,
        quote: Option<UpstreamMsgId>,
        elements: Vec<Element>,
    },
    Recall {
        target: Target,
        backend_id: UpstreamMsgId,
        revoker: UserId,
    },
    User(UserEvent),
    /// `about`: the message a reaction or essence event names.
    Group {
        event: GroupEvent,
        about: Option<UpstreamMsgId>,
    },
}

fn unsupported(op: &str) -> OpError {
    OpError::new(ErrorCode::Unsupported, format!("this account's backend has no {op}"))
}

/// Seconds since the Unix epoch: the `time` of what a backend sends.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Where a backend reports events. Returns the `seq` each event got.
pub type EventSink = Arc<dyn Fn(AccountId, BackendEvent) -> u64 + Send + Sync>;

/// A request to answer, in backend terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAnswer {
    pub token: String,
    pub accept: bool,
    pub reason: Option<String>,
}

/// One chat account. Failures are `OpError`s with stable codes; an upstream
/// failure is an error, never a hang.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The account's own QQ number (`bot` on the wire).
    fn account(&self) -> AccountId;

    /// Whether the account's upstream is connected (the sim world always is).
    fn online(&self) -> bool {
        true
    }

    /// Upstream frames dropped as repeats of ones already handled.
    fn duplicates(&self) -> u64 {
        0
    }

    async fn send(&self, target: Target, message: OutgoingMessage) -> Result<Sent, OpError>;

    /// Recalls message `backend_id` in `target`.
    async fn recall(&self, target: Target, backend_id: UpstreamMsgId) -> Result<(), OpError>;

    /// Mutes `member` for `seconds` (0 lifts it).
    async fn mute(&self, group: GroupId, member: UserId, seconds: i64) -> Result<(), OpError>;

    /// Mutes the sender of message `backend_id` in `group`: `sender`, or for
    /// an anonymous message, whoever hides behind it.
    async fn mute_sender(
        &self,
        group: GroupId,
        _backend_id: UpstreamMsgId,
        sender: UserId,
        seconds: i64,
    ) -> Result<(), OpError> {
        self.mute(group, sender, seconds).await
    }

    async fn kick(&self, _group: GroupId, _member: UserId, _reject_rejoin: bool) -> Result<(), OpError> {
        Err(unsupported("KickMember"))
    }

    async fn mute_all(&self, _group: GroupId, _enable: bool) -> Result<(), OpError> {
        Err(unsupported("MuteAll"))
    }

    async fn set_card(&self, _group: GroupId, _member: UserId, _card: String) -> Result<(), OpError> {
        Err(unsupported("SetMemberCard"))
    }

    async fn set_admin(&self, _group: GroupId, _member: UserId, _enable: bool) -> Result<(), OpError> {
        Err(unsupported("SetGroupAdmin"))
    }

    /// Pokes `target` in `group`, or privately.
    async fn poke(&self, _group: Option<GroupId>, _target: UserId) -> Result<(), OpError> {
        Err(unsupported("SendPoke"))
    }

    /// Message `backend_id` of `target`, as the upstream still has it.
    async fn get_message(&self, _target: Target, _backend_id: UpstreamMsgId) -> Result<FetchedMessage, OpError> {
        Err(unsupported("GetMessage"))
    }

    /// Sends a forwarded message; node chains hold content elements only.
    async fn send_forward(&self, _target: Target, _nodes: Vec<ForwardNode>) -> Result<Sent, OpError> {
        Err(unsupported("SendForward"))
    }

    async fn answer_friend_request(&self, answer: RequestAnswer) -> Result<(), OpError>;
    async fn answer_group_invite(&self, answer: RequestAnswer) -> Result<(), OpError>;
    async fn answer_join_request(&self, answer: RequestAnswer) -> Result<(), OpError>;

    async fn friends(&self) -> Result<Vec<FriendModel>, OpError>;
    async fn groups(&self) -> Result<Vec<GroupModel>, OpError>;
    async fn members(&self, group: GroupId) -> Result<Vec<MemberModel>, OpError>;

    /// Injects simulated traffic; returns the `seq` of the event it caused.
    async fn simulate(&self, _action: Simulated) -> Result<u64, OpError> {
        Err(OpError::new(ErrorCode::Unsupported, "only the sim backend simulates traffic"))
    }
}
