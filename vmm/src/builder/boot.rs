//! The boot-specific step of the build: puts a fresh guest into RAM (kernel, initrd, command line,
//! boot page tables and GDT, ACPI tables, zero page) and creates the vCPUs at the kernel's entry point.
//!
//! This is the only step that knows about kernels. Building from saved state replaces it with a
//! restore step on the same [`Platform`] (see the module above).

use std::sync::Arc;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;

use super::{BuildError, HostFiles, Machine, Platform};
use crate::boot::{acpi, loader, params, regs};
use crate::config::VmConfig;
use crate::memory;
use crate::vstate::vcpu::Vcpu;

/// Loads the guest and creates its vCPUs; the platform becomes a machine ready to run.
pub(super) fn prepare(
    platform: Platform,
    kvm: &Kvm,
    cfg: &VmConfig,
    files: &HostFiles,
) -> Result<Machine, BuildError> {
    let Platform {
        vm,
        mem,
        pio,
        mmio,
        virtio_slots,
        handles,
    } = platform;
    let mem_size = cfg.memory_mib << 20;

    let kernel = loader::load_kernel(&mem, files.kernel()).map_err(BuildError::Load)?;
    let initrd = match files.initrd() {
        Some(image) => {
            let limit = loader::initrd_limit(mem_size, kernel.setup_header.as_ref());
            Some(loader::load_initrd(&mem, image, limit).map_err(BuildError::Load)?)
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
    let cmdline_len = loader::write_cmdline(&mem, &cmdline).map_err(BuildError::Load)?;
    {
        // `boot::regs` still takes untracked memory (`memory::untracked_view`).
        // SAFETY: the view is dropped at the end of this block, while `mem`, which owns the mappings,
        // lives on.
        let untracked = unsafe { memory::untracked_view(&mem) }.map_err(BuildError::Memory)?;
        regs::write_boot_tables(&untracked).map_err(BuildError::Regs)?;
    }
    let rsdp_addr = acpi::write_tables(&mem, cfg.vcpus, in_acpi).map_err(BuildError::Acpi)?;
    let fb_info = handles.framebuffer.as_ref().map(|f| params::FbInfo {
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
    params::write(&mem, &info).map_err(BuildError::Params)?;

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
        mem,
        vcpus,
        pio: Arc::new(pio),
        mmio: Arc::new(mmio),
        handles,
    })
}
