//! Tests on the rendered text: the orderings isolation depends on, the keys and maps, what is left out.
//! That nft accepts the text, and that it does what it says, is tested in `tests/` (root).

use std::net::Ipv4Addr;

use super::*;
use crate::state::{FloatingIp, Network, Port, PortForward, Protocol, Rule, SecurityGroup, Source, Uplink};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn port(id: &str, tap: &str, last: u8, groups: &[&str]) -> Port {
    Port {
        id: id.into(),
        vm_id: format!("vm-{id}"),
        tap: tap.into(),
        mac: [0x52, 0x54, 0, 0, 0, last],
        ip: Ipv4Addr::new(10, 1, 0, last),
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn rule(protocol: Protocol, ports: Option<(u16, u16)>, source: Source) -> Rule {
    Rule {
        protocol,
        ports,
        source,
    }
}

fn sample() -> NetState {
    NetState {
        uplink: Some(Uplink {
            ifname: "up0".into(),
            address: ip("198.51.100.1"),
        }),
        networks: vec![
            Network {
                id: "net-1".into(),
                tenant_id: "t1".into(),
                bridge: "br-n1".into(),
                cidr: "10.1.0.0/24".parse().expect("cidr"),
                gateway: ip("10.1.0.1"),
                mtu: 1500,
                ports: vec![
                    port("p11", "tap-p11", 11, &["web"]),
                    port("p12", "tap-p12", 12, &["default", "db"]),
                    port("p13", "tap-p13", 13, &[]),
                ],
            },
            Network {
                id: "net-2".into(),
                tenant_id: "t2".into(),
                bridge: "br-n2".into(),
                cidr: "10.2.0.5/24".parse().expect("cidr"),
                gateway: ip("10.2.0.1"),
                mtu: 1500,
                ports: vec![Port {
                    ip: ip("10.2.0.21"),
                    ..port("p21", "tap-p21", 21, &["default", "db"])
                }],
            },
        ],
        security_groups: vec![
            SecurityGroup {
                id: "default".into(),
                tenant_id: "t1".into(),
                rules: vec![rule(Protocol::Any, None, Source::Group("default".into()))],
            },
            SecurityGroup {
                id: "web".into(),
                tenant_id: "t1".into(),
                rules: vec![
                    rule(
                        Protocol::Tcp,
                        Some((8080, 8080)),
                        Source::Cidr("0.0.0.0/0".parse().expect("cidr")),
                    ),
                    rule(
                        Protocol::Udp,
                        Some((5000, 6000)),
                        Source::Cidr("192.0.2.77/24".parse().expect("cidr")),
                    ),
                    rule(
                        Protocol::Any,
                        Some((22, 23)),
                        Source::Cidr("198.51.100.0/24".parse().expect("cidr")),
                    ),
                    rule(
                        Protocol::Icmp,
                        Some((1, 2)),
                        Source::Cidr("10.1.0.0/24".parse().expect("cidr")),
                    ),
                ],
            },
            SecurityGroup {
                id: "db".into(),
                tenant_id: "t1".into(),
                rules: vec![rule(
                    Protocol::Tcp,
                    Some((5432, 5432)),
                    Source::Group("web".into()),
                )],
            },
        ],
        port_forwards: vec![
            PortForward {
                id: "pf-ssh".into(),
                protocol: Protocol::Tcp,
                host_port: 2222,
                vm_ip: ip("10.1.0.11"),
                vm_port: 22,
            },
            PortForward {
                id: "pf-dns".into(),
                protocol: Protocol::Any,
                host_port: 53,
                vm_ip: ip("10.1.0.12"),
                vm_port: 5353,
            },
        ],
        floating_ips: vec![FloatingIp {
            id: "fip-1".into(),
            address: ip("203.0.113.10"),
            fixed_ip: ip("10.1.0.11"),
        }],
        metadata_port: Some(8775),
    }
}

/// The lines of one chain (or set) of the rendered text, trimmed, without its braces.
fn block<'t>(text: &'t str, header: &str) -> Vec<&'t str> {
    let mut lines = text.lines().map(str::trim).skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no {header:?} in:\n{text}");
    lines.take_while(|l| *l != "}").collect()
}

fn position(lines: &[&str], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
}

#[test]
fn replaces_both_tables_in_one_batch() {
    let text = render(&sample());
    let head: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).take(4).collect();
    assert_eq!(
        head,
        [
            "table inet cloudportal {}",
            "delete table inet cloudportal",
            "table bridge cloudportal {}",
            "delete table bridge cloudportal",
        ]
    );
    assert_eq!(text.matches("table inet cloudportal {\n").count(), 1);
    assert_eq!(text.matches("table bridge cloudportal {\n").count(), 1);
}

#[test]
fn isolation_comes_before_security_groups_and_egress() {
    let text = render(&sample());
    let fwd = block(&text, "chain c_fwd {");
    assert_eq!(fwd[0], "type filter hook forward priority filter; policy drop;");
    assert_eq!(fwd[1], "ct state invalid drop");
    assert_eq!(
        fwd[2],
        "ct direction reply accept comment \"replies to accepted flows\""
    );
    assert_eq!(fwd[3], "ct state related accept");
    assert!(
        !fwd.iter().any(|l| l.contains("established")),
        "original-direction packets of established flows must meet the security groups"
    );
    let isolation = position(&fwd, "!= @same_bridge");
    let groups = position(&fwd, "vmap @port_sg");
    let no_port = position(&fwd, "oifname @bridges drop");
    let egress = position(&fwd, "oifname \"up0\" accept");
    let released = position(&fwd, "comment \"floating IP released\"");
    let deleted = position(&fwd, "comment \"port forward deleted\"");
    assert_eq!((released, deleted), (4, 5));
    assert_eq!((isolation, groups, no_port, egress), (6, 7, 8, 9));
    assert!(
        fwd[isolation].contains("ct status & dnat == 0 drop"),
        "{}",
        fwd[isolation]
    );
    assert!(!fwd[isolation].contains("!= dnat"));
    // Nothing else accepts in the forward chain (replies, related, egress): every other accept is inside
    // a security-group chain.
    assert_eq!(fwd.iter().filter(|l| l.contains("accept")).count(), 3);
}

#[test]
fn ports_are_keyed_by_bridge_and_address_to_their_groups() {
    let text = render(&sample());
    let map = block(&text, "map port_sg {");
    let elements: Vec<&str> = map.iter().filter(|l| l.contains(": jump")).copied().collect();
    assert_eq!(elements.len(), 4, "{map:#?}");
    assert!(elements[0].starts_with("\"br-n1\" . 10.1.0.11 comment \"port p11 vm vm-p11\" : jump ps_2"));
    assert!(elements[1].starts_with("\"br-n1\" . 10.1.0.12 "));
    assert!(elements[2].starts_with("\"br-n1\" . 10.1.0.13 "));
    // p21 has the same groups as p12 (another order would share the chain too).
    let chain_of = |e: &str| e.rsplit(' ').next().map(|s| s.trim_end_matches(',').to_owned());
    assert_eq!(chain_of(elements[1]), chain_of(elements[3]));
    assert!(elements[3].starts_with("\"br-n2\" . 10.2.0.21 "));

    // p12: default then db, then the default deny.
    let p12 = chain_of(elements[1]).expect("chain");
    let chain = block(&text, &format!("chain {p12} {{"));
    assert_eq!(
        chain,
        ["jump sg_0", "jump sg_2", "drop comment \"ingress default deny\""]
    );
    // p13 has no groups: ingress denied.
    let p13 = chain_of(elements[2]).expect("chain");
    assert_eq!(
        block(&text, &format!("chain {p13} {{")),
        ["drop comment \"ingress default deny\""]
    );
}

#[test]
fn rules_render_protocols_ports_and_sources() {
    let text = render(&sample());
    // Chains in the state's group order: default, web, db.
    let web = block(&text, "chain sg_1 {");
    assert_eq!(
        web,
        [
            "comment \"security group web tenant t1\"",
            "ip saddr 0.0.0.0/0 tcp dport 8080 accept comment \"sg web rule 0\"",
            "ip saddr 192.0.2.0/24 udp dport 5000-6000 accept comment \"sg web rule 1\"",
            "ip saddr 198.51.100.0/24 meta l4proto { tcp, udp } th dport 22-23 accept comment \"sg web rule 2\"",
            "ip saddr 10.1.0.0/24 meta l4proto icmp accept comment \"sg web rule 3\"",
        ]
    );
    let default = block(&text, "chain sg_0 {");
    assert!(default[1].starts_with("ip saddr @gm_0 accept"), "{default:#?}");
    let db = block(&text, "chain sg_2 {");
    assert!(
        db[1].starts_with("ip saddr @gm_1 tcp dport 5432 accept"),
        "{db:#?}"
    );
    // Members by fixed address, across networks (isolation, not the group, keeps tenants apart).
    let default_members = block(&text, "set gm_0 {");
    assert!(default_members.contains(&"10.1.0.12,") && default_members.contains(&"10.2.0.21"));
    let web_members = block(&text, "set gm_1 {");
    assert!(web_members.contains(&"10.1.0.11"), "{web_members:#?}");
}

#[test]
fn nat_maps_floating_ips_port_forwards_and_metadata() {
    let text = render(&sample());
    let pre = block(&text, "chain c_prerouting {");
    assert!(pre[1].starts_with("iifname \"up0\" dnat ip to ip daddr map @floating_in"));
    assert!(
        pre[2].starts_with("iifname \"up0\" ip daddr 198.51.100.1 dnat ip to meta l4proto . th dport map")
    );
    assert!(
        pre[3].starts_with("iifname @bridges ip daddr 169.254.169.254 tcp dport 80 dnat ip to iifname map")
    );
    let post = block(&text, "chain c_postrouting {");
    assert!(post[1].starts_with("oifname \"up0\" snat ip to ip saddr map @floating_out"));
    assert!(post[2].starts_with("oifname \"up0\" ip saddr @tenant_cidrs masquerade"));
    assert!(text.contains("203.0.113.10 comment \"fip-1\" : 10.1.0.11"));
    assert!(text.contains("10.1.0.11 : 203.0.113.10"));
    assert!(text.contains("tcp . 2222 comment \"pf-ssh\" : 10.1.0.11 . 22"));
    assert!(text.contains("tcp . 53 comment \"pf-dns\" : 10.1.0.12 . 5353"));
    assert!(text.contains("udp . 53 comment \"pf-dns\" : 10.1.0.12 . 5353"));
    assert!(text.contains("\"br-n2\" : 10.2.0.1 . 8775"));
    assert_eq!(
        block(&text, "set tenant_cidrs {")[3..],
        ["elements = {", "10.1.0.0/24,", "10.2.0.0/24"]
    );
}

#[test]
fn vms_reach_only_dhcp_metadata_and_ping_on_their_own_gateway() {
    let text = render(&sample());
    assert_eq!(block(&text, "chain c_in {")[1], "iifname @bridges jump c_in_vm");
    let vm = block(&text, "chain c_in_vm {");
    assert_eq!(
        vm,
        [
            "ct state established,related accept",
            "udp sport 68 udp dport 67 accept comment \"DHCP\"",
            "tcp dport 8775 iifname . ip daddr @gateways accept comment \"metadata\"",
            "icmp type echo-request iifname . ip daddr @gateways accept",
            "drop",
        ]
    );
}

#[test]
fn anti_spoofing_checks_the_port_then_the_mac_then_ip_and_arp() {
    let text = render(&sample());
    assert!(text.contains("\"tap-p11\" . 52:54:00:00:00:0b"));
    assert!(text.contains("\"tap-p21\" . 10.2.0.21"));
    let pre = block(&text, "chain c_pre {");
    assert_eq!(
        pre[1..],
        [
            "iifname != @taps drop comment \"not a port of the state\"",
            "iifname . ether saddr != @port_mac drop comment \"spoofed source MAC\"",
            "ether type vmap { ip : jump c_ip, arp : jump c_arp }",
            "drop comment \"neither IPv4 nor ARP\"",
        ]
    );
    let ip4 = block(&text, "chain c_ip {");
    let reply = position(&ip4, "udp sport 67 drop");
    let client = position(&ip4, "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept");
    let spoof = position(&ip4, "ip saddr != @port_ip drop");
    assert!(reply < client && client < spoof, "{ip4:#?}");
    let arp = block(&text, "chain c_arp {");
    let mac = position(&arp, "arp saddr ether != @port_mac drop");
    let probe = position(&arp, "arp saddr ip 0.0.0.0 accept");
    let spoof = position(&arp, "arp saddr ip != @port_ip drop");
    assert!(position(&arp, "arp hlen != 6 drop") < mac && mac < probe && probe < spoof);
}

#[test]
fn bad_names_are_left_out_and_reported() {
    let mut state = sample();
    state.networks[0].ports[0].tap = "tap\" accept".into();
    state.networks[1].bridge = "br-n2-much-too-long".into();
    assert_eq!(
        validate(&state),
        Err(RulesetError::InterfaceName("tap\" accept".into()))
    );
    let text = render(&state);
    assert!(!text.contains("accept\""), "{text}");
    assert!(
        !text.contains("10.1.0.11 comment"),
        "the port is left out of port_sg"
    );
    assert!(!text.contains("br-n2"), "the network is left out");
    // Left out means no accept anywhere: its frames are dropped as from an unknown TAP.
    assert!(!text.contains("tap\\"));
    state.networks[0].ports[0].tap = "tap*".into();
    assert!(validate(&state).is_err());
    assert!(!render(&state).contains("tap*"));
}

#[test]
fn duplicates_are_rendered_once_and_reported() {
    let mut state = sample();
    let mut twin = state.networks[0].ports[1].clone();
    twin.tap = "tap-twin".into();
    state.networks[0].ports.push(twin);
    assert!(matches!(
        validate(&state),
        Err(RulesetError::DuplicateAddress { .. })
    ));
    let text = render(&state);
    assert_eq!(text.matches("\"br-n1\" . 10.1.0.12 ").count(), 1);
    assert!(!text.contains("tap-twin"));

    let mut state = sample();
    state.port_forwards.push(PortForward {
        id: "pf-again".into(),
        ..state.port_forwards[0].clone()
    });
    state.floating_ips.push(FloatingIp {
        id: "fip-again".into(),
        ..state.floating_ips[0].clone()
    });
    assert!(matches!(
        validate(&state),
        Err(RulesetError::DuplicateFloatingIp(_) | RulesetError::DuplicatePortForward { .. })
    ));
    let text = render(&state);
    assert!(!text.contains("pf-again") && !text.contains("fip-again"));

    let mut state = sample();
    state.floating_ips[0].address = ip("198.51.100.1");
    assert_eq!(
        validate(&state),
        Err(RulesetError::FloatingIpIsUplink(ip("198.51.100.1")))
    );
    assert!(!render(&state).contains("fip-1"));

    let mut state = sample();
    state.port_forwards[0].protocol = Protocol::Icmp;
    assert!(matches!(
        validate(&state),
        Err(RulesetError::PortForwardProtocol(_))
    ));
    assert!(!render(&state).contains("pf-ssh"));
}

#[test]
fn a_reversed_port_range_is_reported_and_rendered_in_order() {
    let mut state = sample();
    assert_eq!(validate(&state), Ok(()));
    state.security_groups[1].rules[1].ports = Some((6000, 5000));
    assert!(matches!(
        validate(&state),
        Err(RulesetError::PortRange {
            lo: 6000,
            hi: 5000,
            ..
        })
    ));
    assert!(render(&state).contains("udp dport 5000-6000 accept"));
}

#[test]
fn without_an_uplink_there_is_no_way_out_and_no_nat() {
    let mut state = sample();
    state.uplink = None;
    state.metadata_port = None;
    let text = render(&state);
    assert!(!text.contains("floating_in") && !text.contains("port_forwards") && !text.contains("masquerade"));
    assert!(!text.contains("metadata") && !text.contains("169.254.169.254"));
    assert_eq!(block(&text, "chain c_fwd {").len(), 7, "no egress accept");
}

#[test]
fn comments_cannot_break_out_of_their_quotes() {
    assert_eq!(comment("a\"b;c\nd{e}"), "comment \"a_b_c_d_e_\"");
    assert_eq!(
        comment(&"x".repeat(500)).len(),
        "comment \"\"".len() + COMMENT_MAX
    );
    let mut state = sample();
    state.security_groups[0].id = "evil\" ; flush ruleset".into();
    state.networks[0].ports[1].security_groups[0] = "evil\" ; flush ruleset".into();
    let text = render(&state);
    assert!(!text.contains("\" ; flush"));
    assert!(text.contains("security group evil_ _ flush ruleset"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render(&sample()), render(&sample()));
    let empty = render(&NetState::default());
    assert!(empty.contains("map port_sg {") && empty.contains("set taps {"));
}

#[test]
fn dnat_flows_are_checked_against_the_floating_ips_and_forwards_in_force() {
    let text = render(&sample());
    let fwd = block(&text, "chain c_fwd {");
    let released = &fwd[position(&fwd, "floating IP released")];
    assert!(released.starts_with("ct status dnat iifname \"up0\" ct original ip daddr != "));
    assert!(released.contains("ct original ip daddr . ip daddr != @floating_live drop"));
    let deleted = &fwd[position(&fwd, "port forward deleted")];
    assert!(deleted.contains("meta l4proto . ip daddr . th dport != @forward_live drop"));
    let live = block(&text, "set floating_live {");
    assert!(live.iter().any(|l| l.contains(" . ")), "{live:?}");
    let targets = block(&text, "set forward_live {");
    assert!(targets.iter().any(|l| l.starts_with("tcp . ")), "{targets:?}");
}
