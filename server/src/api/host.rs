//! `GET /api/v1/admin/host`: the machine VMs run on (admins only).

use app::model::HostView;
use app::port::HostAdmin;
use app::wire::Envelope as Error;
use axum::extract::State;
use axum::Json;

use super::{ApiCaller, ApiError};
use crate::state::AppState;

#[utoipa::path(get, path = "/admin/host", tag = "admin",
    responses((status = 200, description = "CPUs, memory (MiB) and disk (MiB): physical, what VMs may commit \
        (admission control: physical x overcommit - reserve), committed by VMs holding resources, used (VMM \
        resident memory, blocks allocated by VM files); and every VM on the host", body = HostView),
              (status = 403, description = "Admins only", body = Error)))]
pub async fn host_view(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<HostView>, ApiError> {
    Ok(Json(state.service.host_view(&caller).await?))
}
