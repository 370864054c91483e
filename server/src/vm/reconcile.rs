//! Start-up reconciliation: the database says what should be running; each VM's run lock says what is.
//! A VM whose lock a VMM holds gets that VMM adopted (watched and controllable again) and its interrupted
//! action finished; a VM whose lock is free has no VMM and none can start while we hold the lock, so its
//! run is closed at the time its VMM recorded (or, if it never ran, when it was recorded) and its state
//! settled by `lifecycle::without_vmm`. VMMs in run directories of VMs the database does not know as live
//! are ended. No pid, socket or timing is trusted for any of this.

use app::model::VmState;

use super::host::Probe;
use super::lifecycle::{self, Resume, Settle};
use super::process::Outcome;
use super::supervisor::{Supervisor, SupervisorError};
use crate::db::{self, usage, vms};

impl Supervisor {
    /// Run once at start, before serving.
    pub async fn reconcile(&self) -> Result<(), SupervisorError> {
        let live = vms::list_live(self.pool()).await?;
        for vm in &live {
            match self.probe(&vm.id).await? {
                Probe::Running { process, run_id } => {
                    tracing::info!(vm_id = vm.id, pid = process.pid, state = %vm.state(), "re-adopting a running VMM");
                    self.adopt(vm, process, &run_id).await?;
                    if vm.state() == VmState::Running && vm.guest_ready_rule.is_empty() {
                        self.watch_boot(&vm.id);
                    }
                    self.resume(&vm.id, vm.state());
                }
                Probe::Free(claim) => {
                    // Held (when the VM has files) until settled: no VMM can start meanwhile.
                    self.settle(vm).await?;
                    drop(claim);
                    self.after_settle(&vm.id).await?;
                }
                Probe::Unknown => {
                    tracing::error!(
                        vm_id = vm.id,
                        "VM left as it is: its run lock's holder is unknown"
                    );
                }
            }
        }
        let closed = usage::close_without_run(self.pool(), db::now()).await?;
        if closed > 0 {
            tracing::warn!(closed, "closed usage intervals of VMs without a VMM run");
        }
        self.end_strays(&live).await
    }

    /// Continues what the VM's state says was in progress, now that its VMM is adopted.
    fn resume(&self, vm_id: &str, state: VmState) {
        match lifecycle::with_vmm(state) {
            Resume::Keep => {}
            Resume::AwaitRunning => {
                let this = self.clone();
                let id = vm_id.to_string();
                self.background(vm_id, "start", async move {
                    this.await_running(&id).await;
                    Ok(())
                });
            }
            Resume::FinishStop => self.finish_stop(vm_id, true),
            Resume::FinishReboot => self.finish_reboot(vm_id),
            Resume::FinishDelete => self.finish_delete(vm_id),
            Resume::EndStray => {
                let this = self.clone();
                let id = vm_id.to_string();
                self.background(vm_id, "stray VMM", async move {
                    this.end_process(&id, false).await;
                    Ok(())
                });
            }
        }
    }

    /// The VM has no VMM (its lock is held by the caller): close its run and record how it ended.
    async fn settle(&self, vm: &vms::VmRow) -> Result<(), SupervisorError> {
        let note = "while the portal was not running";
        let now = db::now();
        let (outcome, ran) = match vm.vmm_run_id.as_deref() {
            Some(run_id) => {
                let run = self.host().last_run(&vm.id, run_id);
                // Billing stops when the VMM recorded its exit; if it never ran, its interval is empty;
                // if it vanished without a word, when that was noticed.
                let ended_at = match (run.ended_at, run.started) {
                    (Some(t), _) => t,
                    (None, false) => i64::MIN,
                    (None, true) => now,
                };
                vms::vmm_ended(self.pool(), &vm.id, run_id, ended_at, now).await?;
                (run.outcome, run.started)
            }
            None => (
                Outcome::Failed("VMM process vanished without recording an exit status".into()),
                false,
            ),
        };
        let state = vm.state();
        match lifecycle::without_vmm(state) {
            Settle::Keep | Settle::FinishDelete | Settle::Provision => {}
            Settle::Boot => {}
            Settle::BootUnlessRan if !ran => {}
            Settle::Stopped => {
                self.change(&vm.id, state, VmState::Stopped, &format!("stopped {note}"))
                    .await?;
            }
            Settle::FromOutcome | Settle::BootUnlessRan => {
                let (to, message) = match outcome {
                    Outcome::PoweredOff if state == VmState::Running => {
                        (VmState::Stopped, format!("guest powered off {note}"))
                    }
                    Outcome::PoweredOff => (VmState::Crashed, format!("VMM exited while starting ({note})")),
                    Outcome::Failed(reason) => (VmState::Crashed, format!("{reason} ({note})")),
                };
                self.change(&vm.id, state, to, &message).await?;
            }
        }
        Ok(())
    }

    /// What settling leaves to do once the run lock is released: boot again or finish a delete.
    async fn after_settle(&self, vm_id: &str) -> Result<(), SupervisorError> {
        let Some(vm) = vms::get(self.pool(), vm_id).await? else {
            return Ok(());
        };
        let state = vm.state();
        match lifecycle::without_vmm(state) {
            Settle::Boot => {
                let message = "restarting an interrupted action";
                if self.change(vm_id, state, VmState::Starting, message).await? {
                    self.finish_start(vm_id);
                }
            }
            // Still `starting` after settling: its VMM never ran.
            Settle::BootUnlessRan => self.finish_start(vm_id),
            Settle::Provision => self.provision(vm_id),
            Settle::FinishDelete => self.finish_delete(vm_id),
            Settle::Keep | Settle::FromOutcome | Settle::Stopped => {}
        }
        Ok(())
    }

    /// Ends VMMs of VMs that are not live (deleted, or unknown to the database) still on the host.
    async fn end_strays(&self, live: &[vms::VmRow]) -> Result<(), SupervisorError> {
        for id in self.host().vm_ids() {
            if live.iter().any(|vm| vm.id == id) {
                continue;
            }
            if let Probe::Running { process, .. } = self.host().probe(&id)? {
                tracing::warn!(
                    vm_id = id,
                    pid = process.pid,
                    "ending a VMM of a VM that is not live"
                );
                self.host().kill(process);
                self.host().exited(process).await;
            }
        }
        Ok(())
    }

    async fn change(
        &self,
        vm_id: &str,
        from: VmState,
        to: VmState,
        message: &str,
    ) -> Result<bool, SupervisorError> {
        let reason = if to == VmState::Crashed { message } else { "" };
        let t = vms::Transition {
            vm_id,
            from: &[from],
            to,
            reason,
            actor: None,
            message,
            happened_at: None,
        };
        Ok(self.transition(&t).await?.is_some())
    }
}
