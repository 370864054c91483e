//! `/api/v1/tenants` and `/api/v1/users` (admin only; members get 403).

use app::model::{NewUser, TenantView, TokenView, UserView};
use app::port::Admin;
use app::wire::Envelope as Error;
use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiCaller, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(get, path = "/tenants", tag = "admin", params(app::model::TenantListQuery),
    responses((status = 200, body = [TenantView]), (status = 403, description = "Admins only", body = Error)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiQuery(query): ApiQuery<app::model::TenantListQuery>,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    let all = state.service.list_tenants(&caller).await?;
    Ok(Json(app::model::filter_tenants(all, &query)?))
}

/// A new tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 2–40 characters: letters (stored lowercase), digits and '-', starting with a letter.
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/tenants", tag = "admin", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 403, description = "Admins only", body = Error),
              (status = 409, description = "The name is taken", body = Error)))]
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

/// `{"disabled": true | false}`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDisabled {
    disabled: bool,
}

#[utoipa::path(patch, path = "/tenants/{id}", tag = "admin", request_body = SetDisabled,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Disabling ends the members' sessions, revokes their tokens and closes \
        their consoles and event streams", body = TenantView),
              (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such tenant", body = Error),
              (status = 409, description = "The caller's own tenant cannot be disabled", body = Error)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetDisabled>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(
        state
            .service
            .set_tenant_disabled(&caller, id, body.disabled)
            .await?,
    ))
}

#[utoipa::path(get, path = "/users", tag = "admin", params(app::model::UserListQuery),
    responses((status = 200, body = [UserView]), (status = 403, description = "Admins only", body = Error)))]
pub async fn list_users(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiQuery(query): ApiQuery<app::model::UserListQuery>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let all = state.service.list_users(&caller).await?;
    Ok(Json(app::model::filter_users(all, &query)?))
}

#[utoipa::path(post, path = "/users", tag = "admin", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such tenant", body = Error),
              (status = 409, description = "The username is taken", body = Error)))]
pub async fn create_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.service.create_user(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(patch, path = "/users/{id}", tag = "admin", request_body = SetDisabled,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Disabling ends the user's sessions, revokes their tokens and closes \
        their consoles and event streams", body = UserView),
              (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such user", body = Error),
              (status = 409, description = "One's own account, or the last active admin", body = Error)))]
pub async fn update_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetDisabled>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        state
            .service
            .set_user_disabled(&caller, id, body.disabled)
            .await?,
    ))
}

/// `{"password"}`: 10–256 characters, not only spaces.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: String,
}

#[utoipa::path(post, path = "/users/{id}/password", tag = "admin", request_body = ResetPassword,
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Set; the user's sessions end, their API tokens are revoked and their \
        consoles and event streams close"),
              (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such user", body = Error)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    state.service.reset_password(&caller, id, body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/users/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user's live API tokens", body = [TokenView]),
              (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such user", body = Error)))]
pub async fn list_user_tokens(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(state.service.list_user_tokens(&caller, id).await?))
}

#[utoipa::path(delete, path = "/users/{id}/tokens/{token_id}", tag = "admin",
    params(("id" = String, Path, description = "User id"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked; consoles and event streams opened with it close"),
              (status = 403, description = "Admins only", body = Error),
              (status = 404, description = "No such user or live token", body = Error)))]
pub async fn revoke_user_token(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath((id, token_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_user_token(&caller, id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
