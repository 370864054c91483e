//! Hand-built ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) for a hardware-reduced platform.
//!
//! Linux needs ACPI to have a power-off path at all; with the FADT's sleep control register it writes
//! `(SLP_TYP << 2) | SLP_EN` to `POWER_PORT` on poweroff, and with the reset register it writes
//! `POWER_RESET_VALUE` there on reboot. The tables are placed from `ACPI_RSDP_START` upwards.

use vm_memory::{Bytes, GuestAddress};

use crate::layout;
use crate::memory::GuestMemory;

/// Errors while writing ACPI tables.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error("Failed to write ACPI tables to guest memory")]
    WriteMemory(#[source] vm_memory::GuestMemoryError),
}

const OEM_ID: &[u8; 6] = b"CPORTL";
const OEM_TABLE_ID: &[u8; 8] = b"CPVMM   ";
const CREATOR_ID: &[u8; 4] = b"CPVM";
const HEADER_LEN: usize = 36;

/// Byte that makes the sum of `data` zero.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |s, b| s.wrapping_add(*b)).wrapping_neg()
}

/// A system description table being assembled: header plus body, checksum fixed by `finish`.
struct Sdt(Vec<u8>);

impl Sdt {
    fn new(signature: &[u8; 4], revision: u8) -> Self {
        let mut v = Vec::with_capacity(256);
        v.extend_from_slice(signature);
        v.extend_from_slice(&[0; 4]); // length
        v.push(revision);
        v.push(0); // checksum
        v.extend_from_slice(OEM_ID);
        v.extend_from_slice(OEM_TABLE_ID);
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(CREATOR_ID);
        v.extend_from_slice(&1u32.to_le_bytes());
        Sdt(v)
    }

    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn set(&mut self, offset: usize, bytes: &[u8]) {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.set(4, &len.to_le_bytes());
        self.0[9] = 0;
        self.0[9] = checksum(&self.0);
        self.0
    }
}

/// Generic Address Structure for an 8-bit I/O port register.
fn gas_io8(port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // System I/O space
    g[1] = 8; // bit width
    g[2] = 0; // bit offset
    g[3] = 1; // byte access
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

const FADT_LEN: usize = 276;
const FADT_FLAG_RESET_REG_SUP: u32 = 1 << 10;
const FADT_FLAG_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IA-PC boot architecture flags: no VGA, no MSI, no CMOS RTC. The i8042 flag stays clear so Linux
/// does not probe a keyboard controller (ours only implements the reset command).
const IAPC_NO_VGA: u16 = 1 << 2;
const IAPC_NO_MSI: u16 = 1 << 3;
const IAPC_NO_CMOS_RTC: u16 = 1 << 5;

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut t = Sdt::new(b"FACP", 6);
    t.put(&[0; FADT_LEN - HEADER_LEN]);
    t.set(40, &(dsdt_addr as u32).to_le_bytes());
    t.set(109, &(IAPC_NO_VGA | IAPC_NO_MSI | IAPC_NO_CMOS_RTC).to_le_bytes());
    t.set(
        112,
        &(FADT_FLAG_HW_REDUCED_ACPI | FADT_FLAG_RESET_REG_SUP).to_le_bytes(),
    );
    t.set(116, &gas_io8(layout::POWER_PORT));
    t.set(128, &[layout::POWER_RESET_VALUE]);
    t.set(131, &[0]); // FADT minor version
    t.set(140, &dsdt_addr.to_le_bytes());
    t.set(244, &gas_io8(layout::POWER_PORT)); // sleep control
    t.set(256, &gas_io8(layout::POWER_PORT)); // sleep status
    t.set(268, b"CPORTVMM");
    t.finish()
}

/// AML PkgLength encoding for `content_len` bytes following it (the encoding counts itself).
fn pkg_len(content_len: usize) -> Vec<u8> {
    if content_len + 1 < 0x40 {
        return vec![(content_len + 1) as u8];
    }
    for extra in 1..=3usize {
        let total = content_len + 1 + extra;
        if total < 1 << (4 + 8 * extra) {
            let mut v = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            for i in 0..extra {
                v.push((total >> (4 + 8 * i)) as u8);
            }
            return v;
        }
    }
    // Unreachable for tables of this size (< 256 MiB); keep the encoding well-formed anyway.
    vec![0xff, 0xff, 0xff, 0xff]
}

/// `Device (Vnnn) { _HID "LNRO0005", _UID n, _CRS { Memory32Fixed, Interrupt (edge, high) } }`: how
/// kernels without `virtio_mmio.device=` support find virtio-mmio devices.
fn virtio_device_aml(index: usize, addr: u64, irq: u32) -> Vec<u8> {
    let mut crs = vec![0x86, 0x09, 0x00, 0x01]; // Memory32Fixed, read-write
    crs.extend_from_slice(&(addr as u32).to_le_bytes());
    crs.extend_from_slice(&(crate::layout::VIRTIO_MMIO_SIZE as u32).to_le_bytes());
    crs.extend_from_slice(&[0x89, 0x06, 0x00, 0x03, 0x01]); // Extended IRQ: consumer, edge, high, 1
    crs.extend_from_slice(&irq.to_le_bytes());
    crs.extend_from_slice(&[0x79, 0x00]); // End tag
    let mut buffer = vec![0x0a, crs.len() as u8]; // BufferSize
    buffer.extend_from_slice(&crs);

    let name = format!("V{:03X}", index % 0x1000);
    let mut body = name.into_bytes();
    body.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0d]);
    body.extend_from_slice(b"LNRO0005\0");
    body.extend_from_slice(&[0x08, b'_', b'U', b'I', b'D', 0x0a, index as u8]);
    body.extend_from_slice(&[0x08, b'_', b'C', b'R', b'S', 0x11]);
    body.extend_from_slice(&pkg_len(buffer.len()));
    body.extend_from_slice(&buffer);

    let mut dev = vec![0x5b, 0x82]; // DeviceOp
    dev.extend_from_slice(&pkg_len(body.len()));
    dev.extend_from_slice(&body);
    dev
}

/// `Device (COM1) { _HID EisaId("PNP0501"), _UID 0, _CRS { IO (0x3f8, 8), Interrupt (edge, high) {4} } }`.
///
/// With the FADT's HW_REDUCED_ACPI flag Linux maps no legacy ISA IRQ, so the 8250 driver's built-in
/// "ttyS0 at 0x3f8, irq 4" gets no working interrupt: the kernel console (polled) prints, but a process
/// writing to ttyS0 waits forever for a transmit interrupt. Described here, the PNP serial driver takes
/// over the port with the GSI that ACPI registered.
fn serial_device_aml() -> Vec<u8> {
    let base = layout::SERIAL_PORT_BASE.to_le_bytes();
    let mut crs = vec![0x47, 0x01, base[0], base[1], base[0], base[1], 0x01];
    crs.push(layout::SERIAL_PORT_SIZE as u8); // IO: decode16, min = max = base, align 1, length
    crs.extend_from_slice(&[0x89, 0x06, 0x00, 0x03, 0x01]); // Extended IRQ: consumer, edge, high, 1
    crs.extend_from_slice(&layout::SERIAL_IRQ.to_le_bytes());
    crs.extend_from_slice(&[0x79, 0x00]); // End tag
    let mut buffer = vec![0x0a, crs.len() as u8]; // BufferSize
    buffer.extend_from_slice(&crs);

    let mut body = b"COM1".to_vec();
    // Name (_HID, EisaId ("PNP0501")): DWordConst 0x0105D041
    body.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x05, 0x01]);
    body.extend_from_slice(&[0x08, b'_', b'U', b'I', b'D', 0x00]); // Name (_UID, Zero)
    body.extend_from_slice(&[0x08, b'_', b'C', b'R', b'S', 0x11]);
    body.extend_from_slice(&pkg_len(buffer.len()));
    body.extend_from_slice(&buffer);

    let mut dev = vec![0x5b, 0x82]; // DeviceOp
    dev.extend_from_slice(&pkg_len(body.len()));
    dev.extend_from_slice(&body);
    dev
}

/// DSDT: `Name (_S5_, Package () { 5, 5, 0, 0 })`, COM1 and, if asked, the virtio-mmio devices in `\_SB_`.
fn dsdt(virtio: &[(u64, u32)]) -> Vec<u8> {
    let s5 = layout::POWER_SLP_TYP_S5;
    let mut t = Sdt::new(b"DSDT", 2);
    // NameOp "_S5_" PackageOp PkgLength(8) NumElements(4) BytePrefix 5, BytePrefix 5, Zero, Zero
    t.put(&[
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, s5, 0x0a, s5, 0x00, 0x00,
    ]);
    let mut scope = b"_SB_".to_vec();
    scope.extend_from_slice(&serial_device_aml());
    for (i, (addr, irq)) in virtio.iter().enumerate() {
        scope.extend_from_slice(&virtio_device_aml(i, *addr, *irq));
    }
    t.put(&[0x10]).put(&pkg_len(scope.len())).put(&scope); // ScopeOp
    t.finish()
}

fn madt(vcpus: u8) -> Vec<u8> {
    let mut t = Sdt::new(b"APIC", 4);
    t.put(&(layout::APIC_START as u32).to_le_bytes());
    t.put(&1u32.to_le_bytes()); // PCAT_COMPAT: a dual 8259 is present (KVM's in-kernel PIC)
    for cpu in 0..vcpus {
        t.put(&[0, 8, cpu, cpu, 1, 0, 0, 0]); // Processor local APIC, enabled
    }
    t.put(&[1, 12, 0, 0])
        .put(&(layout::IOAPIC_START as u32).to_le_bytes())
        .put(&0u32.to_le_bytes());
    t.put(&[4, 6, 0xff, 0, 0, 1]); // Local APIC NMI on LINT1 for all processors
    t.finish()
}

fn rsdp(xsdt_addr: u64) -> [u8; 36] {
    let mut r = [0u8; 36];
    r[0..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    r[15] = 2; // ACPI 2.0+
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt_addr.to_le_bytes());
    r[8] = checksum(&r[0..20]);
    r[32] = checksum(&r);
    r
}

fn align16(x: u64) -> u64 {
    (x + 15) & !15
}

/// Builds all tables as (guest address, bytes) pairs, RSDP first. `virtio` lists the
/// `(address, irq)` of virtio-mmio devices to describe in the DSDT (empty: none).
pub fn build_tables(vcpus: u8, virtio: &[(u64, u32)]) -> Vec<(u64, Vec<u8>)> {
    let rsdp_addr = layout::ACPI_RSDP_START;
    let xsdt_addr = align16(rsdp_addr + 36);
    // XSDT: header + two entries (FADT, MADT).
    let fadt_addr = align16(xsdt_addr + HEADER_LEN as u64 + 16);
    let dsdt_addr = align16(fadt_addr + FADT_LEN as u64);
    let dsdt = dsdt(virtio);
    let madt_addr = align16(dsdt_addr + dsdt.len() as u64);
    let mut xsdt = Sdt::new(b"XSDT", 1);
    xsdt.put(&fadt_addr.to_le_bytes()).put(&madt_addr.to_le_bytes());
    vec![
        (rsdp_addr, rsdp(xsdt_addr).to_vec()),
        (xsdt_addr, xsdt.finish()),
        (fadt_addr, fadt(dsdt_addr)),
        (dsdt_addr, dsdt),
        (madt_addr, madt(vcpus)),
    ]
}

/// Writes the tables into guest memory and returns the RSDP address.
pub fn write_tables(mem: &GuestMemory, vcpus: u8, virtio: &[(u64, u32)]) -> Result<u64, AcpiError> {
    for (addr, bytes) in build_tables(vcpus, virtio) {
        mem.write_slice(&bytes, GuestAddress(addr))
            .map_err(AcpiError::WriteMemory)?;
    }
    Ok(layout::ACPI_RSDP_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn every_table_checksums_to_zero_and_has_its_length() {
        let tables = build_tables(2, &[(0xd000_0000, 5), (0xd000_1000, 6)]);
        let sum = |b: &[u8]| b.iter().fold(0u8, |s, x| s.wrapping_add(*x));
        let (_, rsdp) = &tables[0];
        assert_eq!(sum(&rsdp[..20]), 0);
        assert_eq!(sum(rsdp), 0);
        for (_, t) in &tables[1..] {
            assert_eq!(sum(t), 0, "{}", String::from_utf8_lossy(&t[..4]));
            assert_eq!(u32_at(t, 4) as usize, t.len());
        }
    }

    #[test]
    fn tables_link_rsdp_to_fadt_dsdt_and_madt() {
        let tables = build_tables(3, &[]);
        let find = |addr: u64| {
            tables
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let xsdt = find(u64_at(&tables[0].1, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        let fadt = find(u64_at(&xsdt, 36));
        assert_eq!(&fadt[..4], b"FACP");
        assert_eq!(fadt.len(), FADT_LEN);
        assert_ne!(u32_at(&fadt, 112) & FADT_FLAG_HW_REDUCED_ACPI, 0);
        // Sleep control register: I/O space, 8 bits, at POWER_PORT.
        assert_eq!(&fadt[244..248], &[1, 8, 0, 1]);
        assert_eq!(u64_at(&fadt, 248), u64::from(layout::POWER_PORT));
        assert_eq!(fadt[128], layout::POWER_RESET_VALUE);
        let dsdt = find(u64_at(&fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert!(dsdt.windows(4).any(|w| w == b"_S5_"));
        let madt = find(u64_at(&xsdt, 44));
        assert_eq!(&madt[..4], b"APIC");
        // Walk the MADT structures: 3 local APICs with ids 0..3 and one IOAPIC.
        let (mut off, mut lapics, mut ioapics) = (44, vec![], 0);
        while off < madt.len() {
            match madt[off] {
                0 => lapics.push(madt[off + 3]),
                1 => {
                    ioapics += 1;
                    assert_eq!(u64::from(u32_at(&madt, off + 4)), layout::IOAPIC_START);
                }
                _ => {}
            }
            off += madt[off + 1] as usize;
        }
        assert_eq!(lapics, vec![0, 1, 2]);
        assert_eq!(ioapics, 1);
        assert!(tables.iter().all(|(a, t)| a + t.len() as u64 <= 0x10_0000));
    }

    #[test]
    fn pkg_len_counts_itself() {
        assert_eq!(pkg_len(7), vec![8]);
        assert_eq!(pkg_len(62), vec![63]);
        // 63 content bytes + 2 length bytes = 65 = 0x41: lead 0x41 (1 extra byte, low nibble 1), then 0x04.
        assert_eq!(pkg_len(63), vec![0x41, 0x04]);
        assert_eq!(pkg_len(1000), vec![0x4a, 0x3e]);
    }

    #[test]
    fn dsdt_describes_virtio_devices_for_acpi_discovery() {
        let d = dsdt(&[(0xd000_0000, 5), (0xd000_1000, 6)]);
        assert_eq!(d.iter().fold(0u8, |s, x| s.wrapping_add(*x)), 0);
        assert_eq!(d.windows(8).filter(|w| w == b"LNRO0005").count(), 2);
        // Device V001: Memory32Fixed at 0xd0001000, extended interrupt 6.
        let at = d.windows(4).position(|w| w == b"V001").unwrap();
        let dev = &d[at..];
        let mem = dev.windows(2).position(|w| w == [0x86, 0x09]).unwrap();
        assert_eq!(u32_at(dev, mem + 4), 0xd000_1000);
        assert_eq!(u32_at(dev, mem + 8), 0x1000);
        let irq = dev.windows(3).position(|w| w == [0x89, 0x06, 0x00]).unwrap();
        assert_eq!(u32_at(dev, irq + 5), 6);
        // The scope right after the _S5_ package: its PkgLength covers exactly the rest of the table.
        let scope = HEADER_LEN + 14;
        assert_eq!(d[scope], 0x10);
        let lead = d[scope + 1];
        let extra = usize::from(lead >> 6);
        let mut len = usize::from(lead & 0xf);
        for i in 0..extra {
            len |= usize::from(d[scope + 2 + i]) << (4 + 8 * i);
        }
        assert_eq!(scope + 1 + len, d.len());
        assert_eq!(&d[scope + 2 + extra..scope + 6 + extra], b"_SB_");
        assert!(dsdt(&[]).len() < d.len());
    }

    #[test]
    fn dsdt_describes_com1_with_its_port_and_irq() {
        let d = dsdt(&[]);
        let at = d.windows(4).position(|w| w == b"COM1").unwrap();
        let dev = &d[at..];
        // _HID EisaId("PNP0501")
        assert!(dev.windows(5).any(|w| w == [0x0c, 0x41, 0xd0, 0x05, 0x01]));
        let io = dev.windows(2).position(|w| w == [0x47, 0x01]).unwrap();
        assert_eq!(&dev[io + 2..io + 8], &[0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
        let irq = dev.windows(3).position(|w| w == [0x89, 0x06, 0x00]).unwrap();
        assert_eq!(u32_at(dev, irq + 5), layout::SERIAL_IRQ);
    }
}
