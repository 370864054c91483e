//! Guest CPUID: KVM's supported set, with per-vCPU topology, the hypervisor bit and an optional mask.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// The Linux feature numbers the mask is written in: one table, shared with config validation.
pub use vmm_api::cpuid::{linux_feature_bit, FeatureBit, Reg};

const LEAF_FEATURES: u32 = 1;
const LEAF_CACHE_PARAMS: u32 = 4;
const LEAF_PMU: u32 = 0xa;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const ECX_HYPERVISOR_BIT: u32 = 31;
const EDX_HTT_BIT: u32 = 28;

fn reg_mut(e: &mut kvm_cpuid_entry2, reg: Reg) -> &mut u32 {
    match reg {
        Reg::Eax => &mut e.eax,
        Reg::Ebx => &mut e.ebx,
        Reg::Ecx => &mut e.ecx,
        Reg::Edx => &mut e.edx,
    }
}

/// Number of bits needed to hold `n - 1` (the APIC-ID shift for `n` logical processors).
fn id_shift(n: u32) -> u32 {
    32 - n.saturating_sub(1).leading_zeros()
}

/// Adjusts a copy of KVM's supported CPUID for vCPU `cpu_id` of `cpu_count` (one socket, one thread
/// per core), then clears the `mask` bits (Linux numbering, validated by the config).
pub fn configure(cpuid: &mut CpuId, cpu_id: u8, cpu_count: u8, mask: &[u32]) {
    let (id, count) = (u32::from(cpu_id), u32::from(cpu_count));
    for e in cpuid.as_mut_slice() {
        match e.function {
            LEAF_FEATURES => {
                e.ebx = (id << 24) | (count << 16) | (8 << 8) | (e.ebx & 0xff);
                e.ecx |= 1 << ECX_HYPERVISOR_BIT;
                if count > 1 {
                    e.edx |= 1 << EDX_HTT_BIT;
                } else {
                    e.edx &= !(1 << EDX_HTT_BIT);
                }
            }
            LEAF_CACHE_PARAMS => {
                // EAX[31:26] = cores per package - 1; EAX[25:14] = logical CPUs sharing the cache - 1:
                // L1/L2 are per core (one thread each), L3 is shared by the package.
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { count - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | ((count - 1) << 26) | (sharing << 14);
            }
            LEAF_PMU => {
                // No virtual PMU: the guest should not program performance counters.
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
                e.edx = id;
                match e.index {
                    0 => {
                        // SMT level: one thread per core.
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        // Core level.
                        e.eax = id_shift(count);
                        e.ebx = count;
                        e.ecx = (2 << 8) | 1;
                    }
                    n => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = n;
                    }
                }
            }
            _ => {}
        }
    }
    for fb in mask.iter().filter_map(|n| linux_feature_bit(*n)) {
        for e in cpuid.as_mut_slice() {
            if e.function == fb.leaf && e.index == fb.subleaf {
                *reg_mut(e, fb.reg) &= !(1u32 << fb.bit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: !0,
            ebx: !0,
            ecx: !0,
            edx: !0,
            ..Default::default()
        }
    }

    #[test]
    fn sets_apic_id_hypervisor_bit_and_mask() {
        let mut cpuid = CpuId::from_entries(&[entry(1, 0), entry(0xb, 1), entry(7, 0)]).unwrap();
        configure(&mut cpuid, 2, 3, &[129, 288]);
        let e = cpuid.as_slice();
        assert_eq!(e[0].ebx >> 24, 2);
        assert_eq!((e[0].ebx >> 16) & 0xff, 3);
        assert_ne!(e[0].ecx & (1 << 31), 0);
        assert_eq!(e[0].ecx & 2, 0, "pclmulqdq cleared");
        assert_eq!(e[1].edx, 2);
        assert_eq!(e[1].eax, 2, "3 cpus need 2 bits");
        assert_eq!(e[2].ebx & 1, 0, "fsgsbase cleared");
    }
}
