//! A VM still gets its lease through the ruleset: the network plane's own dnsmasq (`dhcp::arguments`)
//! in the "host" namespace, busybox `udhcpc` in the VM's, the ruleset applied — the DHCP discover from
//! `0.0.0.0`, the ARP probe of the offered address and the replies all pass the bridge and inet tables.
//! Root, dnsmasq and busybox only; skips loudly otherwise.

mod common;

use std::process::Command;

use common::*;
use netplane::state::{Network, Port, Uplink};
use netplane::{dhcp, nft, ruleset, NetState};

#[test]
fn a_vm_gets_its_lease_through_the_ruleset() {
    if !can_run("a_vm_gets_its_lease_through_the_ruleset") {
        return;
    }
    if run(&["dnsmasq", "--version"]).is_err() || run(&["busybox", "udhcpc", "--help"]).is_err() {
        eprintln!("SKIP: a_vm_gets_its_lease_through_the_ruleset: dnsmasq or busybox missing");
        return;
    }
    let mut namespaces = Namespaces::new("d");
    let (host, _outside) = host_and_outside(&mut namespaces, &[]).expect("host");
    add_bridge(&host, "br-t1", "02:00:00:00:01:01", "10.1.0.1/24").expect("bridge");
    let link = VmLink {
        short: "vm",
        tap: "tap-vm",
        bridge: "br-t1",
        mac: "52:54:00:00:01:0d",
        cidr: "10.1.0.13/24",
        gateway: "10.1.0.1",
        gateway_mac: "02:00:00:00:01:01",
    };
    let vm = add_vm(&mut namespaces, &host, &link).expect("vm");
    run(&["ip", "-n", &vm, "addr", "flush", "dev", "eth0"]).expect("no address before DHCP");

    let net = Network {
        id: "net-1".into(),
        tenant_id: "t1".into(),
        bridge: "br-t1".into(),
        cidr: "10.1.0.0/24".parse().expect("cidr"),
        gateway: "10.1.0.1".parse().expect("gateway"),
        mtu: 1500,
        ports: vec![Port {
            id: "port-1".into(),
            vm_id: "vm-1".into(),
            tap: "tap-vm".into(),
            mac: [0x52, 0x54, 0, 0, 1, 0x0d],
            ip: "10.1.0.13".parse().expect("address"),
            security_groups: Vec::new(),
        }],
    };
    let state = NetState {
        uplink: Some(Uplink {
            ifname: UPLINK.into(),
            address: UPLINK_ADDRESS,
        }),
        networks: vec![net.clone()],
        metadata_port: Some(8775),
        ..NetState::default()
    };
    nft::apply(&ruleset::render(&state), Some(&host)).expect("apply");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hosts"), dhcp::hosts_file(&net)).expect("hosts");
    let mut args = vec![
        "ip".to_owned(),
        "netns".into(),
        "exec".into(),
        host.clone(),
        "dnsmasq".into(),
    ];
    args.extend(dhcp::arguments(&net, dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args).expect("dnsmasq");
    let client = Command::new("ip")
        .args([
            "netns", "exec", &vm, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "3", "-T", "1",
        ])
        .args(["-s", "/bin/true"])
        .output();
    if let Ok(pid) = std::fs::read_to_string(dir.path().join("pid")) {
        let _ = run(&["kill", pid.trim()]);
    }
    let client = client.expect("udhcpc");
    let said = String::from_utf8_lossy(&client.stderr);
    assert!(
        client.status.success(),
        "udhcpc: {said}\ndnsmasq: {:?}",
        std::fs::read_to_string(dir.path().join("log"))
    );
    assert!(
        said.contains("lease of 10.1.0.13 obtained from 10.1.0.1"),
        "{said}"
    );
}
