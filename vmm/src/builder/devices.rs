//! The device step of the build: framebuffer memslot, legacy port-I/O devices and virtio-mmio devices,
//! each wired to its interrupt. Shared by every kind of build (see the module above): nothing here
//! depends on how the guest gets its state.

use std::sync::{Arc, Mutex};

use kvm_ioctls::IoEventAddress;
use vmm_sys_util::eventfd::EventFd;

use super::{BuildError, HostFiles, Platform, RuntimeHandles};
use crate::config::VmConfig;
use crate::devices::i8042::I8042;
use crate::devices::power::{PowerDevice, POWER_RANGE_LEN};
use crate::devices::serial::{SerialDevice, SerialHub};
use crate::devices::Bus;
use crate::framebuffer::Framebuffer;
use crate::layout;
use crate::memory::GuestMemory;
use crate::state::Shared;
use crate::virtio::block::Block;
use crate::virtio::input::{Input, InputKind};
use crate::virtio::mmio::{MmioTransport, REG_QUEUE_NOTIFY};
use crate::virtio::net::Net;
use crate::virtio::rng::Rng;
use crate::virtio::{IrqTrigger, VirtioDevice};
use crate::vstate::vm::Vm;

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

/// Adds the framebuffer (when configured) and all devices to a VM whose RAM is registered.
pub(super) fn attach(
    mut vm: Vm,
    mem: GuestMemory,
    cfg: &VmConfig,
    files: &HostFiles,
    shared: &Arc<Shared>,
    hub: &Arc<SerialHub>,
) -> Result<Platform, BuildError> {
    let fb = match cfg.framebuffer {
        Some(f) => Some(
            Framebuffer::new(&mut vm, layout::FRAMEBUFFER_START, f.width, f.height)
                .map_err(BuildError::Framebuffer)?,
        ),
        None => None,
    };
    let pio = legacy_devices(&vm, shared, hub)?;
    let (mmio, virtio_slots, mut handles) = virtio_devices(&vm, &mem, cfg, files)?;
    handles.framebuffer = fb;
    handles.guest_mem = Some(mem.clone());
    Ok(Platform {
        vm,
        mem,
        pio,
        mmio,
        virtio_slots,
        handles,
    })
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

/// Creates the virtio devices in their fixed order (disks, network cards, rng, keyboard, tablet) on the
/// host files opened at start-up.
fn virtio_devices(
    vm: &Vm,
    mem: &GuestMemory,
    cfg: &VmConfig,
    files: &HostFiles,
) -> Result<VirtioSetup, BuildError> {
    let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    let mut handles = RuntimeHandles::default();
    for ((bc, file), counters) in files.disks().iter().zip(files.disk_counters()) {
        let block = Block::with_file(bc, file.clone()).map_err(|e| BuildError::Block(bc.path.clone(), e))?;
        devices.push(Box::new(block.with_counters(counters.clone())));
        handles.disks.push(counters.clone());
    }
    for nic in files.nics() {
        let net = Net::new(
            nic.config.mac,
            nic.config.mtu,
            nic.tap.clone(),
            nic.counters.clone(),
        )
        .map_err(BuildError::Net)?;
        devices.push(Box::new(net));
        handles.nics.push(nic.counters.clone());
    }
    if let Some(source) = files.entropy() {
        devices.push(Box::new(Rng::with_source(source.clone())));
    }
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
        for (queue, evt) in dev.queue_eventfds() {
            let notify = addr + REG_QUEUE_NOTIFY;
            vm.fd
                .register_ioevent(&evt, &IoEventAddress::Mmio(notify), queue)
                .map_err(|e| BuildError::RegisterIoevent(notify, e))?;
        }
        let transport = Arc::new(Mutex::new(MmioTransport::new(mem.clone(), trigger, dev)));
        bus.insert(addr, layout::VIRTIO_MMIO_SIZE, transport)
            .map_err(BuildError::Bus)?;
        slots.push((addr, irq));
    }
    Ok((bus, slots, handles))
}
