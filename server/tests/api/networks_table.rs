//! Tenant isolation with real VMs: four probe guests (two tenants, two VMs each) on the portal's
//! networks, with the portal's uplink ending in an "outside" namespace of the test's own. The probes
//! answer ARP and ping for their address (`net serve`) and send pings (`net ping`, optionally from a
//! forged source), so every check goes through the real VMM, TAP, bridge and nftables ruleset.
//!
//! A negative check never waits for a time-out: the forbidden ping is sent first, then an allowed one
//! on the same path, then the target says how many pings it answered — a dropped ping is one that did
//! not arrive although a later one did.
//!
//! | check | from | to | expected |
//! |---|---|---|---|
//! | same tenant, default group | a1 | a2 | reply |
//! | forged source address | a1 (as another address) | a2 | dropped |
//! | other tenant | a1 | b1 | dropped |
//! | other tenant, other way | b1 | a2 | dropped |
//! | group without a rule for it | a1 | a2 in "quiet" | dropped |
//! | ICMP rule added to that group | a1 | a2 | reply once the rule is in the ruleset |
//! | egress NAT | a1 | the outside | reply (the outside has no route back but the NAT) |
//! | floating IP | the outside | a1's floating IP | reply |

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::helpers::{spawn_app_with, Api};
use super::networks_ssh::Namespaces;
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;

fn console(run: &Path) -> String {
    control(run, json!({"cmd": "console-log"}))["data"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Types `line` on the probe's serial console and waits until one more line containing one of `ends`
/// appears; returns that line.
fn say(run: &Path, line: &str, ends: &[&str]) -> String {
    let count = |text: &str| -> usize { ends.iter().map(|e| text.matches(e).count()).sum() };
    let before = count(&console(run));
    serial_line(run, line);
    let deadline = Instant::now() + T;
    loop {
        // Only whole lines: the probe may be half-way through writing one.
        let all = console(run);
        let text = &all[..all.rfind('\n').map_or(0, |i| i + 1)];
        if count(text) > before {
            return text
                .lines()
                .rev()
                .find(|l| ends.iter().any(|e| l.contains(e)))
                .unwrap_or_default()
                .to_string();
        }
        assert!(Instant::now() < deadline, "no {ends:?} after {line:?}: {all}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Probe {
    run: PathBuf,
    ip: String,
}

impl Probe {
    fn serve(&self) {
        say(&self.run, "net serve", &["NET-SERVING"]);
    }

    /// Ends `net serve`; the number of pings it answered.
    fn served(&self) -> u64 {
        let line = say(&self.run, "", &["OK net served"]);
        line.split_whitespace()
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    }

    fn ping(&self, to: &str) {
        let line = say(
            &self.run,
            &format!("net ping {to}"),
            &["OK net ping", "ERR net ping"],
        );
        assert!(line.contains(&format!("OK net ping reply from {to}")), "{line}");
    }

    /// Sends a ping expected to be dropped (`from`: a forged source); returns once it is on its way.
    fn ping_unanswered(&self, to: &str, from: Option<&str>) {
        let line = match from {
            Some(src) => format!("net ping {to} from {src}"),
            None => format!("net ping {to}"),
        };
        say(&self.run, &line, &["NET-PING-SENT", "ERR net ping"]);
    }

    /// Stops waiting for the reply of [`Probe::ping_unanswered`]; asserts none came.
    fn no_reply(&self) {
        let line = say(&self.run, "", &["OK net ping", "ERR net ping"]);
        assert!(line.contains("ERR net ping: no reply"), "{line}");
    }
}

async fn probe(app_dir: &Path, api: &Api, vm: &str) -> Probe {
    wait_state(api, vm, "running", T).await;
    let (_, v) = api.get(&format!("/vms/{vm}")).await;
    let ip = v["network"]["nics"][0]["ip"].as_str().unwrap().to_string();
    let run = app_dir.join("vms").join(vm);
    wait_console(&run, "PROBE-GUEST READY", T);
    let line = say(&run, "net ip", &["OK net ip", "ERR"]);
    assert_eq!(
        line.trim(),
        format!("OK net ip {ip}"),
        "the probe has the portal's address"
    );
    Probe { run, ip }
}

fn tools_or_skip(test: &str) -> bool {
    let ok = ["ip", "dnsmasq", "nft", "ping"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("SKIP: {test}: needs ip, dnsmasq, nft and ping (scripts/install-deps.sh)");
    }
    ok
}

async fn group_named(api: &Api, name: &str) -> Value {
    let (_, groups) = api.get("/security-groups").await;
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name}: {groups}"))
        .clone()
}

#[tokio::test]
async fn probe_vms_reach_what_their_tenant_and_groups_allow_and_nothing_else() {
    let test = "probe_vms_reach_what_their_tenant_and_groups_allow";
    if !kvm_or_skip(test) || !tools_or_skip(test) {
        return;
    }
    let pid = std::process::id();
    let outside = format!("cptest-tout-{pid}");
    let plane = format!("cptest-tbl-{pid}");
    assert!(Command::new("ip")
        .args(["netns", "add", &outside])
        .status()
        .unwrap()
        .success());
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let (o, p) = (outside.clone(), plane.clone());
    let mut app = spawn_app_with(move |s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        s.network.enabled = true;
        s.network.namespace = p;
        s.network.pool = "10.204.0.0/16".parse().unwrap();
        s.network.uplink = Some("100.127.14.0/24".parse().unwrap());
        s.network.uplink_outer = format!("cpt{}", pid % 100_000);
        s.network.uplink_outer_netns = Some(o);
        s.network.floating_pool = Some("100.127.14.128/25".parse().unwrap());
    })
    .await;
    app._guest = Some(guest);
    let _ns = Namespaces {
        outside: outside.clone(),
        plane: plane.clone(),
        state_dir: app.data_dir.join("net"),
    };
    let acme = member_api(&app, "acme").await;
    let globex = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&acme).await;
    let ids = [
        launch(&acme, "a1", &image, &flavor).await,
        launch(&acme, "a2", &image, &flavor).await,
        launch(&globex, "b1", &image, &flavor).await,
        launch(&globex, "b2", &image, &flavor).await,
    ];
    let a1 = probe(&app.data_dir, &acme, &ids[0]).await;
    let a2 = probe(&app.data_dir, &acme, &ids[1]).await;
    let b1 = probe(&app.data_dir, &globex, &ids[2]).await;
    let b2 = probe(&app.data_dir, &globex, &ids[3]).await;

    // Same tenant, default group: reachable. A forged source address is dropped at the bridge.
    a2.serve();
    a1.ping(&a2.ip);
    let forged = format!("{}.250", a1.ip.rsplit_once('.').unwrap().0);
    a1.ping_unanswered(&a2.ip, Some(&forged));
    a1.no_reply();
    a1.ping(&a2.ip);
    assert_eq!(a2.served(), 2, "the forged ping never reached a2");

    // Another tenant, both ways: dropped (b2 and a1 show the path itself works).
    b1.serve();
    a1.ping_unanswered(&b1.ip, None);
    b2.ping(&b1.ip);
    a1.no_reply();
    assert_eq!(b1.served(), 1, "acme's ping never reached globex");
    a2.serve();
    b1.ping_unanswered(&a2.ip, None);
    a1.ping(&a2.ip);
    b1.no_reply();
    assert_eq!(a2.served(), 1, "globex's ping never reached acme");

    // A group without a rule for it: dropped; an ICMP rule opens it once the ruleset has it.
    let (status, quiet) = acme.post("/security-groups", &json!({"name": "quiet"})).await;
    assert_eq!(status, 201, "{quiet}");
    let quiet_id = quiet["id"].as_str().unwrap().to_string();
    let rules_before = in_plane(&plane, &["nft", "list", "ruleset"]);
    let (status, body) = acme
        .put(
            &format!("/vms/{}/security-groups", ids[1]),
            &json!({"group_ids": [quiet_id]}),
        )
        .await;
    assert!(status < 300, "{body}");
    // The move is in the ruleset when a2's port jumps to a chain with no group in it.
    wait_until("a2's groups to change", || {
        in_plane(&plane, &["nft", "list", "ruleset"]) != rules_before
    })
    .await;
    a2.serve();
    a1.ping_unanswered(&a2.ip, None);
    a1.no_reply();
    let (_, v) = acme.get(&format!("/vms/{}", ids[0])).await;
    let cidr = v["network"]["nics"][0]["cidr"].as_str().unwrap().to_string();
    let rules_quiet = in_plane(&plane, &["nft", "list", "ruleset"]);
    let changed = Instant::now();
    let (status, body) = acme
        .post(
            &format!("/security-groups/{quiet_id}/rules"),
            &json!({"protocol": "icmp", "source_cidr": cidr}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait_until("the ICMP rule in the ruleset", || {
        in_plane(&plane, &["nft", "list", "ruleset"]) != rules_quiet
    })
    .await;
    eprintln!("security-group change effective after {:?}", changed.elapsed());
    a1.ping(&a2.ip);
    assert_eq!(a2.served(), 1, "only the ping after the rule reached a2");

    // Out through the uplink (masqueraded: the outside has no route to tenant networks) and in
    // through a floating IP (the default group gets an ICMP rule from anywhere).
    let (_, up) = command_in(&outside, &["ip", "-4", "-o", "addr"]);
    assert!(up.contains("100.127.14.1/24"), "{up}");
    a1.ping("100.127.14.1");
    let default = group_named(&acme, "default").await;
    let (status, body) = acme
        .post(
            &format!("/security-groups/{}/rules", default["id"].as_str().unwrap()),
            &json!({"protocol": "icmp", "source_cidr": "0.0.0.0/0"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, fip) = acme.post("/floating-ips", &json!({})).await;
    assert_eq!(status, 201, "{fip}");
    let address = fip["address"].as_str().unwrap().to_string();
    let (status, body) = acme
        .put(
            &format!("/floating-ips/{}", fip["id"].as_str().unwrap()),
            &json!({"vm_id": ids[0]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until("the floating IP on the uplink", || {
        in_plane(&plane, &["ip", "-o", "addr"]).contains(&format!("{address}/32"))
    })
    .await;
    a1.serve();
    // `ping -w`: keeps asking once a second until a reply or the deadline (the rules apply within a
    // second of the change; the deadline only bounds a broken run).
    let (ok, out) = command_in(&outside, &["ping", "-c", "1", "-w", "120", &address]);
    assert!(
        ok,
        "the floating IP answers from outside: {out}\n{}\n{}\n{}\n{}",
        in_plane(&plane, &["ip", "-o", "addr"]),
        in_plane(&plane, &["nft", "list", "ruleset"]),
        command_in(&outside, &["ip", "neigh"]).1,
        console(&a1.run)
    );
    assert!(a1.served() >= 1);
}

fn in_plane(plane: &str, args: &[&str]) -> String {
    command_in(plane, args).1
}

/// Runs `args` in namespace `ns`: (success, stdout and stderr).
fn command_in(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
