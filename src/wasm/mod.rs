//! The wasm host: wasmtime components as bots. One Engine (pooling allocator,
//! epoch interruption), the WIT world in `wit/`, one Store per bot with its
//! limits, a task per bot fed by the bus, hot reload from the watched folder,
//! and a cache of compiled components keyed by content hash.

pub mod bindings {
    //! Generated from `wit/` (`botbridge:bot@0.3.0`); wasi:http comes from
    //! wasmtime-wasi-http. Types derive serde so that `compat` can carry
    //! them to the older worlds' identical shapes.
    wasmtime::component::bindgen!({
        path: "wit",
        world: "bot",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize],
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });

    pub mod v0_2 {
        //! The previous world, `botbridge:bot@0.2.0` (`wit/compat/0.2.0`), so
        //! bots built for it keep running (see `compat`).
        wasmtime::component::bindgen!({
            path: "wit/compat/0.2.0",
            world: "bot",
            imports: { default: async },
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
            with: {
                "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                "wasi:io": wasmtime_wasi::p2::bindings::io,
                "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            },
        });
    }

    pub mod v0_1 {
        //! The first world, `botbridge:bot@0.1.0` (`wit/compat/0.1.0`). Its
        //! types are the same as 0.2.0's.
        wasmtime::component::bindgen!({
            path: "wit/compat/0.1.0",
            world: "bot",
            imports: { default: async },
            exports: { default: async },
            with: { "botbridge:bot/types@0.1.0": super::v0_2::botbridge::bot::types },
        });
    }
}

mod compat;
mod convert;
mod deploy;
pub mod folder;
mod host;
pub mod http;
pub mod kv;
pub mod limits;
pub mod logbook;
mod runner;
pub mod settings;
mod store;
pub mod timers;
pub mod versions;

pub use host::{CheckError, CheckReport, ConfigChange, DeployError, HostConfig, HostError, LoadError, WasmHost, check};
pub use runner::{BotStatus, CRASH_LIMIT, RunState};
