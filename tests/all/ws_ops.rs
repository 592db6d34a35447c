//! Every operation over a real WebSocket: its success and each of its error codes.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn hello_then_group_message_then_reply() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(c.hello["protocol"], 1);
    assert_eq!(c.hello["bots"], json!([BOT]));
    assert_eq!(c.hello["seq"], 0);

    let ev = c.group_message(GROUP, MEMBER, "hello bots").await;
    assert_eq!(ev["type"], "msg");
    assert_eq!(ev["bot"], BOT);
    assert_eq!(ev["seq"], 1);
    let data = &ev["data"];
    assert_eq!(data["type"], "GroupMessage");
    assert_eq!(data["group"]["id"], GROUP);
    assert_eq!(data["group"]["botPermission"], "administrator");
    assert_eq!(data["sender"]["id"], MEMBER);
    assert_eq!(data["sender"]["permission"], "member");
    assert_eq!(data["message"][0]["type"], "MessageSource");
    assert_eq!(data["message"][1], json!({"type": "Plain", "msg": "hello bots"}));

    let sent = c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("hi!")})).await;
    let receipt = sent["receiptId"].as_str().unwrap();
    let source = sent["sourceId"].as_str().unwrap();
    assert!(receipt.len() >= 16 && source.len() >= 16 && receipt != source);
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(out["data"]["sourceId"], source);
    assert_eq!(out["data"]["message"][0], json!({"type": "MessageSource", "id": source}));
    assert_eq!(out["data"]["message"][1], json!({"type": "Plain", "msg": "hi!"}));
    assert!(out["data"]["by"].as_str().unwrap().starts_with("client#"));
    bridge.shutdown().await;
}

#[tokio::test]
async fn friend_and_temp_messages_and_their_replies() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1&name=tester", bridge.ws_url())).await;
    let seq = c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("hey")})).await["seq"].as_u64().unwrap();
    let ev = c.event_with_seq(seq).await;
    assert_eq!(ev["data"]["type"], "FriendMessage");
    assert_eq!(ev["data"]["sender"], json!({"id": FRIEND, "nick": "Alice"}));
    c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("yo")})).await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "friend", "friend": FRIEND}));
    assert!(out["data"]["by"].as_str().unwrap().starts_with("tester#"));

    let seq = c
        .ok("SimMessage", json!({"group": GROUP, "sender": STRANGER, "temp": true, "message": plain("psst")}))
        .await["seq"]
        .as_u64()
        .unwrap();
    let ev = c.event_with_seq(seq).await;
    assert_eq!(ev["data"]["type"], "TempMessage");
    assert_eq!(ev["data"]["group"]["id"], GROUP);
    assert_eq!(ev["data"]["sender"]["id"], STRANGER);
    c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("who are you")})).await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["target"], json!({"type": "temp", "group": GROUP, "user": STRANGER}));
    // A reply key serves any number of replies.
    c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("again")})).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn send_and_recall_through_receipts_and_sources() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let sent = c.ok("SendToGroup", json!({"bot": BOT, "group": GROUP, "message": plain("one")})).await;
    c.ok("RecallReceipt", json!({"receipt": sent["receiptId"]})).await;
    let ev = c.next_of("revoke").await;
    assert_eq!(
        ev["data"],
        json!({"type": "group", "revoker": BOT, "revokee": BOT, "channel": GROUP, "msgID": sent["sourceId"]})
    );
    assert_eq!(c.code("RecallReceipt", json!({"receipt": sent["receiptId"]})).await, "already_recalled");
    assert_eq!(c.code("Recall", json!({"messageSource": sent["sourceId"]})).await, "already_recalled");

    let sent = c.ok("SendToFriend", json!({"friend": FRIEND, "message": plain("two")})).await;
    c.ok("Recall", json!({"messageSource": sent["sourceId"]})).await;
    let ev = c.next_of("revoke").await;
    assert_eq!(ev["data"]["type"], "private");
    assert_eq!(ev["data"]["channel"], FRIEND);

    // Recalling a member's message as admin, and the event names the ID everyone saw.
    let msg = c.group_message(GROUP, MEMBER, "spam").await;
    c.ok("Recall", json!({"messageSource": source_id(&msg)})).await;
    let ev = c.next_of("revoke").await;
    assert_eq!(ev["data"]["msgID"], source_id(&msg));
    assert_eq!(ev["data"]["revokee"], MEMBER);
    bridge.shutdown().await;
}

#[tokio::test]
async fn quotes_resolve_and_come_back_with_their_details() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    let first = c.group_message(GROUP, MEMBER, "original").await;
    let seq = c
        .ok(
            "SimMessage",
            json!({"group": GROUP, "sender": ADMIN, "message": [{"type": "Quote", "id": source_id(&first)}, {"type": "Plain", "msg": "+1"}]}),
        )
        .await["seq"]
        .as_u64()
        .unwrap();
    let ev = c.event_with_seq(seq).await;
    let quote = &ev["data"]["message"][1];
    assert_eq!(quote["type"], "Quote");
    assert_eq!(quote["id"], source_id(&first));
    assert_eq!(quote["to"], MEMBER);
    assert_eq!(quote["text"], "original");
    c.ok("Reply", json!({"id": reply_key(&ev), "message": [{"type": "Quote", "id": source_id(&ev)}, {"type": "Plain", "msg": "ok"}]}))
        .await;
    assert_eq!(
        c.code(
            "SendToGroup",
            json!({"group": GROUP, "message": [{"type": "Quote", "id": "mNOPE"}, {"type": "Plain", "msg": "x"}]})
        )
        .await,
        "unknown_message"
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn mute_and_unmute_with_rank_rules() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    c.ok("MuteMember", json!({"group": GROUP, "member": MEMBER, "time": 60})).await;
    let ev = c.next_of("group").await;
    assert_eq!(ev["data"], json!({"type": "mute", "who": MEMBER, "group": GROUP, "operator": BOT, "duration": 60}));
    // A muted member cannot speak in the sim world.
    assert_eq!(c.code("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain("mmh")})).await, "muted");
    c.ok("MuteMember", json!({"group": GROUP, "member": MEMBER, "time": 0})).await;
    let ev = c.next_of("group").await;
    assert_eq!(ev["data"]["duration"], 0);
    c.group_message(GROUP, MEMBER, "free again").await;

    assert_eq!(c.code("MuteMember", json!({"group": GROUP, "member": OWNER, "time": 60})).await, "permission_denied");
    assert_eq!(c.code("MuteMember", json!({"group": GROUP, "member": ADMIN, "time": 60})).await, "permission_denied");
    assert_eq!(c.code("MuteMember", json!({"group": LOBBY, "member": MEMBER, "time": 60})).await, "permission_denied");
    assert_eq!(c.code("MuteMember", json!({"group": GROUP, "member": 999, "time": 60})).await, "unknown_member");
    assert_eq!(c.code("MuteMember", json!({"group": 777, "member": MEMBER, "time": 60})).await, "not_in_group");
    assert_eq!(c.code("MuteMember", json!({"group": GROUP, "member": MEMBER, "time": -1})).await, "bad_request");
    assert_eq!(
        c.code("MuteMember", json!({"bot": 1, "group": GROUP, "member": MEMBER, "time": 1})).await,
        "unknown_bot"
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn send_errors() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    assert_eq!(c.code("SendToGroup", json!({"group": 777, "message": plain("x")})).await, "not_in_group");
    assert_eq!(c.code("SendToFriend", json!({"friend": STRANGER, "message": plain("x")})).await, "not_friend");
    assert_eq!(c.code("SendToGroup", json!({"bot": 5, "group": GROUP, "message": plain("x")})).await, "unknown_bot");
    assert_eq!(c.code("SendToGroup", json!({"group": GROUP, "message": []})).await, "bad_message");
    assert_eq!(
        c.code(
            "SendToGroup",
            json!({"group": GROUP, "message": [{"type": "Voice", "url": "http://x", "filename": "a"}]})
        )
        .await,
        "bad_message"
    );
    assert_eq!(
        c.code("SendToGroup", json!({"group": GROUP, "message": [{"type": "Image", "url": "ftp://x"}]})).await,
        "bad_message"
    );
    // No `media_dir` configured: a client cannot name local files either.
    assert_eq!(
        c.code("SendToGroup", json!({"group": GROUP, "message": [{"type": "Image", "url": "file:///tmp/a.png"}]}))
            .await,
        "bad_message"
    );
    for url in ["https://example.com/a.png", "base64:iVBORw0KGgo="] {
        c.ok("SendToGroup", json!({"group": GROUP, "message": [{"type": "Image", "url": url}]})).await;
    }
    // Every element kind that can be sent.
    c.ok(
        "SendToGroup",
        json!({"group": GROUP, "message": [
            {"type": "PlainText", "msg": "a"}, {"type": "At", "target": MEMBER}, {"type": "AtAll"}, {"type": "Face", "id": 1},
            {"type": "FlashImage", "image": {"type": "Image", "url": "http://x/y.png"}}, {"type": "Poke", "pokeType": 1, "name": "poke"},
            {"type": "LightApp", "content": "{}"}, {"type": "Service", "id": 1, "content": "<x/>"}
        ]}),
    )
    .await;
    // The account muted in a group cannot send there.
    c.ok("SimEvent", json!({"event": {"type": "group", "data": {"type": "mute", "who": BOT, "group": LOBBY, "operator": 30005, "duration": 600}}}))
        .await;
    assert_eq!(c.code("SendToGroup", json!({"group": LOBBY, "message": plain("x")})).await, "muted");
    assert_eq!(
        c.code("Reply", json!({"id": "rAAAAAAAAAAAAAAAAAAAAAAAAAAA", "message": plain("x")})).await,
        "unknown_reply_key"
    );
    assert_eq!(c.code("RecallReceipt", json!({"receipt": "nope"})).await, "unknown_receipt");
    assert_eq!(c.code("Recall", json!({"messageSource": "nope"})).await, "unknown_message");
    bridge.shutdown().await;
}

#[tokio::test]
async fn recall_rank_rules() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    // In the lobby the account is a plain member: it cannot recall others.
    let msg = c.group_message(LOBBY, MEMBER, "hi").await;
    assert_eq!(c.code("Recall", json!({"messageSource": source_id(&msg)})).await, "permission_denied");
    // In its admin group it cannot recall the owner's or another admin's message.
    for who in [OWNER, ADMIN] {
        let msg = c.group_message(GROUP, who, "boss").await;
        assert_eq!(c.code("Recall", json!({"messageSource": source_id(&msg)})).await, "permission_denied");
    }
    // A private message from a friend cannot be recalled by the account.
    let seq = c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("mine")})).await["seq"].as_u64().unwrap();
    let msg = c.event_with_seq(seq).await;
    assert_eq!(c.code("Recall", json!({"messageSource": source_id(&msg)})).await, "permission_denied");
    // A member recalls their own message (SimEvent revoke); then nobody can again.
    let msg = c.group_message(GROUP, MEMBER, "oops").await;
    let r = json!({"type": "revoke", "data": {"type": "group", "revoker": MEMBER, "revokee": MEMBER, "channel": GROUP, "msgID": source_id(&msg)}});
    c.ok("SimEvent", json!({"event": r})).await;
    let ev = c.next_of("revoke").await;
    assert_eq!(ev["data"]["msgID"], source_id(&msg));
    assert_eq!(c.code("Recall", json!({"messageSource": source_id(&msg)})).await, "already_recalled");
    bridge.shutdown().await;
}

#[tokio::test]
async fn requests_are_answered_once() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;

    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "newFriendRequest", "who": 60001, "nick": "Nia", "source": "search", "comment": "hi"}}}))
        .await;
    let ev = c.next_of("user").await;
    assert_eq!(ev["data"]["type"], "newFriendRequest");
    let request = ev["data"]["requestId"].as_str().unwrap().to_owned();
    assert_eq!(c.code("HandleGroupInvite", json!({"requestId": request, "accept": true})).await, "unknown_request");
    c.ok("HandleFriendRequest", json!({"requestId": request, "accept": true})).await;
    let ev = c.next_of("user").await;
    assert_eq!(ev["data"], json!({"type": "friendAdded", "who": 60001, "nick": "Nia"}));
    assert_eq!(c.code("HandleFriendRequest", json!({"requestId": request, "accept": true})).await, "already_handled");
    let friends = c.ok("ListFriends", json!({})).await;
    assert!(friends["friends"].as_array().unwrap().iter().any(|f| f["id"] == 60001));

    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "groupInvite", "group": 20009, "groupName": "new", "inviter": FRIEND}}}))
        .await;
    let ev = c.next_of("user").await;
    let request = ev["data"]["requestId"].as_str().unwrap().to_owned();
    c.ok("HandleGroupInvite", json!({"requestId": request, "accept": true})).await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "groupJoined", "which": 20009}));
    let groups = c.ok("ListGroups", json!({})).await;
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["id"] == 20009 && g["name"] == "new"));

    // Join requests need an admin: refused in the lobby, accepted in the admin group.
    c.ok("SimEvent", json!({"event": {"type": "group", "data": {"type": "joinRequest", "who": 60002, "group": LOBBY, "comment": "", "inviter": 0}}}))
        .await;
    let lobby_req = c.next_of("group").await["data"]["requestId"].as_str().unwrap().to_owned();
    assert_eq!(c.code("HandleJoinRequest", json!({"requestId": lobby_req, "accept": true})).await, "permission_denied");
    c.ok("SimEvent", json!({"event": {"type": "group", "data": {"type": "joinRequest", "who": 60002, "group": GROUP, "comment": "let me in", "inviter": 0}}}))
        .await;
    let req = c.next_of("group").await["data"]["requestId"].as_str().unwrap().to_owned();
    c.ok("HandleJoinRequest", json!({"requestId": req, "accept": true, "reason": "welcome"})).await;
    assert_eq!(c.next_of("group").await["data"], json!({"type": "memberJoined", "who": 60002, "group": GROUP}));
    let members = c.ok("ListMembers", json!({"group": GROUP})).await;
    assert!(members["members"].as_array().unwrap().iter().any(|m| m["id"] == 60002));
    assert_eq!(c.code("HandleJoinRequest", json!({"requestId": req, "accept": false})).await, "already_handled");

    // A rejected request changes nothing.
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "newFriendRequest", "who": 60003}}})).await;
    let req = c.next_of("user").await["data"]["requestId"].as_str().unwrap().to_owned();
    c.ok("HandleFriendRequest", json!({"requestId": req, "accept": false})).await;
    let friends = c.ok("ListFriends", json!({})).await;
    assert!(!friends["friends"].as_array().unwrap().iter().any(|f| f["id"] == 60003));
    assert_eq!(c.code("HandleFriendRequest", json!({"requestId": "qqqq", "accept": true})).await, "unknown_request");
    bridge.shutdown().await;
}

#[tokio::test]
async fn lists_show_the_world() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let friends = c.ok("ListFriends", json!({"bot": BOT})).await;
    assert_eq!(friends["friends"], json!([{"id": 40001, "nick": "Alice"}, {"id": 40002, "nick": "Bob"}]));
    let groups = c.ok("ListGroups", json!({})).await;
    assert_eq!(groups["groups"][0], json!({"id": GROUP, "name": "botbridge dev", "botPermission": "administrator"}));
    assert_eq!(groups["groups"][1]["botPermission"], "member");
    // ListFriends needs no content at all.
    c.send_text(r#"{"type": "ListFriends", "id": 9}"#).await;
    let r = c.result_for(&json!(9)).await;
    assert_eq!(r["ok"], true);
    let members = c.ok("ListMembers", json!({"group": GROUP})).await;
    let owner = members["members"].as_array().unwrap().iter().find(|m| m["id"] == OWNER).unwrap().clone();
    assert_eq!(owner["permission"], "owner");
    assert_eq!(owner["nameCardOrNick"], "Olivia");
    assert_eq!(c.code("ListMembers", json!({"group": 777})).await, "not_in_group");
    assert_eq!(c.code("ListGroups", json!({"bot": 2})).await, "unknown_bot");
    bridge.shutdown().await;
}

#[tokio::test]
async fn sim_events_change_the_world_and_are_checked() {
    let bridge = start(settings()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let seq = c
        .ok(
            "SimEvent",
            json!({"event": {"type": "group", "data": {"type": "memberJoined", "who": 70001, "group": GROUP}}}),
        )
        .await["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(c.event_with_seq(seq).await["data"]["type"], "memberJoined");
    c.group_message(GROUP, 70001, "newbie here").await;
    c.ok(
        "SimEvent",
        json!({"event": {"type": "group", "data": {"type": "admin", "who": 70001, "group": GROUP, "status": true}}}),
    )
    .await;
    c.ok("SimEvent", json!({"event": {"type": "group", "data": {"type": "memberLeft", "who": 70001, "group": GROUP, "operator": 70001}}}))
        .await;
    assert_eq!(
        c.code("SimMessage", json!({"group": GROUP, "sender": 70001, "message": plain("ghost")})).await,
        "unknown_member"
    );
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "offline"}}})).await;
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "friendRemoved", "who": FRIEND, "nick": ""}}}))
        .await;
    assert_eq!(c.code("SendToFriend", json!({"friend": FRIEND, "message": plain("x")})).await, "not_friend");
    c.ok(
        "SimEvent",
        json!({"event": {"type": "user", "data": {"type": "groupLeft", "which": LOBBY, "operator": BOT}}}),
    )
    .await;
    assert_eq!(c.code("SendToGroup", json!({"group": LOBBY, "message": plain("x")})).await, "not_in_group");
    // Rank rules hold for simulated actors too.
    assert_eq!(
        c.code("SimEvent", json!({"event": {"type": "group", "data": {"type": "mute", "who": OWNER, "group": GROUP, "operator": MEMBER, "duration": 5}}}))
            .await,
        "permission_denied"
    );
    assert_eq!(
        c.code("SimEvent", json!({"event": {"type": "msg", "data": {"type": "FriendMessage", "sender": {"id": 1, "nick": ""}, "message": [], "replyKey": "", "bot": BOT}}}))
            .await,
        "bad_request"
    );
    assert_eq!(
        c.code("SimMessage", json!({"group": GROUP, "friend": FRIEND, "message": plain("?")})).await,
        "bad_request"
    );
    assert_eq!(c.code("SimMessage", json!({"friend": 12345, "message": plain("?")})).await, "not_friend");
    assert_eq!(c.code("SimMessage", json!({"group": 777, "sender": 1, "message": plain("?")})).await, "not_in_group");
    bridge.shutdown().await;
}

#[tokio::test]
async fn several_accounts_need_bot() {
    let mut s = settings();
    s.accounts = vec![
        botbridge::config::AccountConfig::Sim { id: botbridge::ids::AccountId(BOT) },
        botbridge::config::AccountConfig::Sim { id: botbridge::ids::AccountId(10002) },
    ];
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    assert_eq!(c.hello["bots"], json!([BOT, 10002]));
    assert_eq!(c.code("ListGroups", json!({})).await, "ambiguous_bot");
    assert_eq!(c.code("SendToGroup", json!({"group": GROUP, "message": plain("x")})).await, "ambiguous_bot");
    let seq = c
        .ok("SimMessage", json!({"bot": 10002, "group": GROUP, "sender": MEMBER, "message": plain("two")}))
        .await["seq"]
        .as_u64()
        .unwrap();
    let ev = c.event_with_seq(seq).await;
    assert_eq!(ev["bot"], 10002);
    assert_eq!(ev["data"]["bot"], 10002);
    // The reply key carries its account.
    c.ok("Reply", json!({"id": reply_key(&ev), "message": plain("from 10002")})).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn expired_ids_are_told_from_unknown_ones() {
    let mut s = settings();
    s.registry.capacity = 4;
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let old = c.group_message(GROUP, MEMBER, "old").await;
    let sent = c.ok("SendToGroup", json!({"group": GROUP, "message": plain("mine")})).await;
    c.ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "newFriendRequest", "who": 60001}}})).await;
    let req = c.next_of("user").await["data"]["requestId"].as_str().unwrap().to_owned();
    for i in 0..4 {
        c.group_message(GROUP, MEMBER, &format!("filler {i}")).await;
    }
    assert_eq!(c.code("Reply", json!({"id": reply_key(&old), "message": plain("late")})).await, "expired_reply_key");
    assert_eq!(c.code("Recall", json!({"messageSource": source_id(&old)})).await, "expired_message");
    assert_eq!(c.code("RecallReceipt", json!({"receipt": sent["receiptId"]})).await, "expired_receipt");
    assert_eq!(c.code("HandleFriendRequest", json!({"requestId": req, "accept": true})).await, "expired_request");
    bridge.shutdown().await;
}
