//! The WebSocket server at `/ws`: auth at the handshake, the `hello` frame,
//! `since` replay, live events (written in batches: feed, then one flush per
//! drained batch), operations answered with `result` frames, keepalive pings,
//! and the frame size limit. The connection loop is generic over any
//! `Sink + Stream` of messages, so it knows nothing of the socket beneath it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bridge::{Bridge, Caller};
use crate::bus::Subscription;
use crate::schema::{
    Gap, GapTag, Hello, HelloTag, OpData, OpError, PROTOCOL_VERSION, Request, ResultFrame,
};

/// Close code for a client whose queue overflowed: reconnect with `?since=`.
pub const CLOSE_LAGGED: u16 = 4008;
/// Close code for a client that stopped answering pings.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code for an oversize frame (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the bridge shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Frames written per flush at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Required token, if any.
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
    config: Arc<WsConfig>,
    shutdown: CancellationToken,
    clients: Arc<AtomicU64>,
}

/// The HTTP routes: `/ws`.
pub fn router(bridge: Arc<Bridge>, config: WsConfig, shutdown: CancellationToken) -> Router {
    let state = AppState { bridge, config: Arc::new(config), shutdown, clients: Arc::new(AtomicU64::new(0)) };
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

/// Compares in constant time (over the longer length).
pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (blake3::hash(given.as_bytes()), blake3::hash(expected.as_bytes()));
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Checks `Authorization: Bearer` or `?token=` against the configured token.
pub fn authorized(expected: Option<&str>, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let Some(expected) = expected else { return true };
    let given = bearer(headers).or(query.get("token").map(String::as_str));
    given.is_some_and(|g| token_matches(g, expected))
}

async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !authorized(state.config.token.as_deref(), &headers, &query) {
        return (StatusCode::UNAUTHORIZED, "bad or missing token").into_response();
    }
    let since = match query.get("since").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "`since` must be a non-negative integer").into_response(),
    };
    let outgoing = matches!(query.get("outgoing").map(String::as_str), Some("1" | "true"));
    let n = state.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let name = match query.get("name") {
        Some(name) if !name.is_empty() && name.len() <= 64 => format!("{name}#{n}"),
        _ => format!("client#{n}"),
    };
    let limit = state.config.max_frame;
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket: WebSocket| {
        let span = tracing::info_span!("ws", client = %name);
        async move {
            let sub = state.bridge.bus().subscribe(&name, outgoing, since);
            let session = Session {
                bridge: state.bridge.clone(),
                caller: Caller::unrestricted(name),
                ping_interval: state.config.ping_interval,
                shutdown: state.shutdown.clone(),
            };
            tracing::info!(?since, outgoing, "connected");
            let end = serve(socket, sub, session).await;
            tracing::info!(?end, "disconnected");
        }
        .instrument(span)
    })
}

/// One connection's context.
pub struct Session {
    pub bridge: Arc<Bridge>,
    pub caller: Caller,
    pub ping_interval: Duration,
    pub shutdown: CancellationToken,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    TooBig,
    Lagged { last_seq: u64 },
    Idle,
    Shutdown,
    Transport(String),
}

type Pending = Pin<Box<dyn Future<Output = (Value, Result<OpData, OpError>)> + Send>>;

fn text<T: serde::Serialize>(value: &T) -> Message {
    Message::Text(Utf8Bytes::from(serde_json::to_string(value).unwrap_or_default()))
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason.to_owned()) }))
}

fn is_capacity_error(err: axum::Error) -> bool {
    matches!(
        err.into_inner().downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
    )
}

/// Runs one connection until it ends. Generic over the socket so it can run over
/// channels as well as a real WebSocket.
pub async fn serve<S>(mut socket: S, mut sub: Subscription, session: Session) -> End
where
    S: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    let end = run(&mut socket, &mut sub, &session).await;
    let goodbye = match &end {
        End::TooBig => Some(close(CLOSE_TOO_BIG, "frame too large")),
        End::Lagged { last_seq } => Some(close(CLOSE_LAGGED, &format!("lagged; resume with since={last_seq}"))),
        End::Idle => Some(close(CLOSE_IDLE, "no pong")),
        End::Shutdown => Some(close(CLOSE_GOING_AWAY, "bridge shutting down")),
        End::ClientClosed | End::Transport(_) => None,
    };
    if let Some(msg) = goodbye {
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.send(msg)).await;
    }
    end
}

async fn run<S>(socket: &mut S, sub: &mut Subscription, session: &Session) -> End
where
    S: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    macro_rules! write {
        ($fut:expr) => {
            if let Err(e) = $fut.await {
                return End::Transport(e.to_string());
            }
        };
    }
    let bots = session.bridge.accounts();
    write!(socket.feed(text(&Hello { tag: HelloTag::Hello, protocol: PROTOCOL_VERSION, seq: sub.last_seq, bots })));
    if let Some(m) = sub.missed {
        write!(socket.feed(text(&Gap { tag: GapTag::Gap, from: m.from, to: m.to })));
    }
    let mut delivered = sub.last_seq;
    for frame in std::mem::take(&mut sub.replay) {
        write!(socket.feed(Message::Text(frame.json.clone())));
    }
    write!(socket.flush());

    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut ping = tokio::time::interval_at(Instant::now() + session.ping_interval, session.ping_interval);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = session.shutdown.cancelled() => return End::Shutdown,
            incoming = socket.next() => {
                last_heard = Instant::now();
                let msg = match incoming {
                    None => return End::ClientClosed,
                    Some(Err(e)) => return if is_capacity_error(e) { End::TooBig } else { End::ClientClosed },
                    Some(Ok(msg)) => msg,
                };
                let request = match msg {
                    Message::Text(t) => Request::decode(t.as_str()),
                    Message::Binary(_) => Err(crate::schema::BadRequest {
                        id: Value::Null,
                        error: OpError::new(crate::schema::ErrorCode::MalformedJson, "frames are JSON text, not binary"),
                    }),
                    Message::Close(_) => return End::ClientClosed,
                    Message::Ping(_) | Message::Pong(_) => {
                        // tungstenite queued the pong; send it.
                        write!(socket.flush());
                        continue;
                    }
                };
                match request {
                    Ok(Request { id, op }) => {
                        tracing::debug!(op = op.name(), "operation");
                        let bridge = session.bridge.clone();
                        let caller = session.caller.clone();
                        let mut fut: Pending = Box::pin(async move { (id, bridge.execute(&caller, op).await) });
                        // Most operations finish at once: answer without a round through the set.
                        match (&mut fut).now_or_never() {
                            Some((id, outcome)) => {
                                write!(socket.send(text(&ResultFrame::new(id, outcome))));
                            }
                            None => pending.push(fut),
                        }
                    }
                    Err(bad) => write!(socket.send(text(&ResultFrame::new(bad.id, Err(bad.error))))),
                }
            }
            Some((id, outcome)) = pending.next(), if !pending.is_empty() => {
                write!(socket.send(text(&ResultFrame::new(id, outcome))));
            }
            frame = sub.recv() => {
                let Some(frame) = frame else {
                    return if sub.lagged() { End::Lagged { last_seq: delivered } } else { End::Shutdown };
                };
                delivered = frame.seq;
                write!(socket.feed(Message::Text(frame.json.clone())));
                let mut n = 1;
                while n < MAX_BATCH {
                    let Some(frame) = sub.try_recv() else { break };
                    delivered = frame.seq;
                    write!(socket.feed(Message::Text(frame.json.clone())));
                    n += 1;
                }
                write!(socket.flush());
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > session.ping_interval * 3 {
                    return End::Idle;
                }
                write!(socket.send(Message::Ping(Default::default())));
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Frames are small and latency matters: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
