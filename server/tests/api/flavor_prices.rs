//! Admins change a flavor's price: usage intervals opened afterwards use it, past invoices never change,
//! and the change is validated like any other input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_vms};
use crate::vm_helpers::*;

const T: Duration = GUEST_WAIT;

#[tokio::test]
async fn price_changes_are_admin_only_and_validated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("ann").await);
    let (_, flavors) = admin_api.get("/flavors").await;
    let micro = flavors
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "t1.micro")
        .unwrap()
        .clone();
    let path = format!("/flavors/{}", micro["id"].as_str().unwrap());
    let before = micro["hourly_price_minor"].as_i64().unwrap();

    let refused = [
        (json!({"hourly_price_minor": -1}), 422),
        (json!({"hourly_price_minor": 100_000_001}), 422),
        (json!({}), 422),
        (json!({"hourly_price_minor": "7"}), 422),
        (json!({"price": 7}), 422),
    ];
    for (body, status) in refused {
        let (got, err) = admin_api.send(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    assert_eq!(
        ann_api
            .send(Method::PATCH, &path, Some(json!({"hourly_price_minor": 0})))
            .await
            .0,
        403
    );
    let unknown = "/flavors/00000000-0000-4000-8000-000000000000";
    assert_eq!(
        admin_api
            .send(Method::PATCH, unknown, Some(json!({"hourly_price_minor": 1})))
            .await
            .0,
        404
    );
    let (_, after) = admin_api.get("/flavors").await;
    assert!(after
        .to_string()
        .contains(&format!("\"hourly_price_minor\":{before}")));

    let (status, changed) = admin_api
        .send(
            Method::PATCH,
            &path,
            Some(json!({"hourly_price_minor": before + 5})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["hourly_price_minor"], before + 5);
    let (_, listed) = ann_api.get("/flavors").await;
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "t1.micro")
        .unwrap()
        .clone();
    assert_eq!(listed["hourly_price_minor"], before + 5);
}

/// The invoice's lines without anything that moves with the clock.
fn lines(inv: &Value) -> Vec<(String, i64, i64, i64, i64)> {
    inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["vm_id"].as_str().unwrap().to_string(),
                l["seconds"].as_i64().unwrap(),
                l["hourly_price_minor"].as_i64().unwrap(),
                l["amount_minor"].as_i64().unwrap(),
                l["amount_hundredths"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_price_change_applies_to_later_intervals_and_leaves_past_invoices_alone() {
    if !kvm_or_skip("a_price_change_applies_to_later_intervals_and_leaves_past_invoices_alone") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let path = format!("/flavors/{flavor}");
    let (status, _) = admin_api
        .send(Method::PATCH, &path, Some(json!({"hourly_price_minor": 1000})))
        .await;
    assert_eq!(status, 200);

    let vm = launch(&api, "priced", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    action(&api, &vm, "force_off").await;
    wait_state(&api, &vm, "stopped", T).await;
    let (status, past) = api.get("/usage").await;
    assert_eq!(status, 200, "{past}");
    let past_lines = lines(&past);
    assert_eq!(past_lines.len(), 1, "{past}");
    assert_eq!(past_lines[0].2, 1000);
    assert!(past_lines[0].1 >= 2, "{past}");

    // The new price changes nothing already used.
    let (status, _) = admin_api
        .send(Method::PATCH, &path, Some(json!({"hourly_price_minor": 4000})))
        .await;
    assert_eq!(status, 200);
    let (_, again) = api.get("/usage").await;
    assert_eq!(lines(&again), past_lines);
    assert_eq!(again["total_hundredths"], past["total_hundredths"]);
    let (_, all) = admin_api.get("/admin/usage").await;
    assert_eq!(lines(&all), past_lines);

    // Intervals opened afterwards use it: the same VM, a second line at the new rate.
    action(&api, &vm, "start").await;
    wait_state(&api, &vm, "running", T).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    action(&api, &vm, "force_off").await;
    wait_state(&api, &vm, "stopped", T).await;
    let (_, later) = api.get("/usage").await;
    let later_lines = lines(&later);
    assert_eq!(later_lines.len(), 2, "{later}");
    assert_eq!(later_lines[0], past_lines[0], "the old line is untouched");
    assert_eq!(later_lines[1].2, 4000);
    // The total is the exact sum rounded once (hundredths of a minor unit).
    let exact: i64 = later_lines.iter().map(|l| l.1 * l.2).sum();
    assert_eq!(later["total_hundredths"], (exact + 18) / 36);
}
