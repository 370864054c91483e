//! Start-up reconciliation: the database says what should be running; `/proc` says what is. VMs whose VMM
//! still runs are adopted (watched and controllable again); the others get the state their VMM left them
//! in, and interrupted actions are finished.

use app::model::VmState;

use super::process::{self, Outcome, VmmProcess};
use super::supervisor::Supervisor;
use crate::db::vms;

impl Supervisor {
    /// Run once at start, before serving.
    pub async fn reconcile(&self) -> Result<(), vms::VmWriteError> {
        for vm in vms::list_live(self.pool()).await? {
            let state = vm.state();
            let proc_ = match (vm.pid, vm.pid_start_ticks) {
                (Some(pid), Some(ticks)) => Some(VmmProcess {
                    pid: i32::try_from(pid).unwrap_or(-1),
                    start_ticks: u64::try_from(ticks).unwrap_or(0),
                }),
                _ => None,
            };
            match proc_.filter(VmmProcess::is_alive) {
                Some(p) => self.readopt(&vm.id, state, p).await,
                None => self.settle(&vm.id, state, proc_.is_some()).await?,
            }
        }
        Ok(())
    }

    async fn readopt(&self, vm_id: &str, state: VmState, p: VmmProcess) {
        tracing::info!(vm_id, pid = p.pid, %state, "re-adopting a running VMM");
        self.adopt(vm_id, p);
        match state {
            VmState::Starting => {
                let this = self.clone();
                let id = vm_id.to_string();
                self.background(vm_id, "start", async move {
                    let control = this.run_dir(&id).join("control.sock");
                    this.await_running(&id, &control).await;
                    Ok(())
                });
            }
            VmState::Stopping => self.finish_stop(vm_id, true),
            VmState::Rebooting => self.finish_reboot(vm_id),
            VmState::Deleting => self.finish_delete(vm_id),
            // A VMM for a VM that should not have one: end it.
            VmState::Stopped | VmState::Crashed | VmState::Creating => {
                self.background(vm_id, "stray VMM", {
                    let this = self.clone();
                    let id = vm_id.to_string();
                    async move {
                        this.end_process(&id, false).await;
                        Ok(())
                    }
                });
            }
            VmState::Running | VmState::Deleted => {}
        }
    }

    /// The VMM is gone: record how it ended and finish what was in progress.
    async fn settle(&self, vm_id: &str, state: VmState, had_process: bool) -> Result<(), vms::VmWriteError> {
        if had_process {
            vms::set_process(self.pool(), vm_id, None).await?;
        }
        let note = "while the portal was not running";
        // Billing stops when the VMM recorded its exit, if it did; otherwise now (when it was noticed).
        let ended = process::exit_time(&self.run_dir(vm_id));
        match state {
            VmState::Creating => {
                let reason = "provisioning was interrupted by a portal restart";
                self.system_change(vm_id, state, VmState::Crashed, reason, None)
                    .await?;
            }
            VmState::Starting | VmState::Running => {
                match Outcome::decide(process::read_exit_status(&self.run_dir(vm_id)), None) {
                    Outcome::PoweredOff => {
                        self.system_change(
                            vm_id,
                            state,
                            VmState::Stopped,
                            &format!("guest powered off {note}"),
                            ended,
                        )
                        .await?;
                    }
                    Outcome::Failed(reason) => {
                        self.system_change(
                            vm_id,
                            state,
                            VmState::Crashed,
                            &format!("{reason} ({note})"),
                            ended,
                        )
                        .await?;
                    }
                }
            }
            VmState::Stopping => {
                self.system_change(vm_id, state, VmState::Stopped, &format!("stopped {note}"), ended)
                    .await?;
            }
            VmState::Rebooting => {
                if self
                    .system_change(
                        vm_id,
                        state,
                        VmState::Starting,
                        "restarting an interrupted reboot",
                        None,
                    )
                    .await?
                {
                    self.finish_start(vm_id);
                }
            }
            VmState::Deleting => self.finish_delete(vm_id),
            VmState::Stopped | VmState::Crashed | VmState::Deleted => {}
        }
        Ok(())
    }

    async fn system_change(
        &self,
        vm_id: &str,
        from: VmState,
        to: VmState,
        message: &str,
        happened_at: Option<i64>,
    ) -> Result<bool, vms::VmWriteError> {
        let reason = if to == VmState::Crashed { message } else { "" };
        let t = vms::Transition {
            vm_id,
            from: &[from],
            to,
            reason,
            actor: None,
            message,
            happened_at,
        };
        Ok(self.transition(&t).await?.is_some())
    }
}
