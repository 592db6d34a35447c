//! The real binary, killed with SIGKILL mid-traffic and restarted on the same
//! state dir: acknowledged IDs still resolve, acknowledged kv writes are there,
//! and `since` resumes across the restart.

use std::path::Path;
use std::process::{Child, Command};

use serde_json::{Value, json};

use crate::binary::spawn_bridge;
use crate::guests::*;
use crate::support::*;

/// Starts `botbridge serve` on port 0; returns the child and its WebSocket URL.
pub(crate) fn spawn(dir: &Path) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_botbridge"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--bots")
        .arg(dir.join("bots"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("RUST_LOG", "info");
    spawn_bridge(cmd)
}

fn face(out: &Value) -> Option<i64> {
    (out["data"]["message"][1]["type"] == "Face").then(|| out["data"]["message"][1]["id"].as_i64()).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    install(&dir.path().join("bots"), "counter", &counter());
    let (mut child, url) = spawn(dir.path());
    let mut c = Client::connect(&format!("{url}?outgoing=1")).await;

    let mut reply_keys = Vec::new();
    let mut sources = Vec::new();
    let mut receipts = Vec::new();
    let mut last_seq = 0;
    for i in 1..=5 {
        let ev = c.group_message(GROUP, MEMBER, &format!("message {i}")).await;
        last_seq = ev["seq"].as_u64().unwrap();
        reply_keys.push(reply_key(&ev));
        sources.push(source_id(&ev));
        // The counter bot's acknowledged kv write, announced as a Face.
        let out = c.next_of("outgoing").await;
        assert_eq!(face(&out), Some(i), "{out}");
        sources.push(out["data"]["sourceId"].as_str().unwrap().to_owned());
        let sent = c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("noted")})).await;
        receipts.push(sent["receiptId"].as_str().unwrap().to_owned());
        sources.push(sent["sourceId"].as_str().unwrap().to_owned());
    }
    // One message recalled before the crash: the recall is acknowledged, so it is durable.
    let recalled = sources[2].clone();
    c.ok("Recall", json!({"messageSource": recalled})).await;
    // IDs handed out in events are committed within the group-commit delay.
    tokio::time::sleep(botbridge::store::GROUP_COMMIT * 4).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    drop(c);

    let (mut child, url) = spawn(dir.path());
    // Resume across the restart: the buffered events after `since` come back.
    let mut r = Client::connect(&format!("{url}?since={}&outgoing=1", last_seq - 2)).await;
    for seq in last_seq - 1..=last_seq {
        let e = r.next_of("msg").await;
        assert_eq!(e["seq"], seq);
    }
    // Every acknowledged ID resolves.
    for key in &reply_keys {
        r.ok("Reply", json!({"id": key, "message": plain("still here")})).await;
    }
    for source in &sources {
        r.ok(
            "SendToGroup",
            json!({"group": GROUP, "message": [{"type": "Quote", "id": source}, {"type": "Plain", "msg": "quoting"}]}),
        )
        .await;
    }
    // The sim world kept its messages: what was recalled stays recalled, the rest can be.
    assert_eq!(r.code("Recall", json!({"messageSource": recalled})).await, "already_recalled");
    assert_eq!(r.code("RecallReceipt", json!({"receipt": receipts[0]})).await, "already_recalled");
    for receipt in &receipts[1..] {
        r.ok("RecallReceipt", json!({"receipt": receipt})).await;
    }
    r.ok("Recall", json!({"messageSource": sources[0]})).await;
    assert_eq!(r.code("RecallReceipt", json!({"receipt": "cNOTAREALRECEIPTNOTAREALRECEI"})).await, "unknown_receipt");
    // The kv write survived: the count goes on from 5.
    let ev = r.group_message(GROUP, MEMBER, "after the crash").await;
    assert!(ev["seq"].as_u64().unwrap() > last_seq, "seq never goes back");
    let out = loop {
        let out = r.next_of("outgoing").await;
        if out["data"]["by"] == "counter" {
            break out;
        }
    };
    assert_eq!(face(&out), Some(6), "{out}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A wasm bot's send does not wait for the disk, but the commit pipeline is
/// ordered: once the bot's later kv write is durable, so is the ID it was
/// given before. Killed the moment the bot says so, with no grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_a_bot_was_given_is_durable_once_its_later_kv_write_is() {
    let dir = tempfile::tempdir().unwrap();
    install(&dir.path().join("bots"), "keeper", &source_keeper());
    let (mut child, url) = spawn(dir.path());
    let mut c = Client::connect(&format!("{url}?outgoing=1")).await;
    let mut kept = Vec::new();
    for i in 0..3 {
        c.group_message(GROUP, MEMBER, &format!("keep {i}")).await;
        let stored = loop {
            let out = c.next_of("outgoing").await;
            if let Some(text) = out["data"]["message"][1]["msg"].as_str()
                && let Some(id) = text.strip_prefix("stored ")
            {
                break id.to_owned();
            }
        };
        kept.push(stored);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    drop(c);

    let (mut child, url) = spawn(dir.path());
    let mut r = Client::connect(&url).await;
    for source in &kept {
        let quote = json!([{"type": "Quote", "id": source}, {"type": "Plain", "msg": "quoting"}]);
        r.ok("SendToGroup", json!({"group": GROUP, "message": quote})).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_foreign_state_file_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/botbridge.redb"), b"not a database, just some bytes....").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_botbridge"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--bots")
        .arg(dir.path().join("bots"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("botbridge.redb") && stderr.contains("corrupt"), "{stderr}");
    // The file was not replaced.
    assert_eq!(std::fs::read(dir.path().join("state/botbridge.redb")).unwrap(), b"not a database, just some bytes....");
}
