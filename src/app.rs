//! Assembly: builds the registry, bus, accounts and servers from `Settings`,
//! starts them, and stops them together.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::backend::onebot::{OnebotBackend, OnebotConfig, OnebotError};
use crate::backend::sim::SimBackend;
use crate::bridge::Bridge;
use crate::bus::Bus;
use crate::config::{AccountConfig, Settings};
use crate::registry::{Clock, Registry, SystemClock};
use crate::store::{KvStore, RedbStore, StateError};
use crate::wasm::{HostConfig, HostError, WasmHost};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Wasm(#[from] HostError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Onebot(#[from] OnebotError),
    #[error(transparent)]
    Config(#[from] crate::config::AccountError),
    #[error(transparent)]
    Reload(#[from] crate::config::ConfigError),
}

/// A started bridge. Dropping it does not stop it; call `shutdown`.
pub struct Running {
    pub addr: SocketAddr,
    pub bridge: Arc<Bridge>,
    pub wasm: WasmHost,
    state: Option<RedbStore>,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The WebSocket URL of this bridge.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The dev console's address.
    pub fn console_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Closes every connection (code 1001) and waits for the server to stop.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.wasm.shutdown().await;
        close_state(self.state.as_ref());
    }

    /// Resolves when the server has stopped (after `shutdown_token` fired).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.unwrap_or(Ok(()));
        self.wasm.shutdown().await;
        close_state(self.state.as_ref());
        result
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

fn close_state(state: Option<&RedbStore>) {
    if let Some(state) = state
        && let Err(e) = state.close()
    {
        tracing::error!("closing the state file: {}", crate::error_chain(&e));
    }
}

/// Builds the bridge (no servers): registry, bus and accounts, restored from
/// the state file unless `ephemeral`.
pub fn build(settings: &Settings) -> Result<(Arc<Bridge>, Option<RedbStore>), StateError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (registry, bus, state, sim_messages) = if settings.ephemeral {
        (Registry::new(settings.registry, clock.clone()), Bus::new(settings.bus), None, Vec::new())
    } else {
        let (state, restored) = RedbStore::open(&settings.state_dir)?;
        let registry = Registry::restore(settings.registry, clock.clone(), Arc::new(state.clone()), &restored);
        let bus = Bus::restore(settings.bus, Arc::new(state.clone()), &restored);
        tracing::info!(path = %state.path().display(), ids = restored.ids.len(), events = restored.events.len(), "state restored");
        (registry, bus, Some(state), restored.sim)
    };
    let bridge = Bridge::new(Arc::new(registry), bus, clock, settings.media.clone());
    for account in &settings.accounts {
        match account {
            AccountConfig::Sim { id } => {
                let sim = SimBackend::new(*id, &settings.world, bridge.sink());
                let sim = match &state {
                    Some(state) => sim.persisted(Arc::new(state.clone()), &sim_messages),
                    None => sim,
                };
                bridge.add_paced_account(Arc::new(sim), settings.pacing(account));
            }
            // Started by `start`: they connect or listen.
            AccountConfig::Onebot { .. } => {}
        }
    }
    Ok((bridge, state))
}

/// Builds and starts everything.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let (bridge, state) = build(&settings)?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|source| StartError::Listen { addr: settings.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: settings.listen.clone(), source })?;
    let shutdown = CancellationToken::new();
    for account in &settings.accounts {
        if let Some(config) = account.onebot() {
            let config = OnebotConfig { dedup_window: settings.dedup_window(account.id()), ..config? };
            let backend = OnebotBackend::start(config, bridge.sink(), shutdown.clone()).await?;
            bridge.add_paced_account(backend, settings.pacing(account));
        }
    }
    let wasm = WasmHost::new(
        bridge.clone(),
        HostConfig {
            dir: settings.bots.clone(),
            cache_dir: Some(settings.state_dir.join("cache")),
            max_bots: settings.max_bots,
            max_bot_bytes: settings.max_bot_bytes,
            max_bot_config_bytes: settings.max_bot_config_bytes,
            versions_dir: Some(settings.state_dir.join("versions")),
            keep_versions: settings.keep_versions,
        },
        state.clone().map(|s| Arc::new(s) as Arc<dyn KvStore>),
    )?;
    // Watch first, then scan: a file written while the first bots compile is
    // seen by one or the other (a load of an unchanged file is a no-op).
    wasm.watch(shutdown.clone())?;
    wasm.load_all().await;
    let auth = Auth::new(settings.tokens());
    if let Some(reload) = settings.reload.clone() {
        crate::config::watch_tokens(reload, auth.clone(), shutdown.clone())?;
    }
    let metrics = crate::metrics::registry(bridge.clone(), wasm.clone(), state.clone());
    let router = crate::ws::router(bridge.clone(), auth.clone(), settings.ws.clone(), shutdown.clone())
        .merge(crate::console::router(bridge.clone(), wasm.clone(), auth.clone(), shutdown.clone()))
        .merge(crate::admin::router(wasm.clone(), auth.clone(), settings.max_bot_bytes, settings.max_bot_config_bytes))
        .merge(crate::metrics::router(metrics, auth));
    let router = crate::http::guard(router, &settings.http);
    let server = tokio::spawn(crate::http::serve(listener, router, settings.http.clone(), shutdown.clone()));
    tracing::info!(%addr, accounts = ?bridge.accounts().iter().map(|a| a.0).collect::<Vec<_>>(), bots = wasm.statuses().len(), "botbridge listening on ws://{addr}/ws");
    Ok(Running { addr, bridge, wasm, state, shutdown, server })
}
