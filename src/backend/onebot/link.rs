//! The link to the OneBot implementation: `forward` (we connect, with
//! backoff) or `reverse` (it connects; the handshake is checked), one live
//! connection at a time (a new one replaces the old), and the frames it carries
//! sorted into events and call answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::{Inbound, Inner, Link, MAX_BACKOFF, MIN_BACKOFF};

impl Inner {
    pub(super) async fn forward(self: Arc<Self>, url: String, shutdown: CancellationToken) {
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
                c = tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), false) => c,
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

    /// Accepts the implementation's connections; each checked by `admit`.
    #[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its ErrorResponse.
    pub(super) async fn reverse(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        path: String,
        shutdown: CancellationToken,
    ) {
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
                match tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(ws_config())).await {
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
            if !given.or(from_query).is_some_and(|g| crate::auth::token_matches(g, expected)) {
                return Err(refuse(StatusCode::UNAUTHORIZED, "bad or missing access token"));
            }
        }
        let self_id = req.headers().get("x-self-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
        if self_id.is_some_and(|id| id != self.config.id.0) {
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
    pub(super) fn set_online(&self, online: bool) {
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
        self.answer(&frame);
    }
}

/// The link's WebSocket settings: tungstenite's defaults but the read buffer,
/// which it zero-fills before every read (see `crate::ws::READ_BUFFER`).
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(crate::ws::READ_BUFFER)
}
