//! A bot's `[config]` and `[secrets]`, resolved when its files are loaded:
//! what `config.get` answers. Secret values are read from the bridge's
//! environment and never shown: not by `Debug`, not in `/api`, and masked
//! in the bot's own log lines and in the text it sends (so in the audit
//! stream and the chat too).

use std::collections::BTreeMap;
use std::fmt;

use super::limits::BotConfig;
use crate::schema::Element;

/// Why a bot's secrets could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bot {bot}: secret `{key}` names the environment variable {var}, which is not set (or not UTF-8)")]
pub struct MissingSecret {
    pub bot: String,
    pub key: String,
    pub var: String,
}

/// Shortest secret value that is masked in log lines (shorter ones would
/// mask ordinary words).
const MASK_FROM: usize = 4;

#[derive(Default, Clone, PartialEq)]
pub struct Settings {
    values: BTreeMap<String, String>,
    secrets: Vec<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings").field("keys", &self.values.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Settings {
    /// `[config]` as written and each `[secrets]` entry read from the environment.
    pub fn resolve(bot: &str, config: &BotConfig) -> Result<Self, MissingSecret> {
        let mut values = config.config.clone();
        let mut secrets = Vec::new();
        for (key, source) in &config.secrets {
            let value = std::env::var(&source.env).map_err(|_| MissingSecret {
                bot: bot.to_owned(),
                key: key.clone(),
                var: source.env.clone(),
            })?;
            if value.len() >= MASK_FROM {
                secrets.push(value.clone());
            }
            values.insert(key.clone(), value);
        }
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Self { values, secrets })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Masks secret values in the chain's text.
    pub fn mask_chain(&self, chain: &mut [Element]) {
        if self.secrets.is_empty() {
            return;
        }
        for element in chain {
            if let Element::Plain { msg } = element
                && let std::borrow::Cow::Owned(masked) = self.mask(msg)
            {
                *msg = masked;
            }
        }
    }

    /// `line` with every secret value replaced by `***`.
    pub fn mask<'a>(&self, line: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(line);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        out
    }
}
