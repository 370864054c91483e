//! The `bridge` table: stateless anti-spoofing on every VM port, at bridge prerouting (before
//! `br_netfilter` hands IPv4 to the `inet` table, whose security groups trust the source address).
//!
//! A frame entering a tenant bridge from a TAP must carry the port's MAC; IPv4 must carry the port's
//! address, except a DHCP client's `0.0.0.0:68 → :67` before it has one; ARP must name the port's MAC and
//! address as sender (or `0.0.0.0`: an RFC 5227 probe, which no neighbour learns from) and be plain
//! Ethernet/IPv4 ARP, so the fixed offsets nft reads are the real sender fields. DHCP server replies
//! (UDP source port 67) from a VM are dropped: only the namespace's dnsmasq answers.
//!
//! Every other ethertype is dropped — IPv6 (not offered: no router advertisements, no addresses, and
//! letting it through would leave neighbour discovery unguarded), VLAN tags, anything else. Frames from
//! a bridge port the state does not know (a TAP created before the ruleset names it) are dropped too:
//! fail closed. Frames the namespace itself sends (dnsmasq's replies) do not pass prerouting.

use super::{Out, View, TABLE};
use crate::state::Mac;

pub(super) fn render(view: &View<'_>, out: &mut Out) {
    out.line(0, &format!("table bridge {TABLE} {{"));
    let taps: Vec<String> = view.ports.iter().map(|pv| pv.tap.clone()).collect();
    out.set("set", "taps", &["type ifname"], &taps);
    let macs: Vec<String> = view
        .ports
        .iter()
        .map(|pv| format!("{} . {}", pv.tap, mac(&pv.port.mac)))
        .collect();
    out.set("set", "port_mac", &["type ifname . ether_addr"], &macs);
    let ips: Vec<String> = view
        .ports
        .iter()
        .map(|pv| format!("{} . {}", pv.tap, pv.port.ip))
        .collect();
    out.set("set", "port_ip", &["type ifname . ipv4_addr"], &ips);

    out.line(1, "chain c_pre {");
    out.line(2, "type filter hook prerouting priority filter; policy accept;");
    out.line(2, "iifname != @taps drop comment \"not a port of the state\"");
    out.line(
        2,
        "iifname . ether saddr != @port_mac drop comment \"spoofed source MAC\"",
    );
    out.line(2, "ether type vmap { ip : jump c_ip, arp : jump c_arp }");
    out.line(2, "drop comment \"neither IPv4 nor ARP\"");
    out.line(1, "}");

    out.line(1, "chain c_ip {");
    out.line(2, "udp sport 67 drop comment \"DHCP server reply from a VM\"");
    out.line(
        2,
        "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept comment \"DHCP client without an address\"",
    );
    out.line(
        2,
        "iifname . ip saddr != @port_ip drop comment \"spoofed source address\"",
    );
    out.line(2, "accept");
    out.line(1, "}");

    out.line(1, "chain c_arp {");
    out.line(2, "arp htype != 1 drop");
    out.line(2, "arp ptype != ip drop");
    out.line(2, "arp hlen != 6 drop");
    out.line(2, "arp plen != 4 drop");
    out.line(
        2,
        "iifname . arp saddr ether != @port_mac drop comment \"spoofed ARP sender MAC\"",
    );
    out.line(2, "arp saddr ip 0.0.0.0 accept comment \"ARP probe\"");
    out.line(
        2,
        "iifname . arp saddr ip != @port_ip drop comment \"spoofed ARP sender address\"",
    );
    out.line(2, "accept");
    out.line(1, "}");
    out.line(0, "}");
}

fn mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}
