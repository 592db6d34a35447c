//! The integration tests: one binary, a module per feature.

mod support;
#[path = "../common/world.rs"]
#[allow(dead_code)] // `message` is for the benches.
mod world;

mod admin;
#[path = "../common/binary.rs"]
mod binary;
mod bot_config;
mod clients;
mod console;
mod durability;
mod examples;
mod extensions;
mod fixtures;
#[path = "../common/guests.rs"]
#[allow(dead_code)] // `idle` is for the benches.
mod guests;
mod hardening;
mod http_outbound;
mod metrics;
mod onebot;
mod onebot_extensions;
mod timers;
mod wasm_bots;
mod wasm_reload;
mod wasm_sandbox;
mod wit_contract;
mod ws_auth;
mod ws_input;
mod ws_keepalive;
mod ws_ops;
mod ws_stream;
