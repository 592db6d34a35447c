//! The echo bot: answers any group, friend or temp message `/echo TEXT` by
//! replying with TEXT.

use botbridge_sdk::{bot, log, Bot, Event};

struct Echo;

impl Bot for Echo {
    fn init() {
        log::info("echo ready");
    }

    fn handle(event: Event) {
        let Event::Message(message) = event else { return };
        match message.command("echo") {
            Some(text) if !text.is_empty() => message.reply_or_log(text),
            _ => {}
        }
    }
}

bot!(Echo);
