//! Guest bots for the tests, all built by `scripts/build-guests`: the real
//! examples, and the test probe (on the SDK, so a WIT change reaches it like
//! any bot) with its script patched in. Only guests that never call the host
//! (a loop, a trap, a memory bomb) are written here in WAT.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A built example guest, e.g. `target/guests/echo.wasm`.
pub fn example(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guests").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-guests first", path.display()))
}

/// The test probe (`guest-examples/test-probe`, on the SDK) with its script
/// patched in: `verb`, then `arg` (see the probe's header for the verbs).
/// Each script gives another file, so another version to the host.
fn probe(verb: &str, arg: &str) -> Vec<u8> {
    probe_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), verb, arg)
}

/// The probe as built under `target` (another checkout's, for a baseline).
pub fn probe_from(target: &Path, verb: &str, arg: &str) -> Vec<u8> {
    const MARKER: &[u8] = b"BOTBRIDGE-PROBE:";
    const SCRIPT_LEN: usize = 512;
    let path = target.join("test-guests/test-probe.wasm");
    let mut bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-guests first", path.display()));
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER).expect("the probe carries its script marker");
    let script = format!("{verb}\0{arg}\0");
    assert!(MARKER.len() + script.len() <= SCRIPT_LEN, "script too long: {script:?}");
    let start = at + MARKER.len();
    bytes[start..start + script.len()].copy_from_slice(script.as_bytes());
    bytes
}

/// Does nothing with any event: the cheapest bot the SDK makes.
pub fn idle() -> Vec<u8> {
    probe("idle", "")
}

/// Says TEXT in group 20001 for every group message.
pub fn sayer(text: &str) -> Vec<u8> {
    probe("say", text)
}

/// Recalls every group message it sees (the event's MessageSource ID).
pub fn recaller() -> Vec<u8> {
    probe("recall", "")
}

/// Tries to say "hi" on every group message and stores the result in kv
/// "count": byte 0 is 1 for an error, byte 4 its index in `error-code`.
pub fn result_recorder() -> Vec<u8> {
    probe("record-say", "")
}

/// Counts group messages in kv ("count", one byte); once the write is
/// acknowledged, says the count as a `Face` element.
pub fn counter() -> Vec<u8> {
    probe("count", "")
}

/// Sends "kept", stores its source ID in kv, then says "stored SOURCE-ID".
pub fn source_keeper() -> Vec<u8> {
    probe("keep-source", "")
}

/// On a group message, writes TEXT to stdout (WASI) and checks that no
/// directory is preopened; when both hold it says TEXT.
pub fn wasi_prober(text: &str) -> Vec<u8> {
    probe("wasi", text)
}

/// Says "flood" 200 times per event.
pub fn flood() -> Vec<u8> {
    probe("flood", "")
}

/// On every group message, tries to send an Image whose url is URL to group
/// 20001, and stores the result in kv "count" as `result_recorder` does.
pub fn image_sender(url: &str) -> Vec<u8> {
    probe("image", url)
}

/// Logs 50 lines of one MiB each (NUL characters) at info for every event.
pub fn log_flood() -> Vec<u8> {
    probe("log-flood", "")
}

/// A component whose `handle` runs BODY: for guests that misbehave without
/// calling the host (loop, trap, memory bomb), so they need no bindings. The
/// module only exports memory, a bump allocator, `setup`, `handle` and `on-timer`.
fn misbehaving(body: &str) -> Vec<u8> {
    misbehaving_from_setup("", body)
}

/// A component whose `setup` traps: it never gets past init.
pub fn failing_setup() -> Vec<u8> {
    misbehaving_from_setup("unreachable", "")
}

/// `misbehaving`, with SETUP as the body of `setup`.
fn misbehaving_from_setup(setup: &str, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok (i32.ne (memory.grow (i32.add (i32.div_u (global.get $bump) (i32.const 65536)) (i32.const 1))) (i32.const -1)))
      unreachable)
    (local.get $p))
  (func $recurse (param i32) (result i32) (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "setup") {setup})
  (func (export "on-timer") (param i32 i32))
  (func (export "handle") (param $e i32)
    {body}
    (global.set $bump (i32.const 4096)))
)"#
    );
    let mut module = wat::parse_str(&wat).expect("valid WAT");
    let mut resolve = wit_parser::Resolve { all_features: true, ..Default::default() };
    let (pkg, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit")).expect("wit/ parses");
    let world = resolve.select_world(&[pkg], Some("bot")).expect("world bot");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("embed");
    wit_component::ComponentEncoder::default().module(&module).expect("module").validate(true).encode().expect("encode")
}

pub fn infinite_loop() -> Vec<u8> {
    misbehaving("(loop $forever (br $forever))")
}

pub fn trap() -> Vec<u8> {
    misbehaving("unreachable")
}

/// Grows memory a MiB at a time until refused, then traps.
pub fn memory_bomb() -> Vec<u8> {
    misbehaving("(loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable")
}

pub fn deep_recursion() -> Vec<u8> {
    misbehaving("(drop (call $recurse (i32.const 0)))")
}

/// Writes `bytes` as `dir/NAME.wasm`.
pub fn install(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bots dir");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write bot");
    path
}

/// Writes `NAME.toml` beside the bots.
pub fn write_toml(dir: &Path, name: &str, toml: &str) {
    std::fs::create_dir_all(dir).expect("bots dir");
    std::fs::write(dir.join(format!("{name}.toml")), toml).expect("write toml");
}

/// Polls `cond` until it holds or 60 s pass (a compile of a big Python or
/// JavaScript bot in a parallel test can hold the compiler threads for a while).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same component with a custom section appended: another file with
/// another hash, the same code (a "new version" for reload tests).
pub fn with_custom_section(component: &[u8], name: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Runs the command each group message carries (timers, HTTP, config; see the
/// probe's `cmd` verb) and says the outcome in group 20001; says `fired TAG`
/// when a timer fires.
pub fn commander() -> Vec<u8> {
    probe("cmd", "")
}
