//! The guest physical memory map and the fixed addresses, ports and IRQs of the platform.
//!
//! This is the contract between the VMM, the Linux boot path and the in-repo probe guest
//! (`vmm/probe-guest`): change it in one place only. Only constants: the module builds `no_std`
//! (`default-features = false`) so the freestanding probe guest can use it too.

/// Real-mode interrupt vector table and BIOS data area end; the zero page must not overlap it.
pub const EBDA_START: u64 = 0x9fc00;
/// GDT used for 64-bit entry.
pub const BOOT_GDT_START: u64 = 0x500;
/// IDT (empty) used for 64-bit entry.
pub const BOOT_IDT_START: u64 = 0x520;
/// Linux `boot_params` ("zero page"); RSI points here at entry.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapped page tables for 64-bit entry: PML4, PDPT, then four PDs at `PDE_START..PDE_START +
/// 0x4000` (2 MiB pages covering the first 4 GiB, so RAM, virtio-mmio and the framebuffer are reachable).
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX_SIZE: usize = 4096;
/// ACPI tables live in the legacy BIOS area so that a scan also finds the RSDP.
pub const ACPI_RSDP_START: u64 = 0xe0000;
/// Where a kernel (bzImage protected-mode part, vmlinux ELF or the probe guest ELF) is loaded.
pub const HIMEM_START: u64 = 0x10_0000;

/// The 32-bit MMIO hole: no RAM between these addresses.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// virtio-mmio devices: device `i` at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`, IRQ `VIRTIO_IRQ_BASE + i`.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
pub const VIRTIO_IRQ_BASE: u32 = 5;
pub const VIRTIO_MAX_DEVICES: u32 = 16;
/// Linear framebuffer memslot, described to the guest through `boot_params.screen_info`.
pub const FRAMEBUFFER_START: u64 = 0xe000_0000;
pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const APIC_START: u64 = 0xfee0_0000;

/// 8250 UART (COM1) and its IRQ.
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
pub const SERIAL_PORT_SIZE: u16 = 8;
pub const SERIAL_IRQ: u32 = 4;
/// i8042 keyboard controller: data and command/status ports. Writing 0xfe to the command port resets.
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;
pub const I8042_IRQ: u32 = 1;
/// Platform power device (ACPI hardware-reduced sleep control and reset registers, described by the FADT).
/// Byte writes: `(SLP_TYP << 2) | SLP_EN` with SLP_TYP = 5 (S5) powers off, `POWER_RESET_VALUE` resets.
pub const POWER_PORT: u16 = 0x600;
pub const POWER_SLP_TYP_S5: u8 = 5;
pub const POWER_SLP_EN: u8 = 1 << 5;
pub const POWER_RESET_VALUE: u8 = 0x01;
/// Boot-progress marker port: a guest writes a byte here and the VMM timestamps it (1 = first instruction,
/// 2 = banner printed). Used by the start-up benchmark.
pub const BOOT_MARKER_PORT: u16 = 0x601;
/// POST-code port: writes are ignored (Linux uses it for I/O delays); the probe guest's exit benchmark
/// loops on it.
pub const POST_CODE_PORT: u16 = 0x80;
