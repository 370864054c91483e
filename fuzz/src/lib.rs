//! What the fuzz targets share: a hostile virtio driver.
//!
//! [`Driver`] programs the real [`MmioTransport`] only through its registers (as the guest would, with
//! fuzzer-chosen features and queue addresses), then runs a fuzzer-chosen list of [`Op`]s: descriptors
//! and indirect tables written anywhere, chains published in the avail ring, avail indices set to
//! anything, raw guest memory writes, notifications of any queue, register accesses of any width at
//! any offset, resets. Each target adds its device's own operations through [`Op::Device`].
//!
//! Guest RAM is small and split ([`RAM`]): two adjacent regions (a buffer may straddle them) and one
//! more above a hole, so addresses near edges and in the hole come up often.

use std::sync::Arc;

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress};
use vmm::bus::BusDevice;
use vmm::virtio::mmio::MmioTransport;
use vmm::virtio::{GuestMemory, IrqTrigger, VirtioDevice};

/// Guest RAM regions: `[0, 64 KiB)`, `[64 KiB, 128 KiB)`, a hole, `[192 KiB, 256 KiB)`.
pub const RAM: [(u64, usize); 3] = [(0, 0x1_0000), (0x1_0000, 0x1_0000), (0x3_0000, 0x1_0000)];
/// One past the highest guest RAM address.
pub const RAM_END: u64 = 0x4_0000;

/// virtio-mmio register offsets (virtio 1.2, 4.2.2), as a guest driver knows them.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_AVAIL_LOW: u64 = 0x090;
    pub const QUEUE_AVAIL_HIGH: u64 = 0x094;
    pub const QUEUE_USED_LOW: u64 = 0x0a0;
    pub const QUEUE_USED_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
    /// Every register above, for fuzzer-chosen register writes.
    pub const ALL: [u64; 26] = [
        MAGIC,
        VERSION,
        DEVICE_ID,
        VENDOR_ID,
        DEVICE_FEATURES,
        DEVICE_FEATURES_SEL,
        DRIVER_FEATURES,
        DRIVER_FEATURES_SEL,
        QUEUE_SEL,
        QUEUE_NUM_MAX,
        QUEUE_NUM,
        QUEUE_READY,
        QUEUE_NOTIFY,
        INTERRUPT_STATUS,
        INTERRUPT_ACK,
        STATUS,
        QUEUE_DESC_LOW,
        QUEUE_DESC_HIGH,
        QUEUE_AVAIL_LOW,
        QUEUE_AVAIL_HIGH,
        QUEUE_USED_LOW,
        QUEUE_USED_HIGH,
        SHM_SEL,
        SHM_LEN_LOW,
        SHM_BASE_LOW,
        CONFIG_GENERATION,
    ];
}

const S_ACKNOWLEDGE: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;

/// Fresh guest RAM laid out as [`RAM`].
pub fn guest_memory() -> GuestMemory {
    let ranges: Vec<(GuestAddress, usize)> = RAM.iter().map(|&(a, l)| (GuestAddress(a), l)).collect();
    GuestMemory::from_ranges(&ranges).expect("guest RAM for fuzzing")
}

/// An unnamed scratch file of `len` bytes (a disk image), in memory when `/dev/shm` exists so that
/// flushes cost nothing.
pub fn scratch_file(len: u64) -> std::fs::File {
    let f = tempfile::tempfile_in("/dev/shm")
        .or_else(|_| tempfile::tempfile())
        .expect("scratch file");
    f.set_len(len).expect("scratch file size");
    f
}

/// An interrupt line that goes nowhere.
pub struct NullIrq;

impl IrqTrigger for NullIrq {
    fn trigger(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A guest-physical address: mostly inside or at the edges of RAM, sometimes anything at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub u64);

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(Addr(match u.int_in_range(0u8..=15)? {
            0 => u64::arbitrary(u)?,
            1 => u64::MAX - u64::from(u.int_in_range(0u16..=0x1000)?),
            2 => {
                // Just below the end of a region.
                let (base, len) = RAM[usize::from(u.int_in_range(0u8..=2)?)];
                base + len as u64 - u64::from(u.int_in_range(0u16..=64)?)
            }
            _ => u.int_in_range(0..=RAM_END - 1)?,
        }))
    }
}

/// A buffer length: mostly small, sometimes up to `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Len(pub u32);

impl<'a> Arbitrary<'a> for Len {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(Len(match u.int_in_range(0u8..=7)? {
            0 => u32::arbitrary(u)?,
            1 => u.int_in_range(0..=0x2_0000)?,
            _ => u.int_in_range(0..=600)?,
        }))
    }
}

/// Descriptor flags: usually a combination of NEXT, WRITE and INDIRECT, sometimes any bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u16);

impl<'a> Arbitrary<'a> for Flags {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let b = u8::arbitrary(u)?;
        if b & 0x80 != 0 {
            return Ok(Flags(u16::arbitrary(u)?));
        }
        let mut f = 0;
        for (bit, flag) in [
            (1, VRING_DESC_F_NEXT),
            (2, VRING_DESC_F_WRITE),
            (4, VRING_DESC_F_INDIRECT),
        ] {
            if b & bit != 0 {
                f |= flag as u16;
            }
        }
        Ok(Flags(f))
    }
}

/// Where the driver puts one queue.
#[derive(Debug, Clone, Arbitrary)]
pub enum Layout {
    /// Descriptor table, avail ring and used ring back to back at a 16-byte aligned `base` (as Linux
    /// allocates them), with `2^size_log2` entries.
    Packed { base: u16, size_log2: u8 },
    /// Any size and addresses.
    Free {
        size: u16,
        desc: Addr,
        avail: Addr,
        used: Addr,
    },
}

/// One buffer of a chain built by [`Op::Chain`].
#[derive(Debug, Clone, Arbitrary)]
pub struct Buf {
    pub addr: Addr,
    pub len: Len,
    pub write: bool,
}

/// A register access of any width at any offset.
#[derive(Debug, Clone, Arbitrary)]
pub enum RegOp {
    /// A 32-bit write to a known register.
    Write32 {
        reg: u8,
        value: u32,
    },
    /// A 32-bit read of a known register.
    Read32 {
        reg: u8,
    },
    /// Any access inside the device's 4 KiB window, 1 to 8 bytes wide (what a KVM MMIO exit carries).
    Write {
        offset: u16,
        data: [u8; 8],
        len: u8,
    },
    Read {
        offset: u16,
        len: u8,
    },
}

/// A step on the guest-memory side of the queues: what a driver writes, never a register.
#[derive(Debug, Clone, Arbitrary)]
pub enum RingOp {
    /// Writes descriptor `index` (modulo the queue size) of a queue's table.
    Desc {
        queue: u8,
        index: u16,
        addr: Addr,
        len: Len,
        flags: Flags,
        next: u16,
    },
    /// Writes entry `index` of an indirect table at `table`.
    IndirectDesc {
        table: Addr,
        index: u8,
        addr: Addr,
        len: Len,
        flags: Flags,
        next: u16,
    },
    /// A well-formed chain in the next free descriptors (or, `indirect`, one descriptor pointing at a
    /// table at `table`), published in the avail ring.
    Chain {
        queue: u8,
        bufs: Vec<Buf>,
        indirect: bool,
        table: Addr,
    },
    /// Puts `head` in the next avail slot and bumps the avail index.
    Publish { queue: u8, head: u16 },
    /// Sets the avail index to anything.
    SetAvailIdx { queue: u8, idx: u16 },
    /// Writes the avail ring's flags (NO_INTERRUPT) and `used_event`.
    AvailFlags { queue: u8, flags: u16 },
    /// Writes bytes anywhere in guest memory.
    Write { addr: Addr, data: Vec<u8> },
}

/// One step of the hostile driver; `D` is the target's device-specific step.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op<D> {
    /// Descriptors, rings, memory.
    Ring(RingOp),
    /// QueueNotify with any value.
    Notify { value: u32 },
    /// A register access.
    Reg(RegOp),
    /// Status 0, then the same bring-up again.
    Reset,
    /// Something only this device has.
    Device(D),
}

/// What the driver negotiates before the operations run.
#[derive(Debug, Clone, Arbitrary)]
pub struct Setup {
    /// Features the driver accepts (the transport drops what it did not offer).
    pub features: u64,
    /// Accept everything offered instead of `features`.
    pub accept_offered: bool,
    /// Queue placement, one per queue; missing entries get a packed layout of their own.
    pub layouts: Vec<Layout>,
    /// Skip DRIVER_OK (the operations then run against a device that is not live).
    pub skip_driver_ok: bool,
}

/// The queue as the driver programmed it.
#[derive(Debug, Clone, Copy)]
struct DriverQueue {
    size: u16,
    desc: u64,
    avail: u64,
    avail_idx: u16,
    next_desc: u16,
}

impl DriverQueue {
    fn new(size: u16, desc: u64, avail: u64) -> Self {
        DriverQueue {
            size,
            desc,
            avail,
            avail_idx: 0,
            next_desc: 0,
        }
    }
}

/// A hostile guest driver in front of one device.
pub struct Driver {
    pub transport: MmioTransport,
    pub mem: GuestMemory,
    queue_count: usize,
    queues: Vec<DriverQueue>,
}

/// Writes without caring whether the address is in RAM (the guest's own memory, its own problem).
fn poke<T: vm_memory::ByteValued>(mem: &GuestMemory, addr: u64, v: T) {
    let _ = mem.write_obj(v, GuestAddress(addr));
}

impl Driver {
    /// A transport over `device` on fresh guest RAM.
    pub fn new(device: Box<dyn VirtioDevice>) -> Self {
        let mem = guest_memory();
        let queue_count = device.queue_max_sizes().len();
        let transport = MmioTransport::new(mem.clone(), Arc::new(NullIrq), device);
        Driver {
            transport,
            mem,
            queue_count,
            queues: Vec::new(),
        }
    }

    pub fn read32(&mut self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.transport.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn write32(&mut self, offset: u64, value: u32) {
        self.transport.write(offset, &value.to_le_bytes());
    }

    /// Linux's probe sequence with the fuzzer's features and queue placement.
    pub fn bring_up(&mut self, setup: &Setup) {
        self.write32(reg::STATUS, 0);
        self.write32(reg::STATUS, S_ACKNOWLEDGE);
        self.write32(reg::STATUS, S_ACKNOWLEDGE | S_DRIVER);
        let features = if setup.accept_offered {
            self.write32(reg::DEVICE_FEATURES_SEL, 0);
            let lo = self.read32(reg::DEVICE_FEATURES);
            self.write32(reg::DEVICE_FEATURES_SEL, 1);
            let hi = self.read32(reg::DEVICE_FEATURES);
            u64::from(lo) | (u64::from(hi) << 32)
        } else {
            setup.features
        };
        self.write32(reg::DRIVER_FEATURES_SEL, 0);
        self.write32(reg::DRIVER_FEATURES, features as u32);
        self.write32(reg::DRIVER_FEATURES_SEL, 1);
        self.write32(reg::DRIVER_FEATURES, (features >> 32) as u32);
        self.write32(reg::STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);

        self.queues.clear();
        for i in 0..self.queue_count {
            let (size, desc, avail, used) = match setup.layouts.get(i) {
                Some(Layout::Free {
                    size,
                    desc,
                    avail,
                    used,
                }) => (*size, desc.0, avail.0, used.0),
                Some(Layout::Packed { base, size_log2 }) => {
                    packed(u64::from(*base) * 16 % RAM_END, 1 << (size_log2 % 9))
                }
                None => packed(0x1000 + 0x2000 * i as u64, 64),
            };
            self.write32(reg::QUEUE_SEL, i as u32);
            self.write32(reg::QUEUE_NUM, u32::from(size));
            self.write32(reg::QUEUE_DESC_LOW, desc as u32);
            self.write32(reg::QUEUE_DESC_HIGH, (desc >> 32) as u32);
            self.write32(reg::QUEUE_AVAIL_LOW, avail as u32);
            self.write32(reg::QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
            self.write32(reg::QUEUE_USED_LOW, used as u32);
            self.write32(reg::QUEUE_USED_HIGH, (used >> 32) as u32);
            // The ring indices start at zero, as a driver's freshly allocated rings do.
            poke(&self.mem, avail, 0u32);
            poke(&self.mem, used, 0u32);
            self.write32(reg::QUEUE_READY, 1);
            self.queues.push(DriverQueue::new(size, desc, avail));
        }
        if !setup.skip_driver_ok {
            self.write32(
                reg::STATUS,
                S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK,
            );
        }
    }

    fn queue(&mut self, q: u8) -> Option<&mut DriverQueue> {
        let n = self.queues.len();
        self.queues.get_mut(usize::from(q) % n.max(1))
    }

    /// Runs one operation; device steps go to `device`.
    pub fn run<D>(&mut self, setup: &Setup, op: &Op<D>, device: &mut impl FnMut(&mut Self, &D)) {
        match op {
            Op::Ring(r) => self.ring_op(r),
            Op::Notify { value } => self.write32(reg::QUEUE_NOTIFY, *value),
            Op::Reg(r) => self.reg_op(r),
            Op::Reset => self.bring_up(setup),
            Op::Device(d) => device(self, d),
        }
    }

    /// A write to the queues' memory.
    pub fn ring_op(&mut self, op: &RingOp) {
        let mem = self.mem.clone();
        match op {
            RingOp::Desc {
                queue,
                index,
                addr,
                len,
                flags,
                next,
            } => {
                if let Some(q) = self.queue(*queue) {
                    let at = q.desc.wrapping_add(16 * u64::from(index % q.size.max(1)));
                    write_desc(&mem, at, addr.0, len.0, flags.0, *next);
                }
            }
            RingOp::IndirectDesc {
                table,
                index,
                addr,
                len,
                flags,
                next,
            } => {
                let at = table.0.wrapping_add(16 * u64::from(*index));
                write_desc(&mem, at, addr.0, len.0, flags.0, *next);
            }
            RingOp::Chain {
                queue,
                bufs,
                indirect,
                table,
            } => self.add_chain(*queue, bufs, indirect.then_some(table.0)),
            RingOp::Publish { queue, head } => {
                if let Some(q) = self.queue(*queue) {
                    publish(&mem, q, *head);
                }
            }
            RingOp::SetAvailIdx { queue, idx } => {
                if let Some(q) = self.queue(*queue) {
                    q.avail_idx = *idx;
                    poke(&mem, q.avail.wrapping_add(2), *idx);
                }
            }
            RingOp::AvailFlags { queue, flags } => {
                if let Some(q) = self.queue(*queue) {
                    poke(&mem, q.avail, *flags);
                    let used_event = q.avail.wrapping_add(4 + 2 * u64::from(q.size));
                    poke(&mem, used_event, *flags);
                }
            }
            RingOp::Write { addr, data } => {
                let _ = mem.write_slice(data, GuestAddress(addr.0));
            }
        }
    }

    /// Writes a well-formed chain of `bufs` into queue `queue` (directly, or through an indirect table at
    /// `table`) and publishes it.
    pub fn add_chain(&mut self, queue: u8, bufs: &[Buf], table: Option<u64>) {
        let mem = self.mem.clone();
        if let Some(q) = self.queue(queue) {
            add_chain(&mem, q, bufs, table);
        }
    }

    /// A register access as the bus would deliver it.
    pub fn reg_op(&mut self, op: &RegOp) {
        match *op {
            RegOp::Write32 { reg, value } => {
                let offset = reg::ALL[usize::from(reg) % reg::ALL.len()];
                self.write32(offset, value);
            }
            RegOp::Read32 { reg } => {
                let offset = reg::ALL[usize::from(reg) % reg::ALL.len()];
                self.read32(offset);
            }
            RegOp::Write { offset, data, len } => {
                let len = usize::from(len % 8) + 1;
                self.transport.write(u64::from(offset & 0xfff), &data[..len]);
            }
            RegOp::Read { offset, len } => {
                let mut data = [0u8; 8];
                let len = usize::from(len % 8) + 1;
                self.transport.read(u64::from(offset & 0xfff), &mut data[..len]);
            }
        }
    }

    /// Brings the device up and runs every operation.
    pub fn run_all<D>(&mut self, setup: &Setup, ops: &[Op<D>], mut device: impl FnMut(&mut Self, &D)) {
        self.bring_up(setup);
        for op in ops {
            self.run(setup, op, &mut device);
        }
    }
}

/// `(size, desc, avail, used)` of a queue laid out back to back at `base`.
fn packed(base: u64, size: u16) -> (u16, u64, u64, u64) {
    let desc = base & !15;
    let avail = desc + 16 * u64::from(size);
    let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
    (size, desc, avail, used)
}

fn write_desc(mem: &GuestMemory, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
    poke(mem, at, addr);
    poke(mem, at.wrapping_add(8), len);
    poke(mem, at.wrapping_add(12), flags);
    poke(mem, at.wrapping_add(14), next);
}

fn publish(mem: &GuestMemory, q: &mut DriverQueue, head: u16) {
    let slot = q
        .avail
        .wrapping_add(4 + 2 * u64::from(q.avail_idx % q.size.max(1)));
    poke(mem, slot, head);
    q.avail_idx = q.avail_idx.wrapping_add(1);
    poke(mem, q.avail.wrapping_add(2), q.avail_idx);
}

fn add_chain(mem: &GuestMemory, q: &mut DriverQueue, bufs: &[Buf], table: Option<u64>) {
    let size = q.size.max(1);
    let head = q.next_desc % size;
    let flag = |b: &Buf, last: bool| {
        let mut f = if b.write { VRING_DESC_F_WRITE as u16 } else { 0 };
        if !last {
            f |= VRING_DESC_F_NEXT as u16;
        }
        f
    };
    match table {
        Some(table) => {
            for (i, b) in bufs.iter().enumerate() {
                let at = table.wrapping_add(16 * i as u64);
                let last = i + 1 == bufs.len();
                write_desc(mem, at, b.addr.0, b.len.0, flag(b, last), i as u16 + 1);
            }
            let len = (16 * bufs.len()) as u32;
            write_desc(
                mem,
                q.desc.wrapping_add(16 * u64::from(head)),
                table,
                len,
                VRING_DESC_F_INDIRECT as u16,
                0,
            );
            q.next_desc = (head + 1) % size;
        }
        None => {
            for (i, b) in bufs.iter().enumerate() {
                let index = (u32::from(head) + i as u32) % u32::from(size);
                let next = (index + 1) % u32::from(size);
                let last = i + 1 == bufs.len();
                write_desc(
                    mem,
                    q.desc.wrapping_add(16 * u64::from(index)),
                    b.addr.0,
                    b.len.0,
                    flag(b, last),
                    next as u16,
                );
            }
            q.next_desc = ((u32::from(head) + bufs.len() as u32) % u32::from(size)) as u16;
        }
    }
    publish(mem, q, head);
}
