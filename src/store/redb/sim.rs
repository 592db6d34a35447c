//! The simulated world's tenant: its messages by (account, number), so a
//! recall after a restart finds its message.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{RedbStore, storage};
use crate::store::{SimLog, StateError};

/// (account, message number).
type Key = (i64, i64);

const SIM: TableDefinition<Key, &[u8]> = TableDefinition::new("sim_messages");

/// Messages to write (Some) or forget (None), by (account, number).
#[derive(Default)]
pub(super) struct Pending(Vec<(Key, Option<Vec<u8>>)>);

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
}

pub(super) fn restore(read: &redb::ReadTransaction) -> Result<Vec<(Key, Vec<u8>)>, StateError> {
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
    Ok(sim)
}

pub(super) fn write(txn: &WriteTransaction, batch: &Pending) -> Result<(), StateError> {
    if batch.0.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(SIM).map_err(storage)?;
    for (key, record) in &batch.0 {
        match record {
            Some(bytes) => table.insert(key, bytes.as_slice()).map(drop).map_err(storage)?,
            None => table.remove(key).map(drop).map_err(storage)?,
        }
    }
    Ok(())
}

impl SimLog for RedbStore {
    fn record(&self, account: i64, number: i64, record: Option<Vec<u8>>) {
        self.queue(|p| p.sim.0.push(((account, number), record)));
    }
}
