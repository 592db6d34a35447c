//! `cargo bench --bench timers_http`: what a timer costs against an event,
//! and what an HTTP request from a bot costs against the same request from
//! native code, to the same local server. Medians of several runs, each with
//! its baseline measured in the same run; with the state file off (the
//! fastest) and on (the default). Prints tables; asserts nothing.

#[path = "../tests/common/guests.rs"]
#[allow(dead_code)]
mod guests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use botbridge::schema::AccountId;

#[allow(dead_code)] // `percentile` is for the other benches.
mod common;
#[path = "../tests/common/world.rs"]
#[allow(dead_code)]
mod world;

const RUNS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Waits until bot `name` has handled `n` calls.
async fn handled(running: &botbridge::app::Running, name: &str, n: u64) {
    let mut last = Instant::now();
    while running.wasm.handled(name).unwrap_or(0) < n {
        if last.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "waiting: {name} handled {:?} of {n}; {:?}",
                running.wasm.handled(name),
                running.wasm.status(name)
            );
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// µs per event delivered to a bot that ignores it, and µs per timer (set,
/// stored, fired, written back) of the same bot, in one bridge.
async fn timer_vs_event(durable: bool, n: u64) -> (f64, f64) {
    let s = common::settings(durable);
    std::fs::create_dir_all(&s.bots).expect("bots");
    std::fs::write(s.bots.join("probe.toml"), "max_timers = 10000\ncpu_ms = 60000\nmin_timer_period_ms = 0\n")
        .expect("toml");
    guests::install(&s.bots, "probe", &guests::commander());
    let running = botbridge::app::start(s).await.expect("start");
    assert!(running.wasm.status("probe").is_some(), "{:?}", running.wasm.rejected("probe"));

    let start = Instant::now();
    common::publish_paced(&running.bridge, n, "hi", || running.wasm.handled("probe").unwrap_or(0)).await;
    let event_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;

    let start = Instant::now();
    running.bridge.ingest(AccountId(world::BOT), world::message(1_000_000, &format!("burst {n}")));
    handled(&running, "probe", n + 1 + n).await;
    let timer_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    running.shutdown().await;
    (event_us, timer_us)
}

/// A local server: `/ok` answers "hello".
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route("/ok", axum::routing::get(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// One GET over a fresh connection, as the bridge sends a bot's request.
async fn native_get(addr: SocketAddr) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let request = http::Request::get("/ok")
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let body = response.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"hello");
}

/// µs per GET from native code and from a bot (the probe, through wasi:http
/// and the SDK's client), the same `n` requests to the same server.
async fn http_native_vs_bot(n: u64) -> (f64, f64) {
    let addr = server().await;
    let s = common::settings(false);
    std::fs::create_dir_all(&s.bots).expect("bots");
    std::fs::write(s.bots.join("probe.toml"), format!("allowed_hosts = [\"http://{addr}\"]\ncpu_ms = 60000\n"))
        .expect("toml");
    guests::install(&s.bots, "probe", &guests::commander());
    let running = botbridge::app::start(s).await.expect("start");

    let start = Instant::now();
    for _ in 0..n {
        native_get(addr).await;
    }
    let native_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;

    let start = Instant::now();
    running.bridge.ingest(AccountId(world::BOT), world::message(1, &format!("get-n {n} http://{addr}/ok")));
    handled(&running, "probe", 1).await;
    let bot_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    running.shutdown().await;
    (native_us, bot_us)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let quick = std::env::args().any(|a| a == "--quick");

    println!("## Timer dispatch against event delivery, one bot (median of {RUNS} runs)\n");
    println!("| state file | timers | µs per event | µs per timer (set, fired) | timer / event |");
    println!("|---|---:|---:|---:|---:|");
    for (durable, n) in [(false, 10_000u64), (true, 1_000)] {
        let n = if quick { n / 10 } else { n };
        let runs: Vec<(f64, f64)> = (0..RUNS).map(|_| runtime.block_on(timer_vs_event(durable, n))).collect();
        let event = median(runs.iter().map(|r| r.0).collect());
        let timer = median(runs.iter().map(|r| r.1).collect());
        let ratio = median(runs.iter().map(|r| r.1 / r.0).collect());
        let label = if durable { "on (default)" } else { "off (--ephemeral)" };
        println!("| {label} | {n} | {event:.1} | {timer:.1} | {ratio:.1}× |");
    }

    let n = if quick { 50 } else { 500 };
    println!(
        "\n## HTTP GET over a fresh loopback connection: native client against a bot (median of {RUNS} runs of {n})\n"
    );
    println!("| native µs | bot µs | bot / native |");
    println!("|---:|---:|---:|");
    let runs: Vec<(f64, f64)> = (0..RUNS).map(|_| runtime.block_on(http_native_vs_bot(n))).collect();
    let native = median(runs.iter().map(|r| r.0).collect());
    let bot = median(runs.iter().map(|r| r.1).collect());
    let ratio = median(runs.iter().map(|r| r.1 / r.0).collect());
    println!("| {native:.0} | {bot:.0} | {ratio:.2}× |");
}
