//! Calls to the implementation: each gets an `echo`, waits for the answer with
//! that `echo` or fails (`timeout`, or `offline` when the link drops, never
//! resent, so nothing is done twice).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{Inner, wire};
use crate::schema::{ErrorCode, OpError};

fn offline(message: &str) -> OpError {
    OpError::new(ErrorCode::Offline, message)
}

impl Inner {
    pub(super) async fn call(&self, action: &str, params: Value) -> Result<Value, OpError> {
        let echo = format!("bb{}", self.next_echo.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(echo.clone(), tx);
        let frame = json!({"action": action, "params": params, "echo": echo}).to_string();
        let sent = self.link.lock().as_ref().is_some_and(|l| l.out.send(frame).is_ok());
        if !sent {
            self.pending.lock().remove(&echo);
            return Err(offline("the account is not connected to its OneBot implementation"));
        }
        match tokio::time::timeout(self.config.call_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(offline(&format!(
                "{action}: the connection dropped before an answer; it may or may not have been done"
            ))),
            Err(_) => {
                self.pending.lock().remove(&echo);
                Err(OpError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{action}: no answer within {:?}; it may or may not have been done",
                        self.config.call_timeout
                    ),
                ))
            }
        }
    }

    /// Hands an answer frame to the call waiting for its `echo`.
    pub(super) fn answer(&self, frame: &Value) {
        let Some(echo) = frame.get("echo").and_then(Value::as_str) else {
            return tracing::debug!("ignoring a frame with neither post_type nor echo");
        };
        let Some(waiter) = self.pending.lock().remove(echo) else {
            return tracing::debug!(echo, "an answer to no pending call (late, after a timeout?)");
        };
        let retcode = frame.get("retcode").and_then(wire::int).unwrap_or(-1);
        let ok = frame.get("status").and_then(Value::as_str).map_or(retcode == 0, |s| s == "ok" || s == "async");
        let result = if ok || retcode == 0 || retcode == 1 {
            Ok(frame.get("data").cloned().unwrap_or(Value::Null))
        } else {
            let why = ["wording", "msg", "message"]
                .iter()
                .find_map(|k| frame.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
                .unwrap_or("no reason given");
            Err(OpError::new(ErrorCode::UpstreamError, format!("OneBot retcode {retcode}: {why}")))
        };
        let _ = waiter.send(result);
    }
}
