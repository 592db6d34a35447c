//! Reading the bots folder safely. Only regular files are read: no FIFOs (an
//! open would block), no devices (`/dev/zero` never ends), no directories, and
//! no symlinks that lead outside the folder. Every read has a size cap and
//! waits for a file that is still being written to settle. These are blocking
//! calls: the host runs them on the blocking pool, never on a runtime thread.
//! Errors name the file and the reason, never its bytes.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Default cap for a `NAME.wasm`.
pub const MAX_WASM_BYTES: u64 = 64 << 20;
/// Default cap for a `NAME.toml`.
pub const MAX_TOML_BYTES: u64 = 64 << 10;
/// How long a file must have been left alone before it is read.
pub const SETTLE: Duration = Duration::from_millis(40);
/// How many times a file that keeps changing is tried before giving up.
const SETTLE_TRIES: u32 = 250;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FileError {
    #[error("{path}: not a regular file (a {kind})")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: a link that leads outside the bots folder")]
    Outside { path: PathBuf },
    #[error("{path}: {size} bytes is over the limit of {limit} bytes")]
    TooBig { path: PathBuf, size: u64, limit: u64 },
    #[error("{path}: still being written after {0:?}", SETTLE * SETTLE_TRIES)]
    Unsettled { path: PathBuf },
    #[error("{path}: cannot read")]
    Io { path: PathBuf, source: Arc<std::io::Error> },
}

fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "file"
    }
}

/// Reads `dir/name` if it exists (None if not), at most `limit` bytes.
pub fn read(dir: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, FileError> {
    let path = dir.join(name);
    let io = |e: std::io::Error| FileError::Io { path: path.clone(), source: Arc::new(e) };
    let link = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    // A link is followed only when it stays inside the folder (and `name`
    // may not climb out with `..`).
    let real = match std::fs::canonicalize(&path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let folder = std::fs::canonicalize(dir).map_err(io)?;
    if !real.starts_with(&folder) {
        return Err(FileError::Outside { path });
    }
    if link.file_type().is_symlink() {
        tracing::debug!(path = %path.display(), target = %real.display(), "following a link inside the folder");
    }
    for _ in 0..SETTLE_TRIES {
        // O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW:
        // a link swapped in since the check above is refused.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&real)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => FileError::Outside { path: path.clone() },
                _ => io(e),
            })?;
        let before = file.metadata().map_err(io)?;
        if !before.file_type().is_file() {
            return Err(FileError::NotRegular { path, kind: kind_of(&before) });
        }
        if before.len() > limit {
            return Err(FileError::TooBig { path, size: before.len(), limit });
        }
        if recently_changed(&before) {
            std::thread::sleep(SETTLE);
            continue;
        }
        let bytes = read_capped(&mut file, before.len(), limit).map_err(io)?;
        if bytes.len() as u64 > limit {
            return Err(FileError::TooBig { path, size: bytes.len() as u64, limit });
        }
        let after = file.metadata().map_err(io)?;
        if after.len() == before.len() && after.modified().ok() == before.modified().ok() && !recently_changed(&after) {
            return Ok(Some(bytes));
        }
        std::thread::sleep(SETTLE);
    }
    Err(FileError::Unsettled { path })
}

/// True when the file was modified less than `SETTLE` ago: a writer may still be at it.
fn recently_changed(meta: &Metadata) -> bool {
    let Ok(modified) = meta.modified() else { return false };
    SystemTime::now().duration_since(modified).is_ok_and(|age| age < SETTLE)
}

/// Reads up to `limit + 1` bytes into a buffer sized for `expected` bytes, so
/// a file is held once in memory, not in a doubling buffer.
fn read_capped(file: &mut File, expected: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(expected.min(limit) as usize + 1);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The bot names in `dir` with a `NAME.wasm` entry (of any kind: the read decides).
pub fn bot_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .filter_map(|p| bot_name(&p))
        .collect();
    names.sort();
    names
}

/// The bot name of a path in the watched folder: `NAME.wasm` or `NAME.toml`.
pub fn bot_name(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    let name = path.file_stem()?.to_str()?;
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_links_inside_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.wasm"), b"abc").unwrap();
        std::thread::sleep(SETTLE * 2);
        assert_eq!(read(d, "a.wasm", 10).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read(d, "none.wasm", 10).unwrap(), None);
        assert!(matches!(read(d, "a.wasm", 2), Err(FileError::TooBig { size: 3, .. })));
        std::os::unix::fs::symlink(d.join("a.wasm"), d.join("b.wasm")).unwrap();
        assert_eq!(read(d, "b.wasm", 10).unwrap(), Some(b"abc".to_vec()));
        std::os::unix::fs::symlink("/etc/passwd", d.join("c.toml")).unwrap();
        let err = read(d, "c.toml", 1 << 20).unwrap_err();
        assert!(matches!(err, FileError::Outside { .. }), "{err}");
        assert!(!err.to_string().contains("root"), "{err}");
        std::fs::create_dir(d.join("e.wasm")).unwrap();
        assert!(matches!(read(d, "e.wasm", 10), Err(FileError::NotRegular { kind: "directory", .. })));
    }
}
