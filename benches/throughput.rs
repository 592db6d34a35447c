//! `cargo bench --bench throughput`: WebSocket delivery rate to 1, 10 and 100
//! clients, and the operation round trip next to a bare WebSocket echo measured
//! in the same run. Prints a table; asserts nothing (machines here are noisy).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

mod common;
#[path = "../tests/common/world.rs"]
#[allow(dead_code)]
mod world;
use common::{CHUNK, percentile, publish_paced, settings};

/// Frames per second delivered to `clients` WebSocket clients.
async fn delivery(clients: usize, events: u64, durable: bool) -> f64 {
    let mut settings = settings(durable);
    settings.bus.queue = 4 * CHUNK as usize;
    settings.bus.replay = 1024;
    let running = botbridge::app::start(settings).await.expect("start");
    let counters: Vec<Arc<AtomicU64>> = (0..clients).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for counter in &counters {
        let (mut ws, _) = tokio_tungstenite::connect_async(running.ws_url()).await.expect("connect");
        ws.next().await; // hello
        let counter = counter.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(_) = msg {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let min = || counters.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
    let start = Instant::now();
    publish_paced(&running.bridge, events, "a typical chat line of some forty chars", min).await;
    let elapsed = start.elapsed();
    assert_eq!(running.bridge.bus().dropped_consumers(), 0, "no client lagged");
    running.shutdown().await;
    (events * clients as u64) as f64 / elapsed.as_secs_f64()
}

/// Round trips of `n` operations, sequentially; `frame(i)` is the i-th request.
async fn round_trip(n: usize, durable: bool, frame: fn(usize) -> String) -> Vec<Duration> {
    let running = botbridge::app::start(settings(durable)).await.expect("start");
    let (mut ws, _) = tokio_tungstenite::connect_async(running.ws_url()).await.expect("connect");
    ws.next().await;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let frame = frame(i);
        let t = Instant::now();
        ws.send(Message::Text(frame.into())).await.expect("send");
        while !matches!(ws.next().await, Some(Ok(Message::Text(_)))) {}
        times.push(t.elapsed());
    }
    running.shutdown().await;
    times.sort();
    times
}

/// `clients` clients, each sending `each` SendToGroup one after another (a
/// result before the next), all at once: operations per second. With the
/// state file on, the clients' acknowledgements share commits.
async fn concurrent_sends(clients: usize, each: usize, durable: bool) -> f64 {
    let running = botbridge::app::start(settings(durable)).await.expect("start");
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(running.ws_url()).await.expect("connect");
        ws.next().await; // hello
        sockets.push(ws);
    }
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for i in 0..each {
                    ws.send(Message::Text(send_to_group(i).into())).await.expect("send");
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""ok":true"#) => break,
                            Some(Ok(Message::Text(t))) => panic!("refused: {t}"),
                            Some(Ok(_)) => {}
                            other => panic!("connection ended: {other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let rate = (clients * each) as f64 / start.elapsed().as_secs_f64();
    running.shutdown().await;
    rate
}

fn send_to_group(i: usize) -> String {
    json!({"type": "SendToGroup", "id": i, "content": {"group": 20001, "message": [{"type": "Plain", "msg": "pong"}]}})
        .to_string()
}

/// An operation that hands out no ID (nothing to commit).
fn list_friends(i: usize) -> String {
    json!({"type": "ListFriends", "id": i}).to_string()
}

/// Round trips through a bare tokio-tungstenite echo server, same frame size.
async fn echo_round_trip(n: usize) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.expect("connect");
    let frame = json!({"type": "SendToGroup", "id": 1, "content": {"group": 20001, "message": [{"type": "Plain", "msg": "pong"}]}})
        .to_string();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ws.send(Message::Text(frame.clone().into())).await.expect("send");
        ws.next().await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    println!("## WebSocket delivery (events published through the bridge, frames counted at clients)\n");
    println!("| clients | events | state file | frames/s |");
    println!("|---:|---:|---|---:|");
    for durable in [false, true] {
        for (clients, events) in [(1usize, 400_000u64), (10, 100_000), (100, 20_000)] {
            let events = events / scale;
            let rate = runtime.block_on(delivery(clients, events, durable));
            println!("| {clients} | {events} | {} | {rate:.0} |", if durable { "on" } else { "off" });
        }
    }
    let n = 20_000 / scale as usize;
    let echo = runtime.block_on(echo_round_trip(n));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n## Round trip, {n} sequential calls\n");
    println!("| what | p50 µs | p99 µs | p50 / echo p50 |");
    println!("|---|---:|---:|---:|");
    let row = |what: &str, times: &[Duration]| {
        println!(
            "| {what} | {:.1} | {:.1} | {:.2} |",
            us(percentile(times, 0.5)),
            us(percentile(times, 0.99)),
            percentile(times, 0.5).as_secs_f64() / percentile(&echo, 0.5).as_secs_f64()
        )
    };
    row("bare tokio-tungstenite echo", &echo);
    row("SendToGroup, state file off", &runtime.block_on(round_trip(n, false, send_to_group)));
    row("SendToGroup, state file on (commit per ack)", &runtime.block_on(round_trip(n / 10, true, send_to_group)));
    row("ListFriends, state file on", &runtime.block_on(round_trip(n, true, list_friends)));

    let each = 200 / scale as usize;
    println!("\n## 100 clients, each {each} SendToGroup one after another, all at once (median of 3)\n");
    println!("| state file | ops/s |");
    println!("|---|---:|");
    let median_rate = |durable| {
        let mut rates: Vec<f64> = (0..3).map(|_| runtime.block_on(concurrent_sends(100, each, durable))).collect();
        rates.sort_by(f64::total_cmp);
        rates[1]
    };
    let off = median_rate(false);
    let on = median_rate(true);
    println!("| off | {off:.0} |");
    println!("| on (acknowledgements share commits) | {on:.0} ({:.2}× off) |", on / off);
}
