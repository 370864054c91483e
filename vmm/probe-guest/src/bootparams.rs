//! Read-only view of the Linux `boot_params` zero page the VMM filled in.
//!
//! Offsets checked against Linux 6.1 arch/x86/include/uapi/asm/bootparam.h and
//! include/uapi/linux/screen_info.h.

use crate::cpu;

// struct boot_params
const ACPI_RSDP_ADDR: usize = 0x070; // u64
const EXT_CMD_LINE_PTR: usize = 0x0c8; // u32, high half of the command line address
const E820_ENTRIES: usize = 0x1e8; // u8
const CMD_LINE_PTR: usize = 0x228; // u32, hdr.cmd_line_ptr (hdr starts at 0x1f1)
const E820_TABLE: usize = 0x2d0; // struct boot_e820_entry[128]: u64 addr, u64 size, u32 type (packed)
const E820_ENTRY_SIZE: usize = 20;
const E820_MAX: usize = 128;
const E820_RAM: u32 = 1;

// struct screen_info (at offset 0 of boot_params)
const ORIG_VIDEO_IS_VGA: usize = 0x0f; // u8
const LFB_WIDTH: usize = 0x12; // u16
const LFB_HEIGHT: usize = 0x14; // u16
const LFB_DEPTH: usize = 0x16; // u16
const LFB_BASE: usize = 0x18; // u32
const LFB_LINELENGTH: usize = 0x24; // u16
const RED_SIZE: usize = 0x26; // u8 each: red size/pos, green size/pos, blue size/pos
const CAPABILITIES: usize = 0x36; // u32
const EXT_LFB_BASE: usize = 0x3a; // u32
const VIDEO_TYPE_VLFB: u8 = 0x23;
const VIDEO_TYPE_EFI: u8 = 0x70;
const VIDEO_CAPABILITY_64BIT_BASE: u32 = 1 << 1;

/// Longest command line the probe reads.
const CMDLINE_MAX: usize = vmm_api::layout::CMDLINE_MAX_SIZE;

/// A linear framebuffer described by screen_info.
#[derive(Clone, Copy)]
pub struct FbInfo {
    pub base: u64,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub stride: u32,
    /// (size, position) in bits of each colour channel.
    pub red: (u8, u8),
    pub green: (u8, u8),
    pub blue: (u8, u8),
}

impl FbInfo {
    pub fn size_bytes(&self) -> u64 {
        self.stride as u64 * self.height as u64
    }
}

pub struct BootParams {
    base: *const u8,
}

impl BootParams {
    /// # Safety
    /// `base` must point at a 4 KiB zero page in mapped memory that nobody writes while the probe runs.
    pub unsafe fn new(base: *const u8) -> Self {
        Self { base }
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: `new`'s contract; every offset used is a field inside the 4 KiB page.
        unsafe { core::ptr::read_unaligned(self.base.add(offset) as *const T) }
    }

    /// The NUL-terminated command line (empty if absent or unmappable).
    pub fn cmdline(&self) -> &'static [u8] {
        let addr =
            self.read::<u32>(CMD_LINE_PTR) as u64 | ((self.read::<u32>(EXT_CMD_LINE_PTR) as u64) << 32);
        if addr == 0 || !cpu::map_range(addr, CMDLINE_MAX as u64) {
            return &[];
        }
        let ptr = addr as *const u8;
        let mut len = 0;
        // SAFETY: the range is identity mapped and the VMM placed the command line there; it is never
        // written again while the probe runs.
        unsafe {
            while len < CMDLINE_MAX && ptr.add(len).read_volatile() != 0 {
                len += 1;
            }
            core::slice::from_raw_parts(ptr, len)
        }
    }

    /// (number of e820 entries, bytes of usable RAM).
    pub fn e820_summary(&self) -> (usize, u64) {
        let n = (self.read::<u8>(E820_ENTRIES) as usize).min(E820_MAX);
        let mut ram = 0u64;
        for i in 0..n {
            let at = E820_TABLE + i * E820_ENTRY_SIZE;
            if self.read::<u32>(at + 16) == E820_RAM {
                ram = ram.saturating_add(self.read::<u64>(at + 8));
            }
        }
        (n, ram)
    }

    pub fn acpi_rsdp(&self) -> u64 {
        self.read::<u64>(ACPI_RSDP_ADDR)
    }

    /// Whether the RSDP address really holds the "RSD PTR " signature.
    pub fn rsdp_signature_ok(&self) -> bool {
        let addr = self.acpi_rsdp();
        if addr == 0 || !cpu::map_range(addr, 8) {
            return false;
        }
        // SAFETY: mapped just above; the VMM put ACPI tables (ROM-like memory) there.
        let sig = unsafe { core::ptr::read_unaligned(addr as *const [u8; 8]) };
        &sig == b"RSD PTR "
    }

    /// The linear framebuffer, if screen_info describes a usable one (VLFB or EFI type, 16/24/32 bpp).
    pub fn framebuffer(&self) -> Option<FbInfo> {
        let kind = self.read::<u8>(ORIG_VIDEO_IS_VGA);
        if kind != VIDEO_TYPE_VLFB && kind != VIDEO_TYPE_EFI {
            return None;
        }
        let mut base = self.read::<u32>(LFB_BASE) as u64;
        if self.read::<u32>(CAPABILITIES) & VIDEO_CAPABILITY_64BIT_BASE != 0 {
            base |= (self.read::<u32>(EXT_LFB_BASE) as u64) << 32;
        }
        let width = self.read::<u16>(LFB_WIDTH) as u32;
        let height = self.read::<u16>(LFB_HEIGHT) as u32;
        let depth = self.read::<u16>(LFB_DEPTH) as u32;
        let stride = self.read::<u16>(LFB_LINELENGTH) as u32;
        let bytes = depth.div_ceil(8);
        if base == 0 || width == 0 || height == 0 || !(2..=4).contains(&bytes) || stride < width * bytes {
            return None;
        }
        let c: [u8; 6] = self.read(RED_SIZE);
        let (red, green, blue) = if c[0] == 0 && c[2] == 0 && c[4] == 0 {
            // Colour layout not filled in: assume the usual one for the depth.
            if bytes == 2 {
                ((5, 11), (6, 5), (5, 0))
            } else {
                ((8, 16), (8, 8), (8, 0))
            }
        } else {
            ((c[0], c[1]), (c[2], c[3]), (c[4], c[5]))
        };
        Some(FbInfo {
            base,
            width,
            height,
            depth,
            stride,
            red,
            green,
            blue,
        })
    }
}
