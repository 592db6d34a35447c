//! The in-memory store: every tenant's records in maps, "committed" at once.
//! It is the reference the contract tests hold every store to, and what a
//! test uses to restart a bridge within one process without a file.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{EventLog, IdLog, KvStore, Record, Restored, SimLog, StateError};
use crate::bus::Json;

#[derive(Default)]
struct Maps {
    ids: BTreeMap<u64, Vec<u8>>,
    events: BTreeMap<u64, Json>,
    sim: BTreeMap<(i64, i64), Vec<u8>>,
    kv: BTreeMap<(String, String), Vec<u8>>,
}

/// A store that lives as long as the process; clones share it.
#[derive(Clone)]
pub struct MemoryStore {
    key: [u8; 32],
    maps: Arc<Mutex<Maps>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { key: rand::random(), maps: Arc::default() }
    }
}

impl MemoryStore {
    /// What a bridge started on this store would restore.
    pub fn restored(&self) -> Restored {
        let maps = self.maps.lock();
        let ids: Vec<_> = maps.ids.iter().map(|(s, e)| (*s, e.clone())).collect();
        let events: Vec<_> = maps.events.iter().map(|(s, j)| (*s, j.as_str().to_owned())).collect();
        Restored {
            key: self.key,
            next_serial: ids.last().map_or(0, |(s, _)| s + 1),
            next_seq: events.last().map_or(1, |(s, _)| s + 1),
            ids,
            events,
            sim: maps.sim.iter().map(|(k, v)| (*k, v.clone())).collect(),
        }
    }
}

#[async_trait]
impl IdLog for MemoryStore {
    fn record(&self, serial: u64, entry: Vec<u8>) {
        self.maps.lock().ids.insert(serial, entry);
    }

    fn prune(&self, below: u64) {
        self.maps.lock().ids.retain(|s, _| *s >= below);
    }

    async fn commit(&self) -> Result<(), StateError> {
        Ok(())
    }
}

impl EventLog for MemoryStore {
    fn record(&self, seq: u64, json: Json, keep_from: u64) {
        let mut maps = self.maps.lock();
        maps.events.insert(seq, json);
        maps.events.retain(|s, _| *s >= keep_from);
    }
}

impl SimLog for MemoryStore {
    fn record(&self, account: i64, number: i64, record: Option<Arc<dyn Record>>) {
        let mut maps = self.maps.lock();
        match record {
            Some(r) => maps.sim.insert((account, number), r.encode()),
            None => maps.sim.remove(&(account, number)),
        };
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn load(&self, bot: &str) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let maps = self.maps.lock();
        Ok(maps.kv.iter().filter(|((b, _), _)| b == bot).map(|((_, k), v)| (k.clone(), v.clone())).collect())
    }

    async fn write(&self, bot: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StateError> {
        let mut maps = self.maps.lock();
        let k = (bot.to_owned(), key.to_owned());
        match value {
            Some(v) => maps.kv.insert(k, v),
            None => maps.kv.remove(&k),
        };
        Ok(())
    }
}
