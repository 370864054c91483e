//! The ioctl request numbers the filters let through, computed like the kernel's `_IO*` macros
//! (`include/uapi/asm-generic/ioctl.h`) from the argument types in `kvm-bindings`, so a size change in the
//! bindings cannot silently allow a different request.

use std::mem::size_of;

use kvm_bindings::{
    kvm_cpuid2, kvm_dirty_log, kvm_enable_cap, kvm_fpu, kvm_ioeventfd, kvm_irqfd, kvm_lapic_state,
    kvm_mp_state, kvm_msrs, kvm_pit_config, kvm_regs, kvm_sregs, kvm_translation,
    kvm_userspace_memory_region, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};

const KVMIO: u64 = 0xAE;
const NONE: u64 = 0;
const WRITE: u64 = 1;
const READ: u64 = 2;

const fn ioc(dir: u64, ty: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (ty << 8) | nr
}
const fn io(nr: u64) -> u64 {
    ioc(NONE, KVMIO, nr, 0)
}
const fn ior(nr: u64, size: usize) -> u64 {
    ioc(READ, KVMIO, nr, size)
}
const fn iow(nr: u64, size: usize) -> u64 {
    ioc(WRITE, KVMIO, nr, size)
}
const fn iowr(nr: u64, size: usize) -> u64 {
    ioc(READ | WRITE, KVMIO, nr, size)
}

// /dev/kvm
pub const KVM_CREATE_VM: u64 = io(0x01);
pub const KVM_CHECK_EXTENSION: u64 = io(0x03);
pub const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
pub const KVM_GET_SUPPORTED_CPUID: u64 = iowr(0x05, size_of::<kvm_cpuid2>());
// VM
pub const KVM_CREATE_VCPU: u64 = io(0x41);
pub const KVM_GET_DIRTY_LOG: u64 = iow(0x42, size_of::<kvm_dirty_log>());
pub const KVM_SET_USER_MEMORY_REGION: u64 = iow(0x46, size_of::<kvm_userspace_memory_region>());
pub const KVM_SET_TSS_ADDR: u64 = io(0x47);
pub const KVM_CREATE_IRQCHIP: u64 = io(0x60);
pub const KVM_IRQFD: u64 = iow(0x76, size_of::<kvm_irqfd>());
pub const KVM_CREATE_PIT2: u64 = iow(0x77, size_of::<kvm_pit_config>());
pub const KVM_IOEVENTFD: u64 = iow(0x79, size_of::<kvm_ioeventfd>());
pub const KVM_ENABLE_CAP: u64 = iow(0xa3, size_of::<kvm_enable_cap>());
// vCPU
pub const KVM_RUN: u64 = io(0x80);
pub const KVM_GET_REGS: u64 = ior(0x81, size_of::<kvm_regs>());
pub const KVM_SET_REGS: u64 = iow(0x82, size_of::<kvm_regs>());
pub const KVM_GET_SREGS: u64 = ior(0x83, size_of::<kvm_sregs>());
pub const KVM_SET_SREGS: u64 = iow(0x84, size_of::<kvm_sregs>());
pub const KVM_TRANSLATE: u64 = iowr(0x85, size_of::<kvm_translation>());
pub const KVM_GET_MSRS: u64 = iowr(0x88, size_of::<kvm_msrs>());
pub const KVM_SET_MSRS: u64 = iow(0x89, size_of::<kvm_msrs>());
pub const KVM_GET_FPU: u64 = ior(0x8c, size_of::<kvm_fpu>());
pub const KVM_SET_FPU: u64 = iow(0x8d, size_of::<kvm_fpu>());
pub const KVM_GET_LAPIC: u64 = ior(0x8e, size_of::<kvm_lapic_state>());
pub const KVM_SET_LAPIC: u64 = iow(0x8f, size_of::<kvm_lapic_state>());
pub const KVM_SET_CPUID2: u64 = iow(0x90, size_of::<kvm_cpuid2>());
pub const KVM_SET_MP_STATE: u64 = iow(0x99, size_of::<kvm_mp_state>());
pub const KVM_GET_VCPU_EVENTS: u64 = ior(0x9f, size_of::<kvm_vcpu_events>());
pub const KVM_SET_VCPU_EVENTS: u64 = iow(0xa0, size_of::<kvm_vcpu_events>());
pub const KVM_GET_XSAVE: u64 = ior(0xa4, size_of::<kvm_xsave>());
pub const KVM_SET_XSAVE: u64 = iow(0xa5, size_of::<kvm_xsave>());
pub const KVM_GET_XCRS: u64 = ior(0xa6, size_of::<kvm_xcrs>());
pub const KVM_SET_XCRS: u64 = iow(0xa7, size_of::<kvm_xcrs>());
pub const KVM_GET_XSAVE2: u64 = ior(0xcf, size_of::<kvm_xsave>());
// TAP (the `libc` constants are the kernel's numbers, `c_ulong` on x86-64)
pub const TUNGETIFF: u64 = libc::TUNGETIFF;
pub const TUNSETVNETHDRSZ: u64 = libc::TUNSETVNETHDRSZ;
pub const TUNSETOFFLOAD: u64 = libc::TUNSETOFFLOAD;
// Sockets
pub const FIONBIO: u64 = libc::FIONBIO;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_headers() {
        // Values from <linux/kvm.h> as compiled on x86-64.
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
        assert_eq!(KVM_GET_SUPPORTED_CPUID, 0xc008_ae05);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_GET_XSAVE, 0x9000_aea4);
        assert_eq!(TUNSETOFFLOAD, 0x4004_54d0);
    }
}
