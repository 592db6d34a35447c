//! Outbound HTTP from a real bot (the probe, through wasi:http and the SDK's
//! client) to a real HTTP server on loopback: allowed and refused origins, a
//! name that reaches loopback without being listed, the timeout, the size
//! cap, requests in flight, and a bot waiting on a slow server while another
//! bot answers every event.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::guests::*;
use crate::support::*;
use crate::timers::{command, said};

/// Serves `router` on a free loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// `/ok` says hello, `/slow` waits 5 s, `/big` is 2 MiB (with a length),
/// `/stream` is 2 MiB in chunks (without one).
async fn test_server() -> SocketAddr {
    let router = Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(2 << 20) }))
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::iter((0..32).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 << 10])));
                axum::body::Body::from_stream(chunks)
            }),
        );
    serve(router).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_refused_origins() {
    let web = test_server().await;
    let port = web.port();
    let (bridge, mut c) = start_probe(settings(), &format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\n")).await;

    assert_eq!(command(&mut c, &format!("get http://127.0.0.1:{port}/ok")).await, "http 200 5");
    // Another port, another scheme, another host: each a refused origin.
    for url in [
        format!("http://127.0.0.1:{}/ok", port + 1),
        format!("https://127.0.0.1:{port}/ok"),
        "http://example.com/".to_owned(),
    ] {
        let answer = command(&mut c, &format!("get {url}")).await;
        assert!(answer.starts_with("http-error refused"), "{url}: {answer}");
    }
    let lines = bridge.wasm.logbook().recent("probe");
    let refusals: Vec<_> = lines.iter().filter(|l| l.message.contains("HTTP request refused")).collect();
    assert_eq!(refusals.len(), 3, "{lines:?}");
    assert!(refusals[2].message.contains("http://example.com:80"), "names the origin: {}", refusals[2].message);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_private_addresses_need_a_literal_entry() {
    let web = test_server().await;
    let port = web.port();
    // Listed by name: `localhost` resolves to loopback, which is not listed
    // literally, so the name is refused after resolution.
    let toml = format!("allowed_hosts = [\"http://localhost:{port}\", \"http://10.1.2.3:{port}\"]\n");
    let (bridge, mut c) = start_probe(settings(), &toml).await;

    let answer = command(&mut c, &format!("get http://localhost:{port}/ok")).await;
    assert!(answer.starts_with("http-error refused"), "{answer}");
    // Not listed at all, though it is the same address as the server.
    let answer = command(&mut c, &format!("get http://127.0.0.1:{port}/ok")).await;
    assert!(answer.starts_with("http-error refused"), "{answer}");
    // An IPv4-mapped IPv6 literal of loopback is loopback.
    let answer = command(&mut c, &format!("get http://[::ffff:127.0.0.1]:{port}/ok")).await;
    assert!(answer.starts_with("http-error refused"), "{answer}");
    let lines = bridge.wasm.logbook().recent("probe");
    assert!(lines.iter().any(|l| l.message.contains("localhost") && l.message.contains("prohibited")), "{lines:?}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_size_cap() {
    let web = test_server().await;
    let port = web.port();
    let toml =
        format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\nhttp_timeout_ms = 300\nhttp_max_bytes = 100000\n");
    let (bridge, mut c) = start_probe(settings(), &toml).await;

    let answer = command(&mut c, &format!("get http://127.0.0.1:{port}/slow")).await;
    assert!(answer.starts_with("http-error timeout"), "{answer}");
    for path in ["big", "stream"] {
        let answer = command(&mut c, &format!("get http://127.0.0.1:{port}/{path}")).await;
        assert!(answer.starts_with("http-error other") && answer.to_lowercase().contains("size"), "{path}: {answer}");
    }
    // The bot is unharmed: the next request works.
    assert_eq!(command(&mut c, &format!("get http://127.0.0.1:{port}/ok")).await, "http 200 5");
    assert_eq!(bridge.wasm.status("probe").unwrap().failures, 0);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_capped() {
    let web = test_server().await;
    let port = web.port();
    let toml = format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\nhttp_max_in_flight = 2\n");
    let (bridge, mut c) = start_probe(settings(), &toml).await;

    let answer = command(&mut c, &format!("get-all 3 http://127.0.0.1:{port}/slow")).await;
    assert_eq!(answer, "http 200; http 200; http-error Some(ErrorCode::ConnectionLimitReached)");
    let lines = bridge.wasm.logbook().recent("probe");
    assert!(lines.iter().any(|l| l.message.contains("http_max_in_flight")), "{lines:?}");
    // The places come back when the requests are done.
    let answer = command(&mut c, &format!("get-all 2 http://127.0.0.1:{port}/ok")).await;
    assert_eq!(answer, "http 200; http 200");
    bridge.shutdown().await;
}

/// A bot waits 5 s on a slow server (longer than its whole CPU budget,
/// which waiting does not use) while the echo bot answers every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_waiting_on_http_delays_no_other_bot() {
    let web = test_server().await;
    let port = web.port();
    let s = settings();
    write_toml(&s.bots, "probe", &format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\ncpu_ms = 50\n"));
    install(&s.bots, "probe", &commander());
    install(&s.bots, "echo", &example("echo"));
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    // Sent without waiting for their events, so no answer is skipped meanwhile.
    let say = |text: String| serde_json::json!({"group": GROUP, "sender": MEMBER, "message": plain(&text)});
    c.ok("SimMessage", say(format!("get http://127.0.0.1:{port}/slow"))).await;
    for i in 0..10 {
        c.ok("SimMessage", say(format!("/echo {i}"))).await;
    }
    let mut answers = Vec::new();
    while !answers.last().is_some_and(|a: &String| a.starts_with("http")) {
        answers.push(said(&mut c).await);
    }
    assert_eq!(answers.last().map(String::as_str), Some("http 200 4"), "{answers:?}");
    let echoes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(answers[..answers.len() - 1], echoes[..], "every echo came before the slow answer");
    assert_eq!(bridge.wasm.status("probe").unwrap().failures, 0, "5 s of waiting is not 50 ms of CPU");
    bridge.shutdown().await;
}
