//! The host files a VM reads: kernel, initrd, disk images, the entropy source and the network cards' TAPs. They are opened once,
//! before the first boot, and every boot reads them through the same descriptors (seek or
//! `pread`/`pwrite`), so an in-process guest reboot never goes back to the paths — which a jail may
//! hide (ARCHITECTURE.md, "The jail": everything is opened before privileges are dropped).

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use super::BuildError;
use crate::boot::loader::BootImage;
use crate::config::VmConfig;
use crate::virtio::block::{self, BlockConfig};
use crate::virtio::block_counters::BlockCounters;
use crate::virtio::net::{NetCounters, Tap};
use crate::virtio::rng;
use vmm_api::config::NicConfig;

/// A network card's TAP and counters, kept across boots.
#[derive(Debug, Clone)]
pub struct HostNic {
    pub config: NicConfig,
    pub tap: Arc<Tap>,
    pub counters: Arc<NetCounters>,
}

/// Open host files, kept for the VMM's lifetime.
#[derive(Debug)]
pub struct HostFiles {
    kernel: BootImage,
    initrd: Option<BootImage>,
    /// One per configured disk, in config order.
    disks: Vec<(BlockConfig, Arc<File>)>,
    /// Each disk's I/O counters, in config order (kept across reboots like the open images).
    disk_counters: Vec<Arc<BlockCounters>>,
    /// Present when the config asks for a virtio-rng device.
    entropy: Option<Arc<File>>,
    /// One per configured network card, in config order.
    nics: Vec<HostNic>,
}

impl HostFiles {
    /// Opens every file `cfg` names, in the order the devices are built, and takes over the TAPs
    /// [`claim_inherited_taps`] claimed (one per configured card, in order).
    pub fn open(cfg: &VmConfig, taps: Vec<OwnedFd>) -> Result<HostFiles, BuildError> {
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
        if taps.len() != cfg.nics.len() {
            return Err(BuildError::TapCount {
                nics: cfg.nics.len(),
                taps: taps.len(),
            });
        }
        let mut nics = Vec::with_capacity(cfg.nics.len());
        for (nic, fd) in cfg.nics.iter().zip(taps) {
            let tap = Tap::from_inherited(fd).map_err(|e| BuildError::Tap(nic.tap_fd, e))?;
            nics.push(HostNic {
                config: *nic,
                counters: Arc::new(NetCounters::new(nic.mac, tap.name())),
                tap: Arc::new(tap),
            });
        }
        let disk_counters = disks
            .iter()
            .map(|(bc, _)| Arc::new(BlockCounters::new(&bc.serial)))
            .collect();
        Ok(HostFiles {
            kernel,
            initrd,
            disks,
            disk_counters,
            entropy,
            nics,
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

    /// Each disk's I/O counters, in the order of [`HostFiles::disks`].
    pub fn disk_counters(&self) -> &[Arc<BlockCounters>] {
        &self.disk_counters
    }

    pub fn entropy(&self) -> Option<&Arc<File>> {
        self.entropy.as_ref()
    }

    pub fn nics(&self) -> &[HostNic] {
        &self.nics
    }
}

/// Takes ownership of the TAP descriptors the config names (`nics[].tap_fd`), checking each is open.
///
/// Call it first thing in `main`, before the process opens anything: a number the spawner did not pass
/// could otherwise already be a file the VMM opened itself.
pub fn claim_inherited_taps(cfg: &VmConfig) -> Result<Vec<OwnedFd>, BuildError> {
    cfg.nics
        .iter()
        .map(|nic| {
            // SAFETY: F_GETFD only reads the descriptor's flags; any number is fine to ask about.
            if unsafe { libc::fcntl(nic.tap_fd, libc::F_GETFD) } < 0 {
                return Err(BuildError::TapNotInherited(nic.tap_fd));
            }
            // SAFETY: the descriptor is open and, as nothing has been opened by this process yet, it
            // is one the spawner passed; validation made the numbers unique, so each is owned once.
            Ok(unsafe { OwnedFd::from_raw_fd(nic.tap_fd) })
        })
        .collect()
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
        let files = HostFiles::open(&config(dir.path(), &disk), Vec::new()).unwrap();
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
        let err = HostFiles::open(&config(dir.path(), &disk), Vec::new()).unwrap_err();
        assert!(
            matches!(&err, BuildError::Block(p, BlockError::OpenImage { .. }) if *p == disk),
            "{err:?}"
        );
    }
}
