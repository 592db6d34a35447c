//! The bridge's config file and a bot's `NAME.toml`: a clear error or a
//! checked value, never a panic; a refusal never quotes a value of the file.
#![no_main]
use botbridge::config::FileConfig;
use botbridge::wasm::limits::BotConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = BotConfig::parse(Some(data));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = FileConfig::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
