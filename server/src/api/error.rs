//! The one JSON error envelope, `{"error": {"kind", "message", "field"?}}`, answered by every REST error
//! (`ApiError`), the CSRF origin check and the console WebSocket's refusals. `kind` is a stable name
//! clients branch on (`AppError::kind` for service errors), `message` is safe to show a user.

use app::error::AppError;
use app::wire::{Detail, Envelope};
use axum::response::{IntoResponse, Response};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

/// An error answered as the JSON envelope with its HTTP status.
#[derive(Debug)]
pub struct ErrorEnvelope {
    status: StatusCode,
    body: Envelope,
}

impl ErrorEnvelope {
    /// `status` is an HTTP status code; one that is not becomes 500.
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Envelope {
                error: Detail {
                    kind: kind.to_string(),
                    message: message.into(),
                    field: None,
                    resource: None,
                    retry_after_secs: None,
                },
            },
        }
    }
}

impl From<&AppError> for ErrorEnvelope {
    fn from(err: &AppError) -> Self {
        Self {
            status: StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Envelope::from(err.clone()),
        }
    }
}

impl IntoResponse for ErrorEnvelope {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// An `AppError` answered as the envelope, with the headers its status calls for.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = ErrorEnvelope::from(&self.0).into_response();
        match &self.0 {
            AppError::Unauthenticated => {
                res.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::TooManyRequests { retry_after_secs, .. } => {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json_of(res: Response) -> (StatusCode, serde_json::Value) {
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn service_errors_and_edge_refusals_share_one_envelope() {
        let (status, body) =
            json_of(ApiError(AppError::invalid("name", "Name is required.")).into_response()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            serde_json::json!({ "error": { "kind": "invalid", "message": "Name is required.", "field": "name" } })
        );
        let (status, body) =
            json_of(ErrorEnvelope::new(426, "upgrade_required", "Use a WebSocket.").into_response()).await;
        assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(
            body,
            serde_json::json!({ "error": { "kind": "upgrade_required", "message": "Use a WebSocket." } })
        );
    }

    #[tokio::test]
    async fn unauthenticated_answers_ask_for_a_bearer_token() {
        let res = ApiError(AppError::Unauthenticated).into_response();
        assert_eq!(
            res.headers().get(WWW_AUTHENTICATE).map(HeaderValue::as_bytes),
            Some(&b"Bearer"[..])
        );
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["message"], "Please sign in.");
    }
}
