//! The ruleset does what it claims, each claim checked both ways: a topology of namespaces made here (a
//! "host" standing for the portal's namespace with one bridge per tenant network and an uplink to
//! "outside"; one namespace per "VM" on a veth whose host end is named like its TAP, NETWORKING.md),
//! `render(&state)` applied in the host, then positive and negative checks run in parallel, each bounded
//! (a drop is a 2 s timeout; a refusal is not a drop). The anti-spoofing checks run again with the
//! bridge table removed, as the control that they test the table and not something else.
//!
//! Root only; skips loudly otherwise. Everything is deleted at the end, also when a check fails.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use netplane::state::{
    FloatingIp, Network, Port, PortForward, Protocol, Rule, SecurityGroup, Source, Uplink,
};
use netplane::{nft, ruleset, NetState};

const WAIT: Duration = Duration::from_secs(2);
const METADATA_PORT: u16 = 8775;
/// A service of the portal's namespace that VMs must not reach.
const PORTAL_SERVICE: u16 = 9100;
const FLOATING: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const SPOOFED: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 99);
const SPOOFED_MAC: &str = "02:00:00:00:66:66";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn sock(a: &str, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip(a), port)
}

/// One VM of the lab: its short name, tenant network, last address byte and groups.
struct Vm {
    short: &'static str,
    net: usize,
    last: u8,
    groups: &'static [&'static str],
}

const VMS: [Vm; 5] = [
    Vm {
        short: "v1",
        net: 0,
        last: 11,
        groups: &["t1-web"],
    },
    Vm {
        short: "v2",
        net: 0,
        last: 12,
        groups: &["t1-default", "t1-db"],
    },
    Vm {
        short: "v3",
        net: 0,
        last: 13,
        groups: &["t1-default"],
    },
    // The attacker of the anti-spoofing checks (its MAC changes mid-test).
    Vm {
        short: "va",
        net: 0,
        last: 14,
        groups: &["t1-default"],
    },
    Vm {
        short: "v4",
        net: 1,
        last: 21,
        groups: &["t2-default"],
    },
];

const NETS: [(&str, &str, &str, &str); 2] = [
    // (tenant, bridge, prefix, bridge MAC)
    ("t1", "br-t1", "10.1.0", "02:00:00:00:01:01"),
    ("t2", "br-t2", "10.2.0", "02:00:00:00:02:01"),
];

fn vm_ip(vm: &Vm) -> Ipv4Addr {
    ip(&format!("{}.{}", NETS[vm.net].2, vm.last))
}

fn vm_mac(vm: &Vm) -> [u8; 6] {
    [0x52, 0x54, 0, 0, vm.net as u8 + 1, vm.last]
}

fn tap(vm: &Vm) -> String {
    format!("tap-{}", vm.short)
}

fn cidr(s: &str) -> Source {
    Source::Cidr(s.parse().expect("cidr"))
}

fn rule(protocol: Protocol, port: Option<u16>, source: Source) -> Rule {
    Rule {
        protocol,
        ports: port.map(|p| (p, p)),
        source,
    }
}

fn group(id: &str, tenant: &str, rules: Vec<Rule>) -> SecurityGroup {
    SecurityGroup {
        id: id.into(),
        tenant_id: tenant.into(),
        rules,
    }
}

fn forward(id: &str, protocol: Protocol, host_port: u16, vm: &str, vm_port: u16) -> PortForward {
    PortForward {
        id: id.into(),
        protocol,
        host_port,
        vm_ip: ip(vm),
        vm_port,
    }
}

fn state() -> NetState {
    let networks = NETS
        .iter()
        .enumerate()
        .map(|(i, (tenant, bridge, prefix, _))| Network {
            id: format!("net-{tenant}"),
            tenant_id: tenant.to_string(),
            bridge: bridge.to_string(),
            cidr: format!("{prefix}.0/24").parse().expect("cidr"),
            gateway: ip(&format!("{prefix}.1")),
            mtu: 1500,
            ports: VMS
                .iter()
                .filter(|vm| vm.net == i)
                .map(|vm| Port {
                    id: format!("port-{}", vm.short),
                    vm_id: vm.short.into(),
                    tap: tap(vm),
                    mac: vm_mac(vm),
                    ip: vm_ip(vm),
                    security_groups: vm.groups.iter().map(|g| g.to_string()).collect(),
                })
                .collect(),
        })
        .collect();
    NetState {
        uplink: Some(Uplink {
            ifname: UPLINK.into(),
            address: UPLINK_ADDRESS,
        }),
        networks,
        security_groups: vec![
            group(
                "t1-default",
                "t1",
                vec![rule(Protocol::Any, None, Source::Group("t1-default".into()))],
            ),
            group(
                "t1-web",
                "t1",
                vec![
                    rule(Protocol::Tcp, Some(8080), cidr("0.0.0.0/0")),
                    rule(Protocol::Tcp, Some(22), cidr("198.51.100.0/24")),
                    rule(Protocol::Tcp, Some(7100), cidr("10.1.0.12/32")),
                    rule(Protocol::Udp, Some(5300), cidr("0.0.0.0/0")),
                ],
            ),
            group(
                "t1-db",
                "t1",
                vec![rule(Protocol::Tcp, Some(5432), Source::Group("t1-web".into()))],
            ),
            group(
                "t2-default",
                "t2",
                vec![
                    rule(Protocol::Any, None, Source::Group("t2-default".into())),
                    rule(Protocol::Tcp, Some(7000), cidr("0.0.0.0/0")),
                ],
            ),
        ],
        port_forwards: vec![
            forward("pf-ssh-v1", Protocol::Tcp, 2222, "10.1.0.11", 22),
            forward("pf-v3-closed", Protocol::Tcp, 2223, "10.1.0.13", 7000),
            forward("pf-udp-v1", Protocol::Udp, 5301, "10.1.0.11", 5300),
            forward("pf-v4", Protocol::Tcp, 7007, "10.2.0.21", 7000),
        ],
        floating_ips: vec![FloatingIp {
            id: "fip-v1".into(),
            address: FLOATING,
            fixed_ip: ip("10.1.0.11"),
        }],
        metadata_port: Some(METADATA_PORT),
    }
}

/// The namespaces of the lab and what their servers saw.
struct Lab {
    host: String,
    outside: String,
    vms: Vec<String>,
    outside_udp: Seen,
    v2_udp: Seen,
    _namespaces: Namespaces,
}

impl Lab {
    fn vm(&self, short: &str) -> &str {
        let i = VMS.iter().position(|v| v.short == short).expect("vm");
        &self.vms[i]
    }
}

/// The lab; `tag` keeps the namespaces of this file's tests apart (they run in parallel).
fn build(tag: &str) -> anyhow::Result<Lab> {
    let mut namespaces = Namespaces::new(tag);
    let (host, outside) = host_and_outside(&mut namespaces, &["203.0.113.0/24", "10.0.0.0/8"])?;
    for (_, bridge, prefix, mac) in NETS {
        add_bridge(&host, bridge, mac, &format!("{prefix}.1/24"))?;
    }
    let mut vms = Vec::new();
    for vm in &VMS {
        let (_, bridge, prefix, gateway_mac) = NETS[vm.net];
        let m = vm_mac(vm);
        let mac = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let link = VmLink {
            short: vm.short,
            tap: &tap(vm),
            bridge,
            mac: &mac,
            cidr: &format!("{}/24", vm_ip(vm)),
            gateway: &format!("{prefix}.1"),
            gateway_mac,
        };
        vms.push(add_vm(&mut namespaces, &host, &link)?);
    }
    let stop: Arc<AtomicBool> = namespaces.stop_flag();
    let seen = || -> Seen { Arc::default() };
    let (outside_udp, v2_udp, host_udp) = (seen(), seen(), seen());
    tcp_server(&outside, 9000, &stop)?;
    udp_server(&outside, 9001, &outside_udp, &stop)?;
    for port in [METADATA_PORT, PORTAL_SERVICE] {
        tcp_server(&host, port, &stop)?;
    }
    udp_server(&host, 67, &host_udp, &stop)?;
    let servers: [(&str, &[u16]); 4] = [
        ("v1", &[22, 7000, 7100, 8080]),
        ("v2", &[5432, 7000]),
        ("v3", &[7000]),
        ("v4", &[7000]),
    ];
    for (short, ports) in servers {
        let i = VMS.iter().position(|v| v.short == short).expect("vm");
        for port in ports {
            tcp_server(&vms[i], *port, &stop)?;
        }
    }
    udp_server(&vms[0], 5300, &seen(), &stop)?;
    udp_server(&vms[1], 68, &v2_udp, &stop)?;
    Ok(Lab {
        host,
        outside,
        vms,
        outside_udp,
        v2_udp,
        _namespaces: namespaces,
    })
}

/// What a check expects.
#[derive(Clone, Copy)]
enum Expect {
    /// Reached, the server seeing this source address (`None`: any).
    Reach(Option<&'static str>),
    /// Dropped: nothing back within the bound.
    Drop,
}

type Probe<'a> = Box<dyn FnOnce() -> Outcome + Send + 'a>;

struct Row {
    name: String,
    expect: Expect,
    got: Outcome,
}

impl Row {
    fn passed(&self) -> bool {
        match (&self.expect, &self.got) {
            (Expect::Reach(None), Outcome::Reached(_)) => true,
            (Expect::Reach(Some(want)), Outcome::Reached(peer)) => peer.split(':').next() == Some(*want),
            (Expect::Drop, Outcome::TimedOut) => true,
            _ => false,
        }
    }
}

/// Runs the probes in parallel.
fn run_all(checks: Vec<(String, Expect, Probe<'_>)>) -> Vec<Row> {
    std::thread::scope(|s| {
        let running: Vec<_> = checks
            .into_iter()
            .map(|(name, expect, probe)| (name, expect, s.spawn(probe)))
            .collect();
        running
            .into_iter()
            .map(|(name, expect, handle)| Row {
                name,
                expect,
                got: handle.join().unwrap_or(Outcome::Error("probe panicked".into())),
            })
            .collect()
    })
}

fn tcp<'a>(name: &str, expect: Expect, from: &'a str, to: SocketAddrV4) -> (String, Expect, Probe<'a>) {
    (name.into(), expect, Box::new(move || tcp_probe(from, to, WAIT)))
}

fn command_outcome(args: &[&str]) -> Outcome {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) if o.status.success() => Outcome::Reached(String::new()),
        Ok(_) => Outcome::TimedOut,
        Err(e) => Outcome::Error(e.to_string()),
    }
}

fn main_checks(lab: &Lab) -> Vec<(String, Expect, Probe<'_>)> {
    let (v1, v2, v3, v4) = (lab.vm("v1"), lab.vm("v2"), lab.vm("v3"), lab.vm("v4"));
    let out = lab.outside.as_str();
    let uplink = UPLINK_ADDRESS.to_string();
    let r = |a| Expect::Reach(Some(a));
    let d = Expect::Drop;
    let mut checks = vec![
        tcp(
            "same tenant, allowed by the default group",
            r("10.1.0.13"),
            v3,
            sock("10.1.0.12", 7000),
        ),
        tcp(
            "same tenant, port no group allows",
            d,
            v3,
            sock("10.1.0.11", 7000),
        ),
        tcp(
            "SG rule from a CIDR (/32), inside it",
            r("10.1.0.12"),
            v2,
            sock("10.1.0.11", 7100),
        ),
        tcp(
            "SG rule from a CIDR (/32), outside it",
            d,
            v3,
            sock("10.1.0.11", 7100),
        ),
        tcp(
            "SG rule from a group, member",
            r("10.1.0.11"),
            v1,
            sock("10.1.0.12", 5432),
        ),
        tcp(
            "SG rule from a group, not a member",
            d,
            v1,
            sock("10.1.0.12", 7000),
        ),
        tcp(
            "cross tenant t2 -> t1 (SG open to 0/0)",
            d,
            v4,
            sock("10.1.0.11", 8080),
        ),
        tcp(
            "cross tenant t1 -> t2 (SG open to 0/0)",
            d,
            v3,
            sock("10.2.0.21", 7000),
        ),
        tcp(
            "egress NAT: outside sees the uplink address",
            r("198.51.100.1"),
            v3,
            sock("198.51.100.2", 9000),
        ),
        tcp(
            "floating IP out: outside sees the floating IP",
            r("203.0.113.10"),
            v1,
            sock("198.51.100.2", 9000),
        ),
        tcp(
            "floating IP in, allowed by SG",
            r("198.51.100.2"),
            out,
            SocketAddrV4::new(FLOATING, 8080),
        ),
        tcp(
            "floating IP in, port closed by SG",
            d,
            out,
            SocketAddrV4::new(FLOATING, 7000),
        ),
        tcp(
            "port forward in (tcp 2222 -> v1:22)",
            r("198.51.100.2"),
            out,
            sock(&uplink, 2222),
        ),
        tcp(
            "port forward in to another tenant",
            r("198.51.100.2"),
            out,
            sock(&uplink, 7007),
        ),
        tcp(
            "port forward in, closed by the VM's SG",
            d,
            out,
            sock(&uplink, 2223),
        ),
        tcp(
            "outside -> private address directly (SG open)",
            d,
            out,
            sock("10.1.0.11", 8080),
        ),
        tcp(
            "metadata 169.254.169.254:80",
            r("10.1.0.13"),
            v3,
            sock("169.254.169.254", 80),
        ),
        tcp(
            "metadata port on own gateway",
            r("10.1.0.13"),
            v3,
            sock("10.1.0.1", METADATA_PORT),
        ),
        tcp(
            "metadata port on another network's gateway",
            d,
            v4,
            sock("10.1.0.1", METADATA_PORT),
        ),
        tcp(
            "portal service on the gateway",
            d,
            v3,
            sock("10.1.0.1", PORTAL_SERVICE),
        ),
        tcp(
            "portal service on the uplink address",
            d,
            v3,
            sock(&uplink, PORTAL_SERVICE),
        ),
    ];
    checks.push((
        "port forward in (udp 5301 -> v1:5300)".into(),
        r("198.51.100.2"),
        Box::new(move || {
            udp_probe(
                out,
                sock("0.0.0.0", 0),
                sock("198.51.100.1", 5301),
                "pf-udp",
                WAIT,
            )
        }),
    ));
    checks.push((
        "DHCP to the namespace (udp 68 -> 67)".into(),
        r("10.1.0.13"),
        Box::new(move || udp_probe(v3, sock("10.1.0.13", 68), sock("10.1.0.1", 67), "dhcp", WAIT)),
    ));
    let ping = |from: &str, to: &'static str| -> Probe<'static> {
        let from = from.to_owned();
        Box::new(move || {
            command_outcome(&[
                "ip", "netns", "exec", &from, "busybox", "ping", "-c", "1", "-W", "2", to,
            ])
        })
    };
    checks.push((
        "ping own gateway".into(),
        Expect::Reach(None),
        ping(v3, "10.1.0.1"),
    ));
    checks.push((
        "ping another network's gateway".into(),
        Expect::Drop,
        ping(v3, "10.2.0.1"),
    ));
    checks
}

/// Anti-spoofing: each one passes the other rules (the control run without the bridge table shows it).
fn spoof_checks(lab: &Lab, round: &str, expect: Expect) -> Vec<Row> {
    let va = lab.vm("va");
    let tag = |what: &str| format!("{what}-{round}");
    let (ip_token, reply_token) = (tag("spoofed-ip"), tag("dhcp-reply"));
    let parallel: Vec<(String, Expect, Probe<'_>)> = vec![
        (
            format!("spoofed source IP {SPOOFED} out to outside ({round})"),
            expect,
            Box::new(|| {
                udp_send(
                    va,
                    SocketAddrV4::new(SPOOFED, 0),
                    sock("198.51.100.2", 9001),
                    &ip_token,
                )
                .map_or_else(
                    |e| Outcome::Error(format!("{e:#}")),
                    |()| seen_within(&lab.outside_udp, &ip_token, WAIT),
                )
            }),
        ),
        (
            format!("DHCP server reply (udp 67 -> 68) to a VM ({round})"),
            expect,
            Box::new(|| {
                udp_send(va, sock("10.1.0.14", 67), sock("10.1.0.12", 68), &reply_token).map_or_else(
                    |e| Outcome::Error(format!("{e:#}")),
                    |()| seen_within(&lab.v2_udp, &reply_token, WAIT),
                )
            }),
        ),
        (
            format!("ARP with spoofed sender IP {SPOOFED} ({round})"),
            expect,
            Box::new(|| {
                let spoofed = SPOOFED.to_string();
                command_outcome(&[
                    "ip",
                    "netns",
                    "exec",
                    va,
                    "busybox",
                    "arping",
                    "-f",
                    "-c",
                    "2",
                    "-w",
                    "2",
                    "-I",
                    "eth0",
                    "-s",
                    &spoofed,
                    "10.1.0.12",
                ])
            }),
        ),
    ];
    let mut rows = run_all(parallel);
    // The MAC changes for the whole VM, so this one runs alone.
    let mac_token = tag("spoofed-mac");
    let got = run(&["ip", "-n", va, "link", "set", "eth0", "address", SPOOFED_MAC])
        .and_then(|_| udp_send(va, sock("10.1.0.14", 0), sock("198.51.100.2", 9001), &mac_token))
        .map_or_else(
            |e| Outcome::Error(format!("{e:#}")),
            |()| seen_within(&lab.outside_udp, &mac_token, WAIT),
        );
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        0x52, 0x54, 0, 0, 1, 14
    );
    if let Err(e) = run(&["ip", "-n", va, "link", "set", "eth0", "address", &mac]) {
        panic!("restoring the MAC: {e:#}");
    }
    rows.push(Row {
        name: format!("spoofed source MAC {SPOOFED_MAC} out to outside ({round})"),
        expect,
        got,
    });
    rows
}

fn print(rows: &[Row]) {
    println!("\n| result | check | expected | got |\n|---|---|---|---|");
    for row in rows {
        let expected = match row.expect {
            Expect::Reach(Some(a)) => format!("reach, seen from {a}"),
            Expect::Reach(None) => "reach".into(),
            Expect::Drop => "drop".into(),
        };
        let verdict = if row.passed() { "pass" } else { "FAIL" };
        println!("| {verdict} | {} | {expected} | {:?} |", row.name, row.got);
    }
}

#[test]
fn ruleset_allows_and_refuses_what_it_claims() {
    if !can_run("ruleset_allows_and_refuses_what_it_claims") {
        return;
    }
    let started = Instant::now();
    let lab = build("t").expect("lab");
    let state = state();
    ruleset::validate(&state).expect("valid state");
    nft::apply(&ruleset::render(&state), Some(&lab.host)).expect("apply");
    run(&[
        "ip",
        "-n",
        lab.vm("va"),
        "addr",
        "add",
        &format!("{SPOOFED}/32"),
        "dev",
        "eth0",
    ])
    .expect("spoof address");

    let mut rows = run_all(main_checks(&lab));
    rows.extend(spoof_checks(&lab, "bridge table on", Expect::Drop));
    let host = lab.host.as_str();
    run(&[
        "ip",
        "netns",
        "exec",
        host,
        "nft",
        "delete",
        "table",
        "bridge",
        ruleset::TABLE,
    ])
    .expect("delete");
    rows.extend(spoof_checks(
        &lab,
        "control: bridge table removed",
        Expect::Reach(None),
    ));
    nft::apply(&ruleset::render(&state), Some(host)).expect("apply again");
    rows.extend(spoof_checks(&lab, "bridge table back", Expect::Drop));

    // Control for isolation: without its rule the security groups (open to 0/0) would let these in.
    let text = ruleset::render(&state);
    let open: String = text
        .lines()
        .filter(|l| !l.contains("!= @same_bridge"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(open, text);
    nft::apply(&open, Some(host)).expect("apply without isolation");
    let (v4, out) = (lab.vm("v4"), lab.outside.as_str());
    let reach = Expect::Reach(None);
    rows.extend(run_all(vec![
        tcp(
            "cross tenant t2 -> t1 (control: isolation removed)",
            reach,
            v4,
            sock("10.1.0.11", 8080),
        ),
        tcp(
            "outside -> private (control: isolation removed)",
            reach,
            out,
            sock("10.1.0.11", 8080),
        ),
    ]));
    nft::apply(&text, Some(host)).expect("apply again");

    print(&rows);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    println!(
        "{} checks, {} failed, {:.1} s",
        rows.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "failed: {failed:#?}");
}

/// A TCP server in `ns` on `port` that echoes every line back, for flows that stay open.
fn echo_server(ns: &str, port: u16) -> anyhow::Result<()> {
    let listener = in_ns(ns, || std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))??;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(&conn);
                let mut line = String::new();
                while std::io::BufRead::read_line(&mut reader, &mut line).is_ok_and(|n| n > 0) {
                    if std::io::Write::write_all(&mut &conn, line.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    Ok(())
}

/// An open TCP flow from `ns` to `to`.
struct Flow(std::io::BufReader<std::net::TcpStream>);

impl Flow {
    fn open(ns: &str, to: SocketAddrV4) -> Flow {
        let stream = in_ns(ns, || std::net::TcpStream::connect_timeout(&to.into(), WAIT))
            .expect("thread")
            .unwrap_or_else(|e| panic!("connect from {ns} to {to}: {e}"));
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Flow(std::io::BufReader::new(stream))
    }

    /// Sends `token` and says whether it came back within the bound (a drop leaves it unanswered; the
    /// kernel's retransmissions stay within the flow, so a later call on the same flow is not confused).
    fn echoes(&mut self, token: &str) -> bool {
        if std::io::Write::write_all(self.0.get_mut(), format!("{token}\n").as_bytes()).is_err() {
            return false;
        }
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.0, &mut line).is_ok() && line.trim() == token
    }
}

/// Security-group changes act on flows already open: removing the rule that let a flow in cuts it at its
/// next packet, while flows a VM started itself (egress) and flows still allowed carry on. Both kinds are
/// open before the change, so the check is of the ruleset's treatment of established flows, not of new
/// connections (which `ruleset_allows_and_refuses_what_it_claims` covers).
#[test]
fn removing_a_rule_cuts_the_flows_it_let_in_and_nothing_else() {
    if !can_run("removing_a_rule_cuts_the_flows_it_let_in_and_nothing_else") {
        return;
    }
    let lab = build("r").expect("lab");
    let host = lab.host.as_str();
    let (v1, v2, out) = (lab.vm("v1"), lab.vm("v2"), lab.outside.as_str());
    for (ns, port) in [(v1, 7300), (v1, 7301), (out, 9300)] {
        echo_server(ns, port).expect("echo server");
    }
    let mut state = state();
    let web = state
        .security_groups
        .iter_mut()
        .find(|g| g.id == "t1-web")
        .expect("t1-web");
    web.rules
        .push(rule(Protocol::Tcp, Some(7300), cidr("10.1.0.12/32")));
    web.rules
        .push(rule(Protocol::Tcp, Some(7301), cidr("10.1.0.12/32")));
    nft::apply(&ruleset::render(&state), Some(host)).expect("apply");

    let mut revoked = Flow::open(v2, sock("10.1.0.11", 7300));
    let mut kept = Flow::open(v2, sock("10.1.0.11", 7301));
    let mut egress = Flow::open(v1, SocketAddrV4::new(OUTSIDE_ADDRESS, 9300));
    for (name, flow) in [
        ("7300", &mut revoked),
        ("7301", &mut kept),
        ("egress", &mut egress),
    ] {
        assert!(
            flow.echoes(&format!("before-{name}")),
            "{name}: no echo before the change"
        );
    }

    let web = state
        .security_groups
        .iter_mut()
        .find(|g| g.id == "t1-web")
        .expect("t1-web");
    web.rules.retain(|r| r.ports != Some((7300, 7300)));
    nft::apply(&ruleset::render(&state), Some(host)).expect("apply without the 7300 rule");

    // The still-allowed flow first, so a drop below is not the path being down.
    assert!(kept.echoes("after-7301"), "a flow still allowed was cut");
    assert!(egress.echoes("after-egress"), "a VM's own egress flow was cut");
    assert!(
        !revoked.echoes("after-7300"),
        "the flow of a removed rule still gets through"
    );
    assert!(
        matches!(tcp_probe(v2, sock("10.1.0.11", 7300), WAIT), Outcome::TimedOut),
        "a new connection to the removed rule's port is not dropped"
    );
}

/// Releasing a floating IP or deleting a port forward ends the flows already open through it (conntrack
/// would keep translating them), while a flow through a forward still in force carries on.
#[test]
fn releasing_a_floating_ip_or_deleting_a_forward_cuts_its_open_flows() {
    if !can_run("releasing_a_floating_ip_or_deleting_a_forward_cuts_its_open_flows") {
        return;
    }
    let lab = build("d").expect("lab");
    let host = lab.host.as_str();
    let (v1, out) = (lab.vm("v1"), lab.outside.as_str());
    for port in [7302, 7303, 7304] {
        echo_server(v1, port).expect("echo server");
    }
    let mut state = state();
    let web = state
        .security_groups
        .iter_mut()
        .find(|g| g.id == "t1-web")
        .expect("t1-web");
    for port in [7302, 7303, 7304] {
        web.rules
            .push(rule(Protocol::Tcp, Some(port), cidr("198.51.100.0/24")));
    }
    state
        .port_forwards
        .push(forward("pf-echo", Protocol::Tcp, 2302, "10.1.0.11", 7302));
    state
        .port_forwards
        .push(forward("pf-kept", Protocol::Tcp, 2304, "10.1.0.11", 7304));
    nft::apply(&ruleset::render(&state), Some(host)).expect("apply");

    let mut forwarded = Flow::open(out, SocketAddrV4::new(UPLINK_ADDRESS, 2302));
    let mut floating = Flow::open(out, SocketAddrV4::new(FLOATING, 7303));
    let mut kept = Flow::open(out, SocketAddrV4::new(UPLINK_ADDRESS, 2304));
    for (name, flow) in [
        ("forward", &mut forwarded),
        ("floating", &mut floating),
        ("kept", &mut kept),
    ] {
        assert!(
            flow.echoes(&format!("before-{name}")),
            "{name}: no echo before the change"
        );
    }

    state.port_forwards.retain(|f| f.id != "pf-echo");
    state.floating_ips.clear();
    nft::apply(&ruleset::render(&state), Some(host)).expect("apply without them");

    assert!(
        kept.echoes("after-kept"),
        "a flow of a forward still in force was cut"
    );
    assert!(
        !forwarded.echoes("after-forward"),
        "a deleted forward's open flow still gets through"
    );
    assert!(
        !floating.echoes("after-floating"),
        "a released floating IP's open flow still gets through"
    );
}
