//! The host page (admin) and a running VM's boot progress, as the browser and the REST API see them.

use serde::{Deserialize, Serialize};

/// How far a running VM's guest has booted (README, "Boot progress").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BootPhase {
    /// The guest has not announced readiness yet.
    Booting,
    /// It has (a readiness line or a login prompt on its console).
    Ready,
    /// It showed no readiness signal in time; shown as running.
    NoSignal,
}

/// A running VM's boot progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GuestBoot {
    pub phase: BootPhase,
    /// The last line the guest printed on its serial console while booting (escape sequences removed).
    pub line: String,
    /// Milliseconds from the VMM's start to readiness.
    pub ready_after_ms: Option<u64>,
    pub ready_at: Option<String>,
}

impl GuestBoot {
    /// "54.8 s" for the time to ready.
    pub fn ready_after(&self) -> Option<String> {
        self.ready_after_ms
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
    }
}

/// One resource of the host: what it has, what VMs may commit (after overcommit and reserve), what they
/// commit, and what they really use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HostResource {
    /// MiB for memory and disk, CPUs for `cpus`.
    pub physical: u64,
    /// What VMs may commit (admission control's limit); for CPUs, the physical count.
    pub capacity: u64,
    /// Sum of the flavors of the VMs that hold the resource.
    pub committed: u64,
    /// Really in use: VMM resident memory, blocks allocated by VM disks; `None` for CPUs.
    pub used: Option<u64>,
    /// Free space of the filesystem (disk only).
    pub free: Option<u64>,
    pub overcommit: f64,
}

/// A VM on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HostVm {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub state: super::VmState,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    /// The VMM's resident memory, bytes (`None`: no VMM runs).
    pub rss_bytes: Option<u64>,
    /// Bytes the VM's files have allocated on disk.
    pub disk_allocated_bytes: u64,
    /// The jail its VMM runs in, as the kernel enforces it (`None`: no VMM runs, or the sandbox is off).
    pub jail: Option<HostVmJail>,
}

/// A running VMM's jail, read from its process and the cgroup files it is in (not from its config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HostVmJail {
    /// The VMM's uid.
    pub uid: u32,
    /// The cgroup it is in (relative to the hierarchy's root).
    pub cgroup: String,
    /// CFS quota in thousandths of a CPU (1500: 1.5 CPUs); `None`: unlimited.
    pub cpu_millis: Option<u64>,
    /// `None`: unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Task (thread) limit; `None`: unlimited.
    pub pids_max: Option<u64>,
}

impl HostVmJail {
    /// "1.5 CPUs", "1 CPU", "unlimited".
    pub fn cpus(&self) -> String {
        match self.cpu_millis {
            None => "unlimited".into(),
            Some(1000) => "1 CPU".into(),
            Some(m) if m % 1000 == 0 => format!("{} CPUs", m / 1000),
            Some(m) => format!(
                "{} CPUs",
                format!("{:.2}", m as f64 / 1000.0).trim_end_matches('0')
            ),
        }
    }
}

/// The admin host page (`GET /api/v1/admin/host`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HostView {
    pub hostname: String,
    pub cpus: HostResource,
    /// MiB.
    pub memory: HostResource,
    /// MiB, of the filesystem holding the data directory.
    pub disk: HostResource,
    /// `hardware`, or `emulated (kvm_pvm)` where KVM emulates guest instructions.
    pub kvm_mode: String,
    /// How VMMs are confined, where the configuration says.
    pub sandbox: Option<String>,
    /// VMs that are not deleted, newest first.
    pub vms: Vec<HostVm>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quotas_read_as_cpus() {
        let jail = |cpu_millis| HostVmJail {
            uid: 1,
            cgroup: String::new(),
            cpu_millis,
            memory_limit_bytes: None,
            pids_max: None,
        };
        assert_eq!(jail(Some(1500)).cpus(), "1.5 CPUs");
        assert_eq!(jail(Some(1000)).cpus(), "1 CPU");
        assert_eq!(jail(Some(2000)).cpus(), "2 CPUs");
        assert_eq!(jail(Some(250)).cpus(), "0.25 CPUs");
        assert_eq!(jail(None).cpus(), "unlimited");
    }
}
