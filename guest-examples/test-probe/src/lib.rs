//! The bot the host's tests probe the sandbox with. It is written on the SDK,
//! so it follows the WIT through any change; its behaviour is a script the
//! tests patch into the built file (`tests/all/guests.rs`, `probe`): after the
//! marker `BOTBRIDGE-PROBE:` come a verb, a NUL, an argument and a NUL.
//!
//! Verbs (each acts on group messages unless it says otherwise):
//! * `say` ARG: send ARG to group 20001;
//! * `recall`: recall the message;
//! * `record-say`: send "hi" to group 20001 and store the outcome in kv `count`;
//! * `count`: count messages in kv `count` (one byte), then send the count as a `Face`;
//! * `keep-source`: send "kept" to group 20001, store its source ID in kv `kept`,
//!   then send "stored SOURCE-ID";
//! * `image` ARG: send an image with url ARG to group 20001, store the outcome in kv `count`;
//! * `flood`: on every event, send "flood" to group 20001 two hundred times;
//! * `log-flood`: on every event, log fifty lines of one MiB each;
//! * `wasi` ARG: write ARG to stdout and look for a preopened directory; when
//!   stdout works and there is none, send ARG to group 20001.
//! * `cmd`: the message is a command, and the outcome is said in group 20001
//!   (any other message is ignored):
//!   `after TAG MS`, `every TAG MS`, `at TAG UNIX_MS`, `cron TAG ZONE|- EXPR`,
//!   `cancel TAG`, `timers` (timers; `on-timer` says `fired TAG`);
//!   `get URL` (HTTP: `http STATUS BYTES` or `http-error KIND: …`);
//!   `get-all N URL` (N requests at once; `http STATUS`, `http-error CODE`, or `http-error None: why` each);
//!   `get-n N URL` (N requests one after another; says how many were ok);
//!   `burst N` (N timers due at once, tagged `quiet…`: they fire silently);
//!   `config KEY` (logs `KEY=VALUE`, says `config KEY: N bytes` or `config KEY: none`);
//!   `say-config KEY` (says the value itself).
//!
//! Stored outcomes are 8 bytes: `[0, 0, 0, 0, 0, 0, 0, 0]` for ok, and
//! `[1, 0, 0, 0, CODE, 0, 0, 0]` for an error, CODE its index in `error-code`.

use std::io::Write as _;

use std::time::Duration;

use botbridge_sdk::{bot, config, http, kv, log, ops, timers, Bot, Chain, Error, Event, Message, Scene};

const MARKER: &[u8] = b"BOTBRIDGE-PROBE:";
const SCRIPT_LEN: usize = 512;
const GROUP: i64 = 20001;

const fn unpatched() -> [u8; SCRIPT_LEN] {
    let mut script = [0u8; SCRIPT_LEN];
    let mut i = 0;
    while i < MARKER.len() {
        script[i] = MARKER[i];
        i += 1;
    }
    script
}

/// Patched in the built file; read through a volatile load so the compiler
/// keeps the bytes in the data segment and never folds the unpatched value.
static SCRIPT: [u8; SCRIPT_LEN] = unpatched();

/// The patched verb and argument.
fn script() -> (String, String) {
    // SAFETY: a plain read of an initialised static array.
    let bytes: [u8; SCRIPT_LEN] = unsafe { core::ptr::read_volatile(&SCRIPT) };
    let mut parts = bytes[MARKER.len()..].split(|b| *b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let verb = next();
    (verb, next())
}

/// The outcome of an operation as 8 bytes (see the module header).
fn outcome<T>(result: &Result<T, Error>) -> [u8; 8] {
    match result {
        Ok(_) => [0; 8],
        Err(e) => [1, 0, 0, 0, e.code as u8, 0, 0, 0],
    }
}

fn store_outcome<T>(result: &Result<T, Error>) {
    if let Err(e) = kv::set("count", &outcome(result)) {
        log::error(format!("cannot store the outcome: {e}"));
    }
}

fn say(text: impl Into<Chain>) {
    let _ = ops::send_to_group(GROUP, text);
}

/// No directory is open to the bot: neither the root nor the current one.
fn no_preopened_directory() -> bool {
    std::fs::read_dir("/").is_err() && std::fs::read_dir(".").is_err()
}

fn on_group_message(verb: &str, arg: String, message: &Message) {
    match verb {
        "say" => say(arg),
        "recall" => {
            let _ = message.recall();
        }
        "record-say" => store_outcome(&ops::send_to_group(GROUP, "hi")),
        "count" => {
            let n = kv::get("count").and_then(|v| v.first().copied()).unwrap_or(0).wrapping_add(1);
            if kv::set("count", &[n]).is_ok() {
                say(Chain::new().face(i64::from(n)));
            }
        }
        "keep-source" => {
            if let Ok(sent) = ops::send_to_group(GROUP, "kept") {
                if kv::set("kept", sent.source_id.as_bytes()).is_ok() {
                    say(format!("stored {}", sent.source_id));
                }
            }
        }
        "image" => store_outcome(&ops::send_to_group(GROUP, Chain::new().image(arg))),
        "cmd" => {
            if let Some(answer) = command(&message.text()) {
                say(answer)
            }
        }
        "wasi" => {
            let mut out = std::io::stdout();
            let written = out.write_all(arg.as_bytes()).and_then(|()| out.flush()).is_ok();
            if written && no_preopened_directory() {
                say(arg);
            }
        }
        _ => {}
    }
}

fn timer_outcome<T>(result: Result<T, timers::TimerError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("err {e:?}"),
    }
}

/// Runs one `cmd` command; returns what to say (None: not a command).
fn command(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok()).unwrap_or(0);
    let answer = match words.as_slice() {
        ["after", tag, ..] => timer_outcome(timers::after(tag, Duration::from_millis(number(2) as u64))),
        ["every", tag, ..] => timer_outcome(timers::every(tag, Duration::from_millis(number(2) as u64))),
        ["at", tag, ..] => timer_outcome(timers::at(tag, number(2))),
        ["cron", tag, zone, expr @ ..] => {
            let zone = (*zone != "-").then_some(*zone);
            timer_outcome(timers::cron(tag, &expr.join(" "), zone))
        }
        ["cancel", tag] => timer_outcome(timers::cancel(tag).map(|had| if had { "had" } else { "none" })),
        ["timers"] => format!("timers: {}", timers::list().iter().map(|t| t.tag.as_str()).collect::<Vec<_>>().join(",")),
        ["get", url] => match http::get(url) {
            Ok(r) => format!("http {} {}", r.status.as_u16(), r.body.len()),
            Err(e) if e.is_refused() => format!("http-error refused: {e}"),
            Err(e) if e.is_timeout() => format!("http-error timeout: {e}"),
            Err(e) => format!("http-error other: {e}"),
        },
        ["get-all", n, url] => {
            let n: usize = n.parse().unwrap_or(1);
            let requests = (0..n).filter_map(|_| http::request(http::Method::GET, url).body(Vec::new()).ok()).collect();
            let results: Vec<String> = http::send_all(requests)
                .into_iter()
                .map(|r| match r {
                    Ok(r) => format!("http {}", r.status.as_u16()),
                    Err(e @ http::Error { code: None, .. }) => format!("http-error None: {}", e.message),
                    Err(e) => format!("http-error {:?}", e.code),
                })
                .collect();
            results.join("; ")
        }
        ["get-n", n, url] => {
            let n: usize = n.parse().unwrap_or(1);
            let ok = (0..n).filter(|_| http::get(url).is_ok_and(|r| r.ok())).count();
            format!("{ok} of {n} ok")
        }
        ["burst", n] => {
            let n: usize = n.parse().unwrap_or(1);
            let set = (0..n).filter(|i| timers::after(&format!("quiet{i}"), Duration::ZERO).is_ok()).count();
            format!("{set} set")
        }
        ["say-config", key] => config::get(key).unwrap_or_else(|| "none".into()),
        ["config", key] => match config::get(key) {
            Some(value) => {
                log::info(format!("{key}={value}"));
                format!("config {key}: {} bytes", value.len())
            }
            None => format!("config {key}: none"),
        },
        _ => return None,
    };
    Some(answer)
}

struct Probe;

impl Bot for Probe {
    fn handle(event: Event) {
        let (verb, arg) = script();
        match verb.as_str() {
            "flood" => (0..200).for_each(|_| say("flood")),
            "log-flood" => {
                let line = "\0".repeat(1 << 20);
                (0..50).for_each(|_| log::info(&line));
            }
            _ => {
                if let Event::Message(message) = &event {
                    if matches!(message.scene, Scene::Group { .. }) {
                        on_group_message(&verb, arg, message);
                    }
                }
            }
        }
    }

    fn on_timer(tag: String) {
        if !tag.starts_with("quiet") {
            say(format!("fired {tag}"));
        }
    }
}

bot!(Probe);
