//! The one nftables ruleset of the portal's network namespace, rendered from [`NetState`] as `nft -f`
//! input that replaces the previous ruleset in a single batch (no moment with half the rules;
//! CONVENTIONS.md 12). Applied by [`crate::nft::apply`].
//!
//! Two tables named [`TABLE`]:
//! - `inet` (`inet.rs`): the stateful part — tenant isolation, then per-port security groups, then the
//!   general accepts (the order is the point: NETWORKING.md, "nftables pitfalls"), the namespace's own
//!   input from tenant bridges, and NAT (floating IPs, port forwards, metadata, egress masquerade);
//! - `bridge` (`bridge.rs`): stateless anti-spoofing per VM port (`ct` does not work in the bridge family
//!   on these kernels).
//!
//! The ruleset relies on `br_netfilter` with `net.bridge.bridge-nf-call-iptables=1` in the namespace:
//! without it traffic between two VMs of one network never reaches the `inet` forward hook, so security
//! groups would not apply to it. Tenant network CIDRs must be disjoint (they are routed in one namespace).
//!
//! Everything that is looked up per packet is a set or a map (ports, addresses, bridges), so the number of
//! rules a packet walks does not grow with the number of tenants or VMs; only the security-group chains
//! hold one rule per group rule. [`render`] skips (and logs) anything it cannot express safely — an
//! interface name nft would misread, a duplicate address — failing closed; [`validate`] reports the same
//! problems to the portal up front.

mod bridge;
mod delta;
mod inet;

use delta::Elements;
pub use delta::Rendered;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::state::{FloatingIp, Network, Port, PortForward, Protocol};
use crate::NetState;

/// The name of both tables (`inet` and `bridge`) the portal owns in its namespace.
pub const TABLE: &str = "cloudportal";

/// The address VMs ask for metadata (TCP port 80), redirected to their gateway's metadata listener.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
const IFNAME_MAX: usize = 15;

/// Longest rule or element comment written (nft's limit is 128 bytes).
const COMMENT_MAX: usize = 100;

/// A state the ruleset cannot express as given (what [`render`] skips).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesetError {
    #[error("Interface name {0:?} must be 1-15 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
    InterfaceName(String),
    #[error("Bridge {0:?} is used by more than one network")]
    DuplicateBridge(String),
    #[error("TAP {0:?} is used by more than one port")]
    DuplicateTap(String),
    #[error("Address {ip} is used by more than one port on bridge {bridge:?}")]
    DuplicateAddress { bridge: String, ip: Ipv4Addr },
    #[error("Floating IP {0} is mapped more than once")]
    DuplicateFloatingIp(Ipv4Addr),
    #[error("Fixed address {0} has more than one floating IP")]
    DuplicateFloatingTarget(Ipv4Addr),
    #[error("Floating IP {0} is the uplink's own address")]
    FloatingIpIsUplink(Ipv4Addr),
    #[error("Host port {port}/{protocol:?} is forwarded more than once")]
    DuplicatePortForward { protocol: Protocol, port: u16 },
    #[error("Port forward {0:?} must be TCP, UDP or both (any)")]
    PortForwardProtocol(String),
    #[error("Security group {group:?} has a port range {lo}-{hi} that ends before it starts")]
    PortRange { group: String, lo: u16, hi: u16 },
}

/// The whole ruleset for `state`: both tables deleted and recreated in one `nft -f` batch.
pub fn render(state: &NetState) -> String {
    render_parts(state).text
}

/// The whole ruleset for `state`, with what [`Rendered::changes_from`] needs to update an applied
/// ruleset in place when only set and map elements differ.
pub fn render_parts(state: &NetState) -> Rendered {
    let view = View::new(state);
    let mut out = Out::default();
    out.line(
        0,
        "# cloud-portal tenant networks, rendered by netplane::ruleset: replaced as a whole",
    );
    for family in ["inet", "bridge"] {
        // Declaring an empty table first makes the delete succeed when the table does not exist yet.
        out.line(0, &format!("table {family} {TABLE} {{}}"));
        out.line(0, &format!("delete table {family} {TABLE}"));
    }
    inet::render(&view, &mut out);
    bridge::render(&view, &mut out);
    Rendered {
        text: out.text,
        skeleton: out.skeleton,
        elements: out.elements,
    }
}

/// The batch that deletes both tables (a no-op when they do not exist).
pub fn render_removal() -> String {
    ["inet", "bridge"]
        .iter()
        .map(|family| format!("table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n"))
        .collect()
}

/// Every problem [`render`] would work around by skipping something, as the first one found.
pub fn validate(state: &NetState) -> Result<(), RulesetError> {
    if let Some(uplink) = &state.uplink {
        ifname(&uplink.ifname)?;
        if let Some(f) = state.floating_ips.iter().find(|f| f.address == uplink.address) {
            return Err(RulesetError::FloatingIpIsUplink(f.address));
        }
    }
    let mut bridges = HashSet::new();
    let mut taps = HashSet::new();
    let mut addresses = HashSet::new();
    for net in &state.networks {
        ifname(&net.bridge)?;
        if !bridges.insert(&net.bridge) {
            return Err(RulesetError::DuplicateBridge(net.bridge.clone()));
        }
        for port in &net.ports {
            ifname(&port.tap)?;
            if !taps.insert(&port.tap) {
                return Err(RulesetError::DuplicateTap(port.tap.clone()));
            }
            if !addresses.insert((&net.bridge, port.ip)) {
                return Err(RulesetError::DuplicateAddress {
                    bridge: net.bridge.clone(),
                    ip: port.ip,
                });
            }
        }
    }
    for group in &state.security_groups {
        if let Some((lo, hi)) = group
            .rules
            .iter()
            .filter_map(|r| r.ports)
            .find(|(lo, hi)| lo > hi)
        {
            return Err(RulesetError::PortRange {
                group: group.id.clone(),
                lo,
                hi,
            });
        }
    }
    let (mut public, mut fixed) = (HashSet::new(), HashSet::new());
    for f in &state.floating_ips {
        if !public.insert(f.address) {
            return Err(RulesetError::DuplicateFloatingIp(f.address));
        }
        if !fixed.insert(f.fixed_ip) {
            return Err(RulesetError::DuplicateFloatingTarget(f.fixed_ip));
        }
    }
    let mut forwarded = HashSet::new();
    for pf in &state.port_forwards {
        let protocols =
            forward_protocols(pf.protocol).ok_or_else(|| RulesetError::PortForwardProtocol(pf.id.clone()))?;
        for protocol in protocols {
            if !forwarded.insert((l4name(*protocol), pf.host_port)) {
                return Err(RulesetError::DuplicatePortForward {
                    protocol: *protocol,
                    port: pf.host_port,
                });
            }
        }
    }
    Ok(())
}

/// The interface name, quoted for nft, if nft reads it as exactly that name: no quotes, spaces or `*`
/// (a trailing `*` is a wildcard in nft), and short enough for the kernel.
fn ifname(name: &str) -> Result<String, RulesetError> {
    let ok = (1..=IFNAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(RulesetError::InterfaceName(name.to_owned()))
    }
}

/// A `comment "..."` clause: characters nft could misread replaced, bounded in length.
fn comment(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _.:/@+=,()-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(COMMENT_MAX)
        .collect();
    format!("comment \"{clean}\"")
}

/// The transport protocols a port forward covers (`None`: it cannot be forwarded).
fn forward_protocols(protocol: Protocol) -> Option<&'static [Protocol]> {
    match protocol {
        Protocol::Tcp => Some(&[Protocol::Tcp]),
        Protocol::Udp => Some(&[Protocol::Udp]),
        Protocol::Any => Some(&[Protocol::Tcp, Protocol::Udp]),
        Protocol::Icmp => None,
    }
}

/// The nft name of a transport protocol.
fn l4name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::Any => "any",
    }
}

/// The ruleset text being written, and apart from it the same text without set and map elements
/// (the skeleton) and the elements of each set and map.
#[derive(Default)]
struct Out {
    text: String,
    skeleton: String,
    /// The family of the table being written (`inet`, `bridge`).
    family: &'static str,
    elements: Elements,
}

impl Out {
    fn line(&mut self, depth: usize, text: &str) {
        if depth == 0 {
            if text.starts_with("table inet ") {
                self.family = "inet";
            } else if text.starts_with("table bridge ") {
                self.family = "bridge";
            }
        }
        push_line(&mut self.text, depth, text);
        push_line(&mut self.skeleton, depth, text);
    }

    /// A named set or map declaration (`kind` is `set` or `map`), with its elements if any.
    fn set(&mut self, kind: &str, name: &str, type_lines: &[&str], elements: &[String]) {
        self.line(1, &format!("{kind} {name} {{"));
        for t in type_lines {
            self.line(2, t);
        }
        if !elements.is_empty() {
            push_line(&mut self.text, 2, "elements = {");
            let last = elements.len() - 1;
            for (i, e) in elements.iter().enumerate() {
                push_line(
                    &mut self.text,
                    3,
                    &if i == last { e.clone() } else { format!("{e},") },
                );
            }
            push_line(&mut self.text, 2, "}");
        }
        self.line(1, "}");
        self.elements.insert(
            (self.family.to_owned(), name.to_owned()),
            elements.iter().cloned().collect(),
        );
    }
}

fn push_line(text: &mut String, depth: usize, line: &str) {
    for _ in 0..depth {
        text.push('\t');
    }
    text.push_str(line);
    text.push('\n');
}

/// The state as the ruleset sees it: only what can be rendered safely, first occurrence wins.
struct View<'a> {
    /// Quoted interface name and address.
    uplink: Option<(String, Ipv4Addr)>,
    networks: Vec<NetView<'a>>,
    ports: Vec<PortView<'a>>,
    floating_ips: Vec<&'a FloatingIp>,
    /// `(protocol, host port, forward)`: one entry per protocol.
    port_forwards: Vec<(Protocol, &'a PortForward)>,
    state: &'a NetState,
}

struct NetView<'a> {
    net: &'a Network,
    /// Quoted.
    bridge: String,
}

struct PortView<'a> {
    port: &'a Port,
    /// Quoted bridge name of its network.
    bridge: String,
    /// Quoted.
    tap: String,
}

impl<'a> View<'a> {
    fn new(state: &'a NetState) -> View<'a> {
        let uplink = state.uplink.as_ref().and_then(|u| match ifname(&u.ifname) {
            Ok(name) => Some((name, u.address)),
            Err(e) => {
                skip("the uplink", &e);
                None
            }
        });
        let mut networks: Vec<NetView<'a>> = Vec::new();
        let mut ports: Vec<PortView<'a>> = Vec::new();
        let mut taps = HashSet::new();
        let mut addresses = HashSet::new();
        for net in &state.networks {
            let bridge = match ifname(&net.bridge) {
                Ok(b) if networks.iter().all(|n| n.bridge != b) => b,
                Ok(_) => {
                    skip(&net.id, &RulesetError::DuplicateBridge(net.bridge.clone()));
                    continue;
                }
                Err(e) => {
                    skip(&net.id, &e);
                    continue;
                }
            };
            for port in &net.ports {
                let tap = match ifname(&port.tap) {
                    Ok(t) => t,
                    Err(e) => {
                        skip(&port.id, &e);
                        continue;
                    }
                };
                if !taps.insert(&port.tap) {
                    skip(&port.id, &RulesetError::DuplicateTap(port.tap.clone()));
                    continue;
                }
                if !addresses.insert((&net.bridge, port.ip)) {
                    let e = RulesetError::DuplicateAddress {
                        bridge: net.bridge.clone(),
                        ip: port.ip,
                    };
                    skip(&port.id, &e);
                    continue;
                }
                ports.push(PortView {
                    port,
                    bridge: bridge.clone(),
                    tap,
                });
            }
            networks.push(NetView { net, bridge });
        }
        let (mut public, mut fixed) = (HashSet::new(), HashSet::new());
        let mut floating_ips = Vec::new();
        for f in &state.floating_ips {
            let conflict = if uplink.as_ref().is_some_and(|(_, a)| *a == f.address) {
                Some(RulesetError::FloatingIpIsUplink(f.address))
            } else if public.contains(&f.address) {
                Some(RulesetError::DuplicateFloatingIp(f.address))
            } else if fixed.contains(&f.fixed_ip) {
                Some(RulesetError::DuplicateFloatingTarget(f.fixed_ip))
            } else {
                None
            };
            match conflict {
                Some(e) => skip(&f.id, &e),
                None => {
                    public.insert(f.address);
                    fixed.insert(f.fixed_ip);
                    floating_ips.push(f);
                }
            }
        }
        let mut forwarded = HashSet::new();
        let mut port_forwards = Vec::new();
        for pf in &state.port_forwards {
            let Some(protocols) = forward_protocols(pf.protocol) else {
                skip(&pf.id, &RulesetError::PortForwardProtocol(pf.id.clone()));
                continue;
            };
            for protocol in protocols {
                if forwarded.insert((l4name(*protocol), pf.host_port)) {
                    port_forwards.push((*protocol, pf));
                } else {
                    let e = RulesetError::DuplicatePortForward {
                        protocol: *protocol,
                        port: pf.host_port,
                    };
                    skip(&pf.id, &e);
                }
            }
        }
        View {
            uplink,
            networks,
            ports,
            floating_ips,
            port_forwards,
            state,
        }
    }
}

/// Logs what [`View::new`] leaves out.
fn skip(what: &str, why: &RulesetError) {
    tracing::warn!(id = what, error = %why, "left out of the nftables ruleset");
}

#[cfg(test)]
mod tests;
