//! The jail a VMM builds around itself before it runs the guest (README, "Jail and threat model"): the
//! identity it drops to, the cgroup limits it joins and the rlimits it sets. The portal puts one in every
//! VM config (unless the admin chose `sandbox.mode = "off"`); a config without one runs unjailed, which
//! is how the VMM's own tests and a VMM started by hand run.
//!
//! The limits are derived here, from the VM's size, so the portal and the VMM agree on them and the
//! numbers are unit-tested without a cgroup in sight.

use serde::{Deserialize, Serialize};

/// Name of the directory inside the run directory on which the jail's root (a tmpfs) is mounted.
pub const JAIL_ROOT_DIR: &str = "jail";
/// Where the run directory appears inside the jail.
pub const JAIL_RUN_DIR: &str = "/vm";

/// CPU time the VMM may use beyond its vCPUs (device emulation, consoles), in per mille of one CPU.
pub const CPU_OVERHEAD_PERMILLE: u64 = 500;
/// The CFS period the quota is measured in.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Memory beyond guest RAM: the framebuffer, virtio queues, socket buffers, thread stacks and the host
/// page cache of the VM's disks (reclaimable, charged to the VM's cgroup), plus one eighth of guest RAM
/// for KVM's own page tables.
pub const MEMORY_OVERHEAD_MIB: u64 = 160;
/// Tasks (threads) the VMM may have: one per vCPU, per socket connection and per card, and margin.
pub const PIDS_MAX: u64 = 256;
/// Open files: disks, TAPs, eventfds for every virtio queue, socket connections.
pub const NOFILE: u64 = 1024;

/// The jail of one VMM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// The VM's own user and group (never 0): from the portal's `sandbox.uid_range`, one per VM.
    pub uid: u32,
    pub gid: u32,
    /// The VM's cgroup, relative to each hierarchy's root (`<parent>/<vm_id>`).
    pub cgroup: String,
    pub limits: Limits,
}

/// Resource limits of one VMM.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CFS quota per `cpu_period_us` (cgroup v1 `cpu.cfs_quota_us`, v2 the first field of `cpu.max`).
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
    /// `memory.limit_in_bytes` (v1) / `memory.max` (v2).
    pub memory_bytes: u64,
    /// `pids.max`, and RLIMIT_NPROC (per uid, and the uid is the VM's alone).
    pub pids_max: u64,
    /// RLIMIT_NOFILE.
    pub nofile: u64,
}

impl Limits {
    /// The limits of a VM with `vcpus` vCPUs and `memory_mib` of guest RAM.
    pub fn for_vm(vcpus: u8, memory_mib: u64) -> Self {
        Self {
            cpu_quota_us: CPU_PERIOD_US * u64::from(vcpus) + CPU_PERIOD_US * CPU_OVERHEAD_PERMILLE / 1000,
            cpu_period_us: CPU_PERIOD_US,
            memory_bytes: (memory_mib + memory_mib / 8 + MEMORY_OVERHEAD_MIB) << 20,
            pids_max: PIDS_MAX,
            nofile: NOFILE,
        }
    }
}

impl JailConfig {
    /// What is wrong with this jail, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.uid == 0 || self.gid == 0 {
            return Some("jail uid and gid must not be 0".into());
        }
        let valid = !self.cgroup.is_empty()
            && !self.cgroup.starts_with('/')
            && self
                .cgroup
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with("cgroup."));
        if !valid {
            return Some(format!(
                "jail cgroup {:?} is not a relative cgroup path",
                self.cgroup
            ));
        }
        let l = &self.limits;
        if l.cpu_quota_us < 1000
            || l.cpu_period_us < 1000
            || l.memory_bytes < 16 << 20
            || l.pids_max < 16
            || l.nofile < 64
        {
            return Some("jail limits are too small to run a VMM".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_vms_size() {
        let l = Limits::for_vm(2, 256);
        assert_eq!((l.cpu_quota_us, l.cpu_period_us), (250_000, 100_000));
        assert_eq!(l.memory_bytes, (256 + 32 + MEMORY_OVERHEAD_MIB) << 20);
        let big = Limits::for_vm(4, 8192);
        assert_eq!(big.memory_bytes, (8192 + 1024 + MEMORY_OVERHEAD_MIB) << 20);
        assert_eq!(big.cpu_quota_us, 450_000);
    }

    #[test]
    fn root_and_escaping_cgroups_are_refused() {
        let ok = JailConfig {
            uid: 200_000,
            gid: 200_000,
            cgroup: "cloud-portal/vm-1".into(),
            limits: Limits::for_vm(1, 64),
        };
        assert_eq!(ok.problem(), None);
        assert!(JailConfig { uid: 0, ..ok.clone() }.problem().is_some());
        for bad in ["", "/abs", "a/../b", "a//b", "cloud-portal/cgroup.procs"] {
            let j = JailConfig {
                cgroup: bad.into(),
                ..ok.clone()
            };
            assert!(j.problem().is_some(), "{bad:?} accepted");
        }
    }
}
