//! Hostile bots are contained while a well-behaved bot beside them answers
//! every single event.

use std::time::Instant;

use serde_json::json;

use crate::guests::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bots_are_contained_and_the_good_one_answers_everything() {
    let s = settings();
    install(&s.bots, "echo", &example("echo"));
    install(&s.bots, "looper", &infinite_loop());
    std::fs::write(s.bots.join("looper.toml"), "cpu_ms = 50\n").unwrap();
    install(&s.bots, "bomb", &memory_bomb());
    std::fs::write(s.bots.join("bomb.toml"), "memory_mb = 16\n").unwrap();
    install(&s.bots, "trapper", &trap());
    install(&s.bots, "recursor", &deep_recursion());
    install(&s.bots, "flooder", &flood());
    std::fs::write(s.bots.join("flooder.toml"), "ops_per_second = 2.0\nops_burst = 5\n").unwrap();
    let bridge = start(s).await;
    for name in ["echo", "looper", "bomb", "trapper", "recursor", "flooder"] {
        assert!(bridge.wasm.status(name).is_some(), "{name} loaded");
    }
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let started = Instant::now();
    let n = 12;
    for i in 0..n {
        c.ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain(&format!("/echo {i}"))})).await;
    }
    let mut echoed = Vec::new();
    let mut flooded = 0;
    while echoed.len() < n {
        let out = c.next_of("outgoing").await;
        match out["data"]["by"].as_str().unwrap() {
            "echo" => echoed.push(out["data"]["message"][1]["msg"].as_str().unwrap().to_owned()),
            "flooder" => flooded += 1,
            other => panic!("unexpected sender {other}"),
        }
    }
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(echoed, expected, "the good bot answered every event, in order");

    let echo = bridge.wasm.status("echo").unwrap();
    assert_eq!(echo.failures, 0);
    for (name, needle) in
        [("looper", "deadline"), ("bomb", "unreachable"), ("trapper", "unreachable"), ("recursor", "stack")]
    {
        // The looper spends its whole CPU budget before it fails: wait for it.
        eventually("a failure", || bridge.wasm.status(name).unwrap().failures >= 1).await;
        let st = bridge.wasm.status(name).unwrap();
        assert!(st.failures >= 1, "{name} failed: {st:?}");
        let err = st.last_error.clone().unwrap_or_default().to_lowercase();
        assert!(err.contains(needle), "{name}: {err}");
    }
    eventually("crash loops parked", || {
        ["looper", "trapper"]
            .iter()
            .all(|n| matches!(bridge.wasm.status(n).unwrap().state, botbridge::wasm::RunState::Parked { .. }))
    })
    .await;
    // The flood was cut to the burst plus the refill.
    let elapsed = started.elapsed().as_secs_f64();
    let flooder = bridge.wasm.status("flooder").unwrap();
    assert_eq!(flooder.failures, 0, "rate limiting is a result, not a trap");
    let allowed = 5.0 + 2.0 * (elapsed + 1.0);
    // Count the rest of the flood that may still be arriving.
    let marker = c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("marker")})).await["seq"].clone();
    loop {
        let e = c.event().await;
        if e["type"] == "outgoing" && e["data"]["by"] == "flooder" {
            flooded += 1;
        }
        if e["seq"] == marker && e["type"] == "msg" {
            break;
        }
    }
    assert!(flooded >= 5 && (flooded as f64) <= allowed + 5.0, "flooder sent {flooded}, allowed about {allowed}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_bot_comes_back_when_its_file_changes() {
    let s = settings();
    install(&s.bots, "trapper", &trap());
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    for _ in 0..botbridge::wasm::CRASH_LIMIT {
        c.group_message(GROUP, MEMBER, "boom").await;
    }
    eventually("parked", || {
        matches!(bridge.wasm.status("trapper").unwrap().state, botbridge::wasm::RunState::Parked { .. })
    })
    .await;
    install(&s.bots, "trapper", &sayer("fixed"));
    eventually("replaced", || {
        matches!(bridge.wasm.status("trapper").unwrap().state, botbridge::wasm::RunState::Running)
    })
    .await;
    c.group_message(GROUP, MEMBER, "again").await;
    assert_eq!(c.next_of("outgoing").await["data"]["message"][1]["msg"], "fixed");
    bridge.shutdown().await;
}
