//! The integration tests: one binary, a module per feature.

mod support;

mod durability;
mod fixtures;
mod ws_auth;
mod ws_keepalive;
mod ws_input;
mod ws_ops;
mod ws_stream;
mod guests;
mod wasm_bots;
mod wasm_reload;
mod wasm_sandbox;
mod examples;
mod console;
mod onebot;
mod hardening;
