//! Tenant networks with real probe-guest VMs: each VM gets an address on its tenant's network, a TAP on
//! that network's bridge in the portal's namespace and a static DHCP lease; tenants get separate blocks;
//! security groups, port forwards and floating IPs are the tenant's own; deleting a VM releases its
//! address and lease; a restarted portal converges to the same host state. The portal's namespace is
//! made by the portal under test (a unique name) and deleted at the end; no uplink, so nothing is added
//! to the machine's own namespace.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::helpers::{spawn_app_with, TestApp};
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;

fn tools_or_skip(test: &str) -> bool {
    let ok = ["ip", "dnsmasq"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("SKIP: {test}: needs ip and dnsmasq (scripts/install-deps.sh)");
    }
    ok
}

/// Removes the portal's namespace and DHCP servers when the test ends, pass or fail.
struct PlaneGuard {
    namespace: String,
    state_dir: std::path::PathBuf,
}

impl Drop for PlaneGuard {
    fn drop(&mut self) {
        if let Ok(plane) = netplane::Plane::open(&self.namespace, &self.state_dir) {
            let _ = plane.destroy();
        }
    }
}

async fn networked_app(namespace: &str) -> (TestApp, PlaneGuard) {
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let ns = namespace.to_string();
    let mut app = spawn_app_with(move |s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        s.network.enabled = true;
        s.network.namespace = ns;
        s.network.pool = "10.201.0.0/16".parse().unwrap();
    })
    .await;
    app._guest = Some(guest);
    let guard = PlaneGuard {
        namespace: namespace.to_string(),
        state_dir: app.data_dir.join("net"),
    };
    (app, guard)
}

fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hosts_file(data_dir: &Path, bridge: &str) -> String {
    std::fs::read_to_string(data_dir.join("net/dhcp").join(bridge).join("hosts")).unwrap_or_default()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn vms_get_addresses_taps_and_leases_on_their_own_tenant_network() {
    if !kvm_or_skip("vms_get_addresses_taps_and_leases")
        || !tools_or_skip("vms_get_addresses_taps_and_leases")
    {
        return;
    }
    let ns = format!("cptest-{}-a", std::process::id());
    let (app, _guard) = networked_app(&ns).await;
    let acme = member_api(&app, "acme").await;
    let globex = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&acme).await;
    let a = launch(&acme, "alpha", &image, &flavor).await;
    let b = launch(&globex, "beta", &image, &flavor).await;
    wait_state(&acme, &a, "running", T).await;
    wait_state(&globex, &b, "running", T).await;

    let (_, va) = acme.get(&format!("/vms/{a}")).await;
    let (_, vb) = globex.get(&format!("/vms/{b}")).await;
    let nic_a = &va["network"]["nics"][0];
    let nic_b = &vb["network"]["nics"][0];
    let ip_a = nic_a["ip"].as_str().unwrap().to_string();
    let mac_a = nic_a["mac"].as_str().unwrap().to_string();
    assert!(ip_a.starts_with("10.201."), "{va}");
    assert_ne!(nic_a["cidr"], nic_b["cidr"], "tenants get separate blocks");
    assert_eq!(va["network"]["security_groups"][0]["name"], "default");
    assert!(
        va["network"]["ssh_command"].is_null(),
        "no uplink, no way in: {va}"
    );

    // The VMM got the card: the MAC the portal allocated, on a TAP of the portal's namespace.
    let status = control(&app.data_dir.join("vms").join(&a), json!({"cmd": "status"}));
    assert_eq!(status["nics"][0]["mac"], mac_a.as_str(), "{status}");
    let tap = status["nics"][0]["tap"].as_str().unwrap().to_string();
    let (_, networks) = acme.get("/networks").await;
    let net_a = networks
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["cidr"] == nic_a["cidr"])
        .unwrap()
        .clone();
    assert_eq!(net_a["ports"], 1);
    let bridge = format!(
        "cpbr{}",
        net_a["cidr"].as_str().unwrap().split('.').nth(2).unwrap()
    );
    let ports = in_ns(&ns, &["ip", "-o", "link", "show", "master", &bridge]);
    assert!(
        ports.contains(&tap),
        "the TAP is a port of its network's bridge: {ports}"
    );
    assert!(
        hosts_file(&app.data_dir, &bridge).contains(&format!("{mac_a},{ip_a}")),
        "static lease"
    );

    // Another tenant's objects do not exist for acme.
    let (_, groups_b) = globex.get("/security-groups").await;
    let group_b = groups_b[0]["id"].as_str().unwrap().to_string();
    let (status, _) = acme
        .put(
            &format!("/vms/{a}/security-groups"),
            &json!({"group_ids": [group_b]}),
        )
        .await;
    assert_eq!(status, 422, "another tenant's group cannot be used");
    let (status, _) = acme
        .delete(&format!("/networks/{}", nic_b["network_id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 404);

    // Security groups: a rule with an absurd range or bad CIDR changes nothing.
    let (_, groups_a) = acme.get("/security-groups").await;
    let group_a = groups_a[0]["id"].as_str().unwrap().to_string();
    for bad in [
        json!({"protocol": "tcp", "port_min": 30, "port_max": 20, "source_cidr": "0.0.0.0/0"}),
        json!({"protocol": "icmp", "port_min": 22, "port_max": 22, "source_cidr": "0.0.0.0/0"}),
        json!({"protocol": "tcp", "port_min": 22, "port_max": 22, "source_cidr": "300.0.0.0/8"}),
        json!({"protocol": "tcp", "port_min": 22, "port_max": 22}),
        json!({"protocol": "tcp", "source_cidr": "10.0.0.0/8", "source_group_id": group_a}),
    ] {
        let (status, body) = acme
            .post(&format!("/security-groups/{group_a}/rules"), &bad)
            .await;
        assert_eq!(status, 422, "{bad} -> {body}");
        assert!(body["error"]["field"].is_string(), "{body}");
    }
    let (status, body) = acme
        .post(
            &format!("/security-groups/{group_a}/rules"),
            &json!({"protocol": "tcp", "port_min": 22, "port_max": 22, "source_cidr": "0.0.0.0/0"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rules"].as_array().unwrap().len(), 2);

    // No uplink here: port forwards and floating IPs are refused with a reason.
    let (status, body) = acme
        .post(
            "/port-forwards",
            &json!({"vm_id": a, "protocol": "tcp", "vm_port": 22}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // A network with a VM cannot be deleted; an empty one can.
    let (status, _) = acme
        .delete(&format!("/networks/{}", net_a["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 409);
    let (status, extra) = acme.post("/networks", &json!({"name": "backend"})).await;
    assert_eq!(status, 201, "{extra}");
    assert_ne!(extra["cidr"], net_a["cidr"]);
    let (status, _) = acme
        .delete(&format!("/networks/{}", extra["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 204);

    // Deleting the VM releases its address and lease.
    let (status, _) = action(&acme, &a, "delete").await;
    assert_eq!(status, 202);
    wait_for("the VM to be deleted", || {
        !app.data_dir.join("vms").join(&a).exists()
    })
    .await;
    wait_for("the lease to go", || {
        !hosts_file(&app.data_dir, &bridge).contains(&mac_a)
    })
    .await;
    let (_, networks) = acme.get("/networks").await;
    assert_eq!(networks[0]["ports"], 0, "{networks}");
}

/// Links of ours in the plane's namespace, by name.
fn our_links(ns: &str) -> Vec<String> {
    in_ns(ns, &["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n.starts_with("cpbr") || n.starts_with("cpt"))
        .collect()
}

fn dhcp_running(data_dir: &Path, bridge: &str) -> bool {
    std::fs::read_to_string(data_dir.join("net/dhcp").join(bridge).join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dnsmasq")
        })
}

fn table_present(ns: &str) -> bool {
    let tables = in_ns(ns, &["nft", "list", "tables"]);
    let table = netplane::ruleset::TABLE;
    tables.contains(&format!("table inet {table}")) && tables.contains(&format!("table bridge {table}"))
}

#[tokio::test]
async fn a_restarted_portal_repairs_the_plane_and_leaves_nothing_after_everything_is_deleted() {
    let test = "a_restarted_portal_repairs_the_plane";
    if !kvm_or_skip(test) || !tools_or_skip(test) {
        return;
    }
    let ns = format!("cptest-{}-r", std::process::id());
    let (_data, data_dir, _reaper, guest) = portal_data();
    let _guard = PlaneGuard {
        namespace: ns.clone(),
        state_dir: data_dir.join("net"),
    };
    let env = [
        ("PORTAL_NETWORK__ENABLED", "true"),
        ("PORTAL_NETWORK__NAMESPACE", ns.as_str()),
        ("PORTAL_NETWORK__POOL", "10.202.0.0/16"),
        ("PORTAL_NETWORK__UPLINK", ""),
        ("PORTAL_NETWORK__FLOATING_POOL", ""),
    ];
    let portal = PortalProcess::start_with_env(&data_dir, guest.path(), &env);
    let app = super::helpers::TestApp::attach(&portal.base);
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "keep", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run_dir = data_dir.join("vms").join(&vm);
    let status = control(&run_dir, json!({"cmd": "status"}));
    let pid = status["pid"].as_i64().unwrap();
    let tap = status["nics"][0]["tap"].as_str().unwrap().to_string();
    let (_, v) = api.get(&format!("/vms/{vm}")).await;
    let cidr = v["network"]["nics"][0]["cidr"].as_str().unwrap().to_string();
    let bridge = format!("cpbr{}", cidr.split('.').nth(2).unwrap());
    assert!(dhcp_running(&data_dir, &bridge) && table_present(&ns));

    // The portal goes down; meanwhile the host drifts: its DHCP server dies, the ruleset is flushed, the
    // VM's TAP leaves its bridge, and a bridge and a persistent TAP of ours appear that nothing uses.
    portal.terminate();
    let dnsmasq: i32 = std::fs::read_to_string(data_dir.join("net/dhcp").join(&bridge).join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Command::new("kill").arg(dnsmasq.to_string()).status().unwrap();
    for family in ["inet", "bridge"] {
        in_ns(&ns, &["nft", "delete", "table", family, netplane::ruleset::TABLE]);
    }
    in_ns(&ns, &["ip", "link", "set", &tap, "nomaster"]);
    in_ns(&ns, &["ip", "link", "add", "cpbr250", "type", "bridge"]);
    in_ns(&ns, &["ip", "tuntap", "add", "cptstray0", "mode", "tap"]);
    wait_for("the DHCP server to end", || !dhcp_running(&data_dir, &bridge)).await;
    assert!(in_ns(&ns, &["nft", "list", "tables"]).trim().is_empty());

    // The restarted portal converges: exactly our bridge and the VM's TAP on it, DHCP and rules back.
    let portal = PortalProcess::start_with_env(&data_dir, guest.path(), &env);
    let app = super::helpers::TestApp::attach(&portal.base);
    let member = app.signed_in("acme-user", "acme-user-password-1").await;
    let api = app.api(&member.token("after restart").await);
    wait_for("the plane to converge", || {
        let mut links = our_links(&ns);
        links.sort();
        let mut want = vec![bridge.clone(), tap.clone()];
        want.sort();
        links == want && dhcp_running(&data_dir, &bridge) && table_present(&ns)
    })
    .await;
    let ports = in_ns(&ns, &["ip", "-o", "link", "show", "master", &bridge]);
    assert!(ports.contains(&tap), "the VM's TAP rejoined: {ports}");
    wait_state(&api, &vm, "running", T).await;
    let status = control(&run_dir, json!({"cmd": "status"}));
    assert_eq!(status["pid"].as_i64(), Some(pid), "the same VMM, re-adopted");
    assert_eq!(status["nics"][0]["tap"], tap.as_str(), "{status}");

    // Everything deleted: the VM, then its network — nothing of ours is left, and a restart adds nothing.
    let (status, _) = action(&api, &vm, "delete").await;
    assert_eq!(status, 202);
    wait_for("the VM to be deleted", || !run_dir.exists()).await;
    let (_, networks) = api.get("/networks").await;
    for net in networks.as_array().unwrap() {
        let (status, body) = api
            .delete(&format!("/networks/{}", net["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, 204, "{body}");
    }
    wait_for("no link of ours", || our_links(&ns).is_empty()).await;
    wait_for("no DHCP server", || !dhcp_running(&data_dir, &bridge)).await;
    assert!(!data_dir.join("net/dhcp").join(&bridge).exists());
    drop(portal);
    let portal = PortalProcess::start_with_env(&data_dir, guest.path(), &env);
    let app = super::helpers::TestApp::attach(&portal.base);
    app.signed_in("acme-user", "acme-user-password-1").await;
    assert!(our_links(&ns).is_empty(), "{:?}", our_links(&ns));
    assert!(std::fs::read_dir(data_dir.join("net/dhcp"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
    drop(portal);
}
