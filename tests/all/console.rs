//! The web dev console in a real headless Chromium (Debian's `chromium`,
//! driven through `chromedriver` over WebDriver), against a bridge on port 0.
//! `.ci/run` installs both; set CHROMIUM and CHROMEDRIVER to use others.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::guests::*;
use crate::support::*;

const TOKEN: &str = "console-secret";

/// A headless Chromium session; `close` ends it and its chromedriver.
struct Browser {
    client: WebDriver,
    driver: Child,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{chromedriver}: {e} (apt-get install chromium chromium-driver)"));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1400,860"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = caps.as_object().unwrap().clone();
        let start = Instant::now();
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => return Browser { client, driver },
                Err(e) if start.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session: {e}"),
            }
        }
    }

    /// Waits (up to 60 s) until some element matching `css` has text containing `text`.
    async fn wait_text(&self, css: &str, text: &str) {
        let start = Instant::now();
        loop {
            let mut seen = Vec::new();
            let found = tokio::time::timeout(Duration::from_secs(5), self.client.find_all(Locator::Css(css)))
                .await
                .unwrap_or_else(|_| panic!("the browser did not answer find_all({css}) within 5 s"));
            for el in found.unwrap_or_default() {
                let got = tokio::time::timeout(Duration::from_secs(5), el.text())
                    .await
                    .unwrap_or_else(|_| panic!("the browser did not answer text() of {css} within 5 s"));
                if let Ok(t) = got {
                    if t.contains(text) {
                        return;
                    }
                    seen.push(t);
                }
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no `{css}` with text {text:?}; saw {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text_of(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
    }

    /// Speaks in the open chat as `member`, by keyboard: type, then Enter.
    async fn say(&self, member: i64, text: &str) {
        let speaker = self.client.find(Locator::Css("#speaker")).await.unwrap();
        speaker.select_by_value(&member.to_string()).await.unwrap();
        let input = self.client.find(Locator::Css("#text")).await.unwrap();
        input.send_keys(&format!("{text}\u{E007}")).await.unwrap();
    }

    /// The page's console messages at level SEVERE (errors), from chromedriver.
    async fn console_errors(&self) -> Vec<Value> {
        let logs = self.client.issue_cmd(BrowserLog).await.expect("chromedriver returns the browser log");
        logs.as_array().cloned().unwrap_or_default().into_iter().filter(|l| l["level"] == "SEVERE").collect()
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A failed test still ends its chromedriver.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// chromedriver's `POST /session/{id}/se/log` with `{"type": "browser"}`.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_a_bot_watch_it_reload_and_see_a_broken_file() {
    let mut s = settings();
    s.ws.token = Some(TOKEN.into());
    install(&s.bots, "echo", &example("echo"));
    let bridge = start(s.clone()).await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}?token={TOKEN}", bridge.console_url())).await.unwrap();

    // The bots panel shows echo running, with its version; its log says it loaded.
    let v1 = bridge.wasm.status("echo").unwrap().version;
    browser.wait_text("#bots li[data-bot=echo] .state", "running").await;
    browser.wait_text("#bots li[data-bot=echo] .version", &v1).await;
    browser.wait_text("#log li[data-bot=echo]", "echo ready").await;

    // The first group opens by itself; speak as a member and see the bot answer.
    browser.wait_text("#chat-title", "botbridge dev").await;
    browser.wait_text("#speaker option", "Mia").await;
    browser.say(MEMBER, "/echo hello from the browser").await;
    browser.wait_text("#messages li.msg", "/echo hello from the browser").await;
    browser.wait_text("#messages li.bot", "hello from the browser").await;
    assert!(browser.text_of("#messages li.bot .who").await.contains("echo"));

    // Replace the bot's file: the panel shows the new version without a reload
    // of the page, and the new version answers.
    install(&s.bots, "echo", &sayer("v2 says hi"));
    eventually("v2 loaded", || bridge.wasm.status("echo").is_some_and(|st| st.version != v1)).await;
    let v2 = bridge.wasm.status("echo").unwrap().version;
    browser.wait_text("#bots li[data-bot=echo] .version", &v2).await;
    browser.say(OWNER, "anyone there?").await;
    browser.wait_text("#messages li.bot", "v2 says hi").await;

    // A broken file shows its error: as a new bot, and over a running one.
    install(&s.bots, "broken", b"\0asm definitely not a component");
    browser.wait_text("#bots li[data-bot=broken] .state", "failed").await;
    browser.wait_text("#bots li[data-bot=broken] .why", "broken.wasm").await;
    install(&s.bots, "echo", b"garbage");
    browser.wait_text("#bots li[data-bot=echo] .why", "newest file refused").await;
    browser.wait_text("#bots li[data-bot=echo] .state", "running").await;

    // Recalls and mutes show in the conversation.
    let mut c = Client::connect(&format!("{}?token={TOKEN}", bridge.ws_url())).await;
    let said = c.group_message(GROUP, 30004, "a message to recall").await;
    browser.wait_text("#messages li.msg", "a message to recall").await;
    c.ok("Recall", json!({"messageSource": source_id(&said)})).await;
    browser.wait_text("#messages li.recalled", "a message to recall").await;
    c.ok("MuteMember", json!({"group": GROUP, "member": 30004, "time": 60})).await;
    browser.wait_text("#messages li.system", "muted for 60 s").await;

    if let Ok(path) = std::env::var("BOTBRIDGE_SCREENSHOT") {
        std::fs::write(path, browser.client.screenshot().await.unwrap()).unwrap();
    }
    assert_eq!(browser.console_errors().await, Vec::<Value>::new(), "the page logged errors");
    browser.close().await;
    bridge.shutdown().await;
}

/// The status line of a plain HTTP GET, with the bridge's own `Host`.
async fn status_of(addr: std::net::SocketAddr, path: &str) -> String {
    get_status(addr, path, &format!("Host: {addr}\r\n")).await
}

#[tokio::test]
async fn the_console_needs_the_token() {
    let mut s = settings();
    s.ws.token = Some(TOKEN.into());
    let bridge = start(s).await;
    for path in ["/", "/api/bots", "/api/bots/events"] {
        assert!(status_of(bridge.addr, path).await.contains("401"), "{path} without a token");
        assert!(
            status_of(bridge.addr, &format!("{path}?token=wrong")).await.contains("401"),
            "{path} with a bad token"
        );
    }
    assert!(status_of(bridge.addr, &format!("/?token={TOKEN}")).await.contains("200"));
    assert!(status_of(bridge.addr, &format!("/api/bots?token={TOKEN}")).await.contains("200"));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_a_bot_roll_it_back_and_see_the_earlier_chat() {
    const ADMIN: &str = "console-admin-secret";
    let mut s = settings();
    s.ws.token = Some(TOKEN.into());
    s.admin_token = Some(ADMIN.into());
    let bridge = start(s).await;
    // Said before the page opens: the page shows it from the replay buffer.
    let mut c = Client::connect(&format!("{}?token={TOKEN}", bridge.ws_url())).await;
    c.group_message(GROUP, MEMBER, "said before the page opened").await;

    let browser = Browser::start().await;
    browser.client.goto(&format!("{}?token={TOKEN}", bridge.console_url())).await.unwrap();
    browser.wait_text("#messages li.msg", "said before the page opened").await;

    // Pick a file in the deploy box, with the admin token: the bot runs.
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("one"), dir.path().join("two"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(first.join("hello.wasm"), sayer("hello from upload one")).unwrap();
    std::fs::write(second.join("hello.wasm"), sayer("hello from upload two")).unwrap();
    browser.client.find(Locator::Css("#admin-token")).await.unwrap().send_keys(ADMIN).await.unwrap();
    let file = browser.client.find(Locator::Css("#upload-file")).await.unwrap();
    file.send_keys(first.join("hello.wasm").to_str().unwrap()).await.unwrap();
    browser.wait_text("#bots li[data-bot=hello] .state", "running").await;
    let v1 = bridge.wasm.status("hello").expect("deployed").version;
    browser.wait_text("#deploy-status", &format!("running version {v1}")).await;
    assert_eq!(std::fs::read(bridge.wasm.dir().join("hello.wasm")).unwrap(), sayer("hello from upload one"));

    // A second upload; then the first one's rollback button.
    let file = browser.client.find(Locator::Css("#upload-file")).await.unwrap();
    file.send_keys(second.join("hello.wasm").to_str().unwrap()).await.unwrap();
    eventually("the second upload runs", || bridge.wasm.status("hello").is_some_and(|st| st.version != v1)).await;
    let v2 = bridge.wasm.status("hello").unwrap().version;
    browser.wait_text("#bots li[data-bot=hello] .version", &v2).await;
    browser.wait_text("#bots li[data-bot=hello] .kept", &v1).await;
    browser.say(OWNER, "who answers?").await;
    browser.wait_text("#messages li.bot", "hello from upload two").await;
    let button = format!("#bots li[data-bot=hello] .kept li[data-version=\"{v1}\"] button.rollback");
    // The panel re-renders as counters move: click until the rollback lands.
    let start = Instant::now();
    while bridge.wasm.status("hello").is_some_and(|st| st.version != v1) {
        if let Ok(b) = browser.client.find(Locator::Css(&button)).await {
            let _ = b.click().await;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the rollback button did not roll back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.wait_text("#bots li[data-bot=hello] .version", &v1).await;
    browser.wait_text("#deploy-status", &format!("running version {v1}")).await;
    browser.say(OWNER, "and now?").await;
    browser.wait_text("#messages li.bot", "hello from upload one").await;

    // Without the admin token the page says it cannot deploy.
    let token = browser.client.find(Locator::Css("#admin-token")).await.unwrap();
    token.clear().await.unwrap();
    token.send_keys("wrong").await.unwrap();
    let file = browser.client.find(Locator::Css("#upload-file")).await.unwrap();
    file.send_keys(second.join("hello.wasm").to_str().unwrap()).await.unwrap();
    browser.wait_text("#deploy-status", "Refused").await;
    assert_eq!(bridge.wasm.status("hello").unwrap().version, v1);
    let errors: Vec<Value> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e["message"].as_str().unwrap_or_default().contains("401"))
        .collect();
    assert_eq!(errors, Vec::<Value>::new(), "the page logged errors");
    browser.close().await;
    bridge.shutdown().await;
}

/// On a real account (a scripted OneBot peer) the console speaks as the
/// account: each message goes through the account's pacer, whose queue the
/// page shows building up, and reaches the peer in the order it was typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_as_a_real_account_and_watch_its_queue() {
    use botbridge::bridge::pacer::PacingConfig;
    use botbridge::config::{AccountOptions, OnebotMode};

    use crate::onebot::{FRIEND_QQ, G, MIA, QQ, accept, onebot_settings};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let mut s = onebot_settings(OnebotMode::Forward, Some(url), None);
    s.ws.token = Some(TOKEN.into());
    // Long gaps, so the queue is still there when the page looks.
    let pacing = PacingConfig { group_gap_ms: 4000, jitter_ms: 0, ..PacingConfig::CONSERVATIVE };
    s.account_options
        .insert(botbridge::ids::AccountId(QQ), AccountOptions { pacing: Some(pacing), dedup_window_ms: None });
    let bridge = start(s).await;
    let (mut peer, _) = accept(&listener).await;
    // The peer answers what the page asks; sends go to the test, in arrival order.
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let peer_task = tokio::spawn(async move {
        let mut next_id = 0;
        loop {
            let call = peer.call().await;
            let data = match call["action"].as_str().unwrap_or_default() {
                "get_group_list" => json!([{"group_id": G, "group_name": "Real group"}]),
                "get_friend_list" => json!([{"user_id": FRIEND_QQ, "nickname": "Fay"}]),
                "get_group_info" => json!({"group_id": G, "group_name": "Real group"}),
                "get_group_member_info" => json!({"group_id": G, "user_id": QQ, "role": "admin"}),
                "get_group_member_list" => json!([
                    {"user_id": QQ, "nickname": "bot", "role": "admin"},
                    {"user_id": MIA, "nickname": "Mia", "card": null, "role": "member"}
                ]),
                "send_group_msg" => {
                    let text: String = call["params"]["message"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|s| s["data"]["text"].as_str())
                        .collect();
                    let _ = sent_tx.send(text);
                    next_id += 1;
                    json!({"message_id": next_id})
                }
                _ => json!(null),
            };
            peer.answer(&call, data).await;
        }
    });

    let browser = Browser::start().await;
    browser.client.goto(&format!("{}?token={TOKEN}", bridge.console_url())).await.unwrap();
    browser.wait_text(&format!("#pacing li[data-account=\"{QQ}\"]"), "0 waiting").await;
    browser
        .client
        .find(Locator::Css(&format!("nav button[data-chat=\"group:{G}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_text("#speaker", "the account").await;
    let speaker = browser.client.find(Locator::Css("#speaker")).await.unwrap();
    assert_eq!(speaker.prop("value").await.unwrap().as_deref(), Some("account"), "a real account speaks as itself");
    let input = browser.client.find(Locator::Css("#text")).await.unwrap();
    for text in ["first", "second", "third"] {
        input.send_keys(&format!("{text}\u{E007}")).await.unwrap();
    }
    browser.wait_text(&format!("#pacing li[data-account=\"{QQ}\"]"), "2 waiting").await;
    let mut arrived = Vec::new();
    while arrived.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(30), sent_rx.recv()).await.expect("a send").unwrap();
        arrived.push(next);
    }
    assert_eq!(arrived, ["first", "second", "third"]);
    browser.wait_text("#messages li", "third").await;
    browser.wait_text(&format!("#pacing li[data-account=\"{QQ}\"]"), "0 waiting").await;
    let errors = browser.console_errors().await;
    assert_eq!(errors, Vec::<Value>::new(), "the page logged errors");
    browser.close().await;
    peer_task.abort();
    bridge.shutdown().await;
}
