//! XGETBV, XSAVE, XSAVEOPT, XSAVEC and XRSTOR for KVMs whose instruction emulator cannot execute them
//! (kvm_pvm on the development hosts), completed from KVM's copy of the vCPU's extended state.
//!
//! Why the guest needs them although the emulator lacks them: kvm_pvm runs guest *user* code natively.
//! On AMD hosts nothing traps a user-mode CPUID (no CPUID faulting) and the host's XCR0 stays loaded,
//! so user space sees and uses the host's AVX, AVX2 and AVX-512 (glibc picks its EVEX `memcpy`, which
//! keeps data in ymm16/ymm17). A guest kernel booted with `noxsave` context-switches only the
//! FXSAVE state (x87, XMM0-15): the other registers then leak from one guest process into the next. A
//! busybox whose `memcpy` of its TLS image was interrupted by a page fault and a task switch stored
//! another process's ymm16/ymm17 (a '%' broadcast of a shell's `strchr`) instead of the image, and died
//! in `__ctype_init` ("segfault at 0 ... in busybox", issue 11). With XSAVE the guest kernel saves and
//! restores every component user space can touch; this module supplies the instructions.
//!
//! Everything here is pure (decoding, the guest page walk, the XSAVE image transforms) apart from
//! guest-memory access, so it is unit-tested without KVM. The architectural reference is the Intel
//! SDM vol. 1 ch. 13: standard and compacted formats (Linux 6.1 saves with XSAVEC when the CPU has
//! it and XSAVES is absent). XSAVES/XRSTORS (supervisor state) are not completed: a guest that uses
//! them still stops with the emulator's internal error.

use kvm_bindings::CpuId;

/// The guest page walk these instructions use (and raise #PF/#GP from), in its own file.
pub use super::guest_walk::*;

/// Legacy region (FXSAVE layout) plus the 64-byte XSAVE header.
pub const LEGACY_SIZE: usize = 512;
pub const HEADER_SIZE: usize = 64;
/// Size of KVM's `kvm_xsave` image (standard format).
pub const KVM_IMAGE_SIZE: usize = 4096;
const XSTATE_BV: usize = LEGACY_SIZE;
const XCOMP_BV: usize = LEGACY_SIZE + 8;
/// XCOMP_BV bit 63: the area is in the compacted format.
const XCOMP_COMPACTED: u64 = 1 << 63;
const MXCSR: usize = 24;
const MXCSR_MASK: usize = 28;
const MXCSR_DEFAULT: u32 = 0x1f80;
const MXCSR_MASK_DEFAULT: u32 = 0xffbf;
const FCW_DEFAULT: u16 = 0x037f;
pub const XFEATURE_FP: u64 = 1 << 0;
pub const XFEATURE_SSE: u64 = 1 << 1;
pub const XFEATURE_YMM: u64 = 1 << 2;
/// Legacy-region bytes of the x87 component: FCW..FDP, then ST0-7 (MXCSR sits between them).
const X87_RANGES: [(usize, usize); 2] = [(0, 24), (32, 160)];
/// XMM0-15.
const SSE_RANGE: (usize, usize) = (160, 416);
const LEAF_XSTATE: u32 = 0xd;
/// Alignment XSAVE/XRSTOR require of the area (#GP otherwise).
const AREA_ALIGN: u64 = 64;

/// Where each user state component (2..62) lives, from CPUID leaf 0xD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// (component, standard-format offset, size, 64-byte aligned in the compacted format), ascending.
    components: Vec<(u32, usize, usize, bool)>,
}

impl Layout {
    /// The layout KVM uses for its `kvm_xsave` image: the host's, which KVM reports in its supported
    /// CPUID (leaf 0xD, subleaf i: EAX size, EBX offset, ECX bit 0 supervisor, bit 1 aligned).
    pub fn from_cpuid(cpuid: &CpuId) -> Layout {
        let mut components: Vec<(u32, usize, usize, bool)> = cpuid
            .as_slice()
            .iter()
            .filter(|e| e.function == LEAF_XSTATE && (2..63).contains(&e.index))
            .filter(|e| e.eax != 0 && e.ecx & 1 == 0)
            .map(|e| (e.index, e.ebx as usize, e.eax as usize, e.ecx & 2 != 0))
            .collect();
        components.sort_unstable();
        Layout { components }
    }

    /// (offset, size) of component `i` (>= 2) in the standard format, if known and inside KVM's image.
    fn component(&self, i: u32) -> Option<(usize, usize)> {
        self.components
            .iter()
            .find(|c| c.0 == i)
            .map(|&(_, off, size, _)| (off, size))
            .filter(|&(off, size)| off >= LEGACY_SIZE + HEADER_SIZE && off + size <= KVM_IMAGE_SIZE)
    }

    /// Byte ranges of the legacy region and the standard format that hold the components in `mask`
    /// (header and MXCSR excluded), or None if a component is unknown.
    fn ranges(&self, mask: u64) -> Option<Vec<(usize, usize)>> {
        let mut out = vec![];
        for i in (0..63).filter(|i| mask & (1 << i) != 0) {
            match i {
                0 => out.extend(X87_RANGES),
                1 => out.push(SSE_RANGE),
                _ => {
                    let (off, size) = self.component(i)?;
                    out.push((off, off + size));
                }
            }
        }
        Some(out)
    }

    /// Bytes of a standard-format area XSAVE/XRSTOR touch for `mask`: the legacy region, the header and
    /// the components.
    pub fn area_len(&self, mask: u64) -> Option<usize> {
        let end = self.ranges(mask)?.iter().map(|r| r.1).max().unwrap_or(0);
        Some(end.max(LEGACY_SIZE + HEADER_SIZE))
    }

    /// Compacted format for the components in `xcomp` (XCOMP_BV[62:0]): where each extended component
    /// sits, and the area's length.
    fn compacted(&self, xcomp: u64) -> Option<(Vec<Placed>, usize)> {
        let mut at = LEGACY_SIZE + HEADER_SIZE;
        let mut out = vec![];
        for i in (2..63u32).filter(|i| xcomp & (1 << i) != 0) {
            let (std_off, size) = self.component(i)?;
            let aligned = self.components.iter().any(|c| c.0 == i && c.3);
            if aligned {
                at = at.next_multiple_of(64);
            }
            out.push(Placed {
                component: i,
                at,
                std_off,
                size,
            });
            at += size;
        }
        Some((out, at))
    }
}

/// An extended component in a compacted area: its offset there, its offset in KVM's standard image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placed {
    component: u32,
    at: usize,
    std_off: usize,
    size: usize,
}

/// Bytes an instruction writes at an offset of the XSAVE area.
pub type Piece = (usize, Vec<u8>);

/// The instructions completed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Xgetbv,
    /// XSAVE64 and XSAVEOPT64 (writing every requested component is a valid XSAVEOPT).
    Xsave(MemOperand),
    /// XSAVEC64: compacted format, components in their initial configuration not written.
    Xsavec(MemOperand),
    /// XSAVES64: XSAVEC for CPL 0 that may include supervisor components (IA32_XSS).
    Xsaves(MemOperand),
    /// XRSTOR64, standard or compacted form.
    Xrstor(MemOperand),
    /// XRSTORS64: the compacted form only, CPL 0, may include supervisor components.
    Xrstors(MemOperand),
}

/// A decoded instruction and its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub op: Op,
    pub len: u64,
}

/// A 64-bit ModRM memory operand (registers numbered as in the encoding: 0 = RAX ... 15 = R15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    pub base: Option<u8>,
    pub index: Option<u8>,
    pub scale: u8,
    pub disp: i64,
    pub rip_relative: bool,
}

impl MemOperand {
    /// The linear address (segment base 0: no segment override is accepted by `decode`).
    pub fn address(&self, gpr: &[u64; 16], next_rip: u64) -> u64 {
        let mut a = self.disp as u64;
        if self.rip_relative {
            a = a.wrapping_add(next_rip);
        }
        if let Some(b) = self.base {
            a = a.wrapping_add(gpr[usize::from(b)]);
        }
        if let Some(i) = self.index {
            a = a.wrapping_add(gpr[usize::from(i)] << self.scale);
        }
        a
    }
}

/// Decodes `XGETBV` (0f 01 d0) and the REX.W forms `XSAVE64` (0f ae /4), `XRSTOR64` (/5),
/// `XSAVEOPT64` (/6), `XRSTORS64` (0f c7 /3), `XSAVEC64` (/4) and `XSAVES64` (/5) with a memory
/// operand, as 64-bit code. Anything else (other prefixes, the 32-bit forms whose x87 pointer format
/// differs, register operands which are the fences, CMPXCHG16B) is None.
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut p = 0;
    let rex = match bytes.first() {
        Some(&b) if b & 0xf0 == 0x40 => {
            p += 1;
            b
        }
        _ => 0,
    };
    match bytes.get(p..p + 3)? {
        [0x0f, 0x01, 0xd0] if rex == 0 => {
            return Some(Decoded {
                op: Op::Xgetbv,
                len: 3,
            })
        }
        [0x0f, 0xae | 0xc7, _] if rex & 0x08 != 0 => {}
        _ => return None,
    }
    let group7 = bytes[p + 1] == 0xc7;
    p += 2;
    let modrm = *bytes.get(p)?;
    p += 1;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if md == 3 {
        return None;
    }
    let rex_b = (rex & 1) << 3;
    let rex_x = ((rex >> 1) & 1) << 3;
    let mut mem = MemOperand {
        base: None,
        index: None,
        scale: 0,
        disp: 0,
        rip_relative: false,
    };
    let mut disp_len = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = *bytes.get(p)?;
        p += 1;
        let (scale, index, base) = (sib >> 6, ((sib >> 3) & 7) | rex_x, sib & 7);
        mem.scale = scale;
        mem.index = (index != 4).then_some(index);
        if base == 5 && md == 0 {
            disp_len = 4;
        } else {
            mem.base = Some(base | rex_b);
        }
    } else if rm == 5 && md == 0 {
        mem.rip_relative = true;
        disp_len = 4;
    } else {
        mem.base = Some(rm | rex_b);
    }
    mem.disp = match disp_len {
        1 => i64::from(*bytes.get(p)? as i8),
        4 => i64::from(i32::from_le_bytes(bytes.get(p..p + 4)?.try_into().ok()?)),
        _ => 0,
    };
    p += disp_len;
    let op = match (group7, reg) {
        (false, 4 | 6) => Op::Xsave(mem),
        (false, 5) => Op::Xrstor(mem),
        (true, 3) => Op::Xrstors(mem),
        (true, 4) => Op::Xsavec(mem),
        (true, 5) => Op::Xsaves(mem),
        _ => return None,
    };
    Some(Decoded { op, len: p as u64 })
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

/// Bytes XSAVE writes into a standard-format area, as (offset, bytes): every component in `rfbm` from
/// KVM's image `img` (init values for components not in use), MXCSR when SSE or AVX is requested,
/// and the header's XSTATE_BV, whose bits outside `rfbm` keep `old_bv` (the area's previous value).
pub fn xsave_pieces(img: &[u8], layout: &Layout, rfbm: u64, old_bv: u64) -> Option<Vec<Piece>> {
    if img.len() < KVM_IMAGE_SIZE {
        return None;
    }
    let in_use = le64(img, XSTATE_BV);
    let mut out = vec![];
    for i in (0..63u32).filter(|i| rfbm & (1 << i) != 0) {
        let used = in_use & (1 << i) != 0;
        for (start, end) in layout.ranges(1 << i)? {
            let bytes = if used {
                img[start..end].to_vec()
            } else {
                init_bytes(start, end)
            };
            out.push((start, bytes));
        }
    }
    if rfbm & (XFEATURE_SSE | XFEATURE_YMM) != 0 {
        out.push((MXCSR, img[MXCSR..MXCSR + 8].to_vec()));
    }
    let bv = (old_bv & !rfbm) | (in_use & rfbm);
    out.push((XSTATE_BV, bv.to_le_bytes().to_vec()));
    Some(out)
}

/// Bytes XSAVEC (and XSAVES without supervisor components) writes: the components in `rfbm` that are
/// in use (SSE also when MXCSR is not at its default, with MXCSR then saved too), each extended one at
/// its compacted offset, and the header's XSTATE_BV (`rfbm` & in use) and XCOMP_BV (bit 63 | `rfbm`).
/// Also the area's length.
pub fn xsavec_pieces(img: &[u8], layout: &Layout, rfbm: u64) -> Option<(Vec<Piece>, usize)> {
    if img.len() < KVM_IMAGE_SIZE {
        return None;
    }
    let mut in_use = le64(img, XSTATE_BV);
    if le32(img, MXCSR) != MXCSR_DEFAULT {
        in_use |= XFEATURE_SSE;
    }
    let save = rfbm & in_use;
    let mut out = vec![];
    if save & XFEATURE_FP != 0 {
        out.extend(X87_RANGES.iter().map(|&(a, b)| (a, img[a..b].to_vec())));
    }
    if save & XFEATURE_SSE != 0 {
        out.push((SSE_RANGE.0, img[SSE_RANGE.0..SSE_RANGE.1].to_vec()));
        out.push((MXCSR, img[MXCSR..MXCSR + 8].to_vec()));
    }
    let (components, len) = layout.compacted(rfbm)?;
    for p in components {
        if save & (1 << p.component) != 0 {
            out.push((p.at, img[p.std_off..p.std_off + p.size].to_vec()));
        }
    }
    let mut header = save.to_le_bytes().to_vec();
    header.extend_from_slice(&(rfbm | XCOMP_COMPACTED).to_le_bytes());
    out.push((XSTATE_BV, header));
    Some((out, len))
}

/// Whether the area whose legacy region and header are `head` is in the compacted format.
pub fn compacted(head: &[u8]) -> bool {
    head.len() >= LEGACY_SIZE + 16 && le64(head, XCOMP_BV) & XCOMP_COMPACTED != 0
}

/// Bytes of the area XRSTOR reads, given its legacy region and header (`head`, 576 bytes): the
/// standard-format extent of `rfbm`, or the compacted extent of XCOMP_BV.
pub fn xrstor_len(head: &[u8], layout: &Layout, rfbm: u64) -> Option<usize> {
    let xcomp = le64(head, XCOMP_BV);
    if xcomp & XCOMP_COMPACTED != 0 {
        layout.compacted(xcomp & !XCOMP_COMPACTED).map(|(_, len)| len)
    } else {
        layout.area_len(rfbm)
    }
}

/// Init values of `[start, end)` of the standard format: FCW 0x37f, everything else zero.
fn init_bytes(start: usize, end: usize) -> Vec<u8> {
    let mut v = vec![0u8; end - start];
    if start == 0 && end >= 2 {
        v[..2].copy_from_slice(&FCW_DEFAULT.to_le_bytes());
    }
    v
}

/// Applies XRSTOR of `area` (the guest's area, at least `xrstor_len` bytes) with requested-feature
/// bitmap `rfbm` to KVM's standard-format image `img`, in the form XCOMP_BV selects. #GP as the CPU
/// raises it: XSTATE_BV bits outside XCR0 (standard) or outside XCOMP_BV (compacted), XCOMP_BV bits
/// outside XCOMP_BV[63] | XCR0, non-zero reserved header bytes, or reserved MXCSR bits.
pub fn xrstor_image(img: &mut [u8], area: &[u8], layout: &Layout, rfbm: u64, xcr0: u64) -> Result<(), Fault> {
    if img.len() < KVM_IMAGE_SIZE || area.len() < LEGACY_SIZE + HEADER_SIZE {
        return Err(Fault::GeneralProtection);
    }
    let bv = le64(area, XSTATE_BV);
    let xcomp = le64(area, XCOMP_BV);
    let compacted = xcomp & XCOMP_COMPACTED != 0;
    let reserved_ok = if compacted {
        area[XCOMP_BV + 8..LEGACY_SIZE + HEADER_SIZE]
            .iter()
            .all(|&b| b == 0)
            && xcomp & !(XCOMP_COMPACTED | xcr0) == 0
            && bv & !xcomp == 0
    } else {
        // Standard form: XCOMP_BV and the next 8 bytes must be zero (the rest is ignored).
        xcomp == 0 && le64(area, XCOMP_BV + 8) == 0 && bv & !xcr0 == 0
    };
    if !reserved_ok {
        return Err(Fault::GeneralProtection);
    }
    let gp = Fault::GeneralProtection;
    // Where each requested extended component sits in a compacted area.
    let mut places: Vec<Placed> = vec![];
    if compacted {
        let (components, len) = layout.compacted(xcomp & !XCOMP_COMPACTED).ok_or(gp)?;
        if area.len() < len {
            return Err(gp);
        }
        places.extend(components.into_iter().filter(|p| rfbm & (1 << p.component) != 0));
    }
    // MXCSR: standard form loads it whenever SSE or AVX is requested; compacted form only with SSE
    // requested and in XSTATE_BV, otherwise SSE's init puts 0x1f80 there.
    let mxcsr_from_area = if compacted {
        rfbm & bv & XFEATURE_SSE != 0
    } else {
        rfbm & (XFEATURE_SSE | XFEATURE_YMM) != 0
    };
    let mxcsr = le32(area, MXCSR);
    if mxcsr_from_area {
        let mask = match le32(img, MXCSR_MASK) {
            0 => MXCSR_MASK_DEFAULT,
            m => m,
        };
        if mxcsr & !mask != 0 {
            return Err(gp);
        }
    }
    for i in (0..63u32).filter(|i| rfbm & (1 << i) != 0) {
        let load = bv & (1 << i) != 0;
        if compacted && i >= 2 {
            let (std_off, size) = layout.component(i).ok_or(gp)?;
            match places.iter().find(|p| p.component == i) {
                // In XSTATE_BV, hence in XCOMP_BV (checked above): at its compacted offset.
                Some(p) if load => {
                    img[std_off..std_off + size].copy_from_slice(&area[p.at..p.at + size]);
                }
                _ => img[std_off..std_off + size].fill(0),
            }
            continue;
        }
        for (start, end) in layout.ranges(1 << i).ok_or(gp)? {
            if area.len() < end {
                return Err(gp);
            }
            if load {
                img[start..end].copy_from_slice(&area[start..end]);
            } else {
                img[start..end].copy_from_slice(&init_bytes(start, end));
            }
        }
    }
    let mut new_bv = (le64(img, XSTATE_BV) & !rfbm) | (bv & rfbm);
    if mxcsr_from_area {
        img[MXCSR..MXCSR + 4].copy_from_slice(&mxcsr.to_le_bytes());
        // KVM takes MXCSR from its image only while x87, SSE or AVX is marked in use; marking SSE
        // (whose registers then hold their init values) keeps a non-default MXCSR.
        if mxcsr != MXCSR_DEFAULT && new_bv & (XFEATURE_FP | XFEATURE_SSE | XFEATURE_YMM) == 0 {
            new_bv |= XFEATURE_SSE;
        }
    } else if compacted && rfbm & XFEATURE_SSE != 0 {
        img[MXCSR..MXCSR + 4].copy_from_slice(&MXCSR_DEFAULT.to_le_bytes());
    }
    img[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&new_bv.to_le_bytes());
    img[XCOMP_BV..LEGACY_SIZE + HEADER_SIZE].fill(0);
    Ok(())
}

/// Checks shared by XSAVE, XSAVEC and XRSTOR before any memory access: CR4.OSXSAVE (#UD), CR0.TS (#NM), the
/// 64-byte alignment of the area (#GP).
pub fn precheck(cr0: u64, cr4: u64, area: u64) -> Result<(), Fault> {
    const CR4_OSXSAVE: u64 = 1 << 18;
    const CR0_TS: u64 = 1 << 3;
    if cr4 & CR4_OSXSAVE == 0 {
        return Err(Fault::InvalidOpcode);
    }
    if cr0 & CR0_TS != 0 {
        return Err(Fault::DeviceNotAvailable);
    }
    if !area.is_multiple_of(AREA_ALIGN) {
        return Err(Fault::GeneralProtection);
    }
    Ok(())
}

/// Whether the vCPU is in 64-bit mode (long mode, CS.L): the only mode `decode` and `translate` model.
pub fn long_mode(efer: u64, cs_l: u8) -> bool {
    efer & EFER_LMA != 0 && cs_l == 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    fn layout() -> Layout {
        // The AMD EPYC host of issue 11: AVX at 0x240, opmask 0x340, ZMM_Hi256 0x380, Hi16_ZMM 0x580.
        let e = |index, eax, ebx| kvm_cpuid_entry2 {
            function: 0xd,
            index,
            eax,
            ebx,
            ..Default::default()
        };
        let cpuid = CpuId::from_entries(&[
            e(0, 0xe7, 0x240),
            e(1, 0, 0),
            e(7, 0x400, 0x580),
            e(2, 0x100, 0x240),
            e(5, 0x40, 0x340),
            e(6, 0x200, 0x380),
        ])
        .unwrap();
        Layout::from_cpuid(&cpuid)
    }

    const XCR0: u64 = 0xe7;

    #[test]
    fn layout_comes_from_leaf_0xd() {
        let l = layout();
        assert_eq!(l.component(2), Some((0x240, 0x100)));
        assert_eq!(l.component(7), Some((0x580, 0x400)));
        assert_eq!(l.component(3), None);
        assert_eq!(l.area_len(XCR0), Some(0x980));
        assert_eq!(l.area_len(3), Some(576));
        assert_eq!(l.area_len(1 << 3), None, "unknown component");
    }

    #[test]
    fn decodes_the_forms_linux_uses() {
        let rdi = |op: fn(MemOperand) -> Op, len| Decoded {
            op: op(MemOperand {
                base: Some(7),
                index: None,
                scale: 0,
                disp: 0,
                rip_relative: false,
            }),
            len,
        };
        // xsave64 (%rdi), xsaveopt64 (%rdi), xrstor64 (%rdi)
        assert_eq!(decode(&[0x48, 0x0f, 0xae, 0x27]), Some(rdi(Op::Xsave, 4)));
        assert_eq!(decode(&[0x48, 0x0f, 0xae, 0x37]), Some(rdi(Op::Xsave, 4)));
        assert_eq!(decode(&[0x48, 0x0f, 0xae, 0x2f, 0x90]), Some(rdi(Op::Xrstor, 4)));
        assert_eq!(
            decode(&[0x0f, 0x01, 0xd0]),
            Some(Decoded {
                op: Op::Xgetbv,
                len: 3
            })
        );
    }

    #[test]
    fn decodes_sib_displacement_and_rip_relative_operands() {
        // xrstor64 0x8(%rsp): 48 0f ae 6c 24 08
        let d = decode(&[0x48, 0x0f, 0xae, 0x6c, 0x24, 0x08]).unwrap();
        assert_eq!(d.len, 6);
        let Op::Xrstor(m) = d.op else { panic!() };
        let mut gpr = [0u64; 16];
        gpr[4] = 0x1000;
        assert_eq!(m.address(&gpr, 0), 0x1008);
        // xsave64 -0x40(%r12,%rax,8): REX.W+B 49, ModRM 01.100.100 (SIB, disp8), SIB 11.000.100
        let d = decode(&[0x49, 0x0f, 0xae, 0x64, 0xc4, 0xc0]).unwrap();
        let Op::Xsave(m) = d.op else { panic!() };
        gpr[12] = 0x2000;
        gpr[0] = 2;
        assert_eq!((d.len, m.address(&gpr, 0)), (6, 0x2000 + 16 - 0x40));
        // xsave64 0x100(%rip): 48 0f ae 25 00 01 00 00
        let d = decode(&[0x48, 0x0f, 0xae, 0x25, 0, 1, 0, 0]).unwrap();
        let Op::Xsave(m) = d.op else { panic!() };
        assert_eq!((d.len, m.address(&gpr, 0x5000)), (8, 0x5100));
    }

    #[test]
    fn decodes_the_compacted_forms() {
        let d = |b: &[u8]| decode(b).map(|d| std::mem::discriminant(&d.op));
        let m = MemOperand {
            base: Some(7),
            index: None,
            scale: 0,
            disp: 0,
            rip_relative: false,
        };
        // xsavec64 (%rdi), xsaves64 (%rdi), xrstors64 (%rdi)
        assert_eq!(
            d(&[0x48, 0x0f, 0xc7, 0x27]),
            Some(std::mem::discriminant(&Op::Xsavec(m)))
        );
        assert_eq!(
            d(&[0x48, 0x0f, 0xc7, 0x2f]),
            Some(std::mem::discriminant(&Op::Xsaves(m)))
        );
        assert_eq!(
            d(&[0x48, 0x0f, 0xc7, 0x1f]),
            Some(std::mem::discriminant(&Op::Xrstors(m)))
        );
    }

    #[test]
    fn leaves_other_encodings_alone() {
        assert_eq!(decode(&[0x0f, 0xae, 0x27]), None, "32-bit xsave form");
        assert_eq!(decode(&[0x48, 0x0f, 0xae, 0xf0]), None, "mfence");
        assert_eq!(decode(&[0x48, 0x0f, 0xae, 0x0f]), None, "fxrstor64");
        assert_eq!(decode(&[0x66, 0x48, 0x0f, 0xae, 0x37]), None, "clwb-like prefix");
        assert_eq!(decode(&[0x48, 0x0f, 0xc7, 0x0f]), None, "cmpxchg16b");
        assert_eq!(decode(&[0x48, 0x0f]), None, "truncated");
    }

    fn image(bv: u64) -> Vec<u8> {
        let mut img: Vec<u8> = (0..KVM_IMAGE_SIZE).map(|i| (i % 251) as u8 | 1).collect();
        img[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&bv.to_le_bytes());
        img[XCOMP_BV..LEGACY_SIZE + HEADER_SIZE].fill(0);
        img[MXCSR..MXCSR + 4].copy_from_slice(&0x1fa0u32.to_le_bytes());
        img[MXCSR_MASK..MXCSR_MASK + 4].copy_from_slice(&0xffffu32.to_le_bytes());
        img
    }

    fn apply(area: &mut [u8], pieces: &[(usize, Vec<u8>)]) {
        for (off, b) in pieces {
            area[*off..off + b.len()].copy_from_slice(b);
        }
    }

    #[test]
    fn xsave_writes_requested_components_and_keeps_the_rest() {
        let l = layout();
        let img = image(0xc6); // SSE, AVX, ZMM_Hi256, Hi16_ZMM in use; x87 and opmask in init state
        let mut area = vec![0xeeu8; 0x980];
        let old_bv = 0xffu64;
        // Everything but Hi16_ZMM.
        let rfbm = XCR0 & !(1 << 7);
        apply(&mut area, &xsave_pieces(&img, &l, rfbm, old_bv).unwrap());
        assert_eq!(&area[160..416], &img[160..416], "XMM");
        assert_eq!(&area[0x240..0x340], &img[0x240..0x340], "AVX");
        assert_eq!(&area[0x380..0x580], &img[0x380..0x580], "ZMM_Hi256");
        assert_eq!(&area[0x340..0x380], &[0u8; 0x40][..], "opmask not in use: init");
        assert_eq!(&area[0..2], &[0x7f, 0x03], "x87 not in use: FCW init");
        assert_eq!(&area[24..32], &img[24..32], "MXCSR and its mask");
        assert!(
            area[0x580..0x980].iter().all(|&b| b == 0xee),
            "Hi16_ZMM not requested"
        );
        assert!(
            area[416..512].iter().all(|&b| b == 0xee),
            "reserved bytes untouched"
        );
        // Requested bits from XINUSE (0x46), the others (0x98) kept from the area.
        assert_eq!(le64(&area, XSTATE_BV), 0x46 | 0x98);
        assert!(
            area[XCOMP_BV..576].iter().all(|&b| b == 0xee),
            "only XSTATE_BV written"
        );
    }

    #[test]
    fn xrstor_loads_marked_components_and_inits_the_others() {
        let l = layout();
        let mut img = image(XCR0);
        let mut area = vec![0u8; 0x980];
        for (i, b) in area.iter_mut().enumerate() {
            *b = (i % 7) as u8 + 0x10;
        }
        area[XSTATE_BV..576].fill(0);
        area[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0x46u64.to_le_bytes()); // SSE, AVX, ZMM_Hi256
        area[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        let before = img.clone();
        // Restore all but Hi16_ZMM.
        let rfbm = XCR0 & !(1 << 7);
        xrstor_image(&mut img, &area, &l, rfbm, XCR0).unwrap();
        assert_eq!(&img[160..416], &area[160..416]);
        assert_eq!(&img[0x240..0x340], &area[0x240..0x340]);
        assert_eq!(&img[0x380..0x580], &area[0x380..0x580]);
        assert_eq!(&img[0x340..0x380], &[0u8; 0x40][..], "opmask: init");
        assert_eq!(&img[0..2], &[0x7f, 0x03], "x87: init");
        assert!(img[32..160].iter().all(|&b| b == 0), "ST0-7: init");
        assert_eq!(&img[0x580..0x980], &before[0x580..0x980], "not requested");
        assert_eq!(le32(&img, MXCSR), 0x1f80);
        assert_eq!(le64(&img, XSTATE_BV), 0x46 | (1 << 7));
    }

    #[test]
    fn xrstor_raises_gp_like_the_cpu() {
        let l = layout();
        let mut img = image(3);
        let good = {
            let mut a = vec![0u8; 0x980];
            a[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
            a[XSTATE_BV] = 3;
            a
        };
        assert_eq!(xrstor_image(&mut img, &good, &l, XCR0, XCR0), Ok(()));
        let mut bad = good.clone();
        bad[XSTATE_BV + 1] = 1; // component 8 is not in XCR0
        assert_eq!(
            xrstor_image(&mut img, &bad, &l, XCR0, XCR0),
            Err(Fault::GeneralProtection)
        );
        let mut compacted = good.clone();
        compacted[XCOMP_BV + 7] = 0x80;
        assert_eq!(
            xrstor_image(&mut img, &compacted, &l, XCR0, XCR0),
            Err(Fault::GeneralProtection)
        );
        let mut mxcsr = good.clone();
        mxcsr[MXCSR + 3] = 0x80;
        img[MXCSR_MASK..MXCSR_MASK + 4].copy_from_slice(&0xffffu32.to_le_bytes());
        assert_eq!(
            xrstor_image(&mut img, &mxcsr, &l, XCR0, XCR0),
            Err(Fault::GeneralProtection)
        );
    }

    #[test]
    fn xrstor_of_init_state_keeps_a_custom_mxcsr() {
        let l = layout();
        let mut img = image(XCR0);
        let mut area = vec![0u8; 0x980];
        area[MXCSR..MXCSR + 4].copy_from_slice(&0x1fc0u32.to_le_bytes());
        xrstor_image(&mut img, &area, &l, XCR0, XCR0).unwrap();
        assert_eq!(le64(&img, XSTATE_BV), XFEATURE_SSE);
        assert_eq!(le32(&img, MXCSR), 0x1fc0);
        assert!(img[0x240..0x980].iter().all(|&b| b == 0));
    }

    #[test]
    fn xsavec_compacts_and_xrstor_reads_it_back() {
        let l = layout();
        // AVX, opmask and Hi16_ZMM in use; ZMM_Hi256 and x87 in their initial configuration.
        let img = image(0xa6);
        let rfbm = XCR0;
        let (pieces, len) = xsavec_pieces(&img, &l, rfbm).unwrap();
        assert_eq!(len, 576 + 0x100 + 0x40 + 0x200 + 0x400);
        let mut area = vec![0xeeu8; len];
        // The kernel zeroes the header once; XSAVEC writes only its first 16 bytes.
        area[XSTATE_BV..576].fill(0);
        apply(&mut area, &pieces);
        assert_eq!(le64(&area, XSTATE_BV), 0xa6);
        assert_eq!(le64(&area, XCOMP_BV), (1 << 63) | XCR0);
        assert!(
            area[XCOMP_BV + 8..576].iter().all(|&b| b == 0),
            "rest of header untouched"
        );
        assert_eq!(
            &area[576..576 + 0x100],
            &img[0x240..0x340],
            "AVX right after the header"
        );
        assert_eq!(&area[0x340..0x380], &img[0x340..0x380], "opmask");
        assert!(
            area[0x380..0x580].iter().all(|&b| b == 0xee),
            "ZMM_Hi256 in init: not written"
        );
        assert_eq!(&area[0x580..0x980], &img[0x580..0x980], "Hi16_ZMM");
        assert!(area[0..24].iter().all(|&b| b == 0xee), "x87 in init: not written");
        assert_eq!(&area[24..28], &img[24..28], "MXCSR with SSE");

        let mut back = image(XCR0);
        xrstor_image(&mut back, &area, &l, rfbm, XCR0).unwrap();
        assert_eq!(&back[0x240..0x340], &img[0x240..0x340]);
        assert_eq!(&back[0x580..0x980], &img[0x580..0x980]);
        assert!(
            back[0x380..0x580].iter().all(|&b| b == 0),
            "ZMM_Hi256 initialised"
        );
        assert_eq!(&back[0..2], &[0x7f, 0x03], "x87 initialised");
        assert_eq!(le32(&back, MXCSR), le32(&img, MXCSR));
        assert_eq!(le64(&back, XSTATE_BV), 0xa6);
        assert!(
            back[XCOMP_BV..576].iter().all(|&b| b == 0),
            "KVM's image stays standard"
        );
    }

    #[test]
    fn compacted_xrstor_follows_its_own_rules() {
        let l = layout();
        let mut img = image(XCR0);
        let (pieces, len) = xsavec_pieces(&image(0x07), &l, 0x07).unwrap();
        let mut area = vec![0u8; len];
        apply(&mut area, &pieces);
        // XSTATE_BV outside XCOMP_BV.
        let mut bad = area.clone();
        bad[XSTATE_BV] |= 0x20;
        assert_eq!(
            xrstor_image(&mut img, &bad, &l, XCR0, XCR0),
            Err(Fault::GeneralProtection)
        );
        // Non-zero reserved header bytes.
        let mut bad = area.clone();
        bad[XCOMP_BV + 12] = 1;
        assert_eq!(
            xrstor_image(&mut img, &bad, &l, XCR0, XCR0),
            Err(Fault::GeneralProtection)
        );
        // SSE requested but not in XSTATE_BV: MXCSR back to 0x1f80, whatever the area holds.
        let mut init = area.clone();
        init[XSTATE_BV] = 0;
        init[MXCSR..MXCSR + 4].copy_from_slice(&0x1fc0u32.to_le_bytes());
        xrstor_image(&mut img, &init, &l, XCR0, XCR0).unwrap();
        assert_eq!(le32(&img, MXCSR), MXCSR_DEFAULT);
        assert_eq!(le64(&img, XSTATE_BV), 0);
    }

    #[test]
    fn checks_osxsave_ts_and_alignment_first() {
        let osxsave = 1 << 18;
        assert_eq!(precheck(0, 0, 0), Err(Fault::InvalidOpcode));
        assert_eq!(precheck(1 << 3, osxsave, 0), Err(Fault::DeviceNotAvailable));
        assert_eq!(precheck(0, osxsave, 0x1020), Err(Fault::GeneralProtection));
        assert_eq!(precheck(0, osxsave, 0x1040), Ok(()));
    }

    /// 4 MiB of guest RAM with 4-level tables at 0x1000: PML4 -> PDPT (0x2000) -> PD (0x3000) whose
    /// entry 0 is a 4 KiB table (0x4000) and entry 1 a 2 MiB page.
    fn paged_memory() -> (GuestMemoryMmap<()>, Paging) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
        let w = |a: u64, v: u64| mem.write_obj(v, GuestAddress(a)).unwrap();
        w(0x1000, 0x2000 | PTE_P | PTE_RW | PTE_US);
        w(0x2000, 0x3000 | PTE_P | PTE_RW | PTE_US);
        w(0x3000, 0x4000 | PTE_P | PTE_RW | PTE_US);
        w(0x3008, 0x20_0000 | PTE_P | PTE_RW | PTE_PS); // supervisor 2 MiB page
        w(0x4000 + 5 * 8, 0x9000 | PTE_P | PTE_RW | PTE_US); // 0x5000 -> 0x9000, user, writable
        w(0x4000 + 6 * 8, 0xa000 | PTE_P | PTE_US); // 0x6000 -> 0xa000, read-only (COW)
        let pg = Paging {
            cr0: CR0_PG | CR0_WP | 1,
            cr3: 0x1000,
            cr4: 1 << 5,
            rflags: 2,
            cpl: 0,
        };
        (mem, pg)
    }

    #[test]
    fn walks_pages_and_sets_accessed_and_dirty() {
        let (mem, pg) = paged_memory();
        assert_eq!(translate(&mem, &pg, 0x5123, true), Ok(0x9123));
        let pte: u64 = mem.read_obj(GuestAddress(0x4000 + 5 * 8)).unwrap();
        assert_eq!(pte & (PTE_A | PTE_D), PTE_A | PTE_D);
        let pde: u64 = mem.read_obj(GuestAddress(0x3000)).unwrap();
        assert_eq!(pde & (PTE_A | PTE_D), PTE_A, "no dirty bit above the leaf");
        assert_eq!(translate(&mem, &pg, 0x20_1234, false), Ok(0x20_1234));
        assert_eq!(translate(&mem, &pg, 0x6008, false), Ok(0xa008));
    }

    #[test]
    fn faults_like_the_cpu() {
        let (mem, mut pg) = paged_memory();
        // A read-only (copy-on-write) page written by the kernel with CR0.WP: present + write.
        assert_eq!(
            translate(&mem, &pg, 0x6000, true),
            Err(Fault::Page {
                error_code: PF_P | PF_W,
                address: 0x6000
            })
        );
        // Not mapped.
        assert_eq!(
            translate(&mem, &pg, 0x7000, false),
            Err(Fault::Page {
                error_code: 0,
                address: 0x7000
            })
        );
        // Non-canonical.
        assert_eq!(
            translate(&mem, &pg, 0x0000_8000_0000_0000, false),
            Err(Fault::GeneralProtection)
        );
        // User mode on a supervisor page.
        pg.cpl = 3;
        assert_eq!(
            translate(&mem, &pg, 0x20_0000, false),
            Err(Fault::Page {
                error_code: PF_P | PF_U,
                address: 0x20_0000
            })
        );
        // SMAP: the kernel touching a user page without RFLAGS.AC.
        pg.cpl = 0;
        pg.cr4 |= CR4_SMAP;
        assert!(translate(&mem, &pg, 0x5000, false).is_err());
        pg.rflags |= RFLAGS_AC;
        assert_eq!(translate(&mem, &pg, 0x5000, false), Ok(0x9000));
    }

    #[test]
    fn ranges_split_at_page_boundaries() {
        let (mem, pg) = paged_memory();
        assert_eq!(
            map_range(&mem, &pg, 0x5f00, 0x200, false),
            Ok(vec![(0x9f00, 0x100), (0xa000, 0x100)])
        );
        assert!(
            map_range(&mem, &pg, 0x5f00, 0x200, true).is_err(),
            "second page read-only"
        );
    }
}
