//! Port I/O and memory-mapped register access.
//!
//! Port I/O cannot break Rust's memory safety (no port on this platform does DMA on a byte write), so the
//! wrappers are safe functions. MMIO goes through [`Mmio`], whose constructor is the one unsafe promise.

use core::arch::asm;

pub fn outb(port: u16, value: u8) {
    // SAFETY: `out` touches no memory visible to Rust; the VMM owns every port.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: `in` touches no memory visible to Rust.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) }
    value
}

/// A window of device registers at an identity-mapped physical address.
#[derive(Clone, Copy)]
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// # Safety
    /// `base .. base + 0x1000` must be identity mapped and belong to a device (not RAM Rust uses).
    pub unsafe fn new(base: u64) -> Self {
        Self { base: base as usize }
    }

    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: the window is mapped device memory; offsets are register offsets < 4 KiB.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u16) }
    }

    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u8) }
    }

    pub fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u8, value) }
    }
}
