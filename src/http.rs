//! The HTTP server beneath `/ws`, the console and `/api`, with what keeps
//! strangers from exhausting or driving it:
//!
//! * a cap on open connections, below the process's descriptor limit; past
//!   it the oldest connection still sending its request is dropped to make
//!   room (so a slowloris crowd cannot lock out a real client), and when none
//!   is, the newcomer gets a 503;
//! * a handshake timeout: a connection that has not sent its whole request
//!   head in time is closed;
//! * accept errors (`EMFILE`) pause the loop briefly instead of spinning;
//! * a guard on every route: a foreign `Origin` (a web page on another site)
//!   and a `Host` that is not ours (DNS rebinding) are refused with 403,
//!   token or not.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Descriptors kept free for everything else (bot files, the state file,
/// OneBot links, the cache).
const FD_RESERVE: usize = 128;
/// How long the accept loop pauses after an accept error.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// Shutdown waits this long for plain HTTP requests in flight.
const DRAIN: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time a connection has to send its request head.
    pub handshake_timeout: Duration,
    /// Most open connections; None: the descriptor limit less a reserve.
    pub max_connections: Option<usize>,
    /// Origins (`scheme://host[:port]`) allowed besides the bridge's own.
    pub allowed_origins: Vec<String>,
    /// `Host` names (`name` or `name:port`) allowed besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_connections: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The soft descriptor limit less the reserve: the most connections that fit.
pub fn connection_budget() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    soft.saturating_sub(FD_RESERVE).max(16)
}

// ── the Origin and Host guard ───────────────────────────────────────

/// Adds the Origin/Host guard to every route of `router`.
pub fn guard(router: Router, config: &HttpConfig) -> Router {
    let rules = Arc::new(config.clone());
    router.layer(axum::middleware::from_fn_with_state(rules, check_origin_and_host))
}

async fn check_origin_and_host(State(rules): State<Arc<HttpConfig>>, request: Request, next: Next) -> Response {
    if let Err(why) = admit(&rules, request.headers()) {
        tracing::warn!(uri = %request.uri(), "refused: {why}");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    next.run(request).await
}

/// Splits `host[:port]` (with `[v6]` brackets) into host and port.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

fn host_allowed(rules: &HttpConfig, authority: &str) -> bool {
    let (host, _) = split_host(authority);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    // An IP literal cannot be a rebound name; localhost never leaves the machine.
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || rules.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(authority))
}

/// The `Host` must be ours; an `Origin`, when sent, must be the page's own
/// (same host and port as `Host`) or listed.
fn admit(rules: &HttpConfig, headers: &HeaderMap) -> Result<(), &'static str> {
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    if let Some(host) = host
        && !host_allowed(rules, host)
    {
        return Err("this Host is not served here (add it to `allowed_hosts`)");
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("null").trim_end_matches('/');
    if rules.allowed_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let same_site = url::Url::parse(origin).ok().is_some_and(|o| {
        let (Some(oh), Some(host)) = (o.host_str(), host) else { return false };
        let (hh, hp) = split_host(host);
        let hh = hh.trim_start_matches('[').trim_end_matches(']');
        let default_port = if o.scheme() == "https" { "443" } else { "80" };
        let oport = o.port().map(|p| p.to_string()).unwrap_or_else(|| default_port.into());
        let oh = oh.trim_start_matches('[').trim_end_matches(']');
        oh.eq_ignore_ascii_case(hh) && oport == hp.unwrap_or(default_port)
    });
    if same_site {
        Ok(())
    } else {
        Err("a page from another origin may not use the bridge (add it to `allowed_origins`)")
    }
}

// ── connections ─────────────────────────────────────────────────────

/// Open connections, and those still sending their request head, oldest first.
#[derive(Default)]
struct Gate {
    open: AtomicUsize,
    next_id: AtomicU64,
    handshaking: Mutex<VecDeque<(u64, CancellationToken)>>,
}

impl Gate {
    /// Drops the oldest connection still in its handshake; false if there is none.
    fn evict_oldest(&self) -> bool {
        match self.handshaking.lock().pop_front() {
            Some((_, cancel)) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn handshake_done(&self, id: u64) -> bool {
        let mut waiting = self.handshaking.lock();
        match waiting.iter().position(|(i, _)| *i == id) {
            Some(at) => {
                waiting.remove(at);
                true
            }
            None => false,
        }
    }
}

/// One connection's place at the gate, held by its socket: released when the
/// socket closes, also after an upgrade to WebSocket.
struct Slot {
    gate: Arc<Gate>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.handshake_done(self.id);
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that holds its `Slot`.
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections\n";

/// Serves `router` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let budget = connection_budget();
    let limit = match config.max_connections {
        Some(n) if n > budget => {
            tracing::warn!(max_connections = n, budget, "max_connections is over the descriptor limit; using {budget}");
            budget
        }
        Some(n) => n,
        None => budget,
    };
    let gate = Arc::new(Gate::default());
    let tracker = TaskTracker::new();
    let mut last_accept_error = None::<tokio::time::Instant>;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: wait for descriptors to free up rather than spin.
                if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                    tracing::warn!("accept error (pausing): {e}");
                    last_accept_error = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        if gate.open.load(Ordering::Acquire) >= limit && !gate.evict_oldest() {
            let _ = tcp.try_write(BUSY);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        gate.open.fetch_add(1, Ordering::AcqRel);
        let id = gate.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        gate.handshaking.lock().push_back((id, cancel.clone()));
        let slot = Slot { gate: gate.clone(), id };
        tracker.spawn(connection(
            Counted { tcp, _slot: slot },
            peer,
            router.clone(),
            gate.clone(),
            id,
            cancel,
            config.handshake_timeout,
            shutdown.clone(),
        ));
    }
    tracker.close();
    let _ = tokio::time::timeout(DRAIN, tracker.wait()).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    io: Counted,
    peer: SocketAddr,
    router: Router,
    gate: Arc<Gate>,
    id: u64,
    evicted: CancellationToken,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        // The request head is in: this connection is no longer a stranger's.
        gate.handshake_done(id);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    // The header timeout runs while hyper waits for a request head: the
    // first one, and the next one on an idle keep-alive connection.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection: {e}");
            }
        }
        _ = evicted.cancelled() => {
            tracing::debug!(%peer, "dropped for a newer connection: the cap was reached");
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, &mut conn).await;
        }
    }
}
