//! `PATCH /api/v1/vms/{id}` (rename) and the admin's view of every tenant's VMs: `GET /api/v1/admin/vms`
//! (filter, sort, page) and `POST /api/v1/admin/vms/{id}/actions`.

use app::model::{AdminVmPage, RenameVm, VmListQuery, VmView};
use app::port::VmLists;
use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::vms::ActionRequest;
use super::{ApiCaller, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(patch, path = "/vms/{id}", tag = "vms", request_body = RenameVm,
    params(("id" = String, Path, description = "VM id")),
    responses((status = 200, description = "Renamed (the event stream tells the tenant's lists)", body = VmView),
              (status = 422, description = "Not a valid VM name, or the tenant has a VM of that name"),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn rename_vm(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RenameVm>,
) -> Result<Json<VmView>, ApiError> {
    Ok(Json(state.service.rename_vm(&caller, id, body.name).await?))
}

#[utoipa::path(get, path = "/admin/vms", tag = "admin", params(VmListQuery),
    responses((status = 200, description = "Every tenant's VMs matching the filters, one page (default 50)", body = AdminVmPage),
              (status = 403, description = "Not an admin")))]
pub async fn admin_vms(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiQuery(query): ApiQuery<VmListQuery>,
) -> Result<Json<AdminVmPage>, ApiError> {
    Ok(Json(state.service.admin_vms(&caller, query).await?))
}

#[utoipa::path(post, path = "/admin/vms/{id}/actions", tag = "admin", request_body = ActionRequest,
    params(("id" = String, Path, description = "VM id (any tenant's)")),
    responses((status = 202, description = "Accepted and audited; the VM is in its next state", body = VmView),
              (status = 409, description = "Not allowed in the VM's current state"),
              (status = 403, description = "Not an admin")))]
pub async fn admin_vm_action(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ActionRequest>,
) -> Result<(StatusCode, Json<VmView>), ApiError> {
    let vm = state.service.admin_vm_action(&caller, id, body.action).await?;
    Ok((StatusCode::ACCEPTED, Json(vm)))
}
