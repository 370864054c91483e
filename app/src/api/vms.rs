//! Virtual machines and the catalogue, for the tenant's pages. Bodies run in the service, which enforces
//! tenancy: a VM id of another tenant is "not found".

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{FlavorView, ImageView, VmDetail, VmView};

#[server(prefix = "/api/fn", endpoint = "list_vms")]
pub async fn list_vms() -> Result<Vec<VmView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_vms(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "get_vm")]
pub async fn get_vm(id: String) -> Result<VmDetail, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.get_vm(&caller, id).await }).await
}

/// `network_id` empty: the tenant's default network; `security_group_ids` (comma-separated) empty: the
/// default group; `key_pair_ids` (comma-separated): saved keys to add to `ssh_key`.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api/fn", endpoint = "launch_vm")]
pub async fn launch_vm(
    name: String,
    image_id: String,
    flavor_id: String,
    ssh_key: String,
    user_data: String,
    #[server(default)] network_id: String,
    #[server(default)] security_group_ids: String,
    #[server(default)] key_pair_ids: String,
) -> Result<VmView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let network_id = Some(network_id.trim().to_string()).filter(|id| !id.is_empty());
        let security_group_ids = security_group_ids
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        let req = crate::model::LaunchRequest {
            name,
            image_id,
            flavor_id,
            ssh_key,
            user_data,
            network_id,
            security_group_ids,
            key_pair_ids: crate::api::key_pairs::split_ids(&key_pair_ids),
        };
        portal.launch_vm(&caller, req).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "act_on_vm")]
pub async fn act_on_vm(id: String, action: String) -> Result<VmView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let action = crate::model::VmAction::parse(&action)
            .ok_or_else(|| AppError::invalid("action", "Unknown action."))?;
        portal.vm_action(&caller, id, action).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "list_flavors")]
pub async fn list_flavors() -> Result<Vec<FlavorView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_flavors(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "list_images")]
pub async fn list_images() -> Result<Vec<ImageView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_images(&caller).await }).await
}
