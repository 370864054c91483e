//! REST API `/api/v1`: bearer-token authenticated, JSON in and out, errors as
//! `{"error": {"kind", "message", "field"?}}`. Handlers are thin: they call the same services as the UI.

mod accounts;
mod admin;
mod extract;

use axum::routing::{delete, get, patch, post};
use axum::Router;

pub use extract::{ApiCaller, ApiError, ApiJson};

use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(accounts::whoami))
        .route("/tokens", get(accounts::list_tokens).post(accounts::create_token))
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/tenants/{id}", patch(admin::update_tenant))
        .route("/users", get(admin::list_users).post(admin::create_user))
        .route("/users/{id}", patch(admin::update_user))
        .route("/users/{id}/password", post(admin::reset_password))
        .fallback(|| async { ApiError(app::error::AppError::not_found("API route")) })
}
