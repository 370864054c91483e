//! Turns a validated `VmConfig` into a ready-to-run [`Machine`], in a fixed linear order of steps.
//!
//! The steps are split by what they depend on, so that a machine can be built two ways:
//! - **for boot** ([`build_for_boot`]): [`build_platform`] (VM, guest RAM and its memslots, then the
//!   devices, `devices.rs`), followed by `boot::prepare` (kernel, initrd, command line, boot tables,
//!   zero page, and vCPUs reset to the kernel's entry point).
//! - **from saved state** (snapshot restore or an incoming migration; not implemented yet): the same
//!   [`build_platform`], followed by a restore step beside `boot::prepare` that fills guest RAM from
//!   the saved image and sets device and vCPU state instead of loading a kernel. Nothing in
//!   [`build_platform`] knows about kernels, so that step composes with it unchanged.
//!
//! A guest reboot drops the whole `Machine` and builds a new one (fresh memory, devices and vCPUs);
//! only the serial hub, the shared state, the sockets and the [`HostFiles`] (kernel, initrd, disks,
//! entropy source, opened once) live across boots.

mod boot;
mod devices;
mod files;

use std::sync::Arc;

use kvm_ioctls::Kvm;

use crate::boot::{acpi, loader, params, regs};
use crate::config::VmConfig;
use crate::devices::serial::SerialHub;
use crate::devices::{Bus, BusError};
use crate::framebuffer::{Framebuffer, FramebufferError};
use crate::memory::{self, GuestMemory, MemoryError};
use crate::state::Shared;
use crate::virtio::block::BlockError;
use crate::virtio::input::InputHandle;
use crate::virtio::net::{NetCounters, NetError, TapError};
use crate::virtio::rng::RngError;
use crate::vstate::vcpu::{Vcpu, VcpuError};
use crate::vstate::vm::{Vm, VmError};

pub use files::{claim_inherited_taps, HostFiles, HostNic};

/// Errors while building the machine.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Failed to create the VM")]
    Vm(#[source] VmError),
    #[error("Failed to set up guest memory")]
    Memory(#[source] MemoryError),
    #[error("Failed to set up the framebuffer")]
    Framebuffer(#[source] FramebufferError),
    #[error("Failed to create an interrupt eventfd")]
    EventFd(#[source] std::io::Error),
    #[error("Failed to register irqfd for GSI {0}")]
    RegisterIrqfd(u32, #[source] kvm_ioctls::Error),
    #[error("Failed to place a device on the bus")]
    Bus(#[source] BusError),
    #[error("Failed to open disk {0}")]
    Block(std::path::PathBuf, #[source] BlockError),
    #[error("Failed to create the rng device")]
    Rng(#[source] RngError),
    #[error("The config names TAP descriptor {0}, which the VMM did not inherit")]
    TapNotInherited(i32),
    #[error("{nics} network cards configured but {taps} TAP descriptors claimed")]
    TapCount { nics: usize, taps: usize },
    #[error("The network card's descriptor {0} is not a usable TAP")]
    Tap(i32, #[source] TapError),
    #[error("Failed to create a network card")]
    Net(#[source] NetError),
    #[error("Failed to register an ioeventfd at {0:#x}")]
    RegisterIoevent(u64, #[source] kvm_ioctls::Error),
    #[error("Failed to load the kernel or initrd")]
    Load(#[source] loader::LoaderError),
    #[error("Failed to write boot tables")]
    Regs(#[source] regs::RegsError),
    #[error("Failed to write ACPI tables")]
    Acpi(#[source] acpi::AcpiError),
    #[error("Failed to write the zero page")]
    Params(#[source] params::ParamsError),
    #[error("Failed to read KVM's supported CPUID")]
    SupportedCpuid(#[source] kvm_ioctls::Error),
    #[error("Failed to create a vCPU")]
    Vcpu(#[source] VcpuError),
}

/// Handles the control socket uses to reach the current boot's devices.
#[derive(Clone, Default)]
pub struct RuntimeHandles {
    pub keyboard: Option<InputHandle>,
    pub tablet: Option<InputHandle>,
    pub framebuffer: Option<Arc<Framebuffer>>,
    pub guest_mem: Option<GuestMemory>,
    /// Each network card's counters (the same ones every boot).
    pub nics: Vec<Arc<NetCounters>>,
    /// Each disk's I/O counters (the same ones every boot).
    pub disks: Vec<Arc<crate::virtio::block_counters::BlockCounters>>,
}

/// A VM with its RAM and devices but no guest state yet: what booting and restoring both start from.
pub struct Platform {
    pub vm: Vm,
    pub mem: GuestMemory,
    pub pio: Bus,
    pub mmio: Bus,
    /// `(address, irq)` of each virtio-mmio device, in bus order (for the command line or ACPI).
    pub virtio_slots: Vec<(u64, u32)>,
    pub handles: RuntimeHandles,
}

/// A built VM for one boot.
pub struct Machine {
    pub vm: Vm,
    /// Guest RAM; the VM keeps a clone for its memslots, this one is for the VMM's own use.
    pub mem: GuestMemory,
    pub vcpus: Vec<Vcpu>,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub handles: RuntimeHandles,
}

/// Creates the VM, allocates guest RAM and registers it, then creates and attaches the devices.
/// Independent of how the guest gets its state (boot or restore).
pub fn build_platform(
    kvm: &Kvm,
    cfg: &VmConfig,
    files: &HostFiles,
    shared: &Arc<Shared>,
    hub: &Arc<SerialHub>,
) -> Result<Platform, BuildError> {
    let mut vm = Vm::create(kvm).map_err(BuildError::Vm)?;
    let mem = memory::create(cfg.memory_mib << 20).map_err(BuildError::Memory)?;
    vm.register_memory(&mem).map_err(BuildError::Vm)?;
    devices::attach(vm, mem, cfg, files, shared, hub)
}

/// Builds the machine for a fresh boot of the configured kernel.
pub fn build_for_boot(
    kvm: &Kvm,
    cfg: &VmConfig,
    files: &HostFiles,
    shared: &Arc<Shared>,
    hub: &Arc<SerialHub>,
) -> Result<Machine, BuildError> {
    let platform = build_platform(kvm, cfg, files, shared, hub)?;
    boot::prepare(platform, kvm, cfg, files)
}
