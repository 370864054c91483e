//! The Linux `boot_params` zero page: e820 map, command line, initrd, ACPI RSDP and framebuffer.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{Bytes, GuestAddress};

use crate::boot::loader::{LoadedInitrd, LoadedKernel};
use crate::layout;
use crate::memory::{ram_ranges, GuestMemory};

/// Errors while writing the zero page.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("Too many e820 entries")]
    TooManyE820Entries,
    #[error("Failed to write boot_params to guest memory")]
    WriteMemory(#[source] vm_memory::GuestMemoryError),
}

const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
/// Boot protocol 2.15: new enough for `acpi_rsdp_addr` to be honoured.
const BOOT_PROTOCOL_VERSION: u16 = 0x020f;
const VIDEO_TYPE_VLFB: u8 = 0x23;
const VIDEO_CAPABILITY_64BIT_BASE: u32 = 1 << 1;

/// A linear framebuffer as the guest sees it.
#[derive(Debug, Clone, Copy)]
pub struct FbInfo {
    pub base: u64,
    pub width: u32,
    pub height: u32,
}

/// e820 RAM entries: low memory up to the EBDA, then RAM from 1 MiB, then RAM above 4 GiB.
pub fn e820_entries(mem_size: u64) -> Vec<(u64, u64)> {
    let mut v = vec![(0, layout::EBDA_START)];
    for (start, size) in ram_ranges(mem_size) {
        let start = start.max(layout::HIMEM_START);
        let end = if start >= layout::MMIO_HOLE_END {
            start + size
        } else {
            size.min(layout::MMIO_HOLE_START)
        };
        if end > start {
            v.push((start, end - start));
        }
    }
    v
}

fn fill_screen_info(params: &mut boot_params, fb: FbInfo) {
    let si = &mut params.screen_info;
    let bytes = u64::from(fb.width) * u64::from(fb.height) * 4;
    si.orig_video_isVGA = VIDEO_TYPE_VLFB;
    si.lfb_base = fb.base as u32;
    si.ext_lfb_base = (fb.base >> 32) as u32;
    if fb.base >> 32 != 0 {
        si.capabilities |= VIDEO_CAPABILITY_64BIT_BASE;
    }
    si.lfb_width = fb.width as u16;
    si.lfb_height = fb.height as u16;
    si.lfb_depth = 32;
    si.lfb_linelength = (fb.width * 4) as u16;
    si.lfb_size = bytes.div_ceil(0x1_0000) as u32;
    si.red_size = 8;
    si.red_pos = 16;
    si.green_size = 8;
    si.green_pos = 8;
    si.blue_size = 8;
    si.blue_pos = 0;
    si.rsvd_size = 8;
    si.rsvd_pos = 24;
}

/// Everything the zero page describes.
pub struct BootInfo<'a> {
    pub mem_size: u64,
    pub kernel: &'a LoadedKernel,
    pub initrd: Option<LoadedInitrd>,
    pub cmdline_len: usize,
    pub rsdp_addr: u64,
    pub fb: Option<FbInfo>,
}

/// Builds the zero page.
pub fn build(info: &BootInfo<'_>) -> Result<boot_params, ParamsError> {
    let hdr = info.kernel.setup_header.unwrap_or(setup_header {
        version: BOOT_PROTOCOL_VERSION,
        kernel_alignment: KERNEL_MIN_ALIGNMENT_BYTES,
        ..Default::default()
    });
    let mut params = boot_params {
        hdr,
        ..Default::default()
    };
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    params.hdr.cmdline_size = info.cmdline_len as u32;
    if let Some(initrd) = info.initrd {
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    params.acpi_rsdp_addr = info.rsdp_addr;
    let entries = e820_entries(info.mem_size);
    if entries.len() > params.e820_table.len() {
        return Err(ParamsError::TooManyE820Entries);
    }
    for (i, (addr, size)) in entries.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: E820_RAM,
        };
    }
    params.e820_entries = entries.len() as u8;
    if let Some(fb) = info.fb {
        fill_screen_info(&mut params, fb);
    }
    Ok(params)
}

/// Writes the zero page at `ZERO_PAGE_START`.
pub fn write(mem: &GuestMemory, info: &BootInfo<'_>) -> Result<(), ParamsError> {
    let params = build(info)?;
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE_START))
        .map_err(ParamsError::WriteMemory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_splits_ram_around_the_mmio_hole() {
        assert_eq!(
            e820_entries(128 << 20),
            vec![(0, layout::EBDA_START), (0x10_0000, (128 << 20) - 0x10_0000)]
        );
        let big = e820_entries(4096 << 20);
        assert_eq!(big[1], (0x10_0000, layout::MMIO_HOLE_START - 0x10_0000));
        assert_eq!(
            big[2],
            (layout::MMIO_HOLE_END, (4096u64 << 20) - layout::MMIO_HOLE_START)
        );
        let total: u64 = ram_ranges(4096 << 20).iter().map(|r| r.1).sum();
        assert_eq!(total, 4096 << 20);
    }

    #[test]
    fn zero_page_describes_framebuffer_cmdline_and_rsdp() {
        let kernel = LoadedKernel {
            entry: 0x100000,
            setup_header: None,
        };
        let info = BootInfo {
            mem_size: 256 << 20,
            kernel: &kernel,
            initrd: Some(LoadedInitrd {
                addr: 0x800_0000,
                size: 1234,
            }),
            cmdline_len: 42,
            rsdp_addr: layout::ACPI_RSDP_START,
            fb: Some(FbInfo {
                base: layout::FRAMEBUFFER_START,
                width: 1024,
                height: 768,
            }),
        };
        let p = build(&info).unwrap();
        let (isvga, base, line, size) = (
            p.screen_info.orig_video_isVGA,
            p.screen_info.lfb_base,
            p.screen_info.lfb_linelength,
            p.screen_info.lfb_size,
        );
        assert_eq!((isvga, base, line, size), (0x23, 0xe000_0000, 4096, 48));
        let (ptr, len, rd, ver) = (
            p.hdr.cmd_line_ptr,
            p.hdr.cmdline_size,
            p.hdr.ramdisk_size,
            p.hdr.version,
        );
        assert_eq!((ptr, len, rd), (layout::CMDLINE_START as u32, 42, 1234));
        assert!(ver >= 0x020e);
        let rsdp = p.acpi_rsdp_addr;
        assert_eq!(rsdp, layout::ACPI_RSDP_START);
        assert_eq!(p.e820_entries, 2);
    }
}
