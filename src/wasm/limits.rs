//! A bot's limits and permissions (`bots/NAME.toml`), and its operation rate limiter.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::bridge::Permissions;

/// `bots/NAME.toml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// Linear memory cap, MiB.
    pub memory_mb: u64,
    /// CPU time one call (init or one event) may take, milliseconds.
    pub cpu_ms: u64,
    /// Sustained operations per second.
    pub ops_per_second: f64,
    /// Operations allowed in a burst.
    pub ops_burst: u32,
    /// What the bot may do; absent: everything.
    pub permissions: Option<Permissions>,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self { memory_mb: 64, cpu_ms: 200, ops_per_second: 20.0, ops_burst: 40, permissions: None }
    }
}

/// Largest memory cap a bot may ask for, MiB (the pooling allocator's slot size).
pub const MAX_MEMORY_MB: u64 = 1024;

impl BotConfig {
    /// Reads `path`; an absent file means the defaults.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let config: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if config.memory_mb == 0 || config.memory_mb > MAX_MEMORY_MB {
            return Err(format!("{}: memory_mb must be 1..={MAX_MEMORY_MB}", path.display()));
        }
        if config.cpu_ms == 0 || config.ops_per_second.is_nan() || config.ops_per_second < 0.0 {
            return Err(format!("{}: cpu_ms and ops_per_second must be positive", path.display()));
        }
        Ok(config)
    }

    pub fn cpu(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }
}

/// A token bucket: `burst` operations at once, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst: burst as f64, tokens: burst as f64, last: Instant::now() }
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_nothing() {
        let mut r = RateLimiter::new(0.0, 3);
        assert_eq!((0..10).filter(|_| r.try_acquire()).count(), 3);
    }

    #[test]
    fn config_defaults_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BotConfig::load(&dir.path().join("none.toml")).unwrap(), BotConfig::default());
        let p = dir.path().join("b.toml");
        std::fs::write(&p, "memory_mb = 8\n[permissions]\noperations = [\"Reply\"]\n").unwrap();
        let c = BotConfig::load(&p).unwrap();
        assert_eq!(c.memory_mb, 8);
        assert_eq!(c.permissions.unwrap().operations, Some(vec!["Reply".to_string()]));
        std::fs::write(&p, "memroy_mb = 8\n").unwrap();
        assert!(BotConfig::load(&p).unwrap_err().contains("memroy_mb"));
        std::fs::write(&p, "memory_mb = 0\n").unwrap();
        assert!(BotConfig::load(&p).is_err());
    }
}
