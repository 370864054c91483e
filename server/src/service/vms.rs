//! A tenant's VMs: list, detail, launch, actions. Tenancy is enforced here: another tenant's VM reads as
//! "not found" on every route, and actions are checked against the state machine before anything happens.

use app::error::AppError;
use app::model::{BootPhase, GuestBoot, LaunchRequest, VmAction, VmDetail, VmEventView, VmState, VmView};
use app::port::{Caller, Vms};
use async_trait::async_trait;

use super::{internal, Service};
use crate::db::{self, format_time, vms};
use crate::domain::{parse_id, parse_user_data, VmName};
use crate::vm::lifecycle::{allowed_from, first_step};

pub(crate) fn vm_view(row: &vms::VmRow) -> VmView {
    VmView {
        id: row.id.clone(),
        name: row.name.clone(),
        tenant_id: row.tenant_id.clone(),
        state: row.state(),
        state_reason: row.state_reason.clone(),
        image_id: row.image_id.clone(),
        image_name: row.image_name.clone(),
        flavor_id: row.flavor_id.clone(),
        flavor_name: row.flavor_name.clone(),
        vcpus: u32::try_from(row.vcpus).unwrap_or(0),
        memory_mib: u32::try_from(row.memory_mib).unwrap_or(0),
        disk_gib: u32::try_from(row.disk_gib).unwrap_or(0),
        created_at: format_time(row.created_at),
        started_at: row.started_at.map(format_time),
        boot: guest_boot(row),
    }
}

/// A running VM's boot progress (`vm::boot_watch` records it).
fn guest_boot(row: &vms::VmRow) -> Option<GuestBoot> {
    if row.state() != VmState::Running {
        return None;
    }
    let phase = match row.guest_ready_rule.as_str() {
        "" => BootPhase::Booting,
        "none" => BootPhase::NoSignal,
        _ => BootPhase::Ready,
    };
    Some(GuestBoot {
        phase,
        line: row.boot_line.clone(),
        ready_after_ms: row.guest_ready_after_ms.and_then(|ms| u64::try_from(ms).ok()),
        ready_at: row.guest_ready_at.map(format_time),
    })
}

/// The audit log's name for a requested VM action.
fn audit_action(action: VmAction) -> &'static str {
    match action {
        VmAction::Start => "vm_start",
        VmAction::Stop => "vm_stop",
        VmAction::Reboot => "vm_reboot",
        VmAction::ForceOff => "vm_force_off",
        VmAction::Delete => "vm_delete",
    }
}

fn event_view(row: &vms::EventRow) -> VmEventView {
    VmEventView {
        at: format_time(row.at),
        from_state: row.from_state.as_deref().and_then(VmState::parse),
        to_state: VmState::parse(&row.to_state).unwrap_or(VmState::Crashed),
        actor: row.actor.clone().unwrap_or_else(|| "system".into()),
        message: row.message.clone(),
    }
}

/// A refused write: over quota (which limit, by how much), or an internal failure.
pub(crate) fn write_error(e: vms::VmWriteError) -> AppError {
    match e {
        vms::VmWriteError::Quota(q) => AppError::QuotaExceeded {
            resource: q.resource.to_string(),
            message: format!("{q}."),
        },
        vms::VmWriteError::Addresses(message) => AppError::conflict(message),
        vms::VmWriteError::HostFull(full) => AppError::conflict(format!("{full}.")),
        vms::VmWriteError::Db(e) => internal(e),
    }
}

impl Service {
    /// The caller's tenant's VM; any other VM (or a deleted one) is not found.
    pub(crate) async fn tenant_vm(&self, caller: &Caller, id: &str) -> Result<vms::VmRow, AppError> {
        let id = parse_id("VM", id)?;
        match vms::get(self.pool(), &id).await.map_err(internal)? {
            Some(vm) if vm.tenant_id == caller.tenant_id && vm.state() != VmState::Deleted => Ok(vm),
            _ => Err(AppError::not_found("VM")),
        }
    }
}

#[async_trait]
impl Vms for Service {
    async fn list_vms(&self, caller: &Caller) -> Result<Vec<VmView>, AppError> {
        let rows = vms::list_for_tenant(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(vm_view).collect())
    }

    async fn get_vm(&self, caller: &Caller, vm_id: String) -> Result<VmDetail, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        let events = vms::events(self.pool(), &vm.id, 200).await.map_err(internal)?;
        Ok(VmDetail {
            vm: vm_view(&vm),
            events: events.iter().map(event_view).collect(),
            network: self.vm_network(&vm.id).await?,
        })
    }

    async fn launch_vm(&self, caller: &Caller, req: LaunchRequest) -> Result<VmView, AppError> {
        let name = VmName::parse(&req.name)?;
        let ssh_key = self.launch_keys(caller, &req.ssh_key, &req.key_pair_ids).await?;
        let user_data = parse_user_data(&req.user_data)?;
        if req.image_id.trim().is_empty() {
            return Err(AppError::invalid("image_id", "Choose an image."));
        }
        if req.flavor_id.trim().is_empty() {
            return Err(AppError::invalid("flavor_id", "Choose a flavor."));
        }
        self.check_launch_network(caller, req.network_id.as_deref(), &req.security_group_ids)
            .await?;
        let image = self.visible_image(caller, &req.image_id).await?;
        let flavor = self.flavor(&req.flavor_id).await?;
        if flavor.disabled {
            return Err(AppError::invalid(
                "flavor_id",
                format!("Flavor {} is not offered any more.", flavor.name),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let plan = self.network().map(|n| n.plan());
        let new = vms::NewVm {
            id: &id,
            tenant_id: &caller.tenant_id,
            created_by: &caller.user_id,
            name: name.as_str(),
            image_id: &image.id,
            flavor_id: &flavor.id,
            vcpus: flavor.vcpus,
            memory_mib: flavor.memory_mib,
            disk_gib: flavor.disk_gib,
            ssh_key: &ssh_key,
            user_data,
            network: plan.as_ref(),
            network_id: req.network_id.as_deref(),
            security_groups: &req.security_group_ids,
        };
        match vms::insert(self.pool(), &new, db::now()).await {
            Ok(()) => {}
            Err(vms::VmWriteError::Db(e)) if db::is_unique_violation(&e) => {
                return Err(AppError::invalid(
                    "name",
                    format!("You already have a VM named {}.", name.as_str()),
                ))
            }
            Err(e) => return Err(write_error(e)),
        }
        tracing::info!(vm_id = id, user = caller.username, "VM launched");
        let detail = format!(
            "name={} image={} flavor={}",
            name.as_str(),
            image.name,
            flavor.name
        );
        self.audit(Some(caller), "vm_launch", &format!("vm:{id}"), &detail)
            .await;
        self.supervisor().provision(&id);
        let vm = self.tenant_vm(caller, &id).await?;
        Ok(vm_view(&vm))
    }

    async fn vm_action(&self, caller: &Caller, vm_id: String, action: VmAction) -> Result<VmView, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        let request = ActionRequest {
            message: format!("{} requested", action.label()),
            audit_action: audit_action(action),
            audit_detail: format!("name={}", vm.name),
        };
        self.act_on(caller, &vm, action, &request).await
    }
}

/// What differs between a tenant's and an admin's power action: the history message and the audit entry.
pub(super) struct ActionRequest<'a> {
    pub message: String,
    pub audit_action: &'a str,
    pub audit_detail: String,
}

impl Service {
    /// Takes `vm` (already checked as the caller's to act on) into `action`'s first state if its state
    /// allows it (a conflict naming the state otherwise), records it, and lets the supervisor finish it.
    pub(super) async fn act_on(
        &self,
        caller: &Caller,
        vm: &vms::VmRow,
        action: VmAction,
        request: &ActionRequest<'_>,
    ) -> Result<VmView, AppError> {
        let t = vms::Transition {
            vm_id: &vm.id,
            from: &allowed_from(action),
            to: first_step(action),
            reason: "",
            actor: Some(&caller.user_id),
            message: &request.message,
            happened_at: None,
        };
        let previous = self.supervisor().transition(&t).await.map_err(write_error)?;
        if previous.is_none() {
            // Re-read: the state may have changed since the caller's check.
            let now = vms::get(self.pool(), &vm.id)
                .await
                .map_err(internal)?
                .map(|v| v.state())
                .filter(|s| *s != VmState::Deleted)
                .ok_or_else(|| AppError::not_found("VM"))?;
            return Err(AppError::conflict(format!(
                "Cannot {} VM {} while it is {now}.",
                action.label().to_lowercase(),
                vm.name
            )));
        }
        self.audit(
            Some(caller),
            request.audit_action,
            &format!("vm:{}", vm.id),
            &request.audit_detail,
        )
        .await;
        let sup = self.supervisor();
        match action {
            VmAction::Start => sup.finish_start(&vm.id),
            VmAction::Stop => sup.finish_stop(&vm.id, true),
            VmAction::ForceOff => sup.finish_stop(&vm.id, false),
            VmAction::Reboot => sup.finish_reboot(&vm.id),
            VmAction::Delete => sup.finish_delete(&vm.id),
        }
        let vm = vms::get(self.pool(), &vm.id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("VM"))?;
        Ok(vm_view(&vm))
    }
}
