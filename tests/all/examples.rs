//! The example bots of guest-examples/ (Rust on the SDK, Python, JavaScript),
//! built by scripts/build-guests, end to end through a real bridge and the
//! sim world.

use serde_json::{Value, json};

use crate::guests::*;
use crate::support::*;

/// The text of an outgoing frame's message (its Plain elements).
fn text(outgoing: &Value) -> String {
    outgoing["data"]["message"]
        .as_array()
        .expect("message chain")
        .iter()
        .filter(|e| e["type"] == "Plain")
        .filter_map(|e| e["msg"].as_str())
        .collect()
}

/// Sends a group message; returns the text of the next outgoing frame.
async fn answer(c: &mut Client, group: i64, sender: i64, said: &str) -> String {
    c.group_message(group, sender, said).await;
    text(&c.next_of("outgoing").await)
}

async fn bridge_with(name: &str) -> (botbridge::app::Running, Client) {
    let s = settings();
    install(&s.bots, name, &example(name));
    let bridge = start(s).await;
    assert!(bridge.wasm.status(name).is_some(), "{name} loaded at start");
    let c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    (bridge, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderator_recalls_and_mutes_where_it_is_admin() {
    let (bridge, mut c) = bridge_with("moderator").await;

    // Only the owner edits the list; anyone may read it.
    let reply = answer(&mut c, GROUP, ADMIN, "/keywords add spam").await;
    assert_eq!(reply, "Only the group owner can edit the keyword list.");
    let reply = answer(&mut c, GROUP, OWNER, "/keywords add SPAM").await;
    assert!(reply.starts_with("Added \"spam\""), "{reply}");
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/keywords").await, "Keywords: spam");

    // A member says it: the message is recalled and the member muted for 60 s.
    let said = c.group_message(GROUP, MEMBER, "cheap Spam here").await;
    let revoke = c.next_of("revoke").await;
    assert_eq!(revoke["data"]["msgID"], source_id(&said));
    assert_eq!(revoke["data"]["revoker"], BOT);
    let mute = c.next_of("group").await;
    assert_eq!(mute["data"], json!({"type": "mute", "who": MEMBER, "group": GROUP, "operator": BOT, "duration": 60}));
    assert_eq!(c.code("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain("hi")})).await, "muted");

    // An admin ranks as high as the account: the bot says it cannot act.
    let reply = answer(&mut c, GROUP, ADMIN, "spam is fine").await;
    assert!(reply.contains("they rank as high as I do"), "{reply}");

    // Removed from the list: no longer moderated.
    answer(&mut c, GROUP, OWNER, "/keywords remove spam").await;
    c.group_message(GROUP, 30004, "spam again").await;
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderator_says_why_it_cannot_act_without_admin_rights() {
    let (bridge, mut c) = bridge_with("moderator").await;
    // In the lobby the account is a plain member; 30005 owns it.
    answer(&mut c, LOBBY, 30005, "/keywords add spam").await;
    // The list is per group: the same word is fine in GROUP.
    c.group_message(GROUP, MEMBER, "spam in the dev group").await;
    c.expect_nothing_pending().await;

    let said = c.group_message(LOBBY, MEMBER, "spam in the lobby").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "group", "group": LOBBY}));
    assert!(text(&out).contains("I am not an admin of this group"), "{}", text(&out));
    c.expect_nothing_pending().await;
    // Nothing was recalled: the client can still quote-reply to it, and it is not muted.
    c.group_message(LOBBY, MEMBER, "still here").await;
    c.ok("Reply", json!({"id": reply_key(&said), "message": plain("ok")})).await;
    bridge.shutdown().await;
}

/// The counter's answer to `/count` in GROUP.
async fn count(c: &mut Client) -> String {
    answer(c, GROUP, MEMBER, "/count").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_counts_per_group_across_hot_reload_and_restart() {
    let s = settings();
    install(&s.bots, "counter", &example("counter"));
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    c.group_message(GROUP, MEMBER, "one").await;
    c.group_message(GROUP, OWNER, "two").await;
    c.group_message(LOBBY, MEMBER, "elsewhere").await;
    c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("private: not counted")})).await;
    assert_eq!(count(&mut c).await, "3 messages in botbridge dev so far");
    assert_eq!(answer(&mut c, LOBBY, MEMBER, "/count").await, "2 messages in lobby so far");

    // A new version of the file (same code, another hash) takes over and goes on counting.
    let v1 = bridge.wasm.status("counter").unwrap().version;
    install(&s.bots, "counter", &with_custom_section(&example("counter"), "v2"));
    eventually("v2 loaded", || bridge.wasm.status("counter").is_some_and(|st| st.version != v1)).await;
    assert_eq!(count(&mut c).await, "4 messages in botbridge dev so far");

    // And across a restart.
    drop(c);
    bridge.shutdown().await;
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(count(&mut c).await, "5 messages in botbridge dev so far");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_welcomes_and_answers_requests_by_policy() {
    let (bridge, mut c) = bridge_with("greeter").await;

    c.ok(
        "SimEvent",
        json!({"event": {"type": "group", "data": {"type": "memberJoined", "who": 70001, "group": GROUP}}}),
    )
    .await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(out["data"]["message"][2]["type"], "At");
    assert_eq!(out["data"]["message"][2]["target"], 70001);
    assert!(text(&out).starts_with("Welcome, "), "{}", text(&out));

    // Default policy: friend requests accepted, invites rejected.
    c.ok(
        "SimEvent",
        json!({"event": {"type": "user", "data": {"type": "newFriendRequest", "who": 60001, "nick": "Nia"}}}),
    )
    .await;
    assert_eq!(c.next_of("user").await["data"]["type"], "newFriendRequest");
    assert_eq!(c.next_of("user").await["data"], json!({"type": "friendAdded", "who": 60001, "nick": "Nia"}));

    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "groupInvite", "group": 20009, "groupName": "new", "inviter": FRIEND}}}))
        .await;
    let invite = c.next_of("user").await["data"]["requestId"].as_str().unwrap().to_owned();
    eventually("the invite answered", || bridge.wasm.status("greeter").is_some_and(|st| st.handled >= 4)).await;
    assert_eq!(c.code("HandleGroupInvite", json!({"requestId": invite, "accept": true})).await, "already_handled");
    let groups = c.ok("ListGroups", json!({})).await;
    assert!(!groups["groups"].as_array().unwrap().iter().any(|g| g["id"] == 20009), "rejected: {groups}");

    // Only an owner changes the policy; then invites are accepted.
    assert_eq!(
        answer(&mut c, GROUP, MEMBER, "/policy invites accept").await,
        "Only a group owner can change my policies."
    );
    assert_eq!(
        answer(&mut c, GROUP, OWNER, "/policy invites accept").await,
        "Policies: friends accept, invites accept"
    );
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "groupInvite", "group": 20010, "groupName": "newer", "inviter": FRIEND}}}))
        .await;
    assert_eq!(c.next_of("user").await["data"]["type"], "groupInvite");
    assert_eq!(c.next_of("user").await["data"], json!({"type": "groupJoined", "which": 20010}));

    // And friend requests can be left alone.
    assert_eq!(
        answer(&mut c, GROUP, OWNER, "/policy friends ignore").await,
        "Policies: friends ignore, invites accept"
    );
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "newFriendRequest", "who": 60002}}})).await;
    let request = c.next_of("user").await["data"]["requestId"].as_str().unwrap().to_owned();
    c.expect_nothing_pending().await;
    c.ok("HandleFriendRequest", json!({"requestId": request, "accept": false})).await;
    bridge.shutdown().await;
}

/// The Python and JavaScript echo bots: `/echo` in every scene, `/echoes` from kv.
async fn scripted_echo(name: &str) {
    let (bridge, mut c) = bridge_with(name).await;
    assert_eq!(answer(&mut c, GROUP, MEMBER, &format!("/echo hello from {name}")).await, format!("hello from {name}"));
    c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("/echo psst")})).await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "friend", "friend": FRIEND}));
    assert_eq!(text(&out), "psst");
    c.group_message(GROUP, MEMBER, "no command").await;
    c.expect_nothing_pending().await;
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/echoes").await, "2 echoes so far");
    assert_eq!(bridge.wasm.kv_get(name, "echoes").as_deref(), Some(&b"2"[..]));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_echo_answers_and_counts_in_kv() {
    scripted_echo("python-echo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_echo_answers_and_counts_in_kv() {
    scripted_echo("js-echo").await;
}

/// The guide's `botbridge say`: speaks as a member, prints what bots answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_prints_the_bots_answers() {
    let (bridge, _c) = bridge_with("echo").await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_botbridge"))
        .args(["say", "--url", &bridge.ws_url(), "--group", &GROUP.to_string(), "--wait-ms", "2000", "/echo hi there"])
        .output()
        .await
        .expect("runs botbridge say");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("echo → group {GROUP}: hi there\n"));

    // A refused message says why and fails.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_botbridge"))
        .args(["say", "--url", &bridge.ws_url(), "--group", "777", "hello"])
        .output()
        .await
        .expect("runs botbridge say");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_in_group"), "{}", String::from_utf8_lossy(&out.stderr));
    bridge.shutdown().await;
}
