//! Wasm bots in a real bridge: the echo example answers, IDs cross between wasm
//! bots and WebSocket clients, permissions, kv across a hot reload, `check`.

use serde_json::json;

use crate::guests::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_answers_in_every_scene() {
    let s = settings();
    install(&s.bots, "echo", &example("echo"));
    let bridge = start(s).await;
    assert!(bridge.wasm.status("echo").is_some(), "loaded at start");
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    c.group_message(GROUP, MEMBER, "/echo hello from the group").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["by"], "echo");
    assert_eq!(out["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(out["data"]["message"][1], json!({"type": "Plain", "msg": "hello from the group"}));

    c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("/echo psst")})).await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "friend", "friend": FRIEND}));
    assert_eq!(out["data"]["message"][1]["msg"], "psst");

    c.ok("SimMessage", json!({"group": GROUP, "sender": STRANGER, "temp": true, "message": plain("/echo temp")})).await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "temp", "group": GROUP, "user": STRANGER}));

    // Not a command: no answer. The next outgoing frame is the next command's.
    c.group_message(GROUP, MEMBER, "echo without slash").await;
    c.group_message(GROUP, MEMBER, "/echo second").await;
    assert_eq!(c.next_of("outgoing").await["data"]["message"][1]["msg"], "second");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_cross_between_wasm_bots_and_clients() {
    let s = settings();
    install(&s.bots, "echo", &example("echo"));
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    // A client recalls what the wasm bot sent.
    c.group_message(GROUP, MEMBER, "/echo recall me").await;
    let out = c.next_of("outgoing").await;
    let source = out["data"]["sourceId"].as_str().unwrap().to_owned();
    c.ok("Recall", json!({"messageSource": source})).await;
    let revoke = c.next_of("revoke").await;
    assert_eq!(revoke["data"]["msgID"], source);
    assert_eq!(revoke["data"]["revokee"], BOT);

    // A wasm bot recalls a message whose ID the client also saw.
    install(bridge.wasm.dir(), "recaller", &recaller());
    eventually("recaller loaded", || bridge.wasm.status("recaller").is_some()).await;
    let seen = c.group_message(GROUP, MEMBER, "delete me please").await;
    let revoke = c.next_of("revoke").await;
    assert_eq!(revoke["data"]["msgID"], source_id(&seen));
    assert_eq!(revoke["data"]["revoker"], BOT);
    // The client cannot recall it again: the world saw the bot's recall.
    assert_eq!(c.code("Recall", json!({"messageSource": source_id(&seen)})).await, "already_recalled");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_operation_is_a_forbidden_result_not_a_trap() {
    let s = settings();
    install(&s.bots, "limited", &result_recorder());
    std::fs::write(s.bots.join("limited.toml"), "[permissions]\ngroups = [20002]\n").unwrap();
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    c.group_message(GROUP, MEMBER, "go").await;
    eventually("the bot stored its result", || bridge.wasm.kv_get("limited", "count").is_some()).await;
    let raw = bridge.wasm.kv_get("limited", "count").unwrap();
    assert_eq!(raw[0], 1, "result is err");
    assert_eq!(raw[4], 22, "error code is forbidden (index 22 of error-code)");
    eventually("handled", || bridge.wasm.status("limited").is_some_and(|st| st.handled == 1)).await;
    assert_eq!(bridge.wasm.status("limited").unwrap().failures, 0, "no trap");
    // Nothing was sent.
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_survives_a_hot_reload() {
    let s = settings();
    install(&s.bots, "counter", &counter());
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    for i in 0..3 {
        c.group_message(GROUP, MEMBER, &format!("m{i}")).await;
    }
    eventually("three counted", || bridge.wasm.kv_get("counter", "count") == Some(vec![3])).await;
    let old = bridge.wasm.status("counter").unwrap().version;
    // A new build of the same bot (one more data byte, so another hash).
    let mut new_version = counter();
    new_version.extend_from_slice(&[0, 4, 3, b'p', b'a', b'd']); // a custom section "pad"
    install(&s.bots, "counter", &new_version);
    eventually("new version running", || bridge.wasm.status("counter").is_some_and(|st| st.version != old)).await;
    c.group_message(GROUP, MEMBER, "after reload").await;
    eventually("count continued to four", || bridge.wasm.kv_get("counter", "count") == Some(vec![4])).await;
    bridge.shutdown().await;
}

#[test]
fn check_reports_fit_and_misfit() {
    let report = botbridge::wasm::check(&example("echo")).expect("echo compiles");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert!(report.exports.iter().any(|e| e == "handle (func)"));
    assert!(report.imports.iter().any(|i| i.starts_with("botbridge:bot/operations@0.3.0")));

    assert!(botbridge::wasm::check(b"definitely not wasm").is_err());
    let core = wat::parse_str("(module)").unwrap();
    assert!(botbridge::wasm::check(&core).unwrap_err().to_string().contains("core wasm module"));
    // A component that imports something the world does not offer.
    let foreign = wat::parse_str(r#"(component (import "acme:rockets/launch" (func)))"#).unwrap();
    let report = botbridge::wasm::check(&foreign).expect("compiles");
    assert!(report.problem.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_guest_gets_stdout_but_no_preopened_directories() {
    let s = settings();
    install(&s.bots, "prober", &wasi_prober("wasi ok"));
    let bridge = start(s).await;
    let report = botbridge::wasm::check(&wasi_prober("wasi ok")).expect("compiles");
    assert!(report.imports.iter().any(|i| i.starts_with("wasi:")), "it imports WASI: {:?}", report.imports);
    assert!(report.problem.is_none(), "{:?}", report.problem);
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    c.group_message(GROUP, MEMBER, "probe").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["by"], "prober");
    assert_eq!(out["data"]["message"][1]["msg"], "wasi ok");
    bridge.shutdown().await;
}

/// `tests/fixtures/echo-0.1.0.wasm` is the echo example as built for
/// `botbridge:bot@0.1.0` (with `init`, before timers, HTTP and config): it
/// loads and answers on today's host unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_built_for_world_0_1_0_keeps_running() {
    let old = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo-0.1.0.wasm"))
        .expect("the 0.1.0 fixture");
    let report = botbridge::wasm::check(&old).expect("compiles");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert!(report.imports.iter().any(|i| i.starts_with("botbridge:bot/operations@0.1.0")), "{:?}", report.imports);
    assert!(report.exports.iter().any(|e| e == "init (func)"));

    let s = settings();
    install(&s.bots, "old-echo", &old);
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    c.group_message(GROUP, MEMBER, "/echo still here").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["by"], "old-echo");
    assert_eq!(out["data"]["message"][1]["msg"], "still here");
    let lines = bridge.wasm.logbook().recent("old-echo");
    assert!(lines.iter().any(|l| l.message == "echo ready"), "its `init` ran: {lines:?}");
    bridge.shutdown().await;
}

/// `tests/fixtures/echo-0.2.0.wasm` is the echo example as built for
/// `botbridge:bot@0.2.0`: it answers on today's (0.3.0) host, events 0.2.0 has
/// no case for (a poke) pass it by without a trap. (A forwarded message
/// reaching it as `other`: `wasm::compat`'s unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_built_for_world_0_2_0_keeps_running() {
    let old = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo-0.2.0.wasm"))
        .expect("the 0.2.0 fixture");
    let report = botbridge::wasm::check(&old).expect("compiles");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert!(report.imports.iter().any(|i| i.starts_with("botbridge:bot/operations@0.2.0")), "{:?}", report.imports);

    let s = settings();
    install(&s.bots, "echo-0-2", &old);
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let poke =
        json!({"event": {"type": "group", "data": {"type": "poke", "from": MEMBER, "target": BOT, "group": GROUP}}});
    c.ok("SimEvent", poke).await;
    c.group_message(GROUP, MEMBER, "/echo still here").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["by"], "echo-0-2");
    assert_eq!(out["data"]["message"][1]["msg"], "still here");
    let status = bridge.wasm.status("echo-0-2").expect("running");
    assert_eq!(status.failures, 0, "the poke did not trap it");
    assert!(status.handled >= 2, "it took the poke and the message: {status:?}");
    bridge.shutdown().await;
}
