//! Bad input: every malformed frame gets a typed error, the connection stays
//! usable and nothing changes. Oversize frames close with 1009.

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_change_nothing() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let groups_before = c.ok("ListGroups", json!({})).await;
    let members_before = c.ok("ListMembers", json!({"group": GROUP})).await;
    let seq_before = bridge.bridge.bus().last_seq();

    let cases: Vec<(&str, Value, &str)> = vec![
        ("{not json", Value::Null, "malformed_json"),
        ("[1, 2]", Value::Null, "malformed_json"),
        ("\"SendToGroup\"", Value::Null, "malformed_json"),
        (r#"{"id": 1, "type": "Teleport", "content": {}}"#, json!(1), "unknown_type"),
        (r#"{"id": "a", "content": {}}"#, json!("a"), "bad_request"),
        (r#"{"id": "b", "type": 7}"#, json!("b"), "bad_request"),
        (r#"{"id": "c", "type": "SendToGroup", "content": {"message": []}}"#, json!("c"), "bad_request"),
        (
            r#"{"id": "d", "type": "SendToGroup", "content": {"group": "twenty", "message": []}}"#,
            json!("d"),
            "bad_request",
        ),
        (
            r#"{"id": "e", "type": "MuteMember", "content": {"group": 20001, "member": 30003}}"#,
            json!("e"),
            "bad_request",
        ),
        (
            r#"{"id": "f", "type": "MuteMember", "content": {"group": 20001, "member": 30003, "time": "long"}}"#,
            json!("f"),
            "bad_request",
        ),
        (
            r#"{"id": "g", "type": "SendToGroup", "content": {"group": 20001, "message": [{"type": "Hologram"}]}}"#,
            json!("g"),
            "bad_request",
        ),
        (
            r#"{"id": "h", "type": "SendToGroup", "content": {"group": 20001, "message": [], "extra": 1}}"#,
            json!("h"),
            "bad_request",
        ),
        (r#"{"id": "i", "type": "Recall", "content": {"messageSource": 5}}"#, json!("i"), "bad_request"),
        (r#"{"id": {"x": 1}, "type": "ListGroups"}"#, Value::Null, "bad_request"),
        (r#"{"id": 2, "type": "ListGroups", "content": [], "x": 1}"#, json!(2), "bad_request"),
        (r#"{"id": 3, "type": "ListGroups", "content": []}"#, json!(3), "bad_request"),
        (
            r#"{"id": 4, "type": "MuteMember", "content": {"group": 20001, "member": 30003, "time": 99999999999}}"#,
            json!(4),
            "bad_request",
        ),
    ];
    for (text, id, code) in cases {
        c.send_text(text).await;
        let r = loop {
            let f = c.frame().await;
            if f["type"] == "result" {
                break f;
            }
        };
        assert_eq!(r["ok"], false, "{text}: {r}");
        assert_eq!(r["error"]["code"], code, "{text}: {r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
        if !id.is_null() {
            assert_eq!(r["id"], id, "{text}: id echoed");
        }
    }
    c.ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let r = c.frame().await;
    assert_eq!(r["error"]["code"], "malformed_json");

    // Still usable, and nothing changed.
    assert_eq!(c.ok("ListGroups", json!({})).await, groups_before);
    assert_eq!(c.ok("ListMembers", json!({"group": GROUP})).await, members_before);
    assert_eq!(bridge.bridge.bus().last_seq(), seq_before);
    // Numeric ids are echoed as numbers.
    c.send_text(r#"{"id": 42, "type": "ListFriends", "content": {}}"#).await;
    assert_eq!(c.result_for(&json!(42)).await["ok"], true);
    bridge.shutdown().await;
}

#[tokio::test]
async fn oversize_frames_close_with_1009() {
    let mut s = settings();
    s.ws.max_frame = 4096;
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    // At the limit is fine.
    let fits =
        json!({"id": 1, "type": "SendToGroup", "content": {"group": GROUP, "message": plain(&"a".repeat(3000))}});
    c.send_text(&fits.to_string()).await;
    assert_eq!(c.result_for(&json!(1)).await["ok"], true);
    let big =
        json!({"id": 2, "type": "SendToGroup", "content": {"group": GROUP, "message": plain(&"a".repeat(10_000))}});
    c.send_text(&big.to_string()).await;
    let (close, texts) = until_close(&mut c.ws).await;
    assert_eq!(texts, 0, "no answer to an oversize frame");
    assert_eq!(close.expect("close frame has a code").code, CloseCode::Size);
    // Another client is unaffected.
    let mut other = Client::connect(&bridge.ws_url()).await;
    other.ok("ListGroups", json!({})).await;
    bridge.shutdown().await;
}
