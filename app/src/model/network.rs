//! Tenant networks as pages and the API show them: networks, a VM's cards, security groups and their
//! rules, port forwards and floating IPs, and the forms that change them.

use serde::{Deserialize, Serialize};

/// A tenant network: one address block, a gateway, a DHCP server, an isolated bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NetworkView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: String,
    pub mtu: u16,
    /// Reserved for when the network spans hosts.
    pub vxlan_id: u32,
    /// New VMs go here unless another network is chosen.
    pub is_default: bool,
    /// Cards on this network (a network with cards cannot be deleted).
    pub ports: u32,
    pub created_at: String,
}

/// The form that creates a network (its block comes from the pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    pub name: String,
}

/// One of a VM's network cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NicView {
    pub network_id: String,
    pub network_name: String,
    pub mac: String,
    pub ip: String,
    pub gateway: String,
    pub cidr: String,
}

/// A security group named in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupRef {
    pub id: String,
    pub name: String,
}

/// How a VM is reached: its cards, groups, floating IP, port forwards and a command that works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VmNetworkView {
    pub nics: Vec<NicView>,
    pub security_groups: Vec<GroupRef>,
    pub floating_ip: Option<String>,
    pub port_forwards: Vec<PortForwardView>,
    /// `ssh ...` through the VM's floating IP or SSH port forward, when it has one.
    pub ssh_command: Option<String>,
}

/// Protocols a rule or a forward names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NetProtocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

impl NetProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "any" => Self::Any,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "icmp" => Self::Icmp,
            _ => return None,
        })
    }
}

/// An ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RuleView {
    pub id: String,
    pub protocol: NetProtocol,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    /// Exactly one of `source_cidr` and `source_group` is set.
    pub source_cidr: Option<String>,
    pub source_group: Option<GroupRef>,
}

/// A named set of ingress rules (egress is always allowed; replies always pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SecurityGroupView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_default: bool,
    pub rules: Vec<RuleView>,
    /// VMs in the group.
    pub vms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSecurityGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// A rule to add: protocol, optional port range (TCP/UDP), and a source CIDR or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub protocol: NetProtocol,
    #[serde(default)]
    pub port_min: Option<u16>,
    #[serde(default)]
    pub port_max: Option<u16>,
    #[serde(default)]
    pub source_cidr: Option<String>,
    #[serde(default)]
    pub source_group_id: Option<String>,
}

/// The groups a VM should be in (replacing its current ones; at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetVmGroups {
    pub group_ids: Vec<String>,
}

/// A port of the cloud's public address forwarded to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PortForwardView {
    pub id: String,
    pub vm_id: String,
    pub vm_name: String,
    pub protocol: NetProtocol,
    /// The public address (the uplink's) and port.
    pub host_address: String,
    pub host_port: u16,
    pub vm_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPortForward {
    pub vm_id: String,
    /// `tcp` or `udp`.
    pub protocol: NetProtocol,
    pub vm_port: u16,
    /// A free port in the configured range is chosen when absent.
    #[serde(default)]
    pub host_port: Option<u16>,
}

/// A public address of the tenant's, attached to at most one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FloatingIpView {
    pub id: String,
    pub address: String,
    pub vm_id: Option<String>,
    pub vm_name: Option<String>,
}

/// Attach to a VM, or detach with `vm_id: null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachFloatingIp {
    pub vm_id: Option<String>,
}

/// What this cloud's tenant networking offers, for the pages that explain it. `admin` is filled for admins
/// only (the address pools are the operator's business).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NetworkSettingsView {
    /// Tenant networks are on: new VMs get a card, and networks and groups can be changed.
    pub enabled: bool,
    /// The public address port forwards listen on; `None`: no uplink, nothing reaches VMs from outside.
    pub public_address: Option<String>,
    /// Floating IPs can be allocated.
    pub floating_ips: bool,
    /// Host ports tenants may forward (inclusive).
    pub forward_ports: (u16, u16),
    pub admin: Option<NetworkPoolView>,
}

/// The operator's network settings, as admins see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NetworkPoolView {
    /// Tenant networks get `/24` blocks of this pool.
    pub pool: String,
    pub mtu: u16,
    /// The uplink network between the host and the portal's namespace, if any.
    pub uplink: Option<String>,
    /// Floating IPs come from this block, if any.
    pub floating_pool: Option<String>,
    /// The portal's network namespace.
    pub namespace: String,
}
