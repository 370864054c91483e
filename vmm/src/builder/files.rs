//! The host files a VM reads: kernel, initrd, disk images and the entropy source. They are opened once,
//! before the first boot, and every boot reads them through the same descriptors (seek or
//! `pread`/`pwrite`), so an in-process guest reboot never goes back to the paths — which a jail may
//! hide (ARCHITECTURE.md, "The jail": everything is opened before privileges are dropped).

use std::fs::File;
use std::sync::Arc;

use super::BuildError;
use crate::boot::loader::BootImage;
use crate::config::VmConfig;
use crate::virtio::block::{self, BlockConfig};
use crate::virtio::rng;

/// Open host files, kept for the VMM's lifetime.
#[derive(Debug)]
pub struct HostFiles {
    kernel: BootImage,
    initrd: Option<BootImage>,
    /// One per configured disk, in config order.
    disks: Vec<(BlockConfig, Arc<File>)>,
    /// Present when the config asks for a virtio-rng device.
    entropy: Option<Arc<File>>,
}

impl HostFiles {
    /// Opens every file `cfg` names, in the order the devices are built.
    pub fn open(cfg: &VmConfig) -> Result<HostFiles, BuildError> {
        let kernel = BootImage::open(&cfg.kernel).map_err(BuildError::Load)?;
        let initrd = match &cfg.initrd {
            Some(path) => Some(BootImage::open(path).map_err(BuildError::Load)?),
            None => None,
        };
        let mut disks = Vec::with_capacity(cfg.disks.len());
        for d in &cfg.disks {
            let bc = BlockConfig {
                path: d.path.clone(),
                read_only: d.read_only,
                serial: d.serial.clone(),
            };
            let file = block::open_image(&bc).map_err(|e| BuildError::Block(d.path.clone(), e))?;
            disks.push((bc, Arc::new(file)));
        }
        let entropy = if cfg.rng {
            Some(Arc::new(rng::open_source().map_err(BuildError::Rng)?))
        } else {
            None
        };
        Ok(HostFiles {
            kernel,
            initrd,
            disks,
            entropy,
        })
    }

    pub fn kernel(&self) -> &BootImage {
        &self.kernel
    }

    pub fn initrd(&self) -> Option<&BootImage> {
        self.initrd.as_ref()
    }

    /// Each disk's device config with its open image.
    pub fn disks(&self) -> &[(BlockConfig, Arc<File>)] {
        &self.disks
    }

    pub fn entropy(&self) -> Option<&Arc<File>> {
        self.entropy.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::block::{Block, BlockError};

    fn config(dir: &std::path::Path, disk: &std::path::Path) -> VmConfig {
        serde_json::from_value(serde_json::json!({
            "vm_id": "files-test",
            "vcpus": 1,
            "memory_mib": 16,
            "kernel": dir.join("kernel"),
            "disks": [{ "path": disk }],
            "run_dir": dir.join("run"),
            "rng": false,
        }))
        .unwrap()
    }

    #[test]
    fn every_boot_reuses_the_files_even_after_their_paths_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernel"), b"\x7fELF").unwrap();
        let disk = dir.path().join("disk");
        std::fs::write(&disk, vec![0u8; 1024]).unwrap();
        let files = HostFiles::open(&config(dir.path(), &disk)).unwrap();
        std::fs::remove_file(dir.path().join("kernel")).unwrap();
        std::fs::remove_file(&disk).unwrap();
        for _boot in 0..2 {
            let (bc, file) = &files.disks()[0];
            let block = Block::with_file(bc, file.clone()).unwrap();
            assert_eq!(block.capacity_sectors(), 2);
        }
        assert!(files.initrd().is_none());
        assert!(files.entropy().is_none(), "no rng configured, no source opened");
    }

    #[test]
    fn a_missing_disk_is_an_open_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernel"), b"\x7fELF").unwrap();
        let disk = dir.path().join("absent");
        let err = HostFiles::open(&config(dir.path(), &disk)).unwrap_err();
        assert!(
            matches!(&err, BuildError::Block(p, BlockError::OpenImage { .. }) if *p == disk),
            "{err:?}"
        );
    }
}
