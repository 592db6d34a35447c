//! Guest bots for the tests: the real examples built by `scripts/build-guests`,
//! and small hostile or probing components made here from WAT.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A built example guest, e.g. `target/guests/echo.wasm`.
pub fn example(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guests").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-guests first", path.display()))
}

/// A component of the `bot` world from a core module in WAT.
pub fn component(wat: &str) -> Vec<u8> {
    encode(wat, None)
}

/// WAT → core module → component of the `bot` world, with a WASI adapter if given.
fn encode(wat: &str, adapter: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("valid WAT");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit")).expect("wit/ parses");
    let world = resolve.select_world(&[pkg], Some("bot")).expect("world bot");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("embed");
    let mut encoder = wit_component::ComponentEncoder::default().module(&module).expect("module");
    if let Some((name, bytes)) = adapter {
        encoder = encoder.adapter(name, bytes).expect("adapter");
    }
    encoder.validate(true).encode().expect("encode")
}

/// The module around a `handle` body: memory, a bump allocator reset after each
/// event, `init`, and the imports the bodies use.
///
/// Static data: at 64 one `element::plain` (tag 1 at +0, string at +8/+12)
/// pointing at TEXT at 128; 256.. is a return area.
pub fn module(text: &str, handle_body: &str) -> String {
    module_with(text, "", handle_body)
}

/// `module` with more imports.
pub fn module_with(text: &str, imports: &str, handle_body: &str) -> String {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    let len = text.len();
    format!(
        r#"(module
  (import "botbridge:bot/operations@0.1.0" "send-to-group" (func $send (param i32 i64 i64 i32 i32 i32)))
  (import "botbridge:bot/operations@0.1.0" "recall" (func $recall (param i32 i32 i32)))
  (import "botbridge:bot/kv@0.1.0" "get" (func $kv_get (param i32 i32 i32)))
  (import "botbridge:bot/kv@0.1.0" "set" (func $kv_set (param i32 i32 i32 i32 i32)))
  {imports}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 64) "\01")
  (data (i32.const 72) "\80\00\00\00")
  (data (i32.const 76) "{len_bytes}")
  (data (i32.const 128) "{escaped}")
  (data (i32.const 200) "count")
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
  (func $say (call $send (i32.const 0) (i64.const 0) (i64.const 20001) (i32.const 64) (i32.const 1) (i32.const 256)))
  (func $is_group_message (param $e i32) (result i32)
    (i32.and (i32.eqz (i32.load8_u offset=24 (local.get $e))) (i32.eqz (i32.load8_u offset=32 (local.get $e)))))
  (func $recurse (param i32) (result i32) (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "init"))
  (func (export "handle") (param $e i32)
    {handle_body}
    (global.set $bump (i32.const 4096)))
)"#,
        len_bytes = (len as u32).to_le_bytes().iter().map(|b| format!("\\{b:02x}")).collect::<String>(),
    )
}

/// Says TEXT in group 20001 for every group message.
pub fn sayer(text: &str) -> Vec<u8> {
    component(&module(text, "(if (call $is_group_message (local.get $e)) (then (call $say)))"))
}

/// Recalls every group message it sees (the event's MessageSource ID).
pub fn recaller() -> Vec<u8> {
    // event: data tag @24, message-event tag @32, group-message @40, its message list @40+80.
    component(&module(
        "",
        r#"(local $list i32)
        (if (call $is_group_message (local.get $e)) (then
          (local.set $list (i32.load offset=120 (local.get $e)))
          (call $recall (i32.load offset=8 (local.get $list)) (i32.load offset=12 (local.get $list)) (i32.const 256))))"#,
    ))
}

/// Tries to say "hi" on every group message and stores the raw result bytes
/// (tag at 0, error code at 4) in kv under "count".
pub fn result_recorder() -> Vec<u8> {
    component(&module(
        "hi",
        r#"(if (call $is_group_message (local.get $e)) (then
          (call $say)
          (call $kv_set (i32.const 200) (i32.const 5) (i32.const 256) (i32.const 8) (i32.const 512))))"#,
    ))
}

/// Counts group messages in kv ("count", one byte); once the write is
/// acknowledged, says the count as a `Face` element (tag 4, s64 at +8).
pub fn counter() -> Vec<u8> {
    component(&module(
        "",
        r#"(local $n i32)
        (if (call $is_group_message (local.get $e)) (then
          (call $kv_get (i32.const 200) (i32.const 5) (i32.const 512))
          (if (i32.load8_u (i32.const 512))
            (then (local.set $n (i32.load8_u (i32.load (i32.const 516))))))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (i32.store8 (i32.const 600) (local.get $n))
          (call $kv_set (i32.const 200) (i32.const 5) (i32.const 600) (i32.const 1) (i32.const 512))
          (i32.store8 (i32.const 704) (i32.const 4))
          (i64.store (i32.const 712) (i64.extend_i32_u (local.get $n)))
          (call $send (i32.const 0) (i64.const 0) (i64.const 20001) (i32.const 704) (i32.const 1) (i32.const 256))))"#,
    ))
}

pub fn infinite_loop() -> Vec<u8> {
    component(&module("", "(loop $forever (br $forever))"))
}

pub fn trap() -> Vec<u8> {
    component(&module("", "unreachable"))
}

/// Grows memory a MiB at a time until refused, then traps.
pub fn memory_bomb() -> Vec<u8> {
    component(&module(
        "",
        "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable",
    ))
}

pub fn deep_recursion() -> Vec<u8> {
    component(&module("", "(drop (call $recurse (i32.const 0)))"))
}

/// A guest that imports WASI (through the preview1 adapter): on a group message
/// it writes TEXT to stdout and checks that fd 3 is not a preopened directory;
/// when both hold it says TEXT.
pub fn wasi_prober(text: &str) -> Vec<u8> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME as NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as ADAPTER,
    };
    let wat = module_with(
        text,
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))"#,
        r#"(if (call $is_group_message (local.get $e)) (then
          (i32.store (i32.const 800) (i32.const 128))
          (i32.store (i32.const 804) (i32.load (i32.const 76)))
          (if (i32.and
                (i32.eqz (call $fd_write (i32.const 1) (i32.const 800) (i32.const 1) (i32.const 808)))
                (i32.ne (call $prestat (i32.const 3) (i32.const 816)) (i32.const 0)))
            (then (call $say)))))"#,
    );
    encode(&wat, Some((NAME, ADAPTER)))
}

/// Says "flood" 200 times per event.
pub fn flood() -> Vec<u8> {
    component(&module(
        "flood",
        r#"(local $i i32)
        (loop $again
          (call $say)
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 200))))"#,
    ))
}

/// Writes `bytes` as `dir/NAME.wasm`.
pub fn install(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bots dir");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write bot");
    path
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

/// On every group message, tries to send an Image whose url is URL to group
/// 20001, and stores the raw result (tag at 0, error code at 4) in kv "count".
pub fn image_sender(url: &str) -> Vec<u8> {
    // element::image is tag 5: id (empty) at +8/+12, url at +16/+20 (URL is at 128).
    component(&module(
        url,
        r#"(if (call $is_group_message (local.get $e)) (then
          (i32.store8 (i32.const 704) (i32.const 5))
          (i32.store (i32.const 712) (i32.const 128))
          (i32.store (i32.const 716) (i32.const 0))
          (i32.store (i32.const 720) (i32.const 128))
          (i32.store (i32.const 724) (i32.load (i32.const 76)))
          (call $send (i32.const 0) (i64.const 0) (i64.const 20001) (i32.const 704) (i32.const 1) (i32.const 256))
          (call $kv_set (i32.const 200) (i32.const 5) (i32.const 256) (i32.const 8) (i32.const 512))))"#,
    ))
}

/// Logs 50 lines of one MiB each (NUL characters) at info for every event.
pub fn log_flood() -> Vec<u8> {
    component(&module_with(
        "",
        r#"(import "botbridge:bot/log@0.1.0" "log" (func $log (param i32 i32 i32)))"#,
        r#"(local $i i32)
        (if (i32.lt_u (memory.size) (i32.const 40)) (then (drop (memory.grow (i32.const 40)))))
        (loop $again
          (call $log (i32.const 2) (i32.const 1048576) (i32.const 1048576))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 50))))"#,
    ))
}
