//! The bot's configuration: the `[config]` table of its `NAME.toml`, and its
//! `[secrets]`, which the bridge reads from its own environment at load
//! (`api_key = { env = "OPENAI_API_KEY" }`). Editing `NAME.toml` reloads the
//! bot with the new values.

use crate::bindings::botbridge::bot::config as wit;

/// The value of `key`, from `[config]` or `[secrets]`.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// The value of `key`, or `default` when it is not set.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}
