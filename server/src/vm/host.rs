//! The seam between orchestration (the supervisor: states, runs, billing) and the machine that runs VMMs.
//! `LocalHost` runs them on this machine; a compute agent on another machine would be a second
//! implementation, and the supervisor's unit tests use a fake one.
//!
//! The host reports what happens to VMMs over a channel (`watch` → `Ended`) and never writes VM states:
//! that is the supervisor's job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;
use vmm_api::run_dir::{PidRecord, RunDir, RunLock};

use super::control::{self, ControlError};
use super::disk::{self, ConfigData, DiskError};
use super::process::{self, Holder, Outcome, ProcessError, VmmProcess};
use super::vmm_config::{self, VmmConfigError};
use crate::db::{images::ImageRow, vms::VmRow};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("Failed to prepare the VM directory {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    RunDir(#[from] vmm_api::run_dir::RunDirError),
    #[error(transparent)]
    VmmConfig(#[from] VmmConfigError),
    #[error("The VM directory path {0} is too long for a unix socket")]
    PathTooLong(PathBuf),
    #[error("Failed to write the VMM config")]
    Config(#[source] std::io::Error),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("The VM's files are missing")]
    NoFiles,
    #[error("Cannot jail the VMM")]
    Sandbox(#[from] super::sandbox::SandboxError),
    #[error("Failed to set up the VM's network cards")]
    Network(#[from] crate::net::NetError),
}

/// The right to start a VM's VMM: while a claim exists, no VMM runs the VM and none can start. Dropping it
/// gives the right up; `Host::spawn` hands it to the VMM.
pub struct Claim(Box<dyn std::any::Any + Send>);

impl Claim {
    pub fn new<T: Send + 'static>(inner: T) -> Self {
        Self(Box::new(inner))
    }

    pub fn into_inner<T: 'static>(self) -> Option<T> {
        self.0.downcast::<T>().ok().map(|b| *b)
    }
}

/// Who runs a VM, as the host knows it now.
pub enum Probe {
    /// Nobody. With a claim unless the VM has no files on this host.
    Free(Option<Claim>),
    /// The VMM of `run_id`.
    Running { process: VmmProcess, run_id: String },
    /// Someone holds the VM but has not said who yet (a VMM starting up): ask again.
    Unknown,
}

/// A VMM's end, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub vm_id: String,
    pub process: VmmProcess,
    pub run_id: String,
    pub outcome: Outcome,
    /// When the VMM recorded its end (unix seconds), if it did.
    pub ended_at: Option<i64>,
}

/// How a run that is over ended, as far as the host recorded it (for reconciliation after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// A VMM of the run started (it recorded itself).
    pub started: bool,
    pub outcome: Outcome,
    pub ended_at: Option<i64>,
}

#[async_trait]
pub trait Host: Send + Sync + 'static {
    /// Makes the VM's files (root disk from the image, config disk); doing it again starts them afresh.
    async fn prepare(&self, vm: &VmRow, image: &ImageRow) -> Result<(), HostError>;
    /// Who runs the VM now.
    fn probe(&self, vm_id: &str) -> Result<Probe, HostError>;
    /// Starts a VMM for `vm` booting `image` under `run_id`, handing it the claim.
    async fn spawn(
        &self,
        claim: Claim,
        vm: &VmRow,
        image: &ImageRow,
        run_id: &str,
    ) -> Result<VmmProcess, HostError>;
    /// Watches the VMM until it ends, then sends its end on `ended`.
    fn watch(&self, vm_id: &str, process: VmmProcess, run_id: &str, ended: mpsc::UnboundedSender<Ended>);
    /// The VMM's run state (`starting`, `running`, `paused`, ...).
    async fn state(&self, vm_id: &str) -> Result<String, HostError>;
    /// Asks the guest to power off (Ctrl-Alt-Del).
    async fn shutdown(&self, vm_id: &str) -> Result<(), HostError>;
    /// Tells the VMM to stop the guest at once.
    async fn stop(&self, vm_id: &str) -> Result<(), HostError>;
    /// Kills the VMM process (if it is still that process).
    fn kill(&self, process: VmmProcess);
    /// Resolves once the process has exited.
    async fn exited(&self, process: VmmProcess);
    /// How `run_id` of the VM ended, as recorded on the host.
    fn last_run(&self, vm_id: &str, run_id: &str) -> RunRecord;
    /// Removes the VM's files.
    async fn remove(&self, vm_id: &str) -> Result<(), HostError>;
    /// The VMs that have files on this host.
    fn vm_ids(&self) -> Vec<String>;
}

/// Longest socket path the kernel accepts is 107 bytes; keep a margin.
const MAX_SOCKET_PATH: usize = 100;

/// VMMs as processes of this machine, each VM in `<vms_dir>/<id>/`.
pub struct LocalHost {
    vmm_binary: PathBuf,
    vms_dir: PathBuf,
    kvm_emulated: bool,
    /// What the VMMs' seccomp filters do with a refused call.
    seccomp: vmm_api::seccomp::SeccompMode,
    /// Opens the TAPs of a VM's cards; `None`: VMs run without cards.
    network: Option<crate::net::Networking>,
    /// The jail each VMM gets in its config.
    sandbox: super::sandbox::Sandbox,
    /// VMMs this process started, until watched: waiting on our own child gives its exact exit status.
    children: Mutex<HashMap<i32, tokio::process::Child>>,
}

impl LocalHost {
    pub fn new(vmm_binary: PathBuf, vms_dir: PathBuf, kvm_emulated: bool) -> Self {
        Self {
            vmm_binary,
            vms_dir,
            kvm_emulated,
            seccomp: vmm_api::seccomp::SeccompMode::default(),
            network: None,
            sandbox: super::sandbox::Sandbox::Off,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Gives the VMMs their network cards from `network`.
    /// The seccomp mode of the VMMs started from now on (`Settings::vmm_seccomp`).
    pub fn with_seccomp(mut self, mode: vmm_api::seccomp::SeccompMode) -> Self {
        self.seccomp = mode;
        self
    }

    pub fn with_network(mut self, network: Option<crate::net::Networking>) -> Self {
        self.network = network;
        self
    }

    /// Jails the VMMs as `sandbox` says.
    pub fn with_sandbox(mut self, sandbox: super::sandbox::Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    fn dir(&self, vm_id: &str) -> RunDir {
        RunDir::new(self.vms_dir.join(vm_id))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Host for LocalHost {
    async fn prepare(&self, vm: &VmRow, image: &ImageRow) -> Result<(), HostError> {
        let dir = self.vms_dir.join(&vm.id);
        std::fs::create_dir_all(&dir).map_err(|e| HostError::Dir(dir.clone(), e))?;
        // Made afresh: an earlier run's files are the VM uid's, in a sticky directory (see `vmm::jail`).
        for old in [disk::root_disk(&dir), disk::config_disk(&dir)] {
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HostError::Dir(old, e)),
            }
        }
        let size = u64::try_from(vm.disk_gib).unwrap_or(1) << 30;
        disk::create_root_disk(
            image.root_disk_path.as_deref().map(Path::new),
            &disk::root_disk(&dir),
            size,
        )
        .await?;
        disk::write_config_disk(
            &disk::config_disk(&dir),
            &ConfigData {
                vm_id: &vm.id,
                name: &vm.name,
                tenant_id: &vm.tenant_id,
                ssh_key: &vm.ssh_key,
                user_data: &vm.user_data,
            },
        )?;
        Ok(())
    }

    fn probe(&self, vm_id: &str) -> Result<Probe, HostError> {
        Ok(match process::holder(&self.dir(vm_id))? {
            (Holder::Free, run_lock) => Probe::Free(run_lock.map(Claim::new)),
            (Holder::Vmm { process, run_id }, _) => Probe::Running { process, run_id },
            (Holder::Unknown, _) => Probe::Unknown,
        })
    }

    async fn spawn(
        &self,
        claim: Claim,
        vm: &VmRow,
        image: &ImageRow,
        run_id: &str,
    ) -> Result<VmmProcess, HostError> {
        let run_lock: RunLock = claim.into_inner().ok_or(HostError::NoFiles)?;
        let dir = self.dir(&vm.id);
        if dir.control().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(HostError::PathTooLong(dir.path().to_path_buf()));
        }
        let nics = match &self.network {
            Some(net) => net.open_nics(&vm.id).await?,
            None => Vec::new(),
        };
        let mut config = vmm_config::build(
            vm,
            image,
            &dir,
            disk::root_disk(dir.path()),
            disk::config_disk(dir.path()),
            self.kvm_emulated,
        )?;
        config.seccomp = self.seccomp;
        let taps = vmm_config::add_nics(&mut config, nics);
        config.jail = self
            .sandbox
            .jail(&vm.id, vm.sandbox_uid, config.vcpus, config.memory_mib)?;
        if let Some(jail) = &config.jail {
            let (root, cfg_disk) = (disk::root_disk(dir.path()), disk::config_disk(dir.path()));
            super::sandbox::own_disks(jail, &[root.as_path(), cfg_disk.as_path()])?;
        }
        let json = serde_json::to_vec_pretty(&config).map_err(|e| HostError::Config(e.into()))?;
        std::fs::write(dir.config(), json).map_err(HostError::Config)?;
        run_lock.set_run_id(run_id)?;
        let (child, proc_) = process::spawn(&self.vmm_binary, &dir, run_id, run_lock, taps)?;
        lock(&self.children).insert(proc_.pid, child);
        Ok(proc_)
    }

    fn watch(&self, vm_id: &str, proc_: VmmProcess, run_id: &str, ended: mpsc::UnboundedSender<Ended>) {
        let child = lock(&self.children).remove(&proc_.pid);
        let dir = self.dir(vm_id);
        let sandbox = self.sandbox.clone();
        let (vm_id, run_id) = (vm_id.to_string(), run_id.to_string());
        tokio::spawn(async move {
            let waited = match child {
                Some(mut child) => child.wait().await.ok(),
                None => {
                    proc_.ended().await;
                    None
                }
            };
            let outcome = process::read_outcome(&dir, &run_id, waited);
            let ended_at = process::exit_time(&dir, &run_id);
            // The process is gone, so its cgroup is empty.
            sandbox.remove_cgroup(&vm_id);
            // No receiver: the supervisor is gone, and the next start reconciles.
            let _ = ended.send(Ended {
                vm_id,
                process: proc_,
                run_id,
                outcome,
                ended_at,
            });
        });
    }

    async fn state(&self, vm_id: &str) -> Result<String, HostError> {
        Ok(control::state(&self.dir(vm_id).control()).await?)
    }

    async fn shutdown(&self, vm_id: &str) -> Result<(), HostError> {
        control::command(&self.dir(vm_id).control(), "shutdown").await?;
        Ok(())
    }

    async fn stop(&self, vm_id: &str) -> Result<(), HostError> {
        control::command(&self.dir(vm_id).control(), "stop").await?;
        Ok(())
    }

    fn kill(&self, process: VmmProcess) {
        process.kill();
    }

    async fn exited(&self, process: VmmProcess) {
        process.ended().await;
    }

    fn last_run(&self, vm_id: &str, run_id: &str) -> RunRecord {
        let dir = self.dir(vm_id);
        let started = PidRecord::read(&dir).is_some_and(|r| r.run_id.as_deref() == Some(run_id));
        RunRecord {
            started,
            outcome: process::read_outcome(&dir, run_id, None),
            ended_at: process::exit_time(&dir, run_id),
        }
    }

    async fn remove(&self, vm_id: &str) -> Result<(), HostError> {
        self.sandbox.remove_cgroup(vm_id);
        let dir = self.vms_dir.join(vm_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HostError::Dir(dir, e)),
        }
    }

    fn vm_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.vms_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}
