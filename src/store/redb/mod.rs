//! The default store: one redb file, `STATE_DIR/botbridge.redb`, holding every
//! tenant's table. Records from all tenants wait in one pending batch and go to
//! disk in one transaction, on a thread of its own (`commit`): as soon as
//! someone waits for them (`IdLog::commit`, a kv write), else at most
//! `GROUP_COMMIT` later. Each tenant's table, restore and write are in a file
//! of its own.

mod commit;
mod events;
mod ids;
mod kv;
mod sim;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use self::commit::Committer;
use super::{Restored, StateError};

/// Longest delay before an ID or event handed out in an event is on disk.
pub const GROUP_COMMIT: Duration = Duration::from_millis(50);
/// Most records waiting for a group commit: past half of it a commit starts at
/// once, at it the recorder waits. So at most twice this many serials or `seq`s
/// can be lost in a crash.
pub const MAX_UNCOMMITTED: usize = 65_536;
/// Most event and kv bytes waiting for a group commit, likewise.
pub const MAX_UNCOMMITTED_BYTES: usize = 32 << 20;
/// State file format this build reads and writes.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8] = b"botbridge state";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `[number u64 LE][length u32 LE][bytes]` records, back to back. Registry
/// entries and events are written a commit's worth to a row (keyed by the
/// batch's highest number): one B-tree insert per commit, not per record.
fn encode_batch<'a>(records: impl Iterator<Item = (u64, &'a [u8])> + Clone) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.clone().map(|(_, b)| 12 + b.len()).sum());
    for (n, bytes) in records {
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn decode_batch(mut bytes: &[u8], out: &mut Vec<(u64, Vec<u8>)>) -> Result<(), &'static str> {
    while !bytes.is_empty() {
        let (Some(n), Some(len)) = (bytes.get(..8), bytes.get(8..12)) else { return Err("truncated record") };
        let n = u64::from_le_bytes(n.try_into().map_err(|_| "bad record")?);
        let len = u32::from_le_bytes(len.try_into().map_err(|_| "bad record")?) as usize;
        let body = bytes.get(12..12 + len).ok_or("truncated record")?;
        out.push((n, body.to_vec()));
        bytes = &bytes[12 + len..];
    }
    Ok(())
}

/// Every row of a batched table, decoded, ascending and without repeats.
fn read_batches(
    read: &redb::ReadTransaction,
    table: TableDefinition<u64, &[u8]>,
    path: &Path,
) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
    let mut out = Vec::new();
    match read.open_table(table) {
        Ok(t) => {
            for row in t.iter().map_err(storage)? {
                let (_, v) = row.map_err(storage)?;
                decode_batch(v.value(), &mut out)
                    .map_err(|what| StateError::BadRecord { path: path.to_owned(), what })?;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    out.sort_by_key(|(n, _)| *n);
    out.dedup_by_key(|(n, _)| *n);
    Ok(out)
}

fn storage(e: impl Into<redb::Error>) -> StateError {
    StateError::Storage(e.into())
}

/// A `u64` from the meta table (0 when absent).
fn meta_u64(read: &redb::ReadTransaction, name: &str) -> Result<u64, StateError> {
    let meta = read.open_table(META).map_err(storage)?;
    Ok(meta.get(name).map_err(storage)?.and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes).unwrap_or(0))
}

fn put_meta_u64(txn: &redb::WriteTransaction, name: &str, value: u64) -> Result<(), StateError> {
    txn.open_table(META).map_err(storage)?.insert(name, value.to_le_bytes().as_slice()).map_err(storage)?;
    Ok(())
}

/// Raises a counter in the meta table: records may arrive out of order (they
/// are made outside the tenants' locks), and a counter never goes back.
fn raise_meta_u64(txn: &redb::WriteTransaction, name: &str, value: u64) -> Result<(), StateError> {
    let mut meta = txn.open_table(META).map_err(storage)?;
    let old = meta.get(name).map_err(storage)?.and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes);
    if old.is_none_or(|old| old < value) {
        meta.insert(name, value.to_le_bytes().as_slice()).map_err(storage)?;
    }
    Ok(())
}

/// Everything recorded since the last commit, from every tenant.
#[derive(Default)]
struct Pending {
    ids: ids::Pending,
    events: events::Pending,
    sim: sim::Pending,
    kv: kv::Pending,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.events.is_empty() && self.sim.is_empty() && self.kv.is_empty()
    }

    /// Records and bytes waiting, for the caps.
    fn size(&self) -> (usize, usize) {
        let records = self.ids.len() + self.events.len() + self.sim.len() + self.kv.len();
        (records, self.events.bytes() + self.kv.bytes())
    }

    /// Adds `newer`'s records after these.
    fn append(&mut self, newer: Pending) {
        self.ids.append(newer.ids);
        self.events.append(newer.events);
        self.sim.append(newer.sim);
        self.kv.append(newer.kv);
    }

    /// Empties it, keeping its room: the commit thread hands a written batch
    /// back for the next one, so a burst does not grow fresh vectors (and
    /// fault in fresh pages) for every commit.
    fn clear(&mut self) {
        self.ids.clear();
        self.events.clear();
        self.sim.clear();
        self.kv.clear();
    }
}

/// A handle on the open state file; clones share it.
#[derive(Clone)]
pub struct RedbStore(Arc<Shared>);

struct Shared {
    path: PathBuf,
    db: Database,
    committer: Arc<Committer>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.committer.close();
    }
}

impl RedbStore {
    /// Opens (or creates) `dir/botbridge.redb` and starts its commit thread.
    pub fn open(dir: &Path) -> Result<(Self, Restored), StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Folder { path: dir.to_owned(), source })?;
        let path = dir.join("botbridge.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StateError::InUse { path: path.clone() },
            source => StateError::Corrupt { path: path.clone(), source },
        })?;
        let key = Self::check_meta(&db, &path)?;
        sim::upgrade(&db)?;
        let read = db.begin_read().map_err(storage)?;
        let ids = ids::restore(&read, &path)?;
        let events = events::restore(&read, &path)?;
        // After a crash, skip what may have been handed out uncommitted; after a
        // clean stop (or on a new file) nothing was.
        let clean = meta_u64(&read, "clean")? == 1
            || (ids.is_empty() && events.is_empty() && meta_u64(&read, "next_seq")? == 0);
        let gap = if clean { 0 } else { 2 * MAX_UNCOMMITTED as u64 };
        let next_serial = meta_u64(&read, "next_serial")?.max(ids.last().map(|(s, _)| s + 1).unwrap_or(0)) + gap;
        let next_seq = meta_u64(&read, "next_seq")?.max(events.last().map(|(s, _)| s + 1).unwrap_or(1)) + gap;
        let sim = sim::restore(&read, &path)?;
        drop(read);
        let txn = db.begin_write().map_err(storage)?;
        put_meta_u64(&txn, "clean", 0)?;
        txn.commit().map_err(storage)?;
        let committer = Committer::new();
        let shared = Arc::new(Shared { path, db, committer: committer.clone() });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("state-commit".into())
            .spawn(move || committer.run(weak))
            .map_err(StateError::Thread)?;
        Ok((Self(shared), Restored { key, ids, events, next_serial, next_seq, sim }))
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
                    .ok_or_else(|| StateError::BadRecord { path: path.to_owned(), what: "no registry key" })?;
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
        &self.0.path
    }

    /// Writes everything recorded so far, durably. Blocks this thread.
    pub fn commit_now(&self) -> Result<(), StateError> {
        let committer = &self.0.committer;
        committer.wait_blocking(committer.ticket())
    }

    /// How long each commit took (a histogram `/metrics` shows).
    pub fn commit_seconds(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.0.committer.seconds.clone()
    }

    /// Commits made so far (each one transaction and one fsync).
    pub fn commits(&self) -> u64 {
        self.0.committer.commits()
    }

    /// Commits what is pending, stops the commit thread and marks the file as
    /// cleanly closed.
    pub fn close(&self) -> Result<(), StateError> {
        self.commit_now()?;
        self.0.committer.close();
        let txn = self.0.db.begin_write().map_err(storage)?;
        put_meta_u64(&txn, "clean", 1)?;
        txn.commit().map_err(storage)
    }

    /// Adds to the pending batch (see `Committer::record`).
    fn queue(&self, add: impl FnOnce(&mut Pending)) {
        self.0.committer.record(add);
    }

    /// Waits, without blocking a thread, until everything recorded so far is
    /// durable; shares the commit with everyone else waiting.
    async fn commit(&self) -> Result<(), StateError> {
        let committer = &self.0.committer;
        committer.wait(committer.ticket()).await
    }
}

impl Shared {
    /// One batch, one transaction.
    fn write(&self, batch: &Pending) -> Result<(), StateError> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(storage)?;
        ids::write(&txn, &batch.ids)?;
        events::write(&txn, &batch.events)?;
        sim::write(&txn, &batch.sim)?;
        kv::write(&txn, &batch.kv)?;
        txn.commit().map_err(storage)
    }
}
