//! VM consoles in the browser: console tokens (`token`), the WebSocket proxy to the VMM's `vnc.sock` and
//! `serial.sock` (`proxy`), the `GET /console/{vm}/ws?token=…` upgrade, and the `Consoles` service (issue a
//! token, read the serial log through the VMM's control socket).
//!
//! A token is checked before the upgrade, so refusals are plain JSON errors (401/403/404/409). Browsers send
//! cookies with cross-site WebSocket handshakes, so a handshake with a foreign `Origin` is refused too, even
//! though the token already binds the session.

pub mod proxy;
pub mod token;

use app::api::console::{ConsoleKind, ConsoleLog, ConsoleTicket};
use app::error::AppError;
use app::model::VmState;
use app::port::{Caller, Consoles};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use tokio::net::UnixStream;
use vmm_api::control::client::Client;
use vmm_api::run_dir::RunDir;

use crate::auth::csrf::{self, OriginPolicy};
use crate::service::{internal, Service};
use crate::startup::AppState;

pub use token::{TokenError, TOKEN_TTL_SECS};

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

fn refuse(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "kind": kind, "message": message } });
    (status, axum::Json(body)).into_response()
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
                &format!("Not a valid WebSocket handshake: {e}."),
            )
        }
    };
    // noVNC asks for `binary`; a browser fails a handshake whose requested protocol is not echoed.
    if offers_binary {
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("binary"));
    }
    let Some(secret) = query.token.filter(|t| !t.is_empty()) else {
        return TokenError::Invalid.into_response();
    };
    let service = state.service;
    // Subscribed before the token check so a stop right after it is not missed.
    let changes = service.supervisor().subscribe();
    let redeemed = match service.redeem_console_token(&vm_id, &secret).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let files = RunDir::new(service.supervisor().run_dir(&redeemed.vm_id));
    let socket = match redeemed.kind {
        ConsoleKind::Vnc => files.vnc(),
        ConsoleKind::Serial => files.serial(),
    };
    let vmm = match UnixStream::connect(&socket).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(vm_id, error = %e, socket = %socket.display(), "console socket unreachable");
            return refuse(
                StatusCode::CONFLICT,
                "conflict",
                "The VM's console is not available right now.",
            );
        }
    };
    let kind = redeemed.kind.as_str();
    service
        .audit(
            Some(&redeemed.caller),
            "console_open",
            &format!("vm:{}", redeemed.vm_id),
            kind,
        )
        .await;
    tokio::spawn(async move {
        let vm_id = redeemed.vm_id;
        let ws = match upgraded.await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(vm_id, error = %e, "console WebSocket upgrade failed");
                return;
            }
        };
        tracing::info!(vm_id, kind, user = %redeemed.caller.username, "console opened");
        let end = proxy::run(ws, vmm, &vm_id, changes, proxy::Limits::default()).await;
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

#[async_trait]
impl Consoles for Service {
    async fn open_console(
        &self,
        caller: &Caller,
        vm_id: String,
        kind: ConsoleKind,
    ) -> Result<ConsoleTicket, AppError> {
        self.issue_console_token(caller, &vm_id, kind).await
    }

    async fn console_log(&self, caller: &Caller, vm_id: String) -> Result<ConsoleLog, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        if vm.state() != VmState::Running {
            return Err(AppError::conflict(format!(
                "The console log is available while the VM is running; it is {}.",
                vm.state().as_str()
            )));
        }
        // The last 64 KiB of serial output, from the VMM (the client's default timeout bounds the wait).
        let text = Client::of(&RunDir::new(self.supervisor().run_dir(&vm.id)))
            .console_log()
            .await
            .map_err(|e| internal(crate::telemetry::chain(&e)))?;
        Ok(ConsoleLog { text })
    }
}
