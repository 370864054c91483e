//! Per-VM cgroups (cpu, memory, pids) on either hierarchy: v1 (one mount per controller, as on this
//! project's CI host, a systemd "hybrid" layout) or v2 (one unified tree, most current distributions).
//!
//! Plain file writes rather than a cgroup crate: the whole job is "make a directory, write four numbers,
//! write a pid, remove the directory", the v1/v2 difference is a file-name table, and the same code runs in
//! the VMM (create and join, as root, before it drops privileges) and in the portal (check at start,
//! remove after the VMM has ended and sweep the leftovers of VMs that are gone).

use std::path::{Path, PathBuf};

use crate::jail::Limits;

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers a VM's cgroup uses (one hierarchy each).
const V1_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("No cgroup hierarchy with the cpu, memory and pids controllers under {0} (neither v2 nor v1)")]
    Missing(PathBuf),
    #[error("Failed to create the cgroup {0}")]
    Create(PathBuf, #[source] std::io::Error),
    #[error("Failed to write {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("Failed to remove the cgroup {0}")]
    Remove(PathBuf, #[source] std::io::Error),
    #[error("Failed to read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("The process is not in the cgroup {0} after joining it ({1})")]
    NotJoined(String, String),
}

/// The cgroup hierarchy of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified: `<root>/<path>/{cpu.max,memory.max,pids.max,cgroup.procs}`.
    V2 { root: PathBuf },
    /// Per controller: `<root>/{cpu,memory,pids}/<path>/...`.
    V1 { root: PathBuf },
}

impl Hierarchy {
    /// Finds the hierarchy mounted at `root`: v2 when its root offers all three controllers, else v1 when
    /// all three controllers are mounted (a hybrid layout's `unified` tree has no controllers).
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if V1_CONTROLLERS.iter().all(|c| has(c)) {
                return Ok(Self::V2 { root: root.into() });
            }
        }
        if V1_CONTROLLERS
            .iter()
            .all(|c| root.join(c).join("cgroup.procs").exists())
        {
            return Ok(Self::V1 { root: root.into() });
        }
        Err(CgroupError::Missing(root.into()))
    }

    pub fn version(&self) -> u8 {
        match self {
            Self::V2 { .. } => 2,
            Self::V1 { .. } => 1,
        }
    }

    /// The directories of cgroup `path` (one on v2, one per controller on v1).
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        match self {
            Self::V2 { root } => vec![root.join(path)],
            Self::V1 { root } => V1_CONTROLLERS.iter().map(|c| root.join(c).join(path)).collect(),
        }
    }

    /// Makes the parent of the VMs' cgroups and, on v2, lets its children use the three controllers.
    /// Idempotent; the portal calls it at start so a missing hierarchy is an error there.
    ///
    /// The parent weighs, in the CPU scheduler, as much as `cpus` busy ordinary tasks (v1 `cpu.shares`
    /// 1024 each, v2 `cpu.weight` 100 each). Unjailed, each busy VMM thread weighed as one task; in one
    /// cgroup with the default weight, all VMs together would weigh as one task against everything else on
    /// a busy host, and a VMM starting there waits for the CPU (measured: +5-8 ms to the first guest exit
    /// at load 7 on 2 CPUs, +3 ms with more weight; `cargo bench -p vmm --bench jail`).
    pub fn prepare_parent(&self, parent: &str, cpus: u64) -> Result<(), CgroupError> {
        for dir in self.dirs(parent) {
            std::fs::create_dir_all(&dir).map_err(|e| CgroupError::Create(dir.clone(), e))?;
        }
        if let Self::V2 { root } = self {
            // Each level from the root down must delegate the controllers to the next.
            let enable = "+cpu +memory +pids";
            let mut dir = root.clone();
            write(&dir.join("cgroup.subtree_control"), enable)?;
            for part in parent.split('/') {
                dir.push(part);
                write(&dir.join("cgroup.subtree_control"), enable)?;
            }
        }
        let (file, value) = self.weight_file(parent, cpus.max(1) * 1000);
        write(&file, &value)
    }

    /// The CPU weight file of cgroup `path` and its value for `millicpus` thousandths of a CPU: as much
    /// weight as that many busy ordinary tasks (v1 `cpu.shares` 1024 per CPU, range 2-262144; v2
    /// `cpu.weight` 100 per CPU, range 1-10000).
    fn weight_file(&self, path: &str, millicpus: u64) -> (PathBuf, String) {
        match self {
            Self::V2 { root } => (
                root.join(path).join("cpu.weight"),
                (millicpus / 10).clamp(1, 10_000).to_string(),
            ),
            Self::V1 { root } => (
                root.join("cpu").join(path).join("cpu.shares"),
                (millicpus * 1024 / 1000).clamp(2, 262_144).to_string(),
            ),
        }
    }

    /// Creates cgroup `path` with `limits` (its parent must be prepared).
    pub fn create(&self, path: &str, limits: &Limits) -> Result<(), CgroupError> {
        for dir in self.dirs(path) {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::Create(dir, e)),
            }
        }
        for (file, value) in self.limit_files(path, limits) {
            write(&file, &value)?;
        }
        Ok(())
    }

    /// The files that carry `limits` for cgroup `path`, with their values. Besides the limits, the VM's
    /// CPU weight among the VMs follows its quota: a VM with more vCPUs weighs more when CPUs are scarce.
    pub fn limit_files(&self, path: &str, l: &Limits) -> Vec<(PathBuf, String)> {
        let mut files = self.limit_files_only(path, l);
        files.push(self.weight_file(path, l.cpu_quota_us * 1000 / l.cpu_period_us.max(1)));
        files
    }

    fn limit_files_only(&self, path: &str, l: &Limits) -> Vec<(PathBuf, String)> {
        match self {
            Self::V2 { root } => {
                let dir = root.join(path);
                vec![
                    (
                        dir.join("cpu.max"),
                        format!("{} {}", l.cpu_quota_us, l.cpu_period_us),
                    ),
                    (dir.join("memory.max"), l.memory_bytes.to_string()),
                    (dir.join("pids.max"), l.pids_max.to_string()),
                ]
            }
            Self::V1 { root } => {
                let cpu = root.join("cpu").join(path);
                vec![
                    // The period first: a quota is checked against the period in force.
                    (cpu.join("cpu.cfs_period_us"), l.cpu_period_us.to_string()),
                    (cpu.join("cpu.cfs_quota_us"), l.cpu_quota_us.to_string()),
                    (
                        root.join("memory").join(path).join("memory.limit_in_bytes"),
                        l.memory_bytes.to_string(),
                    ),
                    (
                        root.join("pids").join(path).join("pids.max"),
                        l.pids_max.to_string(),
                    ),
                ]
            }
        }
    }

    /// Moves process `pid` (all its threads) into cgroup `path`.
    pub fn join(&self, path: &str, pid: u32) -> Result<(), CgroupError> {
        for dir in self.dirs(path) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Moves the calling process into cgroup `path` and checks, in `/proc/self/cgroup`, that it is there.
    ///
    /// On v1, while the process has one thread, the thread moves itself: "0" written to each controller's
    /// `tasks` file. The kernel (5.13+, "cgroup: Optimize single thread migration") then migrates just the
    /// current thread without write-locking the global `cgroup_threadgroup_rwsem`, whose first write lock
    /// after a quiet spell waits for an RCU grace period (`rcu_sync_enter`: 10-30 ms measured here on
    /// kernel 6.18, against 0.1 ms for the single thread). With one thread, that thread is the whole
    /// process, and threads started later are born in the cgroup. A process with more threads (or v2,
    /// whose domain cgroups refuse thread moves) moves through `cgroup.procs`: every thread, slow path.
    pub fn join_self(&self, path: &str) -> Result<(), CgroupError> {
        let single = matches!(self, Self::V1 { .. }) && threads_of_self()? == 1;
        if single {
            for dir in self.dirs(path) {
                write(&dir.join("tasks"), "0")?;
            }
        } else {
            self.join(path, std::process::id())?;
        }
        let proc_self = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(proc_self).map_err(|e| CgroupError::Read(proc_self.into(), e))?;
        self.check_member(path, &text)
    }

    /// Whether `/proc/<pid>/cgroup` text `text` places the process in cgroup `path` on every hierarchy
    /// this crate uses.
    fn check_member(&self, path: &str, text: &str) -> Result<(), CgroupError> {
        let want = format!("/{path}");
        // Lines are `<id>:<controllers, comma separated>:<path>`; v2's controller list is empty.
        let at = |controller: &str| {
            text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, p) = (f.next()?, f.next()?, f.next()?);
                ctl.split(',').any(|c| c == controller).then_some(p)
            })
        };
        let missing: Vec<&str> = match self {
            Self::V2 { .. } => (at("") != Some(want.as_str()))
                .then_some("unified")
                .into_iter()
                .collect(),
            Self::V1 { .. } => V1_CONTROLLERS
                .into_iter()
                .filter(|c| at(c) != Some(want.as_str()))
                .collect(),
        };
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CgroupError::NotJoined(
                path.into(),
                format!("not in: {}", missing.join(", ")),
            ))
        }
    }

    /// The limits the kernel enforces on process `pid`, read from the cgroups it is in (as
    /// `/proc/<pid>/cgroup` names them, the memory controller's path on v1) rather than from its config.
    pub fn enforced_on(&self, pid: u32) -> Result<Enforced, CgroupError> {
        let proc_cgroup = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text =
            std::fs::read_to_string(&proc_cgroup).map_err(|e| CgroupError::Read(proc_cgroup.clone(), e))?;
        let path_of = |controller: &str| {
            text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, p) = (f.next()?, f.next()?, f.next()?);
                ctl.split(',')
                    .any(|c| c == controller)
                    .then(|| p.trim_start_matches('/').to_string())
            })
        };
        let missing = || CgroupError::Read(proc_cgroup.clone(), std::io::Error::other("no such hierarchy"));
        let read = |file: PathBuf| {
            std::fs::read_to_string(&file)
                .map(|v| v.trim().to_string())
                .map_err(|e| CgroupError::Read(file, e))
        };
        // "max" (v2), -1 (v1 CFS quota) and v1's page-counter maximum (~2^63) mean no limit.
        let limit = |v: &str| v.parse::<u64>().ok().filter(|n| *n < 1 << 62);
        match self {
            Self::V2 { root } => {
                let path = path_of("").ok_or_else(missing)?;
                let dir = root.join(&path);
                let cpu = read(dir.join("cpu.max"))?;
                let mut cpu = cpu.split_whitespace();
                let quota = cpu.next().and_then(limit);
                let period = cpu.next().and_then(limit).unwrap_or(crate::jail::CPU_PERIOD_US);
                Ok(Enforced {
                    cpu_quota_us: quota,
                    cpu_period_us: period,
                    memory_bytes: limit(&read(dir.join("memory.max"))?),
                    pids_max: limit(&read(dir.join("pids.max"))?),
                    cgroup: path,
                })
            }
            Self::V1 { root } => {
                let at = |controller: &str| path_of(controller).map(|p| root.join(controller).join(p));
                let cpu = at("cpu").ok_or_else(missing)?;
                let memory_path = path_of("memory").ok_or_else(missing)?;
                let pids = at("pids").ok_or_else(missing)?;
                Ok(Enforced {
                    cpu_quota_us: limit(&read(cpu.join("cpu.cfs_quota_us"))?),
                    cpu_period_us: limit(&read(cpu.join("cpu.cfs_period_us"))?)
                        .unwrap_or(crate::jail::CPU_PERIOD_US),
                    memory_bytes: limit(&read(
                        root.join("memory")
                            .join(&memory_path)
                            .join("memory.limit_in_bytes"),
                    )?),
                    pids_max: limit(&read(pids.join("pids.max"))?),
                    cgroup: memory_path,
                })
            }
        }
    }

    /// Removes cgroup `path`; a cgroup that is not there is fine. Fails (EBUSY) while a process is in it.
    pub fn remove(&self, path: &str) -> Result<(), CgroupError> {
        for dir in self.dirs(path) {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::Remove(dir, e)),
            }
        }
        Ok(())
    }

    /// The names of the cgroups under `parent` (in any controller on v1).
    pub fn children(&self, parent: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs(parent)
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The limits on one process as its cgroups carry them (`None`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    /// The cgroup it is in, relative to the hierarchy's root (on v1, the memory controller's).
    pub cgroup: String,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub memory_bytes: Option<u64>,
    pub pids_max: Option<u64>,
}

/// How many threads this process has (`Threads:` in `/proc/self/status`).
fn threads_of_self() -> Result<u32, CgroupError> {
    let path = Path::new("/proc/self/status");
    let text = std::fs::read_to_string(path).map_err(|e| CgroupError::Read(path.into(), e))?;
    let bad = || CgroupError::Read(path.into(), std::io::Error::other("no Threads: line"));
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(bad)
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| CgroupError::Write(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 root as the kernel lays it out (the files a test needs).
    fn v2_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    #[test]
    fn v2_is_detected_and_a_vm_cgroup_gets_its_limits_and_its_process() {
        let root = v2_root();
        let h = Hierarchy::detect(root.path()).unwrap();
        assert_eq!(h.version(), 2);
        h.prepare_parent("cloud-portal", 4).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("cloud-portal/cpu.weight")).unwrap(),
            "400"
        );
        let enabled =
            std::fs::read_to_string(root.path().join("cloud-portal/cgroup.subtree_control")).unwrap();
        assert_eq!(enabled, "+cpu +memory +pids");
        let limits = Limits::for_vm(2, 256);
        h.create("cloud-portal/vm-1", &limits).unwrap();
        h.join("cloud-portal/vm-1", 4242).unwrap();
        let read = |f: &str| std::fs::read_to_string(root.path().join("cloud-portal/vm-1").join(f)).unwrap();
        assert_eq!(read("cpu.max"), "250000 100000");
        assert_eq!(read("memory.max"), limits.memory_bytes.to_string());
        assert_eq!(read("pids.max"), "256");
        assert_eq!(
            read("cpu.weight"),
            "250",
            "2.5 CPUs of quota weigh as 2.5 busy tasks"
        );
        assert_eq!(read("cgroup.procs"), "4242");
        assert_eq!(h.children("cloud-portal"), vec!["vm-1".to_string()]);
        h.remove("cloud-portal/absent").unwrap();
    }

    #[test]
    fn v1_is_detected_per_controller_and_a_hybrid_unified_tree_is_not_v2() {
        let root = tempfile::tempdir().unwrap();
        // Hybrid: the unified tree at the root offers no controllers.
        std::fs::write(root.path().join("cgroup.controllers"), "").unwrap();
        assert!(matches!(
            Hierarchy::detect(root.path()),
            Err(CgroupError::Missing(_))
        ));
        for c in V1_CONTROLLERS {
            std::fs::create_dir(root.path().join(c)).unwrap();
            std::fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let h = Hierarchy::detect(root.path()).unwrap();
        assert_eq!(h.version(), 1);
        h.prepare_parent("cloud-portal", 2).unwrap();
        h.create("cloud-portal/vm-1", &Limits::for_vm(1, 64)).unwrap();
        let read = |f: &str| std::fs::read_to_string(root.path().join(f)).unwrap();
        assert_eq!(read("cpu/cloud-portal/vm-1/cpu.cfs_quota_us"), "150000");
        assert_eq!(read("cpu/cloud-portal/vm-1/cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu/cloud-portal/cpu.shares"), "2048");
        assert_eq!(read("cpu/cloud-portal/vm-1/cpu.shares"), "1536");
        assert_eq!(read("pids/cloud-portal/vm-1/pids.max"), "256");
        assert!(root
            .path()
            .join("memory/cloud-portal/vm-1/memory.limit_in_bytes")
            .exists());
    }

    #[test]
    fn membership_is_read_from_proc_cgroup_on_every_hierarchy_used() {
        let v1 = Hierarchy::V1 { root: "/x".into() };
        let inside = "9:name=systemd:/\n8:pids:/p/vm-1\n4:memory:/p/vm-1\n2:cpu,cpuacct:/p/vm-1\n0::/\n";
        assert!(v1.check_member("p/vm-1", inside).is_ok());
        // Left behind in one controller (a thread moved alone while another existed would look like this).
        let partly = inside.replace("4:memory:/p/vm-1", "4:memory:/");
        let err = v1.check_member("p/vm-1", &partly).unwrap_err().to_string();
        assert!(err.contains("memory") && !err.contains("cpu"), "{err}");
        assert!(
            v1.check_member("p/vm-10", inside).is_err(),
            "a prefix is not membership"
        );
        let v2 = Hierarchy::V2 { root: "/x".into() };
        assert!(v2.check_member("p/vm-1", "0::/p/vm-1\n").is_ok());
        assert!(v2.check_member("p/vm-1", "0::/\n").is_err());
    }

    #[test]
    fn this_test_process_counts_its_threads() {
        // Other tests run in threads of their own meanwhile: only "more than one" is certain here.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(threads_of_self().unwrap() >= 2);
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }
}
