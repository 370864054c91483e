//! API extractors and the JSON error response: who is calling (bearer token) and request bodies whose
//! rejections become clear JSON errors instead of axum's plain-text ones.

use app::error::AppError;
use app::port::Caller;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::startup::AppState;

/// An `AppError` answered as JSON with its HTTP status.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::json!({ "kind": self.0.kind(), "message": self.0.to_string() });
        if let Some(field) = self.0.field() {
            body["field"] = field.into();
        }
        let mut res = (status, axum::Json(serde_json::json!({ "error": body }))).into_response();
        match &self.0 {
            AppError::Unauthenticated => {
                res.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::TooManyRequests { retry_after_secs, .. } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    res.headers_mut().insert(RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        res
    }
}

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

/// `axum::Json` with rejections answered as `ApiError`s ("body: expected a string at line 1 ...").
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self(AppError::TooLarge);
        }
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "Send the body as JSON (Content-Type: application/json).".into()
            }
            other => format!("The request body is not valid: {}", other.body_text()),
        };
        Self(AppError::invalid("body", message))
    }
}
