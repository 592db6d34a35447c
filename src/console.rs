//! The web dev console at `/`: chat as any simulated member and watch bots
//! answer, with a live bots panel (state, version, reload time, log lines).
//! The page and its assets are embedded in the binary. Chat goes through the
//! ordinary WebSocket protocol at `/ws`; the bots panel reads `/api/bots` and
//! the server-sent events at `/api/bots/events`. Pages and data need the
//! bridge's token (`?token=`) when one is set.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::bridge::Bridge;
use crate::wasm::limits::BotConfig;
use crate::wasm::logbook::{HostUpdate, LogLine};
use crate::wasm::versions::VersionInfo;
use crate::wasm::{RunState, WasmHost};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// How often the panel's counters (events handled) are refreshed when nothing
/// else changed.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct ConsoleState {
    bridge: Arc<Bridge>,
    wasm: WasmHost,
    auth: Arc<Auth>,
    shutdown: CancellationToken,
}

pub fn router(bridge: Arc<Bridge>, wasm: WasmHost, auth: Arc<Auth>, shutdown: CancellationToken) -> Router {
    let state = ConsoleState { bridge, wasm, auth, shutdown };
    Router::new()
        .route("/", get(index))
        .route("/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/api/bots", get(bots))
        .route("/api/bots/events", get(bot_events))
        .route("/api/accounts", get(accounts))
        .with_state(state)
}

type Params = Query<HashMap<String, String>>;

fn refuse() -> Response {
    (StatusCode::UNAUTHORIZED, "bad or missing token: open the console as /?token=TOKEN").into_response()
}

/// The console and the bots list are for the operator: the client token or
/// the admin token (or anyone, when neither is set), not a scoped client.
fn may_watch(state: &ConsoleState, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    state.auth.identify(headers, query).is_some_and(|who| who.may_watch())
}

async fn index(State(state): State<ConsoleState>, Query(query): Params, headers: HeaderMap) -> Response {
    if !may_watch(&state, &headers, &query) {
        return refuse();
    }
    Html(INDEX).into_response()
}

/// A bot's state on the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum PanelState {
    Running,
    Parked,
    /// No version runs: the file was refused.
    Failed,
}

/// One bot as the panel shows it. `failed`: no version runs, because the file
/// was refused (`reason` says why).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct BotView {
    name: String,
    state: PanelState,
    reason: Option<String>,
    version: Option<String>,
    /// Unix time of the last (re)load, milliseconds.
    loaded_at: Option<u64>,
    handled: u64,
    failures: u64,
    restarts: u64,
    last_error: Option<String>,
    /// Why the newest file was refused while an older version runs on.
    rejected: Option<String>,
    /// Log lines dropped for going over the bot's log rate, ever.
    logs_dropped: u64,
    /// The running build's SHA-256 (what `sha256 = "…"` pins).
    sha256: Option<String>,
    /// Its `NAME.toml` as the host read it (secrets by the variable they come from, never their values).
    config: Option<BotConfig>,
    /// Kept versions, oldest first, for rollback.
    versions: Vec<VersionInfo>,
}

fn views(wasm: &WasmHost) -> Vec<BotView> {
    let mut all: Vec<BotView> = wasm
        .statuses()
        .into_iter()
        .map(|s| {
            let (state, reason) = match s.state {
                RunState::Running => (PanelState::Running, None),
                RunState::Parked { reason } => (PanelState::Parked, Some(reason)),
            };
            let logs_dropped = wasm.logbook().dropped(&s.name);
            let versions = wasm.kept_versions(&s.name);
            BotView {
                sha256: Some(s.sha256),
                config: Some(s.config),
                versions,
                name: s.name,
                state,
                reason,
                version: Some(s.version),
                loaded_at: s.loaded_at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64),
                handled: s.handled,
                failures: s.failures,
                restarts: s.restarts,
                last_error: s.last_error,
                rejected: s.rejected,
                logs_dropped,
            }
        })
        .collect();
    for (name, why) in wasm.all_rejected() {
        if !all.iter().any(|b| b.name == name) {
            let logs_dropped = wasm.logbook().dropped(&name);
            all.push(BotView {
                sha256: None,
                config: None,
                versions: wasm.kept_versions(&name),
                name,
                state: PanelState::Failed,
                reason: Some(why.clone()),
                version: None,
                loaded_at: None,
                handled: 0,
                failures: 0,
                restarts: 0,
                last_error: None,
                rejected: Some(why),
                logs_dropped,
            });
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// One account as the panel shows it: online, and its send queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountView {
    account: i64,
    online: bool,
    /// None when the account is not paced.
    pacing: Option<PacingView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct PacingView {
    /// Messages waiting for their turn.
    queued: usize,
    /// How many may wait before `rate_limited`.
    queue: usize,
}

fn account_views(bridge: &Bridge) -> Vec<AccountView> {
    bridge
        .pacer_queues()
        .into_iter()
        .map(|(account, queued)| AccountView {
            account: account.0,
            online: bridge.account_online(account),
            pacing: queued.map(|queued| PacingView { queued, queue: bridge.pacing(account).queue }),
        })
        .collect()
}

async fn accounts(State(state): State<ConsoleState>, Query(query): Params, headers: HeaderMap) -> Response {
    if !may_watch(&state, &headers, &query) {
        return refuse();
    }
    axum::Json(account_views(&state.bridge)).into_response()
}

#[derive(Serialize)]
struct Snapshot {
    bots: Vec<BotView>,
    logs: Vec<LogLine>,
}

async fn bots(State(state): State<ConsoleState>, Query(query): Params, headers: HeaderMap) -> Response {
    if !may_watch(&state, &headers, &query) {
        return refuse();
    }
    let wasm = &state.wasm;
    axum::Json(Snapshot { bots: views(wasm), logs: wasm.logbook().all_recent() }).into_response()
}

fn bots_event(bots: &[BotView]) -> SseEvent {
    SseEvent::default().event("bots").json_data(bots).unwrap_or_else(|_| SseEvent::default().comment("unserialisable"))
}

fn log_event(line: &LogLine) -> SseEvent {
    SseEvent::default().event("log").json_data(line).unwrap_or_else(|_| SseEvent::default().comment("unserialisable"))
}

/// `bots` (the whole list) whenever it changes, and `log` for every new line;
/// first the list and every kept line.
async fn bot_events(State(state): State<ConsoleState>, Query(query): Params, headers: HeaderMap) -> Response {
    if !may_watch(&state, &headers, &query) {
        return refuse();
    }
    Sse::new(updates(state.wasm.clone()).take_until(state.shutdown.cancelled_owned()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn updates(wasm: WasmHost) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    // Subscribe first, so nothing between the snapshot and the feed is lost.
    let feed = wasm.logbook().subscribe();
    let shown = views(&wasm);
    let mut first = vec![bots_event(&shown)];
    first.extend(wasm.logbook().all_recent().iter().map(log_event));
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = futures::stream::unfold((feed, wasm, shown, tick), |(mut feed, wasm, mut shown, mut tick)| async move {
        loop {
            let update = tokio::select! {
                update = feed.recv() => update,
                _ = tick.tick() => Ok(HostUpdate::Status),
            };
            match update {
                Ok(HostUpdate::Log(line)) => return Some((log_event(&line), (feed, wasm, shown, tick))),
                Ok(HostUpdate::Status) | Err(RecvError::Lagged(_)) => {
                    let now = views(&wasm);
                    if now != shown {
                        shown = now;
                        return Some((bots_event(&shown), (feed, wasm, shown, tick)));
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    futures::stream::iter(first).chain(live).map(Ok)
}
