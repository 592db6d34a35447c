//! `cargo bench --bench wasm`: deliveries per second to 1, 10 and 100 trivial
//! wasm bots; the latency a bot's Reply adds to an event; file written → new
//! version's first answer; start-up with 100 cached bots; resident memory per
//! idle bot. Prints a table; asserts nothing.

#[path = "../tests/common/guests.rs"]
#[allow(dead_code)]
mod guests;

use std::time::{Duration, Instant};

use botbridge::bus::Payload;
use botbridge::config::Settings;

mod common;
#[path = "../tests/common/world.rs"]
#[allow(dead_code)]
mod world;
use common::{percentile, publish_paced};
use world::message;

/// A bridge without a state file, with room for bursts in each bot's queue.
fn settings() -> Settings {
    let mut s = common::settings(false);
    s.bus.queue = 16_384;
    s.bus.replay = 1024;
    s
}

/// A build of `bytes` with another content hash.
fn variant(bytes: &[u8], n: u32) -> Vec<u8> {
    guests::with_custom_section(bytes, &format!("pad{n}"))
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

async fn deliveries(bots: usize, events: u64) -> f64 {
    deliveries_to(&guests::idle(), bots, events).await
}

/// Deliveries per second to `bots` copies of component `wasm`.
async fn deliveries_to(wasm: &[u8], bots: usize, events: u64) -> f64 {
    let s = settings();
    for i in 0..bots {
        guests::install(&s.bots, &format!("t{i}"), &variant(wasm, i as u32));
    }
    let running = botbridge::app::start(s).await.expect("start");
    let names: Vec<String> = (0..bots).map(|i| format!("t{i}")).collect();
    let min_handled = || names.iter().map(|n| running.wasm.handled(n).unwrap_or(0)).min().unwrap_or(0);
    let start = Instant::now();
    publish_paced(&running.bridge, events, "hi", min_handled).await;
    let rate = (events * bots as u64) as f64 / start.elapsed().as_secs_f64();
    running.shutdown().await;
    rate
}

/// Event published → the echo bot's reply published, through one bus subscription.
async fn reply_latency(n: usize) -> Vec<Duration> {
    let s = settings();
    guests::install(&s.bots, "echo", &guests::example("echo"));
    std::fs::write(s.bots.join("echo.toml"), "ops_per_second = 10000.0\nops_burst = 100000\n").expect("toml");
    let running = botbridge::app::start(s).await.expect("start");
    let mut sub = running.bridge.bus().subscribe("bench", true, None);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        running.bridge.ingest(botbridge::schema::AccountId(10001), message(i as i64, "/echo hi"));
        let mut event_at = None;
        loop {
            let frame = sub.recv().await.expect("frame");
            match &frame.payload {
                Payload::Event(_) => event_at = Some(Instant::now()),
                Payload::Outgoing(_) => {
                    if let Some(t) = event_at {
                        times.push(t.elapsed());
                    }
                    break;
                }
            }
        }
    }
    running.shutdown().await;
    times.sort();
    times
}

/// File written → the new version has answered an event.
async fn reload_latency(rounds: u32) -> Vec<Duration> {
    let s = settings();
    let echo = guests::example("echo");
    guests::install(&s.bots, "echo", &echo);
    let running = botbridge::app::start(s.clone()).await.expect("start");
    let mut times = Vec::new();
    for round in 1..=rounds {
        let old = running.wasm.status("echo").expect("loaded").version;
        let t = Instant::now();
        guests::install(&s.bots, "echo", &variant(&echo, round));
        let mut i = 0;
        loop {
            running.bridge.ingest(botbridge::schema::AccountId(10001), message(i, "/echo probe"));
            i += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if let Some(st) = running.wasm.status("echo")
                && st.version != old
                && st.handled > 0
            {
                break;
            }
        }
        times.push(t.elapsed());
    }
    running.shutdown().await;
    times.sort();
    times
}

/// The admin API: `PUT /api/bots/echo` with a new build → the answer that it
/// runs (upload, check, compile, files written, swap), over loopback HTTP.
async fn deploy_latency(rounds: u32) -> Vec<Duration> {
    use http_body_util::{BodyExt, Full};
    let mut s = settings();
    s.admin_token = Some("bench-admin".into());
    let echo = guests::example("echo");
    guests::install(&s.bots, "echo", &echo);
    let running = botbridge::app::start(s).await.expect("start");
    let mut times = Vec::new();
    for round in 1..=rounds {
        let body = variant(&echo, 1000 + round);
        let t = Instant::now();
        let tcp = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.expect("handshake");
        tokio::spawn(conn);
        let request = http::Request::put("/api/bots/echo")
            .header("Host", running.addr.to_string())
            .header("Authorization", "Bearer bench-admin")
            .header("Content-Type", "application/wasm")
            .body(Full::new(bytes::Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200, "deploy refused");
        let _ = response.into_body().collect().await;
        times.push(t.elapsed());
    }
    running.shutdown().await;
    times.sort();
    times
}

/// (cold start with compiling, warm start from cache, RSS per idle bot).
async fn startup(bots: usize) -> (Duration, Duration, f64) {
    let s = settings();
    let echo = guests::example("echo");
    let baseline = {
        let empty = settings();
        let running = botbridge::app::start(empty).await.expect("start");
        let rss = rss_bytes();
        running.shutdown().await;
        rss
    };
    for i in 0..bots {
        guests::install(&s.bots, &format!("echo{i}"), &variant(&echo, 1000 + i as u32));
    }
    let t = Instant::now();
    let running = botbridge::app::start(s.clone()).await.expect("start");
    let cold = t.elapsed();
    running.shutdown().await;
    let t = Instant::now();
    let running = botbridge::app::start(s).await.expect("start");
    let warm = t.elapsed();
    assert_eq!(running.wasm.statuses().len(), bots);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_bot = rss_bytes().saturating_sub(baseline) as f64 / bots as f64;
    running.shutdown().await;
    (cold, warm, per_bot)
}

/// Start-up of a bridge with one big example bot (Python, JavaScript): the
/// first start compiles it; later ones load it from the cache. Returns the
/// cold time and the median of `warm_runs` warm starts.
async fn scripted_startup(name: &str, warm_runs: usize) -> (Duration, Duration) {
    let s = settings();
    guests::install(&s.bots, name, &guests::example(name));
    let t = Instant::now();
    let running = botbridge::app::start(s.clone()).await.expect("start");
    let cold = t.elapsed();
    assert!(running.wasm.status(name).is_some(), "{name} loaded");
    running.shutdown().await;
    let mut warm = Vec::new();
    for _ in 0..warm_runs {
        let t = Instant::now();
        let running = botbridge::app::start(s.clone()).await.expect("start");
        warm.push(t.elapsed());
        assert!(running.wasm.status(name).is_some(), "{name} loaded");
        running.shutdown().await;
    }
    warm.sort();
    (cold, percentile(&warm, 0.5))
}

/// A quantile in microseconds.
fn p(sorted: &[Duration], q: f64) -> f64 {
    percentile(sorted, q).as_secs_f64() * 1e6
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };

    if std::env::args().any(|a| a == "--deploy-only") {
        deploys(&runtime, if quick { 3 } else { 10 });
        return;
    }
    if std::env::args().any(|a| a == "--big-bots-only") {
        big_bots(&runtime);
        return;
    }
    if std::env::args().any(|a| a == "--worlds-only") {
        worlds(&runtime, scale);
        return;
    }
    println!("## Deliveries to trivial wasm bots\n");
    println!("| bots | events | deliveries/s |");
    println!("|---:|---:|---:|");
    for (bots, events) in [(1usize, 200_000u64), (10, 50_000), (100, 10_000)] {
        let events = events / scale;
        let rate = runtime.block_on(deliveries(bots, events));
        println!("| {bots} | {events} | {rate:.0} |");
    }

    if std::env::args().any(|a| a == "--deliveries-only") {
        return;
    }
    let lat = runtime.block_on(reply_latency(5000 / scale as usize));
    println!("\n## Echo bot: event published → its Reply published ({} events)\n", lat.len());
    println!("| p50 µs | p99 µs |\n|---:|---:|\n| {:.1} | {:.1} |", p(&lat, 0.5), p(&lat, 0.99));

    deploys(&runtime, if quick { 3 } else { 10 });

    big_bots(&runtime);

    let bots = 100;
    let (cold, warm, per_bot) = runtime.block_on(startup(bots));
    println!("\n## Start-up with {bots} echo bots\n");
    println!("| compile all (cold) | from cache (warm) | resident memory per idle bot |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} KiB |",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        per_bot / 1024.0
    );
}

/// The echo bot built for world 0.3.0 against the same bot built for 0.2.0
/// (`tests/fixtures/echo-0.2.0.wasm`), whose events cross to its world's
/// types through `wasm::compat`: deliveries/s to one and to ten of each,
/// alternating, medians of three.
fn worlds(runtime: &tokio::runtime::Runtime, scale: u64) {
    let old = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo-0.2.0.wasm")).expect("fixture");
    let new = guests::example("echo");
    let events = 20_000 / scale;
    println!("## Echo bots, {events} events: world 0.3.0 against a 0.2.0 build\n");
    println!("| bots | 0.3.0 deliveries/s | 0.2.0 (through compat) | ratio |\n|---:|---:|---:|---:|");
    for bots in [1, 10] {
        let (mut now, mut then) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            now.push(runtime.block_on(deliveries_to(&new, bots, events)));
            then.push(runtime.block_on(deliveries_to(&old, bots, events)));
        }
        let median = |xs: &mut Vec<f64>| {
            xs.sort_by(|a, b| a.total_cmp(b));
            xs[1]
        };
        let (now, then) = (median(&mut now), median(&mut then));
        println!("| {bots} | {now:.0} | {then:.0} | {:.2} |", then / now);
    }
}

/// A new version of the echo bot: written into the folder (the watcher
/// loads it) against deployed over the admin API, in the same run.
fn deploys(runtime: &tokio::runtime::Runtime, rounds: u32) {
    let reload = runtime.block_on(reload_latency(rounds));
    let deploy = runtime.block_on(deploy_latency(rounds));
    println!(
        "\n## Echo bot: a new version, file written → first answer, and PUT over the admin API → answer ({rounds} rounds)\n"
    );
    println!("| | p50 ms | max ms |\n|---|---:|---:|");
    for (what, times) in [("file written → its first answer", &reload), ("PUT /api/bots/echo → `running`", &deploy)]
    {
        let max = times.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
        println!("| {what} | {:.1} | {max:.1} |", p(times, 0.5) / 1000.0);
    }
}

/// Start-up with the Python and JavaScript examples, cold and from the cache.
fn big_bots(runtime: &tokio::runtime::Runtime) {
    println!("\n## Start-up with one big bot: compiled (cold) and from the cache (warm, median of 5)\n");
    println!("| bot | size | cold | warm | cold / warm |");
    println!("|---|---:|---:|---:|---:|");
    for name in ["python-echo", "js-echo"] {
        let size = guests::example(name).len() as f64 / (1 << 20) as f64;
        let (cold, warm) = runtime.block_on(scripted_startup(name, 5));
        println!(
            "| {name} | {size:.1} MiB | {:.0} ms | {:.0} ms | {:.0}× |",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            cold.as_secs_f64() / warm.as_secs_f64()
        );
    }

    let n = 2000;
    println!("\n## Per-event cost of one bot on an SDK, a message it ignores ({n} events, median of 3)\n");
    println!("| bot | runtime | size | µs per event | / Rust |");
    println!("|---|---|---:|---:|---:|");
    let rust = median_of_3(|| runtime.block_on(event_cost("echo", n)));
    for (name, how) in [
        ("echo", "Rust SDK"),
        ("js-echo", "QuickJS (componentize-qjs)"),
        ("js-fetch", "SpiderMonkey (componentize-js)"),
        ("python-echo", "CPython (componentize-py)"),
    ] {
        let size = guests::example(name).len() as f64 / (1 << 20) as f64;
        let us = if name == "echo" { rust } else { median_of_3(|| runtime.block_on(event_cost(name, n))) };
        println!("| {name} | {how} | {size:.1} MiB | {us:.1} | {:.1}× |", us / rust);
    }
}

fn median_of_3(mut run: impl FnMut() -> f64) -> f64 {
    let mut xs = [run(), run(), run()];
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[1]
}

/// µs per event for bot `name`, each a group message it does not answer.
async fn event_cost(name: &str, events: u64) -> f64 {
    let s = settings();
    guests::install(&s.bots, name, &guests::example(name));
    let running = botbridge::app::start(s).await.expect("start");
    let start = Instant::now();
    publish_paced(&running.bridge, events, "just chatting", || running.wasm.handled(name).unwrap_or(0)).await;
    let us = start.elapsed().as_secs_f64() * 1e6 / events as f64;
    running.shutdown().await;
    us
}
