//! The supervisor's words to a VMM's `control.sock`: thin adapters over the one control client
//! (`vmm_api::control::client`), which owns the protocol, the framing and the timeout.

use std::path::Path;

use vmm_api::control::client::Client;
use vmm_api::control::{Request, Response};

/// Why a VMM could not be asked or refused (the client's error, under the supervisor's name).
pub use vmm_api::control::client::ClientError as ControlError;

/// Sends one request and returns the answer, or the VMM's refusal as `ControlError::Refused`.
pub async fn request(socket: &Path, req: &Request) -> Result<Response, ControlError> {
    Client::new(socket).request(req).await
}

/// Sends a request without arguments by its protocol name (`"shutdown"`, `"stop"`, …).
pub async fn command(socket: &Path, cmd: &str) -> Result<Response, ControlError> {
    let req: Request =
        serde_json::from_value(serde_json::json!({ "cmd": cmd })).map_err(ControlError::BadRequest)?;
    request(socket, &req).await
}

/// The VMM's run state (`starting`, `running`, `paused`, ...).
pub async fn state(socket: &Path) -> Result<String, ControlError> {
    let status = Client::new(socket).status().await?;
    Ok(status.state.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_are_named_as_in_the_protocol() {
        let nobody = Path::new("/nonexistent/control.sock");
        assert!(matches!(
            command(nobody, "shutdown").await,
            Err(ControlError::Connect(_))
        ));
        assert!(matches!(
            command(nobody, "reboot-the-host").await,
            Err(ControlError::BadRequest(_))
        ));
    }
}
