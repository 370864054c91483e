//! The console proxy: pumps bytes between a browser's WebSocket and one of a VMM's unix sockets
//! (`vnc.sock`: RFB for noVNC, `serial.sock`: raw serial for xterm.js).
//!
//! Both directions treat the WebSocket as a byte pipe (RFB and a serial line are byte streams), so frames
//! are forwarded as they come — fragments included — and nothing is reassembled or buffered per message.
//!
//! Cost per byte is what bounds how many consoles a host serves: VMM → browser, one `read` from the unix
//! socket fills a buffer and one vectored `write` sends the frame header and that buffer to the browser
//! (`fastwebsockets`), so a byte is copied twice, both times by the kernel, and never in user space.
//!
//! Backpressure: each direction reads one chunk and awaits its write before reading the next, so nothing is
//! buffered beyond one chunk per direction; a slow browser slows the VMM's writes, not our memory. Client
//! frames are capped (`Limits::max_message`, closed with 1009 as soon as the header announces more), a
//! client silent for `Limits::idle` is closed, and the session ends when the VM stops (the supervisor's
//! broadcast) or the VMM closes the socket. Pings are answered and a client's close is
//! echoed by the WebSocket layer. A frame to the browser is never cut short by the session ending: the
//! close frame that follows must land on a frame boundary.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use app::model::VmState;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError, WebSocketRead, WebSocketWrite};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::vm::VmChange;

/// Largest frame a client may send (RFB client messages are tiny; a paste is typed key by key).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// A console with no client input for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest read from the VMM socket, so the largest frame sent to the browser.
const CHUNK: usize = 256 * 1024;
/// How long a frame already being written may still take once the session has ended.
const FINISH_WRITE: Duration = Duration::from_secs(5);
/// How long we wait for the browser's reply to our close frame before dropping the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Close codes (RFC 6455 §7.4.1).
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const PROTOCOL_ERROR: u16 = 1002;
/// The user's access was revoked (disabled, password reset or changed, token revoked).
const POLICY_VIOLATION: u16 = 1008;
const TOO_BIG: u16 = 1009;
const INTERNAL: u16 = 1011;

type Reader<S> = WebSocketRead<ReadHalf<S>>;
type Writer<S> = Mutex<WebSocketWrite<WriteHalf<S>>>;

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
    /// The user's access was revoked; the reason is shown on the console page.
    #[error("{0}")]
    Revoked(&'static str),
}

impl ProxyEnd {
    /// The close code and reason sent to the browser, if it is still there.
    fn close_frame(self) -> Option<(u16, String)> {
        let code = match self {
            Self::VmStopped | Self::SocketClosed => GOING_AWAY,
            Self::SocketFailed => INTERNAL,
            Self::ClientClosed => return None,
            Self::TooBig => TOO_BIG,
            Self::Idle => NORMAL,
            Self::ClientFailed => PROTOCOL_ERROR,
            Self::Revoked(_) => POLICY_VIOLATION,
        };
        Some((code, self.to_string()))
    }

    /// Whether the browser's side of the stream is still well-formed, so its close reply can be awaited.
    fn client_stream_intact(self) -> bool {
        !matches!(self, Self::TooBig | Self::ClientFailed | Self::ClientClosed)
    }
}

/// Runs one console session to its end and says why it ended.
pub async fn run<S>(
    ws: WebSocket<S>,
    vmm: UnixStream,
    vm_id: &str,
    changes: broadcast::Receiver<VmChange>,
    limits: Limits,
) -> ProxyEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    run_until(ws, vmm, vm_id, changes, limits, std::future::pending()).await
}

/// `run`, ended also when `revoked` resolves (with the reason sent in the close frame, code 1008).
pub async fn run_until<S, R>(
    ws: WebSocket<S>,
    vmm: UnixStream,
    vm_id: &str,
    changes: broadcast::Receiver<VmChange>,
    limits: Limits,
    revoked: R,
) -> ProxyEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Future<Output = &'static str>,
{
    let (mut read, write) = ws.split(tokio::io::split);
    // fastwebsockets refuses a frame whose length is >= this, before reading its payload.
    read.set_max_message_size(limits.max_message.saturating_add(1));
    let write = Mutex::new(write);
    let (mut vmm_read, mut vmm_write) = vmm.into_split();
    let end = {
        let up = to_vmm(&mut read, &write, &mut vmm_write, limits);
        let stopped = vm_stopped(changes, vm_id);
        let others = async {
            tokio::select! {
                end = up => end,
                end = stopped => end,
                reason = revoked => ProxyEnd::Revoked(reason),
            }
        };
        to_browser(&mut vmm_read, &write, others).await
    };
    let mut write = write.into_inner();
    if let Some((code, reason)) = end.close_frame() {
        let closed = write.write_frame(Frame::close(code, reason.as_bytes())).await;
        if closed.is_ok() && end.client_stream_intact() {
            let _ = tokio::time::timeout(CLOSE_WAIT, close_reply(&mut read)).await;
        }
    }
    end
}

/// VMM → browser, one chunk (≤ `CHUNK`) at a time; the next read waits until the browser's socket took the
/// last one. One read takes everything the VMM has queued, so many small RFB updates cost one frame and one
/// write, not one each. `others` (browser input, VM stop) ends the session, but only between frames.
async fn to_browser<S, F>(vmm: &mut OwnedReadHalf, write: &Writer<S>, others: F) -> ProxyEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ProxyEnd>,
{
    let mut others = pin!(others);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = tokio::select! {
            biased;
            end = &mut others => return end,
            read = vmm.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) => return ProxyEnd::SocketClosed,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "console socket read failed");
                return ProxyEnd::SocketFailed;
            }
        };
        let payload = Payload::Borrowed(buf.get(..n).unwrap_or_default());
        let mut sent = pin!(async { write.lock().await.write_frame(Frame::binary(payload)).await });
        // Browser input keeps flowing while a large frame is on its way out.
        let mut ended = None;
        let written = loop {
            tokio::select! {
                written = &mut sent => break Some(written),
                end = &mut others, if ended.is_none() => ended = Some(end),
            }
            if ended.is_some() {
                break tokio::time::timeout(FINISH_WRITE, &mut sent).await.ok();
            }
        };
        match (written, ended) {
            (Some(Ok(())), Some(end)) => return end,
            (Some(Ok(())), None) => {}
            (Some(Err(e)), _) => {
                tracing::debug!(error = %e, "console WebSocket write failed");
                return ProxyEnd::ClientClosed;
            }
            // The browser took nothing for `FINISH_WRITE` after the session ended.
            (None, _) => return ProxyEnd::ClientClosed,
        }
    }
}

/// Browser → VMM: each data frame's payload is written whole before the next frame is read.
async fn to_vmm<S>(
    read: &mut Reader<S>,
    write: &Writer<S>,
    vmm: &mut OwnedWriteHalf,
    limits: Limits,
) -> ProxyEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Pongs and the echo of a client's close go out through the shared write half.
    let mut obligated = |frame: Frame<'static>| async move { write.lock().await.write_frame(frame).await };
    let mut deadline = Instant::now() + limits.idle;
    loop {
        let frame = match tokio::time::timeout_at(deadline, read.read_frame(&mut obligated)).await {
            Err(_) => return ProxyEnd::Idle,
            Ok(Err(e)) => return classify(&e),
            Ok(Ok(frame)) => frame,
        };
        match frame.opcode {
            OpCode::Binary | OpCode::Text | OpCode::Continuation => {}
            OpCode::Close => return ProxyEnd::ClientClosed,
            OpCode::Ping | OpCode::Pong => continue,
        }
        deadline = Instant::now() + limits.idle;
        if let Err(e) = vmm.write_all(&frame.payload).await {
            tracing::debug!(error = %e, "console socket write failed");
            return ProxyEnd::SocketClosed;
        }
    }
}

/// Reads (and drops) what the browser still sends until its close frame arrives.
async fn close_reply<S: AsyncRead + AsyncWrite + Unpin>(read: &mut Reader<S>) {
    // Our close is already out: nothing more is sent, not even the echo of theirs.
    let mut discard = |_: Frame<'static>| async { Ok::<(), std::io::Error>(()) };
    while let Ok(frame) = read.read_frame(&mut discard).await {
        if frame.opcode == OpCode::Close {
            return;
        }
    }
}

/// A read error from the WebSocket layer: over the size cap, the browser gone, or a broken frame.
fn classify(err: &WebSocketError) -> ProxyEnd {
    match err {
        WebSocketError::FrameTooLarge => ProxyEnd::TooBig,
        WebSocketError::UnexpectedEOF
        | WebSocketError::ConnectionClosed
        | WebSocketError::IoError(_)
        | WebSocketError::SendError(_) => ProxyEnd::ClientClosed,
        other => {
            tracing::debug!(error = %other, "console WebSocket read failed");
            ProxyEnd::ClientFailed
        }
    }
}

/// Resolves when the supervisor reports the VM stopped, crashed or going away. A graceful stop keeps the
/// console open, so its shutdown can be watched; the VMM's exit then closes the socket.
async fn vm_stopped(mut changes: broadcast::Receiver<VmChange>, vm_id: &str) -> ProxyEnd {
    loop {
        match changes.recv().await {
            Ok(change)
                if change.vm_id == vm_id && !matches!(change.state, VmState::Running | VmState::Stopping) =>
            {
                return ProxyEnd::VmStopped;
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            // No more broadcasts: the socket's end still ends the session.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
