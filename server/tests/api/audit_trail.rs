//! What the audit log records beyond launches and quotas: tenant and user creation, API tokens, VM power
//! actions, image and flavor changes and refused sign-ins (with the client's address, never the password),
//! each naming its target by name and short id.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_vms, Api};
use crate::vm_helpers::*;

/// The log's entries, newest first.
async fn entries(admin: &Api) -> Vec<Value> {
    let (status, log) = admin.get("/audit?limit=1000").await;
    assert_eq!(status, 200, "{log}");
    log.as_array().unwrap().clone()
}

/// The newest entry of `action`, or a panic listing what the log holds.
fn newest<'a>(log: &'a [Value], action: &str) -> &'a Value {
    log.iter().find(|e| e["action"] == action).unwrap_or_else(|| {
        let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
        panic!("no {action} entry in {actions:?}")
    })
}

fn short(id: &str) -> &str {
    &id[..8]
}

#[tokio::test]
async fn accounts_tokens_and_the_catalogue_are_audited_by_name() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, ann_id) = app.tenant_with_member(&admin, "acme", "ann").await;
    let log = entries(&admin_api).await;

    let e = newest(&log, "tenant_create");
    assert_eq!(e["target"], format!("tenant:{tenant}"));
    assert_eq!(e["target_name"], format!("tenant acme ({})", short(&tenant)));
    assert_eq!(e["actor"], "admin");
    let e = newest(&log, "user_create");
    assert_eq!(e["target_name"], format!("user ann ({})", short(&ann_id)));
    assert!(e["detail"].as_str().unwrap().contains("role=member"), "{e}");

    // Tokens: created and revoked by their owner, and revoked by an admin.
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("laptop").await);
    let (status, created) = ann_api.post("/tokens", &json!({"name": "ci"})).await;
    assert_eq!(status, 201, "{created}");
    let ci = created["token"]["id"].as_str().unwrap().to_string();
    assert_eq!(ann_api.delete(&format!("/tokens/{ci}")).await.0, 204);
    let (_, mine) = ann_api.get("/tokens").await;
    let laptop = mine[0]["id"].as_str().unwrap().to_string();
    let (status, _) = admin_api
        .delete(&format!("/users/{ann_id}/tokens/{laptop}"))
        .await;
    assert_eq!(status, 204);
    let log = entries(&admin_api).await;
    let created: Vec<&Value> = log.iter().filter(|e| e["action"] == "token_create").collect();
    assert!(created
        .iter()
        .any(|e| e["target_name"] == format!("token ci ({})", short(&ci)) && e["actor"] == "ann"));
    let revoked: Vec<&Value> = log.iter().filter(|e| e["action"] == "token_revoke").collect();
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(revoked
        .iter()
        .any(|e| e["actor"] == "ann" && e["target"] == format!("token:{ci}")));
    assert!(revoked
        .iter()
        .any(|e| e["actor"] == "admin" && e["target_name"] == format!("token laptop ({})", short(&laptop))));

    // Flavors: created, price changed, withdrawn.
    let body =
        json!({"name": "c1.audit", "vcpus": 1, "memory_mib": 64, "disk_gib": 1, "hourly_price_minor": 3});
    let (status, flavor) = admin_api.post("/flavors", &body).await;
    assert_eq!(status, 201, "{flavor}");
    let fid = flavor["id"].as_str().unwrap().to_string();
    let fpath = format!("/flavors/{fid}");
    let patch = |b: Value| admin_api.send(Method::PATCH, &fpath, Some(b));
    assert_eq!(patch(json!({"hourly_price_minor": 9})).await.0, 200);
    assert_eq!(patch(json!({"disabled": true})).await.0, 200);
    let log = entries(&admin_api).await;
    let label = format!("flavor c1.audit ({})", short(&fid));
    assert_eq!(newest(&log, "flavor_create")["target_name"], label);
    let price = newest(&log, "flavor_price");
    assert_eq!(price["target_name"], label);
    assert_eq!(price["detail"], "hourly_price_minor 3 -> 9");
    assert_eq!(newest(&log, "flavor_disable")["target_name"], label);

    // Images: uploaded, deleted (the entry keeps the name in its detail once the row is gone).
    let token = admin_api.token.clone();
    let (status, image) =
        crate::catalogue::upload(&app, &token, crate::catalogue::elf_kernel(), "audited").await;
    assert_eq!(status, 201, "{image}");
    let iid = image["id"].as_str().unwrap().to_string();
    let log = entries(&admin_api).await;
    assert_eq!(
        newest(&log, "image_upload")["target_name"],
        format!("image audited ({})", short(&iid))
    );
    assert_eq!(admin_api.delete(&format!("/images/{iid}")).await.0, 204);
    let log = entries(&admin_api).await;
    let deleted = newest(&log, "image_delete");
    assert_eq!(deleted["target"], format!("image:{iid}"));
    assert_eq!(deleted["detail"], "name=audited");

    // Every new entry is part of the chain.
    let (_, check) = admin_api.get("/audit/verify").await;
    assert_eq!(check["broken_at"], Value::Null);
}

#[tokio::test]
async fn refused_sign_ins_are_audited_with_the_address_and_without_the_password() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, ann_id) = app.tenant_with_member(&admin, "acme", "ann").await;
    let secret_guess = "not-anns-password-42";
    for (user, password) in [("ann", secret_guess), ("nobody", "whatever-password")] {
        let res = app
            .browser()
            .call("login", &[("username", user), ("password", password)])
            .await;
        assert_eq!(res.status(), 422, "{user}");
    }
    let log = entries(&admin_api).await;
    let failed: Vec<&Value> = log.iter().filter(|e| e["action"] == "sign_in_failed").collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let ann = failed.iter().find(|e| e["actor"] == "ann").unwrap();
    assert_eq!(ann["target"], format!("user:{ann_id}"));
    assert_eq!(ann["target_name"], format!("user ann ({})", short(&ann_id)));
    assert_eq!(ann["tenant_id"], tenant);
    assert_eq!(ann["detail"], "from 127.0.0.1");
    let nobody = failed.iter().find(|e| e["actor"] == "nobody").unwrap();
    assert_eq!(nobody["target"], "username:nobody");
    assert_eq!(nobody["tenant_id"], Value::Null);
    assert!(
        !serde_json::to_string(&log).unwrap().contains(secret_guess),
        "the password is never recorded"
    );
}

#[tokio::test]
async fn vm_power_actions_are_audited() {
    if !kvm_or_skip("vm_power_actions_are_audited") {
        return;
    }
    const T: Duration = GUEST_WAIT;
    let app = spawn_app_with_vms().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "audited", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    for (act, then) in [
        ("force_off", "stopped"),
        ("start", "running"),
        ("reboot", "running"),
        ("stop", "stopped"),
    ] {
        let (status, body) = action(&api, &vm, act).await;
        assert_eq!(status, 202, "{act}: {body}");
        wait_state(&api, &vm, then, T).await;
    }
    let log = entries(&admin_api).await;
    for act in ["vm_launch", "vm_force_off", "vm_start", "vm_reboot", "vm_stop"] {
        let e = newest(&log, act);
        assert_eq!(e["target"], format!("vm:{vm}"));
        assert_eq!(e["target_name"], format!("vm audited ({})", short(&vm)), "{act}");
    }
}
