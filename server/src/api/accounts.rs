//! `/api/v1/whoami` and `/api/v1/tokens`.

use app::model::{Me, NewToken, TokenView};
use app::port::{Accounts, ApiTokens};
use app::wire::Envelope as Error;
use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiCaller, ApiError, ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(get, path = "/whoami", tag = "accounts",
    responses((status = 200, description = "The caller, by their token", body = Me)))]
pub async fn whoami(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.service.me(&caller).await?))
}

#[utoipa::path(get, path = "/tokens", tag = "accounts",
    responses((status = 200, description = "The caller's live API tokens (never their secrets)", body = [TokenView])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(state.service.list_tokens(&caller).await?))
}

/// A new API token: a name (1–64 characters) and an optional lifetime.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    /// Days until it expires (1–3650); absent or null: never.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

#[utoipa::path(post, path = "/tokens", tag = "accounts", request_body = CreateToken,
    responses((status = 201, description = "The token and its secret, shown this once", body = NewToken),
              (status = 409, description = "The caller has 50 live tokens already", body = Error)))]
pub async fn create_token(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let token = state
        .service
        .create_token(&caller, body.name, body.expires_in_days)
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked; consoles and event streams opened with it close"),
              (status = 404, description = "No such live token of the caller", body = Error)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
