//! `/api/v1/whoami` and `/api/v1/tokens`.

use app::model::{Me, NewToken, TokenView};
use app::port::{Accounts, ApiTokens};
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;

use super::{ApiCaller, ApiError, ApiJson};
use crate::state::AppState;

pub async fn whoami(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.service.me(&caller).await?))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(state.service.list_tokens(&caller).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    expires_in_days: Option<u32>,
}

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

pub async fn revoke_token(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
