//! The echo bot: answers any group, friend or temp message whose text starts
//! with `/echo ` by replying with the rest of the text.

wit_bindgen::generate!({ path: "../../wit", world: "bot" });

use botbridge::bot::log::{self, Level};
use botbridge::bot::operations;
use botbridge::bot::types::{Element, EventData, MessageEvent};

struct Echo;

impl Guest for Echo {
    fn init() {
        log::log(Level::Info, "echo ready");
    }

    fn handle(event: Event) {
        let EventData::Msg(message) = event.data else { return };
        let (reply_key, chain) = match message {
            MessageEvent::Group(m) => (m.reply_key, m.message),
            MessageEvent::Friend(m) => (m.reply_key, m.message),
            MessageEvent::Temp(m) => (m.reply_key, m.message),
        };
        let text: String = chain
            .iter()
            .filter_map(|e| match e {
                Element::Plain(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        if let Some(rest) = text.strip_prefix("/echo ") {
            if let Err(e) = operations::reply(&reply_key, &[Element::Plain(rest.to_string())]) {
                log::log(Level::Warn, &format!("reply failed: {}", e.message));
            }
        }
    }
}

export!(Echo);
