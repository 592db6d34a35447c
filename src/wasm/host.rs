//! Loading, replacing and unloading bots; watching the folder; the cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify_debouncer_full::notify::RecursiveMode;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{botbridge::bot as v0_3, v0_1::botbridge::bot as v0_1, v0_2::botbridge::bot as v0_2};
use super::folder::{self, FileError, bot_name};
use super::kv::Buckets;
use super::limits::{BotConfig, BotConfigError, LogGate, MAX_MEMORY_MB, sha256_hex};
use super::logbook::{LogLevel, Logbook};
use super::runner::{BotStatus, RunState, Runner};
use super::settings::{MissingSecret, Settings};
use super::store::{BotLog, BotState, BotTemplate, LiveBot, TICK_MS};
use super::timers::TimerBook;
use super::versions::{VersionInfo, Versions};
use crate::bridge::Bridge;

/// How long the watcher waits for writes to a file to settle.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The watched folder of `NAME.wasm` (and `NAME.toml`) files.
    pub dir: PathBuf,
    /// Where the compiled-component cache lives; None: no cache.
    pub cache_dir: Option<PathBuf>,
    /// Bots the pooling allocator has room for.
    pub max_bots: u32,
    /// Largest `NAME.wasm` read, bytes.
    pub max_bot_bytes: u64,
    /// Largest `NAME.toml` read, bytes.
    pub max_bot_config_bytes: u64,
    /// Where the last versions of each bot are kept for rollback; None: not kept.
    pub versions_dir: Option<PathBuf>,
    /// Versions of each bot kept.
    pub keep_versions: usize,
}

/// A wasmtime (or other) error kept as a source where the error holding it
/// must stay `Clone` (a refusal is shown until the next load).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

pub(super) fn cause(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Cause {
    Arc::from(e.into())
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("wasm engine")]
    Engine(#[source] Cause),
    #[error("cannot start the epoch thread")]
    Thread(#[source] std::io::Error),
    #[error("watching {dir}")]
    Watch { dir: PathBuf, source: notify_debouncer_full::notify::Error },
}

/// Why a file could not become the running version of a bot.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: the read stopped")]
    Read { path: PathBuf, source: Cause },
    #[error("{path}: bad config")]
    Config { path: PathBuf, source: BotConfigError },
    #[error("{path}: a secret is missing")]
    Secret { path: PathBuf, source: MissingSecret },
    #[error(
        "{path}: this is a core wasm module, not a component (build with wit-bindgen or `wasm-tools component new`)"
    )]
    CoreModule { path: PathBuf },
    #[error("{path}: not a valid component")]
    Compile { path: PathBuf, source: Cause },
    #[error("{path}: does not fit the botbridge world")]
    Link { path: PathBuf, source: Cause },
    #[error("{path}: init failed")]
    Init { path: PathBuf, source: Cause },
    #[error("{path}: pinned to sha256 {pinned}, but this build is {found}")]
    Pinned { path: PathBuf, pinned: String, found: String },
}

/// What a deploy does with the bot's `NAME.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Leave the file as it is (or absent).
    Keep,
    Replace(Vec<u8>),
    Remove,
}

/// Why a deploy, rollback or removal did not happen. Nothing in the folder
/// changed, and the running version (if any) runs on.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("`{name}` is not a bot name (1 to 64 of A-Z a-z 0-9 - _)")]
    BadName { name: String },
    #[error("refused")]
    Refused(#[from] LoadError),
    #[error("bot {name}: no such bot")]
    NoBot { name: String },
    #[error("bot {name}: version {version} is not kept")]
    NoVersion { name: String, version: String },
    #[error("bot {name}: no kept version before the running one")]
    NoEarlier { name: String },
    #[error("bot {name}: versions are not kept (no state folder)")]
    NotKept { name: String },
    #[error("{path}: cannot write")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A bot's files as read (or uploaded), before anything is compiled.
pub(super) struct BotFiles {
    pub(super) wasm: Vec<u8>,
    pub(super) toml: Option<Vec<u8>>,
    config: BotConfig,
    settings: Settings,
    sha256: String,
}

/// A version that compiled and fits the world, not yet instantiated.
pub(super) struct Checked {
    version: String,
    files: BotFiles,
    pre: wasmtime::component::InstancePre<BotState>,
}

/// A version ready to run: compiled, linked, instantiated, `init` done.
struct Prepared {
    version: String,
    sha256: String,
    config: BotConfig,
    settings: Arc<Settings>,
    template: Arc<BotTemplate>,
    live: LiveBot,
    /// The files, for the version store.
    wasm: Vec<u8>,
    toml: Option<Vec<u8>>,
}

struct Slot {
    version: String,
    config: BotConfig,
    settings: Arc<Settings>,
    stop: CancellationToken,
    /// Taken when the slot is being replaced.
    task: Option<JoinHandle<u64>>,
    status: Arc<Mutex<BotStatus>>,
}

struct Inner {
    engine: Engine,
    linker: Linker<BotState>,
    bridge: Arc<Bridge>,
    kv: Buckets,
    timers: TimerBook,
    config: HostConfig,
    slots: Mutex<HashMap<String, Slot>>,
    /// Loads of one bot happen one at a time; different bots load in parallel.
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Last load error per bot that has no running version.
    rejected: Mutex<HashMap<String, String>>,
    logbook: Arc<Logbook>,
    versions: Option<Versions>,
}

/// The wasm bot host. Cheap to clone.
#[derive(Clone)]
pub struct WasmHost {
    inner: Arc<Inner>,
}

fn engine(max_bots: u32) -> Result<Engine, HostError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // Bots make blocking-style calls; without the component-model-async
    // machinery each call is a plain fiber switch, several times cheaper.
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    let slots = max_bots.max(8) * 2;
    pool.total_component_instances(slots);
    pool.total_core_instances(slots * 8);
    pool.total_memories(slots * 2);
    pool.total_tables(slots * 4);
    pool.max_memory_size((MAX_MEMORY_MB as usize) << 20);
    pool.max_core_instances_per_component(64);
    pool.max_memories_per_component(16);
    pool.max_tables_per_component(64);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| HostError::Engine(cause(e)))
}

/// WASI, wasi:http (sent through [`super::http::OutboundHttp`]), and every
/// version of the bot world, so a 0.1.0 or 0.2.0 bot links as it always did.
fn linker(engine: &Engine) -> Result<Linker<BotState>, HostError> {
    let mut linker = Linker::new(engine);
    let link = |linker: &mut Linker<BotState>| -> wasmtime::Result<()> {
        type Me = HasSelf<BotState>;
        fn me(s: &mut BotState) -> &mut BotState {
            s
        }
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        v0_3::types::add_to_linker::<_, Me>(linker, me)?;
        v0_3::operations::add_to_linker::<_, Me>(linker, me)?;
        v0_3::log::add_to_linker::<_, Me>(linker, me)?;
        v0_3::kv::add_to_linker::<_, Me>(linker, me)?;
        v0_3::timers::add_to_linker::<_, Me>(linker, me)?;
        v0_3::config::add_to_linker::<_, Me>(linker, me)?;
        v0_2::types::add_to_linker::<_, Me>(linker, me)?;
        v0_2::operations::add_to_linker::<_, Me>(linker, me)?;
        v0_2::log::add_to_linker::<_, Me>(linker, me)?;
        v0_2::kv::add_to_linker::<_, Me>(linker, me)?;
        v0_2::timers::add_to_linker::<_, Me>(linker, me)?;
        v0_2::config::add_to_linker::<_, Me>(linker, me)?;
        linker.instance("botbridge:bot/types@0.1.0")?;
        v0_1::operations::add_to_linker::<_, Me>(linker, me)?;
        v0_1::log::add_to_linker::<_, Me>(linker, me)?;
        v0_1::kv::add_to_linker::<_, Me>(linker, me)?;
        Ok(())
    };
    link(&mut linker).map_err(|e| HostError::Engine(cause(e)))?;
    Ok(linker)
}

impl WasmHost {
    /// Makes the engine and starts the epoch ticker. Loads nothing yet.
    /// `kv` keeps the bots' kv data; None keeps it in memory.
    pub fn new(
        bridge: Arc<Bridge>,
        config: HostConfig,
        kv: Option<Arc<dyn crate::store::KvStore>>,
    ) -> Result<Self, HostError> {
        let engine = engine(config.max_bots)?;
        let linker = linker(&engine)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(TICK_MS));
                }
            })
            .map_err(HostError::Thread)?;
        let versions = config.versions_dir.clone().map(|dir| Versions::new(dir, config.keep_versions));
        let timers = TimerBook::new(kv.clone());
        let kv = Buckets::new(kv);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                bridge,
                kv,
                timers,
                config,
                slots: Mutex::new(HashMap::new()),
                loading: Mutex::new(HashMap::new()),
                rejected: Mutex::new(HashMap::new()),
                logbook: Arc::new(Logbook::default()),
                versions,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    pub(super) fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Kept versions of `name`, oldest first, as last read or written (no I/O).
    pub fn kept_versions(&self, name: &str) -> Vec<VersionInfo> {
        self.inner.versions.as_ref().map(|v| v.cached(name)).unwrap_or_default()
    }

    pub(super) fn version_store(&self) -> Option<&Versions> {
        self.inner.versions.as_ref()
    }

    /// Keeps a version that just loaded, for rollback (off the runtime threads).
    async fn keep_version(&self, name: &str, version: &str, sha256: &str, wasm: Vec<u8>, toml: Option<Vec<u8>>) {
        if self.inner.versions.is_none() {
            return;
        }
        let host = self.clone();
        let info = VersionInfo {
            version: version.to_owned(),
            sha256: sha256.to_owned(),
            bytes: wasm.len() as u64,
            saved_at: SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            has_config: toml.is_some(),
        };
        let name = name.to_owned();
        let kept = tokio::task::spawn_blocking(move || {
            let Some(versions) = host.inner.versions.as_ref() else { return Ok(()) };
            versions.record(&name, info, &wasm, toml.as_deref()).map_err(|e| (name, e))
        })
        .await;
        if let Ok(Err((name, e))) = kept {
            tracing::warn!(bot = name, "cannot keep this version for rollback: {e}");
        }
    }

    /// Every loaded bot, by name.
    pub fn statuses(&self) -> Vec<BotStatus> {
        let mut all: Vec<_> = self.inner.slots.lock().values().map(|s| s.status.lock().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn status(&self, name: &str) -> Option<BotStatus> {
        self.inner.slots.lock().get(name).map(|s| s.status.lock().clone())
    }

    /// Events bot `name`'s running version has handled (cheaper than `status`).
    pub fn handled(&self, name: &str) -> Option<u64> {
        self.inner.slots.lock().get(name).map(|s| s.status.lock().handled)
    }

    /// A value in bot `bot`'s kv data, if the bot ran since start-up.
    pub fn kv_get(&self, bot: &str, key: &str) -> Option<Vec<u8>> {
        self.inner.kv.loaded(bot)?.get(key)
    }

    /// Bytes of bot `bot`'s kv data, if the bot ran since start-up.
    pub fn kv_bytes(&self, bot: &str) -> Option<usize> {
        Some(self.inner.kv.loaded(bot)?.bytes())
    }

    /// Recent log lines of every bot, and a feed of new ones and of status changes.
    pub fn logbook(&self) -> &Arc<Logbook> {
        &self.inner.logbook
    }

    /// Bots whose newest file was refused, with why, whether or not an older
    /// version is running.
    pub fn all_rejected(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self.inner.rejected.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort();
        all
    }

    /// Why the newest file of `name` was refused, if it was.
    pub fn rejected(&self, name: &str) -> Option<String> {
        self.inner.rejected.lock().get(name).cloned()
    }

    /// Loads every bot in the folder, compiling in parallel.
    pub async fn load_all(&self) {
        let dir = self.inner.config.dir.clone();
        let names = tokio::task::spawn_blocking(move || folder::bot_names(&dir)).await.unwrap_or_default();
        let loads = names.into_iter().map(|name| {
            let host = self.clone();
            tokio::spawn(async move { host.sync(&name).await })
        });
        for load in loads.collect::<Vec<_>>() {
            let _ = load.await;
        }
    }

    /// The lock that makes loads of bot `name` happen one at a time
    /// (different bots load in parallel), so two events for one file, or a
    /// deploy and the watcher, never load it twice.
    pub(super) fn load_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.loading.lock().entry(name.to_owned()).or_default().clone()
    }

    /// Brings bot `name` in line with the folder: loads, replaces or unloads it.
    pub async fn sync(&self, name: &str) -> Result<(), LoadError> {
        let lock = self.load_lock(name);
        let _one_at_a_time = lock.lock().await;
        self.sync_locked(name).await
    }

    pub(super) async fn sync_locked(&self, name: &str) -> Result<(), LoadError> {
        let result = match self.read_files(name).await {
            Ok(None) => {
                self.unload(name).await;
                return Ok(());
            }
            Ok(Some(files)) => self.load(name, files).await,
            Err(e) => Err(e),
        };
        self.note_outcome(name, &result);
        result
    }

    /// Shows a refusal (on the panel, in the log) until the next good load.
    pub(super) fn note_outcome(&self, name: &str, result: &Result<(), LoadError>) {
        match result {
            Ok(()) => {
                self.inner.rejected.lock().remove(name);
            }
            Err(e) => {
                let why = crate::error_chain(e);
                tracing::error!(bot = name, "keeping the running version (if any): {why}");
                self.inner.rejected.lock().insert(name.to_owned(), why.clone());
                if let Some(slot) = self.inner.slots.lock().get(name) {
                    slot.status.lock().rejected = Some(why.clone());
                }
                self.inner.logbook.record(name, LogLevel::Error, &format!("refused: {why}"));
                self.inner.logbook.changed();
            }
        }
    }

    /// Reads `NAME.wasm` and its `NAME.toml` (off the runtime threads, capped);
    /// None when there is no `NAME.wasm`.
    async fn read_files(&self, name: &str) -> Result<Option<BotFiles>, LoadError> {
        let config = &self.inner.config;
        let (dir, name, max_wasm, max_toml) =
            (config.dir.clone(), name.to_owned(), config.max_bot_bytes, config.max_bot_config_bytes);
        let read = tokio::task::spawn_blocking(move || -> Result<_, LoadError> {
            let Some(wasm) = folder::read(&dir, &format!("{name}.wasm"), max_wasm)? else { return Ok(None) };
            let toml = folder::read(&dir, &format!("{name}.toml"), max_toml)?;
            parse_files(&dir, &name, wasm, toml).map(Some)
        });
        read.await.map_err(|e| LoadError::Read { path: self.inner.config.dir.clone(), source: cause(e) })?
    }

    /// Makes these files the running version of bot `name`, unless it already is.
    async fn load(&self, name: &str, files: BotFiles) -> Result<(), LoadError> {
        let Some(checked) = self.check_files(name, files).await? else { return Ok(()) };
        self.start_checked(name, checked).await
    }

    /// Instantiates a checked version, runs its `init`, and swaps it in.
    pub(super) async fn start_checked(&self, name: &str, checked: Checked) -> Result<(), LoadError> {
        let ready = self.prepare(name, checked).await?;
        self.swap_in(name, ready).await;
        Ok(())
    }

    /// What may fail without running the bot: its config, its secrets, its
    /// pin, compiling (or the cache) and linking. None when this version
    /// with this config already runs.
    pub(super) async fn check_files(&self, name: &str, files: BotFiles) -> Result<Option<Checked>, LoadError> {
        let inner = &self.inner;
        let path = inner.config.dir.join(format!("{name}.wasm"));
        let version = blake3::hash(&files.wasm).to_hex()[..16].to_owned();
        {
            let slots = inner.slots.lock();
            if let Some(slot) = slots.get(name)
                && slot.version == version
                && slot.config == files.config
                && *slot.settings == files.settings
                && matches!(slot.status.lock().state, RunState::Running)
            {
                return Ok(None);
            }
        }
        if let Some(pinned) = &files.config.sha256
            && *pinned != files.sha256
        {
            return Err(LoadError::Pinned { path, pinned: pinned.clone(), found: files.sha256 });
        }
        if is_core_module(&files.wasm) {
            return Err(LoadError::CoreModule { path });
        }
        let (engine, cache, key) = (inner.engine.clone(), inner.config.cache_dir.clone(), version.clone());
        let (component, files) = tokio::task::spawn_blocking(move || {
            let compiled = compile(&engine, &files.wasm, &key, cache.as_deref());
            compiled.map(|c| (c, files))
        })
        .await
        .map_err(|e| LoadError::Compile { path: path.clone(), source: cause(e) })?
        .map_err(|e| LoadError::Compile { path: path.clone(), source: cause(e) })?;
        let pre = inner.linker.instantiate_pre(&component).map_err(|e| LoadError::Link { path, source: cause(e) })?;
        Ok(Some(Checked { version, files, pre }))
    }

    /// Instantiates a checked version and runs its `init`, while the old
    /// version keeps running.
    async fn prepare(&self, name: &str, checked: Checked) -> Result<Prepared, LoadError> {
        let inner = &self.inner;
        let path = inner.config.dir.join(format!("{name}.wasm"));
        let Checked { version, files, pre } = checked;
        let BotFiles { wasm, toml, config, settings, sha256 } = files;
        let settings = Arc::new(settings);
        let template = Arc::new(BotTemplate {
            name: Arc::from(name),
            engine: inner.engine.clone(),
            pre,
            config: config.clone(),
            bridge: inner.bridge.clone(),
            kv: inner.kv.bucket(name).await,
            timers: inner.timers.timers(name).await,
            settings: settings.clone(),
            logbook: inner.logbook.clone(),
            log: BotLog {
                bot: Arc::from(name),
                gate: Arc::new(Mutex::new(LogGate::new(&config))),
                logbook: inner.logbook.clone(),
                settings: settings.clone(),
            },
            http_in_flight: Arc::new(tokio::sync::Semaphore::new(config.http_max_in_flight as usize)),
            metrics: inner.bridge.metrics().bot(name),
        });
        let live = template.instantiate().await.map_err(|e| LoadError::Init { path, source: cause(e) })?;
        Ok(Prepared { version, sha256, config, settings, template, live, wasm, toml })
    }

    /// Stops the old version (its status stays visible until the new one
    /// replaces it) and starts the new one where the old one stopped. Cannot fail.
    async fn swap_in(&self, name: &str, ready: Prepared) {
        let inner = &self.inner;
        let Prepared { version, sha256, config, settings, template, live, wasm, toml } = ready;
        let old = inner.slots.lock().get_mut(name).map(|old| (old.stop.clone(), old.task.take()));
        let since = match old {
            Some((stop, task)) => {
                stop.cancel();
                match task {
                    Some(task) => Some(task.await.unwrap_or(0)),
                    None => None,
                }
            }
            None => None,
        };
        let sub = inner.bridge.bus().subscribe_paced(name, since);
        let status = Arc::new(Mutex::new(BotStatus {
            name: name.to_owned(),
            version: version.clone(),
            sha256: sha256.clone(),
            config: config.clone(),
            state: RunState::Running,
            loaded_at: SystemTime::now(),
            handled: 0,
            failures: 0,
            restarts: 0,
            last_error: None,
            rejected: None,
        }));
        let stop = CancellationToken::new();
        let runner = Runner {
            template,
            live: Some(live),
            sub,
            bus: inner.bridge.bus().clone(),
            stop: stop.clone(),
            status: status.clone(),
        };
        let task = tokio::spawn(tracing::Instrument::instrument(runner.run(), tracing::info_span!("bot", name)));
        inner.slots.lock().insert(
            name.to_owned(),
            Slot { version: version.clone(), config, settings, stop, task: Some(task), status },
        );
        tracing::info!(bot = name, version, "loaded");
        inner.logbook.record(name, LogLevel::Info, &format!("loaded version {version}"));
        inner.logbook.changed();
        // After the swap, so keeping it never delays the new version.
        self.keep_version(name, &version, &sha256, wasm, toml).await;
    }

    /// Stops and forgets bot `name`. Its kv data stays.
    pub async fn unload(&self, name: &str) {
        let slot = self.inner.slots.lock().remove(name);
        self.inner.rejected.lock().remove(name);
        if let Some(slot) = slot {
            slot.stop.cancel();
            if let Some(task) = slot.task {
                let _ = task.await;
            }
            tracing::info!(bot = name, "unloaded");
            self.inner.logbook.record(name, LogLevel::Info, "unloaded");
        }
        self.inner.logbook.changed();
    }

    /// Stops every bot.
    pub async fn shutdown(&self) {
        let slots: Vec<_> = self.inner.slots.lock().drain().collect();
        for (_, slot) in slots {
            slot.stop.cancel();
            if let Some(task) = slot.task {
                let _ = task.await;
            }
        }
    }

    /// Watches the folder until `stop`: a written, replaced or deleted file syncs its bot.
    pub fn watch(&self, stop: CancellationToken) -> Result<JoinHandle<()>, HostError> {
        let dir = self.inner.config.dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| HostError::Watch { dir: dir.clone(), source: notify_debouncer_full::notify::Error::io(e) })?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut debouncer = notify_debouncer_full::new_debouncer(DEBOUNCE, None, move |result| {
            let _ = tx.send(result);
        })
        .map_err(|source| HostError::Watch { dir: dir.clone(), source })?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| HostError::Watch { dir: dir.clone(), source })?;
        let host = self.clone();
        Ok(tokio::spawn(async move {
            let _debouncer = debouncer;
            loop {
                let batch = tokio::select! {
                    _ = stop.cancelled() => return,
                    batch = rx.recv() => match batch { Some(b) => b, None => return },
                };
                let events = match batch {
                    Ok(events) => events,
                    Err(errors) => {
                        tracing::warn!(?errors, "watcher errors");
                        continue;
                    }
                };
                // Reading a file is an event too (inotify's open/close-nowrite):
                // syncing on those would re-read every file in a loop.
                let mut names: Vec<String> = events
                    .iter()
                    .filter(|e| !matches!(e.kind, notify_debouncer_full::notify::EventKind::Access(_)))
                    .flat_map(|e| e.paths.iter())
                    .filter_map(|p| bot_name(p))
                    .collect();
                names.sort();
                names.dedup();
                for name in names {
                    let host = host.clone();
                    tokio::spawn(async move {
                        let _ = host.sync(&name).await;
                    });
                }
            }
        }))
    }
}

/// Parses a bot's files: its config, its secrets, its build's SHA-256.
/// Blocking (SHA-256 of a large component takes a while).
pub(super) fn parse_files(dir: &Path, name: &str, wasm: Vec<u8>, toml: Option<Vec<u8>>) -> Result<BotFiles, LoadError> {
    let toml_path = || dir.join(format!("{name}.toml"));
    let config = BotConfig::parse(toml.as_deref()).map_err(|source| LoadError::Config { path: toml_path(), source })?;
    let settings =
        Settings::resolve(name, &config).map_err(|source| LoadError::Secret { path: toml_path(), source })?;
    let sha256 = sha256_hex(&wasm);
    Ok(BotFiles { wasm, toml, config, settings, sha256 })
}

/// Compiles, or loads from the cache (`CACHE/HASH.cwasm`, written to a new file
/// and renamed, never rewritten in place: wasmtime maps it).
fn compile(engine: &Engine, bytes: &[u8], hash: &str, cache: Option<&Path>) -> wasmtime::Result<Component> {
    let cached = cache.map(|dir| dir.join(format!("{hash}.cwasm")));
    if let Some(path) = &cached
        && path.exists()
    {
        // SAFETY: the file was written by `Component::serialize` of this program
        // and is never modified after its rename; wasmtime checks its version.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(path = %path.display(), "stale cache entry, recompiling: {e:#}"),
        }
    }
    let component = Component::from_binary(engine, bytes)?;
    if let (Some(path), Ok(serialized)) = (&cached, component.serialize()) {
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!("{hash}.{}.{}.tmp", std::process::id(), rand::random::<u32>()));
            std::fs::write(&tmp, &serialized)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e}");
        }
    }
    Ok(component)
}

/// A core module starts with version 1; a component with the component layer.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// What `botbridge check` reports.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// None when the component fits the world.
    pub problem: Option<String>,
}

fn describe(name: &str, item: &ComponentItem) -> String {
    let kind = match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    };
    format!("{name} ({kind})")
}

/// Why `check` could not look inside a file.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Engine(#[from] HostError),
    #[error("this is a core wasm module, not a component (build with wit-bindgen or `wasm-tools component new`)")]
    CoreModule,
    #[error("not a valid component")]
    Compile(#[source] Cause),
}

/// Checks a file against the world without running it.
pub fn check(bytes: &[u8]) -> Result<CheckReport, CheckError> {
    let engine = engine(8)?;
    if is_core_module(bytes) {
        return Err(CheckError::CoreModule);
    }
    let component = compile(&engine, bytes, "check", None).map_err(|e| CheckError::Compile(cause(e)))?;
    let ty = component.component_type();
    let imports = ty.imports(&engine).map(|(n, i)| describe(n, &i.ty)).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, i)| describe(n, &i.ty)).collect();
    let linker = linker(&engine)?;
    let mut problem = linker.instantiate_pre(&component).err().map(|e| format!("{e:#}"));
    if problem.is_none() && !exports.iter().any(|e| e == "handle (func)") {
        problem = Some("it exports no `handle` function".into());
    }
    Ok(CheckReport { imports, exports, problem })
}
