//! VM consoles in the browser, the WebSocket edge: the `GET /console/{vm}/ws?token=…` upgrade and the proxy
//! to the VMM's `vnc.sock` and `serial.sock` (`proxy`). Tokens, tenancy and the VMM socket are the
//! service's (`service::console`): this file checks the handshake, asks the service to open the console
//! and runs the proxy on what it gets back.
//!
//! The token is redeemed before the upgrade is answered, so refusals are plain JSON errors (401/403/404/409)
//! in the API's envelope. Browsers send cookies with cross-site WebSocket handshakes, so a handshake with a
//! foreign `Origin` is refused too, even though the token already binds the session.

pub mod proxy;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::api::ErrorEnvelope;
use crate::auth::csrf::{self, OriginPolicy};
use crate::service::ConsoleError;
use crate::state::AppState;

/// The console routes (outside `/api/v1`: browsers open them directly with a token).
pub fn router(policy: OriginPolicy) -> Router<AppState> {
    Router::new()
        .route("/console/{vm}/ws", get(console_ws))
        .layer(Extension(policy))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

fn refuse(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Response {
    ErrorEnvelope::new(status.as_u16(), kind, message).into_response()
}

fn refusal(err: &ConsoleError) -> Response {
    ErrorEnvelope::new(err.status(), err.kind(), err.to_string()).into_response()
}

/// `GET /console/{vm}/ws?token=…`: checks the token, then upgrades and proxies until either side ends.
async fn console_ws(
    State(state): State<AppState>,
    Extension(policy): Extension<OriginPolicy>,
    UrlPath(vm_id): UrlPath<String>,
    Query(query): Query<WsQuery>,
    mut request: Request,
) -> Response {
    if !csrf::origin_is_own(&policy, request.headers()) {
        tracing::warn!(vm_id, "refused a console WebSocket from a foreign origin");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This console was opened from another site.",
        );
    }
    // Before the token: a plain GET must not burn it.
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "This is a WebSocket endpoint: open it with a WebSocket client.",
        );
    }
    let offers_binary = offers_protocol(request.headers(), "binary");
    let (mut response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("Not a valid WebSocket handshake: {e}."),
            )
        }
    };
    // noVNC asks for `binary`; a browser fails a handshake whose requested protocol is not echoed.
    if offers_binary {
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("binary"));
    }
    let token = query.token.unwrap_or_default();
    let session = match state.service.open_console_session(&vm_id, &token).await {
        Ok(s) => s,
        Err(e) => return refusal(&e),
    };
    tokio::spawn(async move {
        let vm_id = session.vm_id;
        let kind = session.kind.as_str();
        let ws = match upgraded.await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(vm_id, error = %e, "console WebSocket upgrade failed");
                return;
            }
        };
        tracing::info!(vm_id, kind, user = %session.caller.username, "console opened");
        let mut ws = ws;
        if !session.replay.is_empty() {
            let frame = fastwebsockets::Frame::binary(fastwebsockets::Payload::from(session.replay));
            if let Err(e) = ws.write_frame(frame).await {
                tracing::warn!(vm_id, error = %e, "console replay not sent");
                return;
            }
        }
        let limits = proxy::Limits::default();
        let end = proxy::run_until(ws, session.vmm, &vm_id, session.changes, limits, session.revoked).await;
        tracing::info!(vm_id, kind, why = %end, "console closed");
    });
    response.map(Body::new)
}

/// Whether the handshake's `Sec-WebSocket-Protocol` lists `protocol`.
fn offers_protocol(headers: &HeaderMap, protocol: &str) -> bool {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}
