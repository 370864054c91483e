//! The `inet` table: tenant isolation, security groups, the namespace's input from tenant bridges, and
//! NAT. Stateful (connection tracking), so it lives in the `inet` family.
//!
//! The forward chain's order is what makes isolation hold (NETWORKING.md): replies first, then "into a
//! network from elsewhere and not DNATed → drop", then the destination port's security groups, then
//! egress. A security-group accept placed before the isolation drop would let another tenant in.
//! Only replies are accepted on conntrack state alone: packets in a flow's original direction meet the
//! security groups every time, so a rule's removal takes effect on established flows too (as Neutron
//! does by flushing conntrack entries; here without a second mechanism). Stateful still: replies to a
//! VM's own connections, and ICMP errors about them, pass.
//!
//! Bridged traffic between two VMs of one network reaches this hook through `br_netfilter` with the
//! bridge as both input and output interface, so ports are told apart by their fixed address (which the
//! bridge table pins to their TAP) and bridge. DNAT happens in prerouting, before forward, so floating
//! IPs and port forwards are checked against the target VM's security groups like any other ingress.

use std::collections::{BTreeMap, BTreeSet};

use super::{comment, l4name, Out, View, METADATA_ADDRESS, TABLE};
use crate::state::{Protocol, Rule, SecurityGroup, Source};

pub(super) fn render(view: &View<'_>, out: &mut Out) {
    let groups = Groups::new(view);
    out.line(0, &format!("table inet {TABLE} {{"));
    sets(view, &groups, out);
    security_groups(&groups, out);
    forward(view, out);
    input(view, out);
    nat(view, out);
    out.line(0, "}");
}

/// The security groups ports use, numbered for chain and set names (ids stay in comments only, so
/// nothing from the database has to be a valid nft identifier).
struct Groups<'a> {
    /// `sg_<i>`: the groups referenced by some port, with their rules.
    chains: Vec<&'a SecurityGroup>,
    /// `gm_<i>`: the groups named as a rule's source, with their members' fixed addresses.
    members: BTreeMap<&'a str, (usize, BTreeSet<std::net::Ipv4Addr>)>,
    /// `ps_<i>`: one chain per distinct list of groups (most ports share one), jumped to from `port_sg`.
    port_sets: BTreeMap<Vec<usize>, usize>,
}

impl<'a> Groups<'a> {
    /// Numbers are stable under launches and deletes that keep the set of used groups and group lists
    /// (chains in the state's group order, port sets in the order of their lists), so those change only
    /// set and map elements and can update the applied ruleset in place (`delta.rs`).
    fn new(view: &View<'a>) -> Groups<'a> {
        let state = view.state;
        let used: BTreeSet<&str> = view
            .ports
            .iter()
            .flat_map(|pv| pv.port.security_groups.iter().map(String::as_str))
            .collect();
        for pv in &view.ports {
            for id in &pv.port.security_groups {
                if !state.security_groups.iter().any(|g| &g.id == id) {
                    tracing::warn!(port = %pv.port.id, group = %id, "unknown security group: no rules");
                }
            }
        }
        let mut chains: Vec<&'a SecurityGroup> = Vec::new();
        for group in &state.security_groups {
            if used.contains(group.id.as_str()) && !chains.iter().any(|g| g.id == group.id) {
                chains.push(group);
            }
        }
        let lists: BTreeSet<Vec<usize>> = view
            .ports
            .iter()
            .map(|pv| {
                let indices: BTreeSet<usize> = pv
                    .port
                    .security_groups
                    .iter()
                    .filter_map(|id| chains.iter().position(|g| &g.id == id))
                    .collect();
                indices.into_iter().collect()
            })
            .collect();
        let port_sets: BTreeMap<Vec<usize>, usize> =
            lists.into_iter().enumerate().map(|(i, l)| (l, i)).collect();
        let mut members = BTreeMap::new();
        for rule in chains.iter().flat_map(|g| &g.rules) {
            if let Source::Group(id) = &rule.source {
                let next = members.len();
                members.entry(id.as_str()).or_insert_with(|| {
                    let ips = view
                        .ports
                        .iter()
                        .filter(|pv| pv.port.security_groups.contains(id))
                        .map(|pv| pv.port.ip)
                        .collect();
                    (next, ips)
                });
            }
        }
        Groups {
            chains,
            members,
            port_sets,
        }
    }

    fn port_set_of(&self, groups: &[String]) -> Option<usize> {
        let indices: BTreeSet<usize> = groups
            .iter()
            .filter_map(|id| self.chains.iter().position(|g| &g.id == id))
            .collect();
        self.port_sets
            .get(&indices.into_iter().collect::<Vec<_>>())
            .copied()
    }
}

fn sets(view: &View<'_>, groups: &Groups<'_>, out: &mut Out) {
    let bridges: Vec<String> = view.networks.iter().map(|n| n.bridge.clone()).collect();
    out.set("set", "bridges", &["type ifname"], &bridges);
    let same: Vec<String> = bridges.iter().map(|b| format!("{b} . {b}")).collect();
    out.set("set", "same_bridge", &["type ifname . ifname"], &same);
    let gateways: Vec<String> = view
        .networks
        .iter()
        .map(|n| format!("{} . {}", n.bridge, n.net.gateway))
        .collect();
    out.set("set", "gateways", &["type ifname . ipv4_addr"], &gateways);
    // Overlapping CIDRs would be a bad state (validated by the portal); auto-merge keeps nft from
    // rejecting them.
    let cidrs: Vec<String> = view
        .networks
        .iter()
        .map(|n| n.net.cidr.trunc().to_string())
        .collect();
    out.set(
        "set",
        "tenant_cidrs",
        &["type ipv4_addr", "flags interval", "auto-merge"],
        &cidrs,
    );
    for (id, (i, ips)) in &groups.members {
        let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        let lines = [
            "type ipv4_addr",
            &comment(&format!("members of security group {id}")),
        ];
        out.set("set", &format!("gm_{i}"), &lines, &ips);
    }
    let ports: Vec<String> = view
        .ports
        .iter()
        .filter_map(|pv| {
            let set = groups.port_set_of(&pv.port.security_groups)?;
            let note = comment(&format!("port {} vm {}", pv.port.id, pv.port.vm_id));
            Some(format!("{} . {} {note} : jump ps_{set}", pv.bridge, pv.port.ip))
        })
        .collect();
    out.set("map", "port_sg", &["type ifname . ipv4_addr : verdict"], &ports);
    if view.uplink.is_some() {
        let fin: Vec<String> = view
            .floating_ips
            .iter()
            .map(|f| format!("{} {} : {}", f.address, comment(&f.id), f.fixed_ip))
            .collect();
        out.set("map", "floating_in", &["type ipv4_addr : ipv4_addr"], &fin);
        let fout: Vec<String> = view
            .floating_ips
            .iter()
            .map(|f| format!("{} : {}", f.fixed_ip, f.address))
            .collect();
        out.set("map", "floating_out", &["type ipv4_addr : ipv4_addr"], &fout);
        let fwd: Vec<String> = view
            .port_forwards
            .iter()
            .map(|(p, f)| {
                let note = comment(&f.id);
                format!(
                    "{} . {} {note} : {} . {}",
                    l4name(*p),
                    f.host_port,
                    f.vm_ip,
                    f.vm_port
                )
            })
            .collect();
        let ty = "type inet_proto . inet_service : ipv4_addr . inet_service";
        out.set("map", "port_forwards", &[ty], &fwd);
        // What DNATed flows may still go to: conntrack keeps translating an open flow after its floating
        // IP is released or its forward deleted, so the forward chain checks these on every packet.
        let live: BTreeSet<String> = view
            .floating_ips
            .iter()
            .map(|f| format!("{} . {}", f.address, f.fixed_ip))
            .collect();
        let live: Vec<String> = live.into_iter().collect();
        out.set("set", "floating_live", &["type ipv4_addr . ipv4_addr"], &live);
        let targets: BTreeSet<String> = view
            .port_forwards
            .iter()
            .map(|(p, f)| format!("{} . {} . {}", l4name(*p), f.vm_ip, f.vm_port))
            .collect();
        let targets: Vec<String> = targets.into_iter().collect();
        let ty = "type inet_proto . ipv4_addr . inet_service";
        out.set("set", "forward_live", &[ty], &targets);
    }
    if let Some(port) = view.state.metadata_port {
        let md: Vec<String> = view
            .networks
            .iter()
            .map(|n| format!("{} : {} . {port}", n.bridge, n.net.gateway))
            .collect();
        out.set(
            "map",
            "metadata",
            &["type ifname : ipv4_addr . inet_service"],
            &md,
        );
    }
}

/// `sg_<i>`: a group's rules, each an accept (returning when none matches); `ps_<i>`: a port's groups in
/// turn, then the ingress default deny.
fn security_groups(groups: &Groups<'_>, out: &mut Out) {
    for (i, group) in groups.chains.iter().enumerate() {
        out.line(1, &format!("chain sg_{i} {{"));
        let note = format!("security group {} tenant {}", group.id, group.tenant_id);
        out.line(2, &comment(&note));
        for (n, rule) in group.rules.iter().enumerate() {
            let Some(m) = rule_match(rule, groups) else {
                continue;
            };
            let note = comment(&format!("sg {} rule {n}", group.id));
            out.line(2, &format!("{m}accept {note}"));
        }
        out.line(1, "}");
    }
    let mut port_sets: Vec<(&Vec<usize>, &usize)> = groups.port_sets.iter().collect();
    port_sets.sort_by_key(|(_, i)| **i);
    for (members, i) in port_sets {
        out.line(1, &format!("chain ps_{i} {{"));
        for g in members {
            out.line(2, &format!("jump sg_{g}"));
        }
        out.line(2, "drop comment \"ingress default deny\"");
        out.line(1, "}");
    }
}

/// The match part of a security-group rule, ending in a space (`None` for a source group without a
/// member set, which [`Groups::new`] makes for every rule it renders).
fn rule_match(rule: &Rule, groups: &Groups<'_>) -> Option<String> {
    let mut m = match &rule.source {
        Source::Cidr(net) => format!("ip saddr {} ", net.trunc()),
        Source::Group(id) => format!("ip saddr @gm_{} ", groups.members.get(id.as_str())?.0),
    };
    let range = rule.ports.map(|(a, b)| {
        let (lo, hi) = (a.min(b), a.max(b));
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    });
    let proto = match (rule.protocol, range) {
        (Protocol::Any, None) => String::new(),
        (Protocol::Any, Some(r)) => format!("meta l4proto {{ tcp, udp }} th dport {r} "),
        (p @ (Protocol::Tcp | Protocol::Udp), None) => format!("meta l4proto {} ", l4name(p)),
        (p @ (Protocol::Tcp | Protocol::Udp), Some(r)) => format!("{} dport {r} ", l4name(p)),
        (Protocol::Icmp, _) => "meta l4proto icmp ".to_owned(),
    };
    m.push_str(&proto);
    Some(m)
}

fn forward(view: &View<'_>, out: &mut Out) {
    out.line(1, "chain c_fwd {");
    out.line(2, "type filter hook forward priority filter; policy drop;");
    out.line(2, "ct state invalid drop");
    // Replies only: a flow's packets in its original direction go through the checks below every time,
    // so removing a security-group rule (or a VM from a group) also cuts the flows it let in.
    out.line(
        2,
        "ct direction reply accept comment \"replies to accepted flows\"",
    );
    out.line(2, "ct state related accept");
    if let Some((uplink, address)) = &view.uplink {
        // Open flows of a released floating IP or a deleted port forward end at their next packet. A
        // forward is known by its target (protocol, VM address and port: nft cannot join the original
        // port into a set key), so another forward to the same VM port keeps such flows.
        out.line(
            2,
            &format!(
                "ct status dnat iifname {uplink} ct original ip daddr != {address} \
                 ct original ip daddr . ip daddr != @floating_live drop comment \"floating IP released\""
            ),
        );
        out.line(
            2,
            &format!(
                "ct status dnat iifname {uplink} ct original ip daddr {address} \
                 meta l4proto . ip daddr . th dport != @forward_live drop comment \"port forward deleted\""
            ),
        );
    }
    // `ct status & dnat == 0`, not `ct status != dnat` (which dropped all DNATed traffic).
    out.line(
        2,
        "oifname @bridges iifname . oifname != @same_bridge ct status & dnat == 0 drop \
         comment \"isolation: into a network only from itself or DNATed\"",
    );
    out.line(
        2,
        "oifname . ip daddr vmap @port_sg comment \"security groups of the destination port\"",
    );
    out.line(2, "oifname @bridges drop comment \"no such port\"");
    if let Some((uplink, _)) = &view.uplink {
        out.line(
            2,
            &format!("iifname @bridges oifname {uplink} accept comment \"egress\""),
        );
    }
    out.line(1, "}");
}

/// Traffic from tenant bridges to the namespace itself: DHCP, the metadata listener and ping on the
/// network's own gateway, replies to what the namespace started; nothing else (the portal's services).
fn input(view: &View<'_>, out: &mut Out) {
    out.line(1, "chain c_in {");
    out.line(2, "type filter hook input priority filter; policy accept;");
    out.line(2, "iifname @bridges jump c_in_vm");
    out.line(1, "}");
    out.line(1, "chain c_in_vm {");
    out.line(2, "ct state established,related accept");
    out.line(2, "udp sport 68 udp dport 67 accept comment \"DHCP\"");
    if let Some(port) = view.state.metadata_port {
        out.line(
            2,
            &format!("tcp dport {port} iifname . ip daddr @gateways accept comment \"metadata\""),
        );
    }
    out.line(2, "icmp type echo-request iifname . ip daddr @gateways accept");
    out.line(2, "drop");
    out.line(1, "}");
}

fn nat(view: &View<'_>, out: &mut Out) {
    out.line(1, "chain c_prerouting {");
    out.line(2, "type nat hook prerouting priority dstnat; policy accept;");
    if let Some((uplink, address)) = &view.uplink {
        out.line(
            2,
            &format!("iifname {uplink} dnat ip to ip daddr map @floating_in comment \"floating IPs\""),
        );
        out.line(
            2,
            &format!(
                "iifname {uplink} ip daddr {address} dnat ip to meta l4proto . th dport map @port_forwards \
                 comment \"port forwards\""
            ),
        );
    }
    if view.state.metadata_port.is_some() {
        out.line(
            2,
            &format!(
                "iifname @bridges ip daddr {METADATA_ADDRESS} tcp dport 80 dnat ip to iifname map @metadata \
                 comment \"metadata\""
            ),
        );
    }
    out.line(1, "}");
    out.line(1, "chain c_postrouting {");
    out.line(2, "type nat hook postrouting priority srcnat; policy accept;");
    if let Some((uplink, _)) = &view.uplink {
        out.line(
            2,
            &format!("oifname {uplink} snat ip to ip saddr map @floating_out comment \"floating IPs\""),
        );
        out.line(
            2,
            &format!("oifname {uplink} ip saddr @tenant_cidrs masquerade comment \"egress\""),
        );
    }
    out.line(1, "}");
}
