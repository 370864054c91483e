//! COM1 (8250/16550 UART at 0x3f8), polled: the probe's console and command channel.
//!
//! Every register access is a VM exit, so output batches up to 16 bytes per "transmitter empty" check when
//! the UART reports a working FIFO, and one byte per check otherwise (a plain 8250).

use crate::io::{inb, outb};
use core::sync::atomic::{AtomicBool, Ordering};

const BASE: u16 = vmm_api::layout::SERIAL_PORT_BASE;
const RBR_THR: u16 = BASE; // receive buffer / transmit holding (DLAB = 0)
const IER: u16 = BASE + 1;
const IIR_FCR: u16 = BASE + 2;
const LCR: u16 = BASE + 3;
const MCR: u16 = BASE + 4;
const LSR: u16 = BASE + 5;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
const FIFO_DEPTH: usize = 16;
/// Bounded wait for the transmitter; a UART that never drains must not hang the probe.
const TX_SPIN_LIMIT: u32 = 100_000;

static FIFO: AtomicBool = AtomicBool::new(false);

pub fn init() {
    outb(IER, 0x00); // polled: no interrupts
    outb(LCR, 0x80); // DLAB to set the divisor
    outb(RBR_THR, 0x01); // 115200 baud
    outb(IER, 0x00);
    outb(LCR, 0x03); // 8N1, DLAB off
    outb(IIR_FCR, 0xc7); // enable + clear FIFOs, 14-byte trigger
    outb(MCR, 0x03); // DTR | RTS
                     // IIR bits 7:6 == 11 means the FIFOs are enabled (16550A); an 8250 reads 00.
    FIFO.store(inb(IIR_FCR) & 0xc0 == 0xc0, Ordering::Relaxed);
}

/// Raises IRQ 4 when received data is available (IER bit 0), so an idle probe wakes on input. The
/// receive path stays polled: the interrupt handler only ends the `hlt`.
pub fn enable_rx_interrupt() {
    outb(IER, 0x01);
}

fn wait_tx(mask: u8) {
    // One LSR read per attempt.
    for _ in 0..TX_SPIN_LIMIT {
        if inb(LSR) & mask != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

pub fn write_bytes(bytes: &[u8]) {
    if FIFO.load(Ordering::Relaxed) {
        for chunk in bytes.chunks(FIFO_DEPTH) {
            wait_tx(LSR_THR_EMPTY); // with FIFOs on: the whole FIFO is empty
            for &b in chunk {
                outb(RBR_THR, b);
            }
        }
    } else {
        for &b in bytes {
            wait_tx(LSR_THR_EMPTY);
            outb(RBR_THR, b);
        }
    }
}

pub fn puts(s: &str) {
    write_bytes(s.as_bytes());
}

pub fn put_dec(n: u64) {
    let mut buf = [0u8; 20];
    write_bytes(crate::parse::fmt_dec(n, &mut buf));
}

/// `0x`-prefixed lower-case hex.
pub fn put_hex(n: u64) {
    let mut buf = [0u8; 18];
    write_bytes(crate::parse::fmt_hex(n, &mut buf));
}

/// One received byte, if any (non-blocking).
pub fn try_read() -> Option<u8> {
    if inb(LSR) & LSR_DATA_READY != 0 {
        Some(inb(RBR_THR))
    } else {
        None
    }
}

/// `core::fmt` sink for the panic handler.
pub struct Writer;

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        puts(s);
        Ok(())
    }
}

/// Sends `bytes` to the transmit register with one `rep outsb` (string I/O; no FIFO pacing, which the
/// VMM's UART does not need).
pub fn rep_outs(bytes: &[u8]) {
    // SAFETY: reads `bytes.len()` bytes from `bytes` and writes them to the UART data port only.
    unsafe {
        core::arch::asm!(
            "rep outsb",
            in("dx") RBR_THR,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, readonly, preserves_flags)
        );
    }
}
