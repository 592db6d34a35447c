//! Hot reload through real file writes in the watched folder.

use serde_json::Value;

use crate::guests::*;
use crate::support::*;

/// Sends a group message; returns the texts the bots said about it, by bot.
async fn said(c: &mut Client, n: usize) -> Vec<(String, String)> {
    c.group_message(GROUP, MEMBER, "ping").await;
    let mut out = Vec::new();
    for _ in 0..n {
        let o: Value = c.next_of("outgoing").await;
        out.push((
            o["data"]["by"].as_str().unwrap().to_owned(),
            o["data"]["message"][1]["msg"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_version_takes_over_garbage_is_refused_delete_unloads() {
    let s = settings();
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;

    // A new file is live at once.
    install(&s.bots, "talker", &sayer("v1"));
    eventually("v1 loaded", || bridge.wasm.status("talker").is_some()).await;
    assert_eq!(said(&mut c, 1).await, vec![("talker".to_owned(), "v1".to_owned())]);
    let v1 = bridge.wasm.status("talker").unwrap().version;

    // A new version replaces it.
    install(&s.bots, "talker", &sayer("v2"));
    eventually("v2 loaded", || bridge.wasm.status("talker").is_some_and(|st| st.version != v1)).await;
    assert_eq!(said(&mut c, 1).await, vec![("talker".to_owned(), "v2".to_owned())]);
    let v2 = bridge.wasm.status("talker").unwrap().version;

    // Garbage leaves v2 answering, and says why.
    install(&s.bots, "talker", b"\0asm garbage, half a file");
    eventually("garbage refused", || bridge.wasm.rejected("talker").is_some()).await;
    assert!(bridge.wasm.rejected("talker").unwrap().contains("talker.wasm"));
    assert_eq!(bridge.wasm.status("talker").unwrap().version, v2);
    assert_eq!(said(&mut c, 1).await, vec![("talker".to_owned(), "v2".to_owned())]);
    // It was tried once: the host's own reads of the file are no reason to load it again.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refusals = bridge.wasm.logbook().recent("talker").iter().filter(|l| l.message.starts_with("refused")).count();
    assert_eq!(refusals, 1, "the refused file was loaded again and again");

    // A component that does not fit the world is refused the same way.
    let misfit = wat::parse_str(r#"(component (import "acme:rockets/launch" (func)))"#).unwrap();
    install(&s.bots, "talker", &misfit);
    eventually("misfit refused", || bridge.wasm.rejected("talker").is_some_and(|r| r.contains("does not fit"))).await;
    assert_eq!(said(&mut c, 1).await, vec![("talker".to_owned(), "v2".to_owned())]);

    // Delete unloads.
    std::fs::remove_file(s.bots.join("talker.wasm")).unwrap();
    eventually("unloaded", || bridge.wasm.status("talker").is_none()).await;
    let seq = c
        .ok("SimMessage", serde_json::json!({"group": GROUP, "sender": MEMBER, "message": plain("anyone?")}))
        .await["seq"]
        .clone();
    let next =
        c.ok("SimMessage", serde_json::json!({"friend": FRIEND, "message": plain("marker")})).await["seq"].clone();
    // Nothing outgoing between the two events.
    assert_eq!(c.event().await["seq"], seq);
    assert_eq!(c.event().await["seq"], next);

    // Re-adding loads again.
    install(&s.bots, "talker", &sayer("back"));
    eventually("re-added", || bridge.wasm.status("talker").is_some()).await;
    assert_eq!(said(&mut c, 1).await, vec![("talker".to_owned(), "back".to_owned())]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_reloads_and_a_bad_config_is_refused() {
    let s = settings();
    install(&s.bots, "talker", &sayer("hello"));
    let bridge = start(s.clone()).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", bridge.ws_url())).await;
    assert_eq!(said(&mut c, 1).await.len(), 1);
    std::fs::write(s.bots.join("talker.toml"), "memroy_mb = 3\n").unwrap();
    eventually("bad config refused", || bridge.wasm.rejected("talker").is_some_and(|r| r.contains("memroy_mb"))).await;
    assert_eq!(said(&mut c, 1).await.len(), 1, "old version still answers");
    std::fs::write(s.bots.join("talker.toml"), "[permissions]\ngroups = [20002]\n").unwrap();
    eventually("config applied", || bridge.wasm.rejected("talker").is_none()).await;
    // Now it may not speak in GROUP: its send is refused, nothing goes out.
    c.group_message(GROUP, MEMBER, "ping").await;
    c.expect_nothing_pending().await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loads_from_the_compiled_cache() {
    let s = settings();
    install(&s.bots, "echo", &example("echo"));
    let first = start(s.clone()).await;
    first.shutdown().await;
    let cached: Vec<_> = std::fs::read_dir(s.state_dir.join("cache")).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(cached.len(), 1, "one compiled artifact");
    let second = start(s).await;
    let mut c = Client::connect(&format!("{}?outgoing=1", second.ws_url())).await;
    c.group_message(GROUP, MEMBER, "/echo from cache").await;
    assert_eq!(c.next_of("outgoing").await["data"]["message"][1]["msg"], "from cache");
    second.shutdown().await;
}
