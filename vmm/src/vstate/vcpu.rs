//! vCPU creation and the per-vCPU run loop (one thread each): dispatches I/O and MMIO exits to the
//! buses and turns fatal exits into VM events.

use std::sync::Arc;

use kvm_bindings::{
    kvm_mp_state, CpuId, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::boot::{cpuid, regs};
use crate::devices::Bus;
use crate::exit_codes;
use crate::layout::POST_CODE_PORT;
use crate::state::{Shared, VmEvent};
use crate::vstate::unemulated::Unemulated;

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
    /// Instructions KVM's emulator could not execute and the VMM completed (emulated hosts only).
    unemulated: Unemulated,
}

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
            unemulated: Unemulated::new(supported),
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
                    if self.unemulated.complete(&mut self.fd, &ctx.mem) {
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
                    if ctx.shared.sample_registers() {
                        self.log_registers();
                    }
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

    /// Debug aid (`VMM_DEBUG_SAMPLE_SECS`): where the guest is, logged when a sampling kick arrives.
    fn log_registers(&mut self) {
        let (Ok(r), Ok(s)) = (self.fd.get_regs(), self.fd.get_sregs()) else {
            return;
        };
        tracing::info!(
            vcpu = self.id,
            rip = format_args!("{:#x}", r.rip),
            cs = format_args!("{:#x}", s.cs.selector),
            rsp = format_args!("{:#x}", r.rsp),
            rax = format_args!("{:#x}", r.rax),
            rflags = format_args!("{:#x}", r.rflags),
            cr2 = format_args!("{:#x}", s.cr2),
            "register sample"
        );
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
