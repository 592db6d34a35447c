//! The WIT world and the Rust lists agree: every operation a wasm bot may call
//! is a function of `interface operations`, and every error code is a case of
//! `enum error-code` (and no case is extra), so an edit to one side fails here.

use std::path::Path;

use botbridge::schema::{ErrorCode, OpKind};
use wit_parser::{Resolve, TypeDefKind, TypeOwner};

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Defined in a `botbridge:` package (wasi has an `error-code` too).
fn ours(resolve: &Resolve, owner: TypeOwner) -> bool {
    let TypeOwner::Interface(id) = owner else { return false };
    let package = resolve.interfaces[id].package.expect("named interface");
    resolve.packages[package].name.namespace == "botbridge"
}

fn world() -> Resolve {
    // wasi's WIT in wit/deps gates some items behind features.
    let mut resolve = Resolve { all_features: true, ..Default::default() };
    resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit")).expect("wit/ parses");
    resolve
}

#[test]
fn every_operation_but_the_sim_ones_is_a_wit_function() {
    let resolve = world();
    let (_, ops) = resolve.interfaces.iter().find(|(_, i)| i.name.as_deref() == Some("operations")).expect("interface");
    let mut expected: Vec<String> =
        OpKind::ALL.iter().map(|k| k.name()).filter(|n| !n.starts_with("Sim")).map(kebab).collect();
    let mut found: Vec<String> = ops.functions.keys().cloned().collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
}

#[test]
fn error_codes_are_the_wit_cases_and_the_wire_names() {
    let resolve = world();
    let cases = resolve
        .types
        .iter()
        .find_map(|(_, t)| match (&t.name, &t.kind) {
            (Some(n), TypeDefKind::Enum(e)) if n == "error-code" && ours(&resolve, t.owner) => {
                Some(e.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .expect("enum error-code");
    let ours: Vec<String> = ErrorCode::ALL.iter().map(|c| c.as_str().replace('_', "-")).collect();
    assert_eq!(cases, ours);
    for code in ErrorCode::ALL {
        let json = serde_json::to_string(code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
}
