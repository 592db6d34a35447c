//! Ping/pong keepalive: a client that answers pings stays, one that never does is closed.

use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_live_ones_stay() {
    let mut s = settings();
    s.ws.ping_interval = Duration::from_millis(300);
    let bridge = start(s).await;
    let silent = tokio::spawn(raw_silent_client(bridge.addr));
    let (mut live, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await.unwrap();
    // The live client reads (tungstenite answers each ping with a pong) for 5 intervals.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, live.next()).await {
        match msg {
            Message::Ping(_) => pings += 1,
            Message::Close(c) => panic!("live client closed: {c:?}"),
            _ => {}
        }
    }
    assert!(pings >= 3, "pings arrive: {pings}");
    // The silent one has been closed with 4000.
    let code = tokio::time::timeout(Duration::from_secs(10), silent).await.expect("closed").unwrap();
    assert_eq!(code, Some(botbridge::ws::CLOSE_IDLE));
    bridge.shutdown().await;
}

/// Completes the handshake over raw TCP, then never writes (so never pongs);
/// reads until the server hangs up and returns the close code it sent.
async fn raw_silent_client(addr: std::net::SocketAddr) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tcp.read_to_end(&mut bytes).await;
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut frames = &bytes[start..];
    // Server frames are unmasked; control frames are short.
    while frames.len() >= 2 {
        let (opcode, len) = (frames[0] & 0x0f, (frames[1] & 0x7f) as usize);
        if len >= 126 || frames.len() < 2 + len {
            return None;
        }
        if opcode == 0x8 && len >= 2 {
            return Some(u16::from_be_bytes([frames[2], frames[3]]));
        }
        frames = &frames[2 + len..];
    }
    None
}

#[tokio::test]
async fn shutdown_closes_clients_with_1001() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    bridge.shutdown().await;
    let close = until_close(&mut c.ws).await.0.expect("close code");
    assert_eq!(u16::from(close.code), botbridge::ws::CLOSE_GOING_AWAY);
}
