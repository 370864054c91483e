//! Quotas under concurrency, the usage ledger across a portal crash, invoices and the audit chain.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app_with_vms, Site, TestApp};
use crate::vm_helpers::*;

const T: Duration = GUEST_WAIT;

#[tokio::test]
async fn fifty_concurrent_launches_never_overshoot_the_quota() {
    if !kvm_or_skip("fifty_concurrent_launches_never_overshoot_the_quota") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, _) = app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let api = app.api(&ann.token("ann").await);
    let (status, _) = admin_api
        .send(
            Method::PUT,
            &format!("/quotas/{tenant}"),
            Some(json!({"instances": 50, "vcpus": 7, "memory_mib": 65536, "disk_gib": 500})),
        )
        .await;
    assert_eq!(status, 204);
    let (image, flavor) = probe_and_micro(&api).await;

    let launches = (0..50).map(|i| {
        let api = app.api(&api.token);
        let (image, flavor) = (image.clone(), flavor.clone());
        tokio::spawn(async move {
            api.send(
                Method::POST,
                "/vms",
                Some(json!({"name": format!("c-{i}"), "image_id": image, "flavor_id": flavor})),
            )
            .await
        })
    });
    let mut accepted = 0;
    let mut refused = Vec::new();
    for l in launches {
        let (status, body) = l.await.unwrap();
        match status {
            202 => accepted += 1,
            403 => refused.push(body),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted, 7, "exactly the quota");
    assert_eq!(refused.len(), 43);
    let err = &refused[0]["error"];
    assert_eq!(err["kind"], "quota_exceeded");
    assert_eq!(
        err["message"],
        "vCPUs quota exceeded: this needs 1 more, 7 of 7 in use (1 over)."
    );
    let (_, quota) = api.get("/quota").await;
    assert_eq!(quota["used"]["vcpus"], 7);
    assert_eq!(quota["used"]["instances"], 7);

    // A stopped VM frees its vCPUs but keeps its instance and disk; starting it again is checked.
    let (_, list) = api.get("/vms").await;
    let first = list[0]["id"].as_str().unwrap().to_string();
    wait_state(&api, &first, "running", T).await;
    action(&api, &first, "force_off").await;
    wait_state(&api, &first, "stopped", T).await;
    let (_, quota) = api.get("/quota").await;
    assert_eq!(
        (
            quota["used"]["vcpus"].as_i64(),
            quota["used"]["instances"].as_i64()
        ),
        (Some(6), Some(7))
    );
    let extra = launch(&api, "extra", &image, &flavor).await;
    let (status, err) = action(&api, &first, "start").await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["kind"], "quota_exceeded");
    // A VM being created cannot be deleted yet (409): wait until it runs, as a user would.
    wait_state(&api, &extra, "running", T).await;
    assert_eq!(action(&api, &extra, "delete").await.0, 202);
    wait_state(&api, &extra, "gone", T).await;
    let (status, _) = action(&api, &first, "start").await;
    assert_eq!(status, 202);
}

async fn ledger(data_dir: &std::path::Path, vm: &str) -> Vec<(i64, Option<i64>)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data_dir.join("portal.db").display()))
        .await
        .unwrap();
    let rows: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT started_at, ended_at FROM usage_intervals WHERE vm_id = ? ORDER BY id")
            .bind(vm)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn the_ledger_survives_a_portal_crash_without_losing_or_doubling_time() {
    if !kvm_or_skip("the_ledger_survives_a_portal_crash_without_losing_or_doubling_time") {
        return;
    }
    let (_data, data_dir, _reaper, guest) = portal_data();

    let mut portal = PortalProcess::start(&data_dir, guest.path());
    let site: Site = TestApp::attach(&portal.base);
    let api = member_api(&site, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let keeps = launch(&api, "keeps-running", &image, &flavor).await;
    let offs = launch(&api, "powers-off", &image, &flavor).await;
    wait_state(&api, &keeps, "running", T).await;
    wait_state(&api, &offs, "running", T).await;
    let t_start = now();

    // SIGKILL the portal mid-run: nothing gets to close anything.
    portal.child.kill().unwrap();
    portal.child.wait().unwrap();
    assert_eq!(ledger(&data_dir, &keeps).await.len(), 1);
    // While it is down, one guest powers itself off (its VMM records when).
    let run_offs = data_dir.join("vms").join(&offs);
    wait_console(&run_offs, "PROBE-GUEST READY", T);
    serial_line(&run_offs, "poweroff");
    let t_poweroff = now();
    std::thread::sleep(Duration::from_secs(3));

    let portal = PortalProcess::start(&data_dir, guest.path());
    let site = TestApp::attach(&portal.base);
    let ann = site.signed_in("acme-user", "acme-user-password-1").await;
    let api = site.api(&ann.token("after crash").await);
    wait_state(&api, &offs, "stopped", T).await;
    wait_state(&api, &keeps, "running", T).await;

    // The powered-off VM's interval ends when it powered off, not when the portal came back.
    let off = ledger(&data_dir, &offs).await;
    assert_eq!(off.len(), 1, "{off:?}");
    let ended = off[0].1.expect("closed");
    assert!(
        (ended - t_poweroff).abs() <= 1,
        "closed at {ended}, powered off at {t_poweroff}"
    );
    // The running VM's interval continued: still one, still open, started before the crash.
    let kept = ledger(&data_dir, &keeps).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].1.is_none() && kept[0].0 <= t_start);
    action(&api, &keeps, "stop").await;
    wait_state(&api, &keeps, "stopped", T).await;
    let kept = ledger(&data_dir, &keeps).await;
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0].1.unwrap() - kept[0].0 >= 3,
        "the time across the crash is counted: {kept:?}"
    );

    // The invoice counts each VM's seconds once.
    let (status, inv) = api.get("/usage").await;
    assert_eq!(status, 200, "{inv}");
    let secs: i64 = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seconds"].as_i64().unwrap())
        .sum();
    let expected = (kept[0].1.unwrap() - kept[0].0) + (ended - off[0].0);
    assert_eq!(secs, expected);
    drop(portal);
}

#[tokio::test]
async fn the_audit_log_is_chained_and_admin_only() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, _) = app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("ann").await);
    admin_api
        .send(
            Method::PUT,
            &format!("/quotas/{tenant}"),
            Some(json!({"instances": 1, "vcpus": 1, "memory_mib": 128, "disk_gib": 1})),
        )
        .await;
    assert_eq!(ann_api.get("/audit").await.0, 403);
    let (status, log) = admin_api.get("/audit").await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"sign_in") && actions.contains(&"quota_set"),
        "{actions:?}"
    );
    let (_, check) = admin_api.get("/audit/verify").await;
    assert_eq!(check["broken_at"], serde_json::Value::Null);
    assert!(check["entries"].as_i64().unwrap() >= 3);

    // The database refuses edits; tampering behind its back (dropping the trigger) is detected.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.data_dir.join("portal.db").display()))
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE audit_log SET detail = 'x' WHERE seq = 2")
        .execute(&pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .is_err());
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET detail = 'forged' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, check) = admin_api.get("/audit/verify").await;
    assert_eq!(check["broken_at"], 2);
}

#[tokio::test]
async fn invoices_validate_the_month_and_export_csv() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let token = admin.token("admin").await;
    let api = app.api(&token);
    let (status, err) = api.get("/usage?month=2026-13").await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], "month");
    let (status, inv) = api.get("/usage?month=2026-11").await;
    assert_eq!(status, 200);
    assert_eq!(inv["month"], "2026-11");
    assert_eq!(inv["daily_minor"].as_array().unwrap().len(), 30);
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/admin/usage.csv?month=2026-11", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = res.text().await.unwrap();
    assert!(body.starts_with("month,tenant,vm_id"));
    assert!(body.trim_end().ends_with("2026-11,total,,,,,,,0,0"));
}
