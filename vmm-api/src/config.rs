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
/// Network cards per VM.
pub const MAX_NICS: usize = 4;
/// MTU range a NIC may advertise (`VIRTIO_NET_F_MTU`): IPv4's minimum up to what a 64 KiB frame holds.
pub const MIN_MTU: u16 = 68;
pub const MAX_MTU: u16 = 65_535;
/// The lowest file descriptor a NIC's TAP may be passed at: 0–2 are stdio and 3 is the run lock
/// (`vmm --lock-fd 3`), so TAPs start at 4.
pub const MIN_TAP_FD: i32 = 4;

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

/// An Ethernet MAC address, written `52:54:00:12:34:56` in the JSON config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A unicast address (the multicast bit of the first octet clear) other than all zeros: the only
    /// kind a NIC may own.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC {s:?} has fewer than 6 octets"))?;
            if part.len() != 2 {
                return Err(format!("MAC {s:?}: octet {part:?} is not two hex digits"));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("MAC {s:?}: octet {part:?} is not two hex digits"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC {s:?} has more than 6 octets"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One virtio-net card backed by a TAP the VMM inherits already open.
///
/// Whoever spawns the VMM opens the TAP (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`) and passes the descriptor
/// at `tap_fd`, so the VMM needs no network-admin rights; the VMM checks the flags at start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NicConfig {
    /// The guest's address; frames the guest sends from any other source address are dropped.
    pub mac: MacAddr,
    /// Advertised to the guest (`VIRTIO_NET_F_MTU`); 1450 under VXLAN.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// The inherited TAP descriptor.
    pub tap_fd: i32,
}

fn default_mtu() -> u16 {
    1500
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
    /// Network cards, in the order the guest sees them (`eth0` first).
    #[serde(default)]
    pub nics: Vec<NicConfig>,
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
    /// The jail the VMM builds around itself before the guest runs (`crate::jail`); none: it runs with
    /// the rights it was started with (the VMM's own tests, a VMM started by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<crate::jail::JailConfig>,
    /// What the VMM's per-thread system-call filters do with a call outside their allow-list (default
    /// `kill`: the VMM records the call and exits with `EXIT_SECCOMP`).
    #[serde(default)]
    pub seccomp: crate::seccomp::SeccompMode,
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
        // Every disk, NIC, rng and up to two input devices need a virtio-mmio slot.
        let devices = self.disks.len() + self.nics.len() + usize::from(self.rng) + 2;
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
        self.validate_nics()?;
        if let Some(problem) = self.jail.as_ref().and_then(|j| j.problem()) {
            return bad(problem);
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

    fn validate_nics(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.nics.len() > MAX_NICS {
            return bad(format!("at most {MAX_NICS} nics"));
        }
        for (i, nic) in self.nics.iter().enumerate() {
            if !nic.mac.is_unicast() {
                return bad(format!(
                    "nic {i}: MAC {} is not a unicast address (first octet must be even, not all zeros)",
                    nic.mac
                ));
            }
            if !(MIN_MTU..=MAX_MTU).contains(&nic.mtu) {
                return bad(format!("nic {i}: mtu must be {MIN_MTU}..={MAX_MTU}"));
            }
            if nic.tap_fd < MIN_TAP_FD {
                return bad(format!("nic {i}: tap_fd must be at least {MIN_TAP_FD}"));
            }
            let earlier = &self.nics[..i];
            if earlier.iter().any(|n| n.mac == nic.mac) {
                return bad(format!("nic {i}: MAC {} used twice", nic.mac));
            }
            if earlier.iter().any(|n| n.tap_fd == nic.tap_fd) {
                return bad(format!("nic {i}: tap_fd {} used twice", nic.tap_fd));
            }
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

    #[test]
    fn nics_parse_and_print_their_mac() {
        let mut j = base();
        j["nics"] = serde_json::json!([{"mac": "52:54:00:AB:cd:01", "tap_fd": 4}]);
        let cfg = VmConfig::parse(&j.to_string()).unwrap();
        assert_eq!(cfg.nics[0].mac, MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 1]));
        assert_eq!(cfg.nics[0].mtu, 1500);
        let back = serde_json::to_value(&cfg).unwrap();
        assert_eq!(back["nics"][0]["mac"], "52:54:00:ab:cd:01");
    }

    #[test]
    fn rejects_bad_nics() {
        let nic = |mac: &str, fd: i32| serde_json::json!({"mac": mac, "tap_fd": fd});
        let cases = [
            ("multicast", serde_json::json!([nic("01:00:5e:00:00:01", 4)])),
            ("zero", serde_json::json!([nic("00:00:00:00:00:00", 4)])),
            ("short", serde_json::json!([nic("52:54:00:00:01", 4)])),
            ("long", serde_json::json!([nic("52:54:00:00:00:01:02", 4)])),
            ("not hex", serde_json::json!([nic("52:54:00:00:00:zz", 4)])),
            ("one digit", serde_json::json!([nic("52:54:0:00:00:01", 4)])),
            ("stdio fd", serde_json::json!([nic("52:54:00:00:00:01", 1)])),
            ("lock fd", serde_json::json!([nic("52:54:00:00:00:01", 3)])),
            (
                "duplicate mac",
                serde_json::json!([nic("52:54:00:00:00:01", 4), nic("52:54:00:00:00:01", 5)]),
            ),
            (
                "duplicate fd",
                serde_json::json!([nic("52:54:00:00:00:01", 4), nic("52:54:00:00:00:02", 4)]),
            ),
            (
                "mtu",
                serde_json::json!([{"mac": "52:54:00:00:00:01", "tap_fd": 4, "mtu": 67}]),
            ),
        ];
        for (what, nics) in cases {
            let mut j = base();
            j["nics"] = nics;
            assert!(VmConfig::parse(&j.to_string()).is_err(), "{what} accepted");
        }
    }
}
