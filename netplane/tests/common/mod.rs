//! Shared by netplane's root tests and bench: network namespaces the test creates (named, under
//! `/run/netns`, deleted by a guard even when a check fails), threads that run inside one of them, tiny
//! TCP/UDP servers that answer with the peer address they saw, bounded probes, and a generated state of
//! any size.
//!
//! Workplace rule (NETWORKING.md): traffic only to addresses inside namespaces the test made. Nothing
//! here touches the namespace the test runs in: links are created inside the test's "host" namespace
//! and their peers moved straight into another test namespace.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use netplane::state::{Network, Port, Protocol, Rule, SecurityGroup, Source, Uplink};
use netplane::NetState;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// Whether this machine can run the namespace tests (root, `ip`, `nft`); prints a loud SKIP otherwise.
/// `NETPLANE_NET_TESTS=require` turns the skip into a failure (for CI machines that must run them).
pub fn can_run(test: &str) -> bool {
    let missing = if !rustix::process::geteuid().is_root() {
        Some("not root")
    } else if !runs(&["ip", "-V"]) {
        Some("iproute2 (ip) is missing")
    } else if !runs(&["nft", "--version"]) {
        Some("nft is missing (apt-get install nftables)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("NETPLANE_NET_TESTS").as_deref() != Ok("require"),
                "{test}: {why}, and NETPLANE_NET_TESTS=require"
            );
            eprintln!("SKIP: {test}: {why}");
            false
        }
    }
}

fn runs(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command and fails with its stderr unless it succeeds.
pub fn run(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Named namespaces the test made; all deleted on drop (interfaces go with them).
pub struct Namespaces {
    prefix: String,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
}

impl Namespaces {
    /// `tag` keeps concurrent tests apart; the process id keeps concurrent runs apart. Namespaces left
    /// by an earlier run that was killed (no unwinding, so no guard) are deleted first.
    pub fn new(tag: &str) -> Namespaces {
        sweep_stale();
        Namespaces {
            prefix: format!("{PREFIX}{}{tag}-", std::process::id()),
            names: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A new namespace with `lo` up, IPv6 off (nothing but the test's own traffic) and forwarding as asked.
    pub fn add(&mut self, short: &str) -> anyhow::Result<String> {
        let name = format!("{}{short}", self.prefix);
        run(&["ip", "netns", "add", &name])?;
        self.names.push(name.clone());
        run(&[
            "ip",
            "netns",
            "exec",
            &name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Set when the namespaces go: servers end.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for name in self.names.iter().rev() {
            if let Err(e) = run(&["ip", "netns", "del", name]) {
                eprintln!("teardown: {e:#}");
            }
        }
    }
}

/// Names of the namespaces these tests make: `nptest<pid><tag>-<name>`.
const PREFIX: &str = "nptest";

/// Deletes namespaces named by [`Namespaces`] whose creating process is gone.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for name in entries.flatten().filter_map(|e| e.file_name().into_string().ok()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("deleting namespace {name} left by a killed test run");
            let _ = run(&["ip", "netns", "del", &name]);
        }
    }
}

/// Moves the calling thread into the named namespace (sockets it then creates belong there).
fn enter(ns: &str) -> anyhow::Result<()> {
    let file = File::open(format!("/run/netns/{ns}")).with_context(|| format!("opening netns {ns}"))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .with_context(|| format!("setns {ns}"))
}

/// Runs `f` on a thread inside `ns` and waits for it.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
    })
}

/// What a server saw: `(server port, peer, payload)` for every UDP datagram.
pub type Seen = Arc<Mutex<Vec<(u16, SocketAddr, String)>>>;

/// A TCP server in `ns` on `port` that writes the peer address it sees and closes.
pub fn tcp_server(ns: &str, port: u16, stop: &Arc<AtomicBool>) -> anyhow::Result<JoinHandle<()>> {
    let listener = in_ns(ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))??;
    listener.set_nonblocking(true)?;
    let stop = stop.clone();
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    let _ = std::io::Write::write_all(&mut conn, format!("{peer}\n").as_bytes());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }))
}

/// A UDP server in `ns` on `port` that records every datagram and answers with the peer address.
pub fn udp_server(
    ns: &str,
    port: u16,
    seen: &Seen,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let socket = in_ns(ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))??;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let (seen, stop) = (seen.clone(), stop.clone());
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let payload = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Ok(mut s) = seen.lock() {
                    s.push((port, peer, payload));
                }
                let _ = socket.send_to(format!("{peer}\n").as_bytes(), peer);
            }
        }
    }))
}

/// What a probe got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reached the server, which saw this peer address.
    Reached(String),
    /// Nothing came back within the bound: dropped.
    TimedOut,
    /// Something answered with a refusal (RST or ICMP unreachable): not a drop.
    Refused,
    Error(String),
}

/// A TCP connect from `ns` to `to`, bounded by `wait`.
pub fn tcp_probe(ns: &str, to: SocketAddrV4, wait: Duration) -> Outcome {
    let attempt = in_ns(ns, || -> std::io::Result<String> {
        let stream = TcpStream::connect_timeout(&to.into(), wait)?;
        stream.set_read_timeout(Some(wait))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim().to_owned())
    });
    match attempt {
        Ok(Ok(peer)) => Outcome::Reached(peer),
        Ok(Err(e)) => io_outcome(&e),
        Err(e) => Outcome::Error(format!("{e:#}")),
    }
}

/// A UDP exchange from `ns` (bound to `from`, any address/port when unspecified) to `to`: up to three
/// sends of `token` within `wait`, `Reached` when the echo comes back.
pub fn udp_probe(ns: &str, from: SocketAddrV4, to: SocketAddrV4, token: &str, wait: Duration) -> Outcome {
    let attempt = in_ns(ns, || -> std::io::Result<String> {
        let socket = UdpSocket::bind(from)?;
        socket.connect(to)?;
        socket.set_read_timeout(Some(wait / 3))?;
        let mut buf = [0u8; 256];
        let mut last = std::io::Error::from(ErrorKind::TimedOut);
        for _ in 0..3 {
            socket.send(token.as_bytes())?;
            match socket.recv(&mut buf) {
                Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
                Err(e) => last = e,
            }
        }
        Err(last)
    });
    match attempt {
        Ok(Ok(peer)) => Outcome::Reached(peer),
        Ok(Err(e)) => io_outcome(&e),
        Err(e) => Outcome::Error(format!("{e:#}")),
    }
}

/// Sends `token` three times from `ns` (bound to `from`) to `to` without waiting for an answer.
pub fn udp_send(ns: &str, from: SocketAddrV4, to: SocketAddrV4, token: &str) -> anyhow::Result<()> {
    in_ns(ns, || -> std::io::Result<()> {
        let socket = UdpSocket::bind(from)?;
        for _ in 0..3 {
            socket.send_to(token.as_bytes(), to)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })??;
    Ok(())
}

/// Whether a server recorded `token` within `wait`, as the peer it came from.
pub fn seen_within(seen: &Seen, token: &str, wait: Duration) -> Outcome {
    let deadline = Instant::now() + wait;
    loop {
        let hit = seen.lock().ok().and_then(|s| {
            s.iter()
                .find(|(_, _, p)| p == token)
                .map(|(_, peer, _)| peer.to_string())
        });
        if let Some(peer) = hit {
            return Outcome::Reached(peer);
        }
        if Instant::now() >= deadline {
            return Outcome::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn io_outcome(e: &std::io::Error) -> Outcome {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::TimedOut,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => Outcome::Refused,
        _ => Outcome::Error(e.to_string()),
    }
}

/// A state of `tenants` tenants with one network and `vms` VMs each (three security groups per tenant,
/// a floating IP and a port forward for every tenth VM): the size the ruleset must handle quickly.
pub fn generated_state(tenants: u16, vms: u16) -> NetState {
    let mut state = NetState {
        uplink: Some(Uplink {
            ifname: "up0".into(),
            address: Ipv4Addr::new(198, 51, 100, 1),
        }),
        metadata_port: Some(8775),
        ..NetState::default()
    };
    let any = |p: &str| -> ipnet::Ipv4Net { p.parse().unwrap_or_default() };
    for t in 0..tenants {
        let (hi, lo) = ((t >> 8) as u8, (t & 0xff) as u8);
        let tenant = format!("t{t}");
        let group = |name: &str| format!("{tenant}-{name}");
        state.security_groups.extend([
            SecurityGroup {
                id: group("default"),
                tenant_id: tenant.clone(),
                rules: vec![Rule {
                    protocol: Protocol::Any,
                    ports: None,
                    source: Source::Group(group("default")),
                }],
            },
            SecurityGroup {
                id: group("web"),
                tenant_id: tenant.clone(),
                rules: vec![
                    Rule {
                        protocol: Protocol::Tcp,
                        ports: Some((80, 80)),
                        source: Source::Cidr(any("0.0.0.0/0")),
                    },
                    Rule {
                        protocol: Protocol::Tcp,
                        ports: Some((443, 443)),
                        source: Source::Cidr(any("0.0.0.0/0")),
                    },
                    Rule {
                        protocol: Protocol::Tcp,
                        ports: Some((22, 22)),
                        source: Source::Cidr(any("192.0.2.0/24")),
                    },
                ],
            },
            SecurityGroup {
                id: group("db"),
                tenant_id: tenant.clone(),
                rules: vec![Rule {
                    protocol: Protocol::Tcp,
                    ports: Some((5432, 5432)),
                    source: Source::Group(group("web")),
                }],
            },
        ]);
        let mut network = Network {
            id: format!("net-{t}"),
            tenant_id: tenant.clone(),
            bridge: format!("br-{t}"),
            cidr: ipnet::Ipv4Net::new(Ipv4Addr::new(10, hi, lo, 0), 24).unwrap_or_default(),
            gateway: Ipv4Addr::new(10, hi, lo, 1),
            mtu: 1500,
            ports: Vec::new(),
        };
        for v in 0..vms {
            let n = t * vms + v;
            let ip = Ipv4Addr::new(10, hi, lo, 10 + v as u8);
            let role = if v % 2 == 0 { "web" } else { "db" };
            network.ports.push(Port {
                id: format!("port-{n}"),
                vm_id: format!("vm-{n}"),
                tap: format!("tap-{n}"),
                mac: [0x52, 0x54, 0, (n >> 8) as u8, n as u8, 1],
                ip,
                security_groups: vec![group("default"), group(role)],
            });
            if v % 10 == 0 {
                state.floating_ips.push(netplane::state::FloatingIp {
                    id: format!("fip-{n}"),
                    address: Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 0)) + u32::from(n) + 1),
                    fixed_ip: ip,
                });
                state.port_forwards.push(netplane::state::PortForward {
                    id: format!("pf-{n}"),
                    protocol: Protocol::Tcp,
                    host_port: 20000 + n,
                    vm_ip: ip,
                    vm_port: 22,
                });
            }
        }
        state.networks.push(network);
    }
    state
}

/// The uplink between the test's "host" (standing for the portal's namespace) and "outside".
pub const UPLINK: &str = "up0";
pub const UPLINK_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const OUTSIDE_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// A "host" namespace routing between its bridges and an uplink veth to an "outside" namespace, which
/// routes `routed` (floating IPs, and private blocks to try reaching directly) back through the host.
pub fn host_and_outside(namespaces: &mut Namespaces, routed: &[&str]) -> anyhow::Result<(String, String)> {
    let host = namespaces.add("host")?;
    let outside = namespaces.add("out")?;
    run(&[
        "ip",
        "netns",
        "exec",
        &host,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
    ])?;
    run(&[
        "ip", "-n", &host, "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", &outside,
    ])?;
    run(&[
        "ip",
        "-n",
        &host,
        "addr",
        "add",
        &format!("{UPLINK_ADDRESS}/24"),
        "dev",
        UPLINK,
    ])?;
    run(&["ip", "-n", &host, "link", "set", UPLINK, "up"])?;
    run(&[
        "ip",
        "-n",
        &outside,
        "addr",
        "add",
        &format!("{OUTSIDE_ADDRESS}/24"),
        "dev",
        "eth0",
    ])?;
    run(&["ip", "-n", &outside, "link", "set", "eth0", "up"])?;
    for prefix in routed {
        run(&[
            "ip",
            "-n",
            &outside,
            "route",
            "add",
            prefix,
            "via",
            &UPLINK_ADDRESS.to_string(),
        ])?;
    }
    Ok((host, outside))
}

/// A bridge in `host` with a fixed MAC (so VMs can hold a permanent neighbour entry for their gateway).
pub fn add_bridge(host: &str, name: &str, mac: &str, gateway_cidr: &str) -> anyhow::Result<()> {
    run(&[
        "ip", "-n", host, "link", "add", name, "address", mac, "type", "bridge",
    ])?;
    run(&["ip", "-n", host, "addr", "add", gateway_cidr, "dev", name])?;
    run(&["ip", "-n", host, "link", "set", name, "up"])?;
    Ok(())
}

/// A "VM": its own namespace joined to `bridge` in `host` by a veth whose host end (`tap`) stands for
/// the TAP; `eth0` inside with `mac` and `cidr`, default route via the gateway, whose MAC is pinned.
pub struct VmLink<'a> {
    pub short: &'a str,
    pub tap: &'a str,
    pub bridge: &'a str,
    pub mac: &'a str,
    pub cidr: &'a str,
    pub gateway: &'a str,
    pub gateway_mac: &'a str,
}

pub fn add_vm(namespaces: &mut Namespaces, host: &str, vm: &VmLink<'_>) -> anyhow::Result<String> {
    let ns = namespaces.add(vm.short)?;
    run(&[
        "ip", "-n", host, "link", "add", vm.tap, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    run(&["ip", "-n", host, "link", "set", vm.tap, "master", vm.bridge, "up"])?;
    run(&["ip", "-n", &ns, "link", "set", "eth0", "address", vm.mac])?;
    run(&["ip", "-n", &ns, "addr", "add", vm.cidr, "dev", "eth0"])?;
    run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
    run(&["ip", "-n", &ns, "route", "add", "default", "via", vm.gateway])?;
    run(&[
        "ip",
        "-n",
        &ns,
        "neigh",
        "replace",
        vm.gateway,
        "lladdr",
        vm.gateway_mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    Ok(ns)
}
