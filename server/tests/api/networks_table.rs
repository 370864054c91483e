//! Tenant isolation with real VMs: four probe guests (two tenants, two VMs each) on the portal's
//! networks, with the portal's uplink ending in an "outside" namespace of the test's own. The probes
//! answer ARP, ping and TCP connections for their address (`net serve`), send pings (`net ping`) and
//! fetch over HTTP (`net get`), both optionally from a forged source, so every check goes through the
//! real VMM, TAP, bridge and nftables ruleset (and, for metadata, the portal's metadata service).
//!
//! A negative check never waits for a time-out: the forbidden ping (or request) is sent first, then an
//! allowed one on the same path, then the target says how many it answered — a dropped ping is one that
//! did not arrive although a later one did. A deleted port forward is refused at once by the plane's
//! own stack.
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
//! | metadata answers the asking VM only | a1, a2, b1, b2 | 169.254.169.254 | each its own id, address, `meta_data.json`, user data (several segments) |
//! | metadata from a forged source | a1 (as a2) | 169.254.169.254 | nothing, to a1 or a2 |
//! | port forward | the outside | uplink:port → a1 | a1 answers |
//! | deleted port forward | the outside | uplink:old port | refused (the other forward still answers) |

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

    /// Ends `net serve`; the TCP connections it answered and the stray TCP segments it saw.
    fn served_tcp(&self) -> (u64, u64) {
        let line = say(&self.run, "", &["OK net served"]);
        let words: Vec<&str> = line.split_whitespace().collect();
        let count = |unit: &str| -> u64 {
            let at = words.iter().position(|w| *w == unit);
            at.and_then(|i| words[i - 1].parse().ok())
                .unwrap_or_else(|| panic!("no {unit} count in {line}"))
        };
        (count("tcp"), count("stray"))
    }

    /// `net get <to> <port> <path>`: the status and the body (lines joined by `\n`).
    fn get(&self, to: &str, port: u16, path: &str) -> (u16, String) {
        let line = say(
            &self.run,
            &format!("net get {to} {port} {path}"),
            &["NET-GET-END", "ERR net get"],
        );
        assert!(line.contains("NET-GET-END"), "{line}");
        let all = console(&self.run);
        let start = all.rfind("\nOK net get ").expect("the status line") + 1;
        let mut lines = all[start..].lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let body: Vec<&str> = lines.take_while(|l| l.trim_end() != "NET-GET-END").collect();
        (status, body.join("\n").trim_end().to_string())
    }

    /// Sends a `net get` expected to get nothing (`from`: a forged source); returns once its SYN is out.
    fn get_unanswered(&self, to: &str, path: &str, from: &str) {
        let line = say(
            &self.run,
            &format!("net get {to} 80 {path} from {from}"),
            &["NET-GET-SENT", "ERR net get"],
        );
        assert!(line.contains("NET-GET-SENT"), "{line}");
    }

    /// Stops waiting for the answer of [`Probe::get_unanswered`] (unless its retransmissions ran out
    /// already); asserts none came.
    fn no_answer(&self) {
        let all = console(&self.run);
        let after_sent = &all[all.rfind("NET-GET-SENT").expect("a sent request")..];
        let line = match after_sent.lines().find(|l| l.contains("net get")) {
            Some(done) => done.to_string(),
            None => say(&self.run, "", &["OK net get", "ERR net get"]),
        };
        assert!(line.contains("ERR net get: no answer"), "{line}");
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
    let ok = ["ip", "dnsmasq", "nft", "ping", "curl"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("SKIP: {test}: needs ip, dnsmasq, nft, ping and curl (scripts/install-deps.sh)");
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

// Multi-threaded: the portal's metadata service must answer while the test blocks on a probe's console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    // b2's user data is larger than the probe's MSS (536 bytes): its answer comes in several segments.
    let user_data: String = (0..40)
        .map(|i| format!("line {i:02}: user data of b2, long enough to span segments\n"))
        .collect();
    let ids = [
        launch(&acme, "a1", &image, &flavor).await,
        launch(&acme, "a2", &image, &flavor).await,
        launch(&globex, "b1", &image, &flavor).await,
        launch_with_user_data(&globex, "b2", &image, &flavor, &user_data).await,
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

    // Metadata answers the asking VM only: each probe asks 169.254.169.254 (through its gateway) and
    // hears about itself, whatever its tenant or groups.
    let md = "169.254.169.254";
    for (p, id) in [(&a1, &ids[0]), (&a2, &ids[1]), (&b1, &ids[2])] {
        let asked = Instant::now();
        assert_eq!(p.get(md, 80, "/latest/meta-data/instance-id"), (200, id.clone()));
        eprintln!("metadata answered {} in {:?}", p.ip, asked.elapsed());
        assert_eq!(p.get(md, 80, "/latest/meta-data/local-ipv4"), (200, p.ip.clone()));
    }
    let (status, json) = b2.get(md, 80, "/openstack/latest/meta_data.json");
    assert_eq!(status, 200, "{json}");
    let doc: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(doc["uuid"], ids[3].as_str(), "{doc}");
    assert_eq!(doc["name"], "b2", "{doc}");
    assert_eq!(
        b2.get(md, 80, "/latest/user-data"),
        (200, user_data.trim_end().to_string()),
        "an answer of {} bytes, reassembled from several segments",
        user_data.len()
    );
    // A request under another VM's address is dropped at the bridge: neither the forger nor the VM
    // whose address it used hears anything, while the forger's own request on the same path is answered.
    a2.serve();
    a1.get_unanswered(md, "/latest/meta-data/instance-id", &a2.ip);
    a1.no_answer();
    assert_eq!(
        a1.get(md, 80, "/latest/meta-data/instance-id"),
        (200, ids[0].clone())
    );
    assert_eq!(
        a2.served_tcp(),
        (0, 0),
        "no answer to the forged request reached a2"
    );

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

    // A port forward: the outside reaches a1's TCP port through the uplink's address (a1's default
    // group lets the port in); once deleted, the same address and port are refused while a second
    // forward to the same VM port still answers.
    let uplink = "100.127.14.2";
    assert!(
        in_plane(&plane, &["ip", "-4", "-o", "addr"]).contains(&format!("{uplink}/24")),
        "the plane's uplink address"
    );
    let (status, body) = acme
        .post(
            &format!("/security-groups/{}/rules", default["id"].as_str().unwrap()),
            &json!({"protocol": "tcp", "port_min": 7000, "port_max": 7000, "source_cidr": "0.0.0.0/0"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut forwards = Vec::new();
    for _ in 0..2 {
        let rules_before = in_plane(&plane, &["nft", "list", "ruleset"]);
        let (status, fwd) = acme
            .post(
                "/port-forwards",
                &json!({"vm_id": ids[0], "protocol": "tcp", "vm_port": 7000}),
            )
            .await;
        assert_eq!(status, 201, "{fwd}");
        let port = fwd["host_port"].as_u64().unwrap();
        wait_until("the port forward in the ruleset", || {
            let rules = in_plane(&plane, &["nft", "list", "ruleset"]);
            rules != rules_before && rules.contains(&format!(". {port} "))
        })
        .await;
        forwards.push((fwd["id"].as_str().unwrap().to_string(), port));
    }
    let fetch = |port: u64| {
        command_in(
            &outside,
            &[
                "curl",
                "-sS",
                "--max-time",
                "120",
                &format!("http://{uplink}:{port}/"),
            ],
        )
    };
    a1.serve();
    let (ok, out) = fetch(forwards[0].1);
    assert!(ok, "the forward reaches a1: {out}\n{}", console(&a1.run));
    assert_eq!(out.trim(), format!("probe {}", a1.ip), "a1 answered");
    let rules_before = in_plane(&plane, &["nft", "list", "ruleset"]);
    let (status, body) = acme.delete(&format!("/port-forwards/{}", forwards[0].0)).await;
    assert!(status < 300, "{body}");
    wait_until("the port forward out of the ruleset", || {
        in_plane(&plane, &["nft", "list", "ruleset"]) != rules_before
    })
    .await;
    let (ok, out) = fetch(forwards[0].1);
    // curl's error 7: the connection was refused (reset by the plane's own stack), at once, not timed out.
    assert!(
        !ok && out.contains("curl: (7)"),
        "the deleted forward is refused: {out}"
    );
    let (ok, out) = fetch(forwards[1].1);
    assert!(ok, "the other forward still reaches a1: {out}");
    assert_eq!(out.trim(), format!("probe {}", a1.ip));
    assert_eq!(
        a1.served_tcp(),
        (2, 0),
        "a1 answered the two connections through live forwards and nothing else"
    );
}

async fn launch_with_user_data(api: &Api, name: &str, image: &str, flavor: &str, user_data: &str) -> String {
    let (status, vm) = api
        .post(
            "/vms",
            &json!({"name": name, "image_id": image, "flavor_id": flavor, "user_data": user_data}),
        )
        .await;
    assert_eq!(status, 202, "{vm}");
    vm["id"].as_str().unwrap().to_string()
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
