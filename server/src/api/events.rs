//! `GET /api/v1/events`: server-sent events of VM state changes in the caller's tenant, for the browser
//! (session cookie) and API clients (bearer token). Each event is `event: vm` with
//! `{"vm_id", "tenant_id", "state"}`; `event: resync` means changes were missed and lists should be
//! reloaded.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::{AnyCaller, ApiError};
use crate::startup::AppState;

#[utoipa::path(get, path = "/events", tag = "vms",
    responses((status = 200, description = "text/event-stream of `vm` events (VM id, tenant, new state)")))]
pub async fn vm_events(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = caller.tenant_id;
    let stream =
        BroadcastStream::new(state.service.supervisor().subscribe()).filter_map(move |msg| match msg {
            Ok(change) if change.tenant_id == tenant => Some(Ok(Event::default()
                .event("vm")
                .json_data(&change)
                .unwrap_or_default())),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(_)) => Some(Ok(Event::default().event("resync").data("{}"))),
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
