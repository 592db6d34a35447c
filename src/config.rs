//! Configuration: the TOML file, the command-line flags that override it key by
//! key, and the resolved `Settings` the bridge starts from. A bad file stops
//! start-up with a message naming the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, ScopedClient, Tokens};
use crate::backend::onebot::{Mode, OnebotConfig};
use crate::backend::sim::WorldConfig;
use crate::bridge::Permissions;
use crate::bridge::pacer::PacingConfig;
use crate::bus::BusConfig;
use crate::http::HttpConfig;
use crate::media::MediaPolicy;
use crate::registry::RegistryConfig;
use crate::schema::AccountId;
use crate::wasm::folder::{MAX_TOML_BYTES, MAX_WASM_BYTES};
use crate::ws::WsConfig;

/// The config file. Every key is also a `serve` flag (with `-` for `_`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub bots: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub max_frame: Option<usize>,
    pub replay: Option<usize>,
    pub queue: Option<usize>,
    pub id_capacity: Option<usize>,
    pub id_ttl: Option<u64>,
    pub ping_interval: Option<u64>,
    pub max_bots: Option<u32>,
    pub ephemeral: Option<bool>,
    pub max_bot_bytes: Option<u64>,
    pub max_bot_config_bytes: Option<u64>,
    pub replay_bytes: Option<usize>,
    pub bot_patience_ms: Option<u64>,
    pub handshake_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    pub media_dir: Option<PathBuf>,
    #[serde(default)]
    pub media_hosts: Vec<String>,
    pub media_max_bytes: Option<u64>,
    #[serde(default)]
    pub account: Vec<AccountEntry>,
    pub sim: Option<WorldConfig>,
    /// The admin API's token; absent: the admin API is off.
    pub admin_token: Option<String>,
    /// Versions of each bot kept for rollback.
    pub keep_versions: Option<usize>,
    /// Remote clients with their own tokens and scopes.
    #[serde(default)]
    pub client: Vec<ClientConfig>,
}

/// `[[client]]`: a remote client's name, its token (or the environment
/// variable that holds it) and what it may do.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    #[serde(default)]
    pub permissions: Permissions,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("token_env", &self.token_env)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

/// Longest client name.
const MAX_CLIENT_NAME: usize = 64;
/// Most versions of a bot `keep_versions` may ask for.
pub const MAX_KEEP_VERSIONS: usize = 100;

/// `[[account]]` as written: the account, and how it is protected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountEntry {
    #[serde(flatten)]
    pub account: AccountConfig,
    /// Absent: on with conservative values for OneBot, off for the sim.
    pub pacing: Option<PacingConfig>,
    /// OneBot only: a frame repeating one handled this recently is dropped
    /// (ms, default 60000; 0 keeps every repeat).
    pub dedup_window_ms: Option<u64>,
}

impl AccountEntry {
    pub fn options(&self) -> AccountOptions {
        AccountOptions { pacing: self.pacing, dedup_window_ms: self.dedup_window_ms }
    }
}

/// An entry reads as its account.
impl std::ops::Deref for AccountEntry {
    type Target = AccountConfig;
    fn deref(&self) -> &AccountConfig {
        &self.account
    }
}

/// What an account may set beside its backend: `[account.pacing]`, and the
/// window in which an upstream frame counts as a repeat (see `AccountEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountOptions {
    pub pacing: Option<PacingConfig>,
    pub dedup_window_ms: Option<u64>,
}

/// Longest `dedup_window_ms`: an hour.
pub const MAX_DEDUP_WINDOW_MS: u64 = 3_600_000;

/// One chat account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum AccountConfig {
    /// A simulated account in the world from `[sim]` (or the built-in one).
    Sim { id: AccountId },
    /// A real account through a OneBot v11 implementation: `mode = "forward"`
    /// connects to `url`; `mode = "reverse"` listens on `listen` at `path`
    /// (default `/onebot/v11/ws`).
    Onebot {
        id: AccountId,
        mode: OnebotMode,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        listen: Option<String>,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        /// How long a call upstream may take, ms (default 10000).
        #[serde(default)]
        call_timeout_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnebotMode {
    Forward,
    Reverse,
}

/// A OneBot account that lacks a key its mode needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account {id}: mode \"{mode}\" needs `{missing}`")]
pub struct AccountError {
    pub id: AccountId,
    pub mode: &'static str,
    pub missing: &'static str,
}

impl AccountConfig {
    pub fn id(&self) -> AccountId {
        match self {
            Self::Sim { id } | Self::Onebot { id, .. } => *id,
        }
    }

    /// The OneBot account's settings; an error names the missing key.
    pub fn onebot(&self) -> Option<Result<OnebotConfig, AccountError>> {
        let Self::Onebot { id, mode, url, listen, path, access_token, call_timeout_ms } = self else { return None };
        let mode = match (mode, url, listen) {
            (OnebotMode::Forward, Some(url), _) => Mode::Forward { url: url.clone() },
            (OnebotMode::Reverse, _, Some(listen)) => {
                Mode::Reverse { listen: listen.clone(), path: path.clone().unwrap_or_else(|| "/onebot/v11/ws".into()) }
            }
            (OnebotMode::Forward, None, _) => {
                return Some(Err(AccountError { id: *id, mode: "forward", missing: "url" }));
            }
            (OnebotMode::Reverse, _, None) => {
                return Some(Err(AccountError { id: *id, mode: "reverse", missing: "listen" }));
            }
        };
        Some(Ok(OnebotConfig {
            dedup_window: crate::backend::onebot::DEDUP_WINDOW,
            id: *id,
            mode,
            access_token: access_token.clone().filter(|t| !t.is_empty()),
            call_timeout: Duration::from_millis(call_timeout_ms.unwrap_or(10_000).max(1)),
        }))
    }
}

/// `botbridge serve` flags. Each wins over the same key in the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Token clients must present.
    #[arg(long, env = "BOTBRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Folder of wasm bots to load and watch [default: ./bots].
    #[arg(long, value_name = "DIR")]
    pub bots: Option<PathBuf>,
    /// Folder for durable state [default: ./state].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Largest client frame in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_frame: Option<usize>,
    /// Events kept for `?since=` replay [default: 10000].
    #[arg(long, value_name = "N")]
    pub replay: Option<usize>,
    /// Frames a consumer may have queued before it is dropped as lagging [default: 4096].
    #[arg(long, value_name = "N")]
    pub queue: Option<usize>,
    /// Most IDs the registry keeps [default: 1000000].
    #[arg(long, value_name = "N")]
    pub id_capacity: Option<usize>,
    /// Seconds an ID stays valid [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    pub id_ttl: Option<u64>,
    /// Seconds between keepalive pings [default: 20].
    #[arg(long, value_name = "SECONDS")]
    pub ping_interval: Option<u64>,
    /// Keep IDs, events and bot kv in memory only, not in STATE_DIR/botbridge.redb.
    #[arg(long)]
    pub ephemeral: bool,
    /// Most wasm bots loaded at once [default: 256].
    #[arg(long, value_name = "N")]
    pub max_bots: Option<u32>,
    /// Largest NAME.wasm read from the bots folder, bytes [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_bot_bytes: Option<u64>,
    /// Largest NAME.toml read from the bots folder, bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_bot_config_bytes: Option<u64>,
    /// Bytes of events kept for `?since=` replay, in memory and on disk [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub replay_bytes: Option<usize>,
    /// A client injecting simulated events waits for wasm bots with half-full
    /// queues, but not for one that took nothing for this many ms (0: never wait) [default: 500].
    #[arg(long, value_name = "MS")]
    pub bot_patience_ms: Option<u64>,
    /// Seconds a connection may take to send its HTTP request [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub handshake_timeout: Option<u64>,
    /// Most open connections; more are refused with 503 [default: the fd limit less 128].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// A folder whose files WebSocket clients may send as `file://` media [default: none].
    #[arg(long, value_name = "DIR")]
    pub media_dir: Option<PathBuf>,
    /// Largest media file read from `media_dir`, bytes [default: 20971520].
    #[arg(long, value_name = "BYTES")]
    pub media_max_bytes: Option<u64>,
    /// Token of the admin API (deploy, rollback, remove bots) [default: none, the API is off].
    #[arg(long, env = "BOTBRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Versions of each bot kept under STATE_DIR/versions for rollback [default: 5].
    #[arg(long, value_name = "N")]
    pub keep_versions: Option<usize>,
}

impl Settings {
    /// How `account` is paced: as configured, else conservatively for a real
    /// account and not at all for the sim world.
    pub fn pacing(&self, account: &AccountConfig) -> PacingConfig {
        let configured = self.account_options.get(&account.id()).and_then(|o| o.pacing);
        configured.unwrap_or(match account {
            AccountConfig::Sim { .. } => PacingConfig::OFF,
            AccountConfig::Onebot { .. } => PacingConfig::CONSERVATIVE,
        })
    }

    /// A OneBot account's de-duplication window.
    pub fn dedup_window(&self, account: AccountId) -> Duration {
        self.account_options
            .get(&account)
            .and_then(|o| o.dedup_window_ms)
            .map(Duration::from_millis)
            .unwrap_or(crate::backend::onebot::DEDUP_WINDOW)
    }

    /// The tokens in force at start.
    pub fn tokens(&self) -> Tokens {
        Tokens { client: self.ws.token.clone(), admin: self.admin_token.clone(), clients: self.clients.clone() }
    }
}

/// Everything the bridge starts from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub bots: PathBuf,
    pub state_dir: PathBuf,
    pub max_bots: u32,
    /// No state file: everything in memory.
    pub ephemeral: bool,
    pub ws: WsConfig,
    pub bus: BusConfig,
    pub registry: RegistryConfig,
    pub accounts: Vec<AccountConfig>,
    /// Per account: its pacing and de-duplication, where the file set them.
    pub account_options: BTreeMap<AccountId, AccountOptions>,
    pub world: WorldConfig,
    pub max_bot_bytes: u64,
    pub max_bot_config_bytes: u64,
    pub http: HttpConfig,
    pub media: MediaPolicy,
    /// The admin API's token; None: the admin API is off.
    pub admin_token: Option<String>,
    /// Remote clients with their own tokens and scopes (the unrestricted
    /// token is `ws.token`).
    pub clients: Vec<Arc<ScopedClient>>,
    /// Versions of each bot kept for rollback.
    pub keep_versions: usize,
    /// Where the tokens are re-read from when the config file changes.
    pub reload: Option<Reload>,
}

/// The config file to watch, and the token flags that win over it.
#[derive(Debug, Clone)]
pub struct Reload {
    pub path: PathBuf,
    token: Option<String>,
    admin_token: Option<String>,
}

impl Reload {
    /// The tokens as the file now says, flags winning. Blocking: the file
    /// is read until two reads a moment apart agree, so a file caught half
    /// written (an editor that truncates, then writes) is not taken for a
    /// config that dropped every client after some line.
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        let read = || {
            std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read { path: self.path.clone(), source })
        };
        let mut text = read()?;
        for _ in 0..SETTLE_READS {
            std::thread::sleep(RELOAD_DEBOUNCE);
            let again = read()?;
            if again == text {
                break;
            }
            text = again;
        }
        let file = FileConfig::parse(&text, &self.path)?;
        file.tokens(self.token.clone(), self.admin_token.clone(), &self.path)
    }
}

/// The built-in account when none is configured.
pub const DEFAULT_ACCOUNT: AccountId = AccountId(10001);

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            bots: "bots".into(),
            state_dir: "state".into(),
            max_bots: 256,
            ephemeral: false,
            ws: WsConfig::default(),
            bus: BusConfig::default(),
            registry: RegistryConfig::default(),
            accounts: vec![AccountConfig::Sim { id: DEFAULT_ACCOUNT }],
            account_options: BTreeMap::new(),
            world: WorldConfig::default(),
            max_bot_bytes: MAX_WASM_BYTES,
            max_bot_config_bytes: MAX_TOML_BYTES,
            http: HttpConfig::default(),
            media: MediaPolicy::default(),
            admin_token: None,
            clients: Vec::new(),
            keep_versions: 5,
            reload: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML for botbridge")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("config file {path}: {error}")]
    Account { path: PathBuf, error: AccountError },
    /// A value out of its range; says which key and what it must be.
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        let config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_owned(), source: Box::new(e) })?;
        let mut seen = std::collections::HashSet::new();
        for entry in &config.account {
            let (account, options) = (&entry.account, entry.options());
            if !seen.insert(account.id()) {
                return Err(invalid(format!("account: id {} appears twice", account.id())));
            }
            if let Some(Err(error)) = account.onebot() {
                return Err(ConfigError::Account { path: path.to_owned(), error });
            }
            if let Some(Err(why)) = options.pacing.map(|p| p.check()) {
                return Err(invalid(format!("account {}: pacing: {why}", account.id())));
            }
            if options.dedup_window_ms.is_some_and(|ms| ms > MAX_DEDUP_WINDOW_MS) {
                return Err(invalid(format!(
                    "account {}: dedup_window_ms must be at most {MAX_DEDUP_WINDOW_MS}",
                    account.id()
                )));
            }
        }
        for (key, value) in
            [("max_frame", config.max_frame), ("queue", config.queue), ("id_capacity", config.id_capacity)]
        {
            if value == Some(0) {
                return Err(invalid(format!("{key}: must be at least 1")));
            }
        }
        check_clients(&config.client).map_err(invalid)?;
        if let Some(Err(message)) = config.keep_versions.map(|n| check_keep_versions("keep_versions", n)) {
            return Err(invalid(message));
        }
        if let Some(Err(message)) = config.bot_patience_ms.map(|ms| check_bot_patience("bot_patience_ms", ms)) {
            return Err(invalid(message));
        }
        if config.ping_interval == Some(0) || config.id_ttl == Some(0) || config.handshake_timeout == Some(0) {
            return Err(invalid("ping_interval, id_ttl and handshake_timeout: must be at least 1 second".into()));
        }
        for (key, value) in [
            ("max_bot_bytes", config.max_bot_bytes),
            ("max_bot_config_bytes", config.max_bot_config_bytes),
            ("media_max_bytes", config.media_max_bytes),
            ("replay_bytes", config.replay_bytes.map(|b| b as u64)),
            ("max_connections", config.max_connections.map(|b| b as u64)),
        ] {
            if value == Some(0) {
                return Err(invalid(format!("{key}: must be at least 1")));
            }
        }
        Ok(config)
    }
}

/// Names are short, unique and plain; each has exactly one token source.
fn check_clients(clients: &[ClientConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for c in clients {
        let plain = c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        if c.name.is_empty() || c.name.len() > MAX_CLIENT_NAME || !plain {
            return Err(format!("client: name {:?} must be 1 to {MAX_CLIENT_NAME} of A-Z a-z 0-9 - _ .", c.name));
        }
        if !names.insert(c.name.as_str()) {
            return Err(format!("client: name {:?} appears twice", c.name));
        }
        match (&c.token, &c.token_env) {
            (Some(t), None) if !t.is_empty() => {}
            (None, Some(_)) => {}
            _ => return Err(format!("client {}: give exactly one of `token` (not empty) and `token_env`", c.name)),
        }
    }
    Ok(())
}

/// `keep_versions` is 1 to `MAX_KEEP_VERSIONS`.
fn check_keep_versions(key: &str, n: usize) -> Result<(), String> {
    if !(1..=MAX_KEEP_VERSIONS).contains(&n) {
        return Err(format!("{key}: must be 1 to {MAX_KEEP_VERSIONS}"));
    }
    Ok(())
}

impl FileConfig {
    /// The tokens this file gives, with `token` and `admin_token` from flags
    /// winning; a client's `token_env` is read now. Every token must differ
    /// from every other, so a token names one client.
    pub fn tokens(&self, token: Option<String>, admin: Option<String>, path: &Path) -> Result<Tokens, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        let client = token.or(self.token.clone()).filter(|t| !t.is_empty());
        let admin = admin.or(self.admin_token.clone()).filter(|t| !t.is_empty());
        let mut clients = Vec::new();
        for c in &self.client {
            let token = match (&c.token, &c.token_env) {
                (Some(token), _) => token.clone(),
                (None, Some(var)) => std::env::var(var)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| invalid(format!("client {}: the environment variable {var} is not set", c.name)))?,
                (None, None) => return Err(invalid(format!("client {}: no token", c.name))),
            };
            clients.push(Arc::new(ScopedClient { name: c.name.clone(), token, permissions: c.permissions.clone() }));
        }
        let mut all: Vec<&str> = clients.iter().map(|c| c.token.as_str()).collect();
        all.extend(client.as_deref());
        all.extend(admin.as_deref());
        let distinct: std::collections::HashSet<&str> = all.iter().copied().collect();
        if distinct.len() != all.len() {
            return Err(invalid("token, admin_token and each client's token must all differ".into()));
        }
        Ok(Tokens { client, admin, clients })
    }
}

/// How long the config file's writes must settle before it is re-read.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);
/// How many times a config file that keeps changing is re-read.
const SETTLE_READS: u32 = 50;

/// Re-reads the tokens (`token`, `admin_token`, `[[client]]`) whenever the
/// config file changes, until `stop`. A file that does not parse changes
/// nothing, and the log says why. Other keys take effect at the next start.
pub fn watch_tokens(reload: Reload, auth: Arc<Auth>, stop: CancellationToken) -> Result<(), ConfigError> {
    use notify_debouncer_full::notify::RecursiveMode;
    let path = std::fs::canonicalize(&reload.path)
        .map_err(|source| ConfigError::Read { path: reload.path.clone(), source })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let watch_error = |e: notify_debouncer_full::notify::Error| ConfigError::Read {
        path: reload.path.clone(),
        source: std::io::Error::other(e),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut debouncer = notify_debouncer_full::new_debouncer(RELOAD_DEBOUNCE, None, move |result| {
        let _ = tx.send(result);
    })
    .map_err(watch_error)?;
    // The folder, not the file: editors replace the file with a new one.
    debouncer.watch(&dir, RecursiveMode::NonRecursive).map_err(watch_error)?;
    tokio::spawn(async move {
        let _debouncer = debouncer;
        loop {
            let events = tokio::select! {
                _ = stop.cancelled() => return,
                batch = rx.recv() => match batch {
                    Some(Ok(events)) => events,
                    Some(Err(_)) => continue,
                    None => return,
                },
            };
            let ours = events.iter().flat_map(|e| e.paths.iter()).any(|p| p.file_name() == path.file_name());
            if !ours {
                continue;
            }
            let read = {
                let reload = reload.clone();
                tokio::task::spawn_blocking(move || reload.tokens()).await
            };
            match read {
                Ok(Ok(tokens)) if tokens == *auth.current() => {}
                Ok(Ok(tokens)) => {
                    tracing::info!(clients = tokens.clients.len(), "config file changed: tokens reloaded");
                    auth.replace(tokens);
                }
                Ok(Err(e)) => tracing::error!(
                    "config file changed but is refused; the tokens stay as they were: {}",
                    crate::error_chain(&e)
                ),
                Err(e) => tracing::error!("reading the config file: {e}"),
            }
        }
    });
    Ok(())
}

/// Longest `bot_patience_ms`: a client never waits longer than this for a bot.
pub const MAX_BOT_PATIENCE_MS: u64 = 60_000;

/// `key` (as the file or the flag spells it) is at most `MAX_BOT_PATIENCE_MS`.
fn check_bot_patience(key: &str, ms: u64) -> Result<(), String> {
    if ms > MAX_BOT_PATIENCE_MS {
        return Err(format!("{key}: at most {MAX_BOT_PATIENCE_MS} (0: never wait)"));
    }
    Ok(())
}

impl Settings {
    /// Flags over file over defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let d = Settings::default();
        let nonzero = |key: &str, v: Option<usize>| match v {
            Some(0) => Err(ConfigError::Invalid { path: "--".into(), message: format!("--{key}: must be at least 1") }),
            _ => Ok(()),
        };
        nonzero("max-frame", args.max_frame)?;
        nonzero("queue", args.queue)?;
        nonzero("id-capacity", args.id_capacity)?;
        nonzero("replay-bytes", args.replay_bytes)?;
        nonzero("max-connections", args.max_connections)?;
        if let Some(Err(message)) = args.bot_patience_ms.map(|ms| check_bot_patience("--bot-patience-ms", ms)) {
            return Err(ConfigError::Invalid { path: "--".into(), message });
        }
        if let Some(Err(message)) = args.keep_versions.map(|n| check_keep_versions("--keep-versions", n)) {
            return Err(ConfigError::Invalid { path: "--".into(), message });
        }
        let config_path = args.config.clone().unwrap_or_default();
        let tokens = file.tokens(args.token.clone(), args.admin_token.clone(), &config_path)?;
        let reload = args.config.clone().map(|path| Reload {
            path,
            token: args.token.clone(),
            admin_token: args.admin_token.clone(),
        });
        for (key, value) in [
            ("max-bot-bytes", args.max_bot_bytes),
            ("max-bot-config-bytes", args.max_bot_config_bytes),
            ("media-max-bytes", args.media_max_bytes),
            ("handshake-timeout", args.handshake_timeout),
        ] {
            nonzero(key, value.map(|v| v as usize))?;
        }
        let account_options = file.account.iter().map(|e| (e.account.id(), e.options())).collect();
        let accounts =
            if file.account.is_empty() { d.accounts } else { file.account.into_iter().map(|e| e.account).collect() };
        Ok(Self {
            listen: args.listen.clone().or(file.listen).unwrap_or(d.listen),
            bots: args.bots.clone().or(file.bots).unwrap_or(d.bots),
            state_dir: args.state_dir.clone().or(file.state_dir).unwrap_or(d.state_dir),
            max_bots: args.max_bots.or(file.max_bots).unwrap_or(d.max_bots).max(1),
            ephemeral: args.ephemeral || file.ephemeral.unwrap_or(false),
            ws: WsConfig {
                token: tokens.client.clone(),
                max_frame: args.max_frame.or(file.max_frame).unwrap_or(d.ws.max_frame),
                ping_interval: args
                    .ping_interval
                    .or(file.ping_interval)
                    .map(|s| Duration::from_secs(s.max(1)))
                    .unwrap_or(d.ws.ping_interval),
            },
            bus: BusConfig {
                queue: args.queue.or(file.queue).unwrap_or(d.bus.queue),
                replay: args.replay.or(file.replay).unwrap_or(d.bus.replay),
                replay_bytes: args.replay_bytes.or(file.replay_bytes).unwrap_or(d.bus.replay_bytes),
                patience: args
                    .bot_patience_ms
                    .or(file.bot_patience_ms)
                    .map(Duration::from_millis)
                    .unwrap_or(d.bus.patience),
            },
            registry: RegistryConfig {
                capacity: args.id_capacity.or(file.id_capacity).unwrap_or(d.registry.capacity),
                ttl: args.id_ttl.or(file.id_ttl).map(|s| Duration::from_secs(s.max(1))).unwrap_or(d.registry.ttl),
            },
            accounts,
            account_options,
            world: file.sim.unwrap_or(d.world),
            max_bot_bytes: args.max_bot_bytes.or(file.max_bot_bytes).unwrap_or(d.max_bot_bytes),
            max_bot_config_bytes: args
                .max_bot_config_bytes
                .or(file.max_bot_config_bytes)
                .unwrap_or(d.max_bot_config_bytes),
            http: HttpConfig {
                handshake_timeout: args
                    .handshake_timeout
                    .or(file.handshake_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(d.http.handshake_timeout),
                max_connections: args.max_connections.or(file.max_connections),
                allowed_origins: file.allowed_origins,
                allowed_hosts: file.allowed_hosts,
            },
            media: MediaPolicy {
                dir: args.media_dir.clone().or(file.media_dir),
                allowed_hosts: file.media_hosts,
                max_bytes: args.media_max_bytes.or(file.media_max_bytes).unwrap_or(d.media.max_bytes),
            },
            admin_token: tokens.admin,
            clients: tokens.clients,
            keep_versions: args.keep_versions.or(file.keep_versions).unwrap_or(d.keep_versions),
            reload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let err = FileConfig::parse("listen = \"x\"\nlisten_on = 1\n", Path::new("bb.toml")).unwrap_err();
        let msg = crate::error_chain(&err);
        assert!(msg.contains("bb.toml") && msg.contains("listen_on"), "{msg}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9\"\nqueue = 7\n[[account]]\nid = 5\nbackend = \"sim\"\n").unwrap();
        let args = ServeArgs { config: Some(path), listen: Some("127.0.0.1:10".into()), ..Default::default() };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.listen, "127.0.0.1:10");
        assert_eq!(s.bus.queue, 7);
        assert_eq!(s.accounts, vec![AccountConfig::Sim { id: AccountId(5) }]);
    }

    #[test]
    fn bot_patience_is_bounded_and_named() {
        let err = FileConfig::parse("bot_patience_ms = 60001", Path::new("x.toml")).unwrap_err();
        assert!(crate::error_chain(&err).contains("bot_patience_ms: at most 60000"), "{err}");
        let args = ServeArgs { bot_patience_ms: Some(60_001), ..Default::default() };
        let err = Settings::resolve(&args).unwrap_err();
        assert!(crate::error_chain(&err).contains("--bot-patience-ms: at most 60000"), "{err}");
        let args = ServeArgs { bot_patience_ms: Some(0), ..Default::default() };
        assert_eq!(Settings::resolve(&args).unwrap().bus.patience, Duration::ZERO, "0: never wait");
    }

    #[test]
    fn bad_values_are_refused() {
        for text in [
            "queue = 0",
            "queue = \"many\"",
            "bot_patience_ms = 60001",
            "bot_patience_ms = -1",
            "[[account]]\nid = 1\nbackend = \"carrier-pigeon\"",
            "[[account]]\nbackend = \"sim\"",
        ] {
            assert!(FileConfig::parse(text, Path::new("x.toml")).is_err(), "{text}");
        }
    }

    #[test]
    fn pacing_and_repeats_per_account() {
        let text = "[[account]]\nid = 7\nbackend = \"onebot\"\nmode = \"forward\"\nurl = \"ws://h/\"\ndedup_window_ms = 5000\n[account.pacing]\ngroup_gap_ms = 3000\nqueue = 9\n\n[[account]]\nid = 8\nbackend = \"onebot\"\nmode = \"forward\"\nurl = \"ws://h/\"\n\n[[account]]\nid = 9\nbackend = \"sim\"\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bb.toml");
        std::fs::write(&path, text).unwrap();
        let s = Settings::resolve(&ServeArgs { config: Some(path), ..Default::default() }).unwrap();
        let seven = s.pacing(&s.accounts[0]);
        assert_eq!((seven.group_gap_ms, seven.queue, seven.enabled), (3000, 9, true));
        assert_eq!(seven.friend_gap_ms, PacingConfig::CONSERVATIVE.friend_gap_ms, "unset keys keep their defaults");
        assert_eq!(s.dedup_window(AccountId(7)), Duration::from_secs(5));
        assert_eq!(s.pacing(&s.accounts[1]), PacingConfig::CONSERVATIVE, "a OneBot account is paced by default");
        assert_eq!(s.dedup_window(AccountId(8)), crate::backend::onebot::DEDUP_WINDOW);
        assert!(!s.pacing(&s.accounts[2]).enabled, "the sim world is not");
        for (bad, key) in [
            ("[account.pacing]\nper_minute = 0", "per_minute"),
            ("[account.pacing]\nqueue = 0", "queue"),
            ("[account.pacing]\ngroup_gap_ms = 999999999", "group_gap_ms"),
            ("[account.pacing]\nspeed = 1", "speed"),
            ("dedup_window_ms = 99999999", "dedup_window_ms"),
        ] {
            let text = format!("[[account]]\nid = 7\nbackend = \"sim\"\n{bad}\n");
            let err = FileConfig::parse(&text, Path::new("bb.toml")).map(|_| ()).unwrap_err();
            assert!(crate::error_chain(&err).contains(key), "{bad}: {}", crate::error_chain(&err));
        }
    }

    #[test]
    fn onebot_accounts_from_the_design_example() {
        let text = "[[account]]\nid = 10001\nbackend = \"sim\"\n\n[[account]]\nid = 20002\nbackend = \"onebot\"\nmode = \"forward\"\nurl = \"ws://127.0.0.1:3001\"\naccess_token = \"t\"\n\n[[account]]\nid = 30003\nbackend = \"onebot\"\nmode = \"reverse\"\nlisten = \"127.0.0.1:6700\"\n";
        let file = FileConfig::parse(text, Path::new("bb.toml")).unwrap();
        let forward = file.account[1].onebot().unwrap().unwrap();
        assert_eq!(forward.mode, Mode::Forward { url: "ws://127.0.0.1:3001".into() });
        assert_eq!(forward.access_token.as_deref(), Some("t"));
        let reverse = file.account[2].onebot().unwrap().unwrap();
        assert_eq!(reverse.mode, Mode::Reverse { listen: "127.0.0.1:6700".into(), path: "/onebot/v11/ws".into() });
        let err =
            FileConfig::parse("[[account]]\nid = 2\nbackend = \"onebot\"\nmode = \"forward\"\n", Path::new("bb.toml"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("bb.toml") && err.contains("`url`"), "{err}");
        assert!(
            FileConfig::parse(
                "[[account]]\nid = 2\nbackend = \"onebot\"\nmode = \"sideways\"\nurl = \"x\"\n",
                Path::new("x")
            )
            .is_err()
        );
    }
}
