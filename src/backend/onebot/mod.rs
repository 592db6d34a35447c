//! A real QQ account through a OneBot v11 implementation (NapCat, Lagrange,
//! LLOneBot) over WebSocket: `forward` (botbridge connects to the
//! implementation's server, reconnecting with exponential backoff) or
//! `reverse` (the implementation connects to botbridge; a new connection
//! replaces the old). Calls are correlated by `echo` and time out; a call cut
//! off by a disconnect fails as `offline` and is never retried, so nothing is
//! sent twice. Events are mapped in order by one task, which may ask upstream
//! for a group's name and the account's own rank (cached).
//!
//! One job per file: `link` (connections), `rpc` (calls and their answers),
//! `heartbeat`, `events` (upstream events → backend events), `wire` (the
//! OneBot JSON), and here the account's state and its `Backend` actions.

mod events;
mod heartbeat;
mod link;
mod rpc;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Backend, EventSink, FetchedMessage, OutgoingMessage, RequestAnswer, Sent};
use crate::schema::{
    AccountId, ErrorCode, ForwardNode, FriendModel, GroupId, GroupModel, MemberModel, OpError, Target, UpstreamMsgId,
    UserId,
};

/// How one account reaches its OneBot implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// botbridge connects to `url`.
    Forward { url: String },
    /// The implementation connects to `listen` at `path`.
    Reverse { listen: String, path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnebotConfig {
    /// The account's QQ number (`self_id`).
    pub id: AccountId,
    pub mode: Mode,
    pub access_token: Option<String>,
    /// How long a call may take before it fails with `timeout`.
    pub call_timeout: Duration,
    /// A frame that repeats one handled this long ago or less is dropped.
    pub dedup_window: Duration,
}

/// The default `dedup_window_ms`: a minute covers a reconnect's repeats.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(60);
/// Frames remembered for de-duplication, at most.
const SEEN_KEPT: usize = 16_384;
/// Anonymous messages whose flag is kept for muting their sender.
const ANONYMOUS_KEPT: usize = 4096;

/// The identities of recent upstream frames, oldest first.
#[derive(Default)]
struct Seen {
    order: std::collections::VecDeque<(Instant, u64)>,
    keys: std::collections::HashSet<u64>,
}

impl Seen {
    /// Whether `key` was seen within `window`; remembers it if not.
    fn repeated(&mut self, key: u64, window: Duration) -> bool {
        let now = Instant::now();
        while let Some(&(at, old)) = self.order.front() {
            if now.duration_since(at) <= window && self.order.len() < SEEN_KEPT {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&old);
        }
        if !self.keys.insert(key) {
            return true;
        }
        self.order.push_back((now, key));
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OnebotError {
    #[error("account {id}: cannot listen on {addr}")]
    Listen { id: AccountId, addr: String, source: std::io::Error },
}

/// First reconnect delay in forward mode; doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What the event task maps, in arrival order: upstream frames, and the link
/// going up or down (out of band, so no upstream frame can pose as it).
enum Inbound {
    Frame(Value),
    Link { online: bool },
}
/// Heartbeats missed before the account counts as offline.
const MISSED_HEARTBEATS: u32 = 3;

pub struct OnebotBackend {
    inner: Arc<Inner>,
}

struct Link {
    generation: u64,
    out: mpsc::UnboundedSender<String>,
}

struct Inner {
    config: OnebotConfig,
    sink: EventSink,
    link: Mutex<Option<Link>>,
    generations: AtomicU64,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, OpError>>>>,
    next_echo: AtomicU64,
    /// Group models: name and the account's own rank.
    groups: Mutex<HashMap<GroupId, GroupModel>>,
    online: AtomicBool,
    /// When the last heartbeat came, and the interval it promised.
    heartbeat: Mutex<Option<(Instant, Duration)>>,
    events: mpsc::UnboundedSender<Inbound>,
    seen: Mutex<Seen>,
    /// Repeated frames dropped.
    duplicates: AtomicU64,
    /// Recent anonymous messages' flags, oldest first.
    anonymous: Mutex<std::collections::VecDeque<(UpstreamMsgId, String)>>,
}

impl OnebotBackend {
    /// Starts the account's connection (forward) or listener (reverse).
    pub async fn start(
        config: OnebotConfig,
        sink: EventSink,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, OnebotError> {
        let (events, events_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            config: config.clone(),
            sink,
            link: Mutex::new(None),
            generations: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            next_echo: AtomicU64::new(0),
            groups: Mutex::new(HashMap::new()),
            online: AtomicBool::new(false),
            heartbeat: Mutex::new(None),
            events,
            seen: Mutex::new(Seen::default()),
            duplicates: AtomicU64::new(0),
            anonymous: Mutex::new(std::collections::VecDeque::new()),
        });
        let span = tracing::info_span!("onebot", account = config.id.0);
        tokio::spawn(inner.clone().map_events(events_rx).instrument(span.clone()));
        tokio::spawn(inner.clone().watch_heartbeat(shutdown.clone()).instrument(span.clone()));
        match &config.mode {
            Mode::Forward { url } => {
                tokio::spawn(inner.clone().forward(url.clone(), shutdown).instrument(span));
            }
            Mode::Reverse { listen, path } => {
                let listener = tokio::net::TcpListener::bind(listen).await.map_err(|source| OnebotError::Listen {
                    id: config.id,
                    addr: listen.clone(),
                    source,
                })?;
                tracing::info!(account = %config.id, "waiting for the OneBot implementation on ws://{listen}{path}");
                tokio::spawn(inner.clone().reverse(listener, path.clone(), shutdown).instrument(span));
            }
        }
        Ok(Arc::new(Self { inner }))
    }
}

impl Inner {
    /// A send action; its answer's `message_id` is the sent message's.
    async fn send(&self, action: &str, params: Value) -> Result<Sent, OpError> {
        let data = self.call(action, params).await?;
        let backend_id = data
            .get("message_id")
            .and_then(wire::int)
            .ok_or_else(|| OpError::new(ErrorCode::UpstreamError, format!("{action}: the answer has no message_id")))?;
        Ok(Sent { backend_id: UpstreamMsgId(backend_id), time: super::unix_now() })
    }
}

fn list(data: &Value) -> &[Value] {
    data.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A request token, `KIND:FLAG`, checked against the kind being answered.
fn flag<'a>(answer: &'a RequestAnswer, kind: &str) -> Result<&'a str, OpError> {
    answer
        .token
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(|| OpError::new(ErrorCode::UnknownRequest, "not a request of this kind"))
}

#[async_trait]
impl Backend for OnebotBackend {
    fn account(&self) -> AccountId {
        self.inner.config.id
    }

    fn online(&self) -> bool {
        self.inner.online.load(std::sync::atomic::Ordering::Acquire)
    }

    fn duplicates(&self) -> u64 {
        self.inner.duplicates.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn send(&self, target: Target, message: OutgoingMessage) -> Result<Sent, OpError> {
        let segments = wire::to_segments(&message);
        let (action, params) = match target {
            Target::Group { group } => ("send_group_msg", json!({"group_id": group, "message": segments})),
            Target::Friend { friend } => ("send_private_msg", json!({"user_id": friend, "message": segments})),
            Target::Temp { group, user } => {
                ("send_private_msg", json!({"user_id": user, "group_id": group, "message": segments}))
            }
        };
        self.inner.send(action, params).await
    }

    async fn send_forward(&self, target: Target, nodes: Vec<ForwardNode>) -> Result<Sent, OpError> {
        let messages = wire::to_nodes(&nodes);
        let (action, params) = match target {
            Target::Group { group } => ("send_group_forward_msg", json!({"group_id": group, "messages": messages})),
            Target::Friend { friend } | Target::Temp { user: friend, .. } => {
                ("send_private_forward_msg", json!({"user_id": friend, "messages": messages}))
            }
        };
        self.inner.send(action, params).await
    }

    async fn get_message(&self, _target: Target, backend_id: UpstreamMsgId) -> Result<FetchedMessage, OpError> {
        let data = self.inner.call("get_msg", json!({"message_id": backend_id})).await?;
        let sender = data.get("sender").cloned().unwrap_or(Value::Null);
        let (mut elements, quote) = wire::elements(&wire::segments(data.get("message").unwrap_or(&Value::Null)));
        self.inner.expand_forwards(&mut elements).await;
        let card = sender.get("card").and_then(Value::as_str).filter(|c| !c.is_empty());
        Ok(FetchedMessage {
            sender: UserId(sender.get("user_id").and_then(wire::int).unwrap_or(0)),
            sender_name: card.or(sender.get("nickname").and_then(Value::as_str)).unwrap_or_default().to_owned(),
            time: data.get("time").and_then(wire::int).unwrap_or(0),
            quote,
            elements,
        })
    }

    async fn mute_sender(
        &self,
        group: GroupId,
        backend_id: UpstreamMsgId,
        sender: UserId,
        seconds: i64,
    ) -> Result<(), OpError> {
        let flag = self.inner.anonymous.lock().iter().rev().find(|(id, _)| *id == backend_id).map(|(_, f)| f.clone());
        match flag {
            // OneBot names the field `anonymous_flag`; go-cqhttp also reads `flag`.
            Some(flag) => {
                let params = json!({"group_id": group, "anonymous_flag": flag, "flag": flag, "duration": seconds});
                self.inner.call("set_group_anonymous_ban", params).await.map(|_| ())
            }
            None => self.mute(group, sender, seconds).await,
        }
    }

    async fn kick(&self, group: GroupId, member: UserId, reject_rejoin: bool) -> Result<(), OpError> {
        let params = json!({"group_id": group, "user_id": member, "reject_add_request": reject_rejoin});
        self.inner.call("set_group_kick", params).await.map(|_| ())
    }

    async fn mute_all(&self, group: GroupId, enable: bool) -> Result<(), OpError> {
        self.inner.call("set_group_whole_ban", json!({"group_id": group, "enable": enable})).await.map(|_| ())
    }

    async fn set_card(&self, group: GroupId, member: UserId, card: String) -> Result<(), OpError> {
        let params = json!({"group_id": group, "user_id": member, "card": card});
        self.inner.call("set_group_card", params).await.map(|_| ())
    }

    async fn set_admin(&self, group: GroupId, member: UserId, enable: bool) -> Result<(), OpError> {
        let params = json!({"group_id": group, "user_id": member, "enable": enable});
        self.inner.call("set_group_admin", params).await.map(|_| ())
    }

    /// NapCat's and Lagrange's `group_poke` / `friend_poke`.
    async fn poke(&self, group: Option<GroupId>, target: UserId) -> Result<(), OpError> {
        let (action, params) = match group {
            Some(group) => ("group_poke", json!({"group_id": group, "user_id": target})),
            None => ("friend_poke", json!({"user_id": target})),
        };
        self.inner.call(action, params).await.map(|_| ())
    }

    async fn recall(&self, _target: Target, backend_id: UpstreamMsgId) -> Result<(), OpError> {
        self.inner.call("delete_msg", json!({"message_id": backend_id})).await.map(|_| ())
    }

    async fn mute(&self, group: GroupId, member: UserId, seconds: i64) -> Result<(), OpError> {
        self.inner
            .call("set_group_ban", json!({"group_id": group, "user_id": member, "duration": seconds}))
            .await
            .map(|_| ())
    }

    async fn answer_friend_request(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let flag = flag(&answer, "friend")?;
        self.inner.call("set_friend_add_request", json!({"flag": flag, "approve": answer.accept})).await.map(|_| ())
    }

    async fn answer_group_invite(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let flag = flag(&answer, "invite")?;
        let params = json!({"flag": flag, "sub_type": "invite", "type": "invite", "approve": answer.accept, "reason": answer.reason.clone().unwrap_or_default()});
        self.inner.call("set_group_add_request", params).await.map(|_| ())
    }

    async fn answer_join_request(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let flag = flag(&answer, "add")?;
        let params = json!({"flag": flag, "sub_type": "add", "type": "add", "approve": answer.accept, "reason": answer.reason.clone().unwrap_or_default()});
        self.inner.call("set_group_add_request", params).await.map(|_| ())
    }

    async fn friends(&self) -> Result<Vec<FriendModel>, OpError> {
        let data = self.inner.call("get_friend_list", json!({})).await?;
        Ok(list(&data)
            .iter()
            .map(|f| FriendModel {
                id: UserId(f.get("user_id").and_then(wire::int).unwrap_or(0)),
                nick: f.get("nickname").and_then(Value::as_str).unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn groups(&self) -> Result<Vec<GroupModel>, OpError> {
        let data = self.inner.call("get_group_list", json!({})).await?;
        let mut out = Vec::new();
        for g in list(&data) {
            let Some(id) = g.get("group_id").and_then(wire::int) else { continue };
            let mut model = self.inner.group(GroupId(id)).await;
            if let Some(name) = g.get("group_name").and_then(Value::as_str) {
                model.name = name.to_owned();
            }
            out.push(model);
        }
        Ok(out)
    }

    async fn members(&self, group: GroupId) -> Result<Vec<MemberModel>, OpError> {
        let data = self.inner.call("get_group_member_list", json!({"group_id": group})).await?;
        let members: Vec<MemberModel> = list(&data).iter().map(wire::member).collect();
        let me = self.inner.config.id.as_user();
        if let Some(me) = members.iter().find(|m| m.id == me)
            && let Some(g) = self.inner.groups.lock().get_mut(&group)
        {
            g.bot_permission = me.permission;
        }
        Ok(members.into_iter().filter(|m| m.id != me).collect())
    }
}
