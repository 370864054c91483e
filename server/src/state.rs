//! `AppState`: what every axum handler and extractor is given, built once by `startup::Application::build`.
//! Handlers reach the portal only through `service` (the same implementation server functions get by
//! context), so no edge holds a pool, a supervisor or a query of its own.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::service::Service;

/// Shared state of every handler, built once.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub service: Service,
    pub leptos_options: LeptosOptions,
}
