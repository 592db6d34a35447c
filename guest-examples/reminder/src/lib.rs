//! The reminder bot. `/remind 2s tea` (units s, m, h, d) answers
//! `OK, in 2s: tea`; when due it sends `Reminder: tea` to the same chat,
//! mentioning the member who asked in a group. `/reminders` lists the
//! pending ones of the chat. Each reminder is a kv entry and a timer with the
//! same tag, so both survive hot reloads and restarts.

use std::time::Duration;

use botbridge_sdk::{bot, kv, log, ops, timers, Bot, Chain, Event, Message, Scene};
use serde::{Deserialize, Serialize};

/// Where a reminder goes back to.
#[derive(Serialize, Deserialize, PartialEq)]
enum Chat {
    Group { group: i64, member: i64 },
    Friend { friend: i64 },
}

#[derive(Serialize, Deserialize)]
struct Reminder {
    chat: Chat,
    text: String,
    /// Unix milliseconds.
    due: i64,
}

/// `2s`, `10m`, `1h`, `3d`.
fn parse_delay(word: &str) -> Option<Duration> {
    let (number, unit) = word.split_at(word.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

fn chat_of(message: &Message) -> Option<Chat> {
    match &message.scene {
        Scene::Group { group, sender, .. } => Some(Chat::Group { group: group.id, member: sender.id }),
        Scene::Friend { sender } => Some(Chat::Friend { friend: sender.id }),
        Scene::Temp { .. } => None,
    }
}

fn same_chat(a: &Chat, b: &Chat) -> bool {
    match (a, b) {
        (Chat::Group { group: x, .. }, Chat::Group { group: y, .. }) => x == y,
        _ => a == b,
    }
}

fn now_ms(message: &Message) -> i64 {
    message.time * 1000
}

fn remind(message: &Message, args: &str) {
    let usage = "Usage: /remind 10m text (units s, m, h, d)";
    let (delay_word, text) = args.trim().split_once(' ').unwrap_or((args.trim(), ""));
    let (Some(delay), text) = (parse_delay(delay_word), text.trim()) else {
        return message.reply_or_log(usage);
    };
    if text.is_empty() {
        return message.reply_or_log(usage);
    }
    let Some(chat) = chat_of(message) else {
        return message.reply_or_log("Reminders work in groups and private chats.");
    };
    let id = match kv::increment("next-id") {
        Ok(id) => id,
        Err(e) => return message.reply_or_log(format!("Cannot keep the reminder: {e}")),
    };
    let tag = format!("r{id}");
    let due = now_ms(message) + delay.as_millis() as i64;
    let reminder = Reminder { chat, text: text.to_owned(), due };
    if let Err(e) = kv::set_json(&tag, &reminder) {
        return message.reply_or_log(format!("Cannot keep the reminder: {e}"));
    }
    if let Err(e) = timers::after(&tag, delay) {
        kv::delete(&tag);
        return message.reply_or_log(format!("Cannot set the reminder: {e}"));
    }
    message.reply_or_log(format!("OK, in {delay_word}: {text}"));
}

fn list(message: &Message) {
    let Some(chat) = chat_of(message) else { return };
    let now = now_ms(message);
    let mut lines = Vec::new();
    for timer in timers::list() {
        let Some(reminder) = kv::get_json::<Reminder>(&timer.tag) else { continue };
        if same_chat(&reminder.chat, &chat) {
            let left = (timer.next - now).max(0) / 1000;
            lines.push(format!("{}. {} (in {left}s)", lines.len() + 1, reminder.text));
        }
    }
    if lines.is_empty() {
        message.reply_or_log("No reminders.");
    } else {
        message.reply_or_log(lines.join("\n"));
    }
}

struct Reminders;

impl Bot for Reminders {
    fn handle(event: Event) {
        let Event::Message(message) = event else { return };
        if let Some(args) = message.command("remind") {
            remind(&message, &args);
        } else if message.command("reminders").is_some() {
            list(&message);
        }
    }

    fn on_timer(tag: String) {
        let Some(reminder) = kv::get_json::<Reminder>(&tag) else { return };
        let text = format!("Reminder: {}", reminder.text);
        let sent = match reminder.chat {
            Chat::Group { group, member } => ops::send_to_group(group, Chain::new().at(member).text(format!(" {text}"))),
            Chat::Friend { friend } => ops::send_to_friend(friend, text),
        };
        match sent {
            Ok(_) => kv::delete(&tag),
            Err(e) => {
                // Try again in a minute rather than lose it.
                log::warn(format!("reminder {tag} not sent, retrying in a minute: {}", e.message));
                if let Err(e) = timers::after(&tag, Duration::from_secs(60)) {
                    log::error(format!("reminder {tag} lost: {e}"));
                }
            }
        }
    }
}

bot!(Reminders);
