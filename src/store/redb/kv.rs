//! The bots' tenant: every bot's keys, `(bot, key) → value`, each write its
//! own transaction (on a blocking thread), durable before it returns.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redb::{ReadableDatabase, TableDefinition};

use super::{RedbStore, Shared, storage};
use crate::store::{KvStore, StateError};

const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

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

    fn kv_write(&self, bot: &str, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(KV).map_err(storage)?;
            match value {
                Some(v) => table.insert((bot, key), v).map(drop).map_err(storage)?,
                None => table.remove((bot, key)).map(drop).map_err(storage)?,
            }
        }
        txn.commit().map_err(storage)
    }
}

#[async_trait]
impl KvStore for RedbStore {
    async fn load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let (shared, bot) = (self.0.clone(), bot.to_owned());
        tokio::task::spawn_blocking(move || shared.kv_load(&bot)).await?
    }

    async fn write(&self, bot: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StateError> {
        let (shared, bot, key) = (self.0.clone(), bot.to_owned(), key.to_owned());
        tokio::task::spawn_blocking(move || shared.kv_write(&bot, &key, value.as_deref())).await?
    }
}
