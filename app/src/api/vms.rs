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

#[server(prefix = "/api/fn", endpoint = "launch_vm")]
pub async fn launch_vm(
    name: String,
    image_id: String,
    flavor_id: String,
    ssh_key: String,
    user_data: String,
) -> Result<VmView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let req = crate::model::LaunchRequest {
            name,
            image_id,
            flavor_id,
            ssh_key,
            user_data,
            network_id: None,
            security_group_ids: Vec::new(),
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
