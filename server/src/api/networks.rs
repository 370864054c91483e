//! `/api/v1` tenant networks: networks, security groups and rules, a VM's groups, port forwards and
//! floating IPs. Thin: every rule lives in the service.

use app::model::{
    AttachFloatingIp, FloatingIpView, NetworkView, NewNetwork, NewPortForward, NewRule, NewSecurityGroup,
    PortForwardView, SecurityGroupView, SetVmGroups, VmNetworkView,
};
use app::port::Networks;
use axum::extract::State;
use axum::Json;
use http::StatusCode;

use super::{ApiCaller, ApiError, ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(get, path = "/networks", tag = "networks",
    responses((status = 200, description = "The caller's tenant's networks (every tenant's for admins)", body = [NetworkView])))]
pub async fn list_networks(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<NetworkView>>, ApiError> {
    Ok(Json(state.service.list_networks(&caller).await?))
}

#[utoipa::path(post, path = "/networks", tag = "networks", request_body = NewNetwork,
    responses((status = 201, body = NetworkView), (status = 409, description = "Networks are off or the pool is full"),
              (status = 422, description = "Invalid or taken name"), (status = 429, description = "Networks quota exceeded")))]
pub async fn create_network(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewNetwork>,
) -> Result<(StatusCode, Json<NetworkView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_network(&caller, body).await?),
    ))
}

#[utoipa::path(delete, path = "/networks/{id}", tag = "networks", params(("id" = String, Path, description = "Network id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such network"),
              (status = 409, description = "VMs are still on it")))]
pub async fn delete_network(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_network(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/security-groups", tag = "networks",
    responses((status = 200, body = [SecurityGroupView])))]
pub async fn list_security_groups(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<SecurityGroupView>>, ApiError> {
    Ok(Json(state.service.list_security_groups(&caller).await?))
}

#[utoipa::path(post, path = "/security-groups", tag = "networks", request_body = NewSecurityGroup,
    responses((status = 201, body = SecurityGroupView), (status = 422, description = "Invalid or taken name")))]
pub async fn create_security_group(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewSecurityGroup>,
) -> Result<(StatusCode, Json<SecurityGroupView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_security_group(&caller, body).await?),
    ))
}

#[utoipa::path(delete, path = "/security-groups/{id}", tag = "networks", params(("id" = String, Path, description = "Group id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such group"),
              (status = 409, description = "The default group, or VMs are in it")))]
pub async fn delete_security_group(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_security_group(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/security-groups/{id}/rules", tag = "networks", request_body = NewRule,
    params(("id" = String, Path, description = "Group id")),
    responses((status = 201, description = "The group with its rules", body = SecurityGroupView),
              (status = 404, description = "No such group"), (status = 422, description = "Invalid rule, with the field")))]
pub async fn add_rule(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewRule>,
) -> Result<(StatusCode, Json<SecurityGroupView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.add_rule(&caller, id, body).await?),
    ))
}

#[utoipa::path(delete, path = "/security-groups/{id}/rules/{rule_id}", tag = "networks",
    params(("id" = String, Path, description = "Group id"), ("rule_id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The group with its remaining rules", body = SecurityGroupView),
              (status = 404, description = "No such group or rule")))]
pub async fn delete_rule(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath((id, rule_id)): ApiPath<(String, String)>,
) -> Result<Json<SecurityGroupView>, ApiError> {
    Ok(Json(state.service.delete_rule(&caller, id, rule_id).await?))
}

#[utoipa::path(put, path = "/vms/{id}/security-groups", tag = "networks", request_body = SetVmGroups,
    params(("id" = String, Path, description = "VM id")),
    responses((status = 200, description = "The VM's network view", body = VmNetworkView),
              (status = 404, description = "No such VM"), (status = 422, description = "Unknown or foreign group")))]
pub async fn set_vm_groups(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetVmGroups>,
) -> Result<Json<VmNetworkView>, ApiError> {
    Ok(Json(state.service.set_vm_groups(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/port-forwards", tag = "networks", responses((status = 200, body = [PortForwardView])))]
pub async fn list_port_forwards(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<PortForwardView>>, ApiError> {
    Ok(Json(state.service.list_port_forwards(&caller).await?))
}

#[utoipa::path(post, path = "/port-forwards", tag = "networks", request_body = NewPortForward,
    responses((status = 201, body = PortForwardView), (status = 409, description = "No uplink, or no free port"),
              (status = 422, description = "Invalid input or port taken"), (status = 429, description = "Quota exceeded")))]
pub async fn create_port_forward(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewPortForward>,
) -> Result<(StatusCode, Json<PortForwardView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_port_forward(&caller, body).await?),
    ))
}

#[utoipa::path(delete, path = "/port-forwards/{id}", tag = "networks", params(("id" = String, Path, description = "Forward id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such forward")))]
pub async fn delete_port_forward(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_port_forward(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/floating-ips", tag = "networks", responses((status = 200, body = [FloatingIpView])))]
pub async fn list_floating_ips(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<FloatingIpView>>, ApiError> {
    Ok(Json(state.service.list_floating_ips(&caller).await?))
}

#[utoipa::path(post, path = "/floating-ips", tag = "networks",
    responses((status = 201, body = FloatingIpView), (status = 409, description = "No pool, or the pool is empty"),
              (status = 429, description = "Quota exceeded")))]
pub async fn allocate_floating_ip(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<(StatusCode, Json<FloatingIpView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.allocate_floating_ip(&caller).await?),
    ))
}

#[utoipa::path(put, path = "/floating-ips/{id}", tag = "networks", request_body = AttachFloatingIp,
    params(("id" = String, Path, description = "Floating IP id")),
    responses((status = 200, body = FloatingIpView), (status = 404, description = "No such floating IP or VM"),
              (status = 409, description = "The VM has a floating IP already")))]
pub async fn attach_floating_ip(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AttachFloatingIp>,
) -> Result<Json<FloatingIpView>, ApiError> {
    Ok(Json(state.service.attach_floating_ip(&caller, id, body).await?))
}

#[utoipa::path(delete, path = "/floating-ips/{id}", tag = "networks", params(("id" = String, Path, description = "Floating IP id")),
    responses((status = 204, description = "Released"), (status = 404, description = "No such floating IP")))]
pub async fn release_floating_ip(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.release_floating_ip(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
