//! Each bot's key-value data: a bucket in memory, written through to the
//! store (each write durable before it returns) so it survives hot reloads,
//! restarts and crashes. Bounded per bot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::store::{KvStore, StateError};

pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 64 * 1024;
pub const MAX_TOTAL: usize = 4 * 1024 * 1024;

/// Why a kv write was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("key longer than {MAX_KEY} bytes")]
    KeyTooLong,
    #[error("value larger than {MAX_VALUE} bytes")]
    ValueTooLarge,
    #[error("the bot's store would exceed {MAX_TOTAL} bytes")]
    Full,
    #[error("the value could not be stored")]
    Store(#[from] StateError),
}

/// Every bot's bucket.
pub struct Buckets {
    store: Option<Arc<dyn KvStore>>,
    loaded: Mutex<HashMap<String, Arc<Bucket>>>,
}

/// One bot's keys.
pub struct Bucket {
    bot: String,
    store: Option<Arc<dyn KvStore>>,
    map: Mutex<Map>,
    /// One write at a time, so the size check and the store agree.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Map {
    entries: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl Buckets {
    /// `store` None keeps everything in memory only.
    pub fn new(store: Option<Arc<dyn KvStore>>) -> Self {
        Self { store, loaded: Mutex::new(HashMap::new()) }
    }

    /// The bucket of bot `name`, loaded from the store on first use.
    pub async fn bucket(&self, name: &str) -> Arc<Bucket> {
        if let Some(b) = self.loaded.lock().get(name) {
            return b.clone();
        }
        let entries = match &self.store {
            Some(store) => store.load(name).await.unwrap_or_else(|e| {
                tracing::error!(bot = name, "kv unreadable, starting empty: {}", crate::error_chain(&e));
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let bytes = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        let bucket = Arc::new(Bucket {
            bot: name.to_owned(),
            store: self.store.clone(),
            map: Mutex::new(Map { entries, bytes }),
            writing: tokio::sync::Mutex::new(()),
        });
        self.loaded.lock().entry(name.to_owned()).or_insert(bucket).clone()
    }

    /// The bucket of bot `name` if it is loaded (a bot that ran since start-up).
    pub fn loaded(&self, name: &str) -> Option<Arc<Bucket>> {
        self.loaded.lock().get(name).cloned()
    }
}

impl Bucket {
    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.map.lock().bytes
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.lock().entries.get(key).cloned()
    }

    /// Stores `value`; durable when this returns `Ok`.
    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        if key.len() > MAX_KEY {
            return Err(KvError::KeyTooLong);
        }
        if value.len() > MAX_VALUE {
            return Err(KvError::ValueTooLarge);
        }
        let _one = self.writing.lock().await;
        let total = {
            let map = self.map.lock();
            let old = map.entries.get(&key).map(|v| key.len() + v.len()).unwrap_or(0);
            map.bytes - old + key.len() + value.len()
        };
        if total > MAX_TOTAL {
            return Err(KvError::Full);
        }
        if let Some(store) = &self.store {
            store.write(&self.bot, &key, Some(value.clone())).await?;
        }
        let mut map = self.map.lock();
        map.entries.insert(key, value);
        map.bytes = total;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let _one = self.writing.lock().await;
        if let Some(store) = &self.store {
            store.write(&self.bot, key, None).await?;
        }
        let mut map = self.map.lock();
        if let Some(v) = map.entries.remove(key) {
            map.bytes -= key.len() + v.len();
        }
        Ok(())
    }

    pub fn list(&self, prefix: &str) -> Vec<String> {
        let map = self.map.lock();
        map.entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}
