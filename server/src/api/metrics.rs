//! `GET /api/v1/vms/{id}/metrics?range=1h|1d|7d`: a VM's CPU, memory and disk rates (the caller's
//! tenant's VMs only).

use app::error::AppError;
use app::model::{MetricsRange, VmMetrics};
use app::port::Metrics;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiCaller, ApiError, ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// `1h` (raw samples, default), `1d` or `7d` (5-minute roll-ups).
    #[serde(default)]
    #[param(required = false, pattern = "^(1h|1d|7d)$")]
    range: Option<String>,
}

#[utoipa::path(get, path = "/vms/{id}/metrics", tag = "vms",
    params(("id" = String, Path, description = "VM id"), RangeQuery),
    responses((status = 200, description = "CPU %, memory and disk rates over the range, oldest first; \
        a gap longer than three `step_secs` between points means the VM was not running", body = VmMetrics),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn vm_metrics(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<VmMetrics>, ApiError> {
    let range = match q.range.as_deref() {
        None => MetricsRange::Hour,
        Some(r) => MetricsRange::parse(r.trim())
            .ok_or_else(|| AppError::invalid("range", "The range must be 1h, 1d or 7d."))?,
    };
    Ok(Json(state.service.vm_metrics(&caller, id, range).await?))
}
