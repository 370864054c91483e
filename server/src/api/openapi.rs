//! The OpenAPI document of `/api/v1`, generated from the handlers' annotations (`GET /api/v1/openapi.json`).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{billing, catalogue, console, events, networks, vms};

#[derive(OpenApi)]
#[openapi(
    info(title = "Cloud portal API", version = "1", description = "Self-service VMs on our own KVM VMM. \
        Authenticate with `Authorization: Bearer <token>` (create tokens on the API tokens page). Errors are \
        `{\"error\": {\"kind\", \"message\", \"field\"?}}`."),
    servers((url = "/api/v1")),
    paths(
        vms::list_vms, vms::launch_vm, vms::get_vm, vms::vm_action, vms::delete_vm,
        catalogue::list_flavors, catalogue::create_flavor, catalogue::update_flavor,
        catalogue::list_images, catalogue::upload_image, catalogue::delete_image,
        events::vm_events,
        billing::my_quota, billing::list_quotas, billing::set_quota, billing::my_usage, billing::my_usage_csv,
        billing::all_usage, billing::all_usage_csv, billing::audit_log, billing::verify_audit,
        console::open_console, console::console_log,
        networks::list_networks, networks::create_network, networks::delete_network,
        networks::list_security_groups, networks::create_security_group, networks::delete_security_group,
        networks::add_rule, networks::delete_rule, networks::set_vm_groups,
        networks::list_port_forwards, networks::create_port_forward, networks::delete_port_forward,
        networks::list_floating_ips, networks::allocate_floating_ip, networks::attach_floating_ip,
        networks::release_floating_ip,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
