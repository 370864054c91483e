//! What network setup adds to a VM's launch → running (goal ≤ 50 ms): the portal re-applies the whole
//! plane (links, one ruleset, DHCP leases) with the new port in it, then opens the port's TAP on its
//! bridge. Measured with the real plane in a namespace made here, for hosts holding 10, 100 and 1,000
//! VMs; medians over several launches. (The VMM's own start and the guest's boot are not part of it.)
//!
//! Since the firewall is updated in place when a launch changes only set and map elements, the figure no
//! longer grows with the number of VMs (the whole replace cost ~150 ms at 1,000 VMs).
//!
//! `cargo bench -p netplane --bench launch` (root; skips loudly otherwise).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netplane::state::Port;
use netplane::{NetState, Plane};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// `state` plus one new port on the first network (the VM being launched).
fn with_new_port(state: &NetState, n: usize) -> (NetState, String) {
    let mut s = state.clone();
    let id = format!("new{n}");
    if let Some(net) = s.networks.first_mut() {
        let last = 200u8.saturating_add(u8::try_from(n % 50).unwrap_or(0));
        let base = net.cidr.network().octets();
        net.ports.push(Port {
            id: id.clone(),
            vm_id: format!("vm-new{n}"),
            tap: format!("cptnew{n}"),
            mac: [0x52, 0x54, 0, 0xee, 0, last],
            ip: Ipv4Addr::new(base[0], base[1], base[2], last),
            security_groups: net
                .ports
                .first()
                .map(|p| p.security_groups.clone())
                .unwrap_or_default(),
        });
    }
    (s, id)
}

fn main() {
    if !common::can_run("bench launch") {
        return;
    }
    println!("network setup added to one VM launch (apply the plane with the new port, open its TAP)");
    for (tenants, per_tenant) in [(1u16, 10u16), (10, 10), (100, 10)] {
        let base = common::generated_state(tenants, per_tenant);
        let ns = format!("npbench{}", std::process::id());
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("bench launch: no temp dir: {e}");
                return;
            }
        };
        let plane = match Plane::open(&ns, dir.path()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("bench launch: cannot open the plane: {e}");
                return;
            }
        };
        // The generated state's uplink, as one end of a veth pair.
        for cmd in [
            vec![
                "ip", "netns", "exec", &ns, "ip", "link", "add", "up0", "type", "veth", "peer", "name",
                "up0p",
            ],
            vec![
                "ip",
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                "198.51.100.1/24",
                "dev",
                "up0",
            ],
            vec!["ip", "netns", "exec", &ns, "ip", "link", "set", "up0", "up"],
        ] {
            if let Err(e) = common::run(&cmd) {
                eprintln!("bench launch: {e}");
            }
        }
        // The host as it is before the launch (bridges, ruleset, DHCP servers exist).
        if let Err(e) = plane.apply(&base) {
            eprintln!("bench launch: initial apply failed: {e}");
            let _ = plane.destroy();
            return;
        }
        let mut samples = Vec::new();
        for n in 0..RUNS {
            let (state, port) = with_new_port(&base, n);
            let t = Instant::now();
            let tap = plane.apply(&state).and_then(|()| plane.open_tap(&state, &port));
            samples.push(t.elapsed());
            match tap {
                Ok(fd) => drop(fd),
                Err(e) => eprintln!("bench launch: run {n} failed: {e}"),
            }
        }
        let vms = u32::from(tenants) * u32::from(per_tenant);
        println!(
            "  {vms:>5} VMs, {tenants:>3} networks: median {:>9} (min {}, max {}, {RUNS} launches; goal <= 50 ms)",
            ms(median(samples.clone())),
            ms(samples.iter().min().copied().unwrap_or_default()),
            ms(samples.iter().max().copied().unwrap_or_default()),
        );
        let _ = plane.destroy();
    }
}
