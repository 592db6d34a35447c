//! Durable state: one redb file, `STATE_DIR/botbridge.redb`, holding the ID
//! registry, the replay buffer with its `seq`, and every bot's kv.
//!
//! What is promised: a kv write and an operation's IDs (receiptId, sourceId)
//! are committed before they are acknowledged; IDs and events handed out in
//! events are committed in groups, at most `GROUP_COMMIT` later. After a crash,
//! serials and `seq` numbers that might have been handed out but not committed
//! are skipped, never reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Longest delay before an ID or event handed out in an event is on disk.
pub const GROUP_COMMIT: Duration = Duration::from_millis(50);
/// Most records waiting for a group commit; past it, the recorder commits at once.
/// So at most twice this many serials or `seq`s can be lost in a crash.
pub const MAX_UNCOMMITTED: usize = 8192;
/// Most event bytes waiting for a group commit; past it, the recorder commits at once.
pub const MAX_UNCOMMITTED_BYTES: usize = 8 << 20;
/// State file format this build reads and writes.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8] = b"botbridge state";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Registry entries and events are written a commit's worth to a row (keyed by
/// the batch's last serial or `seq`): one B-tree insert per group commit, not per ID.
const IDS: TableDefinition<u64, &[u8]> = TableDefinition::new("ids");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// `[number u64 LE][length u32 LE][bytes]` records, back to back.
fn encode_batch<'a>(records: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, bytes) in records {
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn decode_batch(mut bytes: &[u8], out: &mut Vec<(u64, Vec<u8>)>) -> Result<(), String> {
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err("truncated record".into());
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "bad record")?);
        let len = u32::from_le_bytes(bytes[8..12].try_into().map_err(|_| "bad record")?) as usize;
        let body = bytes.get(12..12 + len).ok_or("truncated record")?;
        out.push((n, body.to_vec()));
        bytes = &bytes[12 + len..];
    }
    Ok(())
}
const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// The simulated world's messages: (account, message number) → the sim's record.
const SIM: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("sim_messages");

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("state file {path} is in use by another botbridge")]
    InUse { path: PathBuf },
    #[error("state file {path} is corrupt or not a state file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("state file {path} belongs to something else than botbridge")]
    Foreign { path: PathBuf },
    #[error("state file {path} has format {found}; this botbridge reads format {FORMAT} (is it older than the file?)")]
    Newer { path: PathBuf, found: u32 },
    #[error("state file: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

#[derive(Default)]
struct Pending {
    ids: Vec<(u64, Vec<u8>)>,
    /// Drop ids below this serial.
    ids_below: u64,
    events: Vec<(u64, String)>,
    /// Drop events below this `seq`.
    events_from: u64,
    /// Bytes of `events`.
    events_bytes: usize,
    /// Sim messages to write (Some) or forget (None), by (account, number).
    sim: Vec<((i64, i64), Option<Vec<u8>>)>,
}

/// What was on disk at start-up.
pub struct Restored {
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

pub struct Durable {
    path: PathBuf,
    db: Database,
    pending: Mutex<Pending>,
    /// One commit at a time, so "everything recorded before" is well defined.
    committing: Mutex<()>,
}

impl Durable {
    /// Opens (or creates) `dir/botbridge.redb`.
    pub fn open(dir: &Path) -> Result<(Arc<Self>, Restored), StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Folder { path: dir.to_owned(), source })?;
        let path = dir.join("botbridge.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StateError::InUse { path: path.clone() },
            other => StateError::Corrupt { path: path.clone(), message: other.to_string() },
        })?;
        let key = Self::check_meta(&db, &path)?;
        let read = db.begin_read().map_err(storage)?;
        let batches = |table: TableDefinition<u64, &[u8]>| -> Result<Vec<(u64, Vec<u8>)>, StateError> {
            let mut out = Vec::new();
            match read.open_table(table) {
                Ok(t) => {
                    for row in t.iter().map_err(storage)? {
                        let (_, v) = row.map_err(storage)?;
                        decode_batch(v.value(), &mut out)
                            .map_err(|message| StateError::Corrupt { path: path.clone(), message })?;
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(storage(e)),
            }
            out.sort_by_key(|(n, _)| *n);
            out.dedup_by_key(|(n, _)| *n);
            Ok(out)
        };
        let pruned_below = {
            let meta = read.open_table(META).map_err(storage)?;
            meta.get("ids_below")
                .map_err(storage)?
                .and_then(|v| v.value().try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let mut ids = batches(IDS)?;
        ids.retain(|(serial, _)| *serial >= pruned_below);
        let events = batches(EVENTS)?
            .into_iter()
            .filter_map(|(seq, json)| String::from_utf8(json).ok().map(|j| (seq, j)))
            .collect::<Vec<_>>();
        let counter = |name: &str| -> Result<u64, StateError> {
            match read.open_table(META) {
                Ok(meta) => Ok(meta
                    .get(name)
                    .map_err(storage)?
                    .and_then(|v| v.value().try_into().ok())
                    .map(u64::from_le_bytes)
                    .unwrap_or(0)),
                Err(e) => Err(storage(e)),
            }
        };
        // After a crash, skip what may have been handed out uncommitted; after a
        // clean stop (or on a new file) nothing was.
        let clean = counter("clean")? == 1 || (ids.is_empty() && events.is_empty() && counter("next_seq")? == 0);
        let gap = if clean { 0 } else { 2 * MAX_UNCOMMITTED as u64 };
        let next_serial = counter("next_serial")?.max(ids.last().map(|(s, _)| s + 1).unwrap_or(0)) + gap;
        let next_seq = counter("next_seq")?.max(events.last().map(|(s, _)| s + 1).unwrap_or(1)) + gap;
        let mut sim = Vec::new();
        match read.open_table(SIM) {
            Ok(t) => {
                for row in t.iter().map_err(storage)? {
                    let (k, v) = row.map_err(storage)?;
                    sim.push((k.value(), v.value().to_vec()));
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(storage(e)),
        }
        drop(read);
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(META).map_err(storage)?.insert("clean", 0u64.to_le_bytes().as_slice()).map_err(storage)?;
        txn.commit().map_err(storage)?;
        let durable = Arc::new(Self { path, db, pending: Mutex::new(Pending::default()), committing: Mutex::new(()) });
        Ok((durable, Restored { key, ids, events, next_serial, next_seq, sim }))
    }

    /// Checks the file is ours and not newer; writes the meta of a new file.
    fn check_meta(db: &Database, path: &Path) -> Result<[u8; 32], StateError> {
        let read = db.begin_read().map_err(storage)?;
        let found = match read.open_table(META) {
            Ok(meta) => {
                let get = |k: &str| meta.get(k).map(|v| v.map(|v| v.value().to_vec())).map_err(storage);
                if get("magic")?.as_deref() != Some(MAGIC) {
                    return Err(StateError::Foreign { path: path.to_owned() });
                }
                let format = get("format")?.and_then(|f| f.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0);
                if format > FORMAT {
                    return Err(StateError::Newer { path: path.to_owned(), found: format });
                }
                let key: [u8; 32] = get("key")?
                    .and_then(|k| k.try_into().ok())
                    .ok_or_else(|| StateError::Corrupt { path: path.to_owned(), message: "no registry key".into() })?;
                Some(key)
            }
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(storage(e)),
        };
        drop(read);
        if let Some(key) = found {
            return Ok(key);
        }
        // A fresh file: nothing else may be in it.
        let read = db.begin_read().map_err(storage)?;
        if read.list_tables().map_err(storage)?.next().is_some() {
            return Err(StateError::Foreign { path: path.to_owned() });
        }
        drop(read);
        let key: [u8; 32] = rand::random();
        let txn = db.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert("magic", MAGIC).map_err(storage)?;
            meta.insert("format", FORMAT.to_le_bytes().as_slice()).map_err(storage)?;
            meta.insert("key", key.as_slice()).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(key)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a registry entry for the next commit.
    pub fn record_id(&self, serial: u64, entry: Vec<u8>) {
        let full = {
            let mut p = self.pending.lock();
            p.ids.push((serial, entry));
            p.ids.len() >= MAX_UNCOMMITTED
        };
        if full && let Err(e) = self.commit() {
            tracing::error!("state commit failed: {e}");
        }
    }

    /// Registry entries below `serial` are gone.
    pub fn prune_ids(&self, below: u64) {
        let mut p = self.pending.lock();
        p.ids_below = p.ids_below.max(below);
    }

    /// Records an event for the next commit; events below `keep_from` go.
    pub fn record_event(&self, seq: u64, json: String, keep_from: u64) {
        let full = {
            let mut p = self.pending.lock();
            p.events_bytes += json.len();
            p.events.push((seq, json));
            p.events_from = keep_from;
            p.events.len() >= MAX_UNCOMMITTED || p.events_bytes >= MAX_UNCOMMITTED_BYTES
        };
        if full && let Err(e) = self.commit() {
            tracing::error!("state commit failed: {e}");
        }
    }

    /// Records a sim message (or, with None, that it is forgotten) for the next commit.
    pub fn record_sim(&self, account: i64, number: i64, record: Option<Vec<u8>>) {
        self.pending.lock().sim.push(((account, number), record));
    }

    /// Writes everything recorded so far, durably. Blocks for an fsync.
    pub fn commit(&self) -> Result<(), StateError> {
        let _one = self.committing.lock();
        let batch = std::mem::take(&mut *self.pending.lock());
        if batch.ids.is_empty() && batch.events.is_empty() && batch.ids_below == 0 && batch.sim.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut ids = txn.open_table(IDS).map_err(storage)?;
            if let Some(last) = batch.ids.iter().map(|(s, _)| *s).max() {
                let row = encode_batch(batch.ids.iter().map(|(s, e)| (*s, e.as_slice())));
                ids.insert(last, row.as_slice()).map_err(storage)?;
            }
            if batch.ids_below > 0 {
                // Rows are keyed by their last serial: these hold only pruned entries.
                ids.retain_in(..batch.ids_below, |_, _| false).map_err(storage)?;
            }
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            if let Some((last, _)) = batch.events.last() {
                let row = encode_batch(batch.events.iter().map(|(s, j)| (*s, j.as_bytes())));
                events.insert(last, row.as_slice()).map_err(storage)?;
                // Rows are keyed by their last `seq`: these hold only dropped events.
                events.retain_in(..batch.events_from, |_, _| false).map_err(storage)?;
            }
        }
        if !batch.sim.is_empty() {
            let mut sim = txn.open_table(SIM).map_err(storage)?;
            for (key, record) in &batch.sim {
                match record {
                    Some(bytes) => sim.insert(key, bytes.as_slice()).map(drop).map_err(storage)?,
                    None => sim.remove(key).map(drop).map_err(storage)?,
                }
            }
        }
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            if batch.ids_below > 0 {
                meta.insert("ids_below", batch.ids_below.to_le_bytes().as_slice()).map_err(storage)?;
            }
            if let Some(next) = batch.ids.iter().map(|(s, _)| s + 1).max() {
                meta.insert("next_serial", next.to_le_bytes().as_slice()).map_err(storage)?;
            }
            if let Some((last, _)) = batch.events.last() {
                meta.insert("next_seq", (last + 1).to_le_bytes().as_slice()).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)
    }

    /// Commits what is pending and marks the file as cleanly closed.
    pub fn close(&self) -> Result<(), StateError> {
        self.commit()?;
        let _one = self.committing.lock();
        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(META).map_err(storage)?.insert("clean", 1u64.to_le_bytes().as_slice()).map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Commits every `GROUP_COMMIT` on a thread of its own, while this lives.
    pub fn spawn_group_commit(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("state-commit".into()).spawn(move || {
            while let Some(durable) = weak.upgrade() {
                if let Err(e) = durable.commit() {
                    tracing::error!("state commit failed: {e}");
                }
                drop(durable);
                std::thread::sleep(GROUP_COMMIT);
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the group-commit thread: {e}");
        }
    }

    /// Bot `bot`'s keys.
    pub fn kv_load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(KV) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(e) => return Err(storage(e)),
        };
        let range = table.range((bot, "")..).map_err(storage)?;
        let mut out = BTreeMap::new();
        for item in range {
            let (k, v) = item.map_err(storage)?;
            let (owner, key) = k.value();
            if owner != bot {
                break;
            }
            out.insert(key.to_owned(), v.value().to_vec());
        }
        Ok(out)
    }

    /// Sets (or with `None` deletes) one key, durably.
    pub fn kv_write(&self, bot: &str, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(KV).map_err(storage)?;
            match value {
                Some(v) => {
                    table.insert((bot, key), v).map_err(storage)?;
                }
                None => {
                    table.remove((bot, key)).map_err(storage)?;
                }
            }
        }
        txn.commit().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let key = {
            let (d, restored) = Durable::open(dir.path()).unwrap();
            for i in 0..10 {
                d.record_id(i, vec![i as u8]);
                d.record_event(i + 1, format!("e{i}"), (i + 1).saturating_sub(3).max(1));
            }
            d.prune_ids(3);
            d.commit().unwrap();
            d.kv_write("bot", "k", Some(b"v")).unwrap();
            d.kv_write("bot", "gone", Some(b"x")).unwrap();
            d.kv_write("bot", "gone", None).unwrap();
            d.kv_write("botty", "k", Some(b"other")).unwrap();
            restored.key
        };
        let (d, restored) = Durable::open(dir.path()).unwrap();
        assert_eq!(restored.key, key);
        assert_eq!(restored.ids.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (3..10).collect::<Vec<_>>());
        // Whole batches are kept or dropped; the bus trims to its buffer size.
        assert!(restored.events.iter().map(|(s, _)| *s).collect::<Vec<_>>().ends_with(&[7, 8, 9, 10]));
        let kv = d.kv_load("bot").unwrap();
        assert_eq!(kv.into_iter().collect::<Vec<_>>(), vec![("k".to_string(), b"v".to_vec())]);
    }

    #[test]
    fn foreign_corrupt_and_newer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("botbridge.redb"), b"this is not a database at all, not even close").unwrap();
        assert!(matches!(Durable::open(dir.path()), Err(StateError::Corrupt { .. })), "garbage");

        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join("botbridge.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(TableDefinition::<&str, u64>::new("orders")).unwrap().insert("x", 1).unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(Durable::open(dir.path()), Err(StateError::Foreign { .. })), "another program's redb");

        let dir = tempfile::tempdir().unwrap();
        drop(Durable::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join("botbridge.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", 99u32.to_le_bytes().as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let err = Durable::open(dir.path()).err().expect("newer refused");
        assert!(matches!(err, StateError::Newer { found: 99, .. }), "{err}");
    }
}
