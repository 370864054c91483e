//! virtio-net (virtio 1.2 section 5.1) over a TAP descriptor, one receive and one transmit queue.
//!
//! The card is driven by host events on a thread of its own (`event_loop.rs`): the TAP becoming readable
//! or writable, the queue-notify eventfds (KVM ioeventfds) and a stop eventfd; it raises its interrupt
//! through the transport's irqfd. The receive and transmit paths (`rx.rs`, `tx.rs`) are plain code on an
//! [`engine::Engine`] that unit tests drive directly on plain guest memory.
//!
//! Offered: MAC, MTU, STATUS (link always up), CSUM / GUEST_CSUM and TSO4/6 in both directions, indirect
//! descriptors. After DRIVER_OK the TAP's offloads are set from what the driver acknowledged, so the
//! kernel only hands the guest frames it can take. No mergeable receive buffers, no control queue, one
//! queue pair.
//!
//! Untrusted input: guest descriptor chains (`tx.rs`, `rx.rs`: answered per the spec, logged once,
//! counted) and host frames (runt or oversized: counted and dropped). Counters live in a
//! [`NetCounters`] shared with the control socket and kept across guest reboots.
//!
//! Tests and fuzzers back a card with a socket pair instead of a TAP ([`Tap::seqpacket`]).

pub mod counters;
mod engine;
mod event_loop;
mod rx;
#[cfg(test)]
mod tests;
mod tx;

use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_S_LINK_UP,
};
use vmm_sys_util::eventfd::EventFd;

pub use counters::NetCounters;
pub use engine::{Engine, Progress, MAX_FRAME_LEN};
pub use event_loop::EventLoopError;
/// The card's host end lives in its own crate: the portal's network plane opens TAPs too.
pub use vnet_tap as tap;
pub use vnet_tap::{Tap, TapError, VNET_HDR_LEN};

use super::{ActivateContext, VirtioDevice, VirtioError, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC};
use event_loop::EventLoop;
use vmm_api::config::MacAddr;

/// Queue indexes.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
const CONFIG_LEN: usize = 12;

const fn bit(b: u32) -> u64 {
    1 << b
}

/// Everything the card offers besides VERSION_1 (the transport adds that).
pub const OFFERED_FEATURES: u64 = bit(VIRTIO_NET_F_MAC)
    | bit(VIRTIO_NET_F_MTU)
    | bit(VIRTIO_NET_F_STATUS)
    | bit(VIRTIO_NET_F_CSUM)
    | bit(VIRTIO_NET_F_GUEST_CSUM)
    | bit(VIRTIO_NET_F_HOST_TSO4)
    | bit(VIRTIO_NET_F_HOST_TSO6)
    | bit(VIRTIO_NET_F_GUEST_TSO4)
    | bit(VIRTIO_NET_F_GUEST_TSO6)
    | VIRTIO_RING_F_INDIRECT_DESC;

/// Errors creating a card.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("Failed to create a queue-notify eventfd")]
    EventFd(#[source] std::io::Error),
}

/// The TAP offloads (`TUN_F_*`) matching what the driver acknowledged: the kernel may then hand the
/// guest partially checksummed and TSO frames.
pub fn tap_offloads(acked: u64) -> u32 {
    let mut flags = 0;
    if acked & bit(VIRTIO_NET_F_GUEST_CSUM) != 0 {
        flags |= libc::TUN_F_CSUM;
        if acked & bit(VIRTIO_NET_F_GUEST_TSO4) != 0 {
            flags |= libc::TUN_F_TSO4;
        }
        if acked & bit(VIRTIO_NET_F_GUEST_TSO6) != 0 {
            flags |= libc::TUN_F_TSO6;
        }
    }
    flags
}

/// A virtio network card.
pub struct Net {
    mac: MacAddr,
    mtu: u16,
    tap: Arc<Tap>,
    counters: Arc<NetCounters>,
    /// Queue-notify eventfds (RX, TX): the builder registers them with KVM; QueueNotify writes that
    /// reach the transport instead (no ioeventfd) signal them too.
    kicks: [Arc<EventFd>; 2],
    running: Option<EventLoop>,
}

impl Net {
    /// A card with `mac` and `mtu` on `tap`, counting into `counters`.
    pub fn new(mac: MacAddr, mtu: u16, tap: Arc<Tap>, counters: Arc<NetCounters>) -> Result<Net, NetError> {
        let kick = || {
            EventFd::new(libc::EFD_NONBLOCK)
                .map(Arc::new)
                .map_err(NetError::EventFd)
        };
        Ok(Net {
            mac,
            mtu,
            tap,
            counters,
            kicks: [kick()?, kick()?],
            running: None,
        })
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        c[0..6].copy_from_slice(&self.mac.0);
        c[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        c[10..12].copy_from_slice(&self.mtu.to_le_bytes());
        c
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | OFFERED_FEATURES
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let c = self.config_bytes();
        data.copy_from_slice(&c[offset..offset + data.len()]);
    }

    fn write_config(&mut self, _offset: usize, _data: &[u8]) {
        // The configuration space is read-only for the driver (VIRTIO_NET_F_CTRL_MAC_ADDR is not
        // offered); the transport logs the attempt.
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError> {
        self.reset();
        let offloads = tap_offloads(ctx.acked_features);
        self.tap
            .set_offload(offloads)
            .map_err(|source| VirtioError::DeviceActivate {
                what: "setting the TAP offloads",
                source,
            })?;
        let engine = Engine::new(
            ctx.mem,
            ctx.interrupt,
            ctx.queues,
            self.tap.clone(),
            self.counters.clone(),
            self.mac.0,
            ctx.acked_features,
        )?;
        let running =
            EventLoop::start(engine, self.kicks.clone()).map_err(|e| VirtioError::DeviceActivate {
                what: "starting the network thread",
                source: std::io::Error::other(vmm_api::error_chain(&e)),
            })?;
        self.running = Some(running);
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError> {
        let kick = self
            .kicks
            .get(index)
            .ok_or(VirtioError::NotifyUnknownQueue(index))?;
        if let Err(e) = kick.write(1) {
            tracing::error!(error = %e, "virtio-net: failed to kick the network thread");
        }
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
    }

    fn queue_eventfds(&self) -> Vec<(u32, Arc<EventFd>)> {
        vec![
            (RX_QUEUE as u32, self.kicks[0].clone()),
            (TX_QUEUE as u32, self.kicks[1].clone()),
        ]
    }
}
