//! The event stream: resume with `since`, the outgoing audit stream, IDs shared
//! across connections, a stalled client that cannot hold up the others, and a
//! burst that slows to the bots' pace.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn since_replays_what_was_missed() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    for i in 1..=5 {
        c.group_message(GROUP, MEMBER, &format!("m{i}")).await;
    }
    drop(c);
    let mut r = Client::connect(&format!("{}?since=2", bridge.ws_url())).await;
    assert_eq!(r.hello["seq"], 5);
    for seq in 3..=5 {
        let e = r.event().await;
        assert_eq!(e["seq"], seq);
        assert_eq!(e["data"]["message"][1]["msg"], format!("m{seq}"));
    }
    // Then live events follow, in order, with nothing repeated.
    let e = r.group_message(GROUP, MEMBER, "live").await;
    assert_eq!(e["seq"], 6);
    // A replayed reply key still works.
    let mut again = Client::connect(&format!("{}?since=4", bridge.ws_url())).await;
    let e = again.event().await;
    assert_eq!(e["seq"], 5);
    again.ok("Reply", json!({"id": reply_key(&e), "message": plain("caught up")})).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn since_older_than_the_buffer_says_so() {
    let mut s = settings();
    s.bus.replay = 3;
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    for i in 1..=6 {
        c.group_message(GROUP, MEMBER, &format!("m{i}")).await;
    }
    let mut r = Client::connect(&format!("{}?since=1", bridge.ws_url())).await;
    assert_eq!(r.event().await, json!({"type": "gap", "from": 2, "to": 3}));
    for seq in 4..=6 {
        assert_eq!(r.event().await["seq"], seq);
    }
    bridge.shutdown().await;
}

#[tokio::test]
async fn outgoing_frames_only_for_those_who_ask() {
    let bridge = start(settings()).await;
    let mut audit = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let mut plain_client = Client::connect(&bridge.ws_url()).await;
    let mut actor = Client::connect(&format!("{}?name=actor", bridge.ws_url())).await;
    let sent = actor.ok("SendToFriend", json!({"friend": FRIEND, "message": plain("audited")})).await;
    let out = audit.next_of("outgoing").await;
    assert_eq!(out["bot"], BOT);
    assert_eq!(out["data"]["sourceId"], sent["sourceId"]);
    assert_eq!(out["data"]["target"], json!({"type": "friend", "friend": FRIEND}));
    assert!(out["data"]["by"].as_str().unwrap().starts_with("actor#"));
    // The plain client sees the next event, not the outgoing frame.
    let seq = actor.ok("SimMessage", json!({"friend": FRIEND, "message": plain("x")})).await["seq"].clone();
    let e = plain_client.event().await;
    assert_eq!(e["type"], "msg");
    assert_eq!(e["seq"], seq);
    bridge.shutdown().await;
}

#[tokio::test]
async fn ids_cross_connections() {
    let bridge = start(settings()).await;
    let mut a = Client::connect(&bridge.ws_url()).await;
    let mut b = Client::connect(&bridge.ws_url()).await;
    let seen_by_a = a.group_message(GROUP, MEMBER, "cross").await;
    let seen_by_b = b.event().await;
    assert_eq!(seen_by_a, seen_by_b, "both clients see the same event and IDs");
    b.ok("Reply", json!({"id": reply_key(&seen_by_a), "message": plain("b answers a's event")})).await;
    let sent = a.ok("SendToGroup", json!({"group": GROUP, "message": plain("a sends")})).await;
    b.ok("RecallReceipt", json!({"receipt": sent["receiptId"]})).await;
    b.ok("Recall", json!({"messageSource": source_id(&seen_by_a)})).await;
    // Both see both recalls.
    for c in [&mut a, &mut b] {
        assert_eq!(c.next_of("revoke").await["data"]["msgID"], sent["sourceId"]);
        assert_eq!(c.next_of("revoke").await["data"]["msgID"], source_id(&seen_by_a));
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_stop_the_others() {
    let mut s = settings();
    s.bus.queue = 64;
    let bridge = start(s).await;
    // Connects, then never reads.
    let (mut stalled, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await.unwrap();
    let mut reader = Client::connect(&bridge.ws_url()).await;
    let mut sender = Client::connect(&bridge.ws_url()).await;
    // Enough bytes to fill both kernel socket buffers and the 64-frame queue.
    let text = "x".repeat(64 * 1024);
    let total = 400u64;
    let consume = tokio::spawn(async move {
        for seq in 1..=total {
            let e = reader.event().await;
            assert_eq!(e["seq"], seq, "every event, in order");
        }
    });
    for _ in 0..total {
        sender.ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain(&text)})).await;
    }
    tokio::time::timeout(Duration::from_secs(60), consume).await.expect("reader got every event").unwrap();
    assert!(bridge.bridge.bus().dropped_consumers() >= 1, "the stalled client was dropped");
    // When it finally reads, it finds a close frame telling it how to resume.
    let close = until_close(&mut stalled).await.0.expect("close code");
    assert_eq!(u16::from(close.code), botbridge::ws::CLOSE_LAGGED);
    assert!(close.reason.as_str().starts_with("lagged; resume with since="), "{}", close.reason);
    bridge.shutdown().await;
}

/// A client bursts 20 000 `SimMessage`s with default settings while reading
/// what comes back: it is never disconnected, every operation is answered,
/// and no bot loses an event (the burst slows to the bots' pace instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twenty_thousand_loses_nothing() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const N: usize = 20_000;
    let s = settings();
    crate::guests::install(&s.bots, "echo", &crate::guests::example("echo"));
    std::fs::write(s.bots.join("echo.toml"), "ops_per_second = 10000.0\nops_burst = 100000\n").unwrap();
    crate::guests::install(&s.bots, "idle", &crate::guests::idle());
    let bridge = start(s).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?outgoing=1", bridge.ws_url())).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            let op = json!({"type": "SimMessage", "id": i, "content": {"group": GROUP, "sender": MEMBER, "message": plain(&format!("/echo {i}"))}});
            tx.feed(Message::Text(op.to_string().into())).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    let (mut results, mut events, mut echoes) = (0, 0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while results < N || events < N || echoes < N {
        let msg = tokio::time::timeout_at(deadline, rx.next())
            .await
            .unwrap_or_else(|_| panic!("after {results} results, {events} events, {echoes} echoes: no more frames"));
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("after {results} results, {events} events, {echoes} echoes: {other:?}"),
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        match frame["type"].as_str() {
            Some("result") => {
                assert_eq!(frame["ok"], true, "{frame}");
                results += 1;
            }
            Some("msg") => {
                events += 1;
                assert_eq!(frame["seq"], events, "events in order, none missing");
            }
            Some("outgoing") if frame["data"]["by"] == "echo" => echoes += 1,
            _ => {}
        }
    }
    let _tx = writer.await.unwrap();
    for bot in ["echo", "idle"] {
        crate::guests::eventually(&format!("{bot} handled every event"), || bridge.wasm.handled(bot) == Some(N as u64))
            .await;
    }
    assert_eq!(bridge.bridge.bus().dropped_consumers(), 0, "no consumer lagged");
    bridge.shutdown().await;
}
