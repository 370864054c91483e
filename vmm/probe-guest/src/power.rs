//! Boot-progress markers, power-off, reset and the PIO exit benchmark (ports from `vmm_api::layout`).

use vmm_api::layout::{
    BOOT_MARKER_PORT, I8042_COMMAND_PORT, POST_CODE_PORT, POWER_PORT, POWER_SLP_EN, POWER_SLP_TYP_S5,
};

use crate::io::outb;

/// ACPI hardware-reduced sleep control register: `(SLP_TYP << 2) | SLP_EN`, SLP_TYP 5 = S5 (soft off).
const POWER_OFF_VALUE: u8 = (POWER_SLP_TYP_S5 << 2) | POWER_SLP_EN;
const I8042_RESET: u8 = 0xfe;

/// Marker 1 (first instruction) is written by `_start` in cpu.rs.
pub const MARKER_BANNER: u8 = 2;

/// How long to keep running after a power request before declaring that it did not take effect.
const SETTLE_SPINS: u32 = 200_000;

pub fn boot_marker(value: u8) {
    outb(BOOT_MARKER_PORT, value);
}

/// Requests ACPI S5. Returns only if the VMM ignored the request (after a short grace period).
pub fn poweroff() {
    outb(POWER_PORT, POWER_OFF_VALUE);
    settle();
}

/// Requests a reset through the i8042 (what Linux does with `reboot=k`). Returns only if ignored.
pub fn reboot() {
    outb(I8042_COMMAND_PORT, I8042_RESET);
    settle();
}

fn settle() {
    for _ in 0..SETTLE_SPINS {
        core::hint::spin_loop();
    }
}

/// `n` writes to the POST-code port, each a VM exit: the VMM measures exits per second with this.
pub fn pio_loop(n: u64) {
    if n == 0 {
        return;
    }
    // SAFETY: port writes only; rcx is declared clobbered.
    unsafe {
        core::arch::asm!(
            "2:",
            "out dx, al",
            "dec rcx",
            "jnz 2b",
            inout("rcx") n => _,
            in("dx") POST_CODE_PORT,
            in("al") 0u8,
            options(nomem, nostack),
        )
    }
}

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: interrupts stay disabled; `hlt` just parks the vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
