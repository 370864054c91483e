//! How fast the ruleset is for 100 tenants and 1,000 VMs (goal: render + apply ≤ 500 ms), and how long a
//! security-group change takes to be effective (goal ≤ 1 s), measured by connects through a floating IP
//! that start succeeding (rule added) or failing (rule removed). Medians over several runs, in namespaces
//! made here (root only; skips loudly otherwise).
//!
//! `cargo bench -p netplane --bench ruleset` (add `-- --runs N` for another number of runs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use netplane::state::Protocol;
use netplane::{nft, ruleset, NetState};

const TENANTS: u16 = 100;
const VMS_PER_TENANT: u16 = 10;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn report(what: &str, samples: Vec<Duration>) {
    let (min, max) = (
        samples.iter().min().copied().unwrap_or_default(),
        samples.iter().max().copied().unwrap_or_default(),
    );
    let n = samples.len();
    println!(
        "{what:<58} median {:>9}  (min {}, max {}, {n} runs)",
        ms(median(samples)),
        ms(min),
        ms(max)
    );
}

/// The generated state with tenant 0's web group allowing TCP 80 from anywhere, or not.
fn with_web_open(base: &NetState, open: bool) -> NetState {
    let mut state = base.clone();
    if let Some(web) = state.security_groups.iter_mut().find(|g| g.id == "t0-web") {
        web.rules
            .retain(|r| !(r.protocol == Protocol::Tcp && r.ports == Some((80, 80))));
        if open {
            web.rules.push(netplane::state::Rule {
                protocol: Protocol::Tcp,
                ports: Some((80, 80)),
                source: netplane::state::Source::Cidr("0.0.0.0/0".parse().unwrap_or_default()),
            });
        }
    }
    state
}

/// Applies `state` while four probers, staggered by 25 ms, connect (100 ms bound each) until the
/// outcome flips to `reachable`; returns the time from the start of render to the start of the first
/// attempt that showed the change (resolution ~25 ms).
fn time_to_effect(
    state: &NetState,
    host: &str,
    outside: &str,
    to: SocketAddrV4,
    reachable: bool,
) -> Duration {
    const PROBERS: u32 = 4;
    let started = Instant::now();
    let applied = AtomicBool::new(false);
    std::thread::scope(|s| {
        let probers: Vec<_> = (0..PROBERS)
            .map(|i| {
                let applied = &applied;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(25) * i);
                    loop {
                        let attempt = Instant::now();
                        let reached = matches!(
                            tcp_probe(outside, to, Duration::from_millis(100)),
                            Outcome::Reached(_)
                        );
                        if reached == reachable && applied.load(Ordering::SeqCst) {
                            return attempt.duration_since(started);
                        }
                        if attempt.duration_since(started) > Duration::from_secs(10) {
                            return Duration::MAX;
                        }
                    }
                })
            })
            .collect();
        if let Err(e) = nft::apply(&ruleset::render(state), Some(host)) {
            panic!("apply: {e}");
        }
        applied.store(true, Ordering::SeqCst);
        probers
            .into_iter()
            .map(|p| p.join().unwrap_or(Duration::MAX))
            .min()
            .unwrap_or(Duration::MAX)
    })
}

fn main() {
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(9usize);
    let base = generated_state(TENANTS, VMS_PER_TENANT);
    let ports: usize = base.networks.iter().map(|n| n.ports.len()).sum();
    let text = ruleset::render(&base);
    println!(
        "ruleset for {TENANTS} tenants, {ports} VMs: {} lines, {} KiB",
        text.lines().count(),
        text.len() / 1024
    );
    report(
        "render",
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(ruleset::render(std::hint::black_box(&base)));
                t.elapsed()
            })
            .collect(),
    );
    if !can_run("ruleset bench (apply)") {
        return;
    }

    let mut namespaces = Namespaces::new("b");
    let (host, outside) = match host_and_outside(&mut namespaces, &["203.0.113.0/24"]) {
        Ok(pair) => pair,
        Err(e) => panic!("lab: {e:#}"),
    };
    let first = Instant::now();
    if let Err(e) = nft::apply(&text, Some(&host)) {
        panic!("apply: {e}");
    }
    println!(
        "{:<58} {:>16}",
        "first apply (no tables yet), render included",
        ms(first.elapsed())
    );
    report(
        "render + apply (replacing the whole ruleset)",
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                if let Err(e) = nft::apply(&ruleset::render(&base), Some(&host)) {
                    panic!("apply: {e}");
                }
                t.elapsed()
            })
            .collect(),
    );

    // One real VM behind the large ruleset: tenant 0's first port, reached through its floating IP.
    let network = &base.networks[0];
    let port = &network.ports[0];
    let m = port.mac;
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let setup = add_bridge(
        &host,
        &network.bridge,
        "02:00:00:00:00:01",
        &format!("{}/24", network.gateway),
    )
    .and_then(|()| {
        let link = VmLink {
            short: "vm",
            tap: &port.tap,
            bridge: &network.bridge,
            mac: &mac,
            cidr: &format!("{}/24", port.ip),
            gateway: &network.gateway.to_string(),
            gateway_mac: "02:00:00:00:00:01",
        };
        add_vm(&mut namespaces, &host, &link)
    })
    .and_then(|vm| {
        run(&[
            "ip",
            "netns",
            "exec",
            &host,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.rp_filter=0",
        ])?;
        tcp_server(&vm, 80, &namespaces.stop_flag())
    });
    if let Err(e) = setup {
        panic!("VM: {e:#}");
    }
    let floating = base
        .floating_ips
        .iter()
        .find(|f| f.fixed_ip == port.ip)
        .map(|f| f.address)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let to = SocketAddrV4::new(floating, 80);
    let (open, closed) = (with_web_open(&base, true), with_web_open(&base, false));
    if let Err(e) = nft::apply(&ruleset::render(&closed), Some(&host)) {
        panic!("apply: {e}");
    }
    let (mut opening, mut closing) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        opening.push(time_to_effect(&open, &host, &outside, to, true));
        closing.push(time_to_effect(&closed, &host, &outside, to, false));
    }
    report("security group rule added -> first new connect succeeds", opening);
    report(
        "security group rule removed -> first new connect dropped",
        closing,
    );
}
