//! The guest's linear framebuffer: its own memslot with dirty-page logging, readable from any thread.
//!
//! Pixels are 32-bit little-endian XRGB (bytes B, G, R, X), `width * 4` bytes per row, as described to
//! the guest in `boot_params.screen_info`. `dirty_rows` asks KVM which pages the guest wrote since the
//! previous call, so a viewer (the RFB server) only re-encodes what changed. A `Framebuffer` belongs
//! to one boot: after a guest reboot, fetch the new one.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES;
use kvm_ioctls::VmFd;
use vm_memory::{MmapRegion, VolatileMemory};

use crate::lock;
use crate::vstate::vm::{Vm, VmError};

const PAGE_SIZE: usize = 4096;

/// Errors of the framebuffer.
#[derive(Debug, thiserror::Error)]
pub enum FramebufferError {
    #[error("Failed to allocate the framebuffer memory")]
    Allocate(#[source] vm_memory::mmap::MmapRegionError),
    #[error("Failed to register the framebuffer memslot")]
    Register(#[source] VmError),
    #[error("Failed to read the dirty log")]
    DirtyLog(#[source] kvm_ioctls::Error),
    #[error("Failed to read framebuffer memory")]
    Read(#[source] vm_memory::VolatileMemoryError),
    #[error("Failed to write the screen dump")]
    WriteDump(#[source] std::io::Error),
}

pub struct Framebuffer {
    vm: Arc<VmFd>,
    slot: u32,
    mem: MmapRegion<()>,
    width: u32,
    height: u32,
    guest_addr: u64,
    /// Serialises KVM_GET_DIRTY_LOG callers (the log is reset by each read).
    dirty_lock: Mutex<()>,
}

impl Framebuffer {
    /// Allocates the pixels and maps them into `vm` at `guest_addr`, in a memslot of their own with
    /// dirty-page logging.
    pub fn new(vm: &mut Vm, guest_addr: u64, width: u32, height: u32) -> Result<Arc<Self>, FramebufferError> {
        let bytes = (width as usize * height as usize * 4).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mem = MmapRegion::<()>::new(bytes).map_err(FramebufferError::Allocate)?;
        // SAFETY: `mem` lives in the returned Framebuffer, which holds the VmFd alive too, so the
        // mapping outlives every use of the slot by this VM.
        let slot = unsafe {
            vm.register_region(
                guest_addr,
                bytes as u64,
                mem.as_ptr() as u64,
                KVM_MEM_LOG_DIRTY_PAGES,
            )
        }
        .map_err(FramebufferError::Register)?;
        Ok(Arc::new(Framebuffer {
            vm: vm.fd.clone(),
            slot,
            mem,
            width,
            height,
            guest_addr,
            dirty_lock: Mutex::new(()),
        }))
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * 4
    }

    pub fn guest_addr(&self) -> u64 {
        self.guest_addr
    }

    /// Copies rows `y0..y1` (XRGB little-endian, `stride()` bytes each).
    pub fn read_rows(&self, y0: u32, y1: u32) -> Result<Vec<u8>, FramebufferError> {
        let y1 = y1.min(self.height);
        let y0 = y0.min(y1);
        let mut out = vec![0u8; (y1 - y0) as usize * self.stride()];
        let slice = self
            .mem
            .get_slice(y0 as usize * self.stride(), out.len())
            .map_err(FramebufferError::Read)?;
        slice.copy_to(&mut out[..]);
        Ok(out)
    }

    /// The whole screen.
    pub fn snapshot(&self) -> Result<Vec<u8>, FramebufferError> {
        self.read_rows(0, self.height)
    }

    /// Which rows the guest wrote since the previous call (one flag per row).
    pub fn dirty_rows(&self) -> Result<Vec<bool>, FramebufferError> {
        let _guard = lock(&self.dirty_lock);
        let bitmap = self
            .vm
            .get_dirty_log(self.slot, self.mem.size())
            .map_err(FramebufferError::DirtyLog)?;
        Ok(rows_from_dirty_pages(&bitmap, self.stride(), self.height))
    }

    /// Bytes of the framebuffer mapping that are resident in host memory.
    pub fn resident_bytes(&self) -> u64 {
        crate::stats::resident_bytes(self.mem.as_ptr(), self.mem.size())
    }

    /// Writes the screen as a binary PPM (P6).
    pub fn write_ppm(&self, path: &Path) -> Result<(), FramebufferError> {
        let pixels = self.snapshot()?;
        let mut out = Vec::with_capacity(pixels.len() / 4 * 3 + 32);
        write!(out, "P6\n{} {}\n255\n", self.width, self.height).map_err(FramebufferError::WriteDump)?;
        for px in pixels.chunks_exact(4) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        std::fs::write(path, out).map_err(FramebufferError::WriteDump)
    }
}

/// Maps a KVM dirty-page bitmap to per-row flags.
pub fn rows_from_dirty_pages(bitmap: &[u64], stride: usize, height: u32) -> Vec<bool> {
    let mut rows = vec![false; height as usize];
    for (w, word) in bitmap.iter().enumerate() {
        let mut bits = *word;
        while bits != 0 {
            let page = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let first = page * PAGE_SIZE / stride;
            let last = ((page + 1) * PAGE_SIZE - 1) / stride;
            for r in rows.iter_mut().take(last + 1).skip(first) {
                *r = true;
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framebuffer_can_be_shared_with_other_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Framebuffer>();
    }

    #[test]
    fn dirty_pages_map_to_the_rows_they_cover() {
        // 1024 px wide: one 4 KiB page per row. Page 3 and page 64 dirty.
        let rows = rows_from_dirty_pages(&[1 << 3, 1], 4096, 100);
        let dirty: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, d)| **d)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(dirty, vec![3, 64]);
        // 640 px wide (2560-byte rows): page 1 covers bytes 4096..8191 = rows 1..=3.
        let rows = rows_from_dirty_pages(&[1 << 1], 2560, 10);
        assert_eq!(rows.iter().filter(|d| **d).count(), 3);
        assert!(rows[1] && rows[3] && !rows[0] && !rows[4]);
        // Pages beyond the last row are ignored.
        assert!(rows_from_dirty_pages(&[1 << 63], 4096, 2).iter().all(|d| !d));
    }
}
