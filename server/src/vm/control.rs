//! Client of a VMM's `control.sock`: one JSON request line, one JSON response line.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("Failed to reach the VMM control socket")]
    Connect(#[source] std::io::Error),
    #[error("The VMM control socket failed")]
    Io(#[source] std::io::Error),
    #[error("The VMM did not answer in time")]
    Timeout,
    #[error("The VMM sent an invalid answer")]
    Invalid,
    #[error("The VMM refused: {0}")]
    Refused(String),
}

/// Longest we wait for one answer; the VMM answers from its own thread, independent of the guest.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one request and returns the answer, or the VMM's error.
pub async fn request(socket: &Path, req: &Value) -> Result<Value, ControlError> {
    let exchange = async {
        let stream = UnixStream::connect(socket).await.map_err(ControlError::Connect)?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(req).map_err(|_| ControlError::Invalid)?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(ControlError::Io)?;
        let mut answer = String::new();
        BufReader::new(read)
            .read_line(&mut answer)
            .await
            .map_err(ControlError::Io)?;
        let value: Value = serde_json::from_str(&answer).map_err(|_| ControlError::Invalid)?;
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(value)
        } else {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            Err(ControlError::Refused(msg.to_string()))
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout)?
}

/// Sends `{"cmd": <cmd>}`.
pub async fn command(socket: &Path, cmd: &str) -> Result<Value, ControlError> {
    request(socket, &serde_json::json!({ "cmd": cmd })).await
}

/// The VMM's run state (`starting`, `running`, `paused`, ...).
pub async fn state(socket: &Path) -> Result<String, ControlError> {
    let v = command(socket, "status").await?;
    v.get("state")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(ControlError::Invalid)
}
