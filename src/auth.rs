//! The client token: who may open `/ws`, the console's API and a reverse
//! OneBot link. Below every server module, so none borrows it from another.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// Compares in constant time (over the longer length).
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (blake3::hash(given.as_bytes()), blake3::hash(expected.as_bytes()));
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Checks `Authorization: Bearer` or `?token=` against the configured token.
pub fn authorized(expected: Option<&str>, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let Some(expected) = expected else { return true };
    let given = bearer(headers).or(query.get("token").map(String::as_str));
    given.is_some_and(|g| token_matches(g, expected))
}
