//! The `xsave` command: a self-test of the XSAVE feature set as a kernel uses it to switch the extended
//! (AVX, AVX-512) state of its tasks.
//!
//! The emulating KVM of the development hosts (kvm_pvm) cannot execute XGETBV, XSAVE, XSAVEOPT, XSAVEC
//! or XRSTOR; the VMM completes them (vmm/src/vstate/xsave.rs). Linux needs them: guest user code runs
//! natively there and, on AMD hosts, uses the host's AVX-512 registers, which a kernel without XSAVE
//! does not save, so they leaked between processes (issue 11). Ring 0 code is emulated, so the probe
//! cannot touch AVX registers directly; it moves known state in with XRSTOR and reads it back with the
//! save instructions, across VM exits, and checks the faults the CPU raises. On hardware KVM the same
//! checks run on the real CPU.
//!
//! Result line: `OK xsave xcr0 <hex> <formats>`, `SKIP xsave no XSAVE`, or `ERR xsave <check> ...`.

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;
use core::cell::UnsafeCell;

use crate::{cpu, serial};

const AREA: usize = 4096;
const AREAS: usize = 4;
const XSTATE_BV: usize = 512;
const XCOMP_BV: usize = 520;
const MXCSR: usize = 24;
const XMM: core::ops::Range<usize> = 160..416;
/// The components the test uses: x87, SSE, AVX, AVX-512 opmask, ZMM_Hi256, Hi16_ZMM.
const WANTED: u64 = 0xe7;
const SSE: u64 = 1 << 1;
const AVX: u64 = 1 << 2;
const HI16_ZMM: u64 = 1 << 7;
const CR4_OSXSAVE: u64 = 1 << 18;
const GP: u64 = 13;
const PF: u64 = 14;
/// Canonical, but outside everything the probe maps (PML4 entry 1): XSAVE there must raise #PF.
const UNMAPPED: u64 = 0x80_0000_0000;
/// POST-code port: each write is a VM exit the VMM ignores.
const POST_PORT: u16 = 0x80;

#[repr(C, align(64))]
struct Areas(UnsafeCell<[[u8; AREA]; AREAS]>);

// SAFETY: the probe is single-threaded; only `run` touches the areas.
unsafe impl Sync for Areas {}

/// Not zeroed at boot (costly on an emulated CPU); `run` clears what it uses.
#[link_section = ".noinit"]
static BUF: Areas = Areas(UnsafeCell::new([[0; AREA]; AREAS]));

#[derive(Clone, Copy)]
enum Insn {
    Xsave,
    Xsaveopt,
    Xsavec,
    Xrstor,
}

/// Executes `insn` on the area at `addr` with instruction mask `mask`; the exception it raised, if any.
fn exec(insn: Insn, addr: u64, mask: u64) -> Option<cpu::Trap> {
    let (lo, hi) = (mask as u32, (mask >> 32) as u32);
    cpu::reset_trap();
    macro_rules! op {
        ($i:literal) => {
            // SAFETY: `addr` is a 64-byte aligned XSAVE area of `AREA` bytes in `BUF` (or an address whose
            // fault is the point of the check); an exception resumes at label 2 (recovery armed just
            // before), which disarms it. XRSTOR changes only extended register state the probe does not use.
            unsafe {
                asm!(
                    "lea {t}, [rip + 2f]",
                    "mov qword ptr [rip + PROBE_RECOVER_RIP], {t}",
                    $i,
                    "2:",
                    "mov qword ptr [rip + PROBE_RECOVER_RIP], 0",
                    t = out(reg) _,
                    a = in(reg) addr,
                    in("eax") lo,
                    in("edx") hi,
                    options(nostack),
                )
            }
        };
    }
    match insn {
        Insn::Xsave => op!("xsave64 [{a}]"),
        Insn::Xsaveopt => op!("xsaveopt64 [{a}]"),
        Insn::Xsavec => op!("xsavec64 [{a}]"),
        Insn::Xrstor => op!("xrstor64 [{a}]"),
    }
    cpu::take_trap()
}

fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = __cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

fn xgetbv() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only called with CR4.OSXSAVE set; reads XCR0.
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn area(i: usize) -> &'static mut [u8; AREA] {
    // SAFETY: single-threaded; each caller uses distinct indices for the duration of `run`.
    unsafe { &mut (*BUF.0.get())[i] }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Writes a few VM exits between saving and restoring: the state must survive them.
fn exits() {
    for _ in 0..4 {
        // SAFETY: an `out` to the POST-code port, which the VMM ignores.
        unsafe { asm!("out dx, al", in("dx") POST_PORT, in("al") 0u8, options(nomem, nostack)) };
    }
}

/// Runs the self-test and prints its result line.
pub fn run() {
    match check() {
        Ok(None) => serial::puts("SKIP xsave no XSAVE\r\n"),
        Ok(Some((xcr0, compacted))) => {
            serial::puts("OK xsave xcr0 ");
            serial::put_hex(xcr0);
            serial::puts(if compacted {
                " standard compacted\r\n"
            } else {
                " standard\r\n"
            });
        }
        Err((what, detail)) => {
            serial::puts("ERR xsave ");
            serial::puts(what);
            serial::puts(" ");
            serial::put_hex(detail);
            serial::puts("\r\n");
        }
    }
}

type Failure = (&'static str, u64);

/// Ok(None) without XSAVE; Ok(Some((XCR0 used, XSAVEC tested))) when every check passed.
fn check() -> Result<Option<(u64, bool)>, Failure> {
    const XSAVE_BIT: u32 = 1 << 26;
    if cpuid(1, 0).2 & XSAVE_BIT == 0 {
        return Ok(None);
    }
    let (lo, _, _, hi) = cpuid(0xd, 0);
    let xcr0 = ((u64::from(hi) << 32) | u64::from(lo)) & WANTED;
    let has_xsaveopt = cpuid(0xd, 1).0 & 1 != 0;
    let has_xsavec = cpuid(0xd, 1).0 & 2 != 0;
    let component = |i: u32| {
        let (size, off, _, _) = cpuid(0xd, i);
        (off as usize, size as usize)
    };
    let avx = (xcr0 & AVX != 0).then(|| component(2));
    let hi16 = (xcr0 & HI16_ZMM != 0).then(|| component(7));
    if avx.is_some_and(|(o, s)| o + s > AREA) || hi16.is_some_and(|(o, s)| o + s > AREA) {
        return Err(("layout", xcr0));
    }

    // SAFETY: sets CR4.OSXSAVE (XSAVE is present) and enables the components CPUID reports.
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
        asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nomem, nostack));
        asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32,
             options(nomem, nostack));
    }
    if xgetbv() != xcr0 {
        return Err(("xgetbv", xgetbv()));
    }

    // Area 0: known state for SSE, AVX and Hi16_ZMM; everything else in its initial configuration.
    let src = area(0);
    src.fill(0);
    src[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    src[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
    // Every byte differs from its neighbours and from zero (the initial configuration).
    let fill = |bytes: &mut [u8], start: usize| {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = ((start + i) as u8).wrapping_mul(37).wrapping_add(11) | 1;
        }
    };
    fill(&mut src[XMM], XMM.start);
    let mut loaded = SSE;
    for (bit, range) in [(AVX, avx), (HI16_ZMM, hi16)] {
        if let Some((off, size)) = range {
            fill(&mut src[off..off + size], off);
            loaded |= bit;
        }
    }
    src[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&loaded.to_le_bytes());
    let src_addr = src.as_ptr() as u64;
    if let Some(t) = exec(Insn::Xrstor, src_addr, u64::MAX) {
        return Err(("xrstor-trap", t.vector));
    }
    exits();

    // Standard-format saves give back exactly what was loaded.
    let same = |dst: &[u8], what: &'static str| -> Result<(), Failure> {
        if dst[XMM] != src[XMM] {
            return Err((what, SSE));
        }
        for (bit, range) in [(AVX, avx), (HI16_ZMM, hi16)] {
            if let Some((off, size)) = range {
                if dst[off..off + size] != src[off..off + size] {
                    return Err((what, bit));
                }
            }
        }
        let bv = le64(dst, XSTATE_BV);
        if bv & loaded != loaded {
            return Err((what, bv));
        }
        Ok(())
    };
    let dst = area(1);
    dst.fill(0);
    let dst_addr = dst.as_ptr() as u64;
    if let Some(t) = exec(Insn::Xsave, dst_addr, u64::MAX) {
        return Err(("xsave-trap", t.vector));
    }
    same(dst, "xsave")?;
    if has_xsaveopt {
        dst.fill(0);
        if let Some(t) = exec(Insn::Xsaveopt, dst_addr, u64::MAX) {
            return Err(("xsaveopt-trap", t.vector));
        }
        same(dst, "xsaveopt")?;
    }

    // Compacted: XSAVEC, then back to the initial configuration, then XRSTOR of the compacted area.
    if has_xsavec {
        let packed = area(2);
        packed.fill(0);
        let packed_addr = packed.as_ptr() as u64;
        if let Some(t) = exec(Insn::Xsavec, packed_addr, u64::MAX) {
            return Err(("xsavec-trap", t.vector));
        }
        if le64(packed, XCOMP_BV) != (1 << 63) | xcr0 {
            return Err(("xsavec-xcomp", le64(packed, XCOMP_BV)));
        }
        if let Some((off, size)) = avx {
            // AVX is the first extended component: right after the header.
            if packed[576..576 + size] != src[off..off + size] {
                return Err(("xsavec-avx", 576));
            }
        }
        let init = area(3);
        init.fill(0);
        init[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        if let Some(t) = exec(Insn::Xrstor, init.as_ptr() as u64, u64::MAX) {
            return Err(("init-trap", t.vector));
        }
        dst.fill(0xff);
        dst[XSTATE_BV..XSTATE_BV + 64].fill(0);
        if let Some(t) = exec(Insn::Xsave, dst_addr, u64::MAX) {
            return Err(("xsave-trap", t.vector));
        }
        let bv = le64(dst, XSTATE_BV);
        if bv & (AVX | HI16_ZMM) != 0 || avx.is_some_and(|(o, s)| dst[o..o + s].iter().any(|&b| b != 0)) {
            return Err(("init", bv));
        }
        if let Some(t) = exec(Insn::Xrstor, packed_addr, u64::MAX) {
            return Err(("xrstor-compacted-trap", t.vector));
        }
        exits();
        dst.fill(0);
        if let Some(t) = exec(Insn::Xsave, dst_addr, u64::MAX) {
            return Err(("xsave-trap", t.vector));
        }
        same(dst, "xrstor-compacted")?;
    }

    // Faults as the CPU raises them.
    let bad = area(3);
    bad.copy_from_slice(&src[..]);
    bad[XCOMP_BV] = 1; // standard form with a non-zero XCOMP_BV
    match exec(Insn::Xrstor, bad.as_ptr() as u64, u64::MAX) {
        Some(t) if t.vector == GP => {}
        other => return Err(("bad-header-no-gp", other.map_or(0, |t| t.vector))),
    }
    match exec(Insn::Xsave, dst_addr + 8, u64::MAX) {
        Some(t) if t.vector == GP => {}
        other => return Err(("misaligned-no-gp", other.map_or(0, |t| t.vector))),
    }
    match exec(Insn::Xsave, UNMAPPED, u64::MAX) {
        Some(t) if t.vector == PF && (UNMAPPED..UNMAPPED + AREA as u64).contains(&t.cr2) => {}
        Some(t) => return Err(("unmapped-pf", (t.vector << 56) | t.cr2)),
        None => return Err(("unmapped-no-pf", 0)),
    }
    // The faulting instructions changed nothing: the state is still the one loaded.
    dst.fill(0);
    if let Some(t) = exec(Insn::Xsave, dst_addr, u64::MAX) {
        return Err(("xsave-trap", t.vector));
    }
    same(dst, "after-faults")?;
    Ok(Some((xcr0, has_xsavec)))
}
