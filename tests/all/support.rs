//! Test support: a bridge on port 0 and a WebSocket client that speaks the protocol.

use std::collections::VecDeque;
use std::time::Duration;

use botbridge::app::Running;
use botbridge::config::Settings;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use crate::world::{ADMIN, BOT, FRIEND, GROUP, LOBBY, MEMBER, OWNER, STRANGER, settings};

pub async fn start(settings: Settings) -> Running {
    botbridge::app::start(settings).await.expect("bridge starts")
}

/// A bridge on `s` running the commander probe with `toml` as its
/// `probe.toml`, and a client that sees outgoing frames (what the probe says).
pub async fn start_probe(s: Settings, toml: &str) -> (Running, Client) {
    crate::guests::write_toml(&s.bots, "probe", toml);
    crate::guests::install(&s.bots, "probe", &crate::guests::commander());
    let bridge = start(s).await;
    let c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    (bridge, c)
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// A protocol client: `call` sends an operation and returns its result, keeping
/// any events that arrive meanwhile for `event`.
pub struct Client {
    pub ws: Socket,
    pub hello: Value,
    backlog: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connects");
        let mut client = Client { ws, hello: Value::Null, backlog: VecDeque::new(), next_id: 0 };
        client.hello = client.frame().await;
        assert_eq!(client.hello["type"], "hello", "first frame is hello");
        client
    }

    /// The next JSON frame from the socket (pings skipped).
    pub async fn frame(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the timeout")
                .expect("socket open")
                .expect("no socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("server frames are JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// The next non-result frame (event, outgoing, gap).
    pub async fn event(&mut self) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        loop {
            let v = self.frame().await;
            if v["type"] != "result" {
                return v;
            }
        }
    }

    /// Waits for the result frame with this `id`.
    pub async fn result_for(&mut self, id: &Value) -> Value {
        loop {
            let v = self.frame().await;
            if v["type"] == "result" && &v["id"] == id {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// Sends one operation; returns the whole result frame.
    pub async fn call(&mut self, op: &str, content: Value) -> Value {
        self.next_id += 1;
        let id = json!(format!("t-{}", self.next_id));
        let frame = json!({"type": op, "id": id, "content": content});
        self.send_text(&frame.to_string()).await;
        self.result_for(&id).await
    }

    /// Calls and expects success; returns `data`.
    pub async fn ok(&mut self, op: &str, content: Value) -> Value {
        let r = self.call(op, content.clone()).await;
        assert_eq!(r["ok"], true, "{op} {content} failed: {r}");
        r["data"].clone()
    }

    /// Calls and expects failure; returns the error `code`.
    pub async fn code(&mut self, op: &str, content: Value) -> String {
        let r = self.call(op, content.clone()).await;
        assert_eq!(r["ok"], false, "{op} {content} should fail: {r}");
        r["error"]["code"].as_str().expect("error code").to_owned()
    }

    /// Sends a marker message and checks that its event is the very next frame:
    /// nothing (no outgoing frame, no other event) was pending before it.
    pub async fn expect_nothing_pending(&mut self) {
        let seq = self.ok("SimMessage", json!({"friend": FRIEND, "message": plain("marker")})).await["seq"].clone();
        let next = self.event().await;
        assert_eq!(next["seq"], seq, "a frame came before the marker: {next}");
    }

    /// Injects a group message from `sender`; returns the GroupMessage event.
    pub async fn group_message(&mut self, group: i64, sender: i64, text: &str) -> Value {
        let data = self
            .ok("SimMessage", json!({"group": group, "sender": sender, "message": [{"type": "Plain", "msg": text}]}))
            .await;
        self.event_with_seq(data["seq"].as_u64().expect("seq")).await
    }

    /// Skips events until the one with `seq`.
    pub async fn event_with_seq(&mut self, seq: u64) -> Value {
        loop {
            let e = self.event().await;
            if e["seq"].as_u64() == Some(seq) && e["type"] != "outgoing" {
                return e;
            }
        }
    }

    /// Skips frames until one of type `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let e = self.event().await;
            if e["type"] == kind {
                return e;
            }
        }
    }
}

pub fn source_id(event: &Value) -> String {
    event["data"]["message"][0]["id"].as_str().expect("MessageSource id").to_owned()
}

pub fn reply_key(event: &Value) -> String {
    event["data"]["replyKey"].as_str().expect("replyKey").to_owned()
}

pub fn plain(text: &str) -> Value {
    json!([{"type": "Plain", "msg": text}])
}

/// Reads until the server closes; returns its close frame and how many text
/// frames came first. Pings and pongs are skipped.
pub async fn until_close(ws: &mut Socket) -> (Option<CloseFrame>, usize) {
    let mut texts = 0;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame within the timeout") {
            Some(Ok(Message::Close(frame))) => return (frame, texts),
            Some(Ok(Message::Text(_))) => texts += 1,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The status line of a plain HTTP GET of `path` with these header lines
/// (each ending in CRLF).
pub async fn get_status(addr: std::net::SocketAddr, path: &str, headers: &str) -> String {
    http_get(addr, path, headers).await.0
}

/// A plain HTTP/1.1 GET: the status line and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    // The caller's own `Host` wins (the tests of Host checks send one).
    let host = if headers.to_ascii_lowercase().contains("host:") { String::new() } else { format!("Host: {addr}\r\n") };
    tcp.write_all(format!("GET {path} HTTP/1.1\r\n{host}{headers}Connection: close\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.expect("response");
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// One HTTP/1.1 request to the bridge at `addr` (its own `Host` unless
/// `headers` has one): the status and the body as JSON (a JSON string when
/// the body is not JSON).
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    use http_body_util::{BodyExt, Full};
    let tcp = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(conn);
    let mut request = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request = request.header("Host", addr.to_string());
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(bytes::Bytes::from(body))).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}
