//! The supervisor: starts VMM processes, watches them end, and runs the slow half of each action.
//!
//! Orchestration only: the machine is reached through the `Host` trait (`LocalHost` on this machine).
//!
//! Exactness (one VMM per VM, through any crash): a VMM is only ever started with the VM's claim (on this
//! host, its run lock) held and handed down to it, after its run id is recorded with the usage interval;
//! its end is recorded only once it is really gone (the host reports the end, or the claim is free).
//! Whether a VM has a VMM is asked of the host, never assumed from a pid or a socket. See `reconcile` for
//! the restart side and `actions` for the slow halves of user actions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::VmState;
use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, mpsc, watch};

use super::fault;
use super::host::{Claim, Ended, Host, HostError, LocalHost, Probe};
use super::lifecycle;
use super::process::{Outcome, VmmProcess};
use crate::db::{self, images, vms};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("Database error")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Write(#[from] vms::VmWriteError),
    #[error("VM {0} not found")]
    Missing(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    SandboxUid(#[from] crate::db::sandbox::SandboxDbError),
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
    /// A running guest that has not announced readiness by then (from its VMM's start) is shown as
    /// running without a readiness signal (`boot_rule`).
    pub boot_ready_timeout: Duration,
    /// KVM here emulates guest instructions (kvm_pvm): Linux images get their `emulated_cmdline`.
    pub kvm_emulated: bool,
    /// Tenant networks: a VM's cards get their TAPs from here. `None`: VMs have no card.
    pub network: Option<crate::net::Networking>,
    /// The VMMs' jail (`sandbox.rs`); `Sandbox::Off` only when the admin chose it.
    pub sandbox: super::Sandbox,
    /// The VMMs' seccomp mode (`kill` unless configured otherwise).
    pub seccomp: vmm_api::seccomp::SeccompMode,
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
    ended: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    settings: VmSettings,
    host: Arc<dyn Host>,
    /// Where the host reports VMM ends (see `record_end`).
    ended: mpsc::UnboundedSender<Ended>,
    changes: broadcast::Sender<VmChange>,
    handles: Mutex<HashMap<String, Handle>>,
    /// Serialises "check state, spawn, register" against "end": see `boot` and `end_process`.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Why the supervisor itself ended a starting VM's VMM, for the watcher to record as the crash reason.
    end_reasons: Mutex<HashMap<String, String>>,
}

/// After a forced stop request, how long before SIGKILL.
const FORCE_GRACE: Duration = Duration::from_secs(5);
/// How often a run lock held by a VMM that has not recorded its pid yet is asked again.
const HOLDER_POLL: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    /// A supervisor of VMMs on this machine.
    pub fn new(pool: SqlitePool, settings: VmSettings) -> Self {
        let host = LocalHost::new(
            settings.vmm_binary.clone(),
            settings.vms_dir.clone(),
            settings.kvm_emulated,
        )
        .with_seccomp(settings.seccomp)
        .with_network(settings.network.clone())
        .with_sandbox(settings.sandbox.clone());
        Self::with_host(pool, settings, Arc::new(host))
    }

    /// A supervisor of the VMMs of `host`. Must be called inside a tokio runtime: it starts the task that
    /// records what the host reports.
    pub fn with_host(pool: SqlitePool, settings: VmSettings, host: Arc<dyn Host>) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let (ended, mut reports) = mpsc::unbounded_channel();
        let this = Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                host,
                ended,
                changes,
                handles: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                end_reasons: Mutex::new(HashMap::new()),
            }),
        };
        // Holds only a weak reference: the task ends with the last `Supervisor`.
        let weak = Arc::downgrade(&this.inner);
        tokio::spawn(async move {
            while let Some(end) = reports.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Supervisor { inner }.record_end(end).await;
            }
        });
        this
    }

    pub(super) fn host(&self) -> &dyn Host {
        self.inner.host.as_ref()
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

    /// Tells subscribers a VM changed in place (e.g. renamed): its state is unchanged, lists reload it.
    pub fn announce(&self, vm: &vms::VmRow) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.changes.send(VmChange {
            vm_id: vm.id.clone(),
            tenant_id: vm.tenant_id.clone(),
            state: vm.state(),
        });
    }

    /// The directory holding a VM's disks, sockets (`control.sock`, `serial.sock`, `vnc.sock`) and logs.
    pub fn run_dir(&self, vm_id: &str) -> PathBuf {
        self.inner.settings.vms_dir.join(vm_id)
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

    /// [`Supervisor::announce`] for a VM known by id (its boot progress changed).
    pub(super) async fn announce_id(&self, vm_id: &str) {
        if let Ok(Some(vm)) = vms::get(self.pool(), vm_id).await {
            self.announce(&vm);
        }
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
                let started = match self.probe(vm_id).await? {
                    Probe::Free(Some(claim)) => self.spawn_vmm(&vm, claim).await,
                    Probe::Free(None) => Err(HostError::NoFiles.into()),
                    // A VMM already runs this VM (never a second one): watch it instead.
                    Probe::Running { process, run_id } => self.adopt(&vm, process, &run_id).await,
                    Probe::Unknown => Err(SupervisorError::StillRunning(vm_id.into())),
                };
                if let Err(e) = started {
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
        }
        self.await_running(vm_id).await;
        Ok(())
    }

    /// Records the run (run id + usage interval), then has the host spawn the VMM with the claim handed
    /// down. A crash at any point leaves either no VMM and a free claim, or a VMM that holds it.
    async fn spawn_vmm(&self, vm: &vms::VmRow, claim: Claim) -> Result<(), SupervisorError> {
        let image = images::get(self.pool(), &vm.image_id)
            .await?
            .ok_or_else(|| SupervisorError::Missing(vm.image_id.clone()))?;
        let run_id = uuid::Uuid::new_v4().to_string();
        let now = db::now();
        if let Some(stale) = vm.vmm_run_id.as_deref() {
            // A run the host says has ended (we hold the claim) but that was never closed: close it now.
            let ended_at = self.host().last_run(&vm.id, stale).ended_at.unwrap_or(now);
            vms::vmm_ended(self.pool(), &vm.id, stale, ended_at, now).await?;
        }
        // The VM's jail uid, allocated in SQL on its first jailed start and kept until it is deleted.
        let mut vm = vm.clone();
        if let Some((first, last)) = self.settings().sandbox.uid_range() {
            let uid = crate::db::sandbox::allocate_uid(self.pool(), &vm.id, first, last).await?;
            vm.sandbox_uid = Some(i64::from(uid));
        }
        let vm = &vm;
        vms::vmm_started(self.pool(), &vm.id, &run_id, now).await?;
        fault::point("boot.before_spawn");
        let proc_ = match self.host().spawn(claim, vm, &image, &run_id).await {
            Ok(p) => p,
            Err(e) => {
                // Nothing runs: the claim went with the failed child or was dropped.
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
        self.watch(&vm.id, proc_, &run_id);
        Ok(())
    }

    /// Asks the host who runs the VM, waiting while the holder has not said who it is yet (a VMM records
    /// itself right after taking the lock; a child between fork and exec has not yet).
    pub(super) async fn probe(&self, vm_id: &str) -> Result<Probe, SupervisorError> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.start_timeout;
        loop {
            let probe = self.host().probe(vm_id)?;
            if !matches!(probe, Probe::Unknown) {
                return Ok(probe);
            }
            if tokio::time::Instant::now() > deadline {
                tracing::error!(vm_id, "the VM is held by a process that never identified itself");
                return Ok(probe);
            }
            tokio::time::sleep(HOLDER_POLL).await;
        }
    }

    /// Polls the VMM until it runs the guest; then `starting` → `running`.
    pub(super) async fn await_running(&self, vm_id: &str) {
        let deadline = tokio::time::Instant::now() + self.inner.settings.start_timeout;
        loop {
            if !self.is_running_process(vm_id) {
                // The host reports the end; `record_end` records it.
                return;
            }
            if self.host().state(vm_id).await.is_ok_and(|s| s == "running") {
                fault::point("boot.before_running");
                if self
                    .system(
                        vm_id,
                        &[VmState::Starting],
                        VmState::Running,
                        "",
                        "VMM running the guest",
                    )
                    .await
                {
                    self.watch_boot(vm_id);
                }
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let reason = "the VMM did not report running in time";
                lock(&self.inner.end_reasons).insert(vm_id.to_string(), reason.to_string());
                // The VM becomes `crashed` when its VMM is gone (`record_end` records it with this reason).
                self.end_process(vm_id, false).await;
                self.system(vm_id, &[VmState::Starting], VmState::Crashed, reason, reason)
                    .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn is_running_process(&self, vm_id: &str) -> bool {
        lock(&self.inner.handles)
            .get(vm_id)
            .is_some_and(|h| !*h.ended.borrow())
    }

    /// Has the host watch a VMM; its end comes back to `record_end`.
    fn watch(&self, vm_id: &str, proc_: VmmProcess, run_id: &str) {
        let (tx, _) = watch::channel(false);
        lock(&self.inner.handles).insert(
            vm_id.to_string(),
            Handle {
                process: proc_,
                ended: tx,
            },
        );
        self.host().watch(vm_id, proc_, run_id, self.inner.ended.clone());
    }

    /// Records a VMM's end (run closed, usage interval closed) and, if no action was ending it, the state
    /// its outcome means; then tells whoever waits for it.
    async fn record_end(&self, end: Ended) {
        fault::point("watch.exit_seen");
        let id = &end.vm_id;
        let now = db::now();
        let ended_at = end.ended_at.unwrap_or(now);
        if let Err(e) = vms::vmm_ended(self.pool(), id, &end.run_id, ended_at, now).await {
            tracing::error!(vm_id = id, error = %e, "cannot record the VMM's end");
        }
        let handle = {
            let mut handles = lock(&self.inner.handles);
            match handles.get(id) {
                Some(h) if h.process == end.process => handles.remove(id),
                _ => None,
            }
        };
        tracing::info!(vm_id = id, outcome = ?end.outcome, "VMM ended");
        let outcome = match lock(&self.inner.end_reasons).remove(id) {
            Some(reason) => Outcome::Failed(reason),
            None => end.outcome,
        };
        // Unexpected ends only: stop/reboot/delete flows make their own transition.
        for state in [VmState::Running, VmState::Starting] {
            if let Some((to, reason)) = lifecycle::after_unexpected_exit(state, &outcome) {
                let message = if reason.is_empty() {
                    "guest powered off"
                } else {
                    &reason
                };
                self.system(id, &[state], to, &reason, message).await;
            }
        }
        if let Some(h) = handle {
            h.ended.send_replace(true);
        }
    }

    /// Waits until the VM's VMM has ended (true) or the timeout passes (false).
    async fn wait_ended(&self, vm_id: &str, timeout: Duration) -> bool {
        let rx = lock(&self.inner.handles).get(vm_id).map(|h| h.ended.subscribe());
        let Some(mut rx) = rx else { return true };
        let ended = tokio::time::timeout(timeout, rx.wait_for(|ended| *ended)).await;
        ended.is_ok()
    }

    /// Ends the VM's VMM: gracefully (Ctrl-Alt-Del, up to the stop timeout) if asked, then forced (`stop`),
    /// then killed. Returns true once no VMM runs the VM — asked of the host, so a VMM whose sockets are
    /// gone or that nobody watched is found and ended too.
    pub(super) async fn end_process(&self, vm_id: &str, graceful: bool) -> bool {
        let guard = self.vm_lock(vm_id);
        let _held = guard.lock().await;
        if graceful && self.is_running_process(vm_id) {
            match self.host().shutdown(vm_id).await {
                Ok(()) => {
                    if self.wait_ended(vm_id, self.inner.settings.stop_timeout).await {
                        return self.ensure_gone(vm_id).await;
                    }
                    tracing::info!(vm_id, "guest did not power off in time; forcing");
                }
                Err(e) => tracing::warn!(vm_id, error = %e, "graceful shutdown request failed; forcing"),
            }
        }
        if self.is_running_process(vm_id)
            && !(self.host().stop(vm_id).await.is_ok() && self.wait_ended(vm_id, FORCE_GRACE).await)
        {
            let proc_ = lock(&self.inner.handles).get(vm_id).map(|h| h.process);
            if let Some(p) = proc_ {
                tracing::warn!(vm_id, pid = p.pid, "VMM did not stop; killing it");
                self.host().kill(p);
                self.wait_ended(vm_id, FORCE_GRACE).await;
            }
        }
        self.ensure_gone(vm_id).await
    }

    /// Makes sure no VMM holds the VM: a holder nobody watches is adopted, killed and waited for.
    async fn ensure_gone(&self, vm_id: &str) -> bool {
        for _ in 0..3 {
            let probe = match self.probe(vm_id).await {
                Ok(probe) => probe,
                Err(e) => {
                    tracing::error!(vm_id, error = %crate::telemetry::chain(&e), "cannot ask the host");
                    return false;
                }
            };
            match probe {
                // Our watcher records the end before it says "ended"; wait for that too.
                Probe::Free(_) => return self.wait_ended(vm_id, FORCE_GRACE).await,
                Probe::Running { process, run_id } => {
                    tracing::warn!(vm_id, pid = process.pid, "a VMM still holds the VM; killing it");
                    if !self.is_running_process(vm_id) {
                        if let Ok(Some(vm)) = vms::get(self.pool(), vm_id).await {
                            if let Err(e) = self.adopt(&vm, process, &run_id).await {
                                tracing::error!(vm_id, error = %crate::telemetry::chain(&e), "cannot adopt");
                            }
                        }
                    }
                    self.host().kill(process);
                    let _ = tokio::time::timeout(FORCE_GRACE, self.host().exited(process)).await;
                    self.wait_ended(vm_id, FORCE_GRACE).await;
                }
                Probe::Unknown => return false,
            }
        }
        false
    }

    /// Watches a VMM found holding the VM; the database's run becomes the VMM's if it was not.
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
        self.watch(&vm.id, process, run_id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
