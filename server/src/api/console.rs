//! `/api/v1/vms/{id}/console` (issue a console token) and `/api/v1/vms/{id}/console-log` (last serial
//! output). Bearer token or session cookie: the console page calls these from the browser.

use app::api::console::{ConsoleKind, ConsoleLog, ConsoleTicket};
use app::port::Consoles;
use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{AnyCaller, ApiError, ApiJson, ApiPath};
use crate::state::AppState;

/// `{"kind": "vnc" | "serial"}`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    kind: ConsoleKind,
}

#[utoipa::path(post, path = "/vms/{id}/console", tag = "vms", request_body = ConsoleRequest,
    params(("id" = String, Path, description = "VM id")),
    responses((status = 201, description = "A single-use console token: open `ws_path` as a WebSocket within \
        `expires_in` seconds", body = ConsoleTicket),
              (status = 409, description = "The VM is not running"),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn open_console(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ConsoleRequest>,
) -> Result<(StatusCode, Json<ConsoleTicket>), ApiError> {
    let ticket = state.service.open_console(&caller, id, body.kind).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[utoipa::path(get, path = "/vms/{id}/console-log", tag = "vms",
    params(("id" = String, Path, description = "VM id")),
    responses((status = 200, description = "The last 64 KiB of serial output", body = ConsoleLog),
              (status = 409, description = "The VM is not running"),
              (status = 404, description = "No such VM in the caller's tenant")))]
pub async fn console_log(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConsoleLog>, ApiError> {
    Ok(Json(state.service.console_log(&caller, id).await?))
}
