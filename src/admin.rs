//! The admin API: deploy, roll back and remove bots over HTTP. On only when
//! an `admin_token` is configured, and only for that token (the client token
//! may chat and watch, not deploy); the Origin/Host guard of every route
//! applies too.
//!
//! * `PUT /api/bots/NAME`: the component as the body (`application/wasm`), or
//!   `multipart/form-data` with a `wasm` part and optionally a `toml` part
//!   (without one, the bot's `NAME.toml` stays as it is). Checked before the
//!   folder changes; the answer says it runs, or why not.
//! * `DELETE /api/bots/NAME`: removes `NAME.wasm` (its config, kv data and
//!   kept versions stay).
//! * `POST /api/bots/NAME/rollback`: back to the kept version before the
//!   running one, or to `{"version": "…"}`.
//!
//! The list of bots is `GET /api/bots` (the console's, `console.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Auth, Who};
use crate::wasm::{BotStatus, ConfigChange, DeployError, LoadError, WasmHost};

#[derive(Clone)]
struct AdminState {
    wasm: WasmHost,
    auth: Arc<Auth>,
}

/// Room for a component, its config and the multipart framing.
const FRAMING: usize = 64 << 10;

pub fn router(wasm: WasmHost, auth: Arc<Auth>, max_bot_bytes: u64, max_bot_config_bytes: u64) -> Router {
    let limit = usize::try_from(max_bot_bytes.saturating_add(max_bot_config_bytes)).unwrap_or(usize::MAX);
    Router::new()
        .route("/api/bots/{name}", put(deploy).delete(remove))
        .route("/api/bots/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(limit.saturating_add(FRAMING)))
        .with_state(AdminState { wasm, auth })
}

type Params = Query<HashMap<String, String>>;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({"ok": false, "error": message.into()}))
}

/// Only the admin token passes; the others get an answer that says why not.
fn refused(state: &AdminState, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Response> {
    if !state.auth.admin_enabled() {
        return Some(refusal(StatusCode::NOT_FOUND, "the admin API is off: set `admin_token` to turn it on"));
    }
    match state.auth.identify(headers, query) {
        Some(Who::Admin) => None,
        Some(_) => Some(refusal(StatusCode::FORBIDDEN, "this token may not deploy: use the admin token")),
        None => Some(refusal(StatusCode::UNAUTHORIZED, "bad or missing admin token (Authorization: Bearer TOKEN)")),
    }
}

fn deployed(status: &BotStatus) -> Response {
    answer(
        StatusCode::OK,
        json!({"ok": true, "name": status.name, "state": "running", "version": status.version, "sha256": status.sha256}),
    )
}

fn failed(e: &DeployError) -> Response {
    let status = match e {
        DeployError::BadName { .. } => StatusCode::BAD_REQUEST,
        DeployError::Refused(LoadError::File(crate::wasm::folder::FileError::TooBig { .. })) => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        DeployError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DeployError::NoBot { .. } | DeployError::NoVersion { .. } => StatusCode::NOT_FOUND,
        DeployError::NoEarlier { .. } | DeployError::NotKept { .. } => StatusCode::CONFLICT,
        DeployError::Write { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refusal(status, crate::error_chain(e))
}

/// The upload: the body itself, or the `wasm` and `toml` parts of a form.
async fn upload(request: Request) -> Result<(Vec<u8>, ConfigChange), Response> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let too_big = |e: &dyn std::fmt::Display| refusal(StatusCode::PAYLOAD_TOO_LARGE, format!("upload: {e}"));
    if !multipart {
        let body = Bytes::from_request(request, &()).await.map_err(|e| too_big(&e))?;
        return Ok((body.to_vec(), ConfigChange::Keep));
    }
    let bad = |e: &dyn std::fmt::Display| refusal(StatusCode::BAD_REQUEST, format!("upload: {e}"));
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| bad(&e))?;
    let (mut wasm, mut toml) = (None, ConfigChange::Keep);
    while let Some(field) = form.next_field().await.map_err(|e| bad(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| too_big(&e))?;
        match name.as_str() {
            "wasm" => wasm = Some(bytes.to_vec()),
            "toml" => toml = ConfigChange::Replace(bytes.to_vec()),
            other => return Err(bad(&format!("unknown part `{other}` (expected `wasm` and `toml`)"))),
        }
    }
    let wasm = wasm.ok_or_else(|| bad(&"no `wasm` part"))?;
    Ok((wasm, toml))
}

async fn deploy(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Params,
    request: Request,
) -> Response {
    if let Some(refusal) = refused(&state, request.headers(), &query) {
        return refusal;
    }
    let (wasm, toml) = match upload(request).await {
        Ok(upload) => upload,
        Err(refused) => return refused,
    };
    tracing::info!(bot = %name, bytes = wasm.len(), "deploy over the admin API");
    match state.wasm.deploy(&name, wasm, toml).await {
        Ok(status) => deployed(&status),
        Err(e) => failed(&e),
    }
}

async fn remove(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, &query) {
        return refusal;
    }
    match state.wasm.remove(&name).await {
        Ok(()) => answer(StatusCode::OK, json!({"ok": true, "name": name, "state": "removed"})),
        Err(e) => failed(&e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackTo {
    version: Option<String>,
}

async fn rollback(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, &query) {
        return refusal;
    }
    let to = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackTo::default()
    } else {
        match serde_json::from_slice::<RollbackTo>(&body) {
            Ok(to) => to,
            Err(e) => return refusal(StatusCode::BAD_REQUEST, format!("body: expected {{\"version\": \"…\"}}: {e}")),
        }
    };
    match state.wasm.rollback(&name, to.version.as_deref()).await {
        Ok(status) => deployed(&status),
        Err(e) => failed(&e),
    }
}
