//! API extractors: who is calling (bearer token or session). Inputs are in `inputs.rs`.

use app::error::AppError;
use app::port::Caller;
use axum::extract::FromRequestParts;
use http::header::AUTHORIZATION;
use http::request::Parts;

use super::ApiError;
use crate::state::AppState;

/// The caller of an API request, authenticated by `Authorization: Bearer <token>`.
pub struct ApiCaller(pub Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError(AppError::Unauthenticated))?;
        Ok(Self(state.service.bearer_caller(secret).await?))
    }
}

/// The caller by bearer token if the request carries one, else by session cookie: for endpoints the
/// browser uses directly (the event stream, image uploads from the admin page).
pub struct AnyCaller(pub Caller);

impl FromRequestParts<AppState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let ApiCaller(caller) = ApiCaller::from_request_parts(parts, state).await?;
            return Ok(Self(caller));
        }
        use app::port::Accounts;
        Ok(Self(state.service.session_caller(parts).await?))
    }
}
