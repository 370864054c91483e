//! Instructions that the software emulator behind some KVMs cannot execute, completed by the VMM.
//!
//! On kvm_pvm hosts (see FACTS.md) every guest instruction is emulated, and the emulator reports
//! KVM_EXIT_INTERNAL_ERROR (emulation failure) for a few that guests do use. For those the VMM does what
//! the CPU would have done, architecturally, so the guest cannot tell:
//! - `int3` (0xcc): #BP is a trap, so RIP moves past the instruction and exception 3 is injected. Linux
//!   needs it for the alternatives self-test at boot and for every text_poke_bp (static calls, jump
//!   labels, kprobes).
//! - `fwait` (0x9b): #NM if CR0.TS and CR0.MP are set, #MF if an unmasked x87 exception is pending
//!   (FSW.ES, with CR0.NE), otherwise nothing: RIP moves past it. Linux runs it in fpu__drop on every exec
//!   and exit.
//! - `xgetbv` and the 64-bit XSAVE family (`xsave`, `xsaveopt`, `xsavec`, `xsaves`, `xrstor`, `xrstors`;
//!   see `xsave`): the guest kernel's context switch of the
//!   extended (AVX, AVX-512) state that its natively running user space uses. Done on KVM's copy of that
//!   state (KVM_GET_XSAVE / KVM_SET_XSAVE), with the guest's area reached through its page tables.
//!
//! Hardware KVM executes these itself and never exits for them.

use kvm_bindings::{
    kvm_msr_entry, kvm_regs, kvm_sregs, kvm_xsave, CpuId, Msrs, KVM_INTERNAL_ERROR_EMULATION,
    KVM_VCPUEVENT_VALID_PAYLOAD,
};
use kvm_ioctls::VcpuFd;
use vm_memory::bitmap::Bitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::vstate::xsave::{self, Decoded, Fault, Layout, Op, Paging};

const INT3: u8 = 0xcc;
const FWAIT: u8 = 0x9b;
const UD_VECTOR: u8 = 6;
const NM_VECTOR: u8 = 7;
const BP_VECTOR: u8 = 3;
const GP_VECTOR: u8 = 13;
const PF_VECTOR: u8 = 14;
const MF_VECTOR: u8 = 16;
/// Longest x86 instruction.
const MAX_INSN: usize = 15;
const CR0_MP: u64 = 1 << 1;
const CR0_TS: u64 = 1 << 3;
const CR0_NE: u64 = 1 << 5;
const FSW_ES: u16 = 1 << 7;
/// An instruction that fails again with every general-purpose register unchanged, this many times in a
/// row, is a crash (the completion did not take). The same instruction reached again by the guest (the
/// same kernel function called by another task) differs at least in RSP or a scratch register.
const RETRIES: u32 = 3;

/// What the CPU does for the failed instruction.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// RIP past the instruction (`len` bytes), then optionally an exception (a trap).
    Skip { len: u64, trap: Option<u8> },
    /// An exception with RIP left at the instruction (a fault).
    Fault(Exception),
}

/// An exception to inject: vector, error code, and for #PF the faulting address (CR2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    vector: u8,
    error_code: Option<u32>,
    cr2: Option<u64>,
}

impl Exception {
    fn plain(vector: u8) -> Exception {
        Exception {
            vector,
            error_code: None,
            cr2: None,
        }
    }
}

impl From<Fault> for Exception {
    fn from(f: Fault) -> Exception {
        match f {
            Fault::InvalidOpcode => Exception::plain(UD_VECTOR),
            Fault::DeviceNotAvailable => Exception::plain(NM_VECTOR),
            Fault::GeneralProtection => Exception {
                vector: GP_VECTOR,
                error_code: Some(0),
                cr2: None,
            },
            Fault::Page { error_code, address } => Exception {
                vector: PF_VECTOR,
                error_code: Some(error_code),
                cr2: Some(address),
            },
        }
    }
}

/// The architectural result of `opcode` given CR0 and the x87 status word, or None if we do not
/// complete that instruction.
fn outcome(opcode: u8, cr0: u64, fsw: u16) -> Option<Outcome> {
    match opcode {
        INT3 => Some(Outcome::Skip {
            len: 1,
            trap: Some(BP_VECTOR),
        }),
        FWAIT if cr0 & (CR0_TS | CR0_MP) == CR0_TS | CR0_MP => {
            Some(Outcome::Fault(Exception::plain(NM_VECTOR)))
        }
        FWAIT if fsw & FSW_ES != 0 && cr0 & CR0_NE != 0 => Some(Outcome::Fault(Exception::plain(MF_VECTOR))),
        FWAIT => Some(Outcome::Skip { len: 1, trap: None }),
        _ => None,
    }
}

/// Per-vCPU record of the last completed instruction, to tell progress from a loop.
pub struct Unemulated {
    /// Registers at the last completion, and how many completions in a row saw exactly them.
    last: ([u64; 18], u32),
    /// Standard-format XSAVE layout of KVM's state image (the host's, from KVM's supported CPUID).
    layout: Layout,
}

fn snapshot(r: &kvm_bindings::kvm_regs) -> [u64; 18] {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13,
        r.r14, r.r15, r.rip, r.rflags,
    ]
}

/// The general-purpose registers in encoding order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
fn gprs(r: &kvm_regs) -> [u64; 16] {
    [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13,
        r.r14, r.r15,
    ]
}

/// Up to `MAX_INSN` bytes at `rip` (fewer if the next page is not mapped), through KVM's translation.
fn fetch<B: Bitmap>(fd: &VcpuFd, mem: &GuestMemoryMmap<B>, rip: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAX_INSN);
    while bytes.len() < MAX_INSN {
        let va = rip.wrapping_add(bytes.len() as u64);
        let Some(pa) = fd
            .translate_gva(va)
            .ok()
            .filter(|t| t.valid != 0)
            .map(|t| t.physical_address)
        else {
            break;
        };
        let in_page = (0x1000 - (va & 0xfff)) as usize;
        let mut chunk = vec![0u8; in_page.min(MAX_INSN - bytes.len())];
        if mem.read_slice(&mut chunk, GuestAddress(pa)).is_err() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// KVM's image of the vCPU's extended state as bytes (standard format).
fn xsave_bytes(x: &kvm_xsave) -> Vec<u8> {
    x.region.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// IA32_XSS (supervisor components of XSAVES/XRSTORS); 0 where KVM does not know the MSR.
fn xss(fd: &VcpuFd) -> Option<u64> {
    const MSR_IA32_XSS: u32 = 0xda0;
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_XSS,
        ..Default::default()
    }])
    .ok()?;
    match fd.get_msrs(&mut msrs) {
        Ok(1) => msrs.as_slice().first().map(|e| e.data),
        Ok(_) => Some(0),
        Err(_) => None,
    }
}

/// XCR0, as the guest last set it with XSETBV.
fn xcr0(fd: &VcpuFd) -> Option<u64> {
    let xcrs = fd.get_xcrs().ok()?;
    xcrs.xcrs
        .iter()
        .take(xcrs.nr_xcrs as usize)
        .find(|x| x.xcr == 0)
        .map(|x| x.value)
}

impl Unemulated {
    /// `supported`: KVM's supported CPUID, whose leaf 0xD describes the layout of KVM's XSAVE image.
    pub fn new(supported: &CpuId) -> Unemulated {
        Unemulated {
            last: Default::default(),
            layout: Layout::from_cpuid(supported),
        }
    }

    /// Completes the instruction behind a KVM_EXIT_INTERNAL_ERROR if it is one listed above; false if the
    /// exit is a genuine internal error (or the same instruction keeps failing).
    ///
    /// Generic over the dirty bitmap so that the VMM's own writes (the XSAVE area, paging A/D bits) are
    /// recorded when the vCPU is handed tracked memory.
    pub fn complete<B: Bitmap>(&mut self, fd: &mut VcpuFd, mem: &GuestMemoryMmap<B>) -> bool {
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active union member.
        let suberror = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        if suberror != KVM_INTERNAL_ERROR_EMULATION {
            return false;
        }
        let (Ok(mut regs), Ok(sregs)) = (fd.get_regs(), fd.get_sregs()) else {
            return false;
        };
        let bytes = fetch(fd, mem, regs.rip);
        let Some(&opcode) = bytes.first() else {
            return false;
        };
        let rip = regs.rip;
        let decoded = xsave::long_mode(sregs.efer, sregs.cs.l)
            .then(|| xsave::decode(&bytes))
            .flatten();
        if decoded.is_none() && opcode != INT3 && opcode != FWAIT {
            return false;
        }
        let now = snapshot(&regs);
        let count = if self.last.0 == now { self.last.1 + 1 } else { 1 };
        self.last = (now, count);
        if count > RETRIES {
            return false;
        }
        let outcome = match decoded {
            Some(d) => match self.extended_state(fd, mem, &mut regs, &sregs, d) {
                Some(o) => o,
                None => return false,
            },
            None => {
                let Ok(fpu) = fd.get_fpu() else {
                    return false;
                };
                match outcome(opcode, sregs.cr0, fpu.fsw) {
                    Some(o) => o,
                    None => return false,
                }
            }
        };
        let exception = match outcome {
            Outcome::Skip { len, trap } => {
                regs.rip = rip.wrapping_add(len);
                if fd.set_regs(&regs).is_err() {
                    return false;
                }
                trap.map(Exception::plain)
            }
            Outcome::Fault(e) => Some(e),
        };
        if let Some(e) = exception {
            if let Err(err) = inject(fd, e) {
                tracing::warn!(
                    error = %err,
                    vector = e.vector,
                    "could not inject the exception of an unemulated instruction"
                );
                return false;
            }
        }
        match (opcode, decoded.map(|d| d.op)) {
            (_, Some(Op::Xgetbv)) => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate xgetbv: the VMM completes it (logged once)"
            ),
            (_, Some(Op::Xsave(_))) => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate xsave/xsaveopt: the VMM completes it (logged once)"
            ),
            (_, Some(Op::Xsavec(_) | Op::Xsaves(_))) => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate xsavec/xsaves: the VMM completes it (logged once)"
            ),
            (_, Some(Op::Xrstor(_) | Op::Xrstors(_))) => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate xrstor/xrstors: the VMM completes it (logged once)"
            ),
            (INT3, None) => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate int3: the VMM delivers #BP (logged once)"
            ),
            _ => crate::log_once!(
                info,
                rip = format_args!("{rip:#x}"),
                "KVM could not emulate fwait: the VMM completes it (logged once)"
            ),
        }
        true
    }

    /// XGETBV or one of the XSAVE/XRSTOR family; `regs` gets XGETBV's result. None: not completed (an
    /// internal error: a component outside KVM's 4 KiB image, supervisor state in IA32_XSS, a failed
    /// KVM call).
    fn extended_state<B: Bitmap>(
        &self,
        fd: &VcpuFd,
        mem: &GuestMemoryMmap<B>,
        regs: &mut kvm_regs,
        sregs: &kvm_sregs,
        d: Decoded,
    ) -> Option<Outcome> {
        const CR4_OSXSAVE: u64 = 1 << 18;
        let fault = |f: Fault| Some(Outcome::Fault(f.into()));
        let done = Some(Outcome::Skip {
            len: d.len,
            trap: None,
        });
        let xcr0 = xcr0(fd)?;
        let (m, supervisor) = match d.op {
            Op::Xgetbv => {
                if sregs.cr4 & CR4_OSXSAVE == 0 {
                    return fault(Fault::InvalidOpcode);
                }
                // XCR0, or XINUSE (ECX = 1): reporting every enabled component as in use is allowed.
                if regs.rcx as u32 > 1 {
                    return fault(Fault::GeneralProtection);
                }
                regs.rax = xcr0 & 0xffff_ffff;
                regs.rdx = xcr0 >> 32;
                return done;
            }
            Op::Xsave(m) | Op::Xsavec(m) | Op::Xrstor(m) => (m, false),
            Op::Xsaves(m) | Op::Xrstors(m) => (m, true),
        };
        let area = m.address(&gprs(regs), regs.rip.wrapping_add(d.len));
        if let Err(f) = xsave::precheck(sregs.cr0, sregs.cr4, area) {
            return fault(f);
        }
        if supervisor {
            if sregs.cs.dpl != 0 {
                return fault(Fault::GeneralProtection);
            }
            // Supervisor components (CET, PT, ...) are not modelled: only XSS = 0 is completed.
            if xss(fd)? != 0 {
                return None;
            }
        }
        let rfbm = xcr0 & (((regs.rdx & 0xffff_ffff) << 32) | (regs.rax & 0xffff_ffff));
        let pg = Paging {
            cr0: sregs.cr0,
            cr3: sregs.cr3,
            cr4: sregs.cr4,
            rflags: regs.rflags,
            cpl: sregs.cs.dpl,
        };
        let mut image = fd.get_xsave().ok()?;
        let mut img = xsave_bytes(&image);
        if let Op::Xrstor(_) | Op::Xrstors(_) = d.op {
            let head_len = xsave::LEGACY_SIZE + xsave::HEADER_SIZE;
            let head = match xsave::read_virt(mem, &pg, area, head_len) {
                Ok(b) => b,
                Err(f) => return fault(f),
            };
            if supervisor && !xsave::compacted(&head) {
                return fault(Fault::GeneralProtection);
            }
            // An unknown component in XCOMP_BV raises #GP in `xrstor_image`.
            let len = xsave::xrstor_len(&head, &self.layout, rfbm).unwrap_or(head_len);
            let buf = match xsave::read_virt(mem, &pg, area, len.max(head_len)) {
                Ok(b) => b,
                Err(f) => return fault(f),
            };
            if let Err(f) = xsave::xrstor_image(&mut img, &buf, &self.layout, rfbm, xcr0) {
                return fault(f);
            }
            for (w, b) in image.region.iter_mut().zip(img.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            // SAFETY: `image` came from KVM_GET_XSAVE on this vCPU and keeps its size; the VMM enables
            // no dynamically sized XSAVE feature, so KVM reads no more than the 4 KiB `kvm_xsave`.
            unsafe { fd.set_xsave(&image) }.ok()?;
            return done;
        }
        // Every page the instruction writes is checked (and marked dirty) before anything is written.
        let (pieces, pages) = if let Op::Xsave(_) = d.op {
            let pages = match xsave::map_range(mem, &pg, area, self.layout.area_len(rfbm)?, true) {
                Ok(p) => p,
                Err(f) => return fault(f),
            };
            // XSAVE keeps the XSTATE_BV bits of components it does not save.
            let mut old = [0u8; 8];
            area_io(mem, &pages, xsave::LEGACY_SIZE, &mut old, false)?;
            let pieces = xsave::xsave_pieces(&img, &self.layout, rfbm, u64::from_le_bytes(old))?;
            (pieces, pages)
        } else {
            let (pieces, len) = xsave::xsavec_pieces(&img, &self.layout, rfbm)?;
            match xsave::map_range(mem, &pg, area, len, true) {
                Ok(pages) => (pieces, pages),
                Err(f) => return fault(f),
            }
        };
        for (offset, mut bytes) in pieces {
            area_io(mem, &pages, offset, &mut bytes, true)?;
        }
        done
    }
}

/// Writes `bytes` at `offset` of an area whose pages `map_range` returned (`write`), or reads them.
fn area_io<B: Bitmap>(
    mem: &GuestMemoryMmap<B>,
    pages: &[(u64, usize)],
    offset: usize,
    bytes: &mut [u8],
    write: bool,
) -> Option<()> {
    let (mut start, mut done) = (0usize, 0usize);
    for &(gpa, n) in pages {
        let end = start + n;
        let from = (offset + done).max(start);
        if from < end && done < bytes.len() {
            let take = (end - from).min(bytes.len() - done);
            let at = GuestAddress(gpa + (from - start) as u64);
            let chunk = &mut bytes[done..done + take];
            if write {
                mem.write_slice(chunk, at).ok()?;
            } else {
                mem.read_slice(chunk, at).ok()?;
            }
            done += take;
        }
        start = end;
    }
    (done == bytes.len()).then_some(())
}

/// Injects `e`: a #PF carries CR2 as the exception payload (KVM_CAP_EXCEPTION_PAYLOAD, enabled with the
/// VM), everything else is injected as already delivered.
fn inject(fd: &VcpuFd, e: Exception) -> Result<(), kvm_ioctls::Error> {
    let mut events = fd.get_vcpu_events()?;
    events.exception.nr = e.vector;
    events.exception.has_error_code = u8::from(e.error_code.is_some());
    events.exception.error_code = e.error_code.unwrap_or(0);
    events.flags = 0;
    events.exception_has_payload = 0;
    events.exception_payload = 0;
    if let Some(cr2) = e.cr2 {
        // A pending (not yet delivered) exception: KVM writes CR2 when it delivers it.
        events.exception.injected = 0;
        events.exception.pending = 1;
        events.exception_has_payload = 1;
        events.exception_payload = cr2;
        events.flags = KVM_VCPUEVENT_VALID_PAYLOAD;
    } else {
        events.exception.injected = 1;
        events.exception.pending = 0;
    }
    fd.set_vcpu_events(&events)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn int3_is_a_trap_with_rip_after_it() {
        assert_eq!(
            outcome(INT3, 0, 0),
            Some(Outcome::Skip {
                len: 1,
                trap: Some(BP_VECTOR)
            })
        );
    }

    #[test]
    fn fwait_follows_cr0_and_the_x87_status_word() {
        let pe_ne = 1 | CR0_NE;
        assert_eq!(
            outcome(FWAIT, pe_ne, 0),
            Some(Outcome::Skip { len: 1, trap: None })
        );
        assert_eq!(
            outcome(FWAIT, pe_ne | CR0_TS | CR0_MP, 0),
            Some(Outcome::Fault(Exception::plain(NM_VECTOR)))
        );
        // TS without MP: WAIT does not fault.
        assert_eq!(
            outcome(FWAIT, pe_ne | CR0_TS, 0),
            Some(Outcome::Skip { len: 1, trap: None })
        );
        assert_eq!(
            outcome(FWAIT, pe_ne, FSW_ES),
            Some(Outcome::Fault(Exception::plain(MF_VECTOR)))
        );
        // Without CR0.NE a pending x87 error is reported externally (FERR#), not as #MF.
        assert_eq!(
            outcome(FWAIT, 1, FSW_ES),
            Some(Outcome::Skip { len: 1, trap: None })
        );
    }

    #[test]
    fn faults_map_to_vectors_error_codes_and_cr2() {
        assert_eq!(Exception::from(Fault::InvalidOpcode), Exception::plain(UD_VECTOR));
        assert_eq!(
            Exception::from(Fault::GeneralProtection),
            Exception {
                vector: GP_VECTOR,
                error_code: Some(0),
                cr2: None
            }
        );
        assert_eq!(
            Exception::from(Fault::Page {
                error_code: 2,
                address: 0x7fff_0000
            }),
            Exception {
                vector: PF_VECTOR,
                error_code: Some(2),
                cr2: Some(0x7fff_0000)
            }
        );
    }

    #[test]
    fn area_writes_follow_the_translated_pages() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        // An area starting 0x40 before a page end, its second page elsewhere in guest memory.
        let pages = [(0x1fc0, 0x40), (0x8000, 0x1000)];
        area_io(&mem, &pages, 0x30, &mut [1u8; 0x20], true).unwrap();
        let mut a = [0u8; 0x10];
        mem.read_slice(&mut a, GuestAddress(0x1ff0)).unwrap();
        assert_eq!(a, [1u8; 0x10]);
        mem.read_slice(&mut a, GuestAddress(0x8000)).unwrap();
        assert_eq!(a, [1u8; 0x10]);
        let mut back = [0u8; 0x20];
        area_io(&mem, &pages, 0x30, &mut back, false).unwrap();
        assert_eq!(back, [1u8; 0x20]);
        assert!(
            area_io(&mem, &pages, 0x1040, &mut [1], true).is_none(),
            "beyond the area"
        );
    }

    #[test]
    fn other_instructions_stay_internal_errors() {
        assert_eq!(outcome(0x0f, 0, 0), None);
        assert_eq!(outcome(0xcd, 0, 0), None);
    }
}
