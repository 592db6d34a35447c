//! The bots' tenant: every bot's keys, `(bot, key) → value`. A write joins the
//! pending batch and returns once its commit is durable, so writes from many
//! bots share one fsync, and a write is never durable before an ID the bot was
//! given earlier.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redb::{ReadableDatabase, TableDefinition, WriteTransaction};

use super::{RedbStore, Shared, storage};
use crate::store::{KvStore, StateError};

const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

/// Keys to set (Some) or delete (None), in order.
#[derive(Default)]
pub(super) struct Pending {
    writes: Vec<(String, String, Option<Vec<u8>>)>,
    bytes: usize,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn append(&mut self, newer: Self) {
        self.writes.extend(newer.writes);
        self.bytes += newer.bytes;
    }

    /// Empties it, keeping its room for the next batch.
    pub(super) fn clear(&mut self) {
        self.writes.clear();
        self.bytes = 0;
    }
}

pub(super) fn write(txn: &WriteTransaction, batch: &Pending) -> Result<(), StateError> {
    if batch.writes.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(KV).map_err(storage)?;
    for (bot, key, value) in &batch.writes {
        match value {
            Some(v) => table.insert((bot.as_str(), key.as_str()), v.as_slice()).map(drop).map_err(storage)?,
            None => table.remove((bot.as_str(), key.as_str())).map(drop).map_err(storage)?,
        }
    }
    Ok(())
}

impl Shared {
    fn kv_load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(KV) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = BTreeMap::new();
        for item in table.range((bot, "")..).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let (owner, key) = k.value();
            if owner != bot {
                break;
            }
            out.insert(key.to_owned(), v.value().to_vec());
        }
        Ok(out)
    }
}

#[async_trait]
impl KvStore for RedbStore {
    async fn load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let (shared, bot) = (self.0.clone(), bot.to_owned());
        tokio::task::spawn_blocking(move || shared.kv_load(&bot)).await?
    }

    async fn write(&self, bot: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StateError> {
        let size = bot.len() + key.len() + value.as_ref().map_or(0, Vec::len);
        self.queue(|p| {
            p.kv.writes.push((bot.to_owned(), key.to_owned(), value));
            p.kv.bytes += size;
        });
        self.commit().await
    }
}
