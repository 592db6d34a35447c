//! `/metrics`: Prometheus text that a real parser reads, whose counters move
//! with real traffic, and that only the operator's tokens may read.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::guests::*;
use crate::support::*;

/// One scrape, parsed: each sample by name and labels (`name{k=v,…}`, sorted).
async fn scrape(addr: std::net::SocketAddr, token: &str) -> HashMap<String, f64> {
    let (status, body) =
        http_request(addr, "GET", "/metrics", &[("Authorization", &format!("Bearer {token}"))], vec![]).await;
    assert_eq!(status, 200, "{body}");
    let Value::String(text) = body else { panic!("metrics are text, not JSON: {body}") };
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format");
    let mut samples = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    samples
}

fn get(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or(&0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let mut s = settings();
    s.ws.token = Some("watch-me".into());
    s.admin_token = Some("admin-me".into());
    install(&s.bots, "echo", &example("echo"));
    let bridge = start(s).await;
    eventually("echo loads", || bridge.wasm.status("echo").is_some()).await;
    let before = scrape(bridge.addr, "watch-me").await;
    assert_eq!(get(&before, "botbridge_account_online{account=10001}"), 1.0);
    let version = bridge.wasm.status("echo").unwrap().version;
    assert_eq!(get(&before, &format!("botbridge_bot{{bot=echo,state=running,version={version}}}")), 1.0);

    let mut c = Client::connect(&format!("{}?outgoing=1&token=watch-me", bridge.ws_url())).await;
    for i in 0..3 {
        c.group_message(GROUP, MEMBER, &format!("/echo {i}")).await;
        c.next_of("outgoing").await;
    }
    assert_eq!(c.code("Recall", json!({"messageSource": "m-no-such-id"})).await, "unknown_message");
    // A client's send is answered once its IDs are committed.
    c.ok("SendToGroup", json!({"group": GROUP, "message": plain("committed")})).await;
    eventually("echo handled all three", || bridge.wasm.handled("echo") == Some(3)).await;
    let after = scrape(bridge.addr, "admin-me").await;

    let moved = |key: &str| get(&after, key) - get(&before, key);
    assert_eq!(moved("botbridge_events_total{}"), 3.0);
    assert_eq!(moved("botbridge_operations_total{op=SimMessage,result=ok}"), 3.0);
    assert_eq!(moved("botbridge_operations_total{op=Reply,result=ok}"), 3.0, "the echo bot's replies");
    assert_eq!(moved("botbridge_operations_total{op=Recall,result=unknown_message}"), 1.0);
    assert_eq!(moved("botbridge_operation_duration_seconds{op=SimMessage}"), 3.0, "one observation each");
    assert_eq!(moved("botbridge_bot_handled_total{bot=echo}"), 3.0);
    assert!(moved("botbridge_deliveries_total{}") >= 6.0, "three events to the bot and the client");
    assert_eq!(get(&after, "botbridge_ws_connections{}"), 1.0);
    assert!(moved("botbridge_state_commits_total{}") >= 1.0, "the acknowledged send was committed");
    assert!(get(&after, "botbridge_state_commit_duration_seconds{}") >= 1.0);
    drop(c);
    bridge.shutdown().await;
}

/// A bot past its `ops_burst` is seen on `/metrics`, by name, not only in a
/// debug log: its refused operations are counted, the other bot's are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bots_refused_operations_are_counted() {
    let mut s = settings();
    s.ws.token = Some("watch-me".into());
    install(&s.bots, "echo", &example("echo"));
    install(&s.bots, "hasty", &example("echo"));
    // One operation, never refilled: its second and third replies are refused.
    std::fs::write(s.bots.join("hasty.toml"), "ops_per_second = 0.0\nops_burst = 1\n").unwrap();
    let bridge = start(s).await;
    eventually("both load", || bridge.wasm.status("echo").is_some() && bridge.wasm.status("hasty").is_some()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1&token=watch-me", bridge.ws_url())).await;
    for i in 0..3 {
        c.group_message(GROUP, MEMBER, &format!("/echo {i}")).await;
    }
    eventually("both handled all three", || {
        bridge.wasm.handled("echo") == Some(3) && bridge.wasm.handled("hasty") == Some(3)
    })
    .await;
    let samples = scrape(bridge.addr, "watch-me").await;
    assert_eq!(get(&samples, "botbridge_bot_ops_limited_total{bot=hasty}"), 2.0);
    assert_eq!(get(&samples, "botbridge_bot_ops_limited_total{bot=echo}"), 0.0);
    assert_eq!(get(&samples, "botbridge_operations_total{op=Reply,result=ok}"), 4.0, "three from echo, one from hasty");
    assert_eq!(bridge.wasm.status("hasty").unwrap().failures, 0, "a refusal is a result, not a trap");
    drop(c);
    bridge.shutdown().await;
}

#[tokio::test]
async fn metrics_need_the_operators_token() {
    let mut s = settings();
    s.ws.token = Some("watch-me".into());
    let bridge = start(s).await;
    for headers in [vec![], vec![("Authorization", "Bearer wrong")], vec![("Origin", "http://evil.example")]] {
        let (status, _) = http_request(bridge.addr, "GET", "/metrics", &headers, vec![]).await;
        assert!(status == 401 || status == 403, "{headers:?}: {status}");
    }
    let (status, _) = http_request(bridge.addr, "GET", "/metrics?token=watch-me", &[], vec![]).await;
    assert_eq!(status, 200);
    bridge.shutdown().await;
}
