//! The admin API over real HTTP on loopback: deploy, refusals that change
//! nothing, rollback, removal, pins, who may use it; and the `deploy`,
//! `bots` and `rollback` commands of the real binary against it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::guests::*;
use crate::support::*;

const ADMIN_TOKEN: &str = "admin-secret";
const CLIENT_TOKEN: &str = "client-secret";

fn admin() -> Vec<(&'static str, &'static str)> {
    vec![("Authorization", "Bearer admin-secret")]
}

async fn bridge() -> botbridge::app::Running {
    let mut s = settings();
    s.admin_token = Some(ADMIN_TOKEN.into());
    s.ws.token = Some(CLIENT_TOKEN.into());
    start(s).await
}

async fn put(bridge: &botbridge::app::Running, name: &str, wasm: Vec<u8>) -> (u16, Value) {
    let mut headers = admin();
    headers.push(("Content-Type", "application/wasm"));
    http_request(bridge.addr, "PUT", &format!("/api/bots/{name}"), &headers, wasm).await
}

/// A multipart upload of a component and its `NAME.toml`.
async fn put_with_config(bridge: &botbridge::app::Running, name: &str, wasm: &[u8], toml: &str) -> (u16, Value) {
    let boundary = "test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"b.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(wasm);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"toml\"; filename=\"b.toml\"\r\n\r\n{toml}\r\n--{boundary}--\r\n")
            .as_bytes(),
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let mut headers = admin();
    headers.push(("Content-Type", &content_type));
    http_request(bridge.addr, "PUT", &format!("/api/bots/{name}"), &headers, body).await
}

async fn rollback(bridge: &botbridge::app::Running, name: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    http_request(bridge.addr, "POST", &format!("/api/bots/{name}/rollback"), &admin(), body).await
}

/// What bot `by` says in group 20001 after a member speaks there.
async fn answer_of(c: &mut Client, by: &str) -> String {
    c.group_message(GROUP, MEMBER, "/echo anyone?").await;
    loop {
        let frame = c.next_of("outgoing").await;
        if frame["data"]["by"] == by {
            return frame["data"]["message"].as_array().unwrap().iter().filter_map(|e| e["msg"].as_str()).collect();
        }
    }
}

fn version_of(bridge: &botbridge::app::Running, name: &str) -> Option<String> {
    bridge.wasm.status(name).map(|s| s.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_bot_answers_and_its_file_is_in_the_folder() {
    let bridge = bridge().await;
    let (status, answer) = put(&bridge, "echo", example("echo")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["state"], "running");
    assert_eq!(answer["version"].as_str(), version_of(&bridge, "echo").as_deref(), "the answer names what runs");
    assert_eq!(std::fs::read(bridge.wasm.dir().join("echo.wasm")).unwrap(), example("echo"));
    let mut c = Client::connect(&format!("{}?outgoing=1&token={CLIENT_TOKEN}", bridge.ws_url())).await;
    assert_eq!(answer_of(&mut c, "echo").await, "anyone?");

    // The list shows it, with its SHA-256, its config and its kept version.
    let (status, list) = http_request(bridge.addr, "GET", "/api/bots", &admin(), Vec::new()).await;
    assert_eq!(status, 200);
    let echo = list["bots"].as_array().unwrap().iter().find(|b| b["name"] == "echo").cloned().unwrap();
    assert_eq!(echo["sha256"], answer["sha256"]);
    assert_eq!(echo["config"]["cpu_ms"], 200, "the defaults, as the host read them");
    assert_eq!(echo["versions"][0]["version"], answer["version"]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_changes_nothing() {
    let bridge = bridge().await;
    let v1 = sayer("v1 here");
    assert_eq!(put(&bridge, "bot", v1.clone()).await.0, 200);
    let running = version_of(&bridge, "bot");
    let folder = bridge.wasm.dir().to_owned();

    // Not a component; a config that does not parse; a build whose init traps;
    // a bad name; one over the size cap.
    let (status, answer) = put(&bridge, "bot", b"\0asm definitely not a component".to_vec()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not a valid component"), "{answer}");
    let (status, answer) = put_with_config(&bridge, "bot", &sayer("v2"), "memory_mb = \"lots\"").await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("bad config"), "{answer}");
    let (status, answer) = put(&bridge, "bot", failing_setup()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("init failed"), "{answer}");
    let (status, _) = put(&bridge, "../escape", v1.clone()).await;
    assert!(status == 400 || status == 404, "a name that climbs out is refused ({status})");
    let (status, _) = put(&bridge, "bad.name", v1.clone()).await;
    assert_eq!(status, 400);

    assert_eq!(std::fs::read(folder.join("bot.wasm")).unwrap(), v1, "the folder holds what runs");
    assert!(!folder.join("bot.toml").exists(), "no config was left behind");
    let names: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // room for the watcher to (not) act
    assert_eq!(version_of(&bridge, "bot"), running, "the running version is untouched");
    let mut c = Client::connect(&format!("{}?outgoing=1&token={CLIENT_TOKEN}", bridge.ws_url())).await;
    assert_eq!(answer_of(&mut c, "bot").await, "v1 here");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_goes_back_one_version_or_to_a_named_one() {
    let bridge = bridge().await;
    let (_, first) = put(&bridge, "bot", sayer("one")).await;
    let (_, second) = put_with_config(&bridge, "bot", &sayer("two"), "cpu_ms = 300").await;
    assert_eq!(second["ok"], true, "{second}");
    let mut c = Client::connect(&format!("{}?outgoing=1&token={CLIENT_TOKEN}", bridge.ws_url())).await;
    assert_eq!(answer_of(&mut c, "bot").await, "two");

    let (status, back) = rollback(&bridge, "bot", Value::Null).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["version"], first["version"]);
    assert_eq!(answer_of(&mut c, "bot").await, "one");
    assert!(!bridge.wasm.dir().join("bot.toml").exists(), "version one ran without a config, and does again");

    let (status, answer) = rollback(&bridge, "bot", Value::Null).await;
    assert_eq!(status, 409, "nothing before the first: {answer}");
    let (status, forward) = rollback(&bridge, "bot", json!({"version": second["version"]})).await;
    assert_eq!(status, 200, "{forward}");
    assert_eq!(answer_of(&mut c, "bot").await, "two");
    assert_eq!(std::fs::read_to_string(bridge.wasm.dir().join("bot.toml")).unwrap(), "cpu_ms = 300");
    let (status, _) = rollback(&bridge, "bot", json!({"version": "0123456789abcdef"})).await;
    assert_eq!(status, 404);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_bot_stops_and_comes_back_by_rollback() {
    let bridge = bridge().await;
    let (_, deployed) = put(&bridge, "bot", sayer("still here")).await;
    let (status, answer) = http_request(bridge.addr, "DELETE", "/api/bots/bot", &admin(), Vec::new()).await;
    assert_eq!((status, &answer["state"]), (200, &json!("removed")), "{answer}");
    assert!(bridge.wasm.status("bot").is_none());
    assert!(!bridge.wasm.dir().join("bot.wasm").exists());
    let (status, _) = http_request(bridge.addr, "DELETE", "/api/bots/bot", &admin(), Vec::new()).await;
    assert_eq!(status, 404, "no such bot any more");
    let (status, back) = rollback(&bridge, "bot", Value::Null).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["version"], deployed["version"]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_bot_refuses_any_other_build() {
    let bridge = bridge().await;
    let (one, two) = (sayer("pinned one"), sayer("another build"));
    let sha_one = botbridge::wasm::limits::sha256_hex(&one);
    // Pinned from the folder: the pinned build loads, another is refused.
    write_toml(bridge.wasm.dir(), "bot", &format!("sha256 = \"{}\"\n", sha_one.to_uppercase()));
    install(bridge.wasm.dir(), "bot", &one);
    eventually("the pinned build loads", || bridge.wasm.status("bot").is_some()).await;
    let running = version_of(&bridge, "bot");
    install(bridge.wasm.dir(), "bot", &two);
    eventually("the other build is refused", || bridge.wasm.rejected("bot").is_some()).await;
    let why = bridge.wasm.rejected("bot").unwrap();
    assert!(why.contains("pinned to sha256") && why.contains(&sha_one), "{why}");
    assert_eq!(version_of(&bridge, "bot"), running);

    // Over the API: refused while the pin stays, accepted with a new pin.
    install(bridge.wasm.dir(), "bot", &one);
    eventually("the folder is back to the pinned build", || bridge.wasm.rejected("bot").is_none()).await;
    let (status, answer) = put(&bridge, "bot", two.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("pinned"), "{answer}");
    assert_eq!(std::fs::read(bridge.wasm.dir().join("bot.wasm")).unwrap(), one);
    let sha_two = botbridge::wasm::limits::sha256_hex(&two);
    let (status, answer) = put_with_config(&bridge, "bot", &two, &format!("sha256 = \"{sha_two}\"")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sha256"], sha_two);
    let (status, answer) = put_with_config(&bridge, "bot", &two, "sha256 = \"not-hex\"").await;
    assert_eq!(status, 422, "a malformed pin is a bad config: {answer}");
    bridge.shutdown().await;
}

#[tokio::test]
async fn only_the_admin_token_deploys() {
    let bridge = bridge().await;
    let wasm = sayer("never");
    for (headers, expected, why) in [
        (vec![], 401, "no token"),
        (vec![("Authorization", "Bearer wrong")], 401, "a wrong token"),
        (vec![("Authorization", "Bearer client-secret")], 403, "the client token"),
        (vec![("Authorization", "Bearer admin-secret"), ("Origin", "http://evil.example")], 403, "a foreign page"),
        (vec![("Authorization", "Bearer admin-secret"), ("Host", "rebound.example:80")], 403, "a foreign Host"),
    ] {
        let (status, answer) = http_request(bridge.addr, "PUT", "/api/bots/intruder", &headers, wasm.clone()).await;
        assert_eq!(status, expected, "{why}: {answer}");
        let (status, _) = http_request(bridge.addr, "DELETE", "/api/bots/intruder", &headers, Vec::new()).await;
        assert_eq!(status, expected, "{why} (DELETE)");
        let (status, _) = http_request(bridge.addr, "POST", "/api/bots/intruder/rollback", &headers, Vec::new()).await;
        assert_eq!(status, expected, "{why} (rollback)");
    }
    assert!(!bridge.wasm.dir().join("intruder.wasm").exists());
    assert!(bridge.wasm.status("intruder").is_none());
    // The admin token is not a chat token.
    let refused = tokio_tungstenite::connect_async(format!("{}?token={ADMIN_TOKEN}", bridge.ws_url())).await;
    assert!(refused.is_err(), "the admin token opens no /ws");
    bridge.shutdown().await;

    // Without an admin_token the API is off, even for the client token.
    let mut s = settings();
    s.ws.token = Some(CLIENT_TOKEN.into());
    let bridge = start(s).await;
    let (status, answer) =
        http_request(bridge.addr, "PUT", "/api/bots/x", &[("Authorization", "Bearer client-secret")], wasm).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("admin_token"));
    bridge.shutdown().await;
}

/// The real `botbridge` binary, with the admin token in its environment.
fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_botbridge"))
        .args(args)
        .env("BOTBRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the botbridge binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_bots_and_rollback_commands() {
    let bridge = bridge().await;
    let url = format!("http://{}", bridge.addr);
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("greeter.wasm"), dir.path().join("other.wasm"));
    std::fs::write(&one, sayer("cli one")).unwrap();
    std::fs::write(&two, sayer("cli two")).unwrap();
    let config = dir.path().join("greeter.toml");
    std::fs::write(&config, "cpu_ms = 250\n").unwrap();

    let run = |args: Vec<String>| {
        let out = tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        async move { out.await.unwrap() }
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let out = run(s(&["deploy", one.to_str().unwrap(), "--config", config.to_str().unwrap(), "--url", &url])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let v1 = version_of(&bridge, "greeter").expect("deployed under the file's name");
    assert!(stdout.contains(&format!("deployed greeter: running version {v1}")), "{stdout}");
    assert_eq!(std::fs::read_to_string(bridge.wasm.dir().join("greeter.toml")).unwrap(), "cpu_ms = 250\n");

    let out = run(s(&["deploy", two.to_str().unwrap(), "--name", "greeter", "--url", &url])).await;
    assert!(out.status.success());
    assert_ne!(version_of(&bridge, "greeter").unwrap(), v1);
    let out = run(s(&["bots", "--url", &url])).await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.lines().any(|l| l.starts_with("greeter") && l.contains("running")), "{listing}");

    let out = run(s(&["rollback", "greeter", "--url", &url])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(version_of(&bridge, "greeter").unwrap(), v1);

    // A refusal: the reason, and a failing exit.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"not wasm").unwrap();
    let out = run(s(&["deploy", broken.to_str().unwrap(), "--name", "greeter", "--url", &url])).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused (HTTP 422)") && stderr.contains("not a valid component"), "{stderr}");
    let out = run(s(&["deploy", one.to_str().unwrap(), "--url", &url, "--admin-token", "wrong"])).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
    assert_eq!(version_of(&bridge, "greeter").unwrap(), v1, "refusals changed nothing");
    bridge.shutdown().await;
}

#[tokio::test]
async fn an_upload_over_the_size_caps_is_refused_whole() {
    let mut s = settings();
    s.admin_token = Some(ADMIN_TOKEN.into());
    s.max_bot_bytes = 4096;
    s.max_bot_config_bytes = 64;
    let bridge = start(s).await;
    // Over the cap but within the form's framing allowance: the host's cap.
    let (status, answer) = put(&bridge, "big", vec![0; 8192]).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("over the limit of 4096 bytes"), "{answer}");
    // Far over: the body limit stops the upload itself.
    let (status, _) = put(&bridge, "big", vec![0; 1 << 20]).await;
    assert_eq!(status, 413);
    let (status, answer) = put_with_config(&bridge, "big", b"", &"#".repeat(100)).await;
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = put_with_config(&bridge, "big", b"", "cpu_ms = 1").await;
    assert_eq!(status, 422, "an empty component is not one: {answer}");
    let mut headers = admin();
    headers.push(("Content-Type", "multipart/form-data; boundary=b"));
    let body = b"--b\r\nContent-Disposition: form-data; name=\"extra\"\r\n\r\nx\r\n--b--\r\n".to_vec();
    let (status, answer) = http_request(bridge.addr, "PUT", "/api/bots/big", &headers, body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unknown part `extra`"), "{answer}");
    assert_eq!(std::fs::read_dir(bridge.wasm.dir()).map(|d| d.count()).unwrap_or(0), 0, "the folder is untouched");
    bridge.shutdown().await;
}
