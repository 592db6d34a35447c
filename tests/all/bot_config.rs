//! `[config]` and `[secrets]` in a real bot's `NAME.toml`: read through the
//! WIT world, secrets taken from the bridge's environment and never shown,
//! a missing variable refusing the file, and an edit reloading the bot.

use crate::guests::*;
use crate::support::*;
use crate::timers::command;

/// A variable cargo sets for every test run: the secret's value here.
const SECRET_VAR: &str = "CARGO_MANIFEST_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_secrets_are_read_and_secrets_never_shown() {
    let secret = std::env::var(SECRET_VAR).expect("cargo sets it");
    let s = settings();
    std::fs::create_dir_all(&s.bots).unwrap();
    std::fs::write(
        s.bots.join("probe.toml"),
        format!("[config]\ngreeting = \"hello\"\n[secrets]\napi_key = {{ env = \"{SECRET_VAR}\" }}\n"),
    )
    .unwrap();
    install(&s.bots, "probe", &commander());
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    assert_eq!(command(&mut c, "config greeting").await, "config greeting: 5 bytes");
    assert_eq!(command(&mut c, "config api_key").await, format!("config api_key: {} bytes", secret.len()));
    assert_eq!(command(&mut c, "config missing").await, "config missing: none");

    // The bot logged both values: the secret is masked in its log.
    let lines = bridge.wasm.logbook().recent("probe");
    assert!(lines.iter().any(|l| l.message == "greeting=hello"), "{lines:?}");
    assert!(lines.iter().any(|l| l.message == "api_key=***"), "{lines:?}");
    assert!(lines.iter().all(|l| !l.message.contains(&secret)), "{lines:?}");
    // Sent to the chat, it is masked too (and so in the audit stream).
    assert_eq!(command(&mut c, "say-config api_key").await, "***");
    assert_eq!(command(&mut c, "say-config greeting").await, "hello");
    let (status, body) = http_get(bridge.addr, "/api/bots", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(!body.contains(&secret), "/api/bots shows no secret");

    // Editing NAME.toml reloads the bot with the new values.
    std::fs::write(s.bots.join("probe.toml"), "[config]\ngreeting = \"bonjour\"\n").unwrap();
    let mut answer = String::new();
    for _ in 0..100 {
        answer = command(&mut c, "config greeting").await;
        if answer != "config greeting: 5 bytes" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answer, "config greeting: 7 bytes");
    assert_eq!(command(&mut c, "config api_key").await, "config api_key: none", "the secret went with the edit");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_refuses_the_file_naming_bot_and_variable() {
    let s = settings();
    std::fs::create_dir_all(&s.bots).unwrap();
    std::fs::write(s.bots.join("probe.toml"), "[secrets]\napi_key = { env = \"BOTBRIDGE_SURELY_UNSET_42\" }\n")
        .unwrap();
    install(&s.bots, "probe", &commander());
    let bridge = start(s.clone()).await;
    let why = bridge.wasm.rejected("probe").expect("refused");
    assert!(why.contains("probe") && why.contains("api_key") && why.contains("BOTBRIDGE_SURELY_UNSET_42"), "{why}");
    assert!(bridge.wasm.status("probe").is_none(), "nothing runs");

    // A key in both tables is refused too.
    std::fs::write(
        s.bots.join("probe.toml"),
        format!("[config]\napi_key = \"x\"\n[secrets]\napi_key = {{ env = \"{SECRET_VAR}\" }}\n"),
    )
    .unwrap();
    eventually("refused again", || bridge.wasm.rejected("probe").is_some_and(|w| w.contains("both"))).await;
    bridge.shutdown().await;
}
