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
//!
//! Hardware KVM executes these itself and never exits for them.

use kvm_bindings::KVM_INTERNAL_ERROR_EMULATION;
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const INT3: u8 = 0xcc;
const FWAIT: u8 = 0x9b;
const NM_VECTOR: u8 = 7;
const BP_VECTOR: u8 = 3;
const MF_VECTOR: u8 = 16;
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
    Fault(u8),
}

/// The architectural result of `opcode` given CR0 and the x87 status word, or None if we do not
/// complete that instruction.
fn outcome(opcode: u8, cr0: u64, fsw: u16) -> Option<Outcome> {
    match opcode {
        INT3 => Some(Outcome::Skip {
            len: 1,
            trap: Some(BP_VECTOR),
        }),
        FWAIT if cr0 & (CR0_TS | CR0_MP) == CR0_TS | CR0_MP => Some(Outcome::Fault(NM_VECTOR)),
        FWAIT if fsw & FSW_ES != 0 && cr0 & CR0_NE != 0 => Some(Outcome::Fault(MF_VECTOR)),
        FWAIT => Some(Outcome::Skip { len: 1, trap: None }),
        _ => None,
    }
}

/// Per-vCPU record of the last completed instruction, to tell progress from a loop.
#[derive(Default)]
pub struct Unemulated {
    /// Registers at the last completion, and how many completions in a row saw exactly them.
    last: ([u64; 18], u32),
}

fn snapshot(r: &kvm_bindings::kvm_regs) -> [u64; 18] {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13,
        r.r14, r.r15, r.rip, r.rflags,
    ]
}

impl Unemulated {
    /// Completes the instruction behind a KVM_EXIT_INTERNAL_ERROR if it is one listed above; false if the
    /// exit is a genuine internal error (or the same instruction keeps failing).
    pub fn complete(&mut self, fd: &mut VcpuFd, mem: &GuestMemoryMmap<()>) -> bool {
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active union member.
        let suberror = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        if suberror != KVM_INTERNAL_ERROR_EMULATION {
            return false;
        }
        let Ok(mut regs) = fd.get_regs() else {
            return false;
        };
        let Some(opcode) = fd
            .translate_gva(regs.rip)
            .ok()
            .filter(|t| t.valid != 0)
            .and_then(|t| mem.read_obj::<u8>(GuestAddress(t.physical_address)).ok())
        else {
            return false;
        };
        let (Ok(sregs), Ok(fpu)) = (fd.get_sregs(), fd.get_fpu()) else {
            return false;
        };
        let Some(outcome) = outcome(opcode, sregs.cr0, fpu.fsw) else {
            return false;
        };
        let rip = regs.rip;
        let now = snapshot(&regs);
        let count = if self.last.0 == now { self.last.1 + 1 } else { 1 };
        self.last = (now, count);
        if count > RETRIES {
            return false;
        }
        let vector = match outcome {
            Outcome::Skip { len, trap } => {
                regs.rip = rip.wrapping_add(len);
                if fd.set_regs(&regs).is_err() {
                    return false;
                }
                trap
            }
            Outcome::Fault(v) => Some(v),
        };
        if let Some(vector) = vector {
            let Ok(mut events) = fd.get_vcpu_events() else {
                return false;
            };
            events.exception.injected = 1;
            events.exception.nr = vector;
            events.exception.has_error_code = 0;
            events.exception.error_code = 0;
            events.exception.pending = 0;
            events.flags = 0;
            if let Err(e) = fd.set_vcpu_events(&events) {
                tracing::warn!(error = %e, vector, "could not inject the exception of an unemulated instruction");
                return false;
            }
        }
        match opcode {
            INT3 => crate::log_once!(
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
}

#[cfg(test)]
mod tests {
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
            Some(Outcome::Fault(NM_VECTOR))
        );
        // TS without MP: WAIT does not fault.
        assert_eq!(
            outcome(FWAIT, pe_ne | CR0_TS, 0),
            Some(Outcome::Skip { len: 1, trap: None })
        );
        assert_eq!(outcome(FWAIT, pe_ne, FSW_ES), Some(Outcome::Fault(MF_VECTOR)));
        // Without CR0.NE a pending x87 error is reported externally (FERR#), not as #MF.
        assert_eq!(
            outcome(FWAIT, 1, FSW_ES),
            Some(Outcome::Skip { len: 1, trap: None })
        );
    }

    #[test]
    fn other_instructions_stay_internal_errors() {
        assert_eq!(outcome(0x0f, 0, 0), None);
        assert_eq!(outcome(0xcd, 0, 0), None);
    }
}
