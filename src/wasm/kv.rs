//! Each bot's key-value store: in memory, written through to
//! `STATE/kv/NAME.json` (new file, then rename) so it survives hot reloads and
//! restarts. Bounded per bot.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;

pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 64 * 1024;
pub const MAX_TOTAL: usize = 4 * 1024 * 1024;

/// Every bot's bucket.
pub struct KvStore {
    dir: Option<PathBuf>,
    buckets: Mutex<HashMap<String, Arc<Mutex<Bucket>>>>,
}

/// One bot's keys.
pub struct Bucket {
    path: Option<PathBuf>,
    map: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl KvStore {
    /// `dir` None keeps everything in memory only.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, buckets: Mutex::new(HashMap::new()) }
    }

    /// The bucket of bot `name`, loaded from disk on first use.
    pub fn bucket(&self, name: &str) -> Arc<Mutex<Bucket>> {
        self.buckets
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                let path = self.dir.as_ref().map(|d| d.join(format!("{name}.json")));
                let map = path.as_ref().map(|p| load(p)).unwrap_or_default();
                let bytes = map.iter().map(|(k, v)| k.len() + v.len()).sum();
                Arc::new(Mutex::new(Bucket { path, map, bytes }))
            })
            .clone()
    }
}

fn load(path: &PathBuf) -> BTreeMap<String, Vec<u8>> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    match serde_json::from_str::<BTreeMap<String, String>>(&text) {
        Ok(m) => m.into_iter().filter_map(|(k, v)| STANDARD.decode(v).ok().map(|v| (k, v))).collect(),
        Err(e) => {
            tracing::error!(path = %path.display(), "kv file unreadable, starting empty: {e}");
            BTreeMap::new()
        }
    }
}

impl Bucket {
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

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
        self.map.insert(key, value);
        self.bytes = total;
        self.persist()
    }

    pub fn delete(&mut self, key: &str) -> Result<(), String> {
        if let Some(v) = self.map.remove(key) {
            self.bytes -= key.len() + v.len();
            self.persist()?;
        }
        Ok(())
    }

    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.map.range(prefix.to_owned()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.clone()).collect()
    }

    fn persist(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let encoded: BTreeMap<&String, String> = self.map.iter().map(|(k, v)| (k, STANDARD.encode(v))).collect();
        let text = serde_json::to_string(&encoded).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, text.as_bytes())?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("kv write failed: {e}"))
    }
}
