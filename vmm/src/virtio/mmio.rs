//! The virtio-mmio transport, version 2 ("modern") register layout (virtio 1.2, section 4.2.2).
//!
//! It keeps the driver-visible register state (feature pages, per-queue configuration, device status)
//! and forwards QueueNotify to the device synchronously. When the driver sets DRIVER_OK every queue
//! must be ready and inside guest memory; the device then gets its own copies of the queues.

use std::sync::Arc;

use virtio_bindings::bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueT};

use super::{
    warn_once, ActivateContext, GuestMemory, Interrupt, IrqTrigger, VirtioDevice, VirtioError,
    VIRTIO_F_VERSION_1,
};
use crate::bus::BusDevice;

/// "virt" in little endian.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// Modern virtio-mmio.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID reported to the guest ("QEMU" would be 0x554d4551; this VMM uses its own).
pub const MMIO_VENDOR_ID: u32 = 0x5056_4d4d; // "MMVP"

const REG_MAGIC: u64 = 0x000;
const REG_VERSION: u64 = 0x004;
const REG_DEVICE_ID: u64 = 0x008;
const REG_VENDOR_ID: u64 = 0x00c;
const REG_DEVICE_FEATURES: u64 = 0x010;
const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
const REG_DRIVER_FEATURES: u64 = 0x020;
const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
const REG_QUEUE_SEL: u64 = 0x030;
const REG_QUEUE_NUM_MAX: u64 = 0x034;
const REG_QUEUE_NUM: u64 = 0x038;
const REG_QUEUE_READY: u64 = 0x044;
/// QueueNotify: where KVM ioeventfds for a device's queues are registered.
pub const REG_QUEUE_NOTIFY: u64 = 0x050;
const REG_INTERRUPT_STATUS: u64 = 0x060;
const REG_INTERRUPT_ACK: u64 = 0x064;
const REG_STATUS: u64 = 0x070;
const REG_QUEUE_DESC_LOW: u64 = 0x080;
const REG_QUEUE_DESC_HIGH: u64 = 0x084;
const REG_QUEUE_AVAIL_LOW: u64 = 0x090;
const REG_QUEUE_AVAIL_HIGH: u64 = 0x094;
const REG_QUEUE_USED_LOW: u64 = 0x0a0;
const REG_QUEUE_USED_HIGH: u64 = 0x0a4;
const REG_SHM_SEL: u64 = 0x0ac;
const REG_SHM_LEN_LOW: u64 = 0x0b0;
const REG_SHM_LEN_HIGH: u64 = 0x0b4;
const REG_SHM_BASE_LOW: u64 = 0x0b8;
const REG_SHM_BASE_HIGH: u64 = 0x0bc;
const REG_CONFIG_GENERATION: u64 = 0x0fc;
/// Device-specific configuration space starts here.
pub const MMIO_CONFIG_OFFSET: u64 = 0x100;

const S_ACKNOWLEDGE: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const S_DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
const S_DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
const S_FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const S_FAILED: u32 = VIRTIO_CONFIG_S_FAILED;
const S_NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;

/// One virtio device on the MMIO bus.
pub struct MmioTransport {
    mem: GuestMemory,
    interrupt: Interrupt,
    device: Box<dyn VirtioDevice>,
    /// Register copies of the queues; the device gets rebuilt copies at activation.
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// Device status without NEEDS_RESET (which lives in `interrupt`, so device threads can set it).
    status: u32,
    config_generation: u32,
    activated: bool,
}

impl MmioTransport {
    pub fn new(mem: GuestMemory, irq: Arc<dyn IrqTrigger>, device: Box<dyn VirtioDevice>) -> Self {
        let queues = fresh_queues(device.as_ref());
        Self {
            mem,
            interrupt: Interrupt::new(irq),
            device,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            activated: false,
        }
    }

    /// The virtio device ID of the device behind this transport.
    pub fn device_type(&self) -> u32 {
        self.device.device_type()
    }

    /// The Status register as the driver reads it.
    pub fn status(&self) -> u32 {
        if self.interrupt.needs_reset() {
            self.status | S_NEEDS_RESET
        } else {
            self.status
        }
    }

    /// Whether the driver set DRIVER_OK and the device accepted its queues.
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn device_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    fn reset(&mut self) {
        self.device.reset();
        self.queues = fresh_queues(self.device.as_ref());
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.activated = false;
        self.interrupt.clear();
    }

    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            REG_MAGIC => MMIO_MAGIC_VALUE,
            REG_VERSION => MMIO_VERSION,
            REG_DEVICE_ID => self.device.device_type(),
            REG_VENDOR_ID => MMIO_VENDOR_ID,
            REG_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            REG_QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            REG_QUEUE_NUM => self.selected_queue().map_or(0, |q| u32::from(q.size())),
            REG_QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            REG_QUEUE_DESC_LOW => self.selected_queue().map_or(0, |q| q.desc_table() as u32),
            REG_QUEUE_DESC_HIGH => self.selected_queue().map_or(0, |q| (q.desc_table() >> 32) as u32),
            REG_QUEUE_AVAIL_LOW => self.selected_queue().map_or(0, |q| q.avail_ring() as u32),
            REG_QUEUE_AVAIL_HIGH => self.selected_queue().map_or(0, |q| (q.avail_ring() >> 32) as u32),
            REG_QUEUE_USED_LOW => self.selected_queue().map_or(0, |q| q.used_ring() as u32),
            REG_QUEUE_USED_HIGH => self.selected_queue().map_or(0, |q| (q.used_ring() >> 32) as u32),
            REG_INTERRUPT_STATUS => self.interrupt.status(),
            REG_STATUS => self.status(),
            // No shared memory regions: a length of -1 says "no such region".
            REG_SHM_LEN_LOW | REG_SHM_LEN_HIGH | REG_SHM_BASE_LOW | REG_SHM_BASE_HIGH => u32::MAX,
            REG_CONFIG_GENERATION => self.config_generation,
            REG_DEVICE_FEATURES_SEL
            | REG_DRIVER_FEATURES
            | REG_DRIVER_FEATURES_SEL
            | REG_QUEUE_SEL
            | REG_QUEUE_NOTIFY
            | REG_INTERRUPT_ACK
            | REG_SHM_SEL => {
                warn_once!(offset, "virtio-mmio: read of a write-only register");
                0
            }
            _ => {
                warn_once!(offset, "virtio-mmio: read of an unknown register");
                0
            }
        }
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        match offset {
            REG_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            REG_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            REG_DRIVER_FEATURES => self.write_driver_features(value),
            REG_QUEUE_SEL => self.queue_sel = value,
            REG_QUEUE_NUM | REG_QUEUE_READY | REG_QUEUE_DESC_LOW | REG_QUEUE_DESC_HIGH
            | REG_QUEUE_AVAIL_LOW | REG_QUEUE_AVAIL_HIGH | REG_QUEUE_USED_LOW | REG_QUEUE_USED_HIGH => {
                self.write_queue_reg(offset, value)
            }
            REG_QUEUE_NOTIFY => self.notify(value),
            REG_INTERRUPT_ACK => self.interrupt.ack(value),
            REG_STATUS => self.write_status(value),
            REG_SHM_SEL => {}
            _ => warn_once!(
                offset,
                value,
                "virtio-mmio: write to a read-only or unknown register"
            ),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & S_DRIVER == 0 || self.status & S_FEATURES_OK != 0 {
            warn_once!(
                status = self.status,
                "virtio-mmio: driver features written outside negotiation"
            );
            return;
        }
        let offered = self.device_features();
        match self.driver_features_sel {
            0 => {
                self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value);
            }
            1 => {
                self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32);
            }
            sel => {
                warn_once!(sel, "virtio-mmio: driver features page out of range");
                return;
            }
        }
        if self.driver_features & !offered != 0 {
            warn_once!(
                acked = self.driver_features,
                offered,
                "virtio-mmio: driver accepted features that were not offered; ignoring them"
            );
            self.driver_features &= offered;
        }
    }

    fn write_queue_reg(&mut self, offset: u64, value: u32) {
        if offset == REG_QUEUE_READY && value == 0 && self.activated {
            // Linux's vm_del_vq clears QueueReady (normally after a reset); the device keeps its copy
            // until the reset, which is when it stops touching the ring.
            if let Some(q) = self.queues.get_mut(self.queue_sel as usize) {
                q.set_ready(false);
            }
            return;
        }
        if self.activated || self.status & S_DRIVER_OK != 0 {
            warn_once!(
                offset,
                "virtio-mmio: queue register written after DRIVER_OK; ignored"
            );
            return;
        }
        let mem = &self.mem;
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else {
            warn_once!(
                sel = self.queue_sel,
                "virtio-mmio: queue register written for a missing queue"
            );
            return;
        };
        if offset == REG_QUEUE_READY {
            if value == 1 {
                q.set_ready(true);
                if !q.is_valid(mem) {
                    warn_once!(
                        size = q.size(),
                        desc = q.desc_table(),
                        avail = q.avail_ring(),
                        used = q.used_ring(),
                        "virtio-mmio: driver made an invalid queue ready; refused"
                    );
                    q.set_ready(false);
                }
            } else {
                q.set_ready(false);
            }
            return;
        }
        if q.ready() {
            warn_once!(
                offset,
                "virtio-mmio: queue register written while the queue is ready; ignored"
            );
            return;
        }
        match offset {
            REG_QUEUE_NUM => match u16::try_from(value) {
                Ok(size) => q.set_size(size),
                Err(_) => warn_once!(value, "virtio-mmio: queue size out of range"),
            },
            REG_QUEUE_DESC_LOW => q.set_desc_table_address(Some(value), None),
            REG_QUEUE_DESC_HIGH => q.set_desc_table_address(None, Some(value)),
            REG_QUEUE_AVAIL_LOW => q.set_avail_ring_address(Some(value), None),
            REG_QUEUE_AVAIL_HIGH => q.set_avail_ring_address(None, Some(value)),
            REG_QUEUE_USED_LOW => q.set_used_ring_address(Some(value), None),
            REG_QUEUE_USED_HIGH => q.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let value = value & !S_NEEDS_RESET;
        let old = self.status;
        if value & old != old {
            warn_once!(
                old,
                value,
                "virtio-mmio: driver tried to clear status bits without a reset"
            );
            return;
        }
        let added = value & !old;
        let mut new = value;
        if added & S_DRIVER != 0 && new & S_ACKNOWLEDGE == 0 {
            warn_once!(value, "virtio-mmio: DRIVER set before ACKNOWLEDGE");
            return;
        }
        if added & S_FEATURES_OK != 0 {
            if new & S_DRIVER == 0 {
                warn_once!(value, "virtio-mmio: FEATURES_OK set before DRIVER");
                return;
            }
            if self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                // The driver re-reads Status, sees FEATURES_OK missing and gives up (legacy drivers).
                warn_once!(
                    acked = self.driver_features,
                    "virtio-mmio: driver did not accept VERSION_1"
                );
                new &= !S_FEATURES_OK;
            }
        }
        if added & S_DRIVER_OK != 0 && new & S_FEATURES_OK == 0 {
            warn_once!(value, "virtio-mmio: DRIVER_OK set before FEATURES_OK");
            return;
        }
        self.status = new;
        if added & S_DRIVER_OK != 0 && new & S_FAILED == 0 {
            if let Err(e) = self.activate() {
                tracing::warn!(device = self.device.device_type(), error = %e, "virtio device activation failed");
                self.interrupt.set_needs_reset();
            }
        }
    }

    fn activate(&mut self) -> Result<(), VirtioError> {
        let expected = self.device.queue_max_sizes().len();
        if self.queues.len() != expected {
            return Err(VirtioError::ActivateQueueCount {
                expected,
                got: self.queues.len(),
            });
        }
        let mut queues = Vec::with_capacity(self.queues.len());
        for (index, q) in self.queues.iter().enumerate() {
            if !q.ready() || !q.is_valid(&self.mem) {
                return Err(VirtioError::ActivateQueueInvalid(index));
            }
            let copy = Queue::try_from(q.state())
                .map_err(|source| VirtioError::ActivateQueueState { index, source })?;
            queues.push(copy);
        }
        self.device.activate(ActivateContext {
            mem: self.mem.clone(),
            interrupt: self.interrupt.clone(),
            queues,
            acked_features: self.driver_features,
        })?;
        self.activated = true;
        Ok(())
    }

    fn notify(&mut self, value: u32) {
        if !self.activated || self.interrupt.needs_reset() {
            warn_once!(
                value,
                status = self.status(),
                "virtio-mmio: queue notify while the device is not live"
            );
            return;
        }
        let index = (value & 0xffff) as usize;
        if let Err(e) = self.device.process_queue(index) {
            tracing::warn!(device = self.device.device_type(), error = %e, "virtio device failed; needs reset");
            self.interrupt.set_needs_reset();
        }
    }
}

fn fresh_queues(device: &dyn VirtioDevice) -> Vec<Queue> {
    device
        .queue_max_sizes()
        .iter()
        .filter_map(|&max| match Queue::new(max) {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::error!(max, error = %e, "virtio device declares an invalid queue size");
                None
            }
        })
        .collect()
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= MMIO_CONFIG_OFFSET {
            let len = self.device.config_len();
            let start = (offset - MMIO_CONFIG_OFFSET) as usize;
            match start.checked_add(data.len()) {
                Some(end) if end <= len => self.device.read_config(start, data),
                _ => {
                    warn_once!(offset, len = data.len(), "virtio-mmio: config read out of bounds");
                    data.fill(0);
                }
            }
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            warn_once!(
                offset,
                len = data.len(),
                "virtio-mmio: register read that is not 32-bit aligned"
            );
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= MMIO_CONFIG_OFFSET {
            let len = self.device.config_len();
            let start = (offset - MMIO_CONFIG_OFFSET) as usize;
            match start.checked_add(data.len()) {
                Some(end) if end <= len => self.device.write_config(start, data),
                _ => warn_once!(
                    offset,
                    len = data.len(),
                    "virtio-mmio: config write out of bounds"
                ),
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            warn_once!(
                offset,
                len = data.len(),
                "virtio-mmio: register write that is not 32 bits wide"
            );
            return;
        };
        if !offset.is_multiple_of(4) {
            warn_once!(offset, "virtio-mmio: unaligned register write");
            return;
        }
        self.write_reg(offset, u32::from_le_bytes(bytes));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use virtio_bindings::bindings::virtio_blk::VIRTIO_BLK_S_OK;

    use super::*;
    use crate::virtio::block::{Block, BlockConfig};
    use crate::virtio::rng::Rng;
    use crate::virtio::testutil::{counting_irq, memory, r, w, CountingIrq, DriverQueue};

    fn rd(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    fn rng_transport() -> (MmioTransport, GuestMemory, Arc<CountingIrq>) {
        let mem = memory();
        let irq = counting_irq();
        let t = MmioTransport::new(mem.clone(), irq.clone(), Box::new(Rng::new().unwrap()));
        (t, mem, irq)
    }

    /// Drives the Linux virtio_mmio probe sequence; returns the status the driver reads back at the end.
    fn bring_up(t: &mut MmioTransport, queues: &[&DriverQueue], features: u64) -> u32 {
        wr(t, REG_STATUS, 0);
        wr(t, REG_STATUS, S_ACKNOWLEDGE);
        wr(t, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
        wr(t, REG_DRIVER_FEATURES_SEL, 0);
        wr(t, REG_DRIVER_FEATURES, features as u32);
        wr(t, REG_DRIVER_FEATURES_SEL, 1);
        wr(t, REG_DRIVER_FEATURES, (features >> 32) as u32);
        wr(t, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
        if rd(t, REG_STATUS) & S_FEATURES_OK == 0 {
            return rd(t, REG_STATUS);
        }
        for (i, dq) in queues.iter().enumerate() {
            wr(t, REG_QUEUE_SEL, i as u32);
            assert_eq!(rd(t, REG_QUEUE_READY), 0);
            assert!(rd(t, REG_QUEUE_NUM_MAX) >= u32::from(dq.size));
            wr(t, REG_QUEUE_NUM, u32::from(dq.size));
            wr(t, REG_QUEUE_DESC_LOW, dq.desc as u32);
            wr(t, REG_QUEUE_DESC_HIGH, (dq.desc >> 32) as u32);
            wr(t, REG_QUEUE_AVAIL_LOW, dq.avail as u32);
            wr(t, REG_QUEUE_AVAIL_HIGH, (dq.avail >> 32) as u32);
            wr(t, REG_QUEUE_USED_LOW, dq.used as u32);
            wr(t, REG_QUEUE_USED_HIGH, (dq.used >> 32) as u32);
            wr(t, REG_QUEUE_READY, 1);
        }
        wr(
            t,
            REG_STATUS,
            S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK,
        );
        rd(t, REG_STATUS)
    }

    #[test]
    fn identifies_as_a_modern_virtio_mmio_device() {
        let (mut t, _, _) = rng_transport();
        assert_eq!(rd(&mut t, REG_MAGIC), 0x7472_6976);
        assert_eq!(rd(&mut t, REG_VERSION), 2);
        assert_eq!(rd(&mut t, REG_DEVICE_ID), 4);
        assert_eq!(rd(&mut t, REG_VENDOR_ID), MMIO_VENDOR_ID);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM_MAX), 64);
        wr(&mut t, REG_QUEUE_SEL, 1);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM_MAX), 0, "no second queue");
        // Non-32-bit register accesses are answered with zeros, never a panic.
        let mut b = [0xffu8; 2];
        t.read(REG_MAGIC, &mut b);
        assert_eq!(b, [0, 0]);
        t.write(REG_STATUS, &[1]);
        assert_eq!(rd(&mut t, REG_STATUS), 0);
        assert_eq!(rd(&mut t, 0x0f0), 0, "unknown register");
        assert_eq!(rd(&mut t, REG_SHM_LEN_LOW), u32::MAX, "no shared memory regions");
    }

    #[test]
    fn feature_negotiation_requires_version_1() {
        let (mut t, mem, _) = rng_transport();
        wr(&mut t, REG_DEVICE_FEATURES_SEL, 1);
        assert_eq!(
            rd(&mut t, REG_DEVICE_FEATURES) & 1,
            1,
            "VERSION_1 offered (bit 32)"
        );
        wr(&mut t, REG_DEVICE_FEATURES_SEL, 7);
        assert_eq!(rd(&mut t, REG_DEVICE_FEATURES), 0);

        let dq = DriverQueue::new(&mem, 0x1000, 16);
        let status = bring_up(&mut t, &[&dq], 0);
        assert_eq!(status & S_FEATURES_OK, 0, "legacy driver refused");
        assert!(!t.is_activated());

        let status = bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1 | (1 << 40));
        assert_ne!(status & S_FEATURES_OK, 0);
        assert_ne!(status & S_DRIVER_OK, 0);
        assert_eq!(status & S_NEEDS_RESET, 0);
        assert!(t.is_activated());
        assert_eq!(t.driver_features, VIRTIO_F_VERSION_1, "unoffered bit 40 dropped");
    }

    #[test]
    fn notify_runs_the_device_and_raises_the_interrupt() {
        let (mut t, mem, irq) = rng_transport();
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1);
        dq.add_chain(&[w(0x10000, 32)]);
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        assert_eq!(dq.used_elem(0), (0, 32));
        assert_eq!(irq.count(), 1);
        assert_eq!(rd(&mut t, REG_INTERRUPT_STATUS), 1);
        wr(&mut t, REG_INTERRUPT_ACK, 1);
        assert_eq!(rd(&mut t, REG_INTERRUPT_STATUS), 0);
        // Queue registers are frozen once the device is live.
        wr(&mut t, REG_QUEUE_NUM, 4);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM), 16);
        assert_eq!(rd(&mut t, REG_QUEUE_READY), 1);
        assert_eq!(rd(&mut t, REG_QUEUE_DESC_LOW), 0x1000);
    }

    #[test]
    fn queue_outside_memory_is_refused_and_device_needs_reset() {
        let (mut t, mem, _) = rng_transport();
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        dq.desc = 0x4000_0000;
        let status = bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1);
        wr(&mut t, REG_QUEUE_SEL, 0);
        assert_eq!(rd(&mut t, REG_QUEUE_READY), 0, "invalid queue never became ready");
        assert_ne!(status & S_NEEDS_RESET, 0);
        assert!(!t.is_activated());
        // Notifications are ignored until the driver resets.
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        // A queue size that is not a power of two is ignored.
        let dq = DriverQueue::new(&mem, 0x1000, 16);
        wr(&mut t, REG_STATUS, 0);
        wr(&mut t, REG_QUEUE_NUM, 3);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM), 64);
        assert_eq!(bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1) & S_NEEDS_RESET, 0);
        assert!(t.is_activated());
    }

    #[test]
    fn broken_avail_ring_sets_needs_reset_with_a_config_interrupt() {
        let (mut t, mem, irq) = rng_transport();
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1);
        dq.set_avail_idx(200);
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        assert_ne!(rd(&mut t, REG_STATUS) & S_NEEDS_RESET, 0);
        assert_ne!(rd(&mut t, REG_INTERRUPT_STATUS) & 2, 0);
        assert_eq!(irq.count(), 1);
    }

    #[test]
    fn writing_status_zero_resets_device_and_queues() {
        let (mut t, mem, _) = rng_transport();
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1);
        dq.add_chain(&[w(0x10000, 8)]);
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        assert_ne!(rd(&mut t, REG_INTERRUPT_STATUS), 0);

        wr(&mut t, REG_STATUS, 0);
        assert_eq!(rd(&mut t, REG_STATUS), 0);
        assert_eq!(rd(&mut t, REG_INTERRUPT_STATUS), 0);
        assert!(!t.is_activated());
        wr(&mut t, REG_QUEUE_SEL, 0);
        assert_eq!(rd(&mut t, REG_QUEUE_READY), 0);
        assert_eq!(rd(&mut t, REG_QUEUE_NUM), 64, "size back to the maximum");
        assert_eq!(rd(&mut t, REG_QUEUE_DESC_LOW), 0);

        // The driver can bring the device up again on a fresh ring.
        let mut dq = DriverQueue::new(&mem, 0x3000, 16);
        assert_ne!(bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1) & S_DRIVER_OK, 0);
        dq.add_chain(&[w(0x10000, 16)]);
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        assert_eq!(dq.used_elem(0), (0, 16));
    }

    #[test]
    fn status_bits_cannot_be_cleared_or_skipped() {
        let (mut t, _, _) = rng_transport();
        wr(
            &mut t,
            REG_STATUS,
            S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK,
        );
        assert_eq!(rd(&mut t, REG_STATUS), 0, "DRIVER before ACKNOWLEDGE refused");
        wr(&mut t, REG_STATUS, S_ACKNOWLEDGE);
        wr(&mut t, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_DRIVER_OK);
        assert_eq!(
            rd(&mut t, REG_STATUS),
            S_ACKNOWLEDGE,
            "DRIVER_OK without FEATURES_OK refused"
        );
        wr(&mut t, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
        wr(&mut t, REG_STATUS, S_ACKNOWLEDGE);
        assert_eq!(
            rd(&mut t, REG_STATUS),
            S_ACKNOWLEDGE | S_DRIVER,
            "bits are only cleared by reset"
        );
        wr(&mut t, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FAILED);
        assert_ne!(rd(&mut t, REG_STATUS) & S_FAILED, 0);
    }

    #[test]
    fn block_config_space_reads_at_any_width_and_bounds() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &vec![0u8; 8 * 512]).unwrap();
        let cfg = BlockConfig {
            path: file.path().into(),
            read_only: false,
            serial: "s".into(),
        };
        let mem = memory();
        let mut t = MmioTransport::new(mem.clone(), counting_irq(), Box::new(Block::new(&cfg).unwrap()));
        let mut cap = [0u8; 8];
        t.read(MMIO_CONFIG_OFFSET, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 8);
        assert_eq!(rd(&mut t, MMIO_CONFIG_OFFSET), 8);
        assert_eq!(rd(&mut t, MMIO_CONFIG_OFFSET + 4), 0);
        let mut byte = [0u8; 1];
        t.read(MMIO_CONFIG_OFFSET, &mut byte);
        assert_eq!(byte, [8]);
        let mut odd = [0u8; 2];
        t.read(MMIO_CONFIG_OFFSET + 1, &mut odd);
        assert_eq!(odd, [0, 0]);
        // Out of bounds (fully or partially): zeros; writes ignored.
        let mut past = [0xffu8; 4];
        t.read(MMIO_CONFIG_OFFSET + 22, &mut past);
        assert_eq!(past, [0; 4]);
        t.read(MMIO_CONFIG_OFFSET + 0xe00, &mut past);
        assert_eq!(past, [0; 4]);
        t.write(MMIO_CONFIG_OFFSET, &[1, 2, 3, 4]);
        t.write(MMIO_CONFIG_OFFSET + 0xe00, &[1, 2, 3, 4]);
        assert_eq!(rd(&mut t, MMIO_CONFIG_OFFSET), 8);
        assert_eq!(rd(&mut t, REG_CONFIG_GENERATION), 0);

        // And the block device works end to end through the transport.
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        assert_ne!(bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1) & S_DRIVER_OK, 0);
        let mut hdr = [0u8; 16];
        hdr[0] = 8; // GET_ID
        dq.write_bytes(0x8000, &hdr);
        dq.add_chain(&[r(0x8000, 16), w(0x9000, 20), w(0xa000, 1)]);
        wr(&mut t, REG_QUEUE_NOTIFY, 0);
        assert_eq!(dq.read_bytes(0xa000, 1)[0], VIRTIO_BLK_S_OK as u8);
        assert_eq!(dq.read_bytes(0x9000, 1), b"s");
    }

    /// Host-side cost of block requests through the transport (no KVM): `cargo test --release -p vmm
    /// --lib virtio::mmio::tests::bench_block -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_block_requests() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &vec![0u8; 64 << 20]).unwrap();
        let cfg = BlockConfig {
            path: file.path().into(),
            read_only: false,
            serial: String::new(),
        };
        let mem = GuestMemory::from_ranges(&[(vm_memory::GuestAddress(0), 4 << 20)]).unwrap();
        let mut t = MmioTransport::new(mem.clone(), counting_irq(), Box::new(Block::new(&cfg).unwrap()));
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        bring_up(&mut t, &[&dq], VIRTIO_F_VERSION_1);
        for (req_type, len, n) in [
            (0u32, 4096u32, 20_000u32),
            (1, 4096, 20_000),
            (0, 1 << 20, 500),
            (1, 1 << 20, 500),
        ] {
            let start = std::time::Instant::now();
            for i in 0..n {
                let mut hdr = [0u8; 16];
                hdr[0..4].copy_from_slice(&req_type.to_le_bytes());
                hdr[8..16].copy_from_slice(&(u64::from(i % 64) * u64::from(len / 512)).to_le_bytes());
                dq.write_bytes(0x8000, &hdr);
                let data = if req_type == 0 {
                    w(0x10_0000, len)
                } else {
                    r(0x10_0000, len)
                };
                dq.add_chain(&[r(0x8000, 16), data, w(0x9000, 1)]);
                wr(&mut t, REG_QUEUE_NOTIFY, 0);
            }
            let secs = start.elapsed().as_secs_f64();
            let kind = if req_type == 0 { "read" } else { "write" };
            println!(
                "{kind} {len:>8} B: {:>8.1} us/request, {:>7.1} MiB/s",
                secs * 1e6 / f64::from(n),
                f64::from(n) * f64::from(len) / secs / f64::from(1u32 << 20)
            );
        }
    }
}
