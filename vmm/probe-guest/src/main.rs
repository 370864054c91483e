//! The probe guest: a freestanding x86_64 program the VMM boots like a Linux `vmlinux` ELF.
//!
//! It checks the boot path (boot_params, command line, e820, screen_info), finds the virtio-mmio devices the
//! way Linux does, and then serves a line-oriented command protocol on COM1 plus keyboard/tablet events
//! from virtio-input, so that the VMM can be tested end to end without a kernel that takes minutes to boot
//! on an emulating KVM. The boot sequence and the command protocol are described in README.md. Devices
//! are polled; interrupts only wake the main loop from `hlt` (COM1 receive and virtio-input lines through the
//! IOAPIC, plus a slow safety tick; `probe.idle=timer|poll` on the command line changes that).
//!
//! Pure logic (command line and command parsing, the keymap, the font) also builds for the host so that
//! `cargo test --target x86_64-unknown-linux-gnu` can run its unit tests.

#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
// Host test builds compile only the pure modules; the rest is dead code there.
#![cfg_attr(test, allow(dead_code))]

mod cmdline;
mod font;
mod http;
mod ipv4;
mod keymap;
mod netframe;
mod parse;
mod request;
mod tcp;

#[cfg(not(test))]
mod apic;
#[cfg(not(test))]
mod arena;
#[cfg(not(test))]
mod block;
#[cfg(not(test))]
mod bootparams;
#[cfg(not(test))]
mod commands;
#[cfg(not(test))]
mod cpu;
#[cfg(not(test))]
mod fb;
#[cfg(not(test))]
mod get;
#[cfg(not(test))]
mod input;
#[cfg(not(test))]
mod io;
#[cfg(not(test))]
mod ioapic;
#[cfg(not(test))]
mod net;
#[cfg(not(test))]
mod ping;
#[cfg(not(test))]
mod power;
#[cfg(not(test))]
mod rng;
#[cfg(not(test))]
mod serial;
#[cfg(not(test))]
mod virtio;
#[cfg(not(test))]
mod xstate;

#[cfg(not(test))]
mod guest {
    //! The boot sequence, the main loop and the panic handler (guest build only).

    use crate::block::Block;
    use crate::bootparams::BootParams;
    use crate::commands::{Devices, LineEditor};
    use crate::fb::Framebuffer;
    use crate::input::{InputDevice, InputState};
    use crate::net::Net;
    use crate::rng::Rng;
    use crate::serial;
    use crate::virtio::{self, Transport};
    use crate::{apic, cmdline, cpu, ioapic, power};

    /// Virtio device IDs (virtio 1.x section 5).
    const DEVICE_NET: u32 = 1;
    const DEVICE_BLOCK: u32 = 2;
    const DEVICE_RNG: u32 = 4;
    const DEVICE_INPUT: u32 = 18;

    /// Called from `_start` (cpu.rs) with the boot_params address the VMM passed in RSI.
    #[no_mangle]
    extern "C" fn probe_main(boot_params: *const u8) -> ! {
        serial::init();
        cpu::init();
        // SAFETY: the boot protocol puts the zero page at RSI; it lies in identity-mapped low memory.
        let bp = unsafe { BootParams::new(boot_params) };
        let cmd = bp.cmdline();

        let (devices, wake_lines) = probe_devices(cmd);

        serial::puts("PROBE-GUEST READY\r\n");
        power::boot_marker(power::MARKER_BANNER);

        if let Some(n) = cmdline::bench_pio(cmd) {
            power::pio_loop(n);
            serial::puts("PIO-DONE ");
            serial::put_dec(n);
            serial::puts("\r\n");
            power::poweroff();
            power::halt_forever();
        }
        // Diagnostics only: printed after the banner so that they do not count in the start-up time
        // (each byte is two VM exits).
        report_boot_params(&bp);

        let fb = bp.framebuffer().and_then(|info| {
            if cpu::map_range(info.base, info.size_bytes()) {
                // SAFETY: the range was just identity mapped and screen_info says it is the framebuffer.
                Some(unsafe { Framebuffer::new(info) })
            } else {
                serial::puts("probe: framebuffer not mappable\r\n");
                None
            }
        });
        run(devices, fb, cmdline::idle_mode(cmd), wake_lines)
    }

    fn report_boot_params(bp: &BootParams) {
        let (entries, ram) = bp.e820_summary();
        serial::puts("probe: e820 ");
        serial::put_dec(entries as u64);
        serial::puts(" entries, ");
        serial::put_dec(ram >> 20);
        serial::puts(" MiB RAM\r\n");
        match bp.framebuffer() {
            Some(f) => {
                serial::puts("probe: fb ");
                serial::put_dec(f.width as u64);
                serial::puts("x");
                serial::put_dec(f.height as u64);
                serial::puts("x");
                serial::put_dec(f.depth as u64);
                serial::puts(" @");
                serial::put_hex(f.base);
                serial::puts(" stride ");
                serial::put_dec(f.stride as u64);
                serial::puts("\r\n");
            }
            None => serial::puts("probe: no framebuffer\r\n"),
        }
        let rsdp = bp.acpi_rsdp();
        serial::puts("probe: rsdp ");
        serial::put_hex(rsdp);
        serial::puts(if rsdp != 0 && bp.rsdp_signature_ok() {
            " ok\r\n"
        } else {
            " missing\r\n"
        });
    }

    /// IOAPIC pins whose interrupts should end an idle `hlt`: COM1 and every input device.
    #[derive(Default)]
    struct WakeLines {
        pins: [u32; cmdline::MAX_DEVICES + 1],
        len: usize,
    }

    impl WakeLines {
        fn push(&mut self, pin: u32) {
            if self.len < self.pins.len() {
                self.pins[self.len] = pin;
                self.len += 1;
            }
        }
    }

    fn probe_devices(cmd: &[u8]) -> (Devices, WakeLines) {
        let mut devs = Devices::default();
        let mut wake = WakeLines::default();
        wake.push(vmm_api::layout::SERIAL_IRQ);
        let mut found = [cmdline::MmioDevice::default(); cmdline::MAX_DEVICES];
        let n = cmdline::virtio_devices(cmd, &mut found);
        for d in &found[..n] {
            serial::puts("probe: virtio-mmio@");
            serial::put_hex(d.base);
            serial::puts(" irq ");
            serial::put_dec(d.irq as u64);
            if !cpu::map_range(d.base, d.size.max(0x200)) {
                serial::puts(" not mappable\r\n");
                continue;
            }
            // SAFETY: the window was just identity mapped and the command line says a device lives there.
            let t = match unsafe { Transport::probe(d.base, d.irq) } {
                Ok(t) => t,
                Err(e) => {
                    serial::puts(" error: ");
                    serial::puts(e.as_str());
                    serial::puts("\r\n");
                    continue;
                }
            };
            let id = t.device_id();
            serial::puts(" type ");
            serial::put_dec(id as u64);
            serial::puts(" (");
            serial::puts(virtio::device_name(id));
            serial::puts(")\r\n");
            let result = match id {
                DEVICE_BLOCK if devs.block.is_none() => Block::init(t).map(|b| {
                    b.report();
                    devs.block = Some(b);
                }),
                DEVICE_NET if devs.net.is_none() => Net::init(t, cmdline::net_offload(cmd)).map(|n| {
                    n.report();
                    devs.net = Some(n);
                    devs.ip = cmdline::param(cmd, b"ip").and_then(crate::ipv4::Config::from_ip_param);
                }),
                DEVICE_RNG if devs.rng.is_none() => Rng::init(t).map(|r| devs.rng = Some(r)),
                DEVICE_INPUT => match devs.inputs.iter_mut().find(|s| s.is_none()) {
                    Some(slot) => InputDevice::init(t).map(|i| {
                        i.report();
                        *slot = Some(i);
                        wake.push(d.irq);
                    }),
                    None => Ok(()),
                },
                _ => Ok(()),
            };
            if let Err(e) = result {
                serial::puts("probe:   init failed: ");
                serial::puts(e.as_str());
                serial::puts("\r\n");
            }
        }
        (devs, wake)
    }

    fn run(mut devs: Devices, mut fb: Option<Framebuffer>, mode: cmdline::IdleMode, wake: WakeLines) -> ! {
        if let Some(f) = fb.as_mut() {
            f.draw_title(b"probe-guest");
        }
        let mut editor = LineEditor::new();
        let mut input = InputState::new();
        let timer = match mode {
            cmdline::IdleMode::Poll => false,
            cmdline::IdleMode::Timer => apic::start_timer(apic::TICK_10_MS),
            // The timer also sets up the LAPIC (and the EOI address the device handler uses).
            cmdline::IdleMode::Interrupts => {
                apic::start_timer(apic::TICK_1_S) && {
                    let routed = ioapic::route(&wake.pins[..wake.len]);
                    if routed {
                        serial::enable_rx_interrupt();
                    } else {
                        // Without device interrupts only the timer would wake the probe: tick fast.
                        apic::start_timer(apic::TICK_10_MS);
                    }
                    true
                }
            }
        };
        loop {
            let mut busy = false;
            while let Some(byte) = serial::try_read() {
                editor.feed(byte, &mut devs, &mut fb);
                busy = true;
            }
            for dev in devs.inputs.iter_mut().flatten() {
                busy |= dev.poll(&mut input, &mut fb);
            }
            if let Some(f) = fb.as_mut() {
                busy |= f.clear_step();
            }
            if !timer {
                core::hint::spin_loop();
            } else if !busy {
                apic::idle();
            }
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        use core::fmt::Write;
        let mut w = serial::Writer;
        let _ = write!(w, "\r\nPROBE-PANIC {}", info.message());
        if let Some(loc) = info.location() {
            let _ = write!(w, " at {}:{}", loc.file(), loc.line());
        }
        serial::puts("\r\n");
        power::poweroff();
        power::halt_forever()
    }
}
