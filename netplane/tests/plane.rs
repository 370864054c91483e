//! The plane in a namespace of the test's own: bridges with their gateways, a DHCP lease to a "VM"
//! (a namespace joined by a veth standing in for its TAP, busybox `udhcpc` as the client), a real TAP
//! opened for a port, convergence after a network is deleted, and nothing left after `destroy`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::Ipv4Addr;
use std::process::Command;

use netplane::namespace::Namespace;
use netplane::state::{Network, Port};
use netplane::{NetState, Plane};

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "dnsmasq", "busybox"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !(root && tools && std::path::Path::new("/dev/net/tun").exists()) {
        eprintln!("SKIP: {test}: needs root, /dev/net/tun, ip, dnsmasq and busybox");
        return false;
    }
    true
}

/// Deletes the namespaces (and the plane) even when an assertion fails.
struct Cleanup {
    plane: Option<Plane>,
    extra: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.plane.take() {
            let _ = p.destroy();
        }
        for ns in &self.extra {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

fn network(n: u8, ports: Vec<Port>) -> Network {
    Network {
        id: format!("net{n}"),
        tenant_id: format!("tenant{n}"),
        bridge: format!("cpbr{n}"),
        cidr: format!("10.77.{n}.0/24").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 77, n, 1),
        mtu: 1450,
        ports,
    }
}

fn port(id: &str, tap: &str, last: u8, net: u8) -> Port {
    Port {
        id: id.into(),
        vm_id: format!("vm-{id}"),
        tap: tap.into(),
        mac: [0x52, 0x54, 0, 0x77, net, last],
        ip: Ipv4Addr::new(10, 77, net, last),
        security_groups: vec![],
    }
}

fn ip_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_plane_converges_hands_out_leases_and_leaves_nothing_behind() {
    if !root_or_skip("the_plane_converges_hands_out_leases_and_leaves_nothing_behind") {
        return;
    }
    let pid = std::process::id();
    let ns_name = format!("cpplane-{pid}");
    let vm_ns = format!("cpplane-vm-{pid}");
    let state_dir = tempfile::tempdir().unwrap();
    let mut guard = Cleanup {
        plane: None,
        extra: vec![vm_ns.clone()],
    };
    let plane = Plane::open(&ns_name, state_dir.path()).unwrap();
    guard.plane = Some(plane.clone());

    // A "VM" namespace whose veth's host end is named like the port's TAP.
    let vm_port = port("p1", "cptveth1", 10, 1);
    let tap_port = port("p2", "cpttap2", 11, 1);
    let state = NetState {
        networks: vec![
            network(1, vec![vm_port.clone(), tap_port.clone()]),
            network(2, vec![]),
        ],
        ..NetState::default()
    };
    Command::new("ip")
        .args(["netns", "add", &vm_ns])
        .status()
        .unwrap();
    let mac = "52:54:00:77:01:0a";
    Command::new("ip")
        .args([
            "link", "add", "cptveth1", "netns", &ns_name, "type", "veth", "peer", "name", "eth0",
        ])
        .args(["netns", &vm_ns, "address", mac])
        .status()
        .unwrap();
    plane.apply(&state).unwrap();
    // Twice: the second apply changes nothing and fails on nothing.
    plane.apply(&state).unwrap();

    let addrs = ip_in(&ns_name, &["-4", "-o", "addr", "show", "dev", "cpbr1"]);
    assert!(addrs.contains("10.77.1.1/24"), "{addrs}");
    let links = ip_in(&ns_name, &["-o", "link", "show", "master", "cpbr1"]);
    assert!(
        links.contains("cptveth1"),
        "the VM's port joined its bridge: {links}"
    );

    // A DHCP lease: the static entry for the VM's MAC.
    ip_in(&vm_ns, &["link", "set", "eth0", "up"]);
    let lease = Command::new("ip")
        .args([
            "netns", "exec", &vm_ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "20", "-T", "1",
        ])
        .args(["-s", "/bin/true"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&lease.stderr).into_owned() + &String::from_utf8_lossy(&lease.stdout);
    assert!(lease.status.success(), "udhcpc: {text}");
    assert!(
        text.contains("10.77.1.10"),
        "the lease is the port's address: {text}"
    );

    // A real TAP for the other port, on the bridge.
    let fd = plane.open_tap(&state, "p2").unwrap();
    let links = ip_in(&ns_name, &["-o", "link", "show", "master", "cpbr1"]);
    assert!(links.contains("cpttap2"), "{links}");
    assert!(
        plane.open_tap(&state, "p2").is_err(),
        "a TAP a VMM holds cannot be opened twice"
    );
    drop(fd);
    let links = ip_in(&ns_name, &["-o", "link", "show"]);
    assert!(
        !links.contains("cpttap2"),
        "a TAP goes with its last descriptor: {links}"
    );

    // What no network or port names goes: a stray bridge and a persistent TAP with our prefixes; a
    // TAP detached from its bridge rejoins it.
    ip_in(&ns_name, &["link", "add", "cpbr9", "type", "bridge"]);
    ip_in(&ns_name, &["tuntap", "add", "cptstray", "mode", "tap"]);
    ip_in(&ns_name, &["link", "set", "cptveth1", "nomaster"]);
    plane.apply(&state).unwrap();
    let links = ip_in(&ns_name, &["-o", "link", "show"]);
    assert!(!links.contains("cpbr9") && !links.contains("cptstray"), "{links}");
    let on_bridge = ip_in(&ns_name, &["-o", "link", "show", "master", "cpbr1"]);
    assert!(on_bridge.contains("cptveth1"), "{on_bridge}");

    // Network 2 deleted: its bridge and DHCP server go.
    let smaller = NetState {
        networks: vec![network(1, vec![vm_port])],
        ..NetState::default()
    };
    plane.apply(&smaller).unwrap();
    let links = ip_in(&ns_name, &["-o", "link", "show"]);
    assert!(!links.contains("cpbr2"), "{links}");
    assert!(!state_dir.path().join("dhcp/cpbr2").exists());

    let dhcp_pid: i32 = std::fs::read_to_string(state_dir.path().join("dhcp/cpbr1/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    guard.plane.take().unwrap().destroy().unwrap();
    assert!(Namespace::existing(&ns_name).is_none());
    // dnsmasq exits on SIGTERM; wait for it (bounded by the test harness, not by a guess).
    while std::path::Path::new(&format!("/proc/{dhcp_pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{dhcp_pid}/stat")).unwrap_or_default();
        if stat.contains(") Z") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
