//! Boot-time vCPU state: 64-bit long mode with identity paging, boot MSRs, FPU and local APIC LINTs.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout;

/// Errors while setting up vCPU registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    #[error("Failed to write boot page tables or GDT to guest memory")]
    WriteMemory(#[source] vm_memory::GuestMemoryError),
    #[error("Failed to get special registers")]
    GetSregs(#[source] kvm_ioctls::Error),
    #[error("Failed to set special registers")]
    SetSregs(#[source] kvm_ioctls::Error),
    #[error("Failed to set registers")]
    SetRegs(#[source] kvm_ioctls::Error),
    #[error("Failed to set FPU state")]
    SetFpu(#[source] kvm_ioctls::Error),
    #[error("Failed to build MSR list")]
    BuildMsrs(#[source] vmm_sys_util::fam::Error),
    #[error("Failed to set MSRs")]
    SetMsrs(#[source] kvm_ioctls::Error),
    #[error("KVM accepted only {0} of {1} boot MSRs")]
    PartialMsrs(usize, usize),
    #[error("Failed to get local APIC state")]
    GetLapic(#[source] kvm_ioctls::Error),
    #[error("Failed to set local APIC state")]
    SetLapic(#[source] kvm_ioctls::Error),
}

/// Number of 2 MiB page directories: the identity map covers the first 4 GiB, so the guest can reach
/// RAM below the hole, the virtio-mmio windows and the framebuffer without building its own tables.
pub const IDENTITY_MAP_GIB: u64 = 4;

const X86_CR0_PE: u64 = 1;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// GDT: null, 64-bit code, data, TSS (selectors 0x08, 0x10, 0x18).
const GDT: [u64; 4] = [
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x0080_8b00_0000_0000,
];

fn segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xff_ffff) | (((entry >> 56) & 0xff) << 24);
    let limit = ((entry & 0xffff) | (((entry >> 48) & 0xf) << 16)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base,
        limit: if g == 1 { (limit << 12) | 0xfff } else { limit },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Writes the GDT, an empty IDT and identity page tables for the first `IDENTITY_MAP_GIB` GiB.
pub fn write_boot_tables(mem: &GuestMemoryMmap<()>) -> Result<(), RegsError> {
    for (i, e) in GDT.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(layout::BOOT_GDT_START + i as u64 * 8))
            .map_err(RegsError::WriteMemory)?;
    }
    mem.write_obj(0u64, GuestAddress(layout::BOOT_IDT_START))
        .map_err(RegsError::WriteMemory)?;
    mem.write_obj(layout::PDPTE_START | 0x3, GuestAddress(layout::PML4_START))
        .map_err(RegsError::WriteMemory)?;
    for gib in 0..IDENTITY_MAP_GIB {
        let pd = layout::PDE_START + gib * 0x1000;
        mem.write_obj(pd | 0x3, GuestAddress(layout::PDPTE_START + gib * 8))
            .map_err(RegsError::WriteMemory)?;
        for i in 0..512u64 {
            // Present, writable, 2 MiB page.
            let entry = ((gib << 30) + (i << 21)) | 0x83;
            mem.write_obj(entry, GuestAddress(pd + i * 8))
                .map_err(RegsError::WriteMemory)?;
        }
    }
    Ok(())
}

/// Puts the boot vCPU in 64-bit mode at `entry` with RSI pointing at the zero page.
pub fn setup_long_mode(vcpu: &VcpuFd, entry: u64) -> Result<(), RegsError> {
    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(RegsError::GetSregs)?;
    let code = segment_from_gdt(GDT[1], 1);
    let data = segment_from_gdt(GDT[2], 2);
    let tss = segment_from_gdt(GDT[3], 3);
    sregs.gdt.base = layout::BOOT_GDT_START;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = layout::BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr3 = layout::PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs).map_err(RegsError::SetSregs)?;

    let regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: layout::BOOT_STACK_POINTER,
        rbp: layout::BOOT_STACK_POINTER,
        rsi: layout::ZERO_PAGE_START,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(RegsError::SetRegs)
}

/// Default x87/SSE control words.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(RegsError::SetFpu)
}

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRs enabled, default memory type write-back.
const MTRR_DEF_TYPE_ENABLED_WB: u64 = (1 << 11) | 6;

/// Boot MSR values (the set Firecracker programs).
pub fn boot_msrs() -> Vec<(u32, u64)> {
    vec![
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_ENABLED_WB),
    ]
}

pub fn setup_msrs(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let entries: Vec<kvm_msr_entry> = boot_msrs()
        .into_iter()
        .map(|(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(RegsError::BuildMsrs)?;
    let n = vcpu.set_msrs(&msrs).map_err(RegsError::SetMsrs)?;
    if n != entries.len() {
        return Err(RegsError::PartialMsrs(n, entries.len()));
    }
    Ok(())
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn set_delivery_mode(regs: &mut [std::os::raw::c_char], offset: usize, mode: u32) {
    let mut b = [0u8; 4];
    for (i, v) in b.iter_mut().enumerate() {
        *v = regs[offset + i] as u8;
    }
    let val = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
    for (i, v) in val.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *v as std::os::raw::c_char;
    }
}

/// LINT0 = ExtINT (the 8259 PIC), LINT1 = NMI, as a PC BIOS leaves them.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut lapic = vcpu.get_lapic().map_err(RegsError::GetLapic)?;
    set_delivery_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_delivery_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(RegsError::SetLapic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_segments_decode_as_long_mode_code_and_flat_data() {
        let cs = segment_from_gdt(GDT[1], 1);
        assert_eq!(
            (cs.selector, cs.l, cs.db, cs.present, cs.type_),
            (8, 1, 0, 1, 0xb)
        );
        let ds = segment_from_gdt(GDT[2], 2);
        assert_eq!(
            (ds.selector, ds.limit, ds.db, ds.type_),
            (0x10, 0xffff_ffff, 1, 3)
        );
        assert_eq!(segment_from_gdt(GDT[3], 3).type_, 0xb);
    }

    #[test]
    fn page_tables_identity_map_4gib() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_boot_tables(&mem).unwrap();
        let pdpt3: u64 = mem.read_obj(GuestAddress(layout::PDPTE_START + 24)).unwrap();
        assert_eq!(pdpt3 & !0xfff, layout::PDE_START + 3 * 0x1000);
        // 0xe000_0000 (framebuffer) is in GiB 3, entry 256.
        let pde: u64 = mem
            .read_obj(GuestAddress(layout::PDE_START + 3 * 0x1000 + 256 * 8))
            .unwrap();
        assert_eq!(pde, 0xe000_0000 | 0x83);
    }

    #[test]
    fn lapic_lint_modes() {
        let mut regs = [0 as std::os::raw::c_char; 1024];
        set_delivery_mode(&mut regs, APIC_LVT0, APIC_MODE_EXTINT);
        assert_eq!(regs[APIC_LVT0 + 1] as u8, 0x7);
    }
}
