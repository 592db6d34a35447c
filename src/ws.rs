//! The WebSocket server at `/ws`: auth at the handshake, the `hello` frame,
//! `since` replay, live events (written in batches: feed, then one flush per
//! drained batch), operations answered with `result` frames, keepalive pings,
//! and the frame size limit. The connection loop is generic over any
//! `Sink + Stream` of messages, so it knows nothing of the socket beneath it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{Auth, Who};
use crate::bridge::{Bridge, Caller};
use crate::bus::{Frame, Json, Subscription};
use crate::schema::{
    BadRequest, ErrorCode, Gap, GapTag, Hello, HelloTag, OpData, OpError, Operation, PROTOCOL_VERSION, Request,
    ResultFrame,
};

/// Close code for a client whose queue overflowed: reconnect with `?since=`.
pub const CLOSE_LAGGED: u16 = 4008;
/// Close code for a client that stopped answering pings.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code for an oversize frame (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a text frame that is not UTF-8 (RFC 6455 "invalid frame payload data").
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code for a protocol violation (a bad opcode, an unmasked frame, …).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a client whose token was revoked or whose scope changed.
pub const CLOSE_REVOKED: u16 = 4003;
/// Close code when the bridge shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Frames written per flush at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub struct WsConfig {
    /// The unrestricted client token, if any (scoped ones are in `auth::Tokens`).
    pub token: Option<String>,
    /// Largest accepted client frame, bytes.
    pub max_frame: usize,
    /// How often to ping; a client silent for three intervals is closed.
    pub ping_interval: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self { token: None, max_frame: 1 << 20, ping_interval: Duration::from_secs(20) }
    }
}

#[derive(Clone)]
struct AppState {
    bridge: Arc<Bridge>,
    auth: Arc<Auth>,
    config: Arc<WsConfig>,
    shutdown: CancellationToken,
    clients: Arc<AtomicU64>,
}

/// The HTTP routes: `/ws`.
pub fn router(bridge: Arc<Bridge>, auth: Arc<Auth>, config: WsConfig, shutdown: CancellationToken) -> Router {
    let state = AppState { bridge, auth, config: Arc::new(config), shutdown, clients: Arc::new(AtomicU64::new(0)) };
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let who = match state.auth.identify(&headers, &query) {
        Some(who) if who.may_connect() => who,
        Some(_) => return (StatusCode::UNAUTHORIZED, "the admin token is for the admin API, not /ws").into_response(),
        None => return (StatusCode::UNAUTHORIZED, "bad or missing token").into_response(),
    };
    let since = match query.get("since").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "`since` must be a non-negative integer").into_response(),
    };
    let outgoing = matches!(query.get("outgoing").map(String::as_str), Some("1" | "true"));
    let n = state.clients.fetch_add(1, Ordering::Relaxed) + 1;
    // A scoped client is named by the config, everywhere; others by `?name=`.
    let (name, caller) = match &who {
        Who::Scoped(client) => {
            (format!("{}#{n}", client.name), Caller::scoped(&client.name, Arc::new(client.permissions.clone())))
        }
        _ => {
            let name = match query.get("name") {
                Some(name) if !name.is_empty() && name.len() <= 64 => format!("{name}#{n}"),
                _ => format!("client#{n}"),
            };
            (name.clone(), Caller::unrestricted(name))
        }
    };
    let scoped = match who {
        Who::Scoped(client) => Some(client),
        _ => None,
    };
    let limit = state.config.max_frame;
    ws.max_message_size(limit).max_frame_size(limit).read_buffer_size(READ_BUFFER).on_upgrade(
        move |socket: WebSocket| {
            let span = tracing::info_span!("ws", client = %name);
            async move {
                let revoked = CancellationToken::new();
                if let Some(client) = scoped {
                    tokio::spawn(watch_revocation(
                        state.auth.subscribe(),
                        client,
                        revoked.clone(),
                        state.shutdown.clone(),
                    ));
                }
                let _counted = state.bridge.metrics().ws_connected();
                let sub = state.bridge.bus().subscribe(&name, outgoing, since);
                let session = Session {
                    bridge: state.bridge.clone(),
                    caller,
                    ping_interval: state.config.ping_interval,
                    shutdown: state.shutdown.clone(),
                    revoked: revoked.clone(),
                };
                tracing::info!(?since, outgoing, "connected");
                let end = serve(socket, sub, session).await;
                revoked.cancel();
                tracing::info!(?end, "disconnected");
            }
            .instrument(span)
        },
    )
}

/// Cancels `revoked` once the config no longer lists `client` as it was
/// (its token revoked or its scope changed), or when the connection ends.
async fn watch_revocation(
    mut tokens: tokio::sync::watch::Receiver<Arc<crate::auth::Tokens>>,
    client: Arc<crate::auth::ScopedClient>,
    revoked: CancellationToken,
    shutdown: CancellationToken,
) {
    // A change between the handshake and now counts too.
    if !tokens.borrow_and_update().still_has(&client) {
        revoked.cancel();
        return;
    }
    loop {
        tokio::select! {
            _ = revoked.cancelled() => return,
            _ = shutdown.cancelled() => return,
            changed = tokens.changed() => {
                if changed.is_err() || !tokens.borrow_and_update().still_has(&client) {
                    revoked.cancel();
                    return;
                }
            }
        }
    }
}

/// One connection's context.
pub struct Session {
    pub bridge: Arc<Bridge>,
    pub caller: Caller,
    pub ping_interval: Duration,
    pub shutdown: CancellationToken,
    /// Fires when the client's token is revoked (closed with 4003).
    pub revoked: CancellationToken,
}

/// Why a connection ended.
#[derive(Debug, Clone)]
pub enum End {
    ClientClosed,
    TooBig,
    Lagged {
        last_seq: u64,
    },
    Idle,
    Shutdown,
    /// The client's `[[client]]` entry changed or went away.
    Revoked,
    /// The client broke the WebSocket protocol; closed with `code`.
    Protocol {
        code: u16,
        reason: String,
    },
    /// The socket failed beneath us.
    Transport(Arc<dyn std::error::Error + Send + Sync>),
}

/// How much a connection reads from its socket at a time. tungstenite
/// zero-fills this much of its buffer before every read, including one that
/// finds nothing (its default, 128 KiB, was 4 µs of memset per wake-up: a
/// third of an echo's CPU); 16 KiB still holds about a hundred operations.
pub(crate) const READ_BUFFER: usize = 16 * 1024;

type Pending = Pin<Box<dyn Future<Output = (Value, Result<OpData, OpError>)> + Send>>;

/// A bus frame's JSON as a WebSocket text message, sharing its bytes.
fn ws_text(json: &Json) -> Message {
    // `Json` is a `str`, so the check passes; it is a scan, not a copy.
    Message::Text(Utf8Bytes::try_from(json.to_bytes()).unwrap_or_default())
}

fn text<T: serde::Serialize>(value: &T) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(value).unwrap_or_default()))
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason.to_owned()) }))
}

/// Runs one connection until it ends. Generic over the socket so it can run over
/// channels as well as a real WebSocket.
pub async fn serve<S>(mut socket: S, mut sub: Subscription, session: Session) -> End
where
    S: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    let tag = sub.tag();
    let Err(end) = crate::bus::consumed_by(tag, run(&mut socket, &mut sub, &session)).await;
    let goodbye = match &end {
        End::TooBig => Some(close(CLOSE_TOO_BIG, "frame too large")),
        End::Lagged { last_seq } => Some(close(CLOSE_LAGGED, &format!("lagged; resume with since={last_seq}"))),
        End::Idle => Some(close(CLOSE_IDLE, "no pong")),
        End::Shutdown => Some(close(CLOSE_GOING_AWAY, "bridge shutting down")),
        End::Revoked => Some(close(CLOSE_REVOKED, "token revoked or scope changed; reconnect")),
        End::Protocol { code, reason } => Some(close(*code, reason)),
        End::ClientClosed | End::Transport(_) => None,
    };
    if let Some(msg) = goodbye {
        // A client that stopped reading cannot take it either: bounded, so the
        // whole close stays within one ping interval.
        let patience = (session.ping_interval / 4).min(Duration::from_secs(2));
        let _ = tokio::time::timeout(patience, socket.send(msg)).await;
    }
    end
}

/// How a read error ends the connection: an oversize frame, a protocol
/// violation (with its close code), or the client going away.
fn read_error(err: axum::Error) -> End {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match err.into_inner().downcast::<WsError>() {
        Ok(e) => match *e {
            WsError::Capacity(_) => End::TooBig,
            WsError::Utf8(_) => End::Protocol { code: CLOSE_INVALID_DATA, reason: "text frame is not UTF-8".into() },
            WsError::Protocol(p) => End::Protocol { code: CLOSE_PROTOCOL_ERROR, reason: p.to_string() },
            other => End::Transport(Arc::new(other)),
        },
        Err(other) => End::Transport(Arc::from(other)),
    }
}

/// One connection's writes, each bounded by a deadline: a client that leaves
/// the socket full for that long is closed as lagging (`since` = the last
/// frame it was sent in full). Frames are fed as they come and flushed once
/// per round of the connection loop.
struct Writer<'a, S> {
    socket: &'a mut S,
    deadline: Duration,
    /// The last event seq whose batch was flushed.
    delivered: u64,
    /// The last event seq fed, flushed or not.
    fed: u64,
    /// Something was fed since the last flush.
    dirty: bool,
}

impl<S> Writer<'_, S>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    async fn feed(&mut self, msg: Message) -> Result<(), End> {
        self.dirty = true;
        let (deadline, delivered) = (self.deadline, self.delivered);
        within(deadline, delivered, self.socket.feed(msg)).await
    }

    async fn flush(&mut self) -> Result<(), End> {
        let (deadline, delivered) = (self.deadline, self.delivered);
        within(deadline, delivered, self.socket.flush()).await?;
        self.dirty = false;
        self.delivered = self.fed;
        Ok(())
    }
}

async fn within(
    deadline: Duration,
    delivered: u64,
    op: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), End> {
    let mut op = std::pin::pin!(op);
    // Most writes finish at once (the socket has room): no timer for those
    // (an echoed message feeds three frames).
    if let Some(done) = op.as_mut().now_or_never() {
        return done.map_err(|e| End::Transport(Arc::new(e)));
    }
    match tokio::time::timeout(deadline, op).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Transport(Arc::new(e))),
        Err(_) => Err(End::Lagged { last_seq: delivered }),
    }
}

/// Where a connection is: what it has pending and when it last heard the client.
struct Conn {
    pending: FuturesUnordered<Pending>,
    last_heard: Instant,
    /// The client injects simulated events: it waits for busy bots.
    injects: bool,
}

impl Conn {
    /// Whether to read more operations: not while this connection's own
    /// results or events are backed up (the client is not keeping up with
    /// what it asked for), so the socket pushes back on the client instead.
    fn may_read(&self, sub: &Subscription) -> bool {
        self.pending.len() < MAX_BATCH && sub.queued() < MAX_BATCH
    }
}

/// The connection loop. Each round waits for one thing (output first: ready
/// results, then bus frames; then input), takes whatever else of the same kind
/// is ready at once, up to `MAX_BATCH` (after bus frames, ready input too, so
/// a busy stream never starves a client's operations), and flushes once.
async fn run<S>(socket: &mut S, sub: &mut Subscription, session: &Session) -> Result<std::convert::Infallible, End>
where
    S: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    let mut ping = tokio::time::interval_at(Instant::now() + session.ping_interval, session.ping_interval);
    let (mut sink, mut stream) = futures::StreamExt::split(socket);
    let delivered = sub.last_seq;
    let mut out =
        Writer { socket: &mut sink, deadline: session.ping_interval / 2, delivered, fed: delivered, dirty: false };
    greet(&mut out, sub, session).await?;
    let mut conn = Conn { pending: FuturesUnordered::new(), last_heard: Instant::now(), injects: false };
    let bus = session.bridge.bus().clone();
    loop {
        if out.dirty {
            out.flush().await?;
        }
        // A client that injects events waits for bots still busy with earlier ones.
        let own_room = conn.may_read(sub);
        let bots_busy = own_room && conn.injects && bus.backlogged();
        tokio::select! {
            biased;
            _ = session.shutdown.cancelled() => return Err(End::Shutdown),
            _ = session.revoked.cancelled() => return Err(End::Revoked),
            Some((id, outcome)) = conn.pending.next(), if !conn.pending.is_empty() => {
                out.feed(text(&ResultFrame::new(id, outcome))).await?;
                for _ in 1..MAX_BATCH {
                    let Some(Some((id, outcome))) = conn.pending.next().now_or_never() else { break };
                    out.feed(text(&ResultFrame::new(id, outcome))).await?;
                }
            }
            frame = sub.recv() => {
                let Some(frame) = frame else {
                    return Err(if sub.lagged() { End::Lagged { last_seq: out.delivered } } else { End::Shutdown });
                };
                on_frames(&mut out, sub, frame).await?;
                // Input gets its turn too, so a busy stream cannot starve a client's operations.
                if own_room && !bots_busy {
                    read_batch(stream.next().now_or_never(), &mut stream, &mut out, &mut conn, sub, session).await?;
                }
            }
            incoming = stream.next(), if own_room && !bots_busy => {
                read_batch(Some(incoming), &mut stream, &mut out, &mut conn, sub, session).await?;
            }
            _ = bus.wait_for_room(), if bots_busy => {}
            _ = ping.tick() => on_tick(&mut out, conn.last_heard, session).await?,
        }
    }
}

/// Client frames: `first` (if one is ready) and whatever else is ready at
/// once, up to `MAX_BATCH`, while the connection may read.
async fn read_batch<S, R>(
    first: Option<Option<Result<Message, axum::Error>>>,
    stream: &mut R,
    out: &mut Writer<'_, S>,
    conn: &mut Conn,
    sub: &Subscription,
    session: &Session,
) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let bus = session.bridge.bus();
    let mut next = first;
    let mut read = 0;
    while let Some(incoming) = next {
        conn.last_heard = Instant::now();
        match incoming {
            None => return Err(End::ClientClosed),
            Some(Err(e)) => return Err(read_error(e)),
            Some(Ok(msg)) => on_message(out, conn, session, msg).await?,
        }
        read += 1;
        // The bots' backlog is looked at every 64 operations: it takes the bus lock.
        let more = read < MAX_BATCH && conn.may_read(sub) && (!conn.injects || read % 64 != 0 || !bus.backlogged());
        next = if more { stream.next().now_or_never() } else { None };
    }
    Ok(())
}

/// `hello`, then a `gap` if `since` was too old, then the replay.
async fn greet<S>(out: &mut Writer<'_, S>, sub: &mut Subscription, session: &Session) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let accounts = session.bridge.accounts();
    out.feed(text(&Hello { tag: HelloTag::Hello, protocol: PROTOCOL_VERSION, seq: sub.last_seq, accounts })).await?;
    if let Some(m) = sub.missed {
        out.feed(text(&Gap { tag: GapTag::Gap, from: m.from, to: m.to })).await?;
    }
    for frame in std::mem::take(&mut sub.replay) {
        out.feed(ws_text(&frame.json)).await?;
    }
    out.flush().await
}

/// A client frame: an operation to run (answered at once when it finishes at
/// once, else when it does), a bad frame to answer, or a control frame.
async fn on_message<S>(out: &mut Writer<'_, S>, conn: &mut Conn, session: &Session, msg: Message) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let request = match msg {
        Message::Text(t) => Request::decode(t.as_str()),
        Message::Binary(_) => Err(BadRequest {
            id: Value::Null,
            error: OpError::new(ErrorCode::MalformedJson, "frames are JSON text, not binary"),
        }),
        Message::Close(_) => return Err(End::ClientClosed),
        // tungstenite queued the pong; the round's flush sends it.
        Message::Ping(_) | Message::Pong(_) => {
            out.dirty = true;
            return Ok(());
        }
    };
    match request {
        Ok(Request { id, op }) => {
            tracing::debug!(op = op.name(), "operation");
            conn.injects |= matches!(op, Operation::SimMessage(_) | Operation::SimEvent(_));
            let bridge = session.bridge.clone();
            let caller = session.caller.clone();
            let mut fut: Pending = Box::pin(async move { (id, bridge.execute(&caller, op).await) });
            // Most operations finish at once: answer without a round through the set.
            match (&mut fut).now_or_never() {
                Some((id, outcome)) => out.feed(text(&ResultFrame::new(id, outcome))).await,
                None => {
                    conn.pending.push(fut);
                    Ok(())
                }
            }
        }
        Err(bad) => out.feed(text(&ResultFrame::new(bad.id, Err(bad.error)))).await,
    }
}

/// Bus frames: this one and what else is queued, up to `MAX_BATCH`.
async fn on_frames<S>(out: &mut Writer<'_, S>, sub: &mut Subscription, first: Arc<Frame>) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    out.fed = first.seq;
    out.feed(ws_text(&first.json)).await?;
    for _ in 1..MAX_BATCH {
        let Some(frame) = sub.try_recv() else { break };
        out.fed = frame.seq;
        out.feed(ws_text(&frame.json)).await?;
    }
    Ok(())
}

/// The ping interval: close a client silent for three of them, else ping it.
async fn on_tick<S>(out: &mut Writer<'_, S>, last_heard: Instant, session: &Session) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    if last_heard.elapsed() > session.ping_interval * 3 {
        return Err(End::Idle);
    }
    out.feed(Message::Ping(Default::default())).await
}
