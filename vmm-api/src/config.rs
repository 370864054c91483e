//! The VM configuration the server hands to one `vmm` process (JSON), its validation and its limits.
//!
//! `VmConfig::parse` is the only way in: after it returns, the VMM's builder can trust every field. The
//! portal builds the same struct and shows the same limits (`MIN_*`/`MAX_*`) in its catalogue.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::run_dir::RunDir;
use crate::{cpuid, layout};

/// Smallest and largest accepted values.
pub const MIN_VCPUS: u8 = 1;
pub const MAX_VCPUS: u8 = 4;
pub const MIN_MEMORY_MIB: u64 = 64;
pub const MAX_MEMORY_MIB: u64 = 8192;
/// Framebuffer limits (pixels); the memslot must fit between FRAMEBUFFER_START and the IOAPIC.
pub const MAX_FB_WIDTH: u32 = 2560;
pub const MAX_FB_HEIGHT: u32 = 1600;

/// Errors found while reading or checking a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Failed to read config file {0}")]
    ReadFile(PathBuf, #[source] std::io::Error),
    #[error("Invalid config JSON")]
    Parse(#[source] serde_json::Error),
    #[error("Invalid config: {0}")]
    Invalid(String),
}

/// One virtio block disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// Reported by VIRTIO_BLK_T_GET_ID (at most 20 bytes).
    #[serde(default)]
    pub serial: String,
}

/// Linear framebuffer size in pixels (32 bits per pixel).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FramebufferConfig {
    pub width: u32,
    pub height: u32,
}

/// Everything needed to run one VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Identifier used in logs (the `vm_id` span field).
    pub vm_id: String,
    pub vcpus: u8,
    pub memory_mib: u64,
    /// bzImage or ELF vmlinux (or the probe guest ELF).
    pub kernel: PathBuf,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line; the VMM appends `virtio_mmio.device=` entries (and `console=ttyS0` if
    /// `serial_console` is set).
    #[serde(default)]
    pub cmdline: String,
    #[serde(default)]
    pub serial_console: bool,
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    #[serde(default)]
    pub framebuffer: Option<FramebufferConfig>,
    /// The VM's run directory (`run_dir::RunDir`: the sockets, created if missing).
    pub run_dir: PathBuf,
    /// Optional file mirroring all serial output.
    #[serde(default)]
    pub console_log: Option<PathBuf>,
    /// CPUID feature bits to hide from the guest, in Linux `clearcpuid=` numbering (word * 32 + bit,
    /// words as in arch/x86/include/asm/cpufeatures.h: 0 = 1.EDX, 1 = 0x80000001.EDX, 4 = 1.ECX,
    /// 6 = 0x80000001.ECX, 9 = 7.0.EBX, 16 = 7.0.ECX, 18 = 7.0.EDX).
    ///
    /// The server sets this only on hosts where KVM emulates guest instructions in software
    /// (kvm_pvm, see FACTS.md), whose emulator fails on instructions such as SSE4/AES/XSAVE that
    /// KVM_GET_SUPPORTED_CPUID still advertises. Hardware KVM needs no mask.
    #[serde(default)]
    pub cpuid_mask: Vec<u32>,
    /// Add a virtio-rng device (default true).
    #[serde(default = "default_true")]
    pub rng: bool,
    /// How the guest finds the virtio-mmio devices: `cmdline` (default: `virtio_mmio.device=` entries,
    /// needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, used by the probe guest), `acpi` (`LNRO0005` devices in
    /// the DSDT, for kernels such as Debian's that lack the command-line option) or `both`.
    #[serde(default)]
    pub virtio_discovery: VirtioDiscovery,
}

/// Where virtio-mmio devices are announced to the guest.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VirtioDiscovery {
    #[default]
    Cmdline,
    Acpi,
    Both,
}

impl VirtioDiscovery {
    pub fn cmdline(self) -> bool {
        matches!(self, Self::Cmdline | Self::Both)
    }

    pub fn acpi(self) -> bool {
        matches!(self, Self::Acpi | Self::Both)
    }
}

fn default_true() -> bool {
    true
}

impl VmConfig {
    /// Parses and validates a JSON config.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let cfg: VmConfig = serde_json::from_str(json).map_err(ConfigError::Parse)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a JSON config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile(path.into(), e))?;
        Self::parse(&text)
    }

    /// Checks ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.vm_id.is_empty() || self.vm_id.len() > 64 {
            return bad("vm_id must be 1..=64 characters".into());
        }
        if !(MIN_VCPUS..=MAX_VCPUS).contains(&self.vcpus) {
            return bad(format!("vcpus must be {MIN_VCPUS}..={MAX_VCPUS}"));
        }
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return bad(format!("memory_mib must be {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB}"));
        }
        if self.kernel.as_os_str().is_empty() {
            return bad("kernel path is empty".into());
        }
        if self.run_dir.as_os_str().is_empty() {
            return bad("run_dir is empty".into());
        }
        // Every disk, rng and up to two input devices need a virtio-mmio slot.
        let devices = self.disks.len() + usize::from(self.rng) + 2;
        if devices > layout::VIRTIO_MAX_DEVICES as usize {
            return bad(format!("too many devices ({devices})"));
        }
        for d in &self.disks {
            if d.serial.len() > 20 {
                return bad("disk serial longer than 20 bytes".into());
            }
            if d.path.as_os_str().is_empty() {
                return bad("disk path is empty".into());
            }
        }
        if let Some(fb) = self.framebuffer {
            if !(64..=MAX_FB_WIDTH).contains(&fb.width) || !(64..=MAX_FB_HEIGHT).contains(&fb.height) {
                return bad(format!(
                    "framebuffer must be 64..={MAX_FB_WIDTH} x 64..={MAX_FB_HEIGHT}"
                ));
            }
        }
        if self.cmdline.len() > layout::CMDLINE_MAX_SIZE / 2 {
            return bad("cmdline too long".into());
        }
        if let Some(bit) = self
            .cpuid_mask
            .iter()
            .find(|b| cpuid::linux_feature_bit(**b).is_none())
        {
            return bad(format!("cpuid_mask bit {bit} is not in a supported CPUID word"));
        }
        Ok(())
    }

    /// The names inside `run_dir`.
    pub fn run_files(&self) -> RunDir {
        RunDir::new(&self.run_dir)
    }

    pub fn control_socket(&self) -> PathBuf {
        self.run_files().control()
    }

    pub fn serial_socket(&self) -> PathBuf {
        self.run_files().serial()
    }

    /// RFB (VNC) server of the framebuffer; only present when the VM has one.
    pub fn vnc_socket(&self) -> PathBuf {
        self.run_files().vnc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "vm_id": "vm1", "vcpus": 1, "memory_mib": 128, "kernel": "/k", "run_dir": "/tmp/x",
            "disks": [{"path": "/d.img", "read_only": false, "serial": "disk0"}],
            "framebuffer": {"width": 640, "height": 480}
        })
    }

    #[test]
    fn accepts_a_complete_config() {
        let cfg = VmConfig::parse(&base().to_string()).unwrap();
        assert_eq!(cfg.disks[0].serial, "disk0");
        assert_eq!(cfg.virtio_discovery, VirtioDiscovery::Cmdline);
        let mut j = base();
        j["virtio_discovery"] = serde_json::json!("acpi");
        assert!(VmConfig::parse(&j.to_string()).unwrap().virtio_discovery.acpi());
        assert!(cfg.rng);
        assert_eq!(cfg.control_socket(), PathBuf::from("/tmp/x/control.sock"));
    }

    #[test]
    fn rejects_out_of_range_values() {
        for (k, v) in [
            ("vcpus", 0),
            ("vcpus", 5),
            ("memory_mib", 32),
            ("memory_mib", 8193),
        ] {
            let mut j = base();
            j[k] = serde_json::json!(v);
            assert!(VmConfig::parse(&j.to_string()).is_err(), "{k}={v} accepted");
        }
        let mut j = base();
        j["cpuid_mask"] = serde_json::json!([129, 99999]);
        assert!(VmConfig::parse(&j.to_string()).is_err());
        let mut j = base();
        j["surprise"] = serde_json::json!(1);
        assert!(VmConfig::parse(&j.to_string()).is_err());
    }
}
