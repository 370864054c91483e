//! `/api/v1/tenants` and `/api/v1/users` (admin only; members get 403).

use app::model::{NewUser, TenantView, UserView};
use app::port::Admin;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;

use super::{ApiCaller, ApiError, ApiJson};
use crate::state::AppState;

pub async fn list_tenants(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    Ok(Json(state.service.list_tenants(&caller).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_tenant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state
        .service
        .create_tenant(&caller, body.name, body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDisabled {
    disabled: bool,
}

pub async fn update_tenant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetDisabled>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(
        state
            .service
            .set_tenant_disabled(&caller, id, body.disabled)
            .await?,
    ))
}

pub async fn list_users(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(state.service.list_users(&caller).await?))
}

pub async fn create_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.service.create_user(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn update_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetDisabled>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        state
            .service
            .set_user_disabled(&caller, id, body.disabled)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: String,
}

pub async fn reset_password(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    state.service.reset_password(&caller, id, body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
