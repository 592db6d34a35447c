//! Chat accounts: the trait every account kind implements, and what flows
//! between a backend and the bridge. Backends speak in their own message IDs
//! (`i64`); registry IDs never reach them.

pub mod onebot;
pub mod sim;

use std::sync::Arc;

use async_trait::async_trait;

use crate::schema::{
    AccountId, Element, ErrorCode, FriendModel, GroupEvent, GroupId, GroupModel, MemberModel, OpError, Target,
    UpstreamMsgId, UserEvent, UserId,
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
    Recall { target: Target, backend_id: UpstreamMsgId, revoker: UserId, revokee: UserId },
    User { event: UserEvent, request_token: Option<String> },
    Group { event: GroupEvent, request_token: Option<String> },
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
    Message { target: Target, sender: UserId, anonymous: bool, quote: Option<UpstreamMsgId>, elements: Vec<Element> },
    Recall { target: Target, backend_id: UpstreamMsgId, revoker: UserId },
    User(UserEvent),
    Group(GroupEvent),
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

    async fn send(&self, target: Target, message: OutgoingMessage) -> Result<Sent, OpError>;

    /// Recalls message `backend_id` in `target`.
    async fn recall(&self, target: Target, backend_id: UpstreamMsgId) -> Result<(), OpError>;

    /// Mutes `member` for `seconds` (0 lifts it).
    async fn mute(&self, group: GroupId, member: UserId, seconds: i64) -> Result<(), OpError>;

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
