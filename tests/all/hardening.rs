//! What a hostile file, client or web page must not be able to do: each test
//! drives the real interface (a real file in the watched folder, a real
//! socket, the real binary) and failed before its fix.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::guests::*;
use crate::support::*;

/// The refusal recorded for bot `name`, once there is one.
async fn refusal(bridge: &botbridge::app::Running, name: &str) -> String {
    eventually(&format!("{name} refused"), || bridge.wasm.rejected(name).is_some()).await;
    bridge.wasm.rejected(name).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_files_in_the_bots_folder_are_refused_without_blocking_or_reading_them() {
    let mut s = settings();
    s.max_bot_bytes = 1 << 20;
    let bots = s.bots.clone();
    install(&bots, "good", &sayer("good"));
    // A FIFO config: opening it for reading would wait for a writer forever.
    install(&bots, "fifo", &sayer("fifo"));
    assert!(Command::new("mkfifo").arg(bots.join("fifo.toml")).status().unwrap().success());
    // Links that lead outside the folder: an endless device and a secret.
    std::os::unix::fs::symlink("/dev/zero", bots.join("zero.wasm")).unwrap();
    install(&bots, "passwd", &sayer("passwd"));
    std::os::unix::fs::symlink("/etc/passwd", bots.join("passwd.toml")).unwrap();
    // A link inside the folder is fine.
    std::os::unix::fs::symlink(bots.join("good.wasm"), bots.join("alias.wasm")).unwrap();
    std::fs::create_dir(bots.join("dir.wasm")).unwrap();
    std::fs::write(bots.join("huge.wasm"), vec![0u8; 2 << 20]).unwrap();

    let bridge = tokio::time::timeout(Duration::from_secs(60), start(s)).await.expect("start-up is not blocked");
    assert!(bridge.wasm.status("good").is_some() && bridge.wasm.status("alias").is_some());
    let fifo = refusal(&bridge, "fifo").await;
    assert!(fifo.contains("fifo.toml") && fifo.contains("not a regular file (a FIFO)"), "{fifo}");
    let zero = refusal(&bridge, "zero").await;
    assert!(zero.contains("zero.wasm") && zero.contains("outside the bots folder"), "{zero}");
    let passwd = refusal(&bridge, "passwd").await;
    assert!(passwd.contains("passwd.toml") && passwd.contains("outside"), "{passwd}");
    assert!(!passwd.contains("root"), "never quotes the file: {passwd}");
    assert!(refusal(&bridge, "dir").await.contains("a directory"));
    let huge = refusal(&bridge, "huge").await;
    assert!(huge.contains("huge.wasm") && huge.contains("over the limit of 1048576 bytes"), "{huge}");

    // A FIFO that appears while the bridge runs freezes nothing either.
    install(&bots, "late", &sayer("late"));
    assert!(Command::new("mkfifo").arg(bots.join("late.toml")).status().unwrap().success());
    assert!(refusal(&bridge, "late").await.contains("FIFO"));
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    c.group_message(GROUP, MEMBER, "still alive").await;
    let said: Vec<String> = [c.next_of("outgoing").await, c.next_of("outgoing").await]
        .iter()
        .map(|o| o["data"]["message"][1]["msg"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(said, ["good", "good"], "good and its alias answer");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_pieces_is_read_once_it_settles() {
    let s = settings();
    std::fs::create_dir_all(&s.bots).unwrap();
    let bridge = start(s.clone()).await;
    let bytes = example("echo");
    let version = blake3::hash(&bytes).to_hex()[..16].to_owned();
    let mut file = std::fs::File::create(s.bots.join("echo.wasm")).unwrap();
    for piece in bytes.chunks(bytes.len() / 4 + 1) {
        std::io::Write::write_all(&mut file, piece).unwrap();
        std::io::Write::flush(&mut file).unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(file);
    eventually("echo loaded", || bridge.wasm.status("echo").is_some_and(|st| st.version == version)).await;
    let refused = bridge.wasm.logbook().recent("echo").into_iter().filter(|l| l.message.contains("refused")).count();
    assert_eq!(refused, 0, "no half-written version was tried");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_buffer_and_the_stored_log_are_bounded_in_bytes() {
    let mut s = settings();
    s.bus.replay_bytes = 256 << 10;
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    let big = "x".repeat(20_000);
    for _ in 0..100 {
        c.ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain(&big)})).await;
    }
    let check = |frames: Vec<serde_json::Value>| {
        assert_eq!(frames[0]["type"], "gap", "the first frame says what is gone: {}", frames[0]);
        let replayed: usize = frames[1..].iter().map(|f| f.to_string().len()).sum();
        assert!(replayed <= 256 << 10, "{replayed} bytes replayed");
        assert_eq!(frames[0]["to"].as_u64().unwrap() + 1, frames[1]["seq"].as_u64().unwrap());
        assert_eq!(frames.last().unwrap()["seq"], 100);
    };
    check(replay_from_zero(&bridge.ws_url()).await);
    bridge.shutdown().await;
    // On disk too: the state file holds no more than the window.
    let (durable, restored) = botbridge::store::RedbStore::open(&s.state_dir).unwrap();
    let stored: usize = restored.events.iter().map(|(_, json)| json.len()).sum();
    assert!(stored <= (256 << 10) + botbridge::store::MAX_UNCOMMITTED_BYTES, "{stored} bytes stored");
    assert!(restored.events.len() < 60, "{} events stored", restored.events.len());
    durable.close().unwrap();
    drop(durable);
    let bridge = start(s).await;
    check(replay_from_zero(&bridge.ws_url()).await);
    bridge.shutdown().await;
}

/// Every frame a client with `since=0` gets before going quiet.
async fn replay_from_zero(url: &str) -> Vec<serde_json::Value> {
    let mut r = Client::connect(&format!("{url}?since=0")).await;
    let mut frames = vec![r.frame().await];
    while frames.last().unwrap()["seq"] != 100 {
        frames.push(r.frame().await);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_within_a_ping_interval() {
    let mut s = settings();
    s.ws.ping_interval = Duration::from_secs(1);
    let bridge = start(s).await;
    let addr = bridge.addr;
    // A reader with a tiny receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(bridge.ws_url(), tcp).await.unwrap();
    let mut c = Client::connect(&bridge.ws_url()).await;
    assert_eq!(bridge.bridge.bus().consumer_count(), 2);
    let big = "y".repeat(64 << 10);
    for _ in 0..100 {
        c.ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain(&big)})).await;
    }
    eventually("the stalled client is dropped", || bridge.bridge.bus().consumer_count() == 1).await;
    // Its socket ends: with a 4008 close if it got through, else just closed.
    let ended = close_code(&mut stalled).await;
    assert!(matches!(ended, None | Some(4008)), "{ended:?}");
    bridge.shutdown().await;
}

/// Reads until the server ends the connection; its close code, or None when
/// it just closed the socket. Unlike `until_close`, an abrupt end is an answer.
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    });
    ended.await.expect("the server ended the connection")
}

/// Sends one raw frame (bypassing the client's own checks); returns the close code the server answers with.
async fn close_code_after(frame: Frame) -> Option<u16> {
    let bridge = start(settings()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await.unwrap();
    ws.send(Message::Frame(frame)).await.unwrap();
    let code = close_code(&mut ws).await;
    bridge.shutdown().await;
    code
}

#[tokio::test]
async fn protocol_errors_get_their_close_codes() {
    let bad_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    assert_eq!(close_code_after(bad_utf8).await, Some(1007));
    let mut reserved = Frame::message(b"x".to_vec(), OpCode::Data(Data::Reserved(3)), true);
    *reserved.header_mut() = FrameHeader { opcode: OpCode::Data(Data::Reserved(3)), ..FrameHeader::default() };
    assert_eq!(close_code_after(reserved).await, Some(1002));
}

/// The status code of a WebSocket handshake to `url` with extra headers.
async fn handshake_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn foreign_pages_and_rebound_hosts_are_refused_even_without_a_token() {
    let mut s = settings();
    s.http.allowed_origins = vec!["https://console.example".into()];
    s.http.allowed_hosts = vec!["bridge.example".into()];
    let bridge = start(s).await;
    let url = bridge.ws_url();
    let own = format!("http://{}", bridge.addr);
    assert_eq!(handshake_status(&url, &[("Origin", "http://evil.example")]).await, 403);
    assert_eq!(handshake_status(&url, &[("Origin", "null")]).await, 403);
    assert_eq!(handshake_status(&url, &[("Host", "evil.example")]).await, 403);
    assert_eq!(handshake_status(&url, &[("Host", "evil.example"), ("Origin", "http://evil.example")]).await, 403);
    assert_eq!(handshake_status(&url, &[("Origin", &own)]).await, 101, "the console's own page");
    assert_eq!(handshake_status(&url, &[("Origin", "https://console.example")]).await, 101, "a listed origin");
    assert_eq!(handshake_status(&url, &[("Host", "bridge.example:80")]).await, 101, "a listed host");
    let port = bridge.addr.port();
    assert_eq!(handshake_status(&url, &[("Host", &format!("localhost:{port}"))]).await, 101);
    assert_eq!(handshake_status(&url, &[]).await, 101, "no Origin: not a browser");
    for path in ["/", "/api/bots", "/api/bots/events"] {
        let evil_origin =
            get_status(bridge.addr, path, &format!("Host: {}\r\nOrigin: http://evil.example\r\n", bridge.addr)).await;
        assert!(evil_origin.contains("403"), "{path}: {evil_origin}");
        let evil_host = get_status(bridge.addr, path, "Host: evil.example\r\n").await;
        assert!(evil_host.contains("403"), "{path}: {evil_host}");
    }
    assert!(get_status(bridge.addr, "/", &format!("Host: {}\r\n", bridge.addr)).await.contains("200"));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_bot_cannot_name_local_files_or_internal_hosts() {
    let s = settings();
    install(&s.bots, "passwd", &image_sender("file:///etc/passwd"));
    install(&s.bots, "metadata", &image_sender("http://169.254.169.254/latest/meta-data/"));
    install(&s.bots, "public", &image_sender("https://93.184.216.34/a.png"));
    let bridge = start(s).await;
    let mut c = Client::connect(&bridge.ws_url()).await;
    c.group_message(GROUP, MEMBER, "go").await;
    for (bot, tag, code) in [("passwd", 1, 20), ("metadata", 1, 20), ("public", 0, 0)] {
        eventually("the bot stored its result", || bridge.wasm.kv_get(bot, "count").is_some()).await;
        let raw = bridge.wasm.kv_get(bot, "count").unwrap();
        assert_eq!((raw[0], if raw[0] == 1 { raw[4] } else { 0 }), (tag, code), "{bot}: bad-message is index 20");
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_in_name_toml_is_refused_and_groups_restrict_private_chats() {
    let s = settings();
    for (name, toml) in [
        ("huge_cpu", "cpu_ms = 18446744073709551615"),
        ("inf_rate", "ops_per_second = inf"),
        ("typo", "[permissions]\noperations = [\"Reply\", \"SendToGrop\"]"),
    ] {
        install(&s.bots, name, &sayer(name));
        std::fs::write(s.bots.join(format!("{name}.toml")), toml).unwrap();
    }
    install(&s.bots, "echo", &example("echo"));
    std::fs::write(s.bots.join("echo.toml"), "[permissions]\ngroups = [20001]\n").unwrap();
    let bridge = start(s).await;
    for (name, needle) in [("huge_cpu", "cpu_ms"), ("inf_rate", "ops_per_second"), ("typo", "SendToGrop")] {
        let why = refusal(&bridge, name).await;
        assert!(why.contains(&format!("{name}.toml")) && why.contains(needle), "{why}");
        assert!(bridge.wasm.status(name).is_none(), "{name} does not run");
    }
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    // A private chat is not in `groups`, and there is no `friends`: echo may not answer.
    c.ok("SimMessage", json!({"friend": FRIEND, "message": plain("/echo private")})).await;
    eventually("echo handled it", || bridge.wasm.status("echo").is_some_and(|st| st.handled >= 1)).await;
    c.group_message(GROUP, MEMBER, "/echo group").await;
    let out = c.next_of("outgoing").await;
    assert_eq!(out["data"]["message"][1]["msg"], "group", "the first answer is the group one: {out}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_written_while_the_bridge_starts_is_loaded() {
    let s = settings();
    // A big bot with no cached build keeps the first scan busy for seconds.
    install(&s.bots, "python-echo", &example("python-echo"));
    let bots = s.bots.clone();
    let starting = tokio::spawn(start(s));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!starting.is_finished(), "the first scan is still compiling");
    install(&bots, "late", &sayer("late"));
    let bridge = starting.await.unwrap();
    eventually("late loaded", || bridge.wasm.status("late").is_some()).await;
    bridge.shutdown().await;
}

// ── the real binary ─────────────────────────────────────────────────

/// Starts `botbridge serve` with `args`, at most `fds` descriptors, stderr
/// counted by a thread; returns the child, its URL and the byte counter.
fn spawn(dir: &Path, args: &[&str], fds: u64) -> (Child, String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_botbridge"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral"])
        .arg("--bots")
        .arg(dir.join("bots"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child yet.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: fds, rlim_max: fds };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("binary starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = counted.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let url = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "the bridge logs its address");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, url, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_cannot_lock_out_an_authorized_client() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _) = spawn(dir.path(), &["--token", "sesame", "--handshake-timeout", "60"], 256);
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws").to_owned();
    // More half-sent requests than the bridge has descriptors.
    let mut crowd = Vec::new();
    for _ in 0..400 {
        if let Ok(mut tcp) = TcpStream::connect(&addr).await {
            let _ = tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n").await;
            crowd.push(tcp);
        }
    }
    let mut c = tokio::time::timeout(Duration::from_secs(20), Client::connect(&format!("{url}?token=sesame")))
        .await
        .expect("an authorized client gets in during the attack");
    c.ok("ListGroups", json!({})).await;
    drop(crowd);
    child.kill().unwrap();
    child.wait().unwrap();

    // An incomplete request is closed once the handshake timeout passes.
    let (mut child, url, _) = spawn(dir.path(), &["--handshake-timeout", "1"], 1024);
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("closed by the timeout")
        .ok();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_cannot_flood_the_process_log() {
    let dir = tempfile::tempdir().unwrap();
    install(&dir.path().join("bots"), "shouter", &log_flood());
    let (mut child, url, logged) = spawn(dir.path(), &[], 1024);
    let mut c = Client::connect(&url).await;
    for i in 0..20 {
        c.ok("SimMessage", json!({"group": GROUP, "sender": MEMBER, "message": plain(&format!("{i}"))})).await;
    }
    // 20 events × 50 lines of 1 MiB were asked for: 1 GiB.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bytes = logged.load(std::sync::atomic::Ordering::Relaxed);
    // The bots panel counts what was dropped.
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws").parse().expect("the bridge's address");
    let (status, body) = http_get(addr, "/api/bots", "").await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(bytes < 4 << 20, "{bytes} bytes of log");
    assert!(status.contains("200"), "{status}");
    let bots: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let shouter = bots["bots"].as_array().unwrap().iter().find(|b| b["name"] == "shouter").expect("listed").clone();
    assert!(shouter["logsDropped"].as_u64().unwrap() > 0, "the panel counts dropped lines: {shouter}");
}
