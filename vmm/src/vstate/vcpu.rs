//! vCPU creation and the per-vCPU run loop (one thread each): dispatches I/O and MMIO exits to the
//! buses and turns fatal exits into VM events.

use std::sync::Arc;

use kvm_bindings::{
    kvm_mp_state, CpuId, KVM_INTERNAL_ERROR_EMULATION, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED,
    KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::boot::{cpuid, regs};
use crate::devices::Bus;
use crate::exit_codes;
use crate::layout::POST_CODE_PORT;
use crate::state::{Shared, VmEvent};

/// Errors while creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("Failed to create vCPU {0}")]
    Create(u8, #[source] kvm_ioctls::Error),
    #[error("Failed to set CPUID")]
    SetCpuid(#[source] kvm_ioctls::Error),
    #[error("Failed to set up registers")]
    Regs(#[source] regs::RegsError),
    #[error("Failed to set the MP state")]
    SetMpState(#[source] kvm_ioctls::Error),
    #[error("Failed to install the vCPU kick signal handler")]
    SignalHandler(#[source] vmm_sys_util::errno::Error),
}

/// Signal used to kick a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) kick handler; KVM_RUN then returns EINTR when the signal arrives.
pub fn install_kick_handler() -> Result<(), VcpuError> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
        .map_err(VcpuError::SignalHandler)
}

pub struct Vcpu {
    pub id: u8,
    fd: VcpuFd,
    /// RIP of the last `int3` turned into #BP, and how many times in a row it failed there.
    last_breakpoint: (u64, u32),
}

/// An `int3` that keeps failing at the same RIP this many times is a crash, not a breakpoint.
const BREAKPOINT_RETRIES: u32 = 3;
const INT3: u8 = 0xcc;
const BP_VECTOR: u8 = 3;

/// Everything a running vCPU needs.
pub struct VcpuContext {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub shared: Arc<Shared>,
    pub mem: GuestMemoryMmap<()>,
}

impl Vcpu {
    /// Creates vCPU `id` with CPUID, MSRs, FPU and LAPIC set; the boot vCPU (0) also gets long-mode
    /// registers at `entry`, the others wait for INIT/SIPI.
    pub fn new(
        vm: &VmFd,
        id: u8,
        count: u8,
        supported: &CpuId,
        mask: &[u32],
        entry: u64,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(|e| VcpuError::Create(id, e))?;
        let mut cpuid = supported.clone();
        cpuid::configure(&mut cpuid, id, count, mask);
        fd.set_cpuid2(&cpuid).map_err(VcpuError::SetCpuid)?;
        regs::setup_msrs(&fd).map_err(VcpuError::Regs)?;
        regs::setup_fpu(&fd).map_err(VcpuError::Regs)?;
        regs::setup_lapic(&fd).map_err(VcpuError::Regs)?;
        let mp_state = if id == 0 {
            regs::setup_long_mode(&fd, entry).map_err(VcpuError::Regs)?;
            KVM_MP_STATE_RUNNABLE
        } else {
            KVM_MP_STATE_UNINITIALIZED
        };
        fd.set_mp_state(kvm_mp_state { mp_state })
            .map_err(VcpuError::SetMpState)?;
        Ok(Vcpu {
            id,
            fd,
            last_breakpoint: (0, 0),
        })
    }

    /// Runs until a VM event or stop; called on the vCPU's own thread.
    pub fn run(mut self, ctx: &VcpuContext) {
        ctx.shared.register_vcpu_thread();
        let run = self.fd.get_kvm_run() as *const kvm_bindings::kvm_run;
        // Bytes per access of the current KVM_EXIT_IO; `data` holds `count` accesses (string I/O:
        // `rep outs`/`rep ins`), each of which goes to the device on its own.
        let io_size = || {
            // SAFETY: `run` is this vCPU's kvm_run mapping, valid as long as `self.fd`; only called for
            // KVM_EXIT_IO, where `io` is the active union member. It does not overlap the data area.
            usize::from(unsafe { (*run).__bindgen_anon_1.io.size })
        };
        loop {
            if ctx.shared.kicked() && !ctx.shared.vcpu_checkpoint() {
                break;
            }
            match self.fd.run() {
                Ok(VcpuExit::IoOut(port, data)) => {
                    // Hot path of the exit benchmark and Linux's I/O delay: no lookup, no lock.
                    if port != POST_CODE_PORT {
                        for access in data.chunks(io_size().max(1)) {
                            ctx.pio.write(u64::from(port), access);
                        }
                    }
                }
                Ok(VcpuExit::IoIn(port, data)) => {
                    for access in data.chunks_mut(io_size().max(1)) {
                        ctx.pio.read(u64::from(port), access, 0xff);
                    }
                }
                Ok(VcpuExit::MmioRead(addr, data)) => ctx.mmio.read(addr, data, 0),
                Ok(VcpuExit::MmioWrite(addr, data)) => ctx.mmio.write(addr, data),
                Ok(VcpuExit::Hlt) | Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => {}
                Ok(VcpuExit::Shutdown) => {
                    let reason = format!("vCPU {} triple fault (KVM_EXIT_SHUTDOWN)", self.id);
                    tracing::error!("{reason}");
                    ctx.shared.request(VmEvent::Crash {
                        code: exit_codes::EXIT_TRIPLE_FAULT,
                        reason,
                    });
                }
                Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => ctx.shared.request(VmEvent::Poweroff),
                    KVM_SYSTEM_EVENT_RESET => ctx.shared.request(VmEvent::Reboot),
                    KVM_SYSTEM_EVENT_CRASH => ctx.shared.request(VmEvent::Crash {
                        code: exit_codes::EXIT_GUEST_CRASH,
                        reason: "guest crash system event".into(),
                    }),
                    other => tracing::debug!(other, "ignored KVM system event"),
                },
                Ok(VcpuExit::InternalError) => {
                    if self.deliver_unemulated_breakpoint(&ctx.mem) {
                        continue;
                    }
                    let reason = self.describe_internal_error(&ctx.mem);
                    tracing::error!("{reason}");
                    ctx.shared.request(VmEvent::Crash {
                        code: exit_codes::EXIT_INTERNAL_ERROR,
                        reason,
                    });
                }
                Ok(VcpuExit::FailEntry(hw_reason, cpu)) => {
                    let reason = format!("KVM_EXIT_FAIL_ENTRY on vCPU {cpu}: hardware reason {hw_reason:#x}");
                    tracing::error!("{reason}");
                    ctx.shared.request(VmEvent::Crash {
                        code: exit_codes::EXIT_FAIL_ENTRY,
                        reason,
                    });
                }
                Ok(other) => {
                    crate::log_once!(warn, "unexpected vCPU exit: {other:?}");
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    // Kicked by a signal; clear the flag KVM may have left set.
                    self.fd.set_kvm_immediate_exit(0);
                }
                Err(e) => {
                    let reason = format!("KVM_RUN failed on vCPU {}: {e}", self.id);
                    tracing::error!("{reason}");
                    ctx.shared.request(VmEvent::Crash {
                        code: exit_codes::EXIT_KVM_RUN,
                        reason,
                    });
                }
            }
        }
        ctx.shared.unregister_vcpu_thread();
    }

    /// The instruction emulator behind some KVMs (kvm_pvm: every guest instruction is emulated) cannot
    /// execute `int3` in long mode and reports an emulation failure. A real CPU delivers #BP as a trap, and
    /// guests depend on it (Linux: alternatives self-test, text_poke_bp for static calls and jump labels,
    /// kprobes), so we deliver it: RIP past the one-byte `int3`, #BP injected. Hardware KVM never gets here.
    /// Returns false (a genuine internal error) for anything else.
    fn deliver_unemulated_breakpoint(&mut self, mem: &GuestMemoryMmap<()>) -> bool {
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active union member.
        let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        if suberror != KVM_INTERNAL_ERROR_EMULATION {
            return false;
        }
        let Ok(mut regs) = self.fd.get_regs() else {
            return false;
        };
        let byte = self
            .fd
            .translate_gva(regs.rip)
            .ok()
            .filter(|t| t.valid != 0)
            .and_then(|t| mem.read_obj::<u8>(GuestAddress(t.physical_address)).ok());
        if byte != Some(INT3) {
            return false;
        }
        let (rip, count) = self.last_breakpoint;
        let count = if rip == regs.rip { count + 1 } else { 1 };
        self.last_breakpoint = (regs.rip, count);
        if count > BREAKPOINT_RETRIES {
            return false;
        }
        let Ok(mut events) = self.fd.get_vcpu_events() else {
            return false;
        };
        let int3_rip = regs.rip;
        regs.rip = regs.rip.wrapping_add(1);
        if self.fd.set_regs(&regs).is_err() {
            return false;
        }
        events.exception.injected = 1;
        events.exception.nr = BP_VECTOR;
        events.exception.has_error_code = 0;
        events.exception.error_code = 0;
        events.exception.pending = 0;
        events.flags = 0;
        if let Err(e) = self.fd.set_vcpu_events(&events) {
            tracing::warn!(error = %e, "could not inject #BP for an unemulated int3");
            return false;
        }
        crate::log_once!(
            info,
            rip = format_args!("{int3_rip:#x}"),
            "KVM could not emulate int3: delivering #BP to the guest (logged once)"
        );
        true
    }

    /// "emulation failure at RIP ...: bytes ..." for KVM_EXIT_INTERNAL_ERROR.
    fn describe_internal_error(&mut self, mem: &GuestMemoryMmap<()>) -> String {
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active union member.
        let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
        let rip = self.fd.get_regs().map(|r| r.rip).unwrap_or(0);
        let phys = self
            .fd
            .translate_gva(rip)
            .ok()
            .filter(|t| t.valid != 0)
            .map(|t| t.physical_address);
        let mut bytes = [0u8; 16];
        let read = phys.is_some_and(|p| mem.read_slice(&mut bytes, GuestAddress(p)).is_ok());
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "KVM_EXIT_INTERNAL_ERROR (suberror {suberror}) on vCPU {} at RIP {rip:#x} (phys {}): bytes {}",
            self.id,
            phys.map(|p| format!("{p:#x}")).unwrap_or_else(|| "?".into()),
            if read { hex.join(" ") } else { "unreadable".into() }
        )
    }
}
