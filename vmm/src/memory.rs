//! Guest RAM without KVM: where it sits in the guest's physical address space (from the configured
//! size) and its host allocation, with a dirty bitmap. Registering it with a VM is `vstate::vm`'s job,
//! so the same allocation step serves a fresh boot and, later, a restore or an incoming migration.
//!
//! [`GuestMemory`] is the one type the VMM uses for guest RAM. Its bitmap (vm-memory's `AtomicBitmap`,
//! one bit per host page) records every write the VMM itself makes through it — virtio devices filling
//! buffers and used rings, boot images and tables — which KVM's dirty log cannot see (that log covers the
//! guest's own writes). Pre-copy migration and incremental snapshots need both, Cloud Hypervisor style;
//! [`take_dirty_pages`] is the VMM's half.

use vm_memory::bitmap::AtomicBitmap;
use vm_memory::mmap::{FromRangesError, MmapRegionError};
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionCollectionError,
    GuestRegionMmap, MmapRegion,
};

use crate::layout;

/// Guest RAM as the whole VMM sees it: mmap-backed regions whose writes are tracked per page.
pub type GuestMemory = GuestMemoryMmap<AtomicBitmap>;

/// Errors while allocating guest memory or viewing it.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("Failed to allocate guest memory")]
    Allocate(#[source] FromRangesError),
    #[error("Failed to describe a guest memory region for the untracked view")]
    UntrackedRegion(#[source] MmapRegionError),
    #[error("Guest memory region at {0:#x} does not fit the guest address space")]
    UntrackedRegionRange(u64),
    #[error("Failed to assemble the untracked view of guest memory")]
    UntrackedView(#[source] GuestRegionCollectionError),
}

/// Guest RAM ranges `(start, size)` for `mem_size` bytes: split around the 32-bit MMIO hole.
///
/// The e820 map (`boot::params`) is derived from the same ranges, so what the guest is told and what
/// is mapped cannot disagree.
pub fn ram_ranges(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= layout::MMIO_HOLE_START {
        vec![(0, mem_size)]
    } else {
        vec![
            (0, layout::MMIO_HOLE_START),
            (layout::MMIO_HOLE_END, mem_size - layout::MMIO_HOLE_START),
        ]
    }
}

/// The RAM regions of a guest with `mem_size` bytes, as vm-memory takes them.
pub fn layout(mem_size: u64) -> Vec<(GuestAddress, usize)> {
    ram_ranges(mem_size)
        .into_iter()
        .map(|(start, size)| (GuestAddress(start), size as usize))
        .collect()
}

/// Allocates zeroed, dirty-tracked memory for `regions` (anonymous private mappings, reserved lazily:
/// pages cost host memory only once touched).
pub fn allocate(regions: &[(GuestAddress, usize)]) -> Result<GuestMemory, MemoryError> {
    GuestMemory::from_ranges(regions).map_err(MemoryError::Allocate)
}

/// Layout and allocation in one step: the RAM of a guest with `mem_size` bytes.
pub fn create(mem_size: u64) -> Result<GuestMemory, MemoryError> {
    allocate(&layout(mem_size))
}

/// Pages the VMM wrote through `mem` since the previous call, and clears the record: per region, its
/// start and one bit per page (bit `n` of word `w` is page `64 * w + n` of the region).
pub fn take_dirty_pages(mem: &GuestMemory) -> Vec<(GuestAddress, Vec<u64>)> {
    mem.iter()
        .map(|r| (r.start_addr(), MmapRegion::bitmap(r).get_and_reset()))
        .collect()
}

/// The same guest RAM without dirty tracking, for code that still takes `GuestMemoryMmap<()>`:
/// `boot::regs` and the vCPU context (`vstate::vcpu::VcpuContext::mem`), both outside this refactor.
/// Writes through the view are not recorded in the bitmap; once those modules take [`GuestMemory`],
/// this adapter goes away.
///
/// # Safety
/// The view borrows the mappings without owning them: the caller must drop the view and every clone
/// of it before the last [`GuestMemory`] clone that owns `mem`'s regions is dropped (which unmaps them).
pub unsafe fn untracked_view(mem: &GuestMemory) -> Result<GuestMemoryMmap<()>, MemoryError> {
    let regions = mem
        .iter()
        .map(|r| {
            // SAFETY: `as_ptr()..as_ptr() + size()` is the live mapping of region `r`, created with
            // `prot()` and `flags()`; the caller keeps it mapped for as long as the view exists.
            let mapping = unsafe { MmapRegion::<()>::build_raw(r.as_ptr(), r.size(), r.prot(), r.flags()) }
                .map_err(MemoryError::UntrackedRegion)?;
            GuestRegionMmap::new(mapping, r.start_addr())
                .ok_or(MemoryError::UntrackedRegionRange(r.start_addr().0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    GuestMemoryMmap::from_regions(regions).map_err(MemoryError::UntrackedView)
}

#[cfg(test)]
mod tests {
    use vm_memory::Bytes;

    use super::*;

    const PAGE: u64 = 4096;

    /// Page numbers set in one region's bitmap.
    fn pages(words: &[u64]) -> Vec<u64> {
        let mut v = Vec::new();
        for (w, word) in words.iter().enumerate() {
            for bit in 0..64 {
                if word & (1 << bit) != 0 {
                    v.push(w as u64 * 64 + bit);
                }
            }
        }
        v
    }

    #[test]
    fn layout_splits_ram_around_the_mmio_hole() {
        assert_eq!(layout(64 << 20), vec![(GuestAddress(0), 64 << 20)]);
        let big = layout(4096 << 20);
        assert_eq!(big.len(), 2);
        assert_eq!(big[0], (GuestAddress(0), layout::MMIO_HOLE_START as usize));
        assert_eq!(big[1].0, GuestAddress(layout::MMIO_HOLE_END));
        let total: usize = big.iter().map(|r| r.1).sum();
        assert_eq!(total as u64, 4096 << 20, "no RAM is lost in the hole");
    }

    #[test]
    fn fresh_memory_is_clean_and_reads_do_not_dirty_it() {
        let mem = create(1 << 20).unwrap();
        let _: u64 = mem.read_obj(GuestAddress(0x3000)).unwrap();
        assert!(take_dirty_pages(&mem).iter().all(|(_, w)| pages(w).is_empty()));
    }

    #[test]
    fn vmm_writes_mark_exactly_the_pages_they_touch_until_taken() {
        let mem = create(1 << 20).unwrap();
        mem.write_obj(0xabu8, GuestAddress(5 * PAGE + 7)).unwrap();
        // A write straddling a page boundary marks both pages.
        mem.write_slice(&[1u8; 8], GuestAddress(9 * PAGE - 4)).unwrap();
        let dirty = take_dirty_pages(&mem);
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].0, GuestAddress(0));
        assert_eq!(pages(&dirty[0].1), vec![5, 8, 9]);
        assert!(
            pages(&take_dirty_pages(&mem)[0].1).is_empty(),
            "taking the record clears it"
        );
    }

    #[test]
    fn untracked_view_shares_the_memory_but_not_the_bitmap() {
        let mem = create(1 << 20).unwrap();
        // SAFETY: `view` is dropped at the end of this test, before `mem` (declared first).
        let view = unsafe { untracked_view(&mem) }.unwrap();
        view.write_obj(0x1234_5678u32, GuestAddress(3 * PAGE)).unwrap();
        let seen: u32 = mem.read_obj(GuestAddress(3 * PAGE)).unwrap();
        assert_eq!(seen, 0x1234_5678);
        assert!(pages(&take_dirty_pages(&mem)[0].1).is_empty());
        mem.write_obj(7u8, GuestAddress(4 * PAGE)).unwrap();
        let back: u8 = view.read_obj(GuestAddress(4 * PAGE)).unwrap();
        assert_eq!(back, 7);
    }
}
