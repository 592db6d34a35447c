//! Every protocol fixture (tests/fixtures/) parses as its schema type and serializes back
//! to equivalent JSON (see tests/fixtures/README.md for the slips fixed).

use std::path::Path;

use botbridge::schema::{Element, Event, FriendModel, GroupModel, MemberModel, MessageChain, MessageEvent, Operation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn round_trip<T: DeserializeOwned + Serialize>(dir: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut n = 0;
    for entry in std::fs::read_dir(&path).expect("fixture folder") {
        let file = entry.expect("entry").path();
        let text = std::fs::read_to_string(&file).expect("fixture");
        let original: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let parsed: T = serde_json::from_value(original.clone())
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        let back = serde_json::to_value(&parsed).expect("serializes");
        // `PlainText` is accepted on input and written as `Plain`.
        let expected: Value = serde_json::from_str(&text.replace("\"PlainText\"", "\"Plain\"")).expect("JSON");
        assert_eq!(back, expected, "{} does not round-trip", file.display());
        n += 1;
    }
    n
}

#[test]
fn seed_examples_round_trip() {
    let n = round_trip::<FriendModel>("FriendModel")
        + round_trip::<MemberModel>("MemberModel")
        + round_trip::<GroupModel>("GroupModel")
        + round_trip::<MessageChain>("MessageChain")
        + round_trip::<Element>("Element")
        + round_trip::<MessageEvent>("MessageEvent")
        + round_trip::<Operation>("Operation")
        + round_trip::<Event>("Event");
    assert!(n >= 40, "only {n} fixtures found");
}

#[test]
fn every_element_kind_has_a_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Element");
    let kinds: std::collections::BTreeSet<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(e.expect("e").path()).expect("read")).expect("json");
            v["type"].as_str().expect("type").replace("PlainText", "Plain")
        })
        .collect();
    for kind in [
        "MessageSource",
        "Plain",
        "At",
        "AtAll",
        "Face",
        "Image",
        "FlashImage",
        "Poke",
        "Voice",
        "Quote",
        "LightApp",
        "Service",
    ] {
        assert!(kinds.contains(kind), "no fixture for {kind}");
    }
}
