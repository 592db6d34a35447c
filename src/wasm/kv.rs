//! Each bot's key-value store: in memory, written through to the state file
//! (each write committed before it returns) so it survives hot reloads,
//! restarts and crashes. Bounded per bot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::store::Durable;

pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 64 * 1024;
pub const MAX_TOTAL: usize = 4 * 1024 * 1024;

/// Every bot's bucket.
pub struct KvStore {
    durable: Option<Arc<Durable>>,
    buckets: Mutex<HashMap<String, Arc<Mutex<Bucket>>>>,
}

/// One bot's keys.
pub struct Bucket {
    bot: String,
    durable: Option<Arc<Durable>>,
    map: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl KvStore {
    /// `durable` None keeps everything in memory only.
    pub fn new(durable: Option<Arc<Durable>>) -> Self {
        Self { durable, buckets: Mutex::new(HashMap::new()) }
    }

    /// The bucket of bot `name`, loaded on first use.
    pub fn bucket(&self, name: &str) -> Arc<Mutex<Bucket>> {
        self.buckets
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                let map = match self.durable.as_ref().map(|d| d.kv_load(name)) {
                    Some(Ok(map)) => map,
                    Some(Err(e)) => {
                        tracing::error!(bot = name, "kv unreadable, starting empty: {e}");
                        BTreeMap::new()
                    }
                    None => BTreeMap::new(),
                };
                let bytes = map.iter().map(|(k, v)| k.len() + v.len()).sum();
                Arc::new(Mutex::new(Bucket { bot: name.to_owned(), durable: self.durable.clone(), map, bytes }))
            })
            .clone()
    }
}

impl Bucket {
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    /// Stores `value`; durable when this returns `Ok`.
    pub fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!("key longer than {MAX_KEY} bytes"));
        }
        if value.len() > MAX_VALUE {
            return Err(format!("value larger than {MAX_VALUE} bytes"));
        }
        let old = self.map.get(&key).map(|v| key.len() + v.len()).unwrap_or(0);
        let total = self.bytes - old + key.len() + value.len();
        if total > MAX_TOTAL {
            return Err(format!("the bot's store would exceed {MAX_TOTAL} bytes"));
        }
        if let Some(d) = &self.durable {
            d.kv_write(&self.bot, &key, Some(&value)).map_err(|e| e.to_string())?;
        }
        self.map.insert(key, value);
        self.bytes = total;
        Ok(())
    }

    pub fn delete(&mut self, key: &str) -> Result<(), String> {
        if let Some(d) = &self.durable {
            d.kv_write(&self.bot, key, None).map_err(|e| e.to_string())?;
        }
        if let Some(v) = self.map.remove(key) {
            self.bytes -= key.len() + v.len();
        }
        Ok(())
    }

    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.map.range(prefix.to_owned()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.clone()).collect()
    }
}
