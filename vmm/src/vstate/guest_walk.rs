//! The guest's own page tables, walked the way the CPU would for an instruction the VMM completes on the
//! guest's behalf (`xsave`): 4- and 5-level paging, supervisor/user and write protection (CR0.WP, SMAP
//! with RFLAGS.AC), accessed and dirty bits set as the walk goes, and the #PF (error code, CR2) or #GP it
//! raises instead. Copy-on-write pages fault rather than being written.

use std::sync::atomic::{AtomicU64, Ordering};

use vm_memory::bitmap::Bitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory};

/// An exception the instruction raises instead of completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// #UD.
    InvalidOpcode,
    /// #NM.
    DeviceNotAvailable,
    /// #GP(0).
    GeneralProtection,
    /// #PF with this error code at this linear address (CR2).
    Page { error_code: u32, address: u64 },
}

/// Control registers and flags the page walk needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paging {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub rflags: u64,
    /// Current privilege level.
    pub cpl: u8,
}

pub(super) const CR0_PG: u64 = 1 << 31;
pub(super) const CR0_WP: u64 = 1 << 16;
pub(super) const CR4_LA57: u64 = 1 << 12;
pub(super) const CR4_SMAP: u64 = 1 << 21;
pub(super) const EFER_LMA: u64 = 1 << 10;
pub(super) const RFLAGS_AC: u64 = 1 << 18;
pub(super) const PTE_P: u64 = 1 << 0;
pub(super) const PTE_RW: u64 = 1 << 1;
pub(super) const PTE_US: u64 = 1 << 2;
pub(super) const PTE_A: u64 = 1 << 5;
pub(super) const PTE_D: u64 = 1 << 6;
pub(super) const PTE_PS: u64 = 1 << 7;
pub(super) const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
pub(super) const PF_P: u32 = 1 << 0;
pub(super) const PF_W: u32 = 1 << 1;
pub(super) const PF_U: u32 = 1 << 2;
pub(super) const PAGE: u64 = 4096;

pub(super) fn canonical(addr: u64, bits: u32) -> bool {
    let shift = 64 - bits;
    ((addr << shift) as i64 >> shift) as u64 == addr
}

/// Translates `gva` for a data access like the CPU would (4- or 5-level long-mode paging, R/W, U/S,
/// CR0.WP, SMAP), setting the accessed bits and, for writes, the dirty bit. Errors are the exception
/// the access raises. Long mode only: the caller rejects other modes.
pub fn translate<B: Bitmap>(
    mem: &GuestMemoryMmap<B>,
    pg: &Paging,
    gva: u64,
    write: bool,
) -> Result<u64, Fault> {
    if pg.cr0 & CR0_PG == 0 {
        return Ok(gva);
    }
    let levels = if pg.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
    if !canonical(gva, 12 + 9 * levels) {
        return Err(Fault::GeneralProtection);
    }
    let user = pg.cpl == 3;
    let fault = |present: bool| Fault::Page {
        error_code: if present { PF_P } else { 0 }
            | if write { PF_W } else { 0 }
            | if user { PF_U } else { 0 },
        address: gva,
    };
    let mut table = pg.cr3 & PTE_ADDR;
    let (mut rw, mut us) = (true, true);
    let mut entries = vec![];
    for level in (0..levels).rev() {
        let shift = 12 + 9 * level;
        let slot = table + ((gva >> shift) & 0x1ff) * 8;
        let entry: u64 = mem.read_obj(GuestAddress(slot)).map_err(|_| fault(false))?;
        if entry & PTE_P == 0 {
            return Err(fault(false));
        }
        rw &= entry & PTE_RW != 0;
        us &= entry & PTE_US != 0;
        entries.push(slot);
        let large = (level == 1 || level == 2) && entry & PTE_PS != 0;
        if level == 0 || large {
            if user && !us {
                return Err(fault(true));
            }
            if write && !rw && (user || pg.cr0 & CR0_WP != 0) {
                return Err(fault(true));
            }
            if !user && us && pg.cr4 & CR4_SMAP != 0 && pg.rflags & RFLAGS_AC == 0 {
                return Err(fault(true));
            }
            let page_mask = (1u64 << shift) - 1;
            let leaf = entries.len() - 1;
            for (n, slot) in entries.iter().enumerate() {
                let bits = if n == leaf && write { PTE_A | PTE_D } else { PTE_A };
                set_bits(mem, *slot, bits);
            }
            return Ok((entry & PTE_ADDR & !page_mask) | (gva & page_mask));
        }
        table = entry & PTE_ADDR;
    }
    Err(fault(false))
}

/// ORs `bits` into the paging entry at `gpa` atomically (another vCPU may update it concurrently), and
/// records the write in `mem`'s dirty bitmap, if it has one.
pub(super) fn set_bits<B: Bitmap>(mem: &GuestMemoryMmap<B>, gpa: u64, bits: u64) {
    if let Ok(slice) = mem.get_slice(GuestAddress(gpa), 8) {
        if let Ok(entry) = slice.get_atomic_ref::<AtomicU64>(0) {
            if entry.fetch_or(bits, Ordering::SeqCst) & bits != bits {
                slice.bitmap().mark_dirty(0, 8);
            }
        }
    }
}

/// Guest-physical pieces of `[gva, gva + len)`, translated page by page (all before any access, so a
/// fault leaves memory untouched).
pub fn map_range<B: Bitmap>(
    mem: &GuestMemoryMmap<B>,
    pg: &Paging,
    gva: u64,
    len: usize,
    write: bool,
) -> Result<Vec<(u64, usize)>, Fault> {
    let mut out = vec![];
    let mut done = 0usize;
    while done < len {
        let va = gva.wrapping_add(done as u64);
        let chunk = ((PAGE - (va % PAGE)) as usize).min(len - done);
        out.push((translate(mem, pg, va, write)?, chunk));
        done += chunk;
    }
    Ok(out)
}

/// Reads `[gva, gva + len)` of guest virtual memory.
pub fn read_virt<B: Bitmap>(
    mem: &GuestMemoryMmap<B>,
    pg: &Paging,
    gva: u64,
    len: usize,
) -> Result<Vec<u8>, Fault> {
    let mut buf = vec![0u8; len];
    let mut at = 0;
    for (gpa, n) in map_range(mem, pg, gva, len, false)? {
        mem.read_slice(&mut buf[at..at + n], GuestAddress(gpa))
            .map_err(|_| Fault::GeneralProtection)?;
        at += n;
    }
    Ok(buf)
}
