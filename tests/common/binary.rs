//! The real `botbridge` binary as a child process (the crash tests and the
//! echo bench).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `cmd` (a `botbridge serve` on port 0) and returns the child and the
/// WebSocket URL it logs; its log is drained from then on, so it never blocks
/// on a full pipe.
pub fn spawn_bridge(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the botbridge binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("the bridge logs its address").expect("read");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}
