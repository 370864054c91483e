//! The console proxy: pumps bytes between a browser's WebSocket and one of a VMM's unix sockets
//! (`vnc.sock`: RFB for noVNC, `serial.sock`: raw serial for xterm.js).
//!
//! Backpressure: each direction reads one chunk and awaits its write before reading the next, so nothing is
//! buffered beyond one chunk per direction; a slow browser slows the VMM's writes, not our memory. Client
//! messages are capped (`Limits::max_message`, closed with 1009), a client silent for `Limits::idle` is
//! closed, and the session ends when the VM leaves `running` (the supervisor's broadcast) or the VMM closes
//! the socket. Pings are answered by the WebSocket layer.

use std::time::Duration;

use app::model::VmState;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::vm::VmChange;

/// Largest message a client may send (RFB client messages are tiny; a paste is typed key by key).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// A console with no client input for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes read from the VMM socket per WebSocket message.
const CHUNK: usize = 64 * 1024;

/// Close codes (RFC 6455 §7.4.1).
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const PROTOCOL_ERROR: u16 = 1002;
const TOO_BIG: u16 = 1009;
const INTERNAL: u16 = 1011;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message: usize,
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: MAX_CLIENT_MESSAGE,
            idle: IDLE_TIMEOUT,
        }
    }
}

/// Why a console session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyEnd {
    #[error("The VM stopped")]
    VmStopped,
    #[error("The VMM closed the console")]
    SocketClosed,
    #[error("The VMM console socket failed")]
    SocketFailed,
    #[error("The browser closed the console")]
    ClientClosed,
    #[error("A message was larger than 64 KiB")]
    TooBig,
    #[error("No input for 10 minutes")]
    Idle,
    #[error("The browser sent an invalid WebSocket frame")]
    ClientFailed,
}

impl ProxyEnd {
    /// The close frame sent to the browser, if it is still there.
    fn close_frame(self) -> Option<CloseFrame> {
        let code = match self {
            Self::VmStopped | Self::SocketClosed => GOING_AWAY,
            Self::SocketFailed => INTERNAL,
            Self::ClientClosed => return None,
            Self::TooBig => TOO_BIG,
            Self::Idle => NORMAL,
            Self::ClientFailed => PROTOCOL_ERROR,
        };
        Some(CloseFrame {
            code,
            reason: self.to_string().into(),
        })
    }
}

/// Runs one console session to its end and says why it ended.
pub async fn run(
    ws: WebSocket,
    vmm: UnixStream,
    vm_id: &str,
    changes: broadcast::Receiver<VmChange>,
    limits: Limits,
) -> ProxyEnd {
    let (mut sink, mut stream) = ws.split();
    let (mut vmm_read, mut vmm_write) = vmm.into_split();
    let end = {
        let down = to_browser(&mut vmm_read, &mut sink);
        let up = to_vmm(&mut stream, &mut vmm_write, limits);
        let stopped = vm_stopped(changes, vm_id);
        tokio::select! {
            end = down => end,
            end = up => end,
            end = stopped => end,
        }
    };
    if let Some(frame) = end.close_frame() {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
    end
}

/// VMM → browser, one chunk (≤ 64 KiB) at a time; the next read waits until the browser's socket took the
/// last one.
async fn to_browser(vmm: &mut OwnedReadHalf, sink: &mut SplitSink<WebSocket, Message>) -> ProxyEnd {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut n = match vmm.read(&mut buf).await {
            Ok(0) => return ProxyEnd::SocketClosed,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "console socket read failed");
                return ProxyEnd::SocketFailed;
            }
        };
        // RFB is a byte stream: what the VMM has already written goes out as one message, so many small
        // updates cost one WebSocket frame and one flush, not one each.
        let mut eof = false;
        while let Some(rest) = buf.get_mut(n..).filter(|r| !r.is_empty()) {
            match vmm.try_read(rest) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(m) => n += m,
                Err(_) => break,
            }
        }
        let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        if sink.send(Message::Binary(chunk)).await.is_err() {
            return ProxyEnd::ClientClosed;
        }
        if eof {
            return ProxyEnd::SocketClosed;
        }
    }
}

/// Browser → VMM: data messages are written whole before the next is read; control messages are skipped.
async fn to_vmm(stream: &mut SplitStream<WebSocket>, vmm: &mut OwnedWriteHalf, limits: Limits) -> ProxyEnd {
    let mut deadline = Instant::now() + limits.idle;
    loop {
        let msg = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return ProxyEnd::Idle,
            Ok(None) => return ProxyEnd::ClientClosed,
            Ok(Some(Err(e))) => return classify(&e),
            Ok(Some(Ok(msg))) => msg,
        };
        let data = match msg {
            Message::Binary(data) => data,
            Message::Text(text) => Bytes::from(text),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return ProxyEnd::ClientClosed,
        };
        if data.len() > limits.max_message {
            return ProxyEnd::TooBig;
        }
        deadline = Instant::now() + limits.idle;
        if let Err(e) = vmm.write_all(&data).await {
            tracing::debug!(error = %e, "console socket write failed");
            return ProxyEnd::SocketClosed;
        }
    }
}

/// A read error from the WebSocket layer: over its own size limit, or a broken frame.
fn classify(err: &axum::Error) -> ProxyEnd {
    let text = err.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        ProxyEnd::TooBig
    } else {
        tracing::debug!(error = %text, "console WebSocket read failed");
        ProxyEnd::ClientFailed
    }
}

/// Resolves when the supervisor reports the VM leaving `running`.
async fn vm_stopped(mut changes: broadcast::Receiver<VmChange>, vm_id: &str) -> ProxyEnd {
    loop {
        match changes.recv().await {
            Ok(change) if change.vm_id == vm_id && change.state != VmState::Running => {
                return ProxyEnd::VmStopped;
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            // No more broadcasts: the socket's end still ends the session.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_but_the_clients_own_close_sends_a_reasoned_close_frame() {
        assert_eq!(ProxyEnd::TooBig.close_frame().unwrap().code, 1009);
        assert_eq!(ProxyEnd::VmStopped.close_frame().unwrap().code, 1001);
        assert!(ProxyEnd::ClientClosed.close_frame().is_none());
        let idle = ProxyEnd::Idle.close_frame().unwrap();
        assert_eq!(idle.code, 1000);
        assert!(idle.reason.as_str().contains("No input"));
    }
}
