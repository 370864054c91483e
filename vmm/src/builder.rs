//! Turns a validated `VmConfig` into a ready-to-run machine for one boot, in a fixed linear order.
//!
//! A guest reboot drops the whole `Machine` and builds a new one (fresh memory, devices and vCPUs);
//! only the serial hub, the shared state and the sockets live across boots.

use std::sync::{Arc, Mutex};

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{acpi, loader, params, regs};
use crate::config::VmConfig;
use crate::devices::i8042::I8042;
use crate::devices::power::{PowerDevice, POWER_RANGE_LEN};
use crate::devices::serial::{SerialDevice, SerialHub};
use crate::devices::{Bus, BusError};
use crate::framebuffer::{Framebuffer, FramebufferError};
use crate::layout;
use crate::state::Shared;
use crate::virtio::block::{Block, BlockConfig, BlockError};
use crate::virtio::input::{Input, InputHandle, InputKind};
use crate::virtio::mmio::MmioTransport;
use crate::virtio::rng::{Rng, RngError};
use crate::virtio::{IrqTrigger, VirtioDevice};
use crate::vstate::vcpu::{Vcpu, VcpuError};
use crate::vstate::vm::{Vm, VmError};

/// Errors while building the machine.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Failed to create the VM")]
    Vm(#[source] VmError),
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
    pub guest_mem: Option<vm_memory::GuestMemoryMmap<()>>,
}

/// A built VM for one boot.
pub struct Machine {
    pub vm: Vm,
    pub vcpus: Vec<Vcpu>,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub handles: RuntimeHandles,
}

/// Raises a virtio device's interrupt through an irqfd.
struct IrqFdTrigger(EventFd);

impl IrqTrigger for IrqFdTrigger {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

fn irqfd(vm: &Vm, gsi: u32) -> Result<EventFd, BuildError> {
    let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(BuildError::EventFd)?;
    vm.fd
        .register_irqfd(&evt, gsi)
        .map_err(|e| BuildError::RegisterIrqfd(gsi, e))?;
    Ok(evt)
}

fn legacy_devices(vm: &Vm, shared: &Arc<Shared>, hub: &Arc<SerialHub>) -> Result<Bus, BuildError> {
    let mut pio = Bus::new("pio");
    let serial = SerialDevice::new(irqfd(vm, layout::SERIAL_IRQ)?, hub.clone());
    pio.insert(
        u64::from(layout::SERIAL_PORT_BASE),
        u64::from(layout::SERIAL_PORT_SIZE),
        serial,
    )
    .map_err(BuildError::Bus)?;
    let data = Arc::new(Mutex::new(I8042::data_port(shared.clone())));
    pio.insert(u64::from(layout::I8042_DATA_PORT), 1, data)
        .map_err(BuildError::Bus)?;
    let cmd = Arc::new(Mutex::new(I8042::command_port(shared.clone())));
    pio.insert(u64::from(layout::I8042_COMMAND_PORT), 1, cmd)
        .map_err(BuildError::Bus)?;
    let power = Arc::new(Mutex::new(PowerDevice::new(shared.clone())));
    pio.insert(u64::from(layout::POWER_PORT), POWER_RANGE_LEN, power)
        .map_err(BuildError::Bus)?;
    Ok(pio)
}

/// The MMIO bus, the `(address, irq)` pairs for the command line and the input handles.
type VirtioSetup = (Bus, Vec<(u64, u32)>, RuntimeHandles);

/// Creates the virtio devices in their fixed order (disks, rng, keyboard, tablet).
fn virtio_devices(vm: &Vm, cfg: &VmConfig) -> Result<VirtioSetup, BuildError> {
    let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    for d in &cfg.disks {
        let bc = BlockConfig {
            path: d.path.clone(),
            read_only: d.read_only,
            serial: d.serial.clone(),
        };
        devices.push(Box::new(
            Block::new(&bc).map_err(|e| BuildError::Block(d.path.clone(), e))?,
        ));
    }
    if cfg.rng {
        devices.push(Box::new(Rng::new().map_err(BuildError::Rng)?));
    }
    let mut handles = RuntimeHandles::default();
    let (kbd, kbd_handle) = Input::new(InputKind::Keyboard, "cloud-portal keyboard");
    devices.push(Box::new(kbd));
    handles.keyboard = Some(kbd_handle);
    if let Some(fb) = cfg.framebuffer {
        let kind = InputKind::Tablet {
            width: fb.width,
            height: fb.height,
        };
        let (tablet, tablet_handle) = Input::new(kind, "cloud-portal tablet");
        devices.push(Box::new(tablet));
        handles.tablet = Some(tablet_handle);
    }

    let mut bus = Bus::new("mmio");
    let mut slots = Vec::new();
    for (i, dev) in devices.into_iter().enumerate() {
        let addr = layout::VIRTIO_MMIO_BASE + i as u64 * layout::VIRTIO_MMIO_SIZE;
        let irq = layout::VIRTIO_IRQ_BASE + i as u32;
        let trigger: Arc<dyn IrqTrigger> = Arc::new(IrqFdTrigger(irqfd(vm, irq)?));
        let transport = Arc::new(Mutex::new(MmioTransport::new(vm.mem.clone(), trigger, dev)));
        bus.insert(addr, layout::VIRTIO_MMIO_SIZE, transport)
            .map_err(BuildError::Bus)?;
        slots.push((addr, irq));
    }
    Ok((bus, slots, handles))
}

/// Builds the machine for one boot.
pub fn build(
    kvm: &Kvm,
    cfg: &VmConfig,
    shared: &Arc<Shared>,
    hub: &Arc<SerialHub>,
) -> Result<Machine, BuildError> {
    let mem_size = cfg.memory_mib << 20;
    let mut vm = Vm::create(kvm, mem_size).map_err(BuildError::Vm)?;

    let fb = match cfg.framebuffer {
        Some(f) => {
            let slot = vm.next_slot;
            vm.next_slot += 1;
            let fb = Framebuffer::new(vm.fd.clone(), slot, layout::FRAMEBUFFER_START, f.width, f.height)
                .map_err(BuildError::Framebuffer)?;
            Some(fb)
        }
        None => None,
    };

    let pio = legacy_devices(&vm, shared, hub)?;
    let (mmio, virtio_slots, mut handles) = virtio_devices(&vm, cfg)?;
    handles.framebuffer = fb.clone();
    handles.guest_mem = Some(vm.mem.clone());

    let kernel = loader::load_kernel(&vm.mem, &cfg.kernel).map_err(BuildError::Load)?;
    let initrd = match &cfg.initrd {
        Some(path) => {
            let limit = loader::initrd_limit(mem_size, kernel.setup_header.as_ref());
            Some(loader::load_initrd(&vm.mem, path, limit).map_err(BuildError::Load)?)
        }
        None => None,
    };
    let on_cmdline: &[(u64, u32)] = if cfg.virtio_discovery.cmdline() {
        &virtio_slots
    } else {
        &[]
    };
    let in_acpi: &[(u64, u32)] = if cfg.virtio_discovery.acpi() {
        &virtio_slots
    } else {
        &[]
    };
    let cmdline =
        loader::build_cmdline(&cfg.cmdline, cfg.serial_console, on_cmdline).map_err(BuildError::Load)?;
    let cmdline_len = loader::write_cmdline(&vm.mem, &cmdline).map_err(BuildError::Load)?;
    regs::write_boot_tables(&vm.mem).map_err(BuildError::Regs)?;
    let rsdp_addr = acpi::write_tables(&vm.mem, cfg.vcpus, in_acpi).map_err(BuildError::Acpi)?;
    let fb_info = fb.as_ref().map(|f| params::FbInfo {
        base: f.guest_addr(),
        width: f.width(),
        height: f.height(),
    });
    let info = params::BootInfo {
        mem_size,
        kernel: &kernel,
        initrd,
        cmdline_len,
        rsdp_addr,
        fb: fb_info,
    };
    params::write(&vm.mem, &info).map_err(BuildError::Params)?;

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(BuildError::SupportedCpuid)?;
    let mut vcpus = Vec::with_capacity(cfg.vcpus as usize);
    for id in 0..cfg.vcpus {
        let vcpu = Vcpu::new(&vm.fd, id, cfg.vcpus, &supported, &cfg.cpuid_mask, kernel.entry)
            .map_err(BuildError::Vcpu)?;
        vcpus.push(vcpu);
    }
    tracing::info!(
        entry = format_args!("{:#x}", kernel.entry),
        cmdline = %cmdline.as_cstring().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default(),
        "machine built"
    );
    Ok(Machine {
        vm,
        vcpus,
        pio: Arc::new(pio),
        mmio: Arc::new(mmio),
        handles,
    })
}
