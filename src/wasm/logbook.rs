//! Every bot's recent log lines (its own `log` calls, its stdout and stderr,
//! and what the host did to it), and a feed of them and of status changes for
//! live views such as the dev console. Bounded: a bot that logs in a loop
//! overwrites its own oldest lines and nobody else's.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

/// Lines kept per bot.
pub const LINES_PER_BOT: usize = 200;
/// Longest line kept, in bytes; longer lines are cut.
pub const MAX_LINE: usize = 4096;

/// `message` cut to at most `MAX_LINE` bytes, on a character boundary.
pub fn cut(message: &str) -> &str {
    let mut end = message.len().min(MAX_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// How a line came: a bot's `log` call at its level, its stdout or stderr,
/// or the host saying what it did (at `Info`, `Warn` or `Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub bot: String,
    /// Unix time, milliseconds.
    pub time: u64,
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum HostUpdate {
    Log(LogLine),
    /// A bot was loaded, refused, unloaded, failed or parked.
    Status,
}

pub struct Logbook {
    lines: Mutex<HashMap<String, VecDeque<LogLine>>>,
    /// Lines each bot logged past its rate, dropped.
    dropped: Mutex<HashMap<String, u64>>,
    feed: broadcast::Sender<HostUpdate>,
}

impl Default for Logbook {
    fn default() -> Self {
        Self {
            lines: Mutex::new(HashMap::new()),
            dropped: Mutex::new(HashMap::new()),
            feed: broadcast::channel(1024).0,
        }
    }
}

impl Logbook {
    pub fn record(&self, bot: &str, level: LogLevel, message: &str) {
        let message = cut(message).to_owned();
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let line = LogLine { bot: bot.to_owned(), time, level, message };
        {
            let mut lines = self.lines.lock();
            let ring = lines.entry(bot.to_owned()).or_default();
            if ring.len() == LINES_PER_BOT {
                ring.pop_front();
            }
            ring.push_back(line.clone());
        }
        let _ = self.feed.send(HostUpdate::Log(line));
    }

    /// Counts a line bot `bot` logged past its rate.
    pub fn note_dropped(&self, bot: &str) {
        *self.dropped.lock().entry(bot.to_owned()).or_default() += 1;
    }

    /// Lines bot `bot` logged past its rate, ever.
    pub fn dropped(&self, bot: &str) -> u64 {
        self.dropped.lock().get(bot).copied().unwrap_or(0)
    }

    pub fn changed(&self) {
        let _ = self.feed.send(HostUpdate::Status);
    }

    /// Bot `bot`'s kept lines, oldest first.
    pub fn recent(&self, bot: &str) -> Vec<LogLine> {
        self.lines.lock().get(bot).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every bot's kept lines, oldest first per bot.
    pub fn all_recent(&self) -> Vec<LogLine> {
        let lines = self.lines.lock();
        let mut names: Vec<_> = lines.keys().cloned().collect();
        names.sort();
        names.iter().flat_map(|n| lines[n].iter().cloned()).collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HostUpdate> {
        self.feed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatty_bot_only_overwrites_its_own_lines() {
        let book = Logbook::default();
        book.record("quiet", LogLevel::Info, "hello");
        for i in 0..1000 {
            book.record("chatty", LogLevel::Info, &format!("line {i}"));
        }
        book.record("long", LogLevel::Info, &"é".repeat(MAX_LINE));
        assert_eq!(book.recent("quiet").len(), 1);
        let chatty = book.recent("chatty");
        assert_eq!(chatty.len(), LINES_PER_BOT);
        assert_eq!(chatty[0].message, "line 800");
        assert!(book.recent("long")[0].message.len() <= MAX_LINE);
    }
}
