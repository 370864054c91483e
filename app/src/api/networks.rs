//! Tenant networks for the pages: networks, security groups and rules, a VM's groups, port forwards and
//! floating IPs. Bodies run in the service, which scopes everything to the caller's tenant and answers
//! "Tenant networks are turned off" (409) where a change needs networking.
//!
//! Form fields arrive as text: an empty optional field (a port, a host port, a network) means "none".

use leptos::prelude::*;

use crate::error::AppError;
// The request types the bodies build (server side only) are named by path: `SetVmGroups` and
// `AttachFloatingIp` are also the names of this module's server function structs.
use crate::model::{
    FloatingIpView, NetProtocol, NetworkSettingsView, NetworkView, NewRule, PortForwardView,
    SecurityGroupView, VmNetworkView,
};

#[server(prefix = "/api/fn", endpoint = "network_settings")]
pub async fn network_settings() -> Result<NetworkSettingsView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.network_settings(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "list_networks")]
pub async fn list_networks() -> Result<Vec<NetworkView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_networks(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "create_network")]
pub async fn create_network(name: String) -> Result<NetworkView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal
            .create_network(&caller, crate::model::NewNetwork { name })
            .await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_network")]
pub async fn delete_network(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.delete_network(&caller, id).await })
        .await
}

#[server(prefix = "/api/fn", endpoint = "list_security_groups")]
pub async fn list_security_groups() -> Result<Vec<SecurityGroupView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_security_groups(&caller).await })
        .await
}

#[server(prefix = "/api/fn", endpoint = "create_security_group")]
pub async fn create_security_group(
    name: String,
    #[server(default)] description: String,
) -> Result<SecurityGroupView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal
            .create_security_group(&caller, crate::model::NewSecurityGroup { name, description })
            .await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_security_group")]
pub async fn delete_security_group(id: String) -> Result<(), AppError> {
    crate::port::with_caller(
        |portal, caller, _| async move { portal.delete_security_group(&caller, id).await },
    )
    .await
}

/// `source_group_id` non-empty: traffic from that group's VMs; otherwise from `source_cidr`.
#[server(prefix = "/api/fn", endpoint = "add_rule")]
pub async fn add_rule(
    group_id: String,
    protocol: String,
    #[server(default)] port_min: String,
    #[server(default)] port_max: String,
    #[server(default)] source_cidr: String,
    #[server(default)] source_group_id: String,
) -> Result<SecurityGroupView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let rule = rule_from_form(&protocol, &port_min, &port_max, &source_cidr, &source_group_id)?;
        portal.add_rule(&caller, group_id, rule).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_rule")]
pub async fn delete_rule(group_id: String, rule_id: String) -> Result<SecurityGroupView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal.delete_rule(&caller, group_id, rule_id).await
    })
    .await
}

/// Replaces the VM's security groups.
#[server(prefix = "/api/fn", endpoint = "set_vm_groups")]
pub async fn set_vm_groups(
    vm_id: String,
    #[server(default)] group_ids: Vec<String>,
) -> Result<VmNetworkView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal
            .set_vm_groups(&caller, vm_id, crate::model::SetVmGroups { group_ids })
            .await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "list_port_forwards")]
pub async fn list_port_forwards() -> Result<Vec<PortForwardView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_port_forwards(&caller).await })
        .await
}

/// `host_port` empty: a free port of the cloud's range is chosen.
#[server(prefix = "/api/fn", endpoint = "create_port_forward")]
pub async fn create_port_forward(
    vm_id: String,
    protocol: String,
    vm_port: String,
    #[server(default)] host_port: String,
) -> Result<PortForwardView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let req = crate::model::NewPortForward {
            vm_id,
            protocol: parse_protocol(&protocol)?,
            vm_port: parse_port("vm_port", &vm_port)?
                .ok_or_else(|| AppError::invalid("vm_port", "Give the VM's port (1-65535)."))?,
            host_port: parse_port("host_port", &host_port)?,
        };
        portal.create_port_forward(&caller, req).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_port_forward")]
pub async fn delete_port_forward(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.delete_port_forward(&caller, id).await })
        .await
}

#[server(prefix = "/api/fn", endpoint = "list_floating_ips")]
pub async fn list_floating_ips() -> Result<Vec<FloatingIpView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_floating_ips(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "allocate_floating_ip")]
pub async fn allocate_floating_ip() -> Result<FloatingIpView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.allocate_floating_ip(&caller).await })
        .await
}

/// `vm_id` empty: detach.
#[server(prefix = "/api/fn", endpoint = "attach_floating_ip")]
pub async fn attach_floating_ip(
    id: String,
    #[server(default)] vm_id: String,
) -> Result<FloatingIpView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let vm_id = Some(vm_id.trim().to_string()).filter(|v| !v.is_empty());
        portal
            .attach_floating_ip(&caller, id, crate::model::AttachFloatingIp { vm_id })
            .await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "release_floating_ip")]
pub async fn release_floating_ip(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.release_floating_ip(&caller, id).await })
        .await
}

/// A protocol named in a form.
pub fn parse_protocol(text: &str) -> Result<NetProtocol, AppError> {
    NetProtocol::parse(text.trim())
        .ok_or_else(|| AppError::invalid("protocol", "Choose any, tcp, udp or icmp."))
}

/// An optional port field: empty is `None`, otherwise 1-65535.
pub fn parse_port(field: &str, text: &str) -> Result<Option<u16>, AppError> {
    match text.trim() {
        "" => Ok(None),
        t => match t.parse::<u16>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(AppError::invalid(field, "Give a port from 1 to 65535.")),
        },
    }
}

/// The rule a form describes: a group source wins over the CIDR field (the form hides one of them).
pub fn rule_from_form(
    protocol: &str,
    port_min: &str,
    port_max: &str,
    source_cidr: &str,
    source_group_id: &str,
) -> Result<NewRule, AppError> {
    let group = source_group_id.trim();
    Ok(NewRule {
        protocol: parse_protocol(protocol)?,
        port_min: parse_port("port_min", port_min)?,
        port_max: parse_port("port_max", port_max)?,
        source_cidr: group.is_empty().then(|| source_cidr.trim().to_string()),
        source_group_id: (!group.is_empty()).then(|| group.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ports_are_none_and_bad_ones_name_their_field() {
        assert_eq!(parse_port("vm_port", " ").unwrap(), None);
        assert_eq!(parse_port("vm_port", "22").unwrap(), Some(22));
        assert_eq!(
            parse_port("host_port", "0").unwrap_err().field(),
            Some("host_port")
        );
        assert_eq!(
            parse_port("port_min", "70000").unwrap_err().field(),
            Some("port_min")
        );
    }

    #[test]
    fn a_rule_names_either_a_group_or_a_block() {
        let r = rule_from_form("tcp", "22", "", "0.0.0.0/0", "").unwrap();
        assert_eq!(r.protocol, NetProtocol::Tcp);
        assert_eq!((r.port_min, r.port_max), (Some(22), None));
        assert_eq!(r.source_cidr.as_deref(), Some("0.0.0.0/0"));
        assert_eq!(r.source_group_id, None);
        let r = rule_from_form("any", "", "", "10.0.0.0/8", "g1").unwrap();
        assert_eq!(r.source_cidr, None);
        assert_eq!(r.source_group_id.as_deref(), Some("g1"));
        assert_eq!(
            rule_from_form("sctp", "", "", "", "").unwrap_err().field(),
            Some("protocol")
        );
    }
}
