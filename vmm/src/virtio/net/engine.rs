//! The state of an active card: its two queues, guest memory, the TAP, and the frame each direction may
//! have in flight. The receive path is in `rx.rs`, the transmit path in `tx.rs`; both are plain
//! methods that do as much work as they can without blocking and say what they wait for, so the event
//! loop (`event_loop.rs`) and the unit tests drive exactly the same code.

use std::sync::Arc;

use virtio_queue::Queue;

use super::counters::NetCounters;
use super::tap::{Tap, VNET_HDR_LEN};
use super::tx::PendingTx;
use super::RX_QUEUE;
use crate::virtio::{GuestMemory, Interrupt, VirtioError};

/// Largest Ethernet frame either direction carries: a 64 KiB TSO frame plus Ethernet and VLAN headers.
pub const MAX_FRAME_LEN: usize = 65_550;
/// Smallest frame a guest may send: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;
/// Frames handled per direction before the loop looks at other events (fairness between RX and TX).
pub const BUDGET: usize = 256;

/// What a direction stopped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing left to do until the TAP has a frame (RX) or the guest kicks (TX).
    Idle,
    /// RX: a frame may be waiting but the guest has no buffer; TAP reads are paused until it adds some.
    WaitBuffers,
    /// TX: the TAP returned EAGAIN; the pending frame is retried when it is writable.
    WaitWritable,
    /// The budget ran out with work left: run again before sleeping.
    More,
}

/// An activated card.
pub struct Engine {
    pub(super) mem: GuestMemory,
    pub(super) interrupt: Interrupt,
    pub(super) rx: Queue,
    pub(super) tx: Queue,
    pub(super) tap: Arc<Tap>,
    pub(super) counters: Arc<NetCounters>,
    pub(super) mac: [u8; 6],
    /// Features the driver acknowledged.
    pub(super) acked: u64,
    /// Host buffer one TAP frame is read into (vnet header first).
    pub(super) rx_buf: Vec<u8>,
    /// Length of a frame in `rx_buf` that no guest buffer has taken yet.
    pub(super) rx_frame: Option<usize>,
    /// A guest frame the TAP could not take yet (EAGAIN).
    pub(super) tx_pending: Option<PendingTx>,
    /// Set when a queue turned out broken (impossible avail index): the card stops until reset.
    pub(super) broken: bool,
}

impl Engine {
    pub fn new(
        mem: GuestMemory,
        interrupt: Interrupt,
        mut queues: Vec<Queue>,
        tap: Arc<Tap>,
        counters: Arc<NetCounters>,
        mac: [u8; 6],
        acked: u64,
    ) -> Result<Engine, VirtioError> {
        let got = queues.len();
        if got != 2 {
            return Err(VirtioError::ActivateQueueCount { expected: 2, got });
        }
        let tx = queues.remove(1);
        let rx = queues.remove(RX_QUEUE);
        Ok(Engine {
            mem,
            interrupt,
            rx,
            tx,
            tap,
            counters,
            mac,
            acked,
            rx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LEN],
            rx_frame: None,
            tx_pending: None,
            broken: false,
        })
    }

    pub(super) fn acked(&self, feature_bit: u32) -> bool {
        self.acked & (1u64 << feature_bit) != 0
    }

    /// Runs both directions once; returns (RX, TX) progress. A broken queue puts the device into
    /// DEVICE_NEEDS_RESET and idles it.
    pub fn run(&mut self) -> (Progress, Progress) {
        if self.broken {
            return (Progress::WaitBuffers, Progress::Idle);
        }
        let rx = self.process_rx();
        let tx = self.process_tx();
        match (rx, tx) {
            (Ok(rx), Ok(tx)) => (rx, tx),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %vmm_api::error_chain(&e), "virtio-net: queue broken, device needs reset");
                self.broken = true;
                self.interrupt.set_needs_reset();
                (Progress::WaitBuffers, Progress::Idle)
            }
        }
    }
}
