//! The host's desired network state, derived from the database rows (`db::networks::Snapshot`).
//! Rows that do not parse (which the portal's own validation never writes) are skipped and logged, so
//! one bad row cannot take every tenant's network down.

use netplane::state::{
    FloatingIp, Mac, NetState, Network, Port, PortForward, Protocol, Rule, SecurityGroup, Source, Uplink,
};

use crate::db::networks::{ip, Snapshot};

fn mac(text: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub fn protocol(text: &str) -> Option<Protocol> {
    Some(match text {
        "any" => Protocol::Any,
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        _ => return None,
    })
}

/// Builds the state from a snapshot.
pub fn build(snap: &Snapshot, uplink: Option<Uplink>, metadata_port: Option<u16>) -> NetState {
    let groups_of = |vm_id: &str| -> Vec<String> {
        snap.vm_groups
            .iter()
            .filter(|(v, _)| v == vm_id)
            .map(|(_, g)| g.clone())
            .collect()
    };
    let networks = snap
        .networks
        .iter()
        .filter_map(|n| {
            let network = Network {
                id: n.id.clone(),
                tenant_id: n.tenant_id.clone(),
                bridge: n.bridge(),
                cidr: n.cidr.parse().ok()?,
                gateway: ip(&n.gateway)?,
                mtu: u16::try_from(n.mtu).ok()?,
                ports: snap
                    .ports
                    .iter()
                    .filter(|p| p.network_id == n.id)
                    .filter_map(|p| {
                        Some(Port {
                            id: p.id.clone(),
                            vm_id: p.vm_id.clone(),
                            tap: p.tap.clone(),
                            mac: mac(&p.mac)?,
                            ip: ip(&p.ip)?,
                            security_groups: groups_of(&p.vm_id),
                        })
                    })
                    .collect(),
            };
            Some(network)
        })
        .collect();
    let security_groups = snap
        .groups
        .iter()
        .map(|g| SecurityGroup {
            id: g.id.clone(),
            tenant_id: g.tenant_id.clone(),
            rules: snap
                .rules
                .iter()
                .filter(|r| r.group_id == g.id)
                .filter_map(|r| {
                    let ports = match (r.port_min, r.port_max) {
                        (Some(a), Some(b)) => Some((u16::try_from(a).ok()?, u16::try_from(b).ok()?)),
                        _ => None,
                    };
                    let source = match (&r.source_cidr, &r.source_group_id) {
                        (Some(c), _) => Source::Cidr(c.parse().ok()?),
                        (None, Some(g)) => Source::Group(g.clone()),
                        (None, None) => return None,
                    };
                    Some(Rule {
                        protocol: protocol(&r.protocol)?,
                        ports,
                        source,
                    })
                })
                .collect(),
        })
        .collect();
    let first_ip = |vm_id: &str| {
        snap.ports
            .iter()
            .filter(|p| p.vm_id == vm_id)
            .min_by_key(|p| p.nic_index)
            .and_then(|p| ip(&p.ip))
    };
    let port_forwards = snap
        .forwards
        .iter()
        .filter_map(|f| {
            Some(PortForward {
                id: f.id.clone(),
                protocol: protocol(&f.protocol)?,
                host_port: u16::try_from(f.host_port).ok()?,
                vm_ip: first_ip(&f.vm_id)?,
                vm_port: u16::try_from(f.vm_port).ok()?,
            })
        })
        .collect();
    let floating_ips = snap
        .floating
        .iter()
        .filter_map(|f| {
            Some(FloatingIp {
                id: f.id.clone(),
                address: ip(&f.address)?,
                fixed_ip: first_ip(f.vm_id.as_deref()?)?,
            })
        })
        .collect();
    let state = NetState {
        uplink,
        networks,
        security_groups,
        port_forwards,
        floating_ips,
        metadata_port,
    };
    let ports_in_rows = snap.ports.len();
    let ports_in_state: usize = state.networks.iter().map(|n| n.ports.len()).sum();
    if ports_in_rows != ports_in_state {
        tracing::error!(
            rows = ports_in_rows,
            realised = ports_in_state,
            "some network rows did not parse and are left out"
        );
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(mac("52:54:00:0a:0b:0c"), Some([0x52, 0x54, 0, 10, 11, 12]));
        assert_eq!(mac("52:54:00:0a:0b"), None);
        assert_eq!(mac("52:54:00:0a:0b:0c:0d"), None);
        assert_eq!(protocol("tcp"), Some(Protocol::Tcp));
        assert_eq!(protocol("sctp"), None);
    }
}
