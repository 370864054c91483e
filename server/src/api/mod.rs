//! REST API `/api/v1`: bearer-token authenticated, JSON in and out, errors as
//! `{"error": {"kind", "message", "field"?}}`. Handlers are thin: they call the same services as the UI.
//! The OpenAPI document is served at `/api/v1/openapi.json`.

mod accounts;
mod admin;
mod billing;
mod catalogue;
mod console;
mod error;
mod events;
mod extract;
mod networks;
mod openapi;
mod vms;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;

pub use error::{ApiError, ErrorEnvelope};
pub use extract::{AnyCaller, ApiCaller, ApiJson};
pub use openapi::ApiDoc;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/whoami", get(accounts::whoami))
        .route("/tokens", get(accounts::list_tokens).post(accounts::create_token))
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/tenants/{id}", patch(admin::update_tenant))
        .route("/users", get(admin::list_users).post(admin::create_user))
        .route("/users/{id}", patch(admin::update_user))
        .route("/users/{id}/password", post(admin::reset_password))
        .route(
            "/flavors",
            get(catalogue::list_flavors).post(catalogue::create_flavor),
        )
        .route("/flavors/{id}", patch(catalogue::update_flavor))
        .route(
            "/images",
            get(catalogue::list_images)
                // Uploads stream to disk under their own limit (settings.max_image_upload_mib).
                .post(catalogue::upload_image)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/images/{id}", delete(catalogue::delete_image))
        .route("/vms", get(vms::list_vms).post(vms::launch_vm))
        .route("/vms/{id}", get(vms::get_vm).delete(vms::delete_vm))
        .route("/vms/{id}/actions", post(vms::vm_action))
        .route("/events", get(events::vm_events))
        .route("/quota", get(billing::my_quota))
        .route("/quotas", get(billing::list_quotas))
        .route("/quotas/{tenant_id}", put(billing::set_quota))
        .route("/usage", get(billing::my_usage))
        .route("/usage.csv", get(billing::my_usage_csv))
        .route("/admin/usage", get(billing::all_usage))
        .route("/admin/usage.csv", get(billing::all_usage_csv))
        .route("/audit", get(billing::audit_log))
        .route("/audit/verify", get(billing::verify_audit))
        .route("/vms/{id}/security-groups", put(networks::set_vm_groups))
        .route(
            "/networks",
            get(networks::list_networks).post(networks::create_network),
        )
        .route("/networks/{id}", delete(networks::delete_network))
        .route(
            "/security-groups",
            get(networks::list_security_groups).post(networks::create_security_group),
        )
        .route("/security-groups/{id}", delete(networks::delete_security_group))
        .route("/security-groups/{id}/rules", post(networks::add_rule))
        .route(
            "/security-groups/{id}/rules/{rule_id}",
            delete(networks::delete_rule),
        )
        .route(
            "/port-forwards",
            get(networks::list_port_forwards).post(networks::create_port_forward),
        )
        .route("/port-forwards/{id}", delete(networks::delete_port_forward))
        .route(
            "/floating-ips",
            get(networks::list_floating_ips).post(networks::allocate_floating_ip),
        )
        .route(
            "/floating-ips/{id}",
            put(networks::attach_floating_ip).delete(networks::release_floating_ip),
        )
        .route("/vms/{id}/console", post(console::open_console))
        .route("/vms/{id}/console-log", get(console::console_log))
        .fallback(|| async { ApiError(app::error::AppError::not_found("API route")) })
}
