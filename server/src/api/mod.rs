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
mod host;
mod inputs;
mod key_pairs;
mod metrics;
mod networks;
mod openapi;
mod schema;
mod vm_lists;
mod vms;

use axum::Router;

pub use error::{ApiError, ErrorEnvelope};
pub use extract::{AnyCaller, ApiCaller};
pub use inputs::{ApiJson, ApiMultipart, ApiPath, ApiQuery};
pub use openapi::ApiDoc;

use crate::state::AppState;

/// Declares every route of `/api/v1` once: the router is built from this table, and `ROUTES` lists them
/// for the test that checks each is in the OpenAPI document. (Body limits are per path, in
/// `middleware::body_limit`.)
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// `(method, path)` of every route under `/api/v1`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        fn table() -> Router<AppState> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

api_routes! {
    get "/openapi.json" => openapi::openapi_json,
    get "/whoami" => accounts::whoami,
    get "/tokens" => accounts::list_tokens,
    post "/tokens" => accounts::create_token,
    delete "/tokens/{id}" => accounts::revoke_token,
    get "/tenants" => admin::list_tenants,
    post "/tenants" => admin::create_tenant,
    patch "/tenants/{id}" => admin::update_tenant,
    get "/users" => admin::list_users,
    post "/users" => admin::create_user,
    patch "/users/{id}" => admin::update_user,
    post "/users/{id}/password" => admin::reset_password,
    get "/users/{id}/tokens" => admin::list_user_tokens,
    delete "/users/{id}/tokens/{token_id}" => admin::revoke_user_token,
    get "/flavors" => catalogue::list_flavors,
    post "/flavors" => catalogue::create_flavor,
    patch "/flavors/{id}" => catalogue::update_flavor,
    get "/images" => catalogue::list_images,
    // Streams to disk under its own limit (settings.max_image_upload_mib, `middleware::body_limit`).
    post "/images" => catalogue::upload_image,
    delete "/images/{id}" => catalogue::delete_image,
    get "/vms" => vms::list_vms,
    post "/vms" => vms::launch_vm,
    get "/vms/{id}" => vms::get_vm,
    delete "/vms/{id}" => vms::delete_vm,
    post "/vms/{id}/actions" => vms::vm_action,
    post "/vms/{id}/console" => console::open_console,
    get "/vms/{id}/console-log" => console::console_log,
    get "/vms/{id}/metrics" => metrics::vm_metrics,
    get "/events" => events::vm_events,
    get "/quota" => billing::my_quota,
    get "/quotas" => billing::list_quotas,
    put "/quotas/{tenant_id}" => billing::set_quota,
    get "/quotas/defaults" => billing::quota_defaults,
    get "/usage" => billing::my_usage,
    get "/usage.csv" => billing::my_usage_csv,
    get "/admin/usage" => billing::all_usage,
    get "/admin/usage.csv" => billing::all_usage_csv,
    get "/admin/host" => host::host_view,
    get "/audit" => billing::audit_log,
    get "/audit/verify" => billing::verify_audit,
    put "/vms/{id}/security-groups" => networks::set_vm_groups,
    get "/networks" => networks::list_networks,
    post "/networks" => networks::create_network,
    delete "/networks/{id}" => networks::delete_network,
    get "/security-groups" => networks::list_security_groups,
    post "/security-groups" => networks::create_security_group,
    delete "/security-groups/{id}" => networks::delete_security_group,
    post "/security-groups/{id}/rules" => networks::add_rule,
    delete "/security-groups/{id}/rules/{rule_id}" => networks::delete_rule,
    get "/port-forwards" => networks::list_port_forwards,
    post "/port-forwards" => networks::create_port_forward,
    delete "/port-forwards/{id}" => networks::delete_port_forward,
    get "/floating-ips" => networks::list_floating_ips,
    post "/floating-ips" => networks::allocate_floating_ip,
    put "/floating-ips/{id}" => networks::attach_floating_ip,
    delete "/floating-ips/{id}" => networks::release_floating_ip,
    get "/keypairs" => key_pairs::list_key_pairs,
    post "/keypairs" => key_pairs::create_key_pair,
    delete "/keypairs/{id}" => key_pairs::delete_key_pair,
    patch "/vms/{id}" => vm_lists::rename_vm,
    get "/admin/vms" => vm_lists::admin_vms,
    post "/admin/vms/{id}/actions" => vm_lists::admin_vm_action,
}

pub fn router() -> Router<AppState> {
    table()
        .fallback(|| async { ApiError(app::error::AppError::not_found("API route")) })
        // Last: it applies to the routes above. axum keeps the `Allow` header.
        .method_not_allowed_fallback(|| async {
            ErrorEnvelope::new(
                405,
                "method_not_allowed",
                "This API route does not accept that method; the Allow header lists those it does.",
            )
        })
}
