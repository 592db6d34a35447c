//! botbridge: one event-and-operation schema for chat bots, served over a
//! WebSocket to remote clients and as a WIT world to sandboxed wasm bots.
//!
//! Data flows backend → [`bridge`] (registry IDs) → [`bus`] → consumers, and
//! operations flow back through [`bridge::Bridge::execute`].

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod bridge;
pub mod bus;
pub mod config;
pub mod console;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod registry;
pub mod schema;
pub mod store;
pub mod wasm;
pub mod ws;

/// An error with its sources, `outer: inner: innermost`: what logs and
/// people see (thiserror's `Display` shows one level).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
