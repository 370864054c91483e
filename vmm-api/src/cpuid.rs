//! Linux `clearcpuid=` numbers (word * 32 + bit, words as in arch/x86/include/asm/cpufeatures.h) and the
//! CPUID bits they name, for the words that are direct copies of CPUID registers.
//!
//! `config` accepts a `cpuid_mask` only in these words; the VMM clears the named bits in the guest's CPUID.
//! Pure numbers, `no_std`.

/// A CPUID output register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// One feature bit: leaf, subleaf, register, bit index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureBit {
    pub leaf: u32,
    pub subleaf: u32,
    pub reg: Reg,
    pub bit: u8,
}

/// Maps a Linux `clearcpuid=` number (word * 32 + bit) to its CPUID location, for the words that are
/// direct copies of CPUID registers.
pub fn linux_feature_bit(n: u32) -> Option<FeatureBit> {
    let (leaf, subleaf, reg) = match n / 32 {
        0 => (1, 0, Reg::Edx),
        1 => (0x8000_0001, 0, Reg::Edx),
        4 => (1, 0, Reg::Ecx),
        6 => (0x8000_0001, 0, Reg::Ecx),
        9 => (7, 0, Reg::Ebx),
        16 => (7, 0, Reg::Ecx),
        18 => (7, 0, Reg::Edx),
        _ => return None,
    };
    Some(FeatureBit {
        leaf,
        subleaf,
        reg,
        bit: (n % 32) as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_numbers_map_to_cpuid_bits() {
        // 129 = pclmulqdq (1.ECX bit 1), 59 = rdtscp (0x80000001.EDX bit 27), 288 = fsgsbase.
        assert_eq!(
            linux_feature_bit(129),
            Some(FeatureBit {
                leaf: 1,
                subleaf: 0,
                reg: Reg::Ecx,
                bit: 1
            })
        );
        assert_eq!(
            linux_feature_bit(59).map(|b| (b.leaf, b.bit)),
            Some((0x8000_0001, 27))
        );
        assert_eq!(
            linux_feature_bit(288).map(|b| (b.leaf, b.reg, b.bit)),
            Some((7, Reg::Ebx, 0))
        );
        assert_eq!(linux_feature_bit(3 * 32), None);
    }
}
