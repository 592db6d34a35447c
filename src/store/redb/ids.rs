//! The registry's tenant: ID entries in batches, keyed by the batch's highest
//! serial, pruned below the registry's oldest live serial.

use std::path::Path;

use async_trait::async_trait;
use redb::{TableDefinition, WriteTransaction};

use super::{RedbStore, encode_batch, meta_u64, raise_meta_u64, read_batches, storage};
use crate::store::{IdLog, StateError};

const IDS: TableDefinition<u64, &[u8]> = TableDefinition::new("ids");

#[derive(Default)]
pub(super) struct Pending {
    entries: Vec<(u64, Vec<u8>)>,
    /// Drop entries below this serial.
    below: u64,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.below == 0
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn append(&mut self, newer: Self) {
        self.entries.extend(newer.entries);
        self.below = self.below.max(newer.below);
    }

    /// Empties it, keeping its room for the next batch.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.below = 0;
    }
}

/// Live entries, ascending.
pub(super) fn restore(read: &redb::ReadTransaction, path: &Path) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
    let pruned_below = meta_u64(read, "ids_below")?;
    let mut ids = read_batches(read, IDS, path)?;
    ids.retain(|(serial, _)| *serial >= pruned_below);
    Ok(ids)
}

pub(super) fn write(txn: &WriteTransaction, batch: &Pending) -> Result<(), StateError> {
    let mut table = txn.open_table(IDS).map_err(storage)?;
    if let Some(last) = batch.entries.iter().map(|(s, _)| *s).max() {
        let row = encode_batch(batch.entries.iter().map(|(s, e)| (*s, e.as_slice())));
        table.insert(last, row.as_slice()).map_err(storage)?;
        raise_meta_u64(txn, "next_serial", last + 1)?;
    }
    if batch.below > 0 {
        // Rows are keyed by their last serial: these hold only pruned entries.
        table.retain_in(..batch.below, |_, _| false).map_err(storage)?;
        raise_meta_u64(txn, "ids_below", batch.below)?;
    }
    Ok(())
}

#[async_trait]
impl IdLog for RedbStore {
    fn record(&self, serial: u64, entry: Vec<u8>) {
        self.queue(|p| p.ids.entries.push((serial, entry)));
    }

    fn prune(&self, below: u64) {
        self.queue(|p| p.ids.below = p.ids.below.max(below));
    }

    async fn commit(&self) -> Result<(), StateError> {
        RedbStore::commit(self).await
    }
}
