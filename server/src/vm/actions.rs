//! The slow halves of the user actions, run in the background after the first transition: provisioning
//! a launched VM's files, and finishing stop, reboot, start and delete. Each makes its next transition only
//! once the step it waits for has really happened (a VMM gone, files removed), so a crash between steps
//! leaves a state that `reconcile` can finish.

use app::model::VmState;

use super::fault;
use super::supervisor::{Supervisor, SupervisorError};
use crate::db::{images, vms};

impl Supervisor {
    /// After launch: disks, then boot.
    pub fn provision(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "provision", async move {
            fault::point("provision.begin");
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
            fault::point("provision.files_ready");
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
        Ok(self.host().prepare(&vm, &image).await?)
    }

    /// `stopping` → (process gone) → `stopped`.
    pub fn finish_stop(&self, vm_id: &str, graceful: bool) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "stop", async move {
            fault::point("stop.begin");
            if !this.end_process(&id, graceful).await {
                return Err(SupervisorError::StillRunning(id));
            }
            fault::point("stop.vmm_gone");
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
            fault::point("reboot.begin");
            if !this.end_process(&id, true).await {
                return Err(SupervisorError::StillRunning(id));
            }
            fault::point("reboot.vmm_gone");
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

    /// `deleting` → (forced off, files removed) → `deleted`. The files go only once no VMM holds the VM.
    pub fn finish_delete(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        self.background(vm_id, "delete", async move {
            fault::point("delete.begin");
            if !this.end_process(&id, false).await {
                return Err(SupervisorError::StillRunning(id));
            }
            fault::point("delete.vmm_gone");
            this.host().remove(&id).await?;
            fault::point("delete.files_removed");
            crate::db::sandbox::release_uid(this.pool(), &id).await?;
            this.system(
                &id,
                &[VmState::Deleting],
                VmState::Deleted,
                "",
                "disk and run directory removed",
            )
            .await;
            // Its address, lease and rules are released with it: the host follows.
            if let Some(net) = &this.settings().network {
                net.changed();
            }
            this.forget(&id);
            Ok(())
        });
    }

    /// Forces off every VM this portal supervises (only when configured to stop VMs with the portal).
    pub async fn stop_all(&self) {
        let ids = self.supervised();
        for id in ids {
            self.system(
                &id,
                &[VmState::Running, VmState::Starting, VmState::Rebooting],
                VmState::Stopping,
                "",
                "portal shutting down",
            )
            .await;
            if self.end_process(&id, false).await {
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
    }
}
