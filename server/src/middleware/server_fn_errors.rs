//! Server function errors answered with their own HTTP status. `server_fn` answers every error it makes
//! itself (arguments it cannot decode, a body over the limit) with 500, and only bodies that ran can set
//! another status; here the error in the answer decides: a missing field is 422, an oversized body 413, a
//! throttled sign-in 429 with `Retry-After`. A client's mistake is then not logged as a server failure.

use app::error::AppError;
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};

use server_fn::error::SERVER_FN_ERROR_HEADER as SERVER_FN_ERROR;

/// Error answers are a few hundred bytes; anything larger is left alone.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn status_from_error(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if !res.headers().contains_key(SERVER_FN_ERROR) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        tracing::warn!("server function error answer unreadable");
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let AppError::TooManyRequests { retry_after_secs, .. } = err {
            parts
                .headers
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}
