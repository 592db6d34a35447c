//! The feed bot. Every `interval` it fetches `url`, a JSON Feed (or a JSON
//! list of `{id, title, url}`), RSS or Atom, and posts the items it has not
//! posted before to each of `groups`, remembering what it posted in kv.
//!
//! ```toml
//! allowed_hosts = ["https://blog.rust-lang.org"]
//! [config]
//! url = "https://blog.rust-lang.org/feed.xml"
//! groups = "20001, 20002"
//! interval = "10m"        # s, m, h or d
//! max_per_run = "5"       # the newest items, when many are new at once
//! ```

use std::time::Duration;

use botbridge_sdk::{bot, config, http, kv, log, ops, timers, Bot, Event};
use serde_json::Value;

const TIMER: &str = "fetch";
const SEEN: &str = "seen";
/// Item IDs remembered; older ones are forgotten.
const REMEMBER: usize = 500;

struct Item {
    id: String,
    title: String,
    link: String,
}

fn interval() -> Duration {
    let text = config::get_or("interval", "10m");
    let (n, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let n: u64 = n.parse().unwrap_or(10);
    Duration::from_secs(match unit {
        "s" => n,
        "h" => n * 3_600,
        "d" => n * 86_400,
        _ => n * 60,
    })
}

fn text_of(value: &Value, keys: &[&str]) -> String {
    keys.iter().find_map(|k| value.get(*k).and_then(Value::as_str)).unwrap_or_default().to_owned()
}

fn json_items(value: &Value) -> Vec<Item> {
    let list = value.get("items").unwrap_or(value).as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|v| Item {
            id: text_of(v, &["id", "guid", "url", "link"]),
            title: text_of(v, &["title", "summary", "content_text"]),
            link: text_of(v, &["url", "link", "external_url"]),
        })
        .collect()
}

fn xml_items(text: &str) -> Result<Vec<Item>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let child = |node: roxmltree::Node, name: &str| {
        node.children().find(|c| c.tag_name().name() == name).map(|c| {
            c.text().map(str::to_owned).or_else(|| c.attribute("href").map(str::to_owned)).unwrap_or_default()
        })
    };
    Ok(doc
        .descendants()
        .filter(|n| matches!(n.tag_name().name(), "item" | "entry"))
        .map(|n| {
            let link = child(n, "link").unwrap_or_default();
            Item {
                id: child(n, "guid").or_else(|| child(n, "id")).unwrap_or_else(|| link.clone()),
                title: child(n, "title").unwrap_or_default(),
                link,
            }
        })
        .collect())
}

fn fetch() -> Result<Vec<Item>, String> {
    let url = config::get("url").ok_or("no `url` in [config]")?;
    let response = http::get(&url).map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status));
    }
    let text = response.text();
    match serde_json::from_str::<Value>(&text) {
        Ok(value) => Ok(json_items(&value)),
        Err(_) => xml_items(&text),
    }
}

fn post_new() {
    let items = match fetch() {
        Ok(items) => items,
        Err(e) => return log::warn(format!("feed not fetched: {e}")),
    };
    let mut seen: Vec<String> = kv::get_json(SEEN).unwrap_or_default();
    let max: usize = config::get("max_per_run").and_then(|m| m.parse().ok()).unwrap_or(5);
    let mut new: Vec<&Item> = items.iter().filter(|i| !i.id.is_empty() && !seen.contains(&i.id)).collect();
    // Feeds list the newest first: post the newest `max`, oldest of them first.
    new.truncate(max);
    new.reverse();
    let groups: Vec<i64> =
        config::get_or("groups", "").split(',').filter_map(|g| g.trim().parse().ok()).collect();
    for item in new {
        let text = if item.link.is_empty() { item.title.clone() } else { format!("{}\n{}", item.title, item.link) };
        for group in &groups {
            if let Err(e) = ops::send_to_group(*group, text.as_str()) {
                log::warn(format!("not posted to {group}: {}", e.message));
            }
        }
        seen.push(item.id.clone());
    }
    let drop = seen.len().saturating_sub(REMEMBER);
    seen.drain(..drop);
    if let Err(e) = kv::set_json(SEEN, &seen) {
        log::warn(format!("cannot remember what was posted: {e}"));
    }
}

struct Feed;

impl Bot for Feed {
    fn init() {
        // (Re)arm the timer when the interval changed (a new NAME.toml).
        let period = interval().as_millis() as u64;
        let current = timers::list().into_iter().find(|t| t.tag == TIMER);
        if !matches!(current.map(|t| t.schedule), Some(timers::Schedule::Every(p)) if p == period) {
            if let Err(e) = timers::every(TIMER, interval()) {
                log::error(format!("cannot set the fetch timer: {e}"));
            }
        }
    }

    fn handle(_: Event) {}

    fn on_timer(_: String) {
        post_new();
    }
}

bot!(Feed);
