//! virtio-rng (entropy device): fills each device-writable buffer the driver offers with bytes from the
//! host's `/dev/urandom`, at most [`MAX_BYTES_PER_REQUEST`] per request.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::{DescriptorChain, Queue, Writer};

use super::{
    add_used, pop_chain, warn_once, ActivateContext, GuestMemory, GuestMemoryT, Interrupt, VirtioDevice,
    VirtioError, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC,
};

/// Queue size of the request queue.
pub const QUEUE_SIZE: u16 = 64;
/// Upper bound of entropy handed out per request, so one request cannot stall the vCPU thread.
pub const MAX_BYTES_PER_REQUEST: usize = 64 * 1024;

const ENTROPY_SOURCE: &str = "/dev/urandom";

/// Errors creating the rng device.
#[derive(Debug, thiserror::Error)]
pub enum RngError {
    #[error("Failed to open {ENTROPY_SOURCE}")]
    OpenSource(#[source] std::io::Error),
}

/// A virtio entropy device.
pub struct Rng {
    /// Shared with the VMM, which opens the source once and keeps it across guest reboots.
    source: Arc<File>,
    buf: Vec<u8>,
    active: Option<Active>,
}

struct Active {
    mem: GuestMemory,
    interrupt: Interrupt,
    queue: Queue,
}

/// Opens the host's entropy source.
pub fn open_source() -> Result<File, RngError> {
    File::open(ENTROPY_SOURCE).map_err(RngError::OpenSource)
}

impl Rng {
    /// Opens the entropy source and creates the device.
    pub fn new() -> Result<Rng, RngError> {
        Ok(Self::with_source(Arc::new(open_source()?)))
    }

    /// Creates the device reading from a source opened by [`open_source`].
    pub fn with_source(source: Arc<File>) -> Rng {
        Rng {
            source,
            buf: Vec::new(),
            active: None,
        }
    }

    /// Fills the chain's writable buffers; returns the number of bytes written.
    fn fill<M: GuestMemoryT>(&mut self, mem: &M, chain: DescriptorChain<&M>) -> u32 {
        let mut writer: Writer<'_, _> = match chain.writer(mem) {
            Ok(w) => w,
            Err(_) => {
                warn_once!("virtio-rng: buffer outside guest memory; request dropped");
                return 0;
            }
        };
        let n = writer.available_bytes().min(MAX_BYTES_PER_REQUEST);
        self.buf.resize(n, 0);
        if let Err(e) = (&*self.source).read_exact(&mut self.buf) {
            tracing::error!(error = %e, "virtio-rng: reading the entropy source failed");
            return 0;
        }
        match writer.write_all(&self.buf) {
            Ok(()) => n as u32,
            Err(_) => 0,
        }
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC
    }

    fn config_len(&self) -> usize {
        0
    }

    fn read_config(&self, _offset: usize, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError> {
        let got = ctx.queues.len();
        let Some(queue) = ctx.queues.into_iter().next() else {
            return Err(VirtioError::ActivateQueueCount { expected: 1, got });
        };
        self.active = Some(Active {
            mem: ctx.mem,
            interrupt: ctx.interrupt,
            queue,
        });
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError> {
        if index != 0 {
            return Err(VirtioError::NotifyUnknownQueue(index));
        }
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        let mem = active.mem.clone();
        let mut used_any = false;
        let result = loop {
            let chain = match pop_chain(&mut active.queue, &mem, 0) {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let head = chain.head_index();
            let len = self.fill(&mem, chain);
            if let Err(e) = add_used(&mut active.queue, &mem, 0, head, len) {
                break Err(e);
            }
            used_any = true;
        };
        if used_any {
            active.interrupt.signal_used_queue();
        }
        self.active = Some(active);
        result
    }

    fn reset(&mut self) {
        self.active = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testutil::{counting_irq, memory, r, w, DriverQueue};

    fn active_rng() -> (
        Rng,
        DriverQueue,
        std::sync::Arc<crate::virtio::testutil::CountingIrq>,
    ) {
        let mut rng = Rng::new().unwrap();
        let mem = memory();
        let dq = DriverQueue::new(&mem, 0x1000, 16);
        let irq = counting_irq();
        rng.activate(ActivateContext {
            mem,
            interrupt: Interrupt::new(irq.clone()),
            queues: vec![dq.queue()],
            acked_features: rng.features(),
        })
        .unwrap();
        (rng, dq, irq)
    }

    #[test]
    fn fills_every_writable_buffer() {
        let (mut rng, mut dq, irq) = active_rng();
        dq.add_chain(&[w(0x10000, 100), w(0x11000, 28)]);
        rng.process_queue(0).unwrap();
        assert_eq!(dq.used_idx(), 1);
        assert_eq!(dq.used_elem(0), (0, 128));
        assert_ne!(
            dq.read_bytes(0x10000, 100),
            vec![0u8; 100],
            "random bytes written"
        );
        assert_eq!(irq.count(), 1);
    }

    #[test]
    fn large_requests_are_bounded() {
        let (mut rng, mut dq, _irq) = active_rng();
        dq.add_chain(&[w(0x20000, 0x40000)]);
        rng.process_queue(0).unwrap();
        assert_eq!(dq.used_elem(0).1 as usize, MAX_BYTES_PER_REQUEST);
    }

    #[test]
    fn bad_buffers_are_returned_empty_and_the_queue_keeps_working() {
        let (mut rng, mut dq, _irq) = active_rng();
        dq.add_chain(&[w(0x4000_0000, 64)]);
        dq.add_chain(&[r(0x10000, 64)]);
        dq.add_chain(&[w(0x10000, 64)]);
        rng.process_queue(0).unwrap();
        assert_eq!(dq.used_idx(), 3);
        assert_eq!(dq.used_elem(0).1, 0);
        assert_eq!(dq.used_elem(1).1, 0);
        assert_eq!(dq.used_elem(2).1, 64);
    }

    #[test]
    fn pages_the_device_writes_are_marked_dirty() {
        let (mut rng, mut dq, _irq) = active_rng();
        dq.add_chain(&[w(0x10000, 100)]);
        // Forget the driver's own writes (descriptors, avail ring): only the device's count here.
        let _ = crate::memory::take_dirty_pages(&dq.mem);
        rng.process_queue(0).unwrap();
        let dirty = crate::memory::take_dirty_pages(&dq.mem);
        let pages: Vec<u64> = (0..64).filter(|bit| dirty[0].1[0] & (1 << bit) != 0).collect();
        // The filled buffer (page 0x10) and the used ring (page 1, at 0x1128).
        assert_eq!(pages, vec![dq.used / 4096, 0x10000 / 4096]);
        assert!(dirty[0].1[1..].iter().all(|w| *w == 0));
    }
}
