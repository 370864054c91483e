//! RFB 3.8 (VNC) server for the VM's screen, served on `vnc.sock` and proxied to noVNC by the portal.
//!
//! Independent of KVM: the screen comes from a [`FrameSource`] and input goes to an [`InputSink`]
//! (`glue` adapts the VMM's framebuffer and virtio-input devices; tests use [`mem::MemFrame`]).
//!
//! Threads: one dirty tracker per server polls [`FrameSource::take_dirty_rows`], compares the dirty
//! rows with its shadow copy and ORs the changed 8x8 tiles into every client's damage map; each client
//! has a reader thread (parses messages, forwards input) and a writer thread (waits for an update
//! request and damage, encodes the damaged rectangles, writes them with a timeout). A slow client only
//! delays itself: its damage keeps coalescing in a fixed-size map and at most one update is in flight.
//!
//! Security type None only: the socket is root-only and the portal authenticates viewers.

mod bench;
mod client;
pub mod damage;
pub mod encode;
pub mod glue;
pub mod keymap;
pub mod mem;
pub mod pixel;
pub mod proto;
mod server;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use bench::{bench_figures, BenchFigures};
pub use server::{RfbServer, DEFAULT_POLL};

/// The screen as the RFB server sees it. Pixels are 32-bit little-endian xRGB (bytes B, G, R, x).
pub trait FrameSource: Send + Sync {
    /// Width and height in pixels (may change, e.g. after a guest reboot).
    fn size(&self) -> (u32, u32);
    /// Bytes per row in what `read_rows` writes (at least `width * 4`).
    fn stride(&self) -> usize;
    /// Copies `rows` rows starting at `y0` into `out` (`rows * stride()` bytes); rows outside the
    /// screen are left as they are.
    fn read_rows(&self, y0: u32, rows: u32, out: &mut [u8]);
    /// Row ranges `y0..y1` (end exclusive) written since the previous call.
    fn take_dirty_rows(&self) -> Vec<(u32, u32)>;
}

/// Where viewers' keyboard and pointer input goes.
pub trait InputSink: Send + Sync {
    /// A key press or release, as a Linux keycode (`KEY_*`).
    fn key(&self, linux_keycode: u16, down: bool);
    /// Absolute pointer position in framebuffer pixels and the RFB button mask: bit 0 left, 1 middle,
    /// 2 right, 3/4 wheel up/down, 5/6 wheel left/right (a wheel bit is set for one event per notch).
    fn pointer(&self, x: u32, y: u32, buttons: u8);
}

/// Errors of the RFB server.
#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("Failed to bind the VNC socket {0}")]
    Bind(std::path::PathBuf, #[source] std::io::Error),
    #[error("Failed to create the stop event")]
    StopEvent(#[source] std::io::Error),
    #[error("Failed to accept a connection")]
    Accept(#[source] std::io::Error),
    #[error("Failed to set up a client socket")]
    Socket(#[source] std::io::Error),
    #[error("Failed to spawn a thread")]
    Spawn(#[source] crate::threads::ThreadError),
}
