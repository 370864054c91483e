//! Device interrupts that wake the idle probe: COM1 and virtio-input lines routed through the IOAPIC.
//!
//! The VMM raises each line through an irqfd on KVM's in-kernel irqchip (GSI = IOAPIC pin). The probe
//! routes the lines it waits on (serial receive, keyboard/tablet events) to one vector, edge triggered, to
//! the boot CPU (LAPIC ID 0); the handler only counts and sends the LAPIC EOI — the main loop then polls
//! the devices as before. The 8259 PICs stay masked (apic.rs), so every line arrives exactly once.

use crate::cpu;
use crate::io::Mmio;
use core::arch::global_asm;
use vmm_api::layout::IOAPIC_START;

/// The vector every routed device line raises.
pub const DEVICE_VECTOR: u8 = 0x50;
/// Lines the probe can route (the IOAPIC has 24 pins).
pub const MAX_LINES: usize = 24;

const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REDIRECTION_BASE: u32 = 0x10;

global_asm!(
    r#"
    .section .text.probe_irq, "ax"
    .global probe_device_isr
    .balign 16
probe_device_isr:
    pushq %rax
    lock incq probe_device_irqs(%rip)
    movq probe_lapic_eoi(%rip), %rax
    movl $0, (%rax)
    popq %rax
    iretq

    .section .bss.probe_irq, "aw", @nobits
    .balign 8
probe_device_irqs:
    .zero 8
    "#,
    options(att_syntax)
);

extern "C" {
    pub static probe_device_isr: u8;
    /// Incremented by the device interrupt handler.
    static mut probe_device_irqs: u64;
}

/// Routes each IOAPIC pin in `lines` to [`DEVICE_VECTOR`]: fixed delivery, physical destination 0,
/// active high, edge triggered, unmasked. False if the IOAPIC window cannot be mapped.
pub fn route(lines: &[u32]) -> bool {
    if !cpu::map_range(IOAPIC_START, 0x1000) {
        return false;
    }
    // SAFETY: the IOAPIC register window, identity mapped just above.
    let ioapic = unsafe { Mmio::new(IOAPIC_START) };
    for &pin in lines.iter().filter(|&&p| (p as usize) < MAX_LINES) {
        let index = REDIRECTION_BASE + 2 * pin;
        ioapic.write32(IOREGSEL, index + 1);
        ioapic.write32(IOWIN, 0); // destination APIC ID 0
        ioapic.write32(IOREGSEL, index);
        ioapic.write32(IOWIN, DEVICE_VECTOR as u32);
    }
    true
}

/// Device interrupts seen so far (diagnostics: the `ticks` command).
pub fn count() -> u64 {
    // SAFETY: an aligned u64 only the handler writes (one `lock inc`); volatile keeps the load real.
    unsafe { core::ptr::addr_of!(probe_device_irqs).read_volatile() }
}
