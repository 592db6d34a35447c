//! Deploying, rolling back and removing bots through the host (the admin
//! API's side of the folder). A deploy is checked before anything in the
//! folder changes: its config parses, its secrets resolve, its pin holds, it
//! compiles and fits the world. Then the files are written atomically, under
//! the bot's load lock (so the watcher, seeing them, finds nothing to do),
//! and the version starts. A version whose `init` fails puts the old files
//! back: what the folder holds is what runs.

use std::path::Path;

use super::folder::{self, FileError};
use super::host::{BotFiles, ConfigChange, DeployError, LoadError, WasmHost, cause, parse_files};
use super::runner::BotStatus;
use super::versions::{VersionInfo, write_atomically};

/// A name the folder would take as `NAME.wasm`.
fn check_name(name: &str) -> Result<(), DeployError> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > 64 || !plain {
        return Err(DeployError::BadName { name: name.to_owned() });
    }
    Ok(())
}

/// A file in the folder before a deploy: its bytes, or None when it was absent.
type Before = Option<Vec<u8>>;

fn write_or_remove(path: &Path, bytes: Option<&[u8]>) -> Result<(), DeployError> {
    let result = match bytes {
        Some(bytes) => write_atomically(path, bytes),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    result.map_err(|source| DeployError::Write { path: path.to_owned(), source })
}

impl WasmHost {
    /// Makes `wasm` (with `toml` as told) the running version of bot `name`,
    /// and its files the folder's; returns its status once it runs.
    pub async fn deploy(&self, name: &str, wasm: Vec<u8>, toml: ConfigChange) -> Result<BotStatus, DeployError> {
        check_name(name)?;
        let lock = self.load_lock(name);
        let _one_at_a_time = lock.lock().await;
        let result = self.deploy_locked(name, wasm, toml).await;
        if let Err(e) = &result {
            // The folder did not change, so the panel's "refused" (about the
            // folder's newest file) stays as it was; the log tells.
            let why = crate::error_chain(e);
            tracing::warn!(bot = name, "deploy refused: {why}");
            self.logbook().record(name, super::logbook::LogLevel::Error, &format!("deploy refused: {why}"));
            self.logbook().changed();
        }
        result
    }

    async fn deploy_locked(&self, name: &str, wasm: Vec<u8>, toml: ConfigChange) -> Result<BotStatus, DeployError> {
        let config = self.config();
        let (dir, max_wasm, max_toml) = (config.dir.clone(), config.max_bot_bytes, config.max_bot_config_bytes);
        let (wasm_name, toml_name) = (format!("{name}.wasm"), format!("{name}.toml"));
        let too_big = |file: &str, size: usize, limit: u64| {
            LoadError::File(FileError::TooBig { path: dir.join(file), size: size as u64, limit })
        };
        if wasm.len() as u64 > max_wasm {
            return Err(too_big(&wasm_name, wasm.len(), max_wasm).into());
        }
        if let ConfigChange::Replace(t) = &toml
            && t.len() as u64 > max_toml
        {
            return Err(too_big(&toml_name, t.len(), max_toml).into());
        }
        // What the folder holds now (to put back if the new version fails),
        // and the files the new version would run with.
        let (read_dir, bot) = (dir.clone(), name.to_owned());
        let files = tokio::task::spawn_blocking(move || -> Result<(Before, Before, BotFiles), LoadError> {
            let old_wasm = folder::read(&read_dir, &format!("{bot}.wasm"), max_wasm)?;
            let old_toml = folder::read(&read_dir, &format!("{bot}.toml"), max_toml)?;
            let new_toml = match toml {
                ConfigChange::Keep => old_toml.clone(),
                ConfigChange::Replace(t) => Some(t),
                ConfigChange::Remove => None,
            };
            let files = parse_files(&read_dir, &bot, wasm, new_toml)?;
            Ok((old_wasm, old_toml, files))
        })
        .await
        .map_err(|e| LoadError::Read { path: dir.clone(), source: cause(e) })??;
        let (old_wasm, old_toml, files) = files;
        let (new_wasm, new_toml) = (files.wasm.clone(), files.toml.clone());
        let checked = self.check_files(name, files).await?;
        let (wasm_path, toml_path) = (dir.join(&wasm_name), dir.join(&toml_name));
        let write = |wasm: Option<Vec<u8>>, toml: Option<Vec<u8>>| {
            let (wasm_path, toml_path) = (wasm_path.clone(), toml_path.clone());
            tokio::task::spawn_blocking(move || {
                // The config first: a watcher that reads between the two sees
                // the old build with the new config at worst, and waits for
                // the load lock anyway.
                write_or_remove(&toml_path, toml.as_deref())?;
                write_or_remove(&wasm_path, wasm.as_deref())
            })
        };
        let written = write(Some(new_wasm), new_toml).await;
        written.map_err(|e| DeployError::Write { path: wasm_path.clone(), source: std::io::Error::other(e) })??;
        if let Some(checked) = checked
            && let Err(e) = self.start_checked(name, checked).await
        {
            let restored = write(old_wasm, old_toml).await;
            if !matches!(restored, Ok(Ok(()))) {
                tracing::error!(bot = name, "could not put the old files back after a refused deploy");
            }
            return Err(e.into());
        }
        self.note_outcome(name, &Ok(()));
        self.status(name).ok_or_else(|| DeployError::NoBot { name: name.to_owned() })
    }

    /// The kept versions of bot `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Vec<VersionInfo> {
        let (host, name) = (self.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || host.version_store().map(|v| v.list(&name)).unwrap_or_default())
            .await
            .unwrap_or_default()
    }

    /// Goes back to version `to`, or to the kept version before the running one.
    pub async fn rollback(&self, name: &str, to: Option<&str>) -> Result<BotStatus, DeployError> {
        check_name(name)?;
        if self.version_store().is_none() {
            return Err(DeployError::NotKept { name: name.to_owned() });
        }
        let kept = self.versions(name).await;
        let target = match to {
            Some(version) => version.to_owned(),
            None => {
                let running = self.status(name).map(|s| s.version);
                let at = kept.iter().position(|v| Some(&v.version) == running.as_ref());
                let before = match at {
                    Some(at) => at.checked_sub(1).map(|i| &kept[i]),
                    // Nothing runs (removed, or refused): the newest kept.
                    None => kept.last(),
                };
                before.ok_or_else(|| DeployError::NoEarlier { name: name.to_owned() })?.version.clone()
            }
        };
        let (host, bot, version) = (self.clone(), name.to_owned(), target.clone());
        let files = tokio::task::spawn_blocking(move || host.version_store().map(|v| v.files(&bot, &version)))
            .await
            .map_err(|e| DeployError::Write { path: name.into(), source: std::io::Error::other(e) })?;
        let files = match files {
            Some(Ok(Some(files))) => files,
            Some(Err(source)) => return Err(DeployError::Write { path: name.into(), source }),
            _ => return Err(DeployError::NoVersion { name: name.to_owned(), version: target }),
        };
        let toml = files.toml.map_or(ConfigChange::Remove, ConfigChange::Replace);
        self.deploy(name, files.wasm, toml).await
    }

    /// Removes `NAME.wasm` and stops the bot. Its `NAME.toml`, kv data and
    /// kept versions stay, so a later deploy or rollback finds them.
    pub async fn remove(&self, name: &str) -> Result<(), DeployError> {
        check_name(name)?;
        let lock = self.load_lock(name);
        let _one_at_a_time = lock.lock().await;
        let path = self.dir().join(format!("{name}.wasm"));
        let removed = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::remove_file(&path)).await
        };
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound && self.status(name).is_none() => {
                return Err(DeployError::NoBot { name: name.to_owned() });
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(Err(source)) => return Err(DeployError::Write { path, source }),
            Err(e) => return Err(DeployError::Write { path, source: std::io::Error::other(e) }),
        }
        self.sync_locked(name).await.map_err(DeployError::Refused)
    }
}
