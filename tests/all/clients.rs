//! Scoped client tokens (`[[client]]`): a remote bot gets exactly the scope
//! of its entry, is named by it in the audit stream, and is shut out when
//! the entry is edited away (the config file is reloaded while running).

use std::time::{Duration, Instant};

use botbridge::config::{ServeArgs, Settings};
use serde_json::json;

use crate::support::*;

const WEATHER: &str = "weather-token-1";

fn config(clients: &str) -> String {
    format!("token = \"operator-token\"\nadmin_token = \"admin-token\"\n{clients}")
}

const WEATHER_ENTRY: &str = "[[client]]\nname = \"weather\"\ntoken = \"weather-token-1\"\n[client.permissions]\ngroups = [20001]\noperations = [\"SendToGroup\", \"Reply\"]\n";

async fn bridge_with(dir: &std::path::Path, text: &str) -> botbridge::app::Running {
    let path = dir.join("botbridge.toml");
    std::fs::write(&path, text).unwrap();
    let args = ServeArgs {
        config: Some(path),
        listen: Some("127.0.0.1:0".into()),
        bots: Some(dir.join("bots")),
        state_dir: Some(dir.join("state")),
        ..Default::default()
    };
    start(Settings::resolve(&args).expect("the config is valid")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_client_acts_only_within_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = bridge_with(dir.path(), &config(WEATHER_ENTRY)).await;
    let mut operator = Client::connect(&format!("{}?outgoing=1&token=operator-token", bridge.ws_url())).await;
    let mut weather = Client::connect(&format!("{}?token={WEATHER}", bridge.ws_url())).await;

    // Inside its scope: sent, and the audit stream names it by its entry.
    weather.ok("SendToGroup", json!({"group": GROUP, "message": plain("sunny")})).await;
    let audit = operator.next_of("outgoing").await;
    assert_eq!(audit["data"]["by"], "weather", "{audit}");

    // Outside it: another group, private chats, operations it was not given.
    assert_eq!(weather.code("SendToGroup", json!({"group": LOBBY, "message": plain("rain")})).await, "forbidden");
    assert_eq!(weather.code("SendToFriend", json!({"friend": FRIEND, "message": plain("hi")})).await, "forbidden");
    assert_eq!(weather.code("ListFriends", json!({})).await, "forbidden");
    let said = operator.group_message(GROUP, MEMBER, "to be recalled").await;
    assert_eq!(weather.code("Recall", json!({"messageSource": source_id(&said)})).await, "forbidden");
    let sim = json!({"group": GROUP, "sender": MEMBER, "message": plain("fake")});
    assert_eq!(weather.code("SimMessage", sim).await, "forbidden");

    // The operator's pages are not for it.
    for path in ["/", "/api/bots", "/metrics"] {
        let (status, _) =
            http_request(bridge.addr, "GET", path, &[("Authorization", "Bearer weather-token-1")], vec![]).await;
        assert_eq!(status, 401, "{path}");
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_config_revokes_a_token_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let games = "[[client]]\nname = \"games\"\ntoken_env = \"BOTBRIDGE_TEST_GAMES_TOKEN\"\n";
    // SAFETY: set before the bridge starts, and only this test reads it.
    unsafe { std::env::set_var("BOTBRIDGE_TEST_GAMES_TOKEN", "games-token-9") };
    let bridge = bridge_with(dir.path(), &config(&format!("{WEATHER_ENTRY}{games}"))).await;
    let mut weather = Client::connect(&format!("{}?token={WEATHER}", bridge.ws_url())).await;
    let mut games_client = Client::connect(&format!("{}?token=games-token-9", bridge.ws_url())).await;
    games_client.ok("ListGroups", json!({})).await;

    // Weather's entry goes; games stays as it was. A broken edit first: it
    // changes nothing.
    std::fs::write(dir.path().join("botbridge.toml"), "token = [broken").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    weather.ok("SendToGroup", json!({"group": GROUP, "message": plain("still here")})).await;
    std::fs::write(dir.path().join("botbridge.toml"), config(games)).unwrap();

    let (close, _) = until_close(&mut weather.ws).await;
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), botbridge::ws::CLOSE_REVOKED, "{close:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = tokio_tungstenite::connect_async(format!("{}?token={WEATHER}", bridge.ws_url())).await;
        if refused.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still opens /ws");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    games_client.ok("ListGroups", json!({})).await;
    Client::connect(&format!("{}?token=operator-token", bridge.ws_url())).await;
    bridge.shutdown().await;
}

#[test]
fn client_entries_are_checked() {
    let path = std::path::Path::new("bb.toml");
    for (text, expected) in [
        ("[[client]]\nname = \"a\"\n", "exactly one of `token`"),
        ("[[client]]\nname = \"a\"\ntoken = \"x\"\ntoken_env = \"Y\"\n", "exactly one of `token`"),
        ("[[client]]\nname = \"\"\ntoken = \"x\"\n", "name"),
        ("[[client]]\nname = \"a b\"\ntoken = \"x\"\n", "name"),
        ("[[client]]\nname = \"a\"\ntoken = \"x\"\n[[client]]\nname = \"a\"\ntoken = \"y\"\n", "appears twice"),
        ("[[client]]\nname = \"a\"\ntoken = \"x\"\n[client.permissions]\noperations = [\"Nuke\"]\n", "Nuke"),
    ] {
        let err = botbridge::config::FileConfig::parse(text, path).unwrap_err();
        let msg = botbridge::error_chain(&err);
        assert!(msg.contains(expected), "{text}: {msg}");
    }
    let same =
        botbridge::config::FileConfig::parse("token = \"x\"\n[[client]]\nname = \"a\"\ntoken = \"x\"\n", path).unwrap();
    let err = same.tokens(None, None, path).unwrap_err();
    assert!(botbridge::error_chain(&err).contains("must all differ"));
    let unset = botbridge::config::FileConfig::parse(
        "[[client]]\nname = \"a\"\ntoken_env = \"BOTBRIDGE_NOT_SET_ANYWHERE\"\n",
        path,
    )
    .unwrap();
    let err = unset.tokens(None, None, path).unwrap_err();
    assert!(botbridge::error_chain(&err).contains("BOTBRIDGE_NOT_SET_ANYWHERE"));
}
