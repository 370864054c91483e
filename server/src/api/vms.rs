//! `/api/v1/vms`: list, launch, show (with history), actions, delete.

use app::model::{LaunchRequest, VmAction, VmDetail, VmListQuery, VmView};
use app::port::{VmLists, Vms};
use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiCaller, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(get, path = "/vms", tag = "vms", params(VmListQuery),
    responses((status = 200, description = "The caller's tenant's VMs (not deleted) matching the filters, in order", body = [VmView])))]
pub async fn list_vms(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiQuery(query): ApiQuery<VmListQuery>,
) -> Result<Json<Vec<VmView>>, ApiError> {
    Ok(Json(state.service.search_vms(&caller, query).await?))
}

#[utoipa::path(post, path = "/vms", tag = "vms", request_body = LaunchRequest,
    responses((status = 202, description = "Created; provisioning and boot continue in the background", body = VmView),
              (status = 422, description = "Invalid input, with the field")))]
pub async fn launch_vm(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<LaunchRequest>,
) -> Result<(StatusCode, Json<VmView>), ApiError> {
    let vm = state.service.launch_vm(&caller, body).await?;
    Ok((StatusCode::ACCEPTED, Json(vm)))
}

/// A VM with its state history (newest first).
#[derive(serde::Serialize, ToSchema)]
pub struct VmWithEvents {
    #[serde(flatten)]
    vm: VmView,
    events: Vec<app::model::VmEventView>,
    network: app::model::VmNetworkView,
}

#[utoipa::path(get, path = "/vms/{id}", tag = "vms", params(("id" = String, Path, description = "VM id")),
    responses((status = 200, body = VmWithEvents), (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn get_vm(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VmWithEvents>, ApiError> {
    let VmDetail { vm, events, network } = state.service.get_vm(&caller, id).await?;
    Ok(Json(VmWithEvents { vm, events, network }))
}

/// `{"action": "start" | "stop" | "reboot" | "force_off" | "delete"}`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub(super) action: VmAction,
}

#[utoipa::path(post, path = "/vms/{id}/actions", tag = "vms", request_body = ActionRequest,
    params(("id" = String, Path, description = "VM id")),
    responses((status = 202, description = "Accepted; the VM is in its next (often transitional) state", body = VmView),
              (status = 409, description = "Not allowed in the VM's current state"),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn vm_action(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ActionRequest>,
) -> Result<(StatusCode, Json<VmView>), ApiError> {
    let vm = state.service.vm_action(&caller, id, body.action).await?;
    Ok((StatusCode::ACCEPTED, Json(vm)))
}

#[utoipa::path(delete, path = "/vms/{id}", tag = "vms", params(("id" = String, Path, description = "VM id")),
    responses((status = 202, description = "Deleting: forced off, then disk and run directory removed", body = VmView),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn delete_vm(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<VmView>), ApiError> {
    let vm = state.service.vm_action(&caller, id, VmAction::Delete).await?;
    Ok((StatusCode::ACCEPTED, Json(vm)))
}
