//! `/api/v1/quota(s)`, `/api/v1/usage` (JSON and CSV) and `/api/v1/audit`.

use app::model::{AuditCheck, AuditQuery, AuditView, Invoice, QuotaSet, QuotaView};
use app::port::Billing;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AnyCaller, ApiCaller, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(get, path = "/quota", tag = "billing", responses((status = 200, body = QuotaView)))]
pub async fn my_quota(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<QuotaView>, ApiError> {
    Ok(Json(state.service.my_quota(&caller).await?))
}

#[utoipa::path(get, path = "/quotas", tag = "billing", responses((status = 200, body = [QuotaView]), (status = 403)))]
pub async fn list_quotas(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<QuotaView>>, ApiError> {
    Ok(Json(state.service.list_quotas(&caller).await?))
}

#[utoipa::path(get, path = "/quotas/defaults", tag = "billing",
    responses((status = 200, description = "The limits of tenants without their own, every network limit included",
        body = QuotaSet), (status = 403)))]
pub async fn quota_defaults(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<QuotaSet>, ApiError> {
    Ok(Json(state.service.quota_defaults(&caller).await?))
}

/// Sets a tenant's limits, or the defaults. The four compute limits are required; a network limit
/// (`networks`, `floating_ips`, `port_forwards`) left out keeps the value in force — the tenant's own, or
/// the defaults' if it had none — so a client that does not know them changes nothing there.
#[utoipa::path(put, path = "/quotas/{tenant_id}", tag = "billing", request_body = QuotaSet,
    params(("tenant_id" = String, Path, description = "Tenant id, or `*` for the defaults")),
    responses((status = 204), (status = 403), (status = 422)))]
pub async fn set_quota(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(tenant_id): ApiPath<String>,
    ApiJson(limits): ApiJson<QuotaSet>,
) -> Result<StatusCode, ApiError> {
    state.service.set_quota(&caller, tenant_id, limits).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// `YYYY-MM` (UTC); default: this month.
    #[serde(default)]
    #[param(required = false)]
    month: String,
}

#[utoipa::path(get, path = "/usage", tag = "billing", params(MonthQuery),
    responses((status = 200, description = "The caller's tenant's invoice for the month", body = Invoice)))]
pub async fn my_usage(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiQuery(q): ApiQuery<MonthQuery>,
) -> Result<Json<Invoice>, ApiError> {
    Ok(Json(state.service.my_invoice(&caller, q.month).await?))
}

fn csv(inv: &Invoice, name: &str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{}.csv\"", inv.month),
            ),
        ],
        crate::billing::to_csv(inv),
    )
}

#[utoipa::path(get, path = "/usage.csv", tag = "billing", params(MonthQuery),
    responses((status = 200, description = "The caller's tenant's invoice as CSV", content_type = "text/csv")))]
pub async fn my_usage_csv(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiQuery(q): ApiQuery<MonthQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(csv(&state.service.my_invoice(&caller, q.month).await?, "invoice"))
}

#[utoipa::path(get, path = "/admin/usage", tag = "billing", params(MonthQuery),
    responses((status = 200, description = "Every tenant's usage for the month", body = Invoice), (status = 403)))]
pub async fn all_usage(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiQuery(q): ApiQuery<MonthQuery>,
) -> Result<Json<Invoice>, ApiError> {
    Ok(Json(state.service.all_usage(&caller, q.month).await?))
}

#[utoipa::path(get, path = "/admin/usage.csv", tag = "billing", params(MonthQuery),
    responses((status = 200, description = "Every tenant's usage as CSV", content_type = "text/csv"), (status = 403)))]
pub async fn all_usage_csv(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiQuery(q): ApiQuery<MonthQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(csv(
        &state.service.all_usage(&caller, q.month).await?,
        "usage-all-tenants",
    ))
}

/// The response header carrying how many entries match the filters (all pages).
const TOTAL_COUNT: http::HeaderName = http::HeaderName::from_static("x-total-count");

#[utoipa::path(get, path = "/audit", tag = "billing", params(AuditQuery),
    responses((status = 200, description = "The entries matching the filters, newest first unless `sort=at`, one page \
                (default 200)", body = [AuditView],
               headers(("X-Total-Count" = u64, description = "How many entries match the filters (all pages)"))),
              (status = 422, description = "A parameter is not valid (e.g. a date that is not YYYY-MM-DD); the error names it"),
              (status = 403, description = "Not an admin")))]
pub async fn audit_log(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page = state.service.audit_log(&caller, q).await?;
    Ok(([(TOTAL_COUNT, page.total.to_string())], Json(page.items)))
}

#[utoipa::path(get, path = "/audit/verify", tag = "billing", responses((status = 200, body = AuditCheck), (status = 403)))]
pub async fn verify_audit(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<AuditCheck>, ApiError> {
    Ok(Json(state.service.verify_audit(&caller).await?))
}
