//! The protocol's extensions in the simulated world, over a real WebSocket:
//! each new event injected with `SimEvent` and seen by clients, each new
//! operation with the rank a real server would demand, obeyed and refused,
//! and forwarded messages and `GetMessage` round trips.

use serde_json::{Value, json};

use crate::support::*;

async fn client() -> (botbridge::app::Running, Client) {
    let bridge = start(settings()).await;
    let c = Client::connect(&bridge.ws_url()).await;
    (bridge, c)
}

/// Injects a group event; returns the event frame clients got.
async fn inject(c: &mut Client, event: Value) -> Value {
    let seq = c.ok("SimEvent", json!({"event": {"type": "group", "data": event}})).await["seq"].as_u64().unwrap();
    c.event_with_seq(seq).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_event_is_injected_and_delivered() {
    let (bridge, mut c) = client().await;
    let said = c.group_message(GROUP, MEMBER, "react to me").await;
    let source = source_id(&said);

    let poke = inject(&mut c, json!({"type": "poke", "from": MEMBER, "target": BOT, "group": GROUP})).await;
    assert_eq!(poke["data"], json!({"type": "poke", "from": MEMBER, "target": BOT, "group": GROUP}));

    let like =
        json!({"type": "reaction", "who": ADMIN, "group": GROUP, "messageSource": source, "emoji": "76", "add": true});
    let ev = inject(&mut c, like.clone()).await;
    assert_eq!(ev["data"], like, "the reaction names the source ID the message had");

    let essence = json!({"type": "essence", "group": GROUP, "messageSource": source, "sender": 0, "operator": ADMIN, "set": true});
    let ev = inject(&mut c, essence).await;
    assert_eq!(ev["data"]["sender"], MEMBER, "the world fills in who said it");
    assert_eq!(ev["data"]["messageSource"], json!(source));

    let card =
        inject(&mut c, json!({"type": "memberCard", "who": MEMBER, "group": GROUP, "card": "Mia the Great"})).await;
    assert_eq!(card["data"]["old"], "");
    let members = c.ok("ListMembers", json!({"group": GROUP})).await;
    let mia = members["members"].as_array().unwrap().iter().find(|m| m["id"] == MEMBER).unwrap().clone();
    assert_eq!(mia["nameCard"], "Mia the Great", "the card changed in the world");

    let file = json!({"type": "fileUpload", "who": MEMBER, "group": GROUP, "file": {"id": "/abc", "name": "notes.pdf", "size": 1024}});
    assert_eq!(inject(&mut c, file.clone()).await["data"], file);
    let honor = json!({"type": "honor", "who": MEMBER, "group": GROUP, "honor": "talkative"});
    assert_eq!(inject(&mut c, honor.clone()).await["data"], honor);
    let title = json!({"type": "title", "who": MEMBER, "group": GROUP, "title": "Chief"});
    assert_eq!(inject(&mut c, title.clone()).await["data"], title);

    let seq = c
        .ok("SimEvent", json!({"event": {"type": "user", "data": {"type": "poke", "from": FRIEND, "target": BOT}}}))
        .await["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(c.event_with_seq(seq).await["data"], json!({"type": "poke", "from": FRIEND, "target": BOT}));

    // What the world would not let happen is refused and changes nothing.
    let bad = |event: Value| json!({"event": {"type": "group", "data": event}});
    let stranger_poke = bad(json!({"type": "poke", "from": 99999, "target": BOT, "group": GROUP}));
    assert_eq!(c.code("SimEvent", stranger_poke).await, "unknown_member");
    let member_essence = bad(
        json!({"type": "essence", "group": GROUP, "messageSource": source, "sender": 0, "operator": MEMBER, "set": true}),
    );
    assert_eq!(c.code("SimEvent", member_essence).await, "permission_denied");
    let elsewhere = bad(
        json!({"type": "reaction", "who": ADMIN, "group": LOBBY, "messageSource": source, "emoji": "1", "add": true}),
    );
    assert_eq!(c.code("SimEvent", elsewhere).await, "unknown_message");
    let stranger_private =
        json!({"event": {"type": "user", "data": {"type": "poke", "from": STRANGER, "target": BOT}}});
    assert_eq!(c.code("SimEvent", stranger_private).await, "not_friend");
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_operations_obey_rank_as_a_server_would() {
    let (bridge, mut c) = client().await;
    // In GROUP the account is an administrator: it outranks members, not the owner.
    c.ok("SetMemberCard", json!({"group": GROUP, "member": MEMBER, "card": "newbie"})).await;
    let ev = c.next_of("group").await;
    assert_eq!(ev["data"], json!({"type": "memberCard", "who": MEMBER, "group": GROUP, "card": "newbie", "old": ""}));
    assert_eq!(
        c.code("SetMemberCard", json!({"group": GROUP, "member": OWNER, "card": "x"})).await,
        "permission_denied"
    );
    assert_eq!(
        c.code("SetMemberCard", json!({"group": LOBBY, "member": MEMBER, "card": "x"})).await,
        "permission_denied"
    );
    let long = "x".repeat(500);
    assert_eq!(c.code("SetMemberCard", json!({"group": GROUP, "member": MEMBER, "card": long})).await, "bad_request");

    // Only the owner appoints admins.
    assert_eq!(
        c.code("SetGroupAdmin", json!({"group": GROUP, "member": MEMBER, "enable": true})).await,
        "permission_denied"
    );

    // Mute everyone: admins may; a member cannot speak until it is lifted.
    c.ok("MuteAll", json!({"group": GROUP, "enable": true})).await;
    assert_eq!(
        c.next_of("group").await["data"],
        json!({"type": "mute", "who": 0, "group": GROUP, "operator": BOT, "duration": -1})
    );
    let speak = json!({"group": GROUP, "sender": MEMBER, "message": plain("hi")});
    assert_eq!(c.code("SimMessage", speak.clone()).await, "muted");
    c.ok("MuteAll", json!({"group": GROUP, "enable": false})).await;
    assert_eq!(c.next_of("group").await["data"]["duration"], 0, "lifted");
    c.ok("SimMessage", speak).await;
    assert_eq!(c.code("MuteAll", json!({"group": LOBBY, "enable": true})).await, "permission_denied");

    // Kick: a member yes, the owner no; with rejectRejoin their join request is refused.
    assert_eq!(c.code("KickMember", json!({"group": GROUP, "member": OWNER})).await, "permission_denied");
    c.ok("KickMember", json!({"group": GROUP, "member": MEMBER, "rejectRejoin": true})).await;
    assert_eq!(
        c.next_of("group").await["data"],
        json!({"type": "memberLeft", "who": MEMBER, "group": GROUP, "operator": BOT})
    );
    assert_eq!(c.code("KickMember", json!({"group": GROUP, "member": MEMBER})).await, "unknown_member");
    let rejoin = json!({"event": {"type": "group", "data": {"type": "joinRequest", "who": MEMBER, "group": GROUP}}});
    assert_eq!(c.code("SimEvent", rejoin).await, "forbidden");
    assert_eq!(c.code("KickMember", json!({"group": LOBBY, "member": 30003})).await, "permission_denied");

    // Pokes: in a group to a member, privately to a friend.
    c.ok("SendPoke", json!({"group": GROUP, "target": ADMIN})).await;
    assert_eq!(c.next_of("group").await["data"], json!({"type": "poke", "from": BOT, "target": ADMIN, "group": GROUP}));
    c.ok("SendPoke", json!({"target": FRIEND})).await;
    assert_eq!(c.next_of("user").await["data"], json!({"type": "poke", "from": BOT, "target": FRIEND}));
    assert_eq!(c.code("SendPoke", json!({"target": STRANGER})).await, "not_friend");
    assert_eq!(c.code("SendPoke", json!({"group": GROUP, "target": 99999})).await, "unknown_member");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_and_get_message_round_trip() {
    let (bridge, mut c) = client().await;
    let said = c.group_message(GROUP, MEMBER, "remember this").await;
    let source = source_id(&said);
    let got = c.ok("GetMessage", json!({"messageSource": source})).await["message"].clone();
    assert_eq!(got["target"], json!({"type": "group", "group": GROUP}));
    assert_eq!(got["sender"], MEMBER);
    assert_eq!(got["senderName"], "Mia");
    assert_eq!(
        got["message"],
        json!([{"type": "MessageSource", "id": source}, {"type": "Plain", "msg": "remember this"}])
    );

    // A quote comes back with the source ID the quoted message had.
    let quoting = c
        .ok("SimMessage", json!({"group": GROUP, "sender": ADMIN, "message": [{"type": "Quote", "id": source}, {"type": "Plain", "msg": "this?"}]}))
        .await;
    let quoting = c.event_with_seq(quoting["seq"].as_u64().unwrap()).await;
    let got = c.ok("GetMessage", json!({"messageSource": source_id(&quoting)})).await["message"].clone();
    assert_eq!(got["message"][1]["type"], "Quote");
    assert_eq!(got["message"][1]["id"], json!(source));

    let nodes = json!([
        {"sender": MEMBER, "name": "Mia", "time": 1_700_000_000, "message": plain("first")},
        {"sender": ADMIN, "name": "Adam", "message": [{"type": "Plain", "msg": "second"}, {"type": "Face", "id": 14}]}
    ]);
    let sent = c.ok("SendForward", json!({"group": GROUP, "nodes": nodes})).await;
    let forward = c.ok("GetMessage", json!({"messageSource": sent["sourceId"]})).await["message"].clone();
    assert_eq!(forward["sender"], BOT);
    let element = &forward["message"][1];
    assert_eq!(element["type"], "Forward");
    assert_eq!(element["nodes"][1]["message"], json!([{"type": "Plain", "msg": "second"}, {"type": "Face", "id": 14}]));
    assert_eq!(element["nodes"][0]["name"], "Mia");
    c.ok("Recall", json!({"messageSource": sent["sourceId"]})).await;
    assert_eq!(c.code("GetMessage", json!({"messageSource": sent["sourceId"]})).await, "unknown_message");

    // Malformed forwards change nothing.
    assert_eq!(c.code("SendForward", json!({"group": GROUP, "nodes": []})).await, "bad_message");
    let quoted =
        json!([{"sender": MEMBER, "message": [{"type": "Quote", "id": source}, {"type": "Plain", "msg": "x"}]}]);
    assert_eq!(c.code("SendForward", json!({"group": GROUP, "nodes": quoted})).await, "bad_message");
    assert_eq!(c.code("SendForward", json!({"group": GROUP, "friend": FRIEND, "nodes": nodes})).await, "bad_request");
    assert_eq!(c.code("SendForward", json!({"friend": STRANGER, "nodes": nodes})).await, "not_friend");
    // In LOBBY the account is a plain member: the owner's group mute silences its forwards too.
    let mute_lobby = json!({"event": {"type": "group", "data": {"type": "mute", "who": 0, "group": LOBBY, "operator": 30005, "duration": -1}}});
    c.ok("SimEvent", mute_lobby).await;
    assert_eq!(c.code("SendForward", json!({"group": LOBBY, "nodes": nodes})).await, "muted");
    let inline = json!({"group": GROUP, "message": [{"type": "Forward", "nodes": []}]});
    assert_eq!(c.code("SendToGroup", inline).await, "bad_message");
    assert_eq!(c.code("GetMessage", json!({"messageSource": "not-an-id"})).await, "unknown_message");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_sender_is_muted_through_its_message() {
    let (bridge, mut c) = client().await;
    let seq = c
        .ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "anonymous": true, "message": plain("boo")}))
        .await["seq"]
        .as_u64()
        .unwrap();
    let ev = c.event_with_seq(seq).await;
    assert_eq!(ev["data"]["anonymous"], true);
    c.ok("MuteMember", json!({"messageSource": source_id(&ev), "time": 60})).await;
    let muted = c.next_of("group").await;
    assert_eq!(muted["data"], json!({"type": "mute", "who": MEMBER, "group": GROUP, "operator": BOT, "duration": 60}));
    let speak = json!({"group": GROUP, "sender": MEMBER, "message": plain("again")});
    assert_eq!(c.code("SimMessage", speak).await, "muted");
    let both = json!({"group": GROUP, "member": MEMBER, "messageSource": source_id(&ev), "time": 60});
    assert_eq!(c.code("MuteMember", both).await, "bad_request");
    let private = c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("hi")})).await["seq"].as_u64().unwrap();
    let private = c.event_with_seq(private).await;
    let not_group = json!({"messageSource": source_id(&private), "time": 60});
    assert_eq!(c.code("MuteMember", not_group).await, "bad_request");
    bridge.shutdown().await;
}
