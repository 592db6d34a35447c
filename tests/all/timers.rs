//! Timers: a real bot (the probe, on the SDK) sets them through the WIT
//! world and says `fired TAG` from `on-timer`; the tests watch what it says on
//! a real WebSocket. In order, across a hot reload, across `kill -9` of the
//! real binary, and within the caps of `NAME.toml`.

use std::time::{Duration, Instant};

use crate::guests::*;
use crate::support::*;

/// The text the bot said in the next outgoing frame.
pub async fn said(c: &mut Client) -> String {
    let out = c.next_of("outgoing").await;
    let chain = out["data"]["message"].as_array().cloned().unwrap_or_default();
    chain.iter().filter_map(|e| e["msg"].as_str()).collect()
}

/// Sends a command to the probe and returns its answer.
pub async fn command(c: &mut Client, text: &str) -> String {
    c.group_message(GROUP, MEMBER, text).await;
    said(c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_order_and_a_hot_reload_keeps_them() {
    let s = settings();
    write_toml(&s.bots, "probe", "min_timer_period_ms = 100\n");
    install(&s.bots, "probe", &commander());
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    // Set out of order, at fixed times, so a slow round trip cannot reorder
    // them (timers already due fire soonest first too).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert_eq!(command(&mut c, &format!("at c {}", now + 3600)).await, "ok");
    assert_eq!(command(&mut c, &format!("at a {}", now + 3000)).await, "ok");
    assert_eq!(command(&mut c, &format!("at b {}", now + 3300)).await, "ok");
    assert_eq!(command(&mut c, "timers").await, "timers: a,b,c", "soonest first");
    for tag in ["a", "b", "c"] {
        assert_eq!(said(&mut c).await, format!("fired {tag}"));
    }
    assert_eq!(command(&mut c, "timers").await, "timers: ", "one-shot timers are gone once fired");

    // A timer set by one version fires in the next.
    let old = bridge.wasm.status("probe").unwrap().version;
    // Room for a slow machine to load the new version before it is due.
    assert_eq!(command(&mut c, "after late 4000").await, "ok");
    install(&s.bots, "probe", &with_custom_section(&commander(), "v2"));
    eventually("new version", || bridge.wasm.status("probe").is_some_and(|st| st.version != old)).await;
    assert_eq!(said(&mut c).await, "fired late");
    eventually("the new version handled it", || bridge.wasm.status("probe").is_some_and(|st| st.handled == 1)).await;

    // Repeating, then cancelled.
    assert_eq!(command(&mut c, "every tick 150").await, "ok");
    for _ in 0..3 {
        assert_eq!(said(&mut c).await, "fired tick");
    }
    let answer = loop {
        c.group_message(GROUP, MEMBER, "cancel tick").await;
        match said(&mut c).await.as_str() {
            "fired tick" => continue, // a firing that was already on its way
            other => break other.to_owned(),
        }
    };
    assert_eq!(answer, "ok", "cancelled");
    assert_eq!(command(&mut c, "timers").await, "timers: ");
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_caps_are_enforced() {
    let (bridge, mut c) = start_probe(settings(), "max_timers = 2\nmin_timer_period_ms = 1000\n").await;

    assert_eq!(command(&mut c, "after a 60000").await, "ok");
    assert_eq!(command(&mut c, "after b 60000").await, "ok");
    assert_eq!(command(&mut c, "after c 60000").await, "err TimerError::TooMany(2)");
    assert_eq!(command(&mut c, "after a 50000").await, "ok", "replacing a tag is not one more");
    assert_eq!(command(&mut c, "cancel b").await, "ok");
    assert_eq!(command(&mut c, "every d 500").await, "err TimerError::TooFrequent(1000)");
    assert_eq!(command(&mut c, "every d 1000").await, "ok");
    assert_eq!(command(&mut c, "cancel d").await, "ok");
    assert!(command(&mut c, "cron e Mars/Olympus 0 9 * * *").await.starts_with("err TimerError::BadSchedule"));
    assert!(command(&mut c, "cron e - 0 9 31 2 *").await.starts_with("err TimerError::BadSchedule"), "never fires");
    assert!(command(&mut c, "cron e - not a cron").await.starts_with("err TimerError::BadSchedule"));
    assert_eq!(command(&mut c, "cron e Asia/Shanghai 0 9 * * mon-fri").await, "ok");
    assert_eq!(command(&mut c, &format!("after {} 10", "x".repeat(300))).await, "err TimerError::BadTag");
    assert_eq!(command(&mut c, "timers").await, "timers: a,e");
    bridge.shutdown().await;
}

/// Due timers and queued events take turns: a bot with thousands of timers
/// due at once still answers the next message between two of them, not after
/// the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_timers_do_not_starve_events() {
    // In memory, so setting and firing them is quick and the message arrives
    // while most are still due.
    let mut s = settings();
    s.ephemeral = true;
    let (bridge, mut c) = start_probe(s, "max_timers = 2000\n").await;

    assert_eq!(command(&mut c, "burst 2000").await, "2000 set");
    assert_eq!(command(&mut c, "say-config missing").await, "none");
    // Handled so far: the two commands and the timers fired before the second.
    let handled = bridge.wasm.status("probe").unwrap().handled;
    assert!(handled < 2000, "the message waited for every due timer: {handled} handled");
    eventually("every timer fired", || bridge.wasm.status("probe").is_some_and(|st| st.handled == 2002)).await;
    bridge.shutdown().await;
}

/// The real binary, killed with SIGKILL while a one-shot and a repeating
/// timer wait. The one-shot comes due while the bridge is down and fires
/// once when the bot is back; the repeating one does not make up its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_survive_sigkill_and_do_not_burst() {
    let dir = tempfile::tempdir().unwrap();
    let bots = dir.path().join("bots");
    write_toml(&bots, "probe", "min_timer_period_ms = 100\n");
    install(&bots, "probe", &commander());
    let (mut child, url) = crate::durability::spawn(dir.path());
    let mut c = Client::connect(&format!("{url}?outgoing=1")).await;
    assert_eq!(command(&mut c, "after once 1000").await, "ok");
    assert_eq!(command(&mut c, "every tick 200").await, "ok");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    drop(c);

    // Down for 3 s: `once` comes due, `tick` misses about 15 runs. The bot
    // comes back after the client is connected, so no firing goes unseen.
    let wasm = std::fs::read(bots.join("probe.wasm")).unwrap();
    std::fs::remove_file(bots.join("probe.wasm")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut child, url) = crate::durability::spawn(dir.path());
    let mut c = Client::connect(&format!("{url}?outgoing=1")).await;
    install(&bots, "probe", &wasm);
    let start = Instant::now();
    let mut fired: Vec<(String, Duration)> = Vec::new();
    while start.elapsed() < Duration::from_millis(1500) {
        let Ok(text) = tokio::time::timeout(Duration::from_millis(200), said(&mut c)).await else { continue };
        fired.push((text, start.elapsed()));
    }
    let once = fired.iter().filter(|(t, _)| t == "fired once").count();
    assert_eq!(once, 1, "the missed one-shot fires exactly once: {fired:?}");
    // From the first tick on, ticks come one period apart at most once for
    // the missed runs: a burst would put many ticks in the first 100 ms.
    let ticks: Vec<Duration> = fired.iter().filter(|(t, _)| t == "fired tick").map(|(_, at)| *at).collect();
    assert!(!ticks.is_empty(), "the repeating timer runs again: {fired:?}");
    let burst = ticks.iter().filter(|at| **at < ticks[0] + Duration::from_millis(100)).count();
    assert!(burst <= 2, "no burst of missed runs: {fired:?}");
    drop(c);
    child.kill().ok();
    child.wait().ok();
}
