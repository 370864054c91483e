//! The host page (admins): what the machine has, what admission control lets VMs commit, what they commit
//! (flavors of the VMs holding resources, the quota rule over all tenants) and what they really use (VMM
//! resident memory, blocks allocated by their files), with every VM on it and, for a running jailed VMM,
//! its uid and the limits its cgroup holds it to (read from the kernel's files, not from its config).

use std::collections::HashMap;

use app::error::AppError;
use app::model::{HostResource, HostView, HostVm, HostVmJail};
use app::port::{Caller, HostAdmin};
use async_trait::async_trait;

use super::{internal, Service};
use crate::capacity::{usage, Physical};
use crate::db::{admission, tenants, vms};

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl HostAdmin for Service {
    async fn host_view(&self, caller: &Caller) -> Result<HostView, AppError> {
        caller.require_admin()?;
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let cap = admission::capacity(&mut conn, admission::LOCAL)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("no host capacity recorded"))?;
        let committed = admission::committed(&mut conn).await.map_err(internal)?;
        drop(conn);
        let rows = vms::list_live(self.pool()).await.map_err(internal)?;
        let tenant_names: HashMap<String, String> = tenants::list(self.pool())
            .await
            .map_err(internal)?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let vms_dir = self.supervisor().settings().vms_dir.clone();
        let sandbox = self.supervisor().settings().sandbox.clone();
        // /proc, the cgroup files and the filesystem, off the async threads.
        let measured = tokio::task::spawn_blocking(move || {
            let physical = Physical::measure(&vms_dir);
            let per_vm: Vec<(Option<u64>, u64, Option<HostVmJail>)> = rows
                .iter()
                .map(|vm| {
                    let pid = match (&vm.vmm_run_id, vm.pid) {
                        (Some(_), Some(pid)) => Some(pid),
                        _ => None,
                    };
                    let rss = pid.and_then(usage::rss_bytes);
                    let jail = pid.and_then(|pid| jail_of(&sandbox, pid));
                    (rss, usage::allocated_bytes(&vms_dir.join(&vm.id)), jail)
                })
                .collect();
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            (physical, rows, per_vm, hostname)
        })
        .await
        .map_err(internal)?;
        let (physical, rows, per_vm, hostname) = measured;
        let physical = physical.map_err(|e| internal(crate::telemetry::chain(&e)))?;
        let mib = |bytes: u64| bytes / (1024 * 1024);
        let rss_total: u64 = per_vm.iter().filter_map(|(rss, _, _)| *rss).sum();
        let disk_total: u64 = per_vm.iter().map(|(_, d, _)| d).sum();
        let vms = rows
            .iter()
            .zip(per_vm)
            .map(|(vm, (rss_bytes, disk_allocated_bytes, jail))| HostVm {
                id: vm.id.clone(),
                name: vm.name.clone(),
                tenant_id: vm.tenant_id.clone(),
                tenant_name: tenant_names.get(&vm.tenant_id).cloned().unwrap_or_default(),
                state: vm.state(),
                vcpus: u32::try_from(vm.vcpus).unwrap_or(0),
                memory_mib: u32::try_from(vm.memory_mib).unwrap_or(0),
                disk_gib: u32::try_from(vm.disk_gib).unwrap_or(0),
                rss_bytes,
                disk_allocated_bytes,
                jail,
            })
            .collect();
        let kvm_mode = if self.supervisor().settings().kvm_emulated {
            "emulated (kvm_pvm: guest instructions run in software)"
        } else {
            "hardware"
        };
        Ok(HostView {
            hostname,
            cpus: HostResource {
                physical: unsigned(cap.cpus),
                capacity: unsigned(cap.cpus),
                committed: unsigned(committed.vcpus),
                used: None,
                free: None,
                overcommit: 1.0,
            },
            memory: HostResource {
                physical: unsigned(cap.memory_physical_mib),
                capacity: unsigned(cap.memory_mib),
                committed: unsigned(committed.memory_mib),
                used: Some(mib(rss_total)),
                free: None,
                overcommit: cap.memory_overcommit,
            },
            disk: HostResource {
                physical: unsigned(cap.disk_physical_mib),
                capacity: unsigned(cap.disk_mib),
                committed: unsigned(committed.disk_mib),
                used: Some(mib(disk_total)),
                free: Some(physical.disk_free_mib),
                overcommit: cap.disk_overcommit,
            },
            kvm_mode: kvm_mode.to_string(),
            sandbox: Some(sandbox_line(self.supervisor().settings())),
            vms,
        })
    }
}

/// The jail VMM `pid` is in, as the kernel enforces it: its uid and the limits of the cgroups it is in;
/// `None` when the sandbox is off or the process is gone.
fn jail_of(sandbox: &crate::vm::Sandbox, pid: i64) -> Option<HostVmJail> {
    let enforced = sandbox.enforced_on(u32::try_from(pid).ok()?)?;
    Some(HostVmJail {
        uid: usage::uid(pid)?,
        cgroup: enforced.cgroup,
        cpu_millis: enforced
            .cpu_quota_us
            .map(|q| q * 1000 / enforced.cpu_period_us.max(1)),
        memory_limit_bytes: enforced.memory_bytes,
        pids_max: enforced.pids_max,
    })
}

/// How the VMMs are confined, as the host page says it.
fn sandbox_line(settings: &crate::vm::VmSettings) -> String {
    let seccomp = settings.seccomp.as_str();
    match settings.sandbox.uid_range() {
        Some((first, last)) => format!(
            "jailed (own uid from {first}-{last}, mount namespace, cgroup limits, no capabilities, Landlock); \
             seccomp {seccomp}"
        ),
        None => format!("OFF: VMMs run as root with the host's whole view (sandbox.mode = off); seccomp {seccomp}"),
    }
}
