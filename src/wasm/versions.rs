//! The last few versions of each bot, kept so a bot can be rolled back:
//! `STATE/versions/NAME/VERSION.wasm`, the `VERSION.toml` it last ran with
//! (when it had one), and `index.json`, the versions in the order they were
//! first loaded, oldest first. A version loaded again keeps its place, so
//! "the one before" stays the same however often a bot is rolled back.
//! Blocking file I/O: the host calls it on the blocking pool.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One kept version, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The content hash the host names versions by.
    pub version: String,
    pub sha256: String,
    pub bytes: u64,
    /// Unix time it was first loaded, milliseconds.
    pub saved_at: u64,
    /// Whether it ran with a `NAME.toml`.
    pub has_config: bool,
}

/// A kept version's files.
pub struct VersionFiles {
    pub wasm: Vec<u8>,
    pub toml: Option<Vec<u8>>,
}

pub struct Versions {
    dir: PathBuf,
    keep: usize,
    /// Each bot's index as last read or written, so listing needs no I/O.
    cache: Mutex<HashMap<String, Vec<VersionInfo>>>,
}

/// Writes `path` whole or not at all: a new file, then a rename.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A leading dot and a non-bot extension: the folder watcher ignores it.
    let tmp = dir.join(format!(".{name}.{}.part", rand::random::<u32>()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl Versions {
    pub fn new(dir: PathBuf, keep: usize) -> Self {
        Self { dir, keep: keep.max(1), cache: Mutex::default() }
    }

    fn bot_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Kept versions of `name`, oldest first (none when nothing was kept), from the disk.
    pub fn list(&self, name: &str) -> Vec<VersionInfo> {
        let index = match std::fs::read(self.bot_dir(name).join("index.json")) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|e| {
                tracing::warn!(bot = name, "unreadable version index, starting a new one: {e}");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        self.cache.lock().insert(name.to_owned(), index.clone());
        index
    }

    /// `list` as last read or written; no I/O.
    pub fn cached(&self, name: &str) -> Vec<VersionInfo> {
        self.cache.lock().get(name).cloned().unwrap_or_default()
    }

    /// Keeps `info`'s files (a version already kept only gets its newest
    /// `NAME.toml`), dropping the oldest past `keep`.
    pub fn record(&self, name: &str, info: VersionInfo, wasm: &[u8], toml: Option<&[u8]>) -> io::Result<()> {
        let dir = self.bot_dir(name);
        let mut index = self.list(name);
        let toml_path = dir.join(format!("{}.toml", info.version));
        // Kept already, with this config: nothing to write (every start-up
        // loads every bot again).
        if index.iter().any(|v| v.version == info.version && v.has_config == toml.is_some())
            && toml.is_none_or(|t| std::fs::read(&toml_path).is_ok_and(|kept| kept == t))
        {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        match toml {
            Some(toml) => write_atomically(&toml_path, toml)?,
            None => match std::fs::remove_file(&toml_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        match index.iter_mut().find(|v| v.version == info.version) {
            Some(kept) => kept.has_config = toml.is_some(),
            None => {
                write_atomically(&dir.join(format!("{}.wasm", info.version)), wasm)?;
                index.push(VersionInfo { has_config: toml.is_some(), ..info });
            }
        }
        while index.len() > self.keep {
            let old = index.remove(0);
            for ext in ["wasm", "toml"] {
                let _ = std::fs::remove_file(dir.join(format!("{}.{ext}", old.version)));
            }
        }
        let json = serde_json::to_vec_pretty(&index).map_err(io::Error::other)?;
        write_atomically(&dir.join("index.json"), &json)?;
        self.cache.lock().insert(name.to_owned(), index);
        Ok(())
    }

    /// The files of a kept version; None when it is not kept.
    pub fn files(&self, name: &str, version: &str) -> io::Result<Option<VersionFiles>> {
        let Some(info) = self.list(name).into_iter().find(|v| v.version == version) else { return Ok(None) };
        let dir = self.bot_dir(name);
        let wasm = std::fs::read(dir.join(format!("{}.wasm", info.version)))?;
        let toml =
            if info.has_config { Some(std::fs::read(dir.join(format!("{}.toml", info.version)))?) } else { None };
        Ok(Some(VersionFiles { wasm, toml }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str) -> VersionInfo {
        VersionInfo { version: version.into(), sha256: "s".into(), bytes: 1, saved_at: 0, has_config: false }
    }

    #[test]
    fn keeps_the_newest_in_first_load_order() {
        let dir = tempfile::tempdir().unwrap();
        let versions = Versions::new(dir.path().to_owned(), 2);
        versions.record("b", info("v1"), b"one", None).unwrap();
        versions.record("b", info("v2"), b"two", Some(b"memory_mb = 8")).unwrap();
        versions.record("b", info("v1"), b"one", None).unwrap();
        let order: Vec<_> = versions.list("b").into_iter().map(|v| v.version).collect();
        assert_eq!(order, ["v1", "v2"], "loading v1 again keeps its place");
        let two = versions.files("b", "v2").unwrap().unwrap();
        assert_eq!((two.wasm.as_slice(), two.toml.as_deref()), (&b"two"[..], Some(&b"memory_mb = 8"[..])));
        versions.record("b", info("v3"), b"three", None).unwrap();
        let order: Vec<_> = versions.list("b").into_iter().map(|v| v.version).collect();
        assert_eq!(order, ["v2", "v3"], "the oldest goes past `keep`");
        assert!(versions.files("b", "v1").unwrap().is_none());
        assert!(!dir.path().join("b/v1.wasm").exists());
    }
}
