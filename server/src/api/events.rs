//! `GET /api/v1/events`: server-sent events of VM state changes in the caller's tenant, for the browser
//! (session cookie) and API clients (bearer token). Each event is `event: vm` with
//! `{"vm_id", "tenant_id", "state"}`; `event: resync` means changes were missed and lists should be
//! reloaded; `event: revoked` (`{"message"}`) is the last event when the caller's access is taken away
//! (the stream then ends). Which changes a caller sees is the service's rule (`Service::vm_changes`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use tokio_stream::StreamExt;

use super::{AnyCaller, ApiError};
use crate::service::VmFeed;
use crate::state::AppState;

#[utoipa::path(get, path = "/events", tag = "vms",
    responses((status = 200, description = "text/event-stream of `vm` events (VM id, tenant, new state)")))]
pub async fn vm_events(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let stream = state.service.vm_changes(&caller).await?.map(|feed| {
        Ok(match feed {
            VmFeed::Changed(change) => Event::default()
                .event("vm")
                .json_data(&change)
                .unwrap_or_default(),
            VmFeed::Missed => Event::default().event("resync").data("{}"),
            VmFeed::Revoked(reason) => Event::default()
                .event("revoked")
                .json_data(serde_json::json!({ "message": reason }))
                .unwrap_or_default(),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
