//! Idle without burning the host: the probe halts in `hlt` until an interrupt wakes it.
//!
//! Busy polling costs a host core per probe VM (each poll of the UART is a VM exit). By default device
//! interrupts (COM1 receive, virtio-input; routed by ioapic.rs) wake the main loop, and a slow periodic
//! local-APIC timer (1 s) is only a safety net, so an idle probe costs about one VM exit a second, like an
//! idle tickless kernel. `probe.idle=timer` keeps the older 10 ms tick without device interrupts, and
//! `probe.idle=poll` never halts. The probe only halts after it has seen the timer count, so a platform
//! without a working LAPIC timer falls back to polling rather than hanging. The 8259 PICs and LINT0 are
//! masked: lines arrive through the IOAPIC only.

use crate::cpu;
use crate::io::{outb, Mmio};
use core::arch::{asm, global_asm};

pub const TIMER_VECTOR: u8 = 0x40;
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const CPUID_1_EDX_APIC: u32 = 1 << 9;

const REG_EOI: usize = 0x0b0;
const REG_SVR: usize = 0x0f0;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DIVIDE_BY_1: u32 = 0xb;
/// KVM's APIC timer counts at 1 GHz (measured here: 1 ms per 1,000,000): 10,000,000 ≈ 10 ms, which
/// costs ~2% of a host core while idle on this emulating KVM and bounds serial/keyboard latency when
/// nothing else wakes the probe (`probe.idle=timer`).
pub const TICK_10_MS: u32 = 10_000_000;
/// ≈ 1 s: the safety-net tick when device interrupts wake the probe.
pub const TICK_1_S: u32 = 1_000_000_000;

const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;

global_asm!(
    r#"
    .section .text.probe_irq, "ax"
    .global probe_timer_isr
    .balign 16
probe_timer_isr:
    pushq %rax
    lock incq probe_ticks(%rip)
    movq probe_lapic_eoi(%rip), %rax
    movl $0, (%rax)
    popq %rax
    iretq

    .global probe_spurious_isr
    .balign 16
probe_spurious_isr:
    iretq

    # Defined here, not as Rust statics: with LTO the optimiser sees no Rust store to a counter that
    # only assembly increments and folds its loads to 0.
    .section .bss.probe_irq, "aw", @nobits
    .balign 8
probe_ticks:
    .zero 8
    .global probe_lapic_eoi
probe_lapic_eoi:
    .zero 8
    "#,
    options(att_syntax)
);

extern "C" {
    pub static probe_timer_isr: u8;
    pub static probe_spurious_isr: u8;
    /// Incremented by the timer interrupt handler.
    static mut probe_ticks: u64;
    /// Address of the LAPIC EOI register, for the handler.
    static mut probe_lapic_eoi: u64;
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: IA32_APIC_BASE exists on every CPU that reports an APIC (checked by the caller).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    lo as u64 | ((hi as u64) << 32)
}

/// Programs the periodic timer (`count` at 1 GHz). False if there is no usable xAPIC (then the probe
/// keeps polling).
pub fn start_timer(count: u32) -> bool {
    let edx = core::arch::x86_64::__cpuid(1).edx;
    if edx & CPUID_1_EDX_APIC == 0 {
        return false;
    }
    let msr = rdmsr(IA32_APIC_BASE);
    if msr & APIC_BASE_ENABLE == 0 || msr & APIC_BASE_X2APIC != 0 {
        return false;
    }
    let base = msr & 0x000f_ffff_f000;
    if !cpu::map_range(base, 0x1000) {
        return false;
    }
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    // SAFETY: `base` is the LAPIC's register page, identity mapped just above.
    let lapic = unsafe { Mmio::new(base) };
    // SAFETY: plain store to our own variable; the handler reads it only after the timer starts below.
    unsafe { core::ptr::addr_of_mut!(probe_lapic_eoi).write_volatile(base + REG_EOI as u64) };
    lapic.write32(REG_SVR, SVR_ENABLE | SPURIOUS_VECTOR as u32);
    lapic.write32(REG_LVT_LINT0, LVT_MASKED);
    lapic.write32(REG_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic.write32(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    lapic.write32(REG_TIMER_INITIAL, count);
    // Only halt if the timer visibly counts down: then `hlt` is sure to end.
    let first = lapic.read32(REG_TIMER_CURRENT);
    (0..1000).any(|_| lapic.read32(REG_TIMER_CURRENT) != first)
}

pub fn ticks() -> u64 {
    // SAFETY: an aligned u64 only the handler writes (one `lock inc`); volatile keeps the load real.
    unsafe { core::ptr::addr_of!(probe_ticks).read_volatile() }
}

/// Sleeps until the next interrupt (at most one timer period). `sti; hlt` cannot miss a wake-up: the
/// interrupt shadow of `sti` covers the `hlt`, and a line raised while interrupts were off stays pending.
pub fn idle() {
    // SAFETY: only the timer, spurious and device vectors can arrive (PICs and LINT0 masked); their
    // handlers preserve all registers.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}
