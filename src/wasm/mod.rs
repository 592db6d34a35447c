//! The wasm host: wasmtime components as bots. One Engine (pooling allocator,
//! epoch interruption), the WIT world in `wit/`, one Store per bot with its
//! limits, a task per bot fed by the bus, hot reload from the watched folder,
//! and a cache of compiled components keyed by content hash.

pub mod bindings {
    //! Generated from `wit/`.
    wasmtime::component::bindgen!({
        path: "wit",
        world: "bot",
        imports: { default: async },
        exports: { default: async },
    });
}

mod convert;
pub mod folder;
mod host;
pub mod kv;
pub mod limits;
pub mod logbook;
mod runner;
mod store;

pub use host::{CheckError, CheckReport, HostConfig, HostError, LoadError, WasmHost, check};
pub use runner::{BotStatus, CRASH_LIMIT, RunState};
