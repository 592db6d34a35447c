//! Timers: the bridge calls [`Bot::on_timer`](crate::Bot::on_timer) with the
//! tag when one fires, in the same queue as events. Timers belong to the bot,
//! not to one build of it: they survive hot reloads and restarts. Setting a
//! tag again replaces that timer.
//!
//! ```ignore
//! timers::after("tea", Duration::from_secs(120))?;
//! timers::every("poll", Duration::from_secs(600))?;
//! timers::cron("morning", "0 9 * * mon-fri", Some("Asia/Shanghai"))?;
//! ```

use std::time::Duration;

use crate::bindings::botbridge::bot::timers as wit;

pub use wit::{Cron, Schedule, Timer, TimerError};

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// Fires once, `delay` from now.
pub fn after(tag: &str, delay: Duration) -> Result<(), TimerError> {
    wit::set(tag, &Schedule::After(ms(delay)))
}

/// Fires once at `unix_ms` (at once if that has passed).
pub fn at(tag: &str, unix_ms: i64) -> Result<(), TimerError> {
    wit::set(tag, &Schedule::At(unix_ms))
}

/// Fires every `period`, the first time one period from now.
pub fn every(tag: &str, period: Duration) -> Result<(), TimerError> {
    wit::set(tag, &Schedule::Every(ms(period)))
}

/// Fires on a five-field cron schedule, in an IANA time zone (None: UTC).
pub fn cron(tag: &str, expression: &str, time_zone: Option<&str>) -> Result<(), TimerError> {
    let cron = Cron { expression: expression.to_owned(), time_zone: time_zone.map(str::to_owned) };
    wit::set(tag, &Schedule::Cron(cron))
}

/// Cancels a timer; false when there was none with this tag.
pub fn cancel(tag: &str) -> Result<bool, TimerError> {
    wit::cancel(tag)
}

/// Every timer of the bot, soonest first.
pub fn list() -> Vec<Timer> {
    wit::list()
}
