//! A real QQ account through a OneBot v11 implementation (NapCat, Lagrange,
//! LLOneBot) over WebSocket: `forward` (botbridge connects to the
//! implementation's server, reconnecting with exponential backoff) or
//! `reverse` (the implementation connects to botbridge; a new connection
//! replaces the old). Calls are correlated by `echo` and time out; a call cut
//! off by a disconnect fails as `offline` and is never retried, so nothing is
//! sent twice. Events are mapped in order by one task, which may ask upstream
//! for a group's name and the account's own rank (cached).

pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::wire::{Scene, Upstream};
use super::{Backend, BackendEvent, EventSink, IncomingMessage, OutgoingMessage, RequestAnswer, Sender, Sent};
use crate::schema::{
    ErrorCode, FriendModel, GroupEvent, GroupModel, MemberModel, OpError, Permission, Target, UserEvent,
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
    pub id: i64,
    pub mode: Mode,
    pub access_token: Option<String>,
    /// How long a call may take before it fails with `timeout`.
    pub call_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OnebotError {
    #[error("account {id}: cannot listen on {addr}: {source}")]
    Listen { id: i64, addr: String, source: std::io::Error },
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
    groups: Mutex<HashMap<i64, GroupModel>>,
    online: AtomicBool,
    /// When the last heartbeat came, and the interval it promised.
    heartbeat: Mutex<Option<(Instant, Duration)>>,
    events: mpsc::UnboundedSender<Inbound>,
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
        });
        let span = tracing::info_span!("onebot", account = config.id);
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
                tracing::info!(account = config.id, "waiting for the OneBot implementation on ws://{listen}{path}");
                tokio::spawn(inner.clone().reverse(listener, path.clone(), shutdown).instrument(span));
            }
        }
        Ok(Arc::new(Self { inner }))
    }
}

fn offline(message: &str) -> OpError {
    OpError::new(ErrorCode::Offline, message)
}

impl Inner {
    // ── connections ──────────────────────────────────────────────

    async fn forward(self: Arc<Self>, url: String, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let request = match url.as_str().into_client_request() {
                Ok(mut request) => {
                    if let Some(token) = &self.config.access_token
                        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
                    {
                        request.headers_mut().insert(header::AUTHORIZATION, value);
                    }
                    request
                }
                Err(e) => {
                    tracing::error!("bad OneBot url {url}: {e}");
                    return;
                }
            };
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = tokio_tungstenite::connect_async(request) => c,
            };
            match connected {
                Ok((ws, _)) => {
                    tracing::info!("connected to {url}");
                    backoff = MIN_BACKOFF;
                    self.clone().run(ws, shutdown.clone()).await;
                    tracing::warn!("connection to {url} closed");
                }
                Err(e) => tracing::warn!("cannot connect to {url}: {e}; retrying in {backoff:?}"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn reverse(self: Arc<Self>, listener: tokio::net::TcpListener, path: String, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((tcp, peer)) = accepted else { continue };
            let _ = tcp.set_nodelay(true);
            let inner = self.clone();
            let path = path.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let check = |req: &Request, resp: Response| inner.admit(req, &path).map(|()| resp);
                match tokio_tungstenite::accept_hdr_async(tcp, check).await {
                    Ok(ws) => {
                        tracing::info!(%peer, "OneBot implementation connected");
                        inner.run(ws, shutdown).await;
                        tracing::warn!(%peer, "OneBot implementation disconnected");
                    }
                    Err(e) => tracing::warn!(%peer, "refused a connection: {e}"),
                }
            });
        }
    }

    /// The reverse handshake's checks: path, token (`Authorization: Bearer` or
    /// `?access_token=`), and `X-Self-ID` when sent.
    #[allow(clippy::result_large_err)]
    fn admit(&self, req: &Request, path: &str) -> Result<(), ErrorResponse> {
        let refuse = |status: StatusCode, why: &str| {
            let mut r = ErrorResponse::new(Some(why.to_owned()));
            *r.status_mut() = status;
            r
        };
        if req.uri().path() != path {
            return Err(refuse(StatusCode::NOT_FOUND, "no OneBot endpoint here"));
        }
        if let Some(expected) = &self.config.access_token {
            let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let given =
                header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("Token "))).map(str::trim);
            let query = req.uri().query().unwrap_or_default();
            let from_query = query.split('&').find_map(|kv| kv.strip_prefix("access_token="));
            if !given.or(from_query).is_some_and(|g| crate::ws::token_matches(g, expected)) {
                return Err(refuse(StatusCode::UNAUTHORIZED, "bad or missing access token"));
            }
        }
        let self_id = req.headers().get("x-self-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
        if self_id.is_some_and(|id| id != self.config.id) {
            return Err(refuse(StatusCode::FORBIDDEN, "X-Self-ID is another account"));
        }
        Ok(())
    }

    /// Serves one connection until it closes; it replaces any earlier one.
    async fn run<S>(self: Arc<Self>, ws: WebSocketStream<S>, shutdown: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let (out, mut outbox) = mpsc::unbounded_channel::<String>();
        let replaced = self.link.lock().replace(Link { generation, out });
        if replaced.is_some() {
            // Calls sent on the old connection cannot be answered on this one.
            self.pending.lock().clear();
        }
        // The new connection promises its own heartbeat, if any.
        *self.heartbeat.lock() = None;
        self.set_online(true);
        let (mut write, mut read) = ws.split();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = write.send(Message::Close(None)).await;
                    break;
                }
                text = outbox.recv() => match text {
                    Some(text) => if write.send(Message::Text(text.into())).await.is_err() { break },
                    None => break, // replaced by a newer connection
                },
                frame = read.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_frame(text.as_str()),
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => self.on_frame(text),
                        Err(_) => tracing::warn!("ignoring a binary frame that is not UTF-8"),
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let mut link = self.link.lock();
        if link.as_ref().is_some_and(|l| l.generation == generation) {
            *link = None;
            drop(link);
            // Dropping the waiters fails their calls as `offline`.
            self.pending.lock().clear();
            *self.heartbeat.lock() = None;
            self.set_online(false);
        }
    }

    /// Connection up or down: reported through the event task, so the
    /// online/offline event stays in order with the events around it.
    fn set_online(&self, online: bool) {
        let _ = self.events.send(Inbound::Link { online });
    }

    fn on_frame(&self, text: &str) {
        let frame: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return tracing::warn!("ignoring a frame that is not JSON: {e}"),
        };
        if frame.get("post_type").is_some() {
            let _ = self.events.send(Inbound::Frame(frame));
            return;
        }
        let Some(echo) = frame.get("echo").and_then(Value::as_str) else {
            return tracing::debug!("ignoring a frame with neither post_type nor echo");
        };
        let Some(waiter) = self.pending.lock().remove(echo) else {
            return tracing::debug!(echo, "an answer to no pending call (late, after a timeout?)");
        };
        let retcode = frame.get("retcode").and_then(wire::int).unwrap_or(-1);
        let ok = frame.get("status").and_then(Value::as_str).map_or(retcode == 0, |s| s == "ok" || s == "async");
        let result = if ok || retcode == 0 || retcode == 1 {
            Ok(frame.get("data").cloned().unwrap_or(Value::Null))
        } else {
            let why = ["wording", "msg", "message"]
                .iter()
                .find_map(|k| frame.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
                .unwrap_or("no reason given");
            Err(OpError::new(ErrorCode::UpstreamError, format!("OneBot retcode {retcode}: {why}")))
        };
        let _ = waiter.send(result);
    }

    /// Marks the account offline when heartbeats stop coming.
    async fn watch_heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let late = self.heartbeat.lock().is_some_and(|(at, every)| at.elapsed() > every * MISSED_HEARTBEATS);
            if late && self.online.load(Ordering::SeqCst) {
                tracing::warn!("no heartbeat for {MISSED_HEARTBEATS} intervals: offline");
                self.set_online(false);
            }
        }
    }

    // ── calls ───────────────────────────────────────────────────

    async fn call(&self, action: &str, params: Value) -> Result<Value, OpError> {
        let echo = format!("bb{}", self.next_echo.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(echo.clone(), tx);
        let frame = json!({"action": action, "params": params, "echo": echo}).to_string();
        let sent = self.link.lock().as_ref().is_some_and(|l| l.out.send(frame).is_ok());
        if !sent {
            self.pending.lock().remove(&echo);
            return Err(offline("the account is not connected to its OneBot implementation"));
        }
        match tokio::time::timeout(self.config.call_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(offline(&format!(
                "{action}: the connection dropped before an answer; it may or may not have been done"
            ))),
            Err(_) => {
                self.pending.lock().remove(&echo);
                Err(OpError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{action}: no answer within {:?}; it may or may not have been done",
                        self.config.call_timeout
                    ),
                ))
            }
        }
    }

    /// A group's model: cached, else asked for (name, and the account's rank).
    async fn group(&self, group: i64) -> GroupModel {
        if let Some(model) = self.groups.lock().get(&group) {
            return model.clone();
        }
        let info = self.call("get_group_info", json!({"group_id": group})).await;
        let me = self.call("get_group_member_info", json!({"group_id": group, "user_id": self.config.id})).await;
        let name = info.as_ref().ok().and_then(|d| d.get("group_name")).and_then(Value::as_str).unwrap_or_default();
        let rank = me.as_ref().ok().and_then(|d| d.get("role")).and_then(Value::as_str).map(wire::permission);
        let model = GroupModel { id: group, name: name.to_owned(), bot_permission: rank.unwrap_or(Permission::Member) };
        if info.is_ok() && me.is_ok() {
            self.groups.lock().insert(group, model.clone());
        }
        model
    }

    // ── events ──────────────────────────────────────────────────

    /// Maps events in arrival order and hands them to the bridge.
    async fn map_events(self: Arc<Self>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
        let id = self.config.id;
        while let Some(next) = inbound.recv().await {
            let frame = match next {
                Inbound::Frame(frame) => frame,
                Inbound::Link { online } => {
                    self.set_online_now(online);
                    continue;
                }
            };
            let Some(upstream) = wire::event(&frame, id) else {
                tracing::warn!("ignoring an event with missing or malformed fields: {frame}");
                continue;
            };
            let event = match upstream {
                Upstream::Message { scene, sender, message_id, time, segments, anonymous } => {
                    let (elements, quote) = wire::elements(&segments);
                    let user = sender.get("user_id").and_then(wire::int).unwrap_or(0);
                    let friend = || FriendModel {
                        id: user,
                        nick: sender.get("nickname").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    };
                    let (target, group, from) = match scene {
                        Scene::Group { group } => (
                            Target::Group { group },
                            Some(self.group(group).await),
                            Sender::Member(wire::member(&sender)),
                        ),
                        Scene::Friend => (Target::Friend { friend: user }, None, Sender::Friend(friend())),
                        Scene::Temp { group } => {
                            (Target::Temp { group, user }, Some(self.group(group).await), Sender::Friend(friend()))
                        }
                    };
                    BackendEvent::Message(IncomingMessage {
                        target,
                        group,
                        sender: from,
                        backend_id: message_id,
                        time,
                        quote,
                        elements,
                        anonymous,
                    })
                }
                Upstream::Event(event) => {
                    self.update_cache(&event);
                    event
                }
                Upstream::Lifecycle { online } => {
                    self.set_online_now(online);
                    continue;
                }
                Upstream::Heartbeat { interval_ms, online } => {
                    if let Some(ms) = interval_ms.filter(|ms| *ms > 0) {
                        *self.heartbeat.lock() = Some((Instant::now(), Duration::from_millis(ms)));
                    }
                    self.set_online_now(online.unwrap_or(true));
                    continue;
                }
                Upstream::Ignored => continue,
            };
            (self.sink)(id, event);
        }
    }

    /// Emits online/offline when the state changes (event task only).
    fn set_online_now(&self, online: bool) {
        if self.online.swap(online, Ordering::SeqCst) != online {
            let event = if online { UserEvent::Online } else { UserEvent::Offline };
            tracing::info!(online, "account state");
            (self.sink)(self.config.id, BackendEvent::User { event, request_token: None });
        }
    }

    fn update_cache(&self, event: &BackendEvent) {
        let me = self.config.id;
        match event {
            BackendEvent::Group { event: GroupEvent::Admin { who, group, status }, .. } if *who == me => {
                if let Some(g) = self.groups.lock().get_mut(group) {
                    g.bot_permission = if *status { Permission::Administrator } else { Permission::Member };
                }
            }
            BackendEvent::User {
                event: UserEvent::GroupLeft { which, .. } | UserEvent::GroupJoined { which }, ..
            } => {
                self.groups.lock().remove(which);
            }
            _ => {}
        }
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
    fn account(&self) -> i64 {
        self.inner.config.id
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
        let data = self.inner.call(action, params).await?;
        let backend_id = data
            .get("message_id")
            .and_then(wire::int)
            .ok_or_else(|| OpError::new(ErrorCode::UpstreamError, format!("{action}: the answer has no message_id")))?;
        Ok(Sent { backend_id, time: super::unix_now() })
    }

    async fn recall(&self, _target: Target, backend_id: i64) -> Result<(), OpError> {
        self.inner.call("delete_msg", json!({"message_id": backend_id})).await.map(|_| ())
    }

    async fn mute(&self, group: i64, member: i64, seconds: i64) -> Result<(), OpError> {
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
                id: f.get("user_id").and_then(wire::int).unwrap_or(0),
                nick: f.get("nickname").and_then(Value::as_str).unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn groups(&self) -> Result<Vec<GroupModel>, OpError> {
        let data = self.inner.call("get_group_list", json!({})).await?;
        let mut out = Vec::new();
        for g in list(&data) {
            let Some(id) = g.get("group_id").and_then(wire::int) else { continue };
            let mut model = self.inner.group(id).await;
            if let Some(name) = g.get("group_name").and_then(Value::as_str) {
                model.name = name.to_owned();
            }
            out.push(model);
        }
        Ok(out)
    }

    async fn members(&self, group: i64) -> Result<Vec<MemberModel>, OpError> {
        let data = self.inner.call("get_group_member_list", json!({"group_id": group})).await?;
        let members: Vec<MemberModel> = list(&data).iter().map(wire::member).collect();
        if let Some(me) = members.iter().find(|m| m.id == self.inner.config.id)
            && let Some(g) = self.inner.groups.lock().get_mut(&group)
        {
            g.bot_permission = me.permission;
        }
        Ok(members.into_iter().filter(|m| m.id != self.inner.config.id).collect())
    }
}
