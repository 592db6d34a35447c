//! Durable state, behind one small trait per tenant: the registry's ID log
//! ([`IdLog`]), the bus's event log ([`EventLog`]), the simulated world's
//! messages ([`SimLog`]) and every bot's key-value data ([`KvStore`]). The
//! tenants record through the traits and never hold their own lock while the
//! store works. Two implementations: [`redb::RedbStore`], one file on disk (the
//! default), and [`memory::MemoryStore`], the reference the contract tests hold
//! both to. With `--ephemeral` nothing is recorded at all.
//!
//! What is promised: a kv write and a WebSocket client's operation's IDs
//! (receiptId, sourceId) are committed before they are acknowledged; IDs and
//! events handed out in events, and IDs a wasm bot is given, are committed in
//! groups, at most `GROUP_COMMIT` later, and in order: whatever a bot makes
//! durable later (a kv write) is committed together with or after them. After
//! a crash, serials and `seq` numbers that might have been handed out but not
//! committed are skipped, never reused.
//!
//! `commit` and the kv calls are async, so a store across a network fits the
//! same traits; recording is a cheap, synchronous queueing step.

pub mod memory;
pub mod redb;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::bus::Json;

pub use self::redb::{FORMAT, GROUP_COMMIT, MAX_UNCOMMITTED, MAX_UNCOMMITTED_BYTES, RedbStore};

/// The registry's entries, by serial.
#[async_trait]
pub trait IdLog: Send + Sync + 'static {
    /// Queues entry `serial` for the next commit.
    fn record(&self, serial: u64, entry: Vec<u8>);
    /// Entries below `serial` are gone and need not be kept.
    fn prune(&self, below: u64);
    /// Makes every entry recorded so far durable, together with everything
    /// the other logs of the same store recorded before this call.
    async fn commit(&self) -> Result<(), StateError>;
}

/// The bus's event frames, by `seq`: the `since=` window across restarts.
pub trait EventLog: Send + Sync + 'static {
    /// Queues event `seq` for the next commit; events below `keep_from` go.
    fn record(&self, seq: u64, json: Json, keep_from: u64);
}

/// A record the store encodes when it writes it: on the commit thread, so
/// the tenant that made it does not spend its own time on the encoding.
pub trait Record: Send + Sync + 'static {
    fn encode(&self) -> Vec<u8>;
}

/// Bytes already encoded.
impl Record for Vec<u8> {
    fn encode(&self) -> Vec<u8> {
        self.clone()
    }
}

/// The simulated world's messages, by (account, message number).
pub trait SimLog: Send + Sync + 'static {
    /// Queues a message's record (or, with `None`, that it is forgotten).
    fn record(&self, account: i64, number: i64, record: Option<Arc<dyn Record>>);
}

/// Every bot's keys. A write is durable when it returns.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Bot `bot`'s keys.
    async fn load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError>;
    /// Sets (or with `None` deletes) one key.
    async fn write(&self, bot: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StateError>;
}

/// What a store held at start-up.
pub struct Restored {
    /// The registry's MAC key.
    pub key: [u8; 32],
    /// Registry entries by serial, ascending.
    pub ids: Vec<(u64, Vec<u8>)>,
    /// Buffered events (`seq`, frame JSON), ascending.
    pub events: Vec<(u64, String)>,
    /// The first serial and the first `seq` that are certainly unused: past
    /// everything committed and everything that may have been handed out since.
    pub next_serial: u64,
    pub next_seq: u64,
    /// The simulated world's messages: ((account, number), record).
    pub sim: Vec<((i64, i64), Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state folder {path}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("state file {path} is in use by another botbridge")]
    InUse { path: PathBuf },
    #[error("state file {path} is corrupt or not a state file")]
    Corrupt { path: PathBuf, source: ::redb::DatabaseError },
    #[error("state file {path} holds a damaged record: {what}")]
    BadRecord { path: PathBuf, what: &'static str },
    #[error("state file {path} belongs to something else than botbridge")]
    Foreign { path: PathBuf },
    #[error("state file {path} has format {found}; this botbridge reads format {FORMAT} (is it older than the file?)")]
    Newer { path: PathBuf, found: u32 },
    #[error("state file")]
    Storage(#[from] ::redb::Error),
    #[error("state worker stopped")]
    Worker(#[from] tokio::task::JoinError),
    #[error("cannot start the state commit thread")]
    Thread(#[source] std::io::Error),
    #[error("state commit failed")]
    Commit(#[source] std::sync::Arc<StateError>),
    #[error("state file is closed")]
    Closed,
}
