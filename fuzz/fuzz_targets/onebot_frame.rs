//! A OneBot frame (JSON, with messages as segment arrays or CQ strings) mapped
//! to our events, and a CQ string parsed: never a panic.
#![no_main]
use botbridge::backend::onebot::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = wire::elements(&wire::parse_cq(text));
    if let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = wire::event(&frame, botbridge::ids::AccountId(123_456));
        if let Some(message) = frame.get("message") {
            let _ = wire::elements(&wire::segments(message));
        }
    }
});
