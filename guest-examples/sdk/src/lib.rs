//! Write a botbridge bot in a few lines.
//!
//! A bot is a type that implements [`Bot`], exported with [`bot!`]:
//!
//! ```ignore
//! use botbridge_sdk::{bot, Bot, Event};
//!
//! struct Echo;
//!
//! impl Bot for Echo {
//!     fn handle(event: Event) {
//!         let Event::Message(message) = event else { return };
//!         if let Some(text) = message.command("echo") {
//!             message.reply_or_log(text);
//!         }
//!     }
//! }
//!
//! bot!(Echo);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2` (or `wasm32-unknown-unknown`
//! linked by `wasm-component-ld`), drop the `.wasm` into the bridge's `bots/`
//! folder, and it is live.
//!
//! * [`Event`] and [`Message`]: what the bot receives, with the text, the
//!   command and the sender at hand.
//! * [`Chain`]: builds message chains (`"text".into()` is one too).
//! * [`ops`]: every operation of the protocol; failures are typed [`Error`]s.
//! * [`kv`]: the bot's own store, kept across hot reloads and restarts.
//! * [`log`]: log lines under the bot's name in the bridge's log.
//! * [`timers`]: wake the bot later, once, repeatedly or on a cron schedule
//!   ([`Bot::on_timer`]).
//! * [`http`]: call web APIs (the origins in the bot's `allowed_hosts`).
//! * [`config`]: the bot's `[config]` and `[secrets]`.

mod chain;
pub mod config;
mod event;
pub mod http;
pub mod kv;
pub mod log;
pub mod ops;
pub mod timers;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "bot",
        default_bindings_module: "botbridge_sdk::bindings",
        pub_export_macro: true,
        export_macro_name: "__export_bot_world",
        additional_derives: [PartialEq, Eq],
        // wasi:http is the `wasip2` crate's, which `http` (on wstd) uses too.
        with: {
            "wasi:http/types@0.2.12": wasip2::http::types,
            "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
        },
    });
}

pub use bindings::botbridge::bot::types::{
    At, Chat, ChatKind, Element, Error, ErrorCode, Essence, FetchedMessage, FileUpload, Forward, ForwardNode, Friend,
    FriendRequest, Group, GroupEvent, GroupFile, GroupInvite, GroupLeft, Honor, Image, JoinRequest, Member,
    MemberCard, MemberJoined, MemberLeft, Mute, NodeElement, Other, Permission, Person, Poke, PokeEvent, Quote,
    Reaction, Revoke, Sent, Title, UserEvent,
};
pub use chain::Chain;
pub use event::{account, Event, Message, Scene};

/// A bot: `init` once per fresh instance, `handle` for every event in
/// order, `on_timer` when one of its [`timers`] fires (never two at once).
///
/// A fresh instance starts after a hot reload, a restart, or a trap. Keep
/// state that must survive those in [`kv`], not in statics.
pub trait Bot {
    fn init() {}
    fn handle(event: Event);
    fn on_timer(tag: String) {
        let _ = tag;
    }
}

/// Exports a [`Bot`] type as the component's `setup`, `handle` and `on-timer`.
#[macro_export]
macro_rules! bot {
    ($bot:ty) => {
        const _: () = {
            struct BotbridgeExport;
            impl $crate::bindings::Guest for BotbridgeExport {
                fn setup() {
                    <$bot as $crate::Bot>::init()
                }
                fn handle(event: $crate::bindings::botbridge::bot::types::Event) {
                    <$bot as $crate::Bot>::handle($crate::Event::from(event))
                }
                fn on_timer(tag: String) {
                    <$bot as $crate::Bot>::on_timer(tag)
                }
            }
            $crate::bindings::__export_bot_world!(BotbridgeExport);
        };
    };
}
