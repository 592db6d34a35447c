//! The bot's own key-value store: it survives hot reloads and restarts, and
//! no other bot can see it. Values are bytes; helpers store text and counters.

use crate::bindings::botbridge::bot::kv as wit;

/// A write the store refused: the key or value is too large, or the bot's
/// quota is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError(pub String);

impl core::fmt::Display for KvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "kv: {}", self.0)
    }
}

impl std::error::Error for KvError {}

pub fn get(key: &str) -> Option<Vec<u8>> {
    wit::get(key)
}

pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    wit::set(key, value).map_err(KvError)
}

pub fn delete(key: &str) {
    wit::delete(key)
}

/// Keys that start with `prefix`, sorted.
pub fn list(prefix: &str) -> Vec<String> {
    wit::list(prefix)
}

/// The value as UTF-8 text; `None` when missing or not text.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|v| String::from_utf8(v).ok())
}

pub fn set_string(key: &str, value: &str) -> Result<(), KvError> {
    set(key, value.as_bytes())
}

/// A counter stored as decimal text; missing or unreadable counts as 0.
pub fn get_u64(key: &str) -> u64 {
    get_string(key).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub fn set_u64(key: &str, value: u64) -> Result<(), KvError> {
    set_string(key, &value.to_string())
}

/// Adds one to the counter at `key`; returns the new value.
pub fn increment(key: &str) -> Result<u64, KvError> {
    let next = get_u64(key) + 1;
    set_u64(key, next)?;
    Ok(next)
}

/// A value stored as JSON; None when absent or unreadable.
pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Option<T> {
    serde_json::from_slice(&get(key)?).ok()
}

/// Stores `value` as JSON.
pub fn set_json<T: serde::Serialize>(key: &str, value: &T) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value).map_err(|e| KvError(format!("cannot encode: {e}")))?;
    set(key, &bytes)
}
