//! Creates the KVM VM: in-kernel irqchip and PIT, guest RAM memslots.

use std::sync::Arc;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::boot::params::ram_ranges;

/// Errors while creating the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("Failed to create the KVM VM")]
    CreateVm(#[source] kvm_ioctls::Error),
    #[error("Failed to set the TSS address")]
    SetTss(#[source] kvm_ioctls::Error),
    #[error("Failed to create the in-kernel irqchip")]
    CreateIrqChip(#[source] kvm_ioctls::Error),
    #[error("Failed to create the in-kernel PIT")]
    CreatePit(#[source] kvm_ioctls::Error),
    #[error("Failed to allocate guest memory")]
    AllocateMemory(#[source] vm_memory::mmap::FromRangesError),
    #[error("Failed to register a guest memory slot")]
    SetMemoryRegion(#[source] kvm_ioctls::Error),
}

/// Three pages KVM needs for the real-mode TSS, inside the MMIO hole above the IOAPIC/APIC windows.
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// The VM and its RAM.
pub struct Vm {
    pub fd: Arc<VmFd>,
    pub mem: GuestMemoryMmap<()>,
    /// Next free memslot number.
    pub next_slot: u32,
}

/// Registers a host mapping as guest memory `slot`.
///
/// # Safety
/// `host_addr..host_addr + size` must stay mapped for as long as the VM exists.
pub unsafe fn set_region(
    vm: &VmFd,
    slot: u32,
    guest_addr: u64,
    size: u64,
    host_addr: u64,
    flags: u32,
) -> Result<(), VmError> {
    let region = kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: guest_addr,
        memory_size: size,
        userspace_addr: host_addr,
    };
    // SAFETY: the caller guarantees the mapping outlives the VM.
    unsafe { vm.set_user_memory_region(region) }.map_err(VmError::SetMemoryRegion)
}

impl Vm {
    pub fn create(kvm: &Kvm, mem_size: u64) -> Result<Vm, VmError> {
        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(KVM_TSS_ADDRESS).map_err(VmError::SetTss)?;
        fd.create_irq_chip().map_err(VmError::CreateIrqChip)?;
        // The dummy speaker port (0x61) lets Linux calibrate the TSC with PIT channel 2.
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(VmError::CreatePit)?;

        let ranges: Vec<(GuestAddress, usize)> = ram_ranges(mem_size)
            .into_iter()
            .map(|(a, s)| (GuestAddress(a), s as usize))
            .collect();
        let mem = GuestMemoryMmap::<()>::from_ranges(&ranges).map_err(VmError::AllocateMemory)?;
        let mut slot = 0;
        for region in mem.iter() {
            let host = region.as_ptr() as u64;
            // SAFETY: the region is owned by `mem`, which the `Vm` keeps alive together with `fd`.
            unsafe { set_region(&fd, slot, region.start_addr().0, region.len(), host, 0) }?;
            slot += 1;
        }
        Ok(Vm {
            fd: Arc::new(fd),
            mem,
            next_slot: slot,
        })
    }
}
