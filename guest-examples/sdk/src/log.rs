//! Log lines, shown under the bot's name in the bridge's log.

use crate::bindings::botbridge::bot::log::{self as wit, Level};

pub fn trace(message: impl AsRef<str>) {
    wit::log(Level::Trace, message.as_ref())
}

pub fn debug(message: impl AsRef<str>) {
    wit::log(Level::Debug, message.as_ref())
}

pub fn info(message: impl AsRef<str>) {
    wit::log(Level::Info, message.as_ref())
}

pub fn warn(message: impl AsRef<str>) {
    wit::log(Level::Warn, message.as_ref())
}

pub fn error(message: impl AsRef<str>) {
    wit::log(Level::Error, message.as_ref())
}
