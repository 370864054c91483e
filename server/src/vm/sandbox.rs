//! The portal's side of the VMM jail (README, "Jail and threat model"): checked at start (root, a cgroup
//! hierarchy with cpu, memory and pids), the jail each VMM is given in its config (`vmm_api::jail`: the
//! VM's uid from SQL, its cgroup and limits), the VM's files handed to its uid, and the cgroups removed
//! once their VMM has ended — or, at start (`sweep`), for VMMs that ended while the portal was away.
//!
//! The VMM builds the jail itself (`vmm::jail`), as root, before it runs the guest; a VMM given a jail
//! never runs outside it. With `sandbox.mode = "off"` VMMs get no jail, and the portal says so loudly.

use std::path::Path;
use std::sync::Arc;

use vmm_api::cgroup::{CgroupError, Enforced, Hierarchy, CGROUP_ROOT};
use vmm_api::jail::{JailConfig, Limits};

use crate::config::{SandboxMode, SandboxSettings};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "The VMM sandbox needs the portal to run as root (it runs as uid {0}): run it as root, or set \
         sandbox.mode = \"off\" to run VMMs unjailed"
    )]
    NotRoot(u32),
    #[error("The VMM sandbox needs cgroups (set sandbox.mode = \"off\" to run VMMs without limits)")]
    Cgroup(#[source] CgroupError),
    #[error("VM {0} has no sandbox uid")]
    NoUid(String),
    #[error("VM {0}'s sandbox uid {1} is out of range")]
    BadUid(String, i64),
    #[error("Failed to give {0} to the VM's uid")]
    Own(std::path::PathBuf, #[source] std::io::Error),
}

/// The CPUs this host offers (the VMs' parent cgroup weighs as much as that many busy tasks).
fn host_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Whether and how VMMs are jailed.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// The admin chose `sandbox.mode = "off"`.
    Off,
    On(Arc<Jails>),
}

#[derive(Debug)]
pub struct Jails {
    pub uid_range: (u32, u32),
    parent: String,
    cgroups: Hierarchy,
}

impl Sandbox {
    /// Checks that jails can be built here and removes the cgroups of VMMs that are gone; a problem is an
    /// error that stops the portal, never a silent fallback to unjailed VMMs.
    pub fn start(settings: &SandboxSettings) -> Result<Self, SandboxError> {
        if settings.mode == SandboxMode::Off {
            tracing::warn!(
                "SANDBOX OFF: VMMs run as root with the whole host in reach (sandbox.mode = \"off\"); a guest \
                 that escapes its device models owns this host"
            );
            return Ok(Self::Off);
        }
        let euid = rustix::process::geteuid().as_raw();
        if euid != 0 {
            return Err(SandboxError::NotRoot(euid));
        }
        let cgroups = Hierarchy::detect(Path::new(CGROUP_ROOT)).map_err(SandboxError::Cgroup)?;
        cgroups
            .prepare_parent(&settings.cgroup_parent, host_cpus())
            .map_err(SandboxError::Cgroup)?;
        let jails = Jails {
            uid_range: settings.uid_range,
            parent: settings.cgroup_parent.clone(),
            cgroups,
        };
        tracing::info!(
            cgroup_version = jails.cgroups.version(),
            parent = %jails.parent,
            uids = ?jails.uid_range,
            "VMM sandbox on"
        );
        Ok(Self::On(Arc::new(jails)))
    }

    /// `on` or `off`, for people.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On(_) => "on",
        }
    }

    /// The uid range VMs get uids from, when jailed.
    pub fn uid_range(&self) -> Option<(u32, u32)> {
        match self {
            Self::Off => None,
            Self::On(j) => Some(j.uid_range),
        }
    }

    /// The limits the kernel enforces on process `pid`, read from the cgroups it is in; `None` when the
    /// sandbox is off or they cannot be read (the process is gone).
    pub fn enforced_on(&self, pid: u32) -> Option<Enforced> {
        let Self::On(jails) = self else {
            return None;
        };
        jails
            .cgroups
            .enforced_on(pid)
            .inspect_err(
                |e| tracing::debug!(pid, error = %crate::telemetry::chain(e), "cannot read a VMM's cgroup"),
            )
            .ok()
    }

    /// The jail of VM `vm_id` (uid `uid` from the database) with `vcpus` and `memory_mib`; `None` when off.
    pub fn jail(
        &self,
        vm_id: &str,
        uid: Option<i64>,
        vcpus: u8,
        memory_mib: u64,
    ) -> Result<Option<JailConfig>, SandboxError> {
        let Self::On(jails) = self else {
            return Ok(None);
        };
        let uid = uid.ok_or_else(|| SandboxError::NoUid(vm_id.into()))?;
        let (first, last) = jails.uid_range;
        let uid = u32::try_from(uid)
            .ok()
            .filter(|u| (first..=last).contains(u))
            .ok_or_else(|| SandboxError::BadUid(vm_id.into(), uid))?;
        Ok(Some(JailConfig {
            uid,
            gid: uid,
            cgroup: jails.cgroup(vm_id),
            limits: Limits::for_vm(vcpus, memory_mib),
        }))
    }

    /// At start: removes the cgroups of this portal's VMs (`known`, every VM in the database) whose VMMs
    /// ended while it was away. A live VMM's cgroup is busy and stays; cgroups of VMs this database does
    /// not know are another portal's (tests run several) and are left alone.
    pub fn sweep(&self, known: &[String]) {
        let Self::On(jails) = self else {
            return;
        };
        for name in jails.cgroups.children(&jails.parent) {
            if known.contains(&name) && jails.cgroups.remove(&jails.cgroup(&name)).is_ok() {
                tracing::info!(vm_id = %name, "removed the cgroup of a VMM that ended while the portal was away");
            }
        }
    }

    /// Removes VM `vm_id`'s cgroup (its VMM has ended); a cgroup still busy is logged and left.
    pub fn remove_cgroup(&self, vm_id: &str) {
        if let Self::On(jails) = self {
            if let Err(e) = jails.cgroups.remove(&jails.cgroup(vm_id)) {
                tracing::warn!(vm_id, error = %crate::telemetry::chain(&e), "cannot remove the VM's cgroup");
            }
        }
    }
}

impl Jails {
    fn cgroup(&self, vm_id: &str) -> String {
        format!("{}/{vm_id}", self.parent)
    }
}

/// Gives a VM's disks to its uid, mode 0600: another VM's uid cannot read them even from outside its
/// own view.
pub fn own_disks(jail: &JailConfig, disks: &[&Path]) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    for disk in disks {
        std::os::unix::fs::chown(disk, Some(jail.uid), Some(jail.gid))
            .and_then(|()| std::fs::set_permissions(disk, std::fs::Permissions::from_mode(0o600)))
            .map_err(|e| SandboxError::Own(disk.to_path_buf(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_gives_no_jail_and_on_refuses_a_vm_without_a_uid_in_range() {
        assert_eq!(Sandbox::Off.jail("vm-1", None, 1, 64).unwrap(), None);
        let on = Sandbox::On(Arc::new(Jails {
            uid_range: (200_000, 200_009),
            parent: "cloud-portal".into(),
            cgroups: Hierarchy::V2 {
                root: "/nonexistent".into(),
            },
        }));
        let jail = on.jail("vm-1", Some(200_003), 2, 256).unwrap().unwrap();
        assert_eq!((jail.uid, jail.gid), (200_003, 200_003));
        assert_eq!(jail.cgroup, "cloud-portal/vm-1");
        assert_eq!(jail.limits, Limits::for_vm(2, 256));
        assert!(matches!(
            on.jail("vm-1", None, 1, 64),
            Err(SandboxError::NoUid(_))
        ));
        assert!(matches!(
            on.jail("vm-1", Some(0), 1, 64),
            Err(SandboxError::BadUid(..))
        ));
        assert!(matches!(
            on.jail("vm-1", Some(300_000), 1, 64),
            Err(SandboxError::BadUid(..))
        ));
    }
}
