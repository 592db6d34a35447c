//! The moderator bot: every group has a keyword list in kv. A message that
//! contains a keyword is recalled and its sender muted for 60 s, when the
//! account outranks the sender; when it does not, the bot says why it cannot.
//!
//! Commands, in the group:
//! * `/keywords`: lists the group's keywords (anyone);
//! * `/keywords add WORDS` and `/keywords remove WORDS` (the group owner only).
//!
//! Keywords match case-insensitively anywhere in the text.

use botbridge_sdk::{bot, kv, log, ops, Bot, Event, Group, Member, Message, Permission, Scene};

const MUTE_SECONDS: i64 = 60;

struct Moderator;

impl Bot for Moderator {
    fn init() {
        log::info("moderator ready");
    }

    fn handle(event: Event) {
        let Event::Message(message) = event else { return };
        let Scene::Group { group, sender, .. } = &message.scene else { return };
        if let Some(args) = message.command("keywords") {
            return manage(&message, group, sender, &args);
        }
        let text = message.text().to_lowercase();
        let Some(word) = keywords(group.id).into_iter().find(|w| text.contains(w.as_str())) else { return };
        moderate(&message, group, sender, &word);
    }
}

fn moderate(message: &Message, group: &Group, sender: &Member, word: &str) {
    if rank(group.bot_permission) == 0 {
        message.reply_or_log(format!(
            "\"{word}\" is not allowed here, but I cannot recall or mute: I am not an admin of this group."
        ));
        return;
    }
    if rank(group.bot_permission) <= rank(sender.permission) {
        message.reply_or_log(format!(
            "\"{word}\" is not allowed here, but I cannot act on {}: they rank as high as I do.",
            sender.name_card_or_nick
        ));
        return;
    }
    if let Err(e) = message.recall() {
        log::warn(format!("recall in group {} failed: {e}", group.id));
    }
    match ops::mute(group.id, sender.id, MUTE_SECONDS) {
        Ok(()) => log::info(format!("muted {} in {} for \"{word}\"", sender.id, group.id)),
        Err(e) => message.reply_or_log(format!("I could not mute {}: {}", sender.name_card_or_nick, e.message)),
    }
}

fn manage(message: &Message, group: &Group, sender: &Member, args: &str) {
    let mut words = keywords(group.id);
    let (verb, word) = match args.split_once(char::is_whitespace) {
        Some((verb, rest)) => (verb, rest.trim().to_lowercase()),
        None => (args, String::new()),
    };
    if verb.is_empty() {
        let list = if words.is_empty() { "(none)".to_string() } else { words.join(", ") };
        return message.reply_or_log(format!("Keywords: {list}"));
    }
    if sender.permission != Permission::Owner {
        return message.reply_or_log("Only the group owner can edit the keyword list.");
    }
    if word.is_empty() || !matches!(verb, "add" | "remove") {
        return message.reply_or_log("Usage: /keywords, /keywords add WORDS, /keywords remove WORDS");
    }
    if verb == "add" && !words.contains(&word) {
        words.push(word.clone());
    } else if verb == "remove" {
        words.retain(|w| *w != word);
    }
    match kv::set_string(&key(group.id), &words.join("\n")) {
        Ok(()) => message.reply_or_log(format!(
            "{} \"{word}\". Keywords: {}",
            if verb == "add" { "Added" } else { "Removed" },
            words.len()
        )),
        Err(e) => message.reply_or_log(format!("I could not save the list: {e}")),
    }
}

fn key(group: i64) -> String {
    format!("keywords/{group}")
}

fn keywords(group: i64) -> Vec<String> {
    kv::get_string(&key(group))
        .map(|s| s.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn rank(permission: Permission) -> u8 {
    match permission {
        Permission::Member => 0,
        Permission::Administrator => 1,
        Permission::Owner => 2,
    }
}

bot!(Moderator);
