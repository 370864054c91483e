//! virtio-mmio (version 2) transport and a polled split-virtqueue driver (virtio 1.2 sections 2.7, 4.2).

use crate::arena;
use crate::io::Mmio;
use core::sync::atomic::{fence, Ordering};

// Register offsets (virtio 1.2 section 4.2.2).
const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
const QUEUE_DRIVER_LOW: usize = 0x090;
const QUEUE_DRIVER_HIGH: usize = 0x094;
const QUEUE_DEVICE_LOW: usize = 0x0a0;
const QUEUE_DEVICE_HIGH: usize = 0x0a4;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

const MAGIC: u32 = 0x7472_6976; // "virt"

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_FAILED: u32 = 128;

pub const F_VERSION_1: u64 = 1 << 32;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

/// Largest queue the request/response drivers (block, rng, input) use; smaller if the device offers
/// less. The net driver asks for bigger rings ([`Transport::setup_queue_sized`]).
pub const MAX_QUEUE_SIZE: u16 = 8;
/// The largest split queue the spec allows.
pub const MAX_SPLIT_QUEUE_SIZE: u16 = 32768;
/// Polls of the used ring before a request counts as lost. The VMM answers on the notify exit, so this is
/// only reached when a device is broken; it is a few seconds on an emulated CPU.
pub const POLL_LIMIT: u32 = 2_000_000;

/// Where the parts of one split queue of `size` entries lie in its memory block (virtio 1.2 section
/// 2.7: descriptor table 16-byte aligned, driver area 2-byte, device area 4-byte aligned): the
/// descriptor table, then the driver area (flags, idx, ring, used_event), then the device area (flags,
/// idx, ring of 8-byte elements, avail_event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    pub avail: usize,
    pub used: usize,
    pub bytes: usize,
}

impl QueueLayout {
    pub const fn for_size(size: u16) -> Self {
        let n = size as usize;
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n + 3) & !3;
        Self {
            avail,
            used,
            bytes: used + 6 + 8 * n,
        }
    }
}

/// Everything that can go wrong talking to a device; `as_str` is what the probe prints after `ERR `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    BadMagic,
    LegacyDevice,
    NoDevice,
    FeaturesRejected,
    NoVersion1,
    QueueUnavailable,
    OutOfMemory,
    Timeout,
    DeviceFailed,
    Io,
    Unsupported,
    OutOfRange,
    BadResponse,
}

impl Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Error::BadMagic => "bad magic value",
            Error::LegacyDevice => "legacy virtio-mmio (version 1) not supported",
            Error::NoDevice => "no device (id 0)",
            Error::FeaturesRejected => "features rejected",
            Error::NoVersion1 => "device lacks VIRTIO_F_VERSION_1",
            Error::QueueUnavailable => "queue unavailable",
            Error::OutOfMemory => "out of memory",
            Error::Timeout => "timeout",
            Error::DeviceFailed => "device failed",
            Error::Io => "io error",
            Error::Unsupported => "unsupported",
            Error::OutOfRange => "sector out of range",
            Error::BadResponse => "bad response",
        }
    }
}

pub fn device_name(id: u32) -> &'static str {
    match id {
        1 => "net",
        2 => "block",
        3 => "console",
        4 => "rng",
        5 => "balloon",
        9 => "9p",
        16 => "gpu",
        18 => "input",
        19 => "vsock",
        26 => "fs",
        _ => "unknown",
    }
}

pub struct Transport {
    mmio: Mmio,
    device_id: u32,
}

impl Transport {
    /// Checks magic, version 2 and a non-zero device ID.
    ///
    /// # Safety
    /// `base` must be an identity-mapped virtio-mmio register window.
    pub unsafe fn probe(base: u64, _irq: u32) -> Result<Self, Error> {
        // SAFETY: forwarded from the caller.
        let mmio = unsafe { Mmio::new(base) };
        if mmio.read32(MAGIC_VALUE) != MAGIC {
            return Err(Error::BadMagic);
        }
        if mmio.read32(VERSION) != 2 {
            return Err(Error::LegacyDevice);
        }
        let device_id = mmio.read32(DEVICE_ID);
        if device_id == 0 {
            return Err(Error::NoDevice);
        }
        Ok(Self { mmio, device_id })
    }

    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// Writes 0 to Status and waits (bounded) until the device reads back 0.
    pub fn reset(&self) {
        self.mmio.write32(STATUS, 0);
        for _ in 0..1000 {
            if self.mmio.read32(STATUS) == 0 {
                return;
            }
        }
    }

    pub fn fail(&self) {
        self.mmio
            .write32(STATUS, self.mmio.read32(STATUS) | STATUS_FAILED);
    }

    /// Steps 1-6 of device initialisation (virtio 1.2 section 3.1.1): reset, acknowledge, negotiate
    /// `wanted` (plus VERSION_1, which is required) and confirm FEATURES_OK. Returns the accepted features.
    pub fn negotiate(&self, wanted: u64) -> Result<u64, Error> {
        self.negotiate_with(|_| wanted)
    }

    /// [`Transport::negotiate`] with the wanted features chosen from what the device offers (for
    /// features that only make sense together, such as a receive offload and its transmit twin).
    pub fn negotiate_with(&self, choose: impl FnOnce(u64) -> u64) -> Result<u64, Error> {
        self.reset();
        self.mmio.write32(STATUS, STATUS_ACKNOWLEDGE);
        self.mmio.write32(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        self.mmio.write32(DEVICE_FEATURES_SEL, 0);
        let low = self.mmio.read32(DEVICE_FEATURES) as u64;
        self.mmio.write32(DEVICE_FEATURES_SEL, 1);
        let high = self.mmio.read32(DEVICE_FEATURES) as u64;
        let offered = low | (high << 32);
        if offered & F_VERSION_1 == 0 {
            self.fail();
            return Err(Error::NoVersion1);
        }
        let accepted = offered & (choose(offered) | F_VERSION_1);
        self.mmio.write32(DRIVER_FEATURES_SEL, 0);
        self.mmio.write32(DRIVER_FEATURES, accepted as u32);
        self.mmio.write32(DRIVER_FEATURES_SEL, 1);
        self.mmio.write32(DRIVER_FEATURES, (accepted >> 32) as u32);
        let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        self.mmio.write32(STATUS, status);
        if self.mmio.read32(STATUS) & STATUS_FEATURES_OK == 0 {
            self.fail();
            return Err(Error::FeaturesRejected);
        }
        Ok(accepted)
    }

    /// Sets up queue `index` with at most [`MAX_QUEUE_SIZE`] entries and memory from the arena (step 7).
    pub fn setup_queue(&self, index: u16) -> Result<Queue, Error> {
        self.setup_queue_sized(index, MAX_QUEUE_SIZE)
    }

    /// Sets up queue `index` with the largest power of two ≤ `max_size` and the device's limit.
    pub fn setup_queue_sized(&self, index: u16, max_size: u16) -> Result<Queue, Error> {
        self.mmio.write32(QUEUE_SEL, index as u32);
        if self.mmio.read32(QUEUE_READY) != 0 {
            return Err(Error::QueueUnavailable);
        }
        let max = self.mmio.read32(QUEUE_NUM_MAX);
        if max == 0 {
            return Err(Error::QueueUnavailable);
        }
        // Split queues have power-of-two sizes: the largest one ≤ both limits.
        let limit = max.min(max_size.clamp(1, MAX_SPLIT_QUEUE_SIZE) as u32);
        let size = 1u32 << (31 - limit.leading_zeros());
        let layout = QueueLayout::for_size(size as u16);
        let mem = arena::alloc(layout.bytes, 64).ok_or(Error::OutOfMemory)? as u64;
        let (desc, avail, used) = (mem, mem + layout.avail as u64, mem + layout.used as u64);
        self.mmio.write32(QUEUE_NUM, size);
        self.mmio.write32(QUEUE_DESC_LOW, desc as u32);
        self.mmio.write32(QUEUE_DESC_HIGH, (desc >> 32) as u32);
        self.mmio.write32(QUEUE_DRIVER_LOW, avail as u32);
        self.mmio.write32(QUEUE_DRIVER_HIGH, (avail >> 32) as u32);
        self.mmio.write32(QUEUE_DEVICE_LOW, used as u32);
        self.mmio.write32(QUEUE_DEVICE_HIGH, (used >> 32) as u32);
        let queue = Queue {
            mmio: self.mmio,
            index,
            size: size as u16,
            desc: desc as *mut u8,
            avail: avail as *mut u16,
            used: used as *mut u8,
            next_avail: 0,
            last_used: 0,
        };
        // Polled driver: ask the device not to interrupt (the VMM may ignore the hint).
        queue.write_avail(0, AVAIL_F_NO_INTERRUPT);
        self.mmio.write32(QUEUE_READY, 1);
        Ok(queue)
    }

    /// Step 8: the device is live.
    pub fn driver_ok(&self) {
        let status = self.mmio.read32(STATUS);
        self.mmio.write32(STATUS, status | STATUS_DRIVER_OK);
    }

    pub fn config8(&self, offset: usize) -> u8 {
        self.mmio.read8(CONFIG + offset)
    }

    pub fn write_config8(&self, offset: usize, value: u8) {
        self.mmio.write8(CONFIG + offset, value)
    }

    /// A 16-bit field (the spec wants 16-bit accesses for them, virtio 1.2 section 4.2.2.2).
    pub fn config16(&self, offset: usize) -> u16 {
        self.mmio.read16(CONFIG + offset)
    }

    /// The configuration generation: reads of a multi-part field are consistent if it did not change.
    pub fn config_generation(&self) -> u32 {
        self.mmio.read32(CONFIG_GENERATION)
    }

    pub fn config32(&self, offset: usize) -> u32 {
        self.mmio.read32(CONFIG + offset)
    }

    /// A 64-bit config field, read as two halves and retried if the generation changed in between.
    pub fn config64(&self, offset: usize) -> u64 {
        let mut value = 0;
        for _ in 0..4 {
            let before = self.mmio.read32(CONFIG_GENERATION);
            value = self.config32(offset) as u64 | ((self.config32(offset + 4) as u64) << 32);
            if self.mmio.read32(CONFIG_GENERATION) == before {
                break;
            }
        }
        value
    }
}

/// One split virtqueue. Descriptor indices are managed by the device drivers (they use fixed chains).
pub struct Queue {
    mmio: Mmio,
    index: u16,
    size: u16,
    desc: *mut u8,
    avail: *mut u16,
    used: *mut u8,
    next_avail: u16,
    last_used: u16,
}

impl Queue {
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Writes avail-ring word `i` (0 = flags, 1 = idx, 2.. = ring); `i < 2 + size`.
    fn write_avail(&self, i: usize, value: u16) {
        // SAFETY: the driver area holds 3 + size u16 words inside this queue's arena block
        // (QueueLayout), and callers pass i < 2 + size.
        unsafe { self.avail.add(i).write_volatile(value) }
    }

    pub fn set_desc(&mut self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let i = (i % self.size) as usize;
        // SAFETY: descriptor `i` (16 bytes) lies inside the table of `size` entries (QueueLayout).
        unsafe {
            let d = self.desc.add(i * 16);
            (d as *mut u64).write_volatile(addr);
            (d.add(8) as *mut u32).write_volatile(len);
            (d.add(12) as *mut u16).write_volatile(flags);
            (d.add(14) as *mut u16).write_volatile(next);
        }
    }

    /// Makes the chain starting at `head` available (without notifying).
    pub fn push(&mut self, head: u16) {
        self.write_avail(2 + (self.next_avail % self.size) as usize, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        // The ring entry must be visible before the index that publishes it.
        fence(Ordering::Release);
        self.write_avail(1, self.next_avail);
    }

    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        self.mmio.write32(QUEUE_NOTIFY, self.index as u32);
    }

    /// Notifies unless the device asked not to be (VIRTQ_USED_F_NO_NOTIFY, virtio 1.2 section 2.7.10:
    /// without VIRTIO_F_EVENT_IDX the flag is the device's hint). Saves a VM exit per batch while the
    /// device is already working on the queue.
    pub fn notify_if_needed(&self) {
        // The index published before must be visible before the flag is read (pairs with the
        // device's fence between clearing the flag and re-reading avail.idx).
        fence(Ordering::SeqCst);
        // SAFETY: used.flags is the u16 at offset 0 of the device area.
        let flags = unsafe { (self.used as *const u16).read_volatile() };
        if flags & USED_F_NO_NOTIFY == 0 {
            self.mmio.write32(QUEUE_NOTIFY, self.index as u32);
        }
    }

    /// The next used element (descriptor head, bytes written), if the device returned one.
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        // SAFETY: used.idx is the u16 at offset 2 of the used area.
        let idx = unsafe { (self.used.add(2) as *const u16).read_volatile() };
        if idx == self.last_used {
            return None;
        }
        fence(Ordering::Acquire);
        let slot = (self.last_used % self.size) as usize;
        // SAFETY: used ring element `slot` (8 bytes) lies inside the used area.
        let (id, len) = unsafe {
            let e = self.used.add(4 + slot * 8);
            (
                (e as *const u32).read_volatile(),
                (e.add(4) as *const u32).read_volatile(),
            )
        };
        self.last_used = self.last_used.wrapping_add(1);
        Some((id as u16, len))
    }

    /// Publishes `head`, notifies and polls (bounded) for its completion. Returns bytes written.
    pub fn submit_and_wait(&mut self, head: u16) -> Result<u32, Error> {
        self.push(head);
        self.notify();
        for _ in 0..POLL_LIMIT {
            if let Some((id, len)) = self.pop_used() {
                return if id == head {
                    Ok(len)
                } else {
                    Err(Error::BadResponse)
                };
            }
            core::hint::spin_loop();
        }
        Err(Error::Timeout)
    }
}
