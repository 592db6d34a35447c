//! The OneBot side of the extensions against the scripted peer of
//! `onebot.rs`: the pacer holding its gaps under a flood from three wasm bots
//! and a client (the peer records when each send arrived), a full queue
//! answering `rate_limited` at once, repeated frames dropped, and every new
//! event and action mapped both ways with the shapes NapCat and Lagrange send
//! (string IDs, `null`s).

use std::time::{Duration, Instant};

use botbridge::bridge::pacer::PacingConfig;
use botbridge::config::{AccountOptions, OnebotMode};
use botbridge::ids::AccountId;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::guests::*;
use crate::onebot::*;
use crate::support::*;

const PACING: PacingConfig = PacingConfig {
    enabled: true,
    group_gap_ms: 250,
    friend_gap_ms: 250,
    per_minute: 1200,
    jitter_ms: 10,
    queue: 6,
    queue_per_sender: 6,
};
/// Loopback delivery may bunch two frames by this much.
const SLACK: Duration = Duration::from_millis(25);

/// A bridge with a paced OneBot account, bots in its folder, and the peer.
async fn paced(bots: &[(&str, Vec<u8>)]) -> (botbridge::app::Running, Client, Peer<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let mut s = onebot_settings(OnebotMode::Forward, Some(url), None);
    s.account_options.insert(AccountId(QQ), AccountOptions { pacing: Some(PACING), dedup_window_ms: None });
    std::fs::create_dir_all(&s.bots).unwrap();
    for (name, wasm) in bots {
        install(&s.bots, name, wasm);
    }
    let bridge = start(s).await;
    for (name, _) in bots {
        eventually("bot running", || bridge.wasm.status(name).is_some()).await;
    }
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let (peer, _) = accept(&listener).await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "online"}));
    (bridge, c, peer)
}

/// One send the peer received: when, which action, its params.
struct Arrival {
    at: Instant,
    action: String,
    params: Value,
}

/// Answers calls until `n` sends arrived (lookups are answered on the way).
async fn take_sends(peer: &mut Peer<TcpStream>, n: usize, next_id: &mut i64) -> Vec<Arrival> {
    let mut sends = Vec::new();
    while sends.len() < n {
        let call = peer.call().await;
        let action = call["action"].as_str().unwrap().to_owned();
        match action.as_str() {
            "get_group_info" => peer.answer(&call, json!({"group_id": G, "group_name": "Real group"})).await,
            "get_group_member_info" => peer.answer(&call, json!({"user_id": QQ, "role": "admin"})).await,
            _ => {
                sends.push(Arrival { at: Instant::now(), action, params: call["params"].clone() });
                *next_id += 1;
                peer.answer(&call, json!({"message_id": *next_id})).await;
            }
        }
    }
    sends
}

/// The result frames of `ids`, in whatever order they come.
async fn results(c: &mut Client, ids: &[&str]) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let frame = c.frame().await;
        if let Some(id) = frame["id"].as_str().filter(|id| frame["type"] == "result" && ids.contains(id)) {
            got.push((id.to_owned(), frame));
        }
    }
    got
}

fn text_of(params: &Value) -> String {
    params["message"].as_array().unwrap().iter().filter_map(|s| s["data"]["text"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pacer_holds_its_gaps_under_a_flood_from_three_bots_and_a_client() {
    let echo = example("echo");
    let bots = [("echo1", echo.clone()), ("echo2", echo.clone()), ("echo3", echo)];
    let (bridge, mut c, mut peer) = paced(&bots).await;
    let mut next_id = 0;

    // Phase 1: three bots answer one message while the client sends two
    // messages to the group and one to a friend, all at once.
    peer.send(group_message(1, json!([{"type": "text", "data": {"text": "/echo flood"}}]))).await;
    for (id, text) in [("g1", "client one"), ("g2", "client two")] {
        let op = json!({"type": "SendToGroup", "id": id, "content": {"group": G, "message": plain(text)}});
        c.send_text(&op.to_string()).await;
    }
    let op =
        json!({"type": "SendToFriend", "id": "f1", "content": {"friend": FRIEND_QQ, "message": plain("hi friend")}});
    c.send_text(&op.to_string()).await;
    let sends = take_sends(&mut peer, 6, &mut next_id).await;
    for (id, result) in results(&mut c, &["g1", "g2", "f1"]).await {
        assert_eq!(result["ok"], true, "{id}: {result}");
    }
    let to_group: Vec<&Arrival> = sends.iter().filter(|s| s.action == "send_group_msg").collect();
    assert_eq!(to_group.len(), 5, "three echoes and two client messages");
    for pair in to_group.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap + SLACK >= Duration::from_millis(PACING.group_gap_ms), "group gap held: {gap:?}");
    }
    for pair in sends.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap + SLACK >= Duration::from_millis(60_000 / 1200), "account gap held: {gap:?}");
    }
    let texts: Vec<String> = to_group.iter().map(|s| text_of(&s.params)).collect();
    let one = texts.iter().position(|t| t == "client one").unwrap();
    let two = texts.iter().position(|t| t == "client two").unwrap();
    assert!(one < two, "one chat's messages keep their order: {texts:?}");
    assert_eq!(texts.iter().filter(|t| *t == "flood").count(), 3, "{texts:?}");

    // Phase 2: the peer holds the first send unanswered; the queue (6) fills
    // and the rest are refused at once, while the panel shows it. (After a
    // pause, so the first send's turn has come: it leaves the queue at once.)
    tokio::time::sleep(Duration::from_millis(PACING.group_gap_ms + 100)).await;
    for i in 0..12 {
        let op = json!({"type": "SendToGroup", "id": format!("q{i}"), "content": {"group": G, "message": plain(&format!("q{i}"))}});
        c.send_text(&op.to_string()).await;
    }
    let held = peer.expect("send_group_msg").await;
    let mut limited = Vec::new();
    while limited.len() < 5 {
        let frame = c.frame().await;
        if frame["type"] == "result" {
            assert_eq!(frame["error"]["code"], "rate_limited", "{frame}");
            limited.push(frame["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(limited, ["q7", "q8", "q9", "q10", "q11"], "the newest are refused; the queue keeps its order");
    let (status, accounts) = http_request(bridge.addr, "GET", "/api/accounts", &[], vec![]).await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts[0]["pacing"]["queued"], 6, "{accounts}");
    next_id += 1;
    peer.answer(&held, json!({"message_id": next_id})).await;
    let rest = take_sends(&mut peer, 6, &mut next_id).await;
    let order: Vec<String> = rest.iter().map(|s| text_of(&s.params)).collect();
    assert_eq!(order, ["q1", "q2", "q3", "q4", "q5", "q6"]);
    let ids: Vec<String> = (0..7).map(|i| format!("q{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (id, result) in results(&mut c, &ids).await {
        assert_eq!(result["ok"], true, "{id}: {result}");
    }
    // A recall does not wait behind messages.
    c.send_text(
        &json!({"type": "SendToGroup", "id": "last", "content": {"group": G, "message": plain("last")}}).to_string(),
    )
    .await;
    take_sends(&mut peer, 1, &mut next_id).await;
    let sent = c.result_for(&json!("last")).await;
    c.send_text(
        &json!({"type": "RecallReceipt", "id": "r", "content": {"receipt": sent["data"]["receiptId"]}}).to_string(),
    )
    .await;
    let began = Instant::now();
    let call = peer.expect("delete_msg").await;
    assert!(began.elapsed() < Duration::from_millis(PACING.group_gap_ms), "the recall skipped the gap");
    peer.answer(&call, json!(null)).await;
    assert_eq!(c.result_for(&json!("r")).await["ok"], true);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_upstream_frames_reach_bots_once() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    let message = group_message(42, json!("repeat after me"));
    let request = json!({"post_type": "request", "request_type": "friend", "user_id": "900004", "comment": "hi", "flag": "f-9", "time": 3, "self_id": QQ});
    let poke = notice("notify", json!({"sub_type": "poke", "group_id": G, "user_id": MIA, "target_id": QQ}));
    peer.send(message.clone()).await;
    peer.answer_group_lookups().await;
    // As after a reconnect: the same frames again.
    for frame in [message.clone(), request.clone(), request, poke.clone(), poke, message] {
        peer.send(frame).await;
    }
    peer.send(group_message(43, json!("new"))).await;
    let mut seen = Vec::new();
    loop {
        let e = c.event().await;
        let d = &e["data"];
        seen.push(format!("{}/{}", e["type"].as_str().unwrap(), d["type"].as_str().unwrap()));
        if d["type"] == "GroupMessage" && d["message"][1]["msg"] == "new" {
            break;
        }
    }
    assert_eq!(seen, ["msg/GroupMessage", "user/newFriendRequest", "group/poke", "msg/GroupMessage"]);
    let (_, metrics) = http_request(bridge.addr, "GET", "/metrics", &[], vec![]).await;
    let text = metrics.as_str().unwrap_or_default().to_owned();
    assert!(text.contains(&format!("botbridge_upstream_duplicates_total{{account=\"{QQ}\"}} 4")), "{text}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_notices_map_from_napcat_and_lagrange_frames() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    peer.send(group_message(77, json!("liked"))).await;
    peer.answer_group_lookups().await;
    let liked = c.next_of("msg").await;
    let source = source_id(&liked);
    let group_events = [
        // NapCat, IDs as strings.
        (
            notice(
                "notify",
                json!({"sub_type": "poke", "group_id": G.to_string(), "user_id": MIA.to_string(), "target_id": QQ.to_string(), "raw_info": null}),
            ),
            json!({"type": "poke", "from": MIA, "target": QQ, "group": G}),
        ),
        (
            notice(
                "group_msg_emoji_like",
                json!({"group_id": G, "user_id": MIA, "message_id": "77", "likes": [{"emoji_id": "76", "count": 1}], "is_add": true}),
            ),
            json!({"type": "reaction", "who": MIA, "group": G, "messageSource": source, "emoji": "76", "add": true}),
        ),
        // Lagrange's reaction.
        (
            notice(
                "reaction",
                json!({"sub_type": "remove", "group_id": G, "message_id": 77, "operator_id": MIA, "code": "76", "count": 0}),
            ),
            json!({"type": "reaction", "who": MIA, "group": G, "messageSource": source, "emoji": "76", "add": false}),
        ),
        (
            notice(
                "essence",
                json!({"sub_type": "add", "group_id": G, "sender_id": MIA, "operator_id": 30, "message_id": 77}),
            ),
            json!({"type": "essence", "group": G, "messageSource": source, "sender": MIA, "operator": 30, "set": true}),
        ),
        (
            notice("group_card", json!({"group_id": G, "user_id": MIA, "card_new": "Mia!", "card_old": null})),
            json!({"type": "memberCard", "who": MIA, "group": G, "card": "Mia!", "old": ""}),
        ),
        (
            notice(
                "group_upload",
                json!({"group_id": G, "user_id": MIA, "file": {"id": "/f-1", "name": "a.zip", "size": "2048", "busid": 102}}),
            ),
            json!({"type": "fileUpload", "who": MIA, "group": G, "file": {"id": "/f-1", "name": "a.zip", "size": 2048}}),
        ),
        (
            notice("notify", json!({"sub_type": "honor", "group_id": G, "user_id": MIA, "honor_type": "talkative"})),
            json!({"type": "honor", "who": MIA, "group": G, "honor": "talkative"}),
        ),
        (
            notice("notify", json!({"sub_type": "title", "group_id": G, "user_id": MIA, "title": "Elder"})),
            json!({"type": "title", "who": MIA, "group": G, "title": "Elder"}),
        ),
    ];
    for (upstream, expected) in group_events {
        peer.send(upstream).await;
        assert_eq!(c.next_of("group").await["data"], expected);
    }
    // A private poke (NapCat also names the sender).
    peer.send(notice(
        "notify",
        json!({"sub_type": "poke", "user_id": FRIEND_QQ, "sender_id": FRIEND_QQ, "target_id": QQ}),
    ))
    .await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "poke", "from": FRIEND_QQ, "target": QQ}));
    // A reaction to a message never seen gets a source ID of its own.
    peer.send(notice(
        "group_msg_emoji_like",
        json!({"group_id": G, "user_id": MIA, "message_id": 5, "likes": [{"emoji_id": "1"}]}),
    ))
    .await;
    let unseen = c.next_of("group").await;
    assert!(unseen["data"]["messageSource"].as_str().is_some_and(|s| !s.is_empty() && s != source));
    // Malformed: no likes, no message ID: dropped, the link goes on.
    peer.send(notice("group_msg_emoji_like", json!({"group_id": G, "user_id": MIA, "message_id": 6, "likes": []})))
        .await;
    peer.send(notice("essence", json!({"sub_type": "add", "group_id": G}))).await;
    peer.send(notice("notify", json!({"sub_type": "honor", "group_id": G, "user_id": MIA, "honor_type": "emotion"})))
        .await;
    assert_eq!(c.next_of("group").await["data"]["honor"], "emotion");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_and_anonymous_senders_on_a_real_account() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    // A forward segment by ID is expanded with get_forward_msg (NapCat's shape).
    peer.send(group_message(80, json!([{"type": "forward", "data": {"id": "7391"}}]))).await;
    let call = peer.expect("get_forward_msg").await;
    assert_eq!(call["params"]["message_id"], "7391");
    peer.answer(&call, json!({"messages": [
        {"self_id": QQ, "user_id": MIA, "time": 1_700_000_100, "message_id": 11, "message_type": "group",
         "sender": {"user_id": MIA, "nickname": "Mia", "card": ""}, "message": [{"type": "text", "data": {"text": "inside"}}]},
        {"user_id": "800003", "time": null, "sender": {"user_id": "800003", "nickname": "Leo"}, "message": "[CQ:face,id=14]"}
    ]})).await;
    peer.answer_group_lookups().await;
    let ev = c.next_of("msg").await;
    assert_eq!(
        ev["data"]["message"][1],
        json!({"type": "Forward", "id": "7391", "nodes": [
            {"sender": MIA, "name": "Mia", "time": 1_700_000_100, "message": [{"type": "Plain", "msg": "inside"}]},
            {"sender": 800_003, "name": "Leo", "time": 0, "message": [{"type": "Face", "id": 14}]}
        ]})
    );

    // An anonymous message: muting its sender uses the anonymous flag.
    let mut anon = group_message(81, json!("who am i"));
    anon["sub_type"] = json!("anonymous");
    anon["user_id"] = json!(80_000_000);
    anon["anonymous"] = json!({"id": 9_123, "name": "Hidden Cat", "flag": "Hidden Cat|9123|abc"});
    peer.send(anon).await;
    let ev = c.next_of("msg").await;
    assert_eq!(ev["data"]["anonymous"], true);
    assert_eq!(ev["data"]["sender"]["nameCardOrNick"], "Hidden Cat");
    c.send_text(
        &json!({"type": "MuteMember", "id": "m", "content": {"messageSource": source_id(&ev), "time": 600}})
            .to_string(),
    )
    .await;
    let call = peer.expect("set_group_anonymous_ban").await;
    assert_eq!(
        call["params"],
        json!({"group_id": G, "anonymous_flag": "Hidden Cat|9123|abc", "flag": "Hidden Cat|9123|abc", "duration": 600})
    );
    peer.answer(&call, json!(null)).await;
    assert_eq!(c.result_for(&json!("m")).await["ok"], true);
    // Not anonymous: the ordinary ban of the sender.
    let plain_message = plain_message_from_mia(&mut c, &mut peer).await;
    let mute =
        json!({"type": "MuteMember", "id": "m2", "content": {"messageSource": source_id(&plain_message), "time": 60}});
    c.send_text(&mute.to_string()).await;
    let call = peer.expect("set_group_ban").await;
    assert_eq!(call["params"], json!({"group_id": G, "user_id": MIA, "duration": 60}));
    peer.answer(&call, json!(null)).await;
    assert_eq!(c.result_for(&json!("m2")).await["ok"], true);
    bridge.shutdown().await;
}

/// A plain group message from Mia, as received.
async fn plain_message_from_mia(c: &mut Client, peer: &mut Peer<TcpStream>) -> Value {
    peer.send(group_message(82, json!("plain"))).await;
    c.next_of("msg").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_actions_call_the_matching_onebot_actions() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    peer.send(group_message(90, json!("fetch me"))).await;
    peer.answer_group_lookups().await;
    let ev = c.next_of("msg").await;
    let source = source_id(&ev);
    let cases = [
        (
            "KickMember",
            json!({"group": G, "member": MIA, "rejectRejoin": true}),
            "set_group_kick",
            json!({"group_id": G, "user_id": MIA, "reject_add_request": true}),
        ),
        ("MuteAll", json!({"group": G, "enable": true}), "set_group_whole_ban", json!({"group_id": G, "enable": true})),
        (
            "SetMemberCard",
            json!({"group": G, "member": MIA, "card": "Mia"}),
            "set_group_card",
            json!({"group_id": G, "user_id": MIA, "card": "Mia"}),
        ),
        (
            "SetGroupAdmin",
            json!({"group": G, "member": MIA, "enable": false}),
            "set_group_admin",
            json!({"group_id": G, "user_id": MIA, "enable": false}),
        ),
        ("SendPoke", json!({"group": G, "target": MIA}), "group_poke", json!({"group_id": G, "user_id": MIA})),
        ("SendPoke", json!({"target": FRIEND_QQ}), "friend_poke", json!({"user_id": FRIEND_QQ})),
    ];
    for (i, (op, content, action, params)) in cases.into_iter().enumerate() {
        let id = format!("a{i}");
        c.send_text(&json!({"type": op, "id": id, "content": content}).to_string()).await;
        let call = peer.expect(action).await;
        assert_eq!(call["params"], params, "{op}");
        peer.answer(&call, json!(null)).await;
        assert_eq!(c.result_for(&json!(id)).await["ok"], true, "{op}");
    }
    // An upstream refusal is a typed error.
    c.send_text(&json!({"type": "KickMember", "id": "k", "content": {"group": G, "member": MIA}}).to_string()).await;
    let call = peer.expect("set_group_kick").await;
    peer.fail(&call, 1400, "not admin").await;
    assert_eq!(c.result_for(&json!("k")).await["error"]["code"], "upstream_error");

    // GetMessage: get_msg, the answer's segments as a chain with a quote resolved.
    c.send_text(&json!({"type": "GetMessage", "id": "g", "content": {"messageSource": source}}).to_string()).await;
    let call = peer.expect("get_msg").await;
    assert_eq!(call["params"], json!({"message_id": 90}));
    peer.answer(&call, json!({"time": 1_700_000_000, "message_type": "group", "message_id": 90, "real_id": 90,
        "sender": {"user_id": MIA, "nickname": "Mia", "card": null}, "message": [{"type": "reply", "data": {"id": "90"}}, {"type": "text", "data": {"text": "fetch me"}}]})).await;
    let got = c.result_for(&json!("g")).await;
    let m = &got["data"]["message"];
    assert_eq!(m["sender"], MIA);
    assert_eq!(m["senderName"], "Mia");
    assert_eq!(m["message"][0], json!({"type": "MessageSource", "id": source}));
    assert_eq!(m["message"][1]["id"], json!(source), "the quote names the source consumers saw");
    assert_eq!(m["message"][2], json!({"type": "Plain", "msg": "fetch me"}));

    // SendForward: node segments; the answer's message_id becomes its IDs.
    let nodes = json!([{"sender": MIA, "name": "Mia", "message": plain("one")}, {"sender": QQ, "name": "me", "message": plain("two")}]);
    c.send_text(&json!({"type": "SendForward", "id": "f", "content": {"group": G, "nodes": nodes}}).to_string()).await;
    let call = peer.expect("send_group_forward_msg").await;
    assert_eq!(call["params"]["group_id"], G);
    assert_eq!(
        call["params"]["messages"][0],
        json!({"type": "node", "data": {"user_id": MIA.to_string(), "nickname": "Mia", "content": [{"type": "text", "data": {"text": "one"}}]}})
    );
    peer.answer(&call, json!({"message_id": 555, "forward_id": "fw-1"})).await;
    let sent = c.result_for(&json!("f")).await;
    assert_eq!(sent["ok"], true, "{sent}");
    let audit = c.next_of("outgoing").await;
    assert_eq!(audit["data"]["message"][1]["type"], "Forward");
    c.send_text(
        &json!({"type": "SendForward", "id": "p", "content": {"friend": FRIEND_QQ, "nodes": nodes}}).to_string(),
    )
    .await;
    let call = peer.expect("send_private_forward_msg").await;
    assert_eq!(call["params"]["user_id"], FRIEND_QQ);
    peer.answer(&call, json!({"message_id": 556})).await;
    assert_eq!(c.result_for(&json!("p")).await["ok"], true);
    bridge.shutdown().await;
}
