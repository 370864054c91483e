//! The supervisor: starts VMM processes, watches them end, and runs the slow half of each action.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::VmState;
use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch};
use vmm::config::{DiskConfig, FramebufferConfig, VirtioDiscovery, VmConfig};

use super::control;
use super::disk::{self, ConfigData};
use super::process::{self, Outcome, VmmProcess};
use crate::db::{self, images, vms};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("Database error")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Write(#[from] vms::VmWriteError),
    #[error("VM {0} not found")]
    Missing(String),
    #[error("Failed to prepare the VM directory {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error("The VM directory path {0} is too long for a unix socket")]
    PathTooLong(PathBuf),
    #[error("Failed to write the VMM config")]
    Config(#[source] std::io::Error),
}

/// What the supervisor needs to know about the host.
#[derive(Debug, Clone)]
pub struct VmSettings {
    pub vmm_binary: PathBuf,
    /// `<data_dir>/vms`, absolute: one directory per VM with its disks, sockets and logs.
    pub vms_dir: PathBuf,
    /// Graceful stop waits this long for the guest to power off before forcing it.
    pub stop_timeout: Duration,
    /// A VMM that has not reported `running` by then is killed and the VM marked crashed.
    pub start_timeout: Duration,
    /// KVM here emulates guest instructions (kvm_pvm): Linux images get their `emulated_cmdline`.
    pub kvm_emulated: bool,
}

/// A state change, as broadcast to event-stream subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct VmChange {
    pub vm_id: String,
    pub tenant_id: String,
    pub state: VmState,
}

/// Files of one VM.
pub(super) struct VmPaths {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub config_disk: PathBuf,
    pub vmm_config: PathBuf,
    pub control: PathBuf,
    pub log: PathBuf,
}

/// A VMM process being watched; `ended` turns true when it is gone.
struct Handle {
    process: VmmProcess,
    ended: watch::Receiver<bool>,
}

#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    settings: VmSettings,
    changes: broadcast::Sender<VmChange>,
    handles: Mutex<HashMap<String, Handle>>,
    /// Serialises "check state, spawn, register" against "kill": see `boot` and `end_process`.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Longest socket path the kernel accepts is 107 bytes; keep a margin.
const MAX_SOCKET_PATH: usize = 100;
/// How often an adopted (not our child) VMM is checked for life.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// After a forced stop request, how long before SIGKILL.
const FORCE_GRACE: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    pub fn new(pool: SqlitePool, settings: VmSettings) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                changes,
                handles: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn settings(&self) -> &VmSettings {
        &self.inner.settings
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Live state changes of every VM (subscribers filter by tenant).
    pub fn subscribe(&self) -> broadcast::Receiver<VmChange> {
        self.inner.changes.subscribe()
    }

    pub(super) fn paths(&self, vm_id: &str) -> VmPaths {
        let dir = self.inner.settings.vms_dir.join(vm_id);
        VmPaths {
            disk: dir.join("disk.raw"),
            config_disk: dir.join("config.tar"),
            vmm_config: dir.join("vmm.json"),
            control: dir.join("control.sock"),
            log: dir.join("vmm.log"),
            dir,
        }
    }

    /// The directory holding a VM's sockets (`control.sock`, `serial.sock`, `vnc.sock`).
    pub fn run_dir(&self, vm_id: &str) -> PathBuf {
        self.paths(vm_id).dir
    }

    fn vm_lock(&self, vm_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.locks)
            .entry(vm_id.to_string())
            .or_default()
            .clone()
    }

    /// Applies a transition and tells subscribers. Returns the previous state, or `None` if the VM was not
    /// in one of `t.from` (nothing changed).
    pub async fn transition(&self, t: &vms::Transition<'_>) -> Result<Option<VmState>, vms::VmWriteError> {
        let done = vms::transition(self.pool(), t, db::now()).await?;
        if done.is_some() {
            tracing::info!(vm_id = t.vm_id, to = %t.to, message = t.message, "vm state");
            if let Some(vm) = vms::get(self.pool(), t.vm_id).await? {
                // No receivers is fine: nobody is watching.
                let _ = self.inner.changes.send(VmChange {
                    vm_id: vm.id,
                    tenant_id: vm.tenant_id,
                    state: t.to,
                });
            }
        }
        Ok(done)
    }

    async fn system(&self, vm_id: &str, from: &[VmState], to: VmState, reason: &str, message: &str) -> bool {
        let t = vms::Transition {
            vm_id,
            from,
            to,
            reason,
            actor: None,
            message,
            happened_at: None,
        };
        match self.transition(&t).await {
            Ok(prev) => prev.is_some(),
            Err(e) => {
                tracing::error!(vm_id, error = %e, "cannot record a VM state change");
                false
            }
        }
    }

    /// Runs `fut` in the background, logging a failure.
    pub(super) fn background<F>(&self, vm_id: &str, what: &'static str, fut: F)
    where
        F: std::future::Future<Output = Result<(), SupervisorError>> + Send + 'static,
    {
        let vm_id = vm_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!(vm_id, what, error = %crate::telemetry::chain(&e), "VM task failed");
            }
        });
    }

    // --- the slow halves of the actions ------------------------------------------------------------

    /// After launch: disks, then boot.
    pub fn provision(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "provision", async move {
            if let Err(e) = this.create_files(&id).await {
                let reason = crate::telemetry::chain(&e);
                this.system(
                    &id,
                    &[VmState::Creating],
                    VmState::Crashed,
                    &reason,
                    "provisioning failed",
                )
                .await;
                return Err(e);
            }
            if this
                .system(&id, &[VmState::Creating], VmState::Starting, "", "disks ready")
                .await
            {
                this.boot(&id).await?;
            }
            Ok(())
        });
    }

    async fn create_files(&self, vm_id: &str) -> Result<(), SupervisorError> {
        let vm = vms::get(self.pool(), vm_id)
            .await?
            .ok_or_else(|| SupervisorError::Missing(vm_id.into()))?;
        let image = images::get(self.pool(), &vm.image_id)
            .await?
            .ok_or_else(|| SupervisorError::Missing(vm.image_id.clone()))?;
        let paths = self.paths(vm_id);
        std::fs::create_dir_all(&paths.dir).map_err(|e| SupervisorError::Dir(paths.dir.clone(), e))?;
        let size = u64::try_from(vm.disk_gib).unwrap_or(1) << 30;
        disk::create_root_disk(image.root_disk_path.as_deref().map(Path::new), &paths.disk, size).await?;
        disk::write_config_disk(
            &paths.config_disk,
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

    /// Boots a VM that is in `starting`: spawns its VMM, waits until it reports running.
    pub(super) async fn boot(&self, vm_id: &str) -> Result<(), SupervisorError> {
        let paths = self.paths(vm_id);
        {
            let guard = self.vm_lock(vm_id);
            let _held = guard.lock().await;
            let vm = vms::get(self.pool(), vm_id)
                .await?
                .ok_or_else(|| SupervisorError::Missing(vm_id.into()))?;
            if vm.state() != VmState::Starting {
                return Ok(());
            }
            if let Err(e) = self.spawn_vmm(&vm, &paths).await {
                let reason = crate::telemetry::chain(&e);
                self.system(
                    vm_id,
                    &[VmState::Starting],
                    VmState::Crashed,
                    &reason,
                    "VMM failed to start",
                )
                .await;
                return Err(e);
            }
        }
        self.await_running(vm_id, &paths.control).await;
        Ok(())
    }

    async fn spawn_vmm(&self, vm: &vms::VmRow, paths: &VmPaths) -> Result<(), SupervisorError> {
        let image = images::get(self.pool(), &vm.image_id)
            .await?
            .ok_or_else(|| SupervisorError::Missing(vm.image_id.clone()))?;
        if paths.control.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(SupervisorError::PathTooLong(paths.dir.clone()));
        }
        let config = self.vmm_config(vm, &image, paths);
        let json = serde_json::to_vec_pretty(&config).map_err(|e| SupervisorError::Config(e.into()))?;
        std::fs::write(&paths.vmm_config, json).map_err(SupervisorError::Config)?;
        let _ = std::fs::remove_file(paths.dir.join(vmm::exit_codes::STATUS_FILE));
        let (child, proc_) = process::spawn(&self.inner.settings.vmm_binary, &paths.vmm_config, &paths.log)?;
        vms::set_process(
            self.pool(),
            &vm.id,
            Some((i64::from(proc_.pid), proc_.start_ticks as i64)),
        )
        .await?;
        self.watch(&vm.id, proc_, Some(child));
        Ok(())
    }

    fn vmm_config(&self, vm: &vms::VmRow, image: &images::ImageRow, paths: &VmPaths) -> VmConfig {
        let mut cmdline = image.cmdline.clone();
        let mut cpuid_mask = Vec::new();
        if self.inner.settings.kvm_emulated && !image.emulated_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&image.emulated_cmdline);
            // Hide the same features in CPUID too, so nothing reads them before the kernel parses its
            // command line (see FACTS.md: the emulator cannot run them).
            cpuid_mask = image
                .emulated_cmdline
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("clearcpuid="))
                .flat_map(|list| list.split(',').filter_map(|n| n.parse::<u32>().ok()))
                .collect();
        }
        let discovery = match image.virtio_discovery.as_str() {
            "acpi" => VirtioDiscovery::Acpi,
            "both" => VirtioDiscovery::Both,
            _ => VirtioDiscovery::Cmdline,
        };
        VmConfig {
            vm_id: vm.id.clone(),
            vcpus: u8::try_from(vm.vcpus).unwrap_or(1),
            memory_mib: u64::try_from(vm.memory_mib).unwrap_or(128),
            kernel: PathBuf::from(&image.kernel_path),
            initrd: image.initrd_path.as_ref().map(PathBuf::from),
            cmdline,
            serial_console: false,
            disks: vec![
                DiskConfig {
                    path: paths.disk.clone(),
                    read_only: false,
                    serial: "root".into(),
                },
                DiskConfig {
                    path: paths.config_disk.clone(),
                    read_only: true,
                    serial: "config".into(),
                },
            ],
            framebuffer: Some(FramebufferConfig {
                width: 1024,
                height: 768,
            }),
            run_dir: paths.dir.clone(),
            console_log: None,
            cpuid_mask,
            rng: true,
            virtio_discovery: discovery,
        }
    }

    /// Polls the control socket until the VMM runs the guest; then `starting` → `running`.
    pub(super) async fn await_running(&self, vm_id: &str, control_sock: &Path) {
        let deadline = tokio::time::Instant::now() + self.inner.settings.start_timeout;
        loop {
            if !self.is_running_process(vm_id) {
                // The watcher records the crash.
                return;
            }
            if let Ok(state) = control::state(control_sock).await {
                if state == "running" {
                    self.system(
                        vm_id,
                        &[VmState::Starting],
                        VmState::Running,
                        "",
                        "VMM running the guest",
                    )
                    .await;
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let reason = "the VMM did not report running in time";
                if self
                    .system(vm_id, &[VmState::Starting], VmState::Crashed, reason, reason)
                    .await
                {
                    self.end_process(vm_id, false).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn is_running_process(&self, vm_id: &str) -> bool {
        lock(&self.inner.handles)
            .get(vm_id)
            .is_some_and(|h| !*h.ended.borrow())
    }

    /// Watches a VMM until it ends; then records how, if no action was expecting it.
    pub(super) fn watch(&self, vm_id: &str, proc_: VmmProcess, child: Option<tokio::process::Child>) {
        let (tx, rx) = watch::channel(false);
        lock(&self.inner.handles).insert(
            vm_id.to_string(),
            Handle {
                process: proc_,
                ended: rx,
            },
        );
        let this = self.clone();
        let id = vm_id.to_string();
        tokio::spawn(async move {
            let waited = match child {
                Some(mut child) => child.wait().await.ok(),
                None => {
                    while proc_.is_alive() {
                        tokio::time::sleep(ADOPTED_POLL).await;
                    }
                    None
                }
            };
            let outcome = Outcome::decide(process::read_exit_status(&this.paths(&id).dir), waited);
            {
                let mut handles = lock(&this.inner.handles);
                if handles.get(&id).is_some_and(|h| h.process == proc_) {
                    handles.remove(&id);
                }
            }
            if let Err(e) = vms::set_process(this.pool(), &id, None).await {
                tracing::error!(vm_id = id, error = %e, "cannot clear the VMM pid");
            }
            tracing::info!(vm_id = id, ?outcome, "VMM ended");
            // Unexpected ends only: stop/reboot/delete flows make their own transition.
            match &outcome {
                Outcome::PoweredOff => {
                    this.system(
                        &id,
                        &[VmState::Running],
                        VmState::Stopped,
                        "",
                        "guest powered off",
                    )
                    .await;
                    this.system(
                        &id,
                        &[VmState::Starting],
                        VmState::Crashed,
                        "VMM exited while starting",
                        "VMM exited while starting",
                    )
                    .await;
                }
                Outcome::Failed(reason) => {
                    this.system(
                        &id,
                        &[VmState::Running, VmState::Starting],
                        VmState::Crashed,
                        reason,
                        reason,
                    )
                    .await;
                }
            }
            let _ = tx.send(true);
        });
    }

    /// Waits until the VM's VMM has ended (true) or the timeout passes (false).
    async fn wait_ended(&self, vm_id: &str, timeout: Duration) -> bool {
        let rx = lock(&self.inner.handles).get(vm_id).map(|h| h.ended.clone());
        let Some(mut rx) = rx else { return true };
        let ended = tokio::time::timeout(timeout, rx.wait_for(|ended| *ended)).await;
        ended.is_ok()
    }

    /// Ends the VM's VMM: gracefully (Ctrl-Alt-Del, up to the stop timeout) if asked, then forced
    /// (`stop` on the control socket), then SIGKILL. Returns when it is gone.
    pub(super) async fn end_process(&self, vm_id: &str, graceful: bool) {
        let guard = self.vm_lock(vm_id);
        let _held = guard.lock().await;
        let control_sock = self.paths(vm_id).control;
        if graceful {
            match control::command(&control_sock, "shutdown").await {
                Ok(_) => {
                    if self.wait_ended(vm_id, self.inner.settings.stop_timeout).await {
                        return;
                    }
                    tracing::info!(vm_id, "guest did not power off in time; forcing");
                }
                Err(e) => tracing::warn!(vm_id, error = %e, "graceful shutdown request failed; forcing"),
            }
        }
        if !self.is_running_process(vm_id) {
            return;
        }
        if control::command(&control_sock, "stop").await.is_ok() && self.wait_ended(vm_id, FORCE_GRACE).await
        {
            return;
        }
        let proc_ = lock(&self.inner.handles).get(vm_id).map(|h| h.process);
        if let Some(p) = proc_ {
            tracing::warn!(vm_id, pid = p.pid, "VMM did not stop; killing it");
            p.kill();
            self.wait_ended(vm_id, FORCE_GRACE).await;
        }
    }

    /// `stopping` → (process gone) → `stopped`.
    pub fn finish_stop(&self, vm_id: &str, graceful: bool) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "stop", async move {
            this.end_process(&id, graceful).await;
            this.system(&id, &[VmState::Stopping], VmState::Stopped, "", "VMM stopped")
                .await;
            Ok(())
        });
    }

    /// `rebooting` → (graceful stop) → `starting` → boot.
    pub fn finish_reboot(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "reboot", async move {
            this.end_process(&id, true).await;
            if this
                .system(
                    &id,
                    &[VmState::Rebooting],
                    VmState::Starting,
                    "",
                    "powered off for reboot",
                )
                .await
            {
                this.boot(&id).await?;
            }
            Ok(())
        });
    }

    /// `starting` → boot.
    pub fn finish_start(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "start", async move { this.boot(&id).await });
    }

    /// `deleting` → (forced off, files removed) → `deleted`.
    pub fn finish_delete(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "delete", async move {
            this.end_process(&id, false).await;
            let dir = this.paths(&id).dir;
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SupervisorError::Dir(dir, e)),
            }
            this.system(
                &id,
                &[VmState::Deleting],
                VmState::Deleted,
                "",
                "disk and run directory removed",
            )
            .await;
            lock(&this.inner.locks).remove(&id);
            Ok(())
        });
    }

    /// Forces off every VM this portal supervises (only when configured to stop VMs with the portal).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = lock(&self.inner.handles).keys().cloned().collect();
        for id in ids {
            self.system(
                &id,
                &[VmState::Running, VmState::Starting, VmState::Rebooting],
                VmState::Stopping,
                "",
                "portal shutting down",
            )
            .await;
            self.end_process(&id, false).await;
            self.system(
                &id,
                &[VmState::Stopping],
                VmState::Stopped,
                "",
                "portal shut down",
            )
            .await;
        }
    }

    /// Registers a VMM found running at start (see `reconcile`).
    pub(super) fn adopt(&self, vm_id: &str, proc_: VmmProcess) {
        self.watch(vm_id, proc_, None);
    }
}
