//! The desired state of a host's tenant networking: what the portal derives from its database and the
//! realiser (`apply`) and the ruleset (`ruleset`) turn into bridges, TAPs, DHCP servers and nftables
//! rules. Plain data: building it needs no privileges, so every rule can be unit-tested.
//!
//! Names are chosen by the portal (stable across restarts: derived from database ids) and are at most 15
//! bytes (`IFNAMSIZ - 1`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Everything the host should have, for all tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The interface (in the portal's namespace) that leads outside, with its address: egress NAT goes
    /// out of it, port forwards and floating IPs come in through it. `None`: no way out (isolated).
    pub uplink: Option<Uplink>,
    pub networks: Vec<Network>,
    pub security_groups: Vec<SecurityGroup>,
    pub port_forwards: Vec<PortForward>,
    pub floating_ips: Vec<FloatingIp>,
    /// TCP port of the metadata listener on each network's gateway address; `169.254.169.254:80` from a
    /// VM is redirected there. `None`: no metadata service.
    pub metadata_port: Option<u16>,
}

/// The way out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    pub ifname: String,
    /// The uplink's own address: port forwards listen on it.
    pub address: Ipv4Addr,
}

/// One tenant network: a bridge with the gateway address, a DHCP server, the VMs' ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Database id, for logs and rule comments.
    pub id: String,
    pub tenant_id: String,
    pub bridge: String,
    pub cidr: Ipv4Net,
    /// On the bridge; the VMs' default route, DHCP server and metadata address.
    pub gateway: Ipv4Addr,
    pub mtu: u16,
    pub ports: Vec<Port>,
}

/// A VM's network card on a network: its TAP (a bridge port) and the only addresses it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub vm_id: String,
    pub tap: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    /// Ids of the security groups applied to the port (ingress is allowed if any group allows it).
    pub security_groups: Vec<String>,
}

/// A named set of ingress rules of one tenant. Egress is always allowed; replies are allowed by
/// connection tracking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub tenant_id: String,
    pub rules: Vec<Rule>,
}

/// Allows ingress matching all of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub protocol: Protocol,
    /// Inclusive destination port range (TCP/UDP only); `None`: every port.
    pub ports: Option<(u16, u16)>,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

/// Where allowed traffic may come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Any address in the block (`0.0.0.0/0`: anywhere, the outside included).
    Cidr(Ipv4Net),
    /// The ports of VMs in this group (by their fixed addresses).
    Group(String),
}

/// A port on the uplink address forwarded to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub id: String,
    pub protocol: Protocol,
    pub host_port: u16,
    pub vm_ip: Ipv4Addr,
    pub vm_port: u16,
}

/// A public address mapped 1:1 to a VM's fixed address (in and out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub address: Ipv4Addr,
    pub fixed_ip: Ipv4Addr,
}

impl NetState {
    /// The network a port is on.
    pub fn network_of(&self, port_id: &str) -> Option<&Network> {
        self.networks
            .iter()
            .find(|n| n.ports.iter().any(|p| p.id == port_id))
    }

    /// Fixed addresses of the ports in a security group.
    pub fn group_members(&self, group_id: &str) -> Vec<Ipv4Addr> {
        self.networks
            .iter()
            .flat_map(|n| &n.ports)
            .filter(|p| p.security_groups.iter().any(|g| g == group_id))
            .map(|p| p.ip)
            .collect()
    }
}
