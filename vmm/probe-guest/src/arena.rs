//! A bump allocator over a static, identity-mapped buffer: page tables, virtqueues and DMA buffers.
//!
//! Nothing is ever freed (the probe sets up a fixed set of devices once). Addresses handed out are guest
//! physical addresses too, because the probe runs identity mapped.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

const ARENA_SIZE: usize = 64 * 1024;

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
    let base = ARENA.0.get() as usize;
    let offset = NEXT.load(Ordering::Relaxed);
    let start = (base + offset).checked_add(align - 1)? & !(align - 1);
    let end = start.checked_add(size)?;
    if end > base + ARENA_SIZE {
        return None;
    }
    NEXT.store(end - base, Ordering::Relaxed);
    let ptr = start as *mut u8;
    // SAFETY: [start, end) lies inside ARENA and was never handed out before (NEXT only grows).
    unsafe { core::ptr::write_bytes(ptr, 0, size) };
    Some(ptr)
}
