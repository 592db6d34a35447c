//! The simulated world's tenant: its messages by (account, number), so a
//! recall after a restart finds its message. Messages are kept in chunks of
//! `CHUNK` consecutive numbers, one row each: a commit rewrites the few
//! chunks it touches (the newest, where messages arrive, and the oldest,
//! where they are forgotten) instead of inserting and deleting a B-tree row
//! per message, and a chunk with nothing left in it is removed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{RedbStore, decode_batch, encode_batch, storage};
use crate::store::{Record, SimLog, StateError};

/// (account, message number).
type Key = (i64, i64);

/// Messages per chunk: a chunk is rewritten whole when one of them changes.
const CHUNK: i64 = 256;

/// (account, number / CHUNK) → `encode_batch` records, number → message.
const CHUNKS: TableDefinition<Key, &[u8]> = TableDefinition::new("sim_chunks");
/// The first format's table, a row per message: read once and moved into chunks.
const OLD_MESSAGES: TableDefinition<Key, &[u8]> = TableDefinition::new("sim_messages");

/// Messages to write (Some, encoded when written) or forget (None), by
/// (account, number).
#[derive(Default)]
pub(super) struct Pending(Vec<(Key, Option<Arc<dyn Record>>)>);

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn append(&mut self, newer: Self) {
        self.0.extend(newer.0);
    }

    /// Empties it, keeping its room for the next batch.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

/// A message number and what it becomes (None: forgotten).
type Change<'a> = (i64, Option<&'a [u8]>);

fn chunk_of((account, number): Key) -> Key {
    (account, number.div_euclid(CHUNK))
}

/// Every kept message, ascending by (account, number).
pub(super) fn restore(read: &redb::ReadTransaction, path: &Path) -> Result<Vec<(Key, Vec<u8>)>, StateError> {
    let mut sim = Vec::new();
    match read.open_table(CHUNKS) {
        Ok(t) => {
            let mut records = Vec::new();
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                let (account, _) = k.value();
                records.clear();
                decode_batch(v.value(), &mut records)
                    .map_err(|what| StateError::BadRecord { path: path.to_owned(), what })?;
                sim.extend(records.drain(..).map(|(number, bytes)| ((account, number as i64), bytes)));
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    Ok(sim)
}

/// Moves a first-format file's messages into chunks, in one transaction.
/// A file without the old table is only read: no write, no fsync.
pub(super) fn upgrade(db: &Database) -> Result<(), StateError> {
    let mut old = Pending::default();
    let read = db.begin_read().map_err(storage)?;
    match read.open_table(OLD_MESSAGES) {
        Ok(t) => {
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                old.0.push((k.value(), Some(Arc::new(v.value().to_vec()))));
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage(e)),
    }
    drop(read);
    let txn = db.begin_write().map_err(storage)?;
    write(&txn, &old)?;
    txn.delete_table(OLD_MESSAGES).map_err(storage)?;
    txn.commit().map_err(storage)
}

pub(super) fn write(txn: &WriteTransaction, batch: &Pending) -> Result<(), StateError> {
    if batch.0.is_empty() {
        return Ok(());
    }
    let encoded: Vec<(Key, Option<Vec<u8>>)> =
        batch.0.iter().map(|(k, r)| (*k, r.as_ref().map(|r| r.encode()))).collect();
    // The batch's records by chunk, in the order they came (the last one wins).
    let mut by_chunk: BTreeMap<Key, Vec<Change<'_>>> = BTreeMap::new();
    for (key, record) in &encoded {
        by_chunk.entry(chunk_of(*key)).or_default().push((key.1, record.as_deref()));
    }
    let mut table = txn.open_table(CHUNKS).map_err(storage)?;
    let mut kept = Vec::new();
    for (chunk, records) in by_chunk {
        kept.clear();
        if let Some(row) = table.get(chunk).map_err(storage)? {
            // Written by this build, so well formed; a bad one is rebuilt from the batch.
            let _ = decode_batch(row.value(), &mut kept);
        }
        let mut messages: BTreeMap<u64, &[u8]> = kept.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        for (number, record) in records {
            match record {
                Some(bytes) => messages.insert(number as u64, bytes),
                None => messages.remove(&(number as u64)),
            };
        }
        if messages.is_empty() {
            table.remove(chunk).map_err(storage)?;
        } else {
            let row = encode_batch(messages.iter().map(|(n, b)| (*n, *b)));
            table.insert(chunk, row.as_slice()).map_err(storage)?;
        }
    }
    Ok(())
}

impl SimLog for RedbStore {
    fn record(&self, account: i64, number: i64, record: Option<Arc<dyn Record>>) {
        self.queue(|p| p.sim.0.push(((account, number), record)));
    }
}
