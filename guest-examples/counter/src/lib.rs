//! The counter bot: counts the messages of every group in kv (so the count
//! survives hot reloads and restarts) and answers `/count` with the count,
//! the `/count` message included.

use botbridge_sdk::{bot, kv, log, Bot, Event, Scene};

struct Counter;

impl Bot for Counter {
    fn handle(event: Event) {
        let Event::Message(message) = event else { return };
        let Scene::Group { group, .. } = &message.scene else { return };
        let key = format!("count/{}", group.id);
        let count = match kv::increment(&key) {
            Ok(n) => n,
            Err(e) => return log::error(format!("cannot count in group {}: {e}", group.id)),
        };
        if message.command("count").is_some() {
            message.reply_or_log(format!("{count} messages in {} so far", group.name));
        }
    }
}

bot!(Counter);
