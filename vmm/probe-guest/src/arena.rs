//! A bump allocator over a static, identity-mapped buffer: page tables, virtqueues and DMA buffers.
//!
//! Nothing is ever freed (the probe sets up a fixed set of devices once). Addresses handed out are guest
//! physical addresses too, because the probe runs identity mapped.
//!
//! Sized for the net driver's frame buffers (NET_POOL_BYTES, up to 4 MiB), which come on top of the
//! small allocations of everything else (page tables, the IDT, rings, request buffers: < 64 KiB).
//! The arena is NOLOAD memory, so its size costs nothing in the ELF or at boot.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What the net driver may take for frame buffers.
pub const NET_POOL_BYTES: usize = 4 << 20;
const ARENA_SIZE: usize = 128 * 1024 + NET_POOL_BYTES;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: the probe is single-threaded (one vCPU, no interrupts); `NEXT` hands out disjoint ranges.
unsafe impl Sync for Arena {}

/// In `.noinit` (NOLOAD, not zeroed by `_start`): `alloc` zeroes what it hands out, which costs less than
/// clearing the whole arena on a CPU that is emulated.
#[link_section = ".noinit"]
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));
/// In `.bss`, so zero at every boot (also after a reset that keeps RAM).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `size` zeroed bytes aligned to `align` (a power of two ≤ 4096), or `None` when the arena is exhausted.
pub fn alloc(size: usize, align: usize) -> Option<*mut u8> {
    let ptr = alloc_uninit(size, align)?;
    // SAFETY: `alloc_uninit` handed out [ptr, ptr + size) inside ARENA to this caller only.
    unsafe { core::ptr::write_bytes(ptr, 0, size) };
    Some(ptr)
}

/// Like [`alloc`] without zeroing: for buffers a device fills before the driver reads them (zeroing
/// megabytes on an emulated CPU takes noticeable time at boot).
pub fn alloc_uninit(size: usize, align: usize) -> Option<*mut u8> {
    let base = ARENA.0.get() as usize;
    let offset = NEXT.load(Ordering::Relaxed);
    let start = (base + offset).checked_add(align - 1)? & !(align - 1);
    let end = start.checked_add(size)?;
    if end > base + ARENA_SIZE {
        return None;
    }
    // [start, end) lies inside ARENA and was never handed out before (NEXT only grows).
    NEXT.store(end - base, Ordering::Relaxed);
    Some(start as *mut u8)
}
