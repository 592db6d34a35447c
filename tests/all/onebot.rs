//! The OneBot v11 backend against a scripted peer that speaks the
//! specification's JSON: events of every mapped kind, every action, CQ strings
//! with escapes, negative and repeated message IDs, unknown fields and
//! segments, failures, a disconnect in the middle of a call, reconnects, and
//! reverse mode's handshake.

use std::time::Duration;

use botbridge::config::{AccountConfig, OnebotMode};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

/// The account's QQ number, and a group and people of the "real" world.
pub(crate) const QQ: i64 = 123_456;
pub(crate) const G: i64 = 700_001;
pub(crate) const MIA: i64 = 800_001;
pub(crate) const FRIEND_QQ: i64 = 800_002;

/// The far end of one OneBot connection.
pub(crate) struct Peer<S> {
    pub(crate) ws: WebSocketStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub(crate) async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.expect("peer sends");
    }

    /// The next action call botbridge made.
    pub(crate) async fn call(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a call within 10 s")
                .expect("connection open")
                .expect("no error");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).expect("calls are JSON");
            }
        }
    }

    /// The next call, which must be `action`; returns its params (and echo).
    pub(crate) async fn expect(&mut self, action: &str) -> Value {
        let call = self.call().await;
        assert_eq!(call["action"], action, "unexpected call {call}");
        assert!(call["echo"].is_string(), "calls carry an echo: {call}");
        call
    }

    pub(crate) async fn answer(&mut self, call: &Value, data: Value) {
        self.send(json!({"status": "ok", "retcode": 0, "data": data, "echo": call["echo"], "wording": ""})).await;
    }

    pub(crate) async fn fail(&mut self, call: &Value, retcode: i64, wording: &str) {
        self.send(
            json!({"status": "failed", "retcode": retcode, "data": null, "echo": call["echo"], "wording": wording}),
        )
        .await;
    }

    /// Answers the lookups botbridge makes the first time it sees group G.
    pub(crate) async fn answer_group_lookups(&mut self) {
        let info = self.expect("get_group_info").await;
        assert_eq!(info["params"]["group_id"], G);
        self.answer(
            &info,
            json!({"group_id": G, "group_name": "Real group", "member_count": 3, "max_member_count": 200}),
        )
        .await;
        let me = self.expect("get_group_member_info").await;
        assert_eq!(me["params"], json!({"group_id": G, "user_id": QQ}));
        self.answer(&me, json!({"group_id": G, "user_id": QQ, "nickname": "bot", "card": "", "role": "admin"})).await;
    }
}

pub(crate) fn onebot_settings(
    mode: OnebotMode,
    url: Option<String>,
    listen: Option<String>,
) -> botbridge::config::Settings {
    let mut s = settings();
    s.accounts = vec![AccountConfig::Onebot {
        id: botbridge::ids::AccountId(QQ),
        mode,
        url,
        listen,
        path: None,
        access_token: Some("tok".into()),
        call_timeout_ms: Some(400),
    }];
    s
}

/// Accepts botbridge's forward connection; returns the peer and its Authorization header.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its ErrorResponse.
pub(crate) async fn accept(listener: &TcpListener) -> (Peer<TcpStream>, String) {
    let (tcp, _) =
        tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("botbridge connects").unwrap();
    let mut auth = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(
        tcp,
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
            auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            Ok(resp)
        },
    )
    .await
    .expect("handshake");
    (Peer { ws }, auth)
}

pub(crate) fn group_message(id: i64, message: Value) -> Value {
    json!({
        "time": 1_700_000_000, "self_id": QQ, "post_type": "message", "message_type": "group", "sub_type": "normal",
        "message_id": id, "group_id": G, "user_id": MIA, "anonymous": null, "message": message, "raw_message": "",
        "font": 0, "sender": {"user_id": MIA, "nickname": "Mia", "card": "", "role": "member", "title": "", "level": "5"},
        "some_extension": {"nested": [1, 2]}
    })
}

pub(crate) fn notice(kind: &str, fields: Value) -> Value {
    let mut v = json!({"time": 1_700_000_001, "self_id": QQ, "post_type": "notice", "notice_type": kind});
    v.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    v
}

/// A bridge with one forward-mode OneBot account, connected to a scripted
/// peer, and a client that saw the account come online.
pub(crate) struct Connected {
    pub(crate) bridge: botbridge::app::Running,
    pub(crate) c: Client,
    pub(crate) peer: Peer<TcpStream>,
}

pub(crate) async fn connected() -> Connected {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let bridge = start(onebot_settings(OnebotMode::Forward, Some(url), None)).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(c.hello["bots"], json!([QQ]));
    let (mut peer, auth) = accept(&listener).await;
    assert_eq!(auth, "Bearer tok");
    assert_eq!(c.next_of("user").await["data"], json!({"type": "online"}));
    peer.send(json!({"time": 1, "self_id": QQ, "post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"})).await;
    Connected { bridge, c, peer }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_maps_messages_replies_and_recalls() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    // A group message, array form, with a negative ID, an unknown segment and unknown fields.
    peer.send(group_message(
        -100,
        json!([
            {"type": "text", "data": {"text": "hello "}},
            {"type": "at", "data": {"qq": QQ.to_string()}},
            {"type": "mface", "data": {"emoji_id": "abc", "summary": "[hi]"}}
        ]),
    ))
    .await;
    peer.answer_group_lookups().await;
    let ev = c.next_of("msg").await;
    assert_eq!(ev["bot"], QQ);
    let d = &ev["data"];
    assert_eq!(d["type"], "GroupMessage");
    assert_eq!(d["group"], json!({"id": G, "name": "Real group", "botPermission": "administrator"}));
    assert_eq!(d["sender"]["nick"], "Mia");
    assert_eq!(d["sender"]["permission"], "member");
    assert_eq!(d["message"][1], json!({"type": "Plain", "msg": "hello "}));
    assert_eq!(d["message"][2]["type"], "At");
    assert_eq!(d["message"][2]["target"], QQ);
    assert_eq!(
        d["message"][3],
        json!({"type": "Other", "kind": "mface", "data": {"emoji_id": "abc", "summary": "[hi]"}})
    );
    let group_source = source_id(&ev);

    // Reply: send_group_msg, array segments; the unknown segment goes back out unchanged.
    c.send_text(
        &json!({"type": "Reply", "id": "r1", "content": {"id": d["replyKey"], "message": [
        {"type": "Plain", "msg": "hi"}, {"type": "Other", "kind": "mface", "data": {"emoji_id": "abc"}}]}})
        .to_string(),
    )
    .await;
    let call = peer.expect("send_group_msg").await;
    assert_eq!(call["params"]["group_id"], G);
    let segments = call["params"]["message"].as_array().unwrap();
    assert!(segments.contains(&json!({"type": "text", "data": {"text": "hi"}})), "{call}");
    assert!(segments.contains(&json!({"type": "mface", "data": {"emoji_id": "abc"}})), "{call}");
    peer.answer(&call, json!({"message_id": -7})).await;
    let sent = c.result_for(&json!("r1")).await;
    assert_eq!(sent["ok"], true, "{sent}");
    let receipt = sent["data"]["receiptId"].as_str().unwrap().to_owned();

    // A quote becomes a leading reply segment with the upstream ID.
    c.send_text(
        &json!({"type": "SendToGroup", "id": "q", "content": {"group": G, "message": [
        {"type": "Quote", "id": group_source}, {"type": "Plain", "msg": "re"}]}})
        .to_string(),
    )
    .await;
    let call = peer.expect("send_group_msg").await;
    assert_eq!(call["params"]["message"][0], json!({"type": "reply", "data": {"id": "-100"}}));
    peer.answer(&call, json!({"message_id": 9})).await;
    assert_eq!(c.result_for(&json!("q")).await["ok"], true);

    // RecallReceipt: delete_msg with the (negative) upstream ID.
    c.send_text(&json!({"type": "RecallReceipt", "id": "rr", "content": {"receipt": receipt}}).to_string()).await;
    let call = peer.expect("delete_msg").await;
    assert_eq!(call["params"], json!({"message_id": -7}));
    peer.answer(&call, Value::Null).await;
    assert_eq!(c.result_for(&json!("rr")).await["ok"], true);

    // A friend's message as a CQ string with escapes; then a temp message with
    // the same upstream ID (IDs repeat across scenes) and no `sender` at all.
    peer.send(json!({"time": 1_700_000_002, "self_id": QQ, "post_type": "message", "message_type": "private", "sub_type": "friend",
        "message_id": 5, "user_id": FRIEND_QQ, "message": "a &#91;b&#93; &amp; c[CQ:face,id=14][CQ:at,qq=all]",
        "raw_message": "", "font": 0, "sender": {"user_id": FRIEND_QQ, "nickname": "Fay"}})).await;
    let friend_ev = c.next_of("msg").await;
    assert_eq!(friend_ev["data"]["type"], "FriendMessage");
    assert_eq!(friend_ev["data"]["sender"], json!({"id": FRIEND_QQ, "nick": "Fay"}));
    assert_eq!(friend_ev["data"]["message"][1], json!({"type": "Plain", "msg": "a [b] & c"}));
    assert_eq!(friend_ev["data"]["message"][2], json!({"type": "Face", "id": 14}));
    assert_eq!(friend_ev["data"]["message"][3], json!({"type": "AtAll"}));
    peer.send(json!({"post_type": "message", "message_type": "private", "sub_type": "group", "message_id": 5,
        "user_id": 900_001, "group_id": G, "message": [{"type": "text", "data": {"text": "psst"}}]}))
        .await;
    let temp_ev = c.next_of("msg").await;
    assert_eq!(temp_ev["data"]["type"], "TempMessage");
    assert_eq!(temp_ev["data"]["group"]["name"], "Real group", "cached: no second lookup");
    assert_ne!(source_id(&temp_ev), source_id(&friend_ev));

    // Reply to the temp message: send_private_msg with the group.
    c.send_text(
        &json!({"type": "Reply", "id": "t", "content": {"id": temp_ev["data"]["replyKey"], "message": plain("ok")}})
            .to_string(),
    )
    .await;
    let call = peer.expect("send_private_msg").await;
    assert_eq!(call["params"]["user_id"], 900_001);
    assert_eq!(call["params"]["group_id"], G);
    peer.answer(&call, json!({"message_id": 11})).await;
    assert_eq!(c.result_for(&json!("t")).await["ok"], true);

    // Recalls reach the right messages though the upstream ID 5 repeats.
    peer.send(notice("friend_recall", json!({"user_id": FRIEND_QQ, "message_id": 5}))).await;
    let r = c.next_of("revoke").await;
    assert_eq!(r["data"]["msgID"], source_id(&friend_ev));
    peer.send(notice("group_recall", json!({"group_id": G, "user_id": MIA, "operator_id": 30, "message_id": -100})))
        .await;
    let r = c.next_of("revoke").await;
    assert_eq!(r["data"], json!({"type": "group", "revoker": 30, "revokee": MIA, "channel": G, "msgID": group_source}));

    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_become_group_and_user_events() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    // Notices.
    let group_events = [
        (
            notice(
                "group_ban",
                json!({"sub_type": "ban", "group_id": G, "operator_id": 30, "user_id": MIA, "duration": 600}),
            ),
            json!({"type": "mute", "who": MIA, "group": G, "operator": 30, "duration": 600}),
        ),
        (
            notice(
                "group_ban",
                json!({"sub_type": "lift_ban", "group_id": G, "operator_id": 30, "user_id": MIA, "duration": 0}),
            ),
            json!({"type": "mute", "who": MIA, "group": G, "operator": 30, "duration": 0}),
        ),
        (
            notice(
                "group_ban",
                json!({"sub_type": "ban", "group_id": G, "operator_id": 30, "user_id": 0, "duration": -1}),
            ),
            json!({"type": "mute", "who": 0, "group": G, "operator": 30, "duration": -1}),
        ),
        (
            notice("group_admin", json!({"sub_type": "set", "group_id": G, "user_id": MIA})),
            json!({"type": "admin", "who": MIA, "group": G, "status": true}),
        ),
        (
            notice(
                "group_increase",
                json!({"sub_type": "approve", "group_id": G, "operator_id": 30, "user_id": 900_002}),
            ),
            json!({"type": "memberJoined", "who": 900_002, "group": G}),
        ),
        (
            notice("group_decrease", json!({"sub_type": "leave", "group_id": G, "operator_id": 0, "user_id": 900_002})),
            json!({"type": "memberLeft", "who": 900_002, "group": G, "operator": 900_002}),
        ),
        (
            notice("group_decrease", json!({"sub_type": "kick", "group_id": G, "operator_id": 30, "user_id": MIA})),
            json!({"type": "memberLeft", "who": MIA, "group": G, "operator": 30}),
        ),
    ];
    for (upstream, expected) in group_events {
        peer.send(upstream).await;
        assert_eq!(c.next_of("group").await["data"], expected);
    }
    peer.send(notice("friend_add", json!({"user_id": 900_003}))).await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "friendAdded", "who": 900_003, "nick": ""}));
    peer.send(notice(
        "group_decrease",
        json!({"sub_type": "kick_me", "group_id": 700_009, "operator_id": 31, "user_id": QQ}),
    ))
    .await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "groupLeft", "which": 700_009, "operator": 31}));
    // A notice missing a required field is dropped; the connection goes on.
    peer.send(notice("group_recall", json!({"group_id": G, "user_id": MIA}))).await;
    peer.send(notice("some_future_notice", json!({"x": 1}))).await;

    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_through_the_matching_actions() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    // Requests, answered through the matching actions.
    peer.send(json!({"post_type": "request", "request_type": "friend", "user_id": 900_004, "comment": "hi", "flag": "f-1", "time": 3})).await;
    let req = c.next_of("user").await;
    assert_eq!(req["data"]["type"], "newFriendRequest");
    assert_eq!(req["data"]["comment"], "hi");
    c.send_text(&json!({"type": "HandleFriendRequest", "id": "f", "content": {"requestId": req["data"]["requestId"], "accept": true}}).to_string()).await;
    let call = peer.expect("set_friend_add_request").await;
    assert_eq!(call["params"], json!({"flag": "f-1", "approve": true}));
    peer.answer(&call, Value::Null).await;
    assert_eq!(c.result_for(&json!("f")).await["ok"], true);

    peer.send(json!({"post_type": "request", "request_type": "group", "sub_type": "add", "group_id": G, "user_id": 900_005, "comment": "let me in", "flag": "a-1"})).await;
    let req = c.next_of("group").await;
    assert_eq!(req["data"]["type"], "joinRequest");
    c.send_text(&json!({"type": "HandleJoinRequest", "id": "a", "content": {"requestId": req["data"]["requestId"], "accept": false, "reason": "full"}}).to_string()).await;
    let call = peer.expect("set_group_add_request").await;
    assert_eq!(call["params"]["flag"], "a-1");
    assert_eq!(call["params"]["sub_type"], "add");
    assert_eq!(call["params"]["approve"], false);
    assert_eq!(call["params"]["reason"], "full");
    peer.answer(&call, Value::Null).await;
    assert_eq!(c.result_for(&json!("a")).await["ok"], true);

    peer.send(json!({"post_type": "request", "request_type": "group", "sub_type": "invite", "group_id": 700_002, "user_id": FRIEND_QQ, "flag": "i-1"})).await;
    let req = c.next_of("user").await;
    assert_eq!(req["data"]["type"], "groupInvite");
    assert_eq!(req["data"]["inviter"], FRIEND_QQ);
    // The wrong kind of answer for a request ID is refused before any call.
    assert_eq!(
        c.code("HandleFriendRequest", json!({"requestId": req["data"]["requestId"], "accept": true})).await,
        "unknown_request"
    );
    c.send_text(&json!({"type": "HandleGroupInvite", "id": "i", "content": {"requestId": req["data"]["requestId"], "accept": true}}).to_string()).await;
    let call = peer.expect("set_group_add_request").await;
    assert_eq!((call["params"]["flag"].clone(), call["params"]["sub_type"].clone()), (json!("i-1"), json!("invite")));
    peer.answer(&call, Value::Null).await;
    assert_eq!(c.result_for(&json!("i")).await["ok"], true);

    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_lists_call_the_matching_actions() {
    let Connected { bridge, mut c, mut peer } = connected().await;
    // Mute and the list calls.
    c.send_text(
        &json!({"type": "MuteMember", "id": "m", "content": {"group": G, "member": MIA, "time": 60}}).to_string(),
    )
    .await;
    let call = peer.expect("set_group_ban").await;
    assert_eq!(call["params"], json!({"group_id": G, "user_id": MIA, "duration": 60}));
    peer.answer(&call, Value::Null).await;
    assert_eq!(c.result_for(&json!("m")).await["ok"], true);

    c.send_text(&json!({"type": "ListFriends", "id": "lf"}).to_string()).await;
    let call = peer.expect("get_friend_list").await;
    peer.answer(&call, json!([{"user_id": FRIEND_QQ, "nickname": "Fay", "remark": ""}])).await;
    assert_eq!(c.result_for(&json!("lf")).await["data"]["friends"], json!([{"id": FRIEND_QQ, "nick": "Fay"}]));

    c.send_text(&json!({"type": "ListGroups", "id": "lg"}).to_string()).await;
    let call = peer.expect("get_group_list").await;
    peer.answer(&call, json!([{"group_id": G, "group_name": "Real group (renamed)", "member_count": 3}])).await;
    // G was not seen yet: its model (the account's rank) is looked up once.
    peer.answer_group_lookups().await;
    let groups = c.result_for(&json!("lg")).await;
    assert_eq!(
        groups["data"]["groups"],
        json!([{"id": G, "name": "Real group (renamed)", "botPermission": "administrator"}])
    );

    c.send_text(&json!({"type": "ListMembers", "id": "lm", "content": {"group": G}}).to_string()).await;
    let call = peer.expect("get_group_member_list").await;
    assert_eq!(call["params"], json!({"group_id": G}));
    peer.answer(
        &call,
        json!([
            {"group_id": G, "user_id": QQ, "nickname": "bot", "card": "", "role": "admin"},
            {"group_id": G, "user_id": MIA, "nickname": "Mia", "card": "Mia (QA)", "role": "member", "title": "tester"},
            {"group_id": G, "user_id": 30, "nickname": "Olga", "role": "owner"}
        ]),
    )
    .await;
    let members = c.result_for(&json!("lm")).await["data"]["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 2, "the account itself is not listed: {members}");
    assert_eq!(
        members[0],
        json!({"id": MIA, "nick": "Mia", "nameCard": "Mia (QA)", "nameCardOrNick": "Mia (QA)", "permission": "member", "specialTitle": "tester"})
    );
    assert_eq!(members[1]["permission"], "owner");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_errors_and_nothing_is_sent_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let bridge = start(onebot_settings(OnebotMode::Forward, Some(url), None)).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let (mut peer, _) = accept(&listener).await;
    assert_eq!(c.next_of("user").await["data"]["type"], "online");

    // An upstream failure.
    c.send_text(
        &json!({"type": "SendToFriend", "id": 1, "content": {"friend": FRIEND_QQ, "message": plain("x")}}).to_string(),
    )
    .await;
    let call = peer.expect("send_private_msg").await;
    peer.fail(&call, 100, "not a friend").await;
    let r = c.result_for(&json!(1)).await;
    assert_eq!(r["error"]["code"], "upstream_error");
    assert!(r["error"]["message"].as_str().unwrap().contains("not a friend"));

    // No answer: timeout (the account's call_timeout_ms is 400); a late answer is ignored.
    c.send_text(&json!({"type": "ListFriends", "id": 2}).to_string()).await;
    let call = peer.expect("get_friend_list").await;
    assert_eq!(c.result_for(&json!(2)).await["error"]["code"], "timeout");
    peer.answer(&call, json!([])).await;

    // A disconnect in the middle of a send: the caller gets `offline` at once.
    c.send_text(
        &json!({"type": "SendToFriend", "id": 3, "content": {"friend": FRIEND_QQ, "message": plain("once")}})
            .to_string(),
    )
    .await;
    let call = peer.expect("send_private_msg").await;
    assert_eq!(call["params"]["message"], json!([{"type": "text", "data": {"text": "once"}}]));
    drop(peer);
    assert_eq!(c.result_for(&json!(3)).await["error"]["code"], "offline");
    assert_eq!(c.next_of("user").await["data"]["type"], "offline");
    // While disconnected, calls fail fast.
    assert_eq!(c.code("ListGroups", json!({})).await, "offline");

    // botbridge reconnects; the cut-off send is not repeated on the new connection.
    let (mut peer, auth) = accept(&listener).await;
    assert_eq!(auth, "Bearer tok");
    assert_eq!(c.next_of("user").await["data"]["type"], "online");
    c.send_text(&json!({"type": "ListFriends", "id": 4}).to_string()).await;
    let call = peer.call().await;
    assert_eq!(call["action"], "get_friend_list", "the first call on the new connection: {call}");
    peer.answer(&call, json!([])).await;
    assert_eq!(c.result_for(&json!(4)).await["ok"], true);

    // The link's own state is not an upstream frame: one that poses as it is ignored.
    peer.send(json!({"post_type": "botbridge:state", "online": false})).await;
    peer.send(notice("friend_add", json!({"user_id": 900_004}))).await;
    assert_eq!(c.next_of("user").await["data"]["type"], "friendAdded", "no offline before it");

    // A malformed frame changes nothing.
    peer.ws.send(Message::Text("{not json".into())).await.unwrap();
    c.send_text(&json!({"type": "ListFriends", "id": 5}).to_string()).await;
    let call = peer.expect("get_friend_list").await;
    peer.answer(&call, json!([])).await;
    assert_eq!(c.result_for(&json!(5)).await["ok"], true);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_mode_checks_the_handshake_accepts_reconnects_and_watches_heartbeats() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let bridge = start(onebot_settings(OnebotMode::Reverse, None, Some(listen.clone()))).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let endpoint = format!("ws://{listen}/onebot/v11/ws");

    let connect = |token: Option<&str>, url: &str| {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("X-Self-ID", QQ.to_string().parse().unwrap());
        req.headers_mut().insert("X-Client-Role", "Universal".parse().unwrap());
        if let Some(t) = token {
            req.headers_mut().insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal"),
    };
    assert_eq!(refused(connect(None, &endpoint).await), 401);
    assert_eq!(refused(connect(Some("wrong"), &endpoint).await), 401);
    assert_eq!(refused(connect(Some("tok"), &format!("ws://{listen}/elsewhere")).await), 404);

    let (ws, _) = connect(Some("tok"), &endpoint).await.expect("admitted");
    let mut first = Peer { ws };
    assert_eq!(c.next_of("user").await["data"]["type"], "online");

    // Heartbeats every 100 ms; when they stop, the account goes offline; when they come back, online.
    let heartbeat = json!({"time": 1, "self_id": QQ, "post_type": "meta_event", "meta_event_type": "heartbeat",
        "status": {"online": true, "good": true}, "interval": 100});
    first.send(heartbeat.clone()).await;
    assert_eq!(c.next_of("user").await["data"]["type"], "offline");
    first.send(heartbeat.clone()).await;
    assert_eq!(c.next_of("user").await["data"]["type"], "online");

    // A reconnect replaces the old connection; calls go to the new one.
    let (ws, _) = connect(Some("tok"), &format!("{endpoint}?access_token=tok")).await.expect("admitted again");
    let mut second = Peer { ws };
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send_text(&json!({"type": "ListFriends", "id": 1}).to_string()).await;
    let call = second.expect("get_friend_list").await;
    second.answer(&call, json!([{"user_id": 1, "nickname": "n"}])).await;
    assert_eq!(c.result_for(&json!(1)).await["data"]["friends"][0]["id"], 1);
    drop(first);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_urls_cannot_make_the_onebot_program_read_local_files_or_internal_hosts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("cat.png"), b"\x89PNG cat").unwrap();
    let mut s = onebot_settings(OnebotMode::Forward, Some(url), None);
    s.media.dir = Some(media.path().to_owned());
    s.media.allowed_hosts = vec!["127.0.0.2".into()];
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let (mut peer, _) = accept(&listener).await;
    assert_eq!(c.next_of("user").await["data"]["type"], "online");
    let image = |url: &str| json!({"friend": FRIEND_QQ, "message": [{"type": "Image", "url": url}]});

    // Refused before anything goes upstream.
    for url in [
        "file:///etc/passwd",
        "file:///proc/self/environ",
        &format!("file://{}/../cat.png", media.path().display()),
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/x.png",
        "http://[::1]/x.png",
        "http://localhost/x.png",
        "https://10.0.0.8/a.png",
    ] {
        assert_eq!(c.code("SendToFriend", image(url)).await, "bad_message", "{url}");
    }
    let unknown = json!({"friend": FRIEND_QQ, "message": [{"type": "Other", "kind": "video", "data": {"file": "file:///etc/passwd"}}]});
    assert_eq!(c.code("SendToFriend", unknown).await, "bad_message", "a URL inside an unknown segment");

    // A file inside media_dir is read by botbridge and sent as data.
    c.send_text(&json!({"type": "SendToFriend", "id": "m1", "content": image(&format!("file://{}/cat.png", media.path().display()))}).to_string()).await;
    let call = peer.expect("send_private_msg").await;
    assert_eq!(call["params"]["message"][0]["type"], "image");
    let file = call["params"]["message"][0]["data"]["file"].as_str().unwrap().to_owned();
    assert_eq!(file, format!("base64://{}", base64_of(b"\x89PNG cat")), "{call}");
    peer.answer(&call, json!({"message_id": 1})).await;
    assert_eq!(c.result_for(&json!("m1")).await["ok"], true);

    // A listed internal host is let through.
    c.send_text(&json!({"type": "SendToFriend", "id": "m2", "content": image("http://127.0.0.2/ok.png")}).to_string())
        .await;
    let call = peer.expect("send_private_msg").await;
    assert_eq!(call["params"]["message"][0]["data"]["file"], "http://127.0.0.2/ok.png");
    peer.answer(&call, json!({"message_id": 2})).await;
    assert_eq!(c.result_for(&json!("m2")).await["ok"], true);
    bridge.shutdown().await;
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
