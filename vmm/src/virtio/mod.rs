//! virtio-mmio transport and virtio devices (block, net, rng, input).
//!
//! The transport ([`mmio::MmioTransport`]) owns the register state the driver programs and hands the
//! configured queues to a [`VirtioDevice`] when the driver sets DRIVER_OK. Devices process their queues
//! synchronously when the transport forwards a QueueNotify (on the vCPU thread), and signal the guest
//! through an [`Interrupt`], which sets the InterruptStatus bits and fires the VMM's [`IrqTrigger`].
//!
//! Everything a guest writes into descriptors or registers is untrusted: a malformed request is answered
//! per the spec (an error status, or the chain returned with used length 0) and logged once per kind; a
//! broken queue (e.g. an impossible avail index) puts the device into DEVICE_NEEDS_RESET.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use virtio_bindings::bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT};

pub mod block;
pub mod block_counters;
pub mod input;
pub mod mmio;
pub mod net;
pub mod rng;
#[cfg(test)]
mod testutil;

/// Guest memory as the devices hold it: the VMM's dirty-tracked guest RAM, so everything a device
/// writes (buffers, used rings) is recorded for migration and snapshots.
pub use crate::memory::GuestMemory;

/// What request processing needs from guest memory: any `vm_memory::GuestMemory`, with or without a
/// dirty bitmap (so other memory backends work with the same code).
pub trait GuestMemoryT: vm_memory::GuestMemory {}
impl<M: vm_memory::GuestMemory> GuestMemoryT for M {}

/// `VIRTIO_F_VERSION_1`: the only mode this transport supports (no legacy interface).
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
/// `VIRTIO_RING_F_INDIRECT_DESC`: handled by virtio-queue's descriptor chain iterator.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 =
    1 << virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;

/// Logs a warning the first time this call site is reached (guest-driven errors must not flood the log).
macro_rules! warn_once {
    ($($arg:tt)*) => {{
        static LOGGED: ::std::sync::atomic::AtomicBool = ::std::sync::atomic::AtomicBool::new(false);
        if !LOGGED.swap(true, ::std::sync::atomic::Ordering::Relaxed) {
            ::tracing::warn!($($arg)*);
        }
    }};
}
pub(crate) use warn_once;

/// Errors of the virtio layer shared by the transport and the devices.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    #[error("Device needs {expected} queues, driver configured {got}")]
    ActivateQueueCount { expected: usize, got: usize },
    #[error("Queue {0} is not ready or not inside guest memory")]
    ActivateQueueInvalid(usize),
    #[error("Failed to rebuild queue {index} for the device")]
    ActivateQueueState {
        index: usize,
        #[source]
        source: virtio_queue::Error,
    },
    #[error("Notification for queue {0}, which the device does not have")]
    NotifyUnknownQueue(usize),
    #[error("Reading the available ring of queue {index} failed")]
    PopChain {
        index: usize,
        #[source]
        source: virtio_queue::Error,
    },
    #[error("Activating the device failed: {what}")]
    DeviceActivate {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("Writing the used ring of queue {index} failed")]
    AddUsed {
        index: usize,
        #[source]
        source: virtio_queue::Error,
    },
}

/// How the VMM raises the device's interrupt line (an irqfd registered with KVM; a counter in tests).
pub trait IrqTrigger: Send + Sync {
    fn trigger(&self) -> std::io::Result<()>;
}

/// The interrupt side of a transport, shared with the device (and with its other threads, for input).
///
/// Cloning is cheap; all clones share the InterruptStatus register and the needs-reset flag.
#[derive(Clone)]
pub struct Interrupt {
    status: Arc<AtomicU32>,
    needs_reset: Arc<AtomicBool>,
    trigger: Arc<dyn IrqTrigger>,
}

impl Interrupt {
    pub fn new(trigger: Arc<dyn IrqTrigger>) -> Self {
        Self {
            status: Arc::new(AtomicU32::new(0)),
            needs_reset: Arc::new(AtomicBool::new(false)),
            trigger,
        }
    }

    /// Tells the driver that used buffers were added to a queue.
    pub fn signal_used_queue(&self) {
        self.raise(VIRTIO_MMIO_INT_VRING);
    }

    /// Tells the driver that the configuration space (or the device status) changed.
    pub fn signal_config_change(&self) {
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }

    /// Marks the device as broken (DEVICE_NEEDS_RESET) and tells the driver through a config interrupt.
    pub fn set_needs_reset(&self) {
        if !self.needs_reset.swap(true, Ordering::AcqRel) {
            self.signal_config_change();
        }
    }

    /// Current InterruptStatus register value.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Acquire)
    }

    /// Whether the device asked for a reset.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::Acquire)
    }

    /// InterruptACK: clears the acknowledged bits.
    pub(crate) fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::AcqRel);
    }

    /// Device reset: no pending interrupt, no pending reset request.
    pub(crate) fn clear(&self) {
        self.status.store(0, Ordering::Release);
        self.needs_reset.store(false, Ordering::Release);
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::AcqRel);
        if let Err(e) = self.trigger.trigger() {
            tracing::error!(error = %e, "failed to trigger virtio interrupt");
        }
    }
}

/// What a device receives when the driver sets DRIVER_OK.
pub struct ActivateContext {
    pub mem: GuestMemory,
    pub interrupt: Interrupt,
    /// One validated, ready queue per entry of [`VirtioDevice::queue_max_sizes`], in order.
    pub queues: Vec<Queue>,
    /// The features the driver accepted (a subset of [`VirtioDevice::features`]).
    pub acked_features: u64,
}

/// A virtio device behind a transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (1 net, 2 block, 4 rng, 18 input).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue, one entry per queue (powers of two).
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered to the driver; must include [`VIRTIO_F_VERSION_1`].
    fn features(&self) -> u64;
    /// Length of the device-specific configuration space in bytes.
    fn config_len(&self) -> usize;
    /// Reads `data.len()` bytes of configuration space at `offset`; the transport guarantees
    /// `offset + data.len() <= config_len()`.
    fn read_config(&self, offset: usize, data: &mut [u8]);
    /// Writes configuration space; same bounds guarantee as [`VirtioDevice::read_config`].
    fn write_config(&mut self, offset: usize, data: &[u8]);
    /// Starts the device with the driver's queues. An error puts the device into DEVICE_NEEDS_RESET.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError>;
    /// The driver notified queue `index`: process what it made available. An error is fatal for the
    /// device (DEVICE_NEEDS_RESET); per-request problems are answered in the request instead.
    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError>;
    /// Returns the device to its pre-activation state, dropping the queues and memory it holds.
    fn reset(&mut self);
    /// Eventfds the VMM registers with KVM as ioeventfds for the QueueNotify register, one per queue
    /// index: a guest kick then signals the eventfd in the kernel, without an exit to the vCPU thread.
    /// Devices that process queues on the vCPU thread have none.
    fn queue_eventfds(&self) -> Vec<(u32, Arc<vmm_sys_util::eventfd::EventFd>)> {
        Vec::new()
    }
}

/// Pops the next available descriptor chain of `queue`.
///
/// `Ok(None)` means the ring is empty; an error means the driver published an impossible avail index
/// (or the ring is unreadable), which is fatal for the queue.
pub(crate) fn pop_chain<'a, M>(
    queue: &mut Queue,
    mem: &'a M,
    index: usize,
) -> Result<Option<DescriptorChain<&'a M>>, VirtioError>
where
    M: vm_memory::GuestMemory,
{
    let mut iter = queue
        .iter(mem)
        .map_err(|source| VirtioError::PopChain { index, source })?;
    Ok(iter.next())
}

/// Returns a chain to the driver with `len` bytes written. A bad head index is the guest's fault: it is
/// logged and skipped, the queue keeps working.
pub(crate) fn add_used<M>(
    queue: &mut Queue,
    mem: &M,
    index: usize,
    head: u16,
    len: u32,
) -> Result<(), VirtioError>
where
    M: vm_memory::GuestMemory,
{
    use virtio_queue::QueueT;
    match queue.add_used(mem, head, len) {
        Ok(()) => Ok(()),
        Err(virtio_queue::Error::InvalidDescriptorIndex) => {
            warn_once!(
                queue = index,
                head,
                "driver made an out-of-range descriptor head available"
            );
            Ok(())
        }
        Err(source) => Err(VirtioError::AddUsed { index, source }),
    }
}

/// Why a descriptor chain's shape is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainShape {
    /// No descriptor could be read (head out of range, table outside memory).
    Empty,
    /// The chain ended on a descriptor that still has NEXT set: a loop, an out-of-range `next`, or an
    /// unreadable descriptor.
    Truncated,
    /// A device-readable descriptor follows a device-writable one (virtio 1.x 2.7.4.2).
    ReadableAfterWritable,
}

/// Walks a chain once (bounded by the queue size, which also stops `next` loops) and checks its shape.
pub(crate) fn collect_chain<M>(chain: &DescriptorChain<M>) -> Result<Vec<Descriptor>, ChainShape>
where
    M: std::ops::Deref + Clone,
    M::Target: vm_memory::GuestMemory,
{
    let descs: Vec<Descriptor> = chain.clone().collect();
    let Some(last) = descs.last() else {
        return Err(ChainShape::Empty);
    };
    if last.has_next() {
        return Err(ChainShape::Truncated);
    }
    let mut seen_writable = false;
    for d in &descs {
        if d.is_write_only() {
            seen_writable = true;
        } else if seen_writable {
            return Err(ChainShape::ReadableAfterWritable);
        }
    }
    Ok(descs)
}
