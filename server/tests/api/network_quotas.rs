//! The three network quotas as an admin sets them over the API: networks, floating IPs and port forwards.
//! A lowered limit refuses the tenant's next allocation (403 naming the quota) and a raised one lets it
//! through; the defaults apply to tenants without their own limits (and are what a tenant keeps when it
//! first gets its own); a PUT from a client that does not know these fields keeps them; bad values are
//! refused with the field named and change nothing; every change is in the audit log.
//!
//! The portal runs with tenant networks on, in a namespace of its own plus an "outside" namespace of the
//! test's for its uplink (needed for floating IPs and port forwards); both are deleted at the end.

use std::process::Command;

use serde_json::{json, Value};

use super::helpers::{spawn_app_with, Api, TestApp};
use super::networks_ssh::Namespaces;
use super::vm_helpers::*;

fn tools_or_skip(test: &str) -> bool {
    let ok = ["ip", "nft", "dnsmasq"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("SKIP: {test}: needs ip, nft and dnsmasq (scripts/install-deps.sh)");
    }
    ok
}

/// A portal with networks, an uplink into an outside namespace and a floating pool; `net` (distinct per
/// test) picks the names and blocks. With `vms`, the probe guest and the `vmm` binary too.
async fn networked_app(net: u8, vms: bool) -> (TestApp, Namespaces) {
    let pid = std::process::id();
    let outside = format!("cpq-out-{net}-{pid}");
    let plane = format!("cpq-{net}-{pid}");
    assert!(Command::new("ip")
        .args(["netns", "add", &outside])
        .status()
        .unwrap()
        .success());
    let guest = vms.then(probe_guest_dir);
    let guest_dir = guest.as_ref().map(|g| g.path().to_path_buf());
    let (o, p) = (outside.clone(), plane.clone());
    let mut app = spawn_app_with(move |s| {
        if let Some(dir) = guest_dir {
            s.guest_dir = dir;
            s.vmm_binary = Some(vmm_binary());
        }
        s.network.enabled = true;
        s.network.namespace = p;
        s.network.pool = format!("10.{}.0.0/16", 210 + net).parse().unwrap();
        s.network.uplink = Some(format!("100.127.{}.0/24", 20 + net).parse().unwrap());
        s.network.uplink_outer = format!("cpq{net}{}", pid % 100_000);
        s.network.uplink_outer_netns = Some(o);
        s.network.floating_pool = Some(format!("100.127.{}.128/25", 20 + net).parse().unwrap());
    })
    .await;
    app._guest = guest;
    let ns = Namespaces {
        outside,
        plane,
        state_dir: app.data_dir.join("net"),
    };
    (app, ns)
}

/// The admin's API client.
async fn admin_api(app: &TestApp) -> Api {
    let admin = app.admin().await;
    app.api(&admin.token("quota admin").await)
}

/// The tenant's row of `GET /quotas`.
async fn quota_of(admin: &Api, tenant: &str) -> Value {
    let (status, all) = admin.get("/quotas").await;
    assert_eq!(status, 200, "{all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|q| q["tenant_name"] == tenant)
        .unwrap_or_else(|| panic!("no quota row for {tenant}: {all}"))
        .clone()
}

async fn tenant_id(admin: &Api, tenant: &str) -> String {
    quota_of(admin, tenant).await["tenant_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The compute part every PUT carries (what a client older than the network limits sends).
fn compute() -> Value {
    json!({"instances": 10, "vcpus": 16, "memory_mib": 32768, "disk_gib": 500})
}

fn with(extra: Value) -> Value {
    let mut body = compute();
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Asserts a refusal by the named quota.
fn refused_by(status: u16, body: &Value, quota: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["kind"], "quota_exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{quota} quota exceeded")),
        "names the {quota} quota: {body}"
    );
}

#[tokio::test]
async fn admins_set_network_and_floating_ip_quotas_and_allocations_obey_them() {
    if !tools_or_skip("admins_set_network_and_floating_ip_quotas") {
        return;
    }
    let (app, _ns) = networked_app(1, false).await;
    let admin = admin_api(&app).await;
    let acme = member_api(&app, "acme").await;
    let beta = member_api(&app, "beta").await;
    let acme_id = tenant_id(&admin, "acme").await;
    let beta_id = tenant_id(&admin, "beta").await;

    // Shown with the defaults of the migration and nothing in use.
    let q = quota_of(&admin, "acme").await;
    assert_eq!(
        q["network_limits"],
        json!({"networks": 3, "floating_ips": 2, "port_forwards": 10}),
        "{q}"
    );
    assert_eq!(
        q["network_used"],
        json!({"networks": 0, "floating_ips": 0, "port_forwards": 0})
    );
    let (status, defaults) = admin.get("/quotas/defaults").await;
    assert_eq!(status, 200, "{defaults}");
    assert_eq!(
        defaults,
        with(json!({"networks": 3, "floating_ips": 2, "port_forwards": 10}))
    );

    // Floating IPs: lowered to 1, the second allocation is refused; raised to 2, it goes through.
    let (status, body) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"floating_ips": 1})))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, fip) = acme.post("/floating-ips", &json!({})).await;
    assert_eq!(status, 201, "{fip}");
    let (status, body) = acme.post("/floating-ips", &json!({})).await;
    refused_by(status, &body, "floating ips");
    let (_, mine) = acme.get("/quota").await;
    assert_eq!(
        mine["network_limits"],
        json!({"networks": 3, "floating_ips": 1, "port_forwards": 10}),
        "the tenant sees its own limits: {mine}"
    );
    assert_eq!(mine["network_used"]["floating_ips"], 1, "{mine}");
    assert_eq!(mine["is_default"], false);
    let (status, _) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"floating_ips": 2})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = acme.post("/floating-ips", &json!({})).await;
    assert_eq!(status, 201, "raised, it fits: {body}");

    // Networks: lowered to what is in use (none yet), creating one is refused; raised by one, it fits.
    let (status, _) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"networks": 0})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = acme.post("/networks", &json!({"name": "backend"})).await;
    refused_by(status, &body, "networks");
    let (status, _) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"networks": 1})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = acme.post("/networks", &json!({"name": "backend"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = acme.post("/networks", &json!({"name": "frontend"})).await;
    refused_by(status, &body, "networks");
    let q = quota_of(&admin, "acme").await;
    assert_eq!(
        (q["network_limits"].clone(), q["network_used"].clone()),
        (
            json!({"networks": 1, "floating_ips": 2, "port_forwards": 10}),
            json!({"networks": 1, "floating_ips": 2, "port_forwards": 0})
        ),
        "the admin's list shows limits and usage: {q}"
    );

    // An older client's PUT (compute only) changes compute and keeps every network limit.
    let old = json!({"instances": 4, "vcpus": 8, "memory_mib": 4096, "disk_gib": 50});
    let (status, body) = admin.put(&format!("/quotas/{acme_id}"), &old).await;
    assert_eq!(status, 204, "{body}");
    let q = quota_of(&admin, "acme").await;
    assert_eq!(q["limits"], old, "{q}");
    assert_eq!(
        q["network_limits"],
        json!({"networks": 1, "floating_ips": 2, "port_forwards": 10}),
        "kept: {q}"
    );

    // Bad values: refused naming the field, and nothing changes (compute in the same body included).
    let before = quota_of(&admin, "acme").await;
    let bad = [
        (json!({"floating_ips": -1}), "floating_ips"),
        (json!({"networks": 1_000_000}), "networks"),
        (json!({"port_forwards": 10_001}), "port_forwards"),
        (json!({"port_forwards": "ten"}), "port_forwards"),
        (json!({"networks": 1.5}), "networks"),
        (json!({"floating_ip": 1}), "floating_ip"),
    ];
    for (extra, field) in bad {
        let mut body = with(extra.clone());
        body["instances"] = json!(7);
        let (status, err) = admin.put(&format!("/quotas/{acme_id}"), &body).await;
        assert_eq!(status, 422, "{extra}: {err}");
        assert_eq!(err["error"]["field"], field, "{extra}: {err}");
    }
    let (status, err) = admin.put("/quotas/*", &with(json!({"floating_ips": -5}))).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("floating_ips")),
        "{err}"
    );
    assert_eq!(quota_of(&admin, "acme").await, before, "nothing changed");
    assert_eq!(admin.get("/quotas/defaults").await.1, defaults);
    // Only admins set quotas.
    let (status, _) = acme
        .put(&format!("/quotas/{acme_id}"), &with(json!({"floating_ips": 100})))
        .await;
    assert_eq!(status, 403);

    // Defaults: beta has no limits of its own; setting the defaults' floating IPs to 0 refuses beta.
    let (status, _) = admin
        .put(
            "/quotas/*",
            &with(json!({"networks": 5, "floating_ips": 0, "port_forwards": 7})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = beta.post("/floating-ips", &json!({})).await;
    refused_by(status, &body, "floating ips");
    let q = quota_of(&admin, "beta").await;
    assert_eq!(q["is_default"], true);
    assert_eq!(
        q["network_limits"],
        json!({"networks": 5, "floating_ips": 0, "port_forwards": 7})
    );
    // An older client's PUT of the defaults keeps their network limits.
    let (status, _) = admin.put("/quotas/*", &compute()).await;
    assert_eq!(status, 204);
    assert_eq!(
        admin.get("/quotas/defaults").await.1,
        with(json!({"networks": 5, "floating_ips": 0, "port_forwards": 7}))
    );
    // Beta's first limits of its own (compute only) keep the defaults' network limits it had, not the
    // table's column defaults.
    let (status, _) = admin.put(&format!("/quotas/{beta_id}"), &old).await;
    assert_eq!(status, 204);
    let q = quota_of(&admin, "beta").await;
    assert_eq!(q["is_default"], false, "{q}");
    assert_eq!(
        q["network_limits"],
        json!({"networks": 5, "floating_ips": 0, "port_forwards": 7}),
        "{q}"
    );
    let (status, body) = beta.post("/floating-ips", &json!({})).await;
    refused_by(status, &body, "floating ips");
    // Acme has its own limits: the defaults did not touch them.
    assert_eq!(
        quota_of(&admin, "acme").await["network_limits"]["floating_ips"],
        2
    );

    // Each change is audited with the values now in force.
    let (_, log) = admin.get("/audit?limit=1000").await;
    let details: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "quota_set")
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        details.contains(&(
            format!("tenant:{acme_id}"),
            "instances=10 vcpus=16 memory_mib=32768 disk_gib=500 networks=3 floating_ips=1 port_forwards=10"
                .to_string()
        )),
        "{details:?}"
    );
    assert!(
        details.contains(&(
            "tenant:*".to_string(),
            "instances=10 vcpus=16 memory_mib=32768 disk_gib=500 networks=5 floating_ips=0 port_forwards=7"
                .to_string()
        )),
        "{details:?}"
    );
    assert_eq!(
        details.len(),
        8,
        "one entry per accepted change, none for refused ones: {details:?}"
    );
}

#[tokio::test]
async fn a_lowered_port_forward_quota_refuses_the_next_forward_and_a_raised_one_allows_it() {
    if !kvm_or_skip("a_lowered_port_forward_quota") || !tools_or_skip("a_lowered_port_forward_quota") {
        return;
    }
    let (app, _ns) = networked_app(2, true).await;
    let admin = admin_api(&app).await;
    let acme = member_api(&app, "acme").await;
    let acme_id = tenant_id(&admin, "acme").await;
    let (image, flavor) = probe_and_micro(&acme).await;
    // A forward needs a VM with a card, not a booted one: the card is made with the launch.
    let vm = launch(&acme, "web", &image, &flavor).await;

    let (status, _) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"port_forwards": 1})))
        .await;
    assert_eq!(status, 204);
    let forward = |port: u16| json!({"vm_id": vm, "protocol": "tcp", "vm_port": port});
    let (status, body) = acme.post("/port-forwards", &forward(22)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = acme.post("/port-forwards", &forward(80)).await;
    refused_by(status, &body, "port forwards");
    let (_, mine) = acme.get("/quota").await;
    assert_eq!(
        (
            mine["network_used"]["port_forwards"].as_i64(),
            mine["network_limits"]["port_forwards"].as_i64(),
            mine["network_used"]["networks"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "the launch made the default network: {mine}"
    );

    let (status, _) = admin
        .put(&format!("/quotas/{acme_id}"), &with(json!({"port_forwards": 2})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = acme.post("/port-forwards", &forward(80)).await;
    assert_eq!(status, 201, "raised, it fits: {body}");
    let (status, body) = acme.post("/port-forwards", &forward(443)).await;
    refused_by(status, &body, "port forwards");
}
