//! Loads the kernel (ELF vmlinux / probe guest, or bzImage), the initrd and the command line.
//!
//! Kernel and initrd are [`BootImage`]s: opened once when the VMM starts and read again from the same
//! descriptor at every boot, so a guest reboot does not depend on the paths (a jail may hide them).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Address, Bytes, GuestAddress};

use crate::layout;
use crate::memory::GuestMemory;

/// Errors while loading boot images.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("Failed to open {0}")]
    Open(std::path::PathBuf, #[source] std::io::Error),
    #[error("Failed to rewind {0}")]
    Rewind(PathBuf, #[source] std::io::Error),
    #[error("Failed to read the size of {0}")]
    Size(PathBuf, #[source] std::io::Error),
    #[error("Failed to read the kernel image header")]
    ReadHeader(#[source] std::io::Error),
    #[error("Failed to load the ELF kernel")]
    LoadElf(#[source] linux_loader::loader::Error),
    #[error("Failed to load the bzImage kernel")]
    LoadBzImage(#[source] linux_loader::loader::Error),
    #[error("The initrd ({0} bytes) does not fit in guest RAM below the kernel's limit")]
    InitrdTooLarge(u64),
    #[error("Failed to read the initrd into guest memory")]
    ReadInitrd(#[source] vm_memory::GuestMemoryError),
    #[error("Invalid kernel command line")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    #[error("Failed to write the command line to guest memory")]
    WriteCmdline(#[source] linux_loader::loader::Error),
}

/// Where the loaded kernel starts executing.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    /// 64-bit entry point (ELF entry, or bzImage `startup_64`).
    pub entry: u64,
    /// Setup header from a bzImage; `None` for ELF.
    pub setup_header: Option<setup_header>,
}

/// Guest address and size of a loaded initrd.
#[derive(Debug, Clone, Copy)]
pub struct LoadedInitrd {
    pub addr: u64,
    pub size: u64,
}

/// A kernel or initrd image, open for reading for as long as the VMM runs.
#[derive(Debug)]
pub struct BootImage {
    path: PathBuf,
    file: File,
}

impl BootImage {
    pub fn open(path: &Path) -> Result<BootImage, LoaderError> {
        let file = File::open(path).map_err(|e| LoaderError::Open(path.into(), e))?;
        Ok(BootImage {
            path: path.into(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file positioned at its start (an earlier boot left it wherever its load ended).
    fn rewound(&self) -> Result<&File, LoaderError> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| LoaderError::Rewind(self.path.clone(), e))?;
        Ok(file)
    }
}

/// Loads an ELF or a bzImage (detected by the ELF magic) at `HIMEM_START`.
pub fn load_kernel(mem: &GuestMemory, image: &BootImage) -> Result<LoadedKernel, LoaderError> {
    let mut file = image.rewound()?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(LoaderError::ReadHeader)?;
    let himem = Some(GuestAddress(layout::HIMEM_START));
    if &magic == b"\x7fELF" {
        let r = Elf::load(mem, None, &mut file, himem).map_err(LoaderError::LoadElf)?;
        Ok(LoadedKernel {
            entry: r.kernel_load.raw_value(),
            setup_header: None,
        })
    } else {
        let r = BzImage::load(mem, None, &mut file, himem).map_err(LoaderError::LoadBzImage)?;
        // The 64-bit entry point sits 0x200 bytes into the protected-mode kernel.
        Ok(LoadedKernel {
            entry: r.kernel_load.raw_value() + 0x200,
            setup_header: r.setup_header,
        })
    }
}

/// Highest address (exclusive) usable for the initrd: top of RAM below the MMIO hole, capped by the
/// kernel's `initrd_addr_max` when it has a setup header.
pub fn initrd_limit(mem_size: u64, header: Option<&setup_header>) -> u64 {
    let low_end = mem_size.min(layout::MMIO_HOLE_START);
    let kernel_max = header
        .map(|h| u64::from(h.initrd_addr_max))
        .filter(|m| *m != 0)
        .unwrap_or(0x37ff_ffff);
    low_end.min(kernel_max + 1)
}

/// Loads the initrd page-aligned as high as possible below `limit`.
pub fn load_initrd(mem: &GuestMemory, image: &BootImage, limit: u64) -> Result<LoadedInitrd, LoaderError> {
    let mut file = image.rewound()?;
    let size = file
        .metadata()
        .map_err(|e| LoaderError::Size(image.path.clone(), e))?
        .len();
    let addr = limit
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= layout::HIMEM_START * 16);
    let addr = addr.ok_or(LoaderError::InitrdTooLarge(size))?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
        .map_err(LoaderError::ReadInitrd)?;
    Ok(LoadedInitrd { addr, size })
}

/// Builds the command line: the caller's text plus one `virtio_mmio.device=` entry per device (and
/// `console=ttyS0` when asked).
pub fn build_cmdline(
    base: &str,
    serial_console: bool,
    virtio: &[(u64, u32)],
) -> Result<Cmdline, LoaderError> {
    let mut cmdline = Cmdline::try_from(base, layout::CMDLINE_MAX_SIZE).map_err(LoaderError::Cmdline)?;
    if serial_console {
        cmdline
            .insert_str("console=ttyS0")
            .map_err(LoaderError::Cmdline)?;
    }
    for (addr, irq) in virtio {
        cmdline
            .add_virtio_mmio_device(layout::VIRTIO_MMIO_SIZE, GuestAddress(*addr), *irq, None)
            .map_err(LoaderError::Cmdline)?;
    }
    Ok(cmdline)
}

/// Writes the command line at `CMDLINE_START`; returns its length without the NUL.
pub fn write_cmdline(mem: &GuestMemory, cmdline: &Cmdline) -> Result<usize, LoaderError> {
    linux_loader::loader::load_cmdline(mem, GuestAddress(layout::CMDLINE_START), cmdline)
        .map_err(LoaderError::WriteCmdline)?;
    let len = cmdline
        .as_cstring()
        .map_err(LoaderError::Cmdline)?
        .as_bytes()
        .len();
    let _ = mem.write_obj(0u8, GuestAddress(layout::CMDLINE_START + len as u64));
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_gets_virtio_entries_and_optional_console() {
        let c = build_cmdline("quiet -- init_arg", true, &[(0xd000_0000, 5), (0xd000_1000, 6)]).unwrap();
        let s = c.as_cstring().unwrap().into_string().unwrap();
        assert!(
            s.starts_with("quiet console=ttyS0 virtio_mmio.device=4K@0xd0000000:5"),
            "{s}"
        );
        assert!(s.contains("virtio_mmio.device=4K@0xd0001000:6"));
        assert!(s.ends_with("-- init_arg"));
        let c = build_cmdline("", false, &[]).unwrap();
        assert_eq!(c.as_cstring().unwrap().as_bytes(), b"");
    }

    #[test]
    fn initrd_goes_below_hole_and_kernel_limit() {
        assert_eq!(initrd_limit(256 << 20, None), 256 << 20);
        assert_eq!(initrd_limit(4096 << 20, None), 0x3800_0000);
        let h = setup_header {
            initrd_addr_max: 0x7fff_ffff,
            ..Default::default()
        };
        assert_eq!(initrd_limit(8192 << 20, Some(&h)), 0x8000_0000);
    }

    #[test]
    fn initrd_is_loaded_page_aligned_at_the_top() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("initrd");
        std::fs::write(&p, vec![7u8; 5000]).unwrap();
        let r = load_initrd(&mem, &BootImage::open(&p).unwrap(), 64 << 20).unwrap();
        assert_eq!(r.addr % 4096, 0);
        assert!(r.addr + r.size <= 64 << 20);
        let b: u8 = mem.read_obj(GuestAddress(r.addr + 4999)).unwrap();
        assert_eq!(b, 7);
    }

    #[test]
    fn images_load_again_from_the_open_file_after_the_path_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("initrd");
        std::fs::write(&p, b"first boot and every reboot").unwrap();
        let image = BootImage::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        for boot in 0..2 {
            let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
            let r = load_initrd(&mem, &image, 64 << 20).unwrap();
            let mut got = vec![0u8; r.size as usize];
            mem.read_slice(&mut got, GuestAddress(r.addr)).unwrap();
            assert_eq!(got, b"first boot and every reboot", "boot {boot}");
        }
    }
}
