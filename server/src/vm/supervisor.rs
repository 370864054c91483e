//! The supervisor: starts VMM processes, watches them end, and runs the slow half of each action.
//!
//! Exactness (one VMM per VM, through any crash): a VMM is only ever started with the VM's run lock held
//! and handed down to it (`vmm_api::run_dir`), after its run id is recorded with the usage interval; its
//! end is recorded only once it is really gone (its exit waited for, or the lock free). Whether a VM has a
//! VMM is asked of the lock, never assumed from a pid or a socket. See `reconcile` for the restart side.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::VmState;
use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch};
use vmm_api::run_dir::{RunDir, RunLock};

use super::control;
use super::disk;
use super::fault;
use super::lifecycle;
use super::process::{self, Holder, Outcome, VmmProcess};
use super::vmm_config::{self, VmmConfigError};
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
    #[error(transparent)]
    RunDir(#[from] vmm_api::run_dir::RunDirError),
    #[error(transparent)]
    VmmConfig(#[from] VmmConfigError),
    #[error("The VM directory path {0} is too long for a unix socket")]
    PathTooLong(PathBuf),
    #[error("Failed to write the VMM config")]
    Config(#[source] std::io::Error),
    #[error("The VMM of VM {0} could not be ended; it is left in its state")]
    StillRunning(String),
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

/// A VMM process being watched; `ended` turns true once its end is recorded.
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
    /// Serialises "check state, spawn, register" against "end": see `boot` and `end_process`.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Why the supervisor itself ended a starting VM's VMM, for the watcher to record as the crash reason.
    end_reasons: Mutex<HashMap<String, String>>,
}

/// Longest socket path the kernel accepts is 107 bytes; keep a margin.
const MAX_SOCKET_PATH: usize = 100;
/// After a forced stop request, how long before SIGKILL.
const FORCE_GRACE: Duration = Duration::from_secs(5);
/// How often a run lock held by a VMM that has not recorded its pid yet is asked again.
const HOLDER_POLL: Duration = Duration::from_millis(10);

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
                end_reasons: Mutex::new(HashMap::new()),
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

    /// The directory holding a VM's disks, sockets (`control.sock`, `serial.sock`, `vnc.sock`) and logs.
    pub fn run_dir(&self, vm_id: &str) -> PathBuf {
        self.inner.settings.vms_dir.join(vm_id)
    }

    pub(super) fn dir(&self, vm_id: &str) -> RunDir {
        RunDir::new(self.run_dir(vm_id))
    }

    /// The VMs whose VMM this portal watches.
    pub(super) fn supervised(&self) -> Vec<String> {
        lock(&self.inner.handles).keys().cloned().collect()
    }

    /// Drops what the supervisor keeps for a deleted VM.
    pub(super) fn forget(&self, vm_id: &str) {
        lock(&self.inner.locks).remove(vm_id);
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

    pub(super) async fn system(
        &self,
        vm_id: &str,
        from: &[VmState],
        to: VmState,
        reason: &str,
        message: &str,
    ) -> bool {
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

    /// Boots a VM that is in `starting`: spawns its VMM — or adopts the one that already holds the VM — and
    /// waits until it reports running.
    pub(super) async fn boot(&self, vm_id: &str) -> Result<(), SupervisorError> {
        {
            let guard = self.vm_lock(vm_id);
            let _held = guard.lock().await;
            let vm = vms::get(self.pool(), vm_id)
                .await?
                .ok_or_else(|| SupervisorError::Missing(vm_id.into()))?;
            if vm.state() != VmState::Starting {
                return Ok(());
            }
            if !self.is_running_process(vm_id) {
                match self.holder(vm_id).await? {
                    (Holder::Free, Some(run_lock)) => {
                        if let Err(e) = self.spawn_vmm(&vm, run_lock).await {
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
                    (Holder::Free, None) => {
                        let dir = self.run_dir(vm_id);
                        let e = SupervisorError::Dir(dir, std::io::ErrorKind::NotFound.into());
                        let reason = crate::telemetry::chain(&e);
                        self.system(
                            vm_id,
                            &[VmState::Starting],
                            VmState::Crashed,
                            &reason,
                            "VM files missing",
                        )
                        .await;
                        return Err(e);
                    }
                    // A VMM already runs this VM (never a second one): watch it instead.
                    (Holder::Vmm { process, run_id }, _) => self.adopt(&vm, process, &run_id).await?,
                    (Holder::Unknown, _) => return Err(SupervisorError::StillRunning(vm_id.into())),
                }
            }
        }
        self.await_running(vm_id).await;
        Ok(())
    }

    /// Writes the VMM's config, records the run (run id + usage interval) and spawns the VMM with the run
    /// lock handed down. A crash at any point leaves either no VMM and a free lock, or a VMM that holds it.
    async fn spawn_vmm(&self, vm: &vms::VmRow, run_lock: RunLock) -> Result<(), SupervisorError> {
        let image = images::get(self.pool(), &vm.image_id)
            .await?
            .ok_or_else(|| SupervisorError::Missing(vm.image_id.clone()))?;
        let dir = self.dir(&vm.id);
        if dir.control().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(SupervisorError::PathTooLong(dir.path().to_path_buf()));
        }
        let config = vmm_config::build(
            vm,
            &image,
            &dir,
            disk::root_disk(dir.path()),
            disk::config_disk(dir.path()),
            self.inner.settings.kvm_emulated,
        )?;
        let json = serde_json::to_vec_pretty(&config).map_err(|e| SupervisorError::Config(e.into()))?;
        std::fs::write(dir.config(), json).map_err(SupervisorError::Config)?;
        let run_id = uuid::Uuid::new_v4().to_string();
        run_lock.set_run_id(&run_id)?;
        let now = db::now();
        if let Some(stale) = vm.vmm_run_id.as_deref() {
            // A run the lock says has ended (we hold it) but that was never closed: close it now.
            vms::vmm_ended(self.pool(), &vm.id, stale, now, now).await?;
        }
        vms::vmm_started(self.pool(), &vm.id, &run_id, now).await?;
        fault::point("boot.before_spawn");
        let (child, proc_) = match process::spawn(&self.inner.settings.vmm_binary, &dir, &run_id, run_lock) {
            Ok(spawned) => spawned,
            Err(e) => {
                // Nothing runs: the lock went with the failed child or was dropped with the command.
                vms::vmm_ended(self.pool(), &vm.id, &run_id, now, db::now()).await?;
                return Err(e.into());
            }
        };
        fault::point("boot.after_spawn");
        vms::set_process(
            self.pool(),
            &vm.id,
            &run_id,
            i64::from(proc_.pid),
            i64::try_from(proc_.start_ticks).unwrap_or(i64::MAX),
        )
        .await?;
        self.watch(&vm.id, proc_, &run_id, Some(child));
        Ok(())
    }

    /// Asks the VM's run lock who runs it, waiting while the holder is a VMM that has not recorded itself
    /// yet (it does so right after taking the lock) or a child between fork and exec.
    pub(super) async fn holder(&self, vm_id: &str) -> Result<(Holder, Option<RunLock>), SupervisorError> {
        let dir = self.dir(vm_id);
        let deadline = tokio::time::Instant::now() + self.inner.settings.start_timeout;
        loop {
            let (holder, run_lock) = process::holder(&dir)?;
            if holder != Holder::Unknown || tokio::time::Instant::now() > deadline {
                if holder == Holder::Unknown {
                    tracing::error!(
                        vm_id,
                        "the run lock is held by a process that never identified itself"
                    );
                }
                return Ok((holder, run_lock));
            }
            tokio::time::sleep(HOLDER_POLL).await;
        }
    }

    /// Polls the control socket until the VMM runs the guest; then `starting` → `running`.
    pub(super) async fn await_running(&self, vm_id: &str) {
        let control_sock = self.dir(vm_id).control();
        let deadline = tokio::time::Instant::now() + self.inner.settings.start_timeout;
        loop {
            if !self.is_running_process(vm_id) {
                // The watcher records the end.
                return;
            }
            if let Ok(state) = control::state(&control_sock).await {
                if state == "running" {
                    fault::point("boot.before_running");
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
                lock(&self.inner.end_reasons).insert(vm_id.to_string(), reason.to_string());
                // The VM becomes `crashed` when its VMM is gone (the watcher records it with this reason).
                self.end_process(vm_id, false).await;
                self.system(vm_id, &[VmState::Starting], VmState::Crashed, reason, reason)
                    .await;
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

    /// Watches a VMM until it ends; then records its end (run closed, usage interval closed) and, if no
    /// action was ending it, the state its outcome means.
    fn watch(&self, vm_id: &str, proc_: VmmProcess, run_id: &str, child: Option<tokio::process::Child>) {
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
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            let waited = match child {
                Some(mut child) => child.wait().await.ok(),
                None => {
                    proc_.ended().await;
                    None
                }
            };
            fault::point("watch.exit_seen");
            let dir = this.dir(&id);
            let outcome = Outcome::decide(process::read_exit_status(&dir, &run_id), waited);
            let now = db::now();
            let ended_at = process::exit_time(&dir, &run_id).unwrap_or(now);
            if let Err(e) = vms::vmm_ended(this.pool(), &id, &run_id, ended_at, now).await {
                tracing::error!(vm_id = id, error = %e, "cannot record the VMM's end");
            }
            {
                let mut handles = lock(&this.inner.handles);
                if handles.get(&id).is_some_and(|h| h.process == proc_) {
                    handles.remove(&id);
                }
            }
            tracing::info!(vm_id = id, ?outcome, "VMM ended");
            let outcome = match lock(&this.inner.end_reasons).remove(&id) {
                Some(reason) => Outcome::Failed(reason),
                None => outcome,
            };
            // Unexpected ends only: stop/reboot/delete flows make their own transition.
            for state in [VmState::Running, VmState::Starting] {
                if let Some((to, reason)) = lifecycle::after_unexpected_exit(state, &outcome) {
                    let message = if reason.is_empty() {
                        "guest powered off"
                    } else {
                        &reason
                    };
                    this.system(&id, &[state], to, &reason, message).await;
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
    /// (`stop` on the control socket), then SIGKILL. Returns true once no VMM runs the VM — asked of the run
    /// lock, so a VMM whose sockets are gone or that nobody watched is found and ended too.
    pub(super) async fn end_process(&self, vm_id: &str, graceful: bool) -> bool {
        let guard = self.vm_lock(vm_id);
        let _held = guard.lock().await;
        let control_sock = self.dir(vm_id).control();
        if graceful && self.is_running_process(vm_id) {
            match control::command(&control_sock, "shutdown").await {
                Ok(_) => {
                    if self.wait_ended(vm_id, self.inner.settings.stop_timeout).await {
                        return self.ensure_gone(vm_id).await;
                    }
                    tracing::info!(vm_id, "guest did not power off in time; forcing");
                }
                Err(e) => tracing::warn!(vm_id, error = %e, "graceful shutdown request failed; forcing"),
            }
        }
        if self.is_running_process(vm_id)
            && !(control::command(&control_sock, "stop").await.is_ok()
                && self.wait_ended(vm_id, FORCE_GRACE).await)
        {
            let proc_ = lock(&self.inner.handles).get(vm_id).map(|h| h.process);
            if let Some(p) = proc_ {
                tracing::warn!(vm_id, pid = p.pid, "VMM did not stop; killing it");
                p.kill();
                self.wait_ended(vm_id, FORCE_GRACE).await;
            }
        }
        self.ensure_gone(vm_id).await
    }

    /// Makes sure no VMM holds the VM: a holder nobody watches is adopted, killed and waited for.
    async fn ensure_gone(&self, vm_id: &str) -> bool {
        for _ in 0..3 {
            let holder = match self.holder(vm_id).await {
                Ok((holder, _)) => holder,
                Err(e) => {
                    tracing::error!(vm_id, error = %crate::telemetry::chain(&e), "cannot ask the run lock");
                    return false;
                }
            };
            match holder {
                Holder::Free => {
                    // Our watcher records the end before it says "ended"; wait for that too.
                    return self.wait_ended(vm_id, FORCE_GRACE).await;
                }
                Holder::Vmm { process, run_id } => {
                    tracing::warn!(vm_id, pid = process.pid, "a VMM still holds the VM; killing it");
                    if !self.is_running_process(vm_id) {
                        if let Ok(Some(vm)) = vms::get(self.pool(), vm_id).await {
                            if let Err(e) = self.adopt(&vm, process, &run_id).await {
                                tracing::error!(vm_id, error = %crate::telemetry::chain(&e), "cannot adopt");
                            }
                        }
                    }
                    process.kill();
                    let _ = tokio::time::timeout(FORCE_GRACE, process.ended()).await;
                    self.wait_ended(vm_id, FORCE_GRACE).await;
                }
                Holder::Unknown => return false,
            }
        }
        false
    }

    /// Watches a VMM found holding the VM's run lock; the database's run becomes the VMM's if it was not.
    pub(super) async fn adopt(
        &self,
        vm: &vms::VmRow,
        process: VmmProcess,
        run_id: &str,
    ) -> Result<(), SupervisorError> {
        let now = db::now();
        if vm.vmm_run_id.as_deref() != Some(run_id) {
            if let Some(other) = vm.vmm_run_id.as_deref() {
                vms::vmm_ended(self.pool(), &vm.id, other, now, now).await?;
            }
            vms::vmm_started(self.pool(), &vm.id, run_id, now).await?;
        }
        vms::set_process(
            self.pool(),
            &vm.id,
            run_id,
            i64::from(process.pid),
            i64::try_from(process.start_ticks).unwrap_or(i64::MAX),
        )
        .await?;
        self.watch(&vm.id, process, run_id, None);
        Ok(())
    }
}
