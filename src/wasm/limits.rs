//! A bot's `bots/NAME.toml`: limits, permissions, timers, outbound HTTP,
//! configuration and secrets; and its operation rate limiter.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use super::http::Origin;
use crate::bridge::Permissions;

/// `bots/NAME.toml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// The SHA-256 (hex) of the only build of this bot the host will run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Linear memory cap, MiB.
    pub memory_mb: u64,
    /// CPU time one call (init or one event) may take, milliseconds.
    pub cpu_ms: u64,
    /// Sustained operations per second.
    pub ops_per_second: f64,
    /// Operations allowed in a burst.
    pub ops_burst: u32,
    /// Sustained log lines per second (its `log` calls, stdout and stderr).
    pub log_per_second: f64,
    /// Log lines allowed in a burst; past it lines are dropped and counted.
    pub log_burst: u32,
    /// What the bot may do; absent: everything.
    pub permissions: Option<Permissions>,
    /// Timers the bot may have at once.
    pub max_timers: u32,
    /// Shortest period of a repeating timer, milliseconds.
    pub min_timer_period_ms: u64,
    /// Origins the bot may send HTTP requests to; empty: none.
    pub allowed_hosts: Vec<Origin>,
    /// Longest an HTTP request may take, from connect to the last body byte, milliseconds.
    pub http_timeout_ms: u64,
    /// Largest HTTP response body the bot may read, bytes.
    pub http_max_bytes: u64,
    /// HTTP requests the bot may have in flight at once.
    pub http_max_in_flight: u32,
    /// `[config]`: values the bot reads with `config.get`.
    pub config: BTreeMap<String, String>,
    /// `[secrets]`: values read from the bridge's environment at load.
    pub secrets: BTreeMap<String, SecretSource>,
}

/// Where a secret comes from: `api_key = { env = "OPENAI_API_KEY" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub env: String,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            sha256: None,
            memory_mb: 64,
            cpu_ms: 200,
            ops_per_second: 20.0,
            ops_burst: 40,
            log_per_second: 20.0,
            log_burst: 200,
            permissions: None,
            max_timers: 32,
            min_timer_period_ms: 1_000,
            allowed_hosts: Vec::new(),
            http_timeout_ms: 10_000,
            http_max_bytes: 4 << 20,
            http_max_in_flight: 4,
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// The SHA-256 of a component, as `sha256 = "…"` pins it (lower-case hex).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest memory cap a bot may ask for, MiB (the pooling allocator's slot size).
pub const MAX_MEMORY_MB: u64 = 1024;
/// Largest CPU time per call a bot may ask for, milliseconds.
pub const MAX_CPU_MS: u64 = 60_000;
/// Largest operation or log rate a bot may ask for, per second.
pub const MAX_RATE: f64 = 10_000.0;
/// Largest operation or log burst a bot may ask for.
pub const MAX_BURST: u32 = 100_000;

/// Most timers a bot may ask for.
pub const MAX_TIMERS: u32 = 10_000;
/// Longest HTTP timeout a bot may ask for, milliseconds.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 300_000;
/// Largest HTTP response a bot may ask to read, bytes.
pub const MAX_HTTP_BYTES: u64 = 256 << 20;
/// Most HTTP requests in flight a bot may ask for.
pub const MAX_HTTP_IN_FLIGHT: u32 = 256;

/// Why a `NAME.toml` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotConfigError {
    #[error("not UTF-8 text (byte {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    /// The parser's message with quoted values blanked (the parser's own error
    /// quotes bytes of the file, so it is not kept as a source).
    #[error("{}{redacted}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax { line: Option<usize>, redacted: String },
    #[error("{key} must be {range}")]
    OutOfRange { key: &'static str, range: String },
    #[error("`{key}` is in both [config] and [secrets]")]
    ConfigAndSecret { key: String },
    #[error("sha256 must be 64 hex digits")]
    BadPin,
}

impl BotConfig {
    /// Parses and range-checks a `NAME.toml` (None: no file, the defaults).
    /// A parse error names the line and the key, and never quotes the file.
    pub fn parse(text: Option<&[u8]>) -> Result<Self, BotConfigError> {
        let Some(bytes) = text else { return Ok(Self::default()) };
        let text = std::str::from_utf8(bytes).map_err(|e| BotConfigError::NotUtf8 { valid_up_to: e.valid_up_to() })?;
        let mut config: Self = toml::from_str(text).map_err(|e| BotConfigError::Syntax {
            line: e.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1)),
            redacted: redact_quoted(e.message()),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&mut self) -> Result<(), BotConfigError> {
        if let Some(pin) = &mut self.sha256 {
            pin.make_ascii_lowercase();
        }
        let out = |key: &'static str, range: String| Err(BotConfigError::OutOfRange { key, range });
        let rate_ok = |r: f64| r.is_finite() && (0.0..=MAX_RATE).contains(&r);
        if !(1..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return out("memory_mb", format!("1..={MAX_MEMORY_MB}"));
        }
        if !(1..=MAX_CPU_MS).contains(&self.cpu_ms) {
            return out("cpu_ms", format!("1..={MAX_CPU_MS}"));
        }
        if !rate_ok(self.ops_per_second) {
            return out("ops_per_second", format!("a number in 0..={MAX_RATE}"));
        }
        if !rate_ok(self.log_per_second) {
            return out("log_per_second", format!("a number in 0..={MAX_RATE}"));
        }
        if !(1..=MAX_BURST).contains(&self.ops_burst) {
            return out("ops_burst", format!("1..={MAX_BURST}"));
        }
        if !(1..=MAX_BURST).contains(&self.log_burst) {
            return out("log_burst", format!("1..={MAX_BURST}"));
        }
        if self.max_timers > MAX_TIMERS {
            return out("max_timers", format!("0..={MAX_TIMERS}"));
        }
        if !(1..=MAX_HTTP_TIMEOUT_MS).contains(&self.http_timeout_ms) {
            return out("http_timeout_ms", format!("1..={MAX_HTTP_TIMEOUT_MS}"));
        }
        if !(1..=MAX_HTTP_BYTES).contains(&self.http_max_bytes) {
            return out("http_max_bytes", format!("1..={MAX_HTTP_BYTES}"));
        }
        if !(1..=MAX_HTTP_IN_FLIGHT).contains(&self.http_max_in_flight) {
            return out("http_max_in_flight", format!("1..={MAX_HTTP_IN_FLIGHT}"));
        }
        if let Some(pin) = &self.sha256
            && !(pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(BotConfigError::BadPin);
        }
        if let Some(key) = self.config.keys().find(|k| self.secrets.contains_key(*k)) {
            return Err(BotConfigError::ConfigAndSecret { key: key.clone() });
        }
        Ok(())
    }
}

/// A parse message with its quoted values (`"…"`) blanked: serde quotes the
/// offending value, which may be any bytes of the file. Key names (in
/// backticks) stay.
fn redact_quoted(message: &str) -> String {
    let parts: Vec<&str> = message.split('"').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('"');
        }
        // Odd parts lie between two quotes (an unpaired last one is kept).
        out.push_str(if i % 2 == 1 && i + 1 < parts.len() { "…" } else { part });
    }
    out.chars().take(300).collect()
}

/// A bot's log budget: lines past its rate are dropped, and their number is
/// reported with the next line let through.
#[derive(Debug)]
pub struct LogGate {
    rate: RateLimiter,
    dropped: u64,
}

impl LogGate {
    pub fn new(config: &BotConfig) -> Self {
        Self { rate: RateLimiter::new(config.log_per_second, config.log_burst), dropped: 0 }
    }

    /// None: drop this line. Some(n): log it, after saying that `n` were dropped.
    pub fn admit(&mut self) -> Option<u64> {
        if self.rate.try_acquire() {
            Some(std::mem::take(&mut self.dropped))
        } else {
            self.dropped += 1;
            None
        }
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
    use std::path::Path;

    use super::*;

    #[test]
    fn a_burst_then_nothing() {
        let mut r = RateLimiter::new(0.0, 3);
        assert_eq!((0..10).filter(|_| r.try_acquire()).count(), 3);
    }

    /// `NAME.toml` as the host reads it: absent means the defaults.
    fn load(path: &Path) -> Result<BotConfig, String> {
        let text = std::fs::read(path).ok();
        BotConfig::parse(text.as_deref()).map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&dir.path().join("none.toml")).unwrap(), BotConfig::default());
        let p = dir.path().join("b.toml");
        std::fs::write(&p, "memory_mb = 8\n[permissions]\noperations = [\"Reply\"]\n").unwrap();
        let c = load(&p).unwrap();
        assert_eq!(c.memory_mb, 8);
        assert_eq!(c.permissions.unwrap().operations, Some(vec![crate::schema::OpKind::Reply]));
        std::fs::write(&p, "memroy_mb = 8\n").unwrap();
        assert!(load(&p).unwrap_err().contains("memroy_mb"));
        std::fs::write(&p, "memory_mb = 0\n").unwrap();
        assert!(load(&p).is_err());
        for nonsense in [
            "cpu_ms = 18446744073709551615",
            "cpu_ms = 0",
            "ops_per_second = inf",
            "ops_per_second = nan",
            "ops_per_second = -1.0",
            "ops_burst = 0",
            "log_per_second = 1e300",
        ] {
            std::fs::write(&p, nonsense).unwrap();
            assert!(load(&p).is_err(), "{nonsense}");
        }
        std::fs::write(&p, "[permissions]\noperations = [\"Reply\", \"SendToGrop\"]\n").unwrap();
        let err = load(&p).unwrap_err();
        assert!(err.contains("SendToGrop") && err.contains("line 2"), "{err}");
        std::fs::write(&p, "cpu_ms = \"root:x:0:0:secret\"").unwrap();
        assert!(!load(&p).unwrap_err().contains("secret"), "never quotes the file");
    }
}
