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

// ── bots that act on their own: timers, HTTP, config (world 0.2.0) ─────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminder_reminds_in_the_same_chat_and_across_a_restart() {
    let s = settings();
    install(&s.bots, "reminder", &example("reminder"));
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    assert_eq!(answer(&mut c, GROUP, MEMBER, "/remind 2s tea").await, "OK, in 2s: tea");
    let listed = answer(&mut c, GROUP, MEMBER, "/reminders").await;
    assert!(listed.starts_with("1. tea (in "), "{listed}");
    assert_eq!(answer(&mut c, LOBBY, MEMBER, "/reminders").await, "No reminders.", "per chat");
    let due = c.next_of("outgoing").await;
    assert_eq!(due["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(due["data"]["message"][1]["type"], "At");
    assert_eq!(due["data"]["message"][1]["target"], MEMBER, "mentions who asked");
    assert_eq!(text(&due), " Reminder: tea");

    c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("/remind 1s call mom")})).await;
    assert_eq!(text(&c.next_of("outgoing").await), "OK, in 1s: call mom");
    let due = c.next_of("outgoing").await;
    assert_eq!(due["data"]["target"], json!({"type": "friend", "friend": FRIEND}));
    assert_eq!(text(&due), "Reminder: call mom");
    assert_eq!(answer(&mut c, LOBBY, MEMBER, "/remind soon tea").await, "Usage: /remind 10m text (units s, m, h, d)");

    // Set, then the bridge stops and starts again on the same state.
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/remind 3s stretch").await, "OK, in 3s: stretch");
    drop(c);
    bridge.shutdown().await;
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(text(&c.next_of("outgoing").await), " Reminder: stretch");
    bridge.shutdown().await;
}

/// A local server in the OpenAI chat-completions format: it checks the key
/// and the model, and answers how many messages it got and the last one.
async fn chat_server(key: String) -> (std::net::SocketAddr, std::sync::Arc<parking_lot::Mutex<Vec<Value>>>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let (log, key) = (log.clone(), key.clone());
            async move {
                log.lock().push(body.0.clone());
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if auth != format!("Bearer {key}") || body["model"] != "tiny-model" {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "bad key or model"})));
                }
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                let last = messages.last().and_then(|m| m["content"].as_str()).unwrap_or_default().to_owned();
                if last.contains("fail") {
                    return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "boom"})));
                }
                let content = format!("{} messages; you said: {last}", messages.len());
                (
                    StatusCode::OK,
                    axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]})),
                )
            }
        }),
    );
    (crate::http_outbound::serve(router).await, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_chat_asks_an_openai_compatible_server_with_context() {
    let key = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let (addr, seen) = chat_server(key).await;
    let s = settings();
    let toml = format!(
        "allowed_hosts = [\"http://{addr}\"]\n[config]\nendpoint = \"http://{addr}/v1\"\nmodel = \"tiny-model\"\nturns = \"4\"\n\
         [secrets]\napi_key = {{ env = \"CARGO_MANIFEST_DIR\" }}\n"
    );
    write_toml(&s.bots, "llm-chat", &toml);
    install(&s.bots, "llm-chat", &example("llm-chat"));
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    assert_eq!(answer(&mut c, GROUP, MEMBER, "/ask what is rust").await, "1 messages; you said: what is rust");
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/ask and wasm").await, "3 messages; you said: and wasm", "context kept");
    assert_eq!(answer(&mut c, LOBBY, MEMBER, "/ask hi").await, "1 messages; you said: hi", "per chat");
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/ask third").await, "5 messages; you said: third", "4 turns kept");
    assert_eq!(seen.lock()[1]["messages"][1]["role"], "assistant");
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/ask please fail").await, "Sorry, the model answered HTTP 500.");

    // Pointed at a host it may not reach: one short line.
    write_toml(
        &s.bots,
        "llm-chat",
        &toml.replace(&format!("allowed_hosts = [\"http://{addr}\"]"), "allowed_hosts = []"),
    );
    let mut line = String::new();
    for _ in 0..100 {
        line = answer(&mut c, GROUP, MEMBER, "/ask are you there").await;
        if line.starts_with("Sorry") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(line, "Sorry, the model's host is not allowed (allowed_hosts).");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_posts_new_items_once() {
    let items = std::sync::Arc::new(parking_lot::Mutex::new(vec![(2, "Second post"), (1, "First post")]));
    let served = items.clone();
    let router = axum::Router::new().route(
        "/feed.xml",
        axum::routing::get(move || {
            let items = served.lock().clone();
            async move {
                let entries: String = items
                    .iter()
                    .map(|(id, title)| {
                        format!("<item><title>{title}</title><link>https://blog.example/{id}</link><guid>post-{id}</guid></item>")
                    })
                    .collect();
                format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>{entries}</channel></rss>")
            }
        }),
    );
    let addr = crate::http_outbound::serve(router).await;
    let s = settings();
    let toml = format!(
        "allowed_hosts = [\"http://{addr}\"]\n[config]\nurl = \"http://{addr}/feed.xml\"\ngroups = \"{GROUP}\"\ninterval = \"1s\"\n"
    );
    write_toml(&s.bots, "feed", &toml);
    install(&s.bots, "feed", &example("feed"));
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    let first = c.next_of("outgoing").await;
    assert_eq!(first["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(text(&first), "First post\nhttps://blog.example/1", "oldest first");
    assert_eq!(text(&c.next_of("outgoing").await), "Second post\nhttps://blog.example/2");
    items.lock().insert(0, (3, "Third post"));
    assert_eq!(text(&c.next_of("outgoing").await), "Third post\nhttps://blog.example/3", "only the new one");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

/// HTTP and timers from the Python and JavaScript SDKs: `/fetch` goes
/// through wasi:http (in JavaScript with `fetch`, componentize-js) within the
/// bot's `allowed_hosts`; `/later` sets a timer whose `on-timer` speaks.
async fn scripted_fetch(name: &str) {
    let addr =
        crate::http_outbound::serve(axum::Router::new().route("/hi", axum::routing::get(|| async { "hello" }))).await;
    let s = settings();
    write_toml(&s.bots, name, &format!("allowed_hosts = [\"http://{addr}\"]\n"));
    install(&s.bots, name, &example(name));
    let bridge = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(answer(&mut c, GROUP, MEMBER, &format!("/fetch http://{addr}/hi")).await, "200, 5 chars: hello");
    let refused = answer(&mut c, GROUP, MEMBER, "/fetch http://example.com/").await;
    assert!(refused.starts_with("fetch "), "{refused}");
    assert_eq!(answer(&mut c, GROUP, MEMBER, "/later 300 tea time").await, "OK");
    let later = c.next_of("outgoing").await;
    assert_eq!(later["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(text(&later), "tea time");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_fetches_and_sets_timers() {
    scripted_fetch("python-fetch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_fetches_and_sets_timers() {
    scripted_fetch("js-fetch").await;
}

/// World 0.3.0 end to end in a real component: the greeter sees a poke event
/// and answers with a poke (`send-poke`) and a greeting; a poke between two
/// members is not for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_pokes_back_whoever_pokes_the_account() {
    let (bridge, mut c) = bridge_with("greeter").await;
    let poke = |from: i64, target: i64| json!({"event": {"type": "group", "data": {"type": "poke", "from": from, "target": target, "group": GROUP}}});
    c.ok("SimEvent", poke(MEMBER, ADMIN)).await;
    c.ok("SimEvent", poke(MEMBER, BOT)).await;
    let back = loop {
        let e = c.event().await;
        if e["type"] == "group" && e["data"]["from"] == BOT {
            break e;
        }
    };
    assert_eq!(back["data"], json!({"type": "poke", "from": BOT, "target": MEMBER, "group": GROUP}));
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["by"], "greeter");
    assert_eq!(out["data"]["message"][1], json!({"type": "At", "target": MEMBER, "display": ""}));
    assert!(text(&out).contains("poked me"), "{}", text(&out));
    eventually("three pokes handled", || bridge.wasm.status("greeter").is_some_and(|st| st.handled >= 3)).await;
    let status = bridge.wasm.status("greeter").unwrap();
    assert_eq!(status.failures, 0);
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}
