//! Kernel command line parsing: `virtio_mmio.device=` entries (as Linux's virtio_mmio driver reads them)
//! and the probe's own `probe.bench=` parameter.

use crate::parse::{memparse, parse_prefix, parse_u64};

pub const MAX_DEVICES: usize = 16;

/// One `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` entry.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

/// Space-separated parameters (the VMM does not quote values).
fn params(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline
        .split(|&c| c == b' ' || c == b'\t' || c == b'\n')
        .filter(|p| !p.is_empty())
}

/// The value of the first `key=value` parameter named `key`.
pub fn param<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    params(cmdline).find_map(|p| {
        let rest = p.strip_prefix(key)?;
        rest.strip_prefix(b"=")
    })
}

/// Parses `<size>@<base>:<irq>[:<id>]` like `vm_cmdline_set` in drivers/virtio/virtio_mmio.c.
pub fn parse_device(value: &[u8]) -> Option<MmioDevice> {
    let (size, rest) = memparse(value)?;
    let rest = rest.strip_prefix(b"@")?;
    let (base, rest) = parse_prefix(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (irq, rest) = parse_prefix(rest)?;
    // An optional `:<platform device id>` may follow; anything else is malformed.
    if !(rest.is_empty() || (rest[0] == b':' && parse_u64(&rest[1..]).is_some())) {
        return None;
    }
    if size == 0 || irq > u32::MAX as u64 {
        return None;
    }
    Some(MmioDevice {
        base,
        size,
        irq: irq as u32,
    })
}

/// All well-formed `virtio_mmio.device=` entries in order; returns how many were stored in `out`.
pub fn virtio_devices(cmdline: &[u8], out: &mut [MmioDevice; MAX_DEVICES]) -> usize {
    let mut n = 0;
    for p in params(cmdline) {
        let Some(value) = p.strip_prefix(b"virtio_mmio.device=") else {
            continue;
        };
        if let Some(dev) = parse_device(value) {
            if n < out.len() {
                out[n] = dev;
                n += 1;
            }
        }
    }
    n
}

/// `probe.net=offload`: the net driver negotiates the checksum and TSO offloads.
pub fn net_offload(cmdline: &[u8]) -> bool {
    param(cmdline, b"probe.net") == Some(b"offload".as_slice())
}

/// How the main loop waits when there is nothing to do (`probe.idle=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Default: `hlt`, woken by device interrupts (plus a 1 s safety tick).
    Interrupts,
    /// `probe.idle=timer`: `hlt`, woken by a 10 ms tick only; devices polled.
    Timer,
    /// `probe.idle=poll`: never halt; busy-poll the devices.
    Poll,
}

/// `probe.idle=irq|timer|poll`; anything else (or nothing) is the default, interrupts.
pub fn idle_mode(cmdline: &[u8]) -> IdleMode {
    match param(cmdline, b"probe.idle") {
        Some(b"poll") => IdleMode::Poll,
        Some(b"timer") => IdleMode::Timer,
        _ => IdleMode::Interrupts,
    }
}

/// `probe.bench=pio:<N>` → N.
pub fn bench_pio(cmdline: &[u8]) -> Option<u64> {
    parse_u64(param(cmdline, b"probe.bench")?.strip_prefix(b"pio:")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = b"console=ttyS0 reboot=k panic=1 virtio_mmio.device=4K@0xd0000000:5 \
        virtio_mmio.device=0x1000@0xd0001000:6:1 virtio_mmio.device=bogus probe.bench=pio:1000";

    #[test]
    fn idle_mode_defaults_to_interrupts() {
        assert_eq!(idle_mode(LINE), IdleMode::Interrupts);
        assert_eq!(idle_mode(b"probe.idle=poll"), IdleMode::Poll);
        assert_eq!(idle_mode(b"a probe.idle=timer b"), IdleMode::Timer);
        assert_eq!(idle_mode(b"probe.idle=bogus"), IdleMode::Interrupts);
    }

    #[test]
    fn finds_devices_like_linux() {
        let mut out = [MmioDevice::default(); MAX_DEVICES];
        let n = virtio_devices(LINE, &mut out);
        assert_eq!(n, 2, "the malformed entry is skipped");
        assert_eq!(
            out[0],
            MmioDevice {
                base: 0xd000_0000,
                size: 4096,
                irq: 5
            }
        );
        assert_eq!(
            out[1],
            MmioDevice {
                base: 0xd000_1000,
                size: 4096,
                irq: 6
            }
        );
    }

    #[test]
    fn rejects_malformed_devices() {
        assert_eq!(parse_device(b"4K0xd0000000:5"), None);
        assert_eq!(parse_device(b"4K@0xd0000000"), None);
        assert_eq!(parse_device(b"4K@0xd0000000:5x"), None);
        assert_eq!(parse_device(b"0@0xd0000000:5"), None);
    }

    #[test]
    fn net_offload_is_opt_in() {
        assert!(!net_offload(LINE));
        assert!(net_offload(
            b"virtio_mmio.device=4K@0xd0000000:5 probe.net=offload"
        ));
        assert!(!net_offload(b"probe.net=plain"));
    }

    #[test]
    fn reads_the_pio_benchmark() {
        assert_eq!(bench_pio(LINE), Some(1000));
        assert_eq!(bench_pio(b"console=ttyS0"), None);
        assert_eq!(bench_pio(b"probe.bench=mmio:5"), None);
        assert_eq!(param(b"a=1 ab=2", b"ab"), Some(&b"2"[..]));
    }
}
