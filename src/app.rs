//! Assembly: builds the registry, bus, accounts and servers from `Settings`,
//! starts them, and stops them together.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::sim::SimBackend;
use crate::bridge::Bridge;
use crate::bus::Bus;
use crate::config::{AccountConfig, Settings};
use crate::registry::{Clock, Registry, SystemClock};
use crate::wasm::{HostConfig, HostError, WasmHost};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Wasm(#[from] HostError),
}

/// A started bridge. Dropping it does not stop it; call `shutdown`.
pub struct Running {
    pub addr: SocketAddr,
    pub bridge: Arc<Bridge>,
    pub wasm: WasmHost,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The WebSocket URL of this bridge.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Closes every connection (code 1001) and waits for the server to stop.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.wasm.shutdown().await;
    }

    /// Resolves when the server has stopped (after `shutdown_token` fired).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.unwrap_or(Ok(()));
        self.wasm.shutdown().await;
        result
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Builds the bridge (no servers): registry, bus and accounts.
pub fn build(settings: &Settings) -> Arc<Bridge> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let registry = Arc::new(Registry::new(settings.registry, clock.clone()));
    let bus = Bus::new(settings.bus);
    let bridge = Bridge::new(registry, bus, clock);
    for account in &settings.accounts {
        match account {
            AccountConfig::Sim { id } => {
                bridge.add_account(Arc::new(SimBackend::new(*id, &settings.world, bridge.sink())));
            }
        }
    }
    bridge
}

/// Builds and starts everything.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let bridge = build(&settings);
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|source| StartError::Listen { addr: settings.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: settings.listen.clone(), source })?;
    let shutdown = CancellationToken::new();
    let wasm = WasmHost::new(
        bridge.clone(),
        HostConfig { dir: settings.bots.clone(), state_dir: Some(settings.state_dir.clone()), max_bots: settings.max_bots },
    )?;
    wasm.load_all().await;
    wasm.watch(shutdown.clone())?;
    let router = crate::ws::router(bridge.clone(), settings.ws.clone(), shutdown.clone());
    let server = tokio::spawn(crate::ws::serve_http(listener, router, shutdown.clone()));
    tracing::info!(%addr, accounts = ?bridge.accounts(), bots = wasm.statuses().len(), "botbridge listening on ws://{addr}/ws");
    Ok(Running { addr, bridge, wasm, shutdown, server })
}
