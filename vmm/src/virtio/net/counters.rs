//! Per-card traffic counters: written by the card's event loop, read by the control socket's `status`.
//! They live as long as the VMM (one set per configured card), so guest reboots do not reset them.

use std::sync::atomic::{AtomicU64, Ordering};

use vmm_api::config::MacAddr;
use vmm_api::control::{NicDrops, NicStatus};

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    TxSpoofedSource,
    TxMalformed,
    TxTapError,
    RxTooBig,
    RxBadChain,
}

/// Counters of one card.
#[derive(Debug)]
pub struct NetCounters {
    mac: MacAddr,
    tap: String,
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
    drops: [AtomicU64; 5],
}

impl NetCounters {
    pub fn new(mac: MacAddr, tap: impl Into<String>) -> Self {
        Self {
            mac,
            tap: tap.into(),
            rx_frames: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            drops: Default::default(),
        }
    }

    /// A frame delivered to the guest (`bytes` without the vnet header).
    pub fn received(&self, bytes: usize) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A guest frame written to the TAP (`bytes` without the vnet header).
    pub fn sent(&self, bytes: usize) {
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: Drop) {
        self.drops[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn drops_of(&self, why: Drop) -> u64 {
        self.drops[why as usize].load(Ordering::Relaxed)
    }

    /// What `status` reports.
    pub fn snapshot(&self) -> NicStatus {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NicStatus {
            mac: self.mac,
            tap: self.tap.clone(),
            rx_frames: r(&self.rx_frames),
            rx_bytes: r(&self.rx_bytes),
            tx_frames: r(&self.tx_frames),
            tx_bytes: r(&self.tx_bytes),
            drops: NicDrops {
                tx_spoofed_source: self.drops_of(Drop::TxSpoofedSource),
                tx_malformed: self.drops_of(Drop::TxMalformed),
                tx_tap_error: self.drops_of(Drop::TxTapError),
                rx_too_big: self.drops_of(Drop::RxTooBig),
                rx_bad_chain: self.drops_of(Drop::RxBadChain),
            },
        }
    }
}
