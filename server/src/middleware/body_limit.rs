//! Request body limits, checked while the body streams: a declared `Content-Length` over the limit is
//! refused (413) before a byte is read, and a body that passes the limit while streaming (chunked, or
//! lying about its length) ends with an error for whoever reads it, after which the answer is 413 too —
//! whatever the handler made of the error. Nothing is buffered here.
//!
//! Image uploads (`POST /api/v1/images`) stream to disk under their own, larger limit; every other
//! request gets `MAX_BODY_BYTES`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use app::error::AppError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_LENGTH;
use http::Method;
use http_body::Frame;
use http_body_util::{LengthLimitError, Limited};

use crate::api::ApiError;

/// Request bodies larger than this are refused (413). Uploads get their own limit.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;

/// The limits in force.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub default: u64,
    /// The whole of an image upload (`max_image_upload_mib`), plus room for the form's own framing.
    pub upload: u64,
}

impl BodyLimits {
    fn of(&self, method: &Method, path: &str) -> u64 {
        if method == Method::POST && path == "/api/v1/images" {
            self.upload
        } else {
            self.default
        }
    }
}

/// A body that records whether it was cut off by its limit.
struct Watched {
    inner: Limited<Body>,
    over: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            if e.is::<LengthLimitError>() {
                self.over.store(true, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn too_large() -> Response {
    ApiError(AppError::TooLarge).into_response()
}

pub async fn limit_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let limit = limits.of(req.method(), req.uri().path());
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        tracing::info!(limit, declared, path = %req.uri().path(), "request body over the limit");
        return too_large();
    }
    let over = Arc::new(AtomicBool::new(false));
    let watched = over.clone();
    let req = req.map(|body| {
        Body::new(Watched {
            inner: Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)),
            over: watched,
        })
    });
    let res = next.run(req).await;
    if over.load(Ordering::Relaxed) {
        tracing::info!(limit, "request body passed the limit while streaming");
        return too_large();
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_have_their_own_limit_and_everything_else_the_default() {
        let limits = BodyLimits {
            default: 10,
            upload: 1000,
        };
        assert_eq!(limits.of(&Method::POST, "/api/v1/images"), 1000);
        assert_eq!(limits.of(&Method::POST, "/api/fn/launch_vm"), 10);
        assert_eq!(limits.of(&Method::PUT, "/api/v1/images"), 10);
    }
}
