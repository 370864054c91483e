//! `GET /healthz`: the portal is up and its database answers; `sandbox` says whether VMMs run jailed.

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if state.service.database_ok().await {
        (
            StatusCode::OK,
            Json(
                serde_json::json!({ "status": "ok", "database": "ok", "sandbox": state.service.sandbox_mode() }),
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({ "status": "degraded", "database": "error", "sandbox": state.service.sandbox_mode() }),
            ),
        )
    }
}
