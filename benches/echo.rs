//! `cargo bench --bench echo`: the peer comparison (README "Benchmarks").
//!
//! The real `botbridge` binary with the example echo bot (and, for ten bots,
//! nine more that take every message and ignore it), state file on and off. A
//! WebSocket client bursts `SimMessage`s (`/echo N`) at it and counts the echo
//! bot's answers in the audit stream (`?outgoing=1`), so every message crosses
//! a real WebSocket both ways; then sends them one at a time for latency.
//! Next to it, in the same run, a bare tokio-tungstenite echo server with the
//! same client. Runs alternate; each figure is the median of the rounds.
//! Prints a table; asserts only that nothing was lost or disconnected.
//!
//! `ECHO_BURST` and `ECHO_SINGLE` change the message counts (20 000, 2 000; a
//! burst of at most 99 800, what the echo bot may answer at once),
//! `ECHO_ROUNDS` the rounds (3), `ECHO_ONLY=10-off` (bots-state; a comma-separated list) runs those rows only;
//! `ECHO_BASELINE_BIN=path/to/an/older/botbridge` adds that binary's rows,
//! measured in the same run (before and after a change); it runs with
//! `--queue 65536`, since builds before the batched connection loop close a
//! bursting client with 4008 at the default queue. `ECHO_BASELINE_GUESTS=path/
//! to/its/target` gives it the bots as that checkout built them (for a
//! baseline of an older world version); `ECHO_BASELINE_QUEUE=4096` runs it
//! with the default queue (a baseline that has the batched loop).

#[path = "../tests/common/binary.rs"]
mod binary;
#[path = "../tests/common/guests.rs"]
#[allow(dead_code)]
mod guests;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use botbridge::wasm::limits;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// A bare tokio-tungstenite echo server, in this process.
    BareEcho,
    Bridge {
        bots: usize,
        durable: bool,
        baseline: bool,
    },
}

impl Target {
    fn label(self) -> String {
        match self {
            Self::BareEcho => "bare tokio-tungstenite echo".into(),
            Self::Bridge { bots, durable, baseline } => {
                let state = if durable { "state file on (default)" } else { "state file off (--ephemeral)" };
                let which = if baseline {
                    format!("baseline botbridge (queue {})", baseline_queue())
                } else {
                    "botbridge".into()
                };
                format!("{which}, {bots} bot{}, {state}", if bots == 1 { "" } else { "s" })
            }
        }
    }
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// The bridge's peak resident memory, MiB (0 for the bare echo).
    peak_rss_mib: f64,
    /// The bridge's CPU time (user + system, all threads) per message of
    /// the burst, µs: steadier than a rate on a shared machine (0 for the
    /// bare echo, which runs in this process).
    cpu_us_per_msg: f64,
    /// The bridge's context switches and minor page faults per message of
    /// the burst (printed per round, to explain a round that strays).
    switches_per_msg: f64,
    faults_per_msg: f64,
    /// This process's CPU time (the client, and the bare echo when it is
    /// the target) per message of the burst, µs: what the load generator
    /// itself costs, next to the bridge's.
    client_cpu_us_per_msg: f64,
}

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The baseline's `--queue`: `ECHO_BASELINE_QUEUE`, else 65536 (what builds
/// before the batched connection loop need for a burst).
fn baseline_queue() -> String {
    std::env::var("ECHO_BASELINE_QUEUE").unwrap_or_else(|_| "65536".into())
}

/// Starts the bridge on port 0 in `dir`, sharing the compiled-component cache.
/// The bridge process, killed when dropped (also when a run panics).
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_bridge(bin: &str, dir: &Path, cache: &Path, bots: usize, durable: bool, baseline: bool) -> (Bridge, String) {
    let folder = dir.join("bots");
    // A baseline of another world version runs the same bots as that checkout built them.
    let baseline_guests = std::env::var("ECHO_BASELINE_GUESTS").ok().filter(|_| baseline).map(std::path::PathBuf::from);
    let echo = match &baseline_guests {
        Some(target) => std::fs::read(target.join("guests/echo.wasm")).expect("the baseline's echo.wasm"),
        None => guests::example("echo"),
    };
    guests::install(&folder, "echo", &echo);
    // The echo bot answers every message: the highest rate and burst a bot may have.
    let toml = format!("ops_per_second = {:?}\nops_burst = {}\n", limits::MAX_RATE, limits::MAX_BURST);
    std::fs::write(folder.join("echo.toml"), toml).expect("toml");
    let idle = match &baseline_guests {
        Some(target) => guests::probe_from(target, "idle", ""),
        None => guests::idle(),
    };
    for i in 1..bots {
        guests::install(&folder, &format!("idle{i}"), &guests::with_custom_section(&idle, &format!("idle{i}")));
    }
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::os::unix::fs::symlink(cache, state.join("cache")).expect("cache link");
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--bots"]).arg(&folder).arg("--state-dir").arg(&state);
    if !durable {
        cmd.arg("--ephemeral");
    }
    if baseline {
        cmd.args(["--queue", &baseline_queue()]);
    }
    cmd.env("RUST_LOG", "warn,botbridge::app=info");
    let (child, url) = binary::spawn_bridge(cmd);
    (Bridge(child), url)
}

/// A WebSocket echo server with nothing else: the floor for one round trip.
async fn bare_echo() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if msg.is_text() && tx.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("ws://{addr}/ws")
}

/// Messages sent one at a time before a run is measured.
const WARM_UP: usize = 200;

fn sim_message(i: usize) -> String {
    format!(
        r#"{{"type":"SimMessage","id":{i},"content":{{"group":20001,"sender":30003,"message":[{{"type":"Plain","msg":"/echo {i}"}}]}}}}"#
    )
}

/// The frame the client waits for: the echo bot's answer (or the bare echo).
fn is_answer(target: Target, text: &str) -> bool {
    match target {
        Target::BareEcho => true,
        Target::Bridge { .. } => text.starts_with(r#"{"type":"outgoing""#) && text.ends_with(r#""by":"echo"}}"#),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(target: Target, url: &str) -> Ws {
    let url = match target {
        Target::BareEcho => url.to_owned(),
        Target::Bridge { .. } => format!("{url}?outgoing=1"),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    if target != Target::BareEcho {
        ws.next().await; // hello
    }
    ws
}

/// Reads until `answers` answers came; panics on a close (a lag, 4008).
async fn await_answers(target: Target, rx: &mut futures::stream::SplitStream<Ws>, answers: usize) {
    let mut seen = 0;
    while seen < answers {
        match rx.next().await {
            Some(Ok(Message::Text(t))) if is_answer(target, t.as_str()) => seen += 1,
            Some(Ok(Message::Close(c))) => panic!("{}: disconnected after {seen} answers: {c:?}", target.label()),
            Some(Ok(_)) => {}
            other => panic!("{}: connection ended after {seen} answers: {other:?}", target.label()),
        }
    }
}

/// `n` messages in one burst: messages per second, first sent to last answered.
async fn burst(target: Target, url: &str, n: usize) -> f64 {
    let (mut tx, mut rx) = connect(target, url).await.split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..n {
            tx.feed(Message::Text(sim_message(i).into())).await.expect("send");
        }
        tx.flush().await.expect("flush");
        tx
    });
    await_answers(target, &mut rx, n).await;
    let elapsed = start.elapsed();
    drop(writer.await);
    n as f64 / elapsed.as_secs_f64()
}

/// `n` messages one at a time: each one's time until its answer, sorted.
async fn one_at_a_time(target: Target, url: &str, n: usize) -> Vec<Duration> {
    let (mut tx, mut rx) = connect(target, url).await.split();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        tx.send(Message::Text(sim_message(i).into())).await.expect("send");
        await_answers(target, &mut rx, 1).await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// A process's CPU time so far (user + system), seconds, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state;
    // utime and stime are the 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// A process's context switches (voluntary and not, all threads) and minor
/// page faults so far: what a round's CPU figure is made of when it strays.
fn switches_and_faults(pid: u32) -> (u64, u64) {
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let faults = rest.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0);
    (switches, faults)
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn micros(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

async fn run(target: Target, cache: &Path, bursts: usize, singles: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, url) = match target {
        Target::BareEcho => (None, bare_echo().await),
        Target::Bridge { bots, durable, baseline } => {
            let bin = if baseline { baseline_bin().expect("set") } else { env!("CARGO_BIN_EXE_botbridge").to_owned() };
            // Each binary its own compiled-component cache (their engines may differ).
            let cache = cache.join(if baseline { "baseline" } else { "current" });
            std::fs::create_dir_all(&cache).expect("cache");
            let (child, url) = spawn_bridge(&bin, dir.path(), &cache, bots, durable, baseline);
            (Some(child), url)
        }
    };
    // Warm up: every bot instantiated, the allocator and the page cache settled.
    one_at_a_time(target, &url, WARM_UP).await;
    let pid = child.as_ref().map(|c| c.0.id());
    let cpu_before = pid.map_or(0.0, cpu_seconds);
    let client_before = cpu_seconds(std::process::id());
    let (switches_before, faults_before) = pid.map_or((0, 0), switches_and_faults);
    let msgs_per_s = burst(target, &url, bursts).await;
    let cpu_us_per_msg = pid.map_or(0.0, |pid| (cpu_seconds(pid) - cpu_before) * 1e6 / bursts as f64);
    let client_cpu_us_per_msg = (cpu_seconds(std::process::id()) - client_before) * 1e6 / bursts as f64;
    let (switches_after, faults_after) = pid.map_or((0, 0), switches_and_faults);
    let times = one_at_a_time(target, &url, singles).await;
    Figures {
        msgs_per_s,
        p50_us: micros(&times, 0.5),
        p99_us: micros(&times, 0.99),
        peak_rss_mib: pid.map_or(0.0, peak_rss_mib),
        cpu_us_per_msg,
        switches_per_msg: switches_after.saturating_sub(switches_before) as f64 / bursts as f64,
        faults_per_msg: faults_after.saturating_sub(faults_before) as f64 / bursts as f64,
        client_cpu_us_per_msg,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lets the run before finish with the machine: its state file written back
/// (a state-file-on run leaves dirty pages the kernel flushes for seconds),
/// then a moment for its process to go, so none of that is charged to the
/// next run.
fn settle() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
}

fn baseline_bin() -> Option<String> {
    std::env::var("ECHO_BASELINE_BIN").ok().filter(|b| !b.is_empty())
}

fn main() {
    let bursts = count("ECHO_BURST", 20_000);
    let singles = count("ECHO_SINGLE", 2_000);
    // Past its op burst the echo bot's replies are refused (rate_limited), and
    // the burst would wait for answers that never come.
    assert!(
        WARM_UP + bursts <= limits::MAX_BURST as usize,
        "ECHO_BURST={bursts}: the echo bot may answer at most {} messages in a burst (ops_burst), less the {WARM_UP} of the warm-up",
        limits::MAX_BURST
    );
    let mut targets = vec![Target::BareEcho];
    let with_baseline: &[bool] = if baseline_bin().is_some() { &[true, false] } else { &[false] };
    for &baseline in with_baseline {
        for bots in [1, 10] {
            for durable in [false, true] {
                targets.push(Target::Bridge { bots, durable, baseline });
            }
        }
    }
    if let Ok(only) = std::env::var("ECHO_ONLY") {
        targets.retain(|t| match t {
            Target::BareEcho => only.split(',').any(|o| o == "bare"),
            Target::Bridge { bots, durable, .. } => {
                only.split(',').any(|o| o == format!("{bots}-{}", if *durable { "on" } else { "off" }))
            }
        });
    }
    let rounds = count("ECHO_ROUNDS", 3);
    // Named, so a profile of the whole machine tells the client from the bridge.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().thread_name("bench-client").enable_all().build().expect("runtime");
    let cache = tempfile::tempdir().expect("cache dir");
    println!("load average before: {}", load_average());
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
    for round in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            settle();
            let figures = runtime.block_on(run(*target, cache.path(), bursts, singles));
            eprintln!(
                "round {round}: {}: {:.0} msgs/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} µs CPU/msg, {:.3} switches/msg, {:.3} faults/msg, client {:.1} µs CPU/msg",
                target.label(),
                figures.msgs_per_s,
                figures.p50_us,
                figures.p99_us,
                figures.cpu_us_per_msg,
                figures.switches_per_msg,
                figures.faults_per_msg,
                figures.client_cpu_us_per_msg
            );
            runs[i].push(figures);
        }
    }
    println!("load average after: {}", load_average());
    println!("{bursts} messages in one burst, then {singles} one at a time; medians of {rounds} alternating runs");
    println!("| | msgs/s | deliveries/s | p50 | p99 | peak RSS | bridge CPU/msg |");
    println!("|---|---|---|---|---|---|---|");
    let ephemeral_rate = |bots, baseline| {
        let i = targets.iter().position(|t| *t == Target::Bridge { bots, durable: false, baseline })?;
        Some(median(runs[i].iter().map(|f| f.msgs_per_s).collect()))
    };
    for (target, figures) in targets.iter().zip(&runs) {
        let rate = median(figures.iter().map(|f| f.msgs_per_s).collect());
        let p50 = median(figures.iter().map(|f| f.p50_us).collect());
        let p99 = median(figures.iter().map(|f| f.p99_us).collect());
        let rss = median(figures.iter().map(|f| f.peak_rss_mib).collect());
        let cpu = median(figures.iter().map(|f| f.cpu_us_per_msg).collect());
        let (deliveries, ratio, rss, cpu) = match target {
            Target::BareEcho => ("—".to_owned(), String::new(), "—".to_owned(), "—".to_owned()),
            Target::Bridge { bots, durable, baseline } => (
                format!("{:.0}", rate * *bots as f64),
                match ephemeral_rate(*bots, *baseline) {
                    Some(ephemeral) if *durable => format!(" ({:.2}× ephemeral)", rate / ephemeral),
                    _ => String::new(),
                },
                format!("{rss:.0} MiB"),
                format!("{cpu:.1} µs"),
            ),
        };
        println!(
            "| {} | {rate:.0}{ratio} | {deliveries} | {p50:.0} µs | {p99:.0} µs | {rss} | {cpu} |",
            target.label()
        );
    }
}
