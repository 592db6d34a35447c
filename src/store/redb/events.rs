//! The bus's tenant: event frames in batches, keyed by the batch's highest
//! `seq`, trimmed to the replay window.

use std::path::Path;

use redb::{TableDefinition, WriteTransaction};

use super::{RedbStore, encode_batch, raise_meta_u64, read_batches, storage};
use crate::bus::Json;
use crate::store::{EventLog, StateError};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

#[derive(Default)]
pub(super) struct Pending {
    frames: Vec<(u64, Json)>,
    /// Drop events below this `seq`.
    keep_from: u64,
    /// Bytes of `frames`.
    bytes: usize,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn append(&mut self, newer: Self) {
        self.frames.extend(newer.frames);
        self.keep_from = self.keep_from.max(newer.keep_from);
        self.bytes += newer.bytes;
    }

    /// Empties it, keeping its room for the next batch.
    pub(super) fn clear(&mut self) {
        self.frames.clear();
        self.keep_from = 0;
        self.bytes = 0;
    }
}

/// Stored events (`seq`, frame JSON), ascending.
pub(super) fn restore(read: &redb::ReadTransaction, path: &Path) -> Result<Vec<(u64, String)>, StateError> {
    Ok(read_batches(read, EVENTS, path)?
        .into_iter()
        .filter_map(|(seq, json)| String::from_utf8(json).ok().map(|j| (seq, j)))
        .collect())
}

pub(super) fn write(txn: &WriteTransaction, batch: &Pending) -> Result<(), StateError> {
    let Some(last) = batch.frames.iter().map(|(s, _)| *s).max() else { return Ok(()) };
    let mut table = txn.open_table(EVENTS).map_err(storage)?;
    let row = encode_batch(batch.frames.iter().map(|(s, j)| (*s, j.as_str().as_bytes())));
    table.insert(last, row.as_slice()).map_err(storage)?;
    // Rows are keyed by their last `seq`: these hold only dropped events.
    table.retain_in(..batch.keep_from, |_, _| false).map_err(storage)?;
    raise_meta_u64(txn, "next_seq", last + 1)
}

impl EventLog for RedbStore {
    fn record(&self, seq: u64, json: Json, keep_from: u64) {
        self.queue(|p| {
            let e = &mut p.events;
            e.bytes += json.len();
            e.frames.push((seq, json));
            e.keep_from = e.keep_from.max(keep_from);
        });
    }
}
