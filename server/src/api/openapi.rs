//! The OpenAPI document of `/api/v1`, generated from the handlers' annotations (`GET /api/v1/openapi.json`),
//! completed by two steps: the input rules (`schema::Constraints`) and the error answers every operation can
//! give (`ErrorAnswers`: 401 without a valid token, 413/422 for a body, 422 for a query, 404 for an id in the
//! path), all in the one JSON envelope `Error`. A test checks every route of `api::ROUTES` is documented.

use axum::Json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::schema::Constraints;
use super::{
    accounts, admin, billing, catalogue, console, events, host, key_pairs, metrics, networks, vm_lists, vms,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Cloud portal API", version = "1", description = "Self-service VMs on our own KVM VMM. \
        Authenticate with `Authorization: Bearer <token>` (create tokens on the API tokens page). Errors are \
        `{\"error\": {\"kind\", \"message\", \"field\"?}}`."),
    servers((url = "/api/v1")),
    paths(
        openapi_json,
        accounts::whoami, accounts::list_tokens, accounts::create_token, accounts::revoke_token,
        admin::list_tenants, admin::create_tenant, admin::update_tenant, admin::list_users, admin::create_user,
        admin::update_user, admin::reset_password, admin::list_user_tokens, admin::revoke_user_token,
        vms::list_vms, vms::launch_vm, vms::get_vm, vms::vm_action, vms::delete_vm,
        catalogue::list_flavors, catalogue::create_flavor, catalogue::update_flavor,
        catalogue::list_images, catalogue::upload_image, catalogue::delete_image,
        events::vm_events,
        billing::my_quota, billing::list_quotas, billing::set_quota, billing::my_usage, billing::my_usage_csv,
        billing::all_usage, billing::all_usage_csv, billing::audit_log, billing::verify_audit,
        billing::quota_defaults,
        console::open_console, console::console_log,
        metrics::vm_metrics,
        networks::list_networks, networks::create_network, networks::delete_network,
        networks::list_security_groups, networks::create_security_group, networks::delete_security_group,
        networks::add_rule, networks::delete_rule, networks::set_vm_groups,
        networks::list_port_forwards, networks::create_port_forward, networks::delete_port_forward,
        networks::list_floating_ips, networks::allocate_floating_ip, networks::attach_floating_ip,
        networks::release_floating_ip,
        host::host_view,
        key_pairs::list_key_pairs, key_pairs::create_key_pair, key_pairs::delete_key_pair,
        vm_lists::rename_vm, vm_lists::admin_vms, vm_lists::admin_vm_action,
    ),
    components(schemas(app::wire::Envelope, app::wire::Detail)),
    modifiers(&BearerAuth, &Constraints, &ErrorAnswers),
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

/// Adds the error answers an operation can give because of its shape, where it does not list them itself.
struct ErrorAnswers;

fn error_answer(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build(),
    )
}

fn add_errors(op: &mut Operation, public: bool) {
    use utoipa::openapi::path::ParameterIn;
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let in_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let mut answers = vec![];
    if !public {
        answers.push(("401", "Missing, wrong, expired or revoked token"));
        answers.push((
            "403",
            "Not allowed: an admin route, a quota exceeded, or a request from another site",
        ));
    }
    if op.request_body.is_some() {
        answers.push((
            "413",
            "The body is larger than the limit (256 KiB; uploads: max_image_upload_mib)",
        ));
        answers.push((
            "422",
            "The body is malformed or a field is invalid (`field` names it)",
        ));
        answers.push((
            "404",
            "An object the body refers to does not exist or is not visible to the caller",
        ));
    }
    if in_query {
        answers.push(("422", "A query parameter is invalid (`field` names it)"));
    }
    if in_path {
        answers.push(("404", "No such object visible to the caller"));
    }
    for (status, description) in answers {
        if !op.responses.responses.contains_key(status) {
            op.responses
                .responses
                .insert(status.to_string(), error_answer(description));
        }
    }
}

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path == "/openapi.json";
            let PathItem {
                get,
                put,
                post,
                delete,
                patch,
                ..
            } = item;
            for op in [get, put, post, delete, patch].into_iter().flatten() {
                add_errors(op, public);
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::super::schema;
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_errors() {
        let doc = ApiDoc::openapi();
        for (method, path) in super::super::ROUTES {
            let item = doc
                .paths
                .paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
            let op = match *method {
                "get" => &item.get,
                "post" => &item.post,
                "put" => &item.put,
                "patch" => &item.patch,
                "delete" => &item.delete,
                other => panic!("unexpected method {other}"),
            };
            let op = op
                .as_ref()
                .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
            if *path != "/openapi.json" {
                assert!(
                    op.responses.responses.contains_key("401"),
                    "{method} {path}: no 401"
                );
            }
            if op.request_body.is_some() {
                assert!(
                    op.responses.responses.contains_key("422"),
                    "{method} {path}: no 422"
                );
            }
        }
        let documented: usize = doc
            .paths
            .paths
            .values()
            .map(|i| {
                [&i.get, &i.put, &i.post, &i.delete, &i.patch]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(
            documented,
            super::super::ROUTES.len(),
            "the document lists a route the server lacks"
        );
    }

    #[test]
    fn input_rules_reach_the_document() {
        let json = serde_json::to_value(ApiDoc::openapi()).expect("JSON");
        let tenant = &json["components"]["schemas"]["CreateTenant"]["properties"]["name"];
        assert_eq!(tenant["pattern"], schema::TENANT_NAME);
        let vcpus = &json["components"]["schemas"]["NewFlavor"]["properties"]["vcpus"];
        assert_eq!(vcpus["maximum"], 4.0);
    }

    #[test]
    fn the_quota_body_documents_the_network_limits_as_optional_with_their_ranges() {
        let json = serde_json::to_value(ApiDoc::openapi()).expect("JSON");
        let set = &json["components"]["schemas"]["QuotaSet"];
        let mut required: Vec<&str> = set["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        required.sort_unstable();
        assert_eq!(
            required,
            ["disk_gib", "instances", "memory_mib", "vcpus"],
            "{set}"
        );
        for (field, max) in [
            ("networks", 1_000.0),
            ("floating_ips", 1_000.0),
            ("port_forwards", 10_000.0),
        ] {
            let prop = &set["properties"][field];
            assert_eq!(
                (prop["minimum"].as_f64(), prop["maximum"].as_f64()),
                (Some(0.0), Some(max)),
                "{field}: {prop}"
            );
        }
        let view = &json["components"]["schemas"]["QuotaView"]["properties"];
        assert!(
            view["network_limits"].is_object() && view["network_used"].is_object(),
            "{view}"
        );
    }
}
