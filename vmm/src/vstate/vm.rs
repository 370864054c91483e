//! The KVM VM: in-kernel irqchip and PIT, and the memory slots through which guest memory is registered.
//!
//! Allocating guest RAM is `crate::memory`'s job; this module only tells KVM where it is. The VM hands
//! out memslot numbers itself ([`Vm::register_memory`], [`Vm::register_region`]), so callers never
//! count slots, and keeps every mapping it registered from [`crate::memory`] alive as long as it lives.

use std::sync::Arc;

use kvm_bindings::{
    kvm_enable_cap, kvm_pit_config, kvm_userspace_memory_region, KVM_CAP_EXCEPTION_PAYLOAD,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::memory::GuestMemory;

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
    #[error("Failed to register a guest memory slot")]
    SetMemoryRegion(#[source] kvm_ioctls::Error),
}

/// Three pages KVM needs for the real-mode TSS, inside the MMIO hole above the IOAPIC/APIC windows.
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// The VM: its KVM file descriptor and the memory slots registered so far.
pub struct Vm {
    pub fd: Arc<VmFd>,
    /// Next free memslot number.
    next_slot: u32,
    /// Guest RAM registered through [`Vm::register_memory`], kept mapped for the slots that point at it.
    memory: Vec<GuestMemory>,
}

/// Lets the VMM inject a #PF together with its address (CR2) when it completes an instruction KVM's
/// emulator could not execute (`vstate::unemulated`): KVM then writes CR2 as it delivers the fault.
/// Without it the VM still runs; only such a #PF cannot be delivered (the VMM reports an internal
/// error instead).
fn enable_exception_payload(fd: &VmFd) {
    if fd.check_extension_raw(u64::from(KVM_CAP_EXCEPTION_PAYLOAD)) <= 0 {
        return;
    }
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_EXCEPTION_PAYLOAD,
        ..Default::default()
    };
    cap.args[0] = 1;
    if let Err(e) = fd.enable_cap(&cap) {
        tracing::warn!(error = %e, "could not enable KVM_CAP_EXCEPTION_PAYLOAD");
    }
}

impl Vm {
    /// Creates the VM with its in-kernel irqchip and PIT; no memory yet.
    pub fn create(kvm: &Kvm) -> Result<Vm, VmError> {
        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(KVM_TSS_ADDRESS).map_err(VmError::SetTss)?;
        fd.create_irq_chip().map_err(VmError::CreateIrqChip)?;
        // The dummy speaker port (0x61) lets Linux calibrate the TSC with PIT channel 2.
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(VmError::CreatePit)?;
        enable_exception_payload(&fd);
        Ok(Vm {
            fd: Arc::new(fd),
            next_slot: 0,
            memory: Vec::new(),
        })
    }

    /// Takes the next free memslot number.
    pub fn next_slot(&mut self) -> u32 {
        let slot = self.next_slot;
        self.next_slot += 1;
        slot
    }

    /// Registers every region of `mem` as guest RAM, one memslot each, and keeps `mem` mapped for as
    /// long as the VM lives.
    pub fn register_memory(&mut self, mem: &GuestMemory) -> Result<(), VmError> {
        // Kept first, so a slot registered before a later region fails still points at live memory.
        self.memory.push(mem.clone());
        for region in mem.iter() {
            let host = region.as_ptr() as u64;
            // SAFETY: the region belongs to `mem`, a clone of which this VM keeps (above), so the
            // mapping outlives the VM's use of the slot.
            unsafe { self.register_region(region.start_addr().0, region.len(), host, 0) }?;
        }
        Ok(())
    }

    /// Registers the host mapping at `host_addr` as `size` bytes of guest memory at `guest_addr` in a new
    /// memslot with KVM `flags` (e.g. `KVM_MEM_LOG_DIRTY_PAGES`); returns the slot.
    ///
    /// # Safety
    /// `host_addr..host_addr + size` must stay mapped for as long as the VM exists.
    pub unsafe fn register_region(
        &mut self,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
        flags: u32,
    ) -> Result<u32, VmError> {
        let slot = self.next_slot();
        let region = kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: guest_addr,
            memory_size: size,
            userspace_addr: host_addr,
        };
        // SAFETY: the caller guarantees the mapping outlives the VM.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(VmError::SetMemoryRegion)?;
        Ok(slot)
    }
}
