//! VM lists that filter and sort in SQL (a tenant's `GET /vms`, the admin's `GET /admin/vms` of every
//! tenant), renaming (`PATCH /vms/{id}`, told to the event stream, audited), and the admin's actions on any
//! tenant's VM. Bad parameters are 422s naming the parameter; another tenant's VM is "not found".

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::Api;
use crate::key_pairs::portal_without_guests;
use crate::vm_helpers::{launch, member_api, probe_and_micro};

fn names(list: &Value) -> Vec<String> {
    let rows = list.get("items").unwrap_or(list);
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the VM has left `creating`/`starting` (here its VMM cannot start, so it ends up stopped
/// or crashed) so that no state change races what a test does next.
async fn settled(api: &Api, vm: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = api.get(&format!("/vms/{vm}")).await;
        let state = body["state"].as_str().unwrap_or_default().to_string();
        if !["creating", "starting", ""].contains(&state.as_str()) {
            return state;
        }
        assert!(Instant::now() < deadline, "VM {vm} never settled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_instances_list_filters_sorts_and_refuses_bad_parameters() {
    let app = portal_without_guests().await;
    let alice = member_api(&app, "acme").await;
    let bob = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&alice).await;
    let web1 = launch(&alice, "web-1", &image, &flavor).await;
    let _db = launch(&alice, "db", &image, &flavor).await;
    let _web2 = launch(&alice, "web-2", &image, &flavor).await;
    launch(&bob, "web-9", &image, &flavor).await;

    let (status, all) = alice.get("/vms").await;
    assert_eq!(status, 200);
    assert_eq!(names(&all), ["web-2", "db", "web-1"], "newest first by default");
    assert_eq!(
        names(&alice.get("/vms?sort=name").await.1),
        ["db", "web-1", "web-2"]
    );
    assert_eq!(
        names(&alice.get("/vms?sort=-name").await.1),
        ["web-2", "web-1", "db"]
    );
    assert_eq!(
        names(&alice.get("/vms?q=WEB&sort=name").await.1),
        ["web-1", "web-2"]
    );
    // LIKE wildcards are literal; an id prefix finds the VM.
    assert_eq!(names(&alice.get("/vms?q=web_").await.1), Vec::<String>::new());
    assert_eq!(
        names(&alice.get(&format!("/vms?q={}", &web1[..8])).await.1),
        ["web-1"]
    );
    let (_, probe_images) = alice.get("/images").await;
    let image_name = probe_images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == image.as_str())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        alice
            .get(&format!("/vms?image={image_name}"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(alice.get("/vms?image=nothing-like-it").await.1, json!([]));
    let state = settled(&alice, &web1).await;
    for vm in [&web1] {
        let (_, filtered) = alice.get(&format!("/vms?state={state}")).await;
        assert!(
            filtered
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["state"] == state.as_str()),
            "{filtered}"
        );
        assert!(
            names(&filtered).contains(&"web-1".to_string()),
            "{vm}: {filtered}"
        );
    }
    assert_eq!(alice.get("/vms?state=running&q=web-1").await.1, json!([]));

    // Bob's VM never shows in Alice's list, whatever the filter.
    assert!(!alice.get("/vms?q=web-9").await.1.to_string().contains("web-9"));

    for (query, field) in [
        ("sort=password", "sort"),
        ("sort=tenant", "sort"),
        ("sort=name;drop", "sort"),
        ("state=sleeping", "state"),
        ("state=deleted", "state"),
        ("tenant=globex", "tenant"),
        ("limit=0", "limit"),
        ("limit=9999", "limit"),
        ("limit=ten", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, err) = alice.get(&format!("/vms?{query}")).await;
        assert_eq!(status, 422, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}: {err}");
    }
    assert_eq!(
        names(&alice.get("/vms?sort=name&limit=2&offset=1").await.1),
        ["web-1", "web-2"]
    );
}

#[tokio::test]
async fn renaming_is_validated_private_audited_and_streamed() {
    let app = portal_without_guests().await;
    let alice = member_api(&app, "acme").await;
    let bob = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&alice).await;
    let web = launch(&alice, "web", &image, &flavor).await;
    launch(&alice, "db", &image, &flavor).await;
    settled(&alice, &web).await;

    // Listen to the event stream as a browser would, then rename.
    let events = reqwest::Client::new()
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let (status, vm) = alice
        .send(
            Method::PATCH,
            &format!("/vms/{web}"),
            Some(json!({"name": " API-1 "})),
        )
        .await;
    assert_eq!(status, 200, "{vm}");
    assert_eq!(vm["name"], "api-1");
    let mut events = events;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains(&web) {
        assert!(Instant::now() < deadline, "no event for the rename: {seen}");
        let chunk = tokio::time::timeout(Duration::from_secs(30), events.chunk())
            .await
            .expect("an event")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: vm"), "{seen}");
    assert_eq!(alice.get(&format!("/vms/{web}")).await.1["name"], "api-1");

    for (name, why) in [
        ("db", "taken"),
        ("Bad_Name", "bad"),
        ("", "empty"),
        (&"a".repeat(64), "long"),
    ] {
        let (status, err) = alice
            .send(
                Method::PATCH,
                &format!("/vms/{web}"),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 422, "{why}: {err}");
        assert_eq!(err["error"]["field"], "name", "{why}: {err}");
    }
    let (status, _) = alice
        .send(
            Method::PATCH,
            &format!("/vms/{web}"),
            Some(json!({"name": "x", "state": "running"})),
        )
        .await;
    assert_eq!(status, 422, "unknown fields are refused");

    // Bob cannot rename (or learn about) Alice's VM, by REST or server function; nothing changes.
    let (status, _) = bob
        .send(
            Method::PATCH,
            &format!("/vms/{web}"),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 404);
    let admin = app.admin().await;
    app.tenant_with_member(&admin, "initech", "carol").await;
    let carol = app.signed_in("carol", "carol-password-1").await;
    assert_eq!(
        carol
            .call("rename_vm", &[("id", &web), ("name", "mine")])
            .await
            .status(),
        404
    );
    assert_eq!(alice.get(&format!("/vms/{web}")).await.1["name"], "api-1");

    let (_, log) = app.api(&admin.token("audit").await).get("/audit").await;
    let renames: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "vm_rename")
        .collect();
    assert_eq!(renames.len(), 1, "{log}");
    assert_eq!(renames[0]["target"], format!("vm:{web}"));
    assert!(renames[0]["detail"].as_str().unwrap().contains("new_name=api-1"));
}

#[tokio::test]
async fn the_admin_sees_every_tenants_vms_filtered_and_acts_on_them() {
    let app = portal_without_guests().await;
    let alice = member_api(&app, "acme").await;
    let bob = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&alice).await;
    let a1 = launch(&alice, "a-one", &image, &flavor).await;
    launch(&alice, "a-two", &image, &flavor).await;
    let b1 = launch(&bob, "b-one", &image, &flavor).await;
    let admin = app.api(&app.admin().await.token("admin").await);

    let (status, page) = admin.get("/admin/vms?sort=name").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page), ["a-one", "a-two", "b-one"]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["tenant_name"], "acme");
    let host = page["items"][0]["host"].as_str().unwrap().to_string();
    assert!(!host.is_empty());

    assert_eq!(names(&admin.get("/admin/vms?tenant=globex").await.1), ["b-one"]);
    let acme_id = page["items"][0]["tenant_id"].as_str().unwrap();
    assert_eq!(
        names(
            &admin
                .get(&format!("/admin/vms?tenant={acme_id}&sort=-name"))
                .await
                .1
        ),
        ["a-two", "a-one"]
    );
    assert_eq!(
        names(&admin.get("/admin/vms?tenant=nobody").await.1),
        Vec::<String>::new()
    );
    assert_eq!(names(&admin.get("/admin/vms?sort=-tenant").await.1)[0], "b-one");
    assert_eq!(admin.get(&format!("/admin/vms?host={host}")).await.1["total"], 3);
    assert_eq!(admin.get("/admin/vms?host=elsewhere").await.1["total"], 0);
    let (_, first) = admin.get("/admin/vms?sort=name&limit=2").await;
    assert_eq!((names(&first).len(), first["total"].as_u64()), (2, Some(3)));
    let (_, second) = admin.get("/admin/vms?sort=name&limit=2&offset=2").await;
    assert_eq!(names(&second), ["b-one"]);
    let state = settled(&alice, &a1).await;
    let (_, by_state) = admin.get(&format!("/admin/vms?state={state}&tenant=acme")).await;
    assert!(names(&by_state).contains(&"a-one".to_string()), "{by_state}");
    let (status, err) = admin.get("/admin/vms?sort=owner").await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("sort")));

    // Members may not look or act.
    assert_eq!(alice.get("/admin/vms").await.0, 403);
    let (status, _) = alice
        .post(&format!("/admin/vms/{b1}/actions"), &json!({"action": "delete"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(bob.get(&format!("/vms/{b1}")).await.0, 200);

    // The admin deletes Bob's VM: it goes, and the audit log says who did it.
    settled(&bob, &b1).await;
    let (status, vm) = admin
        .post(&format!("/admin/vms/{b1}/actions"), &json!({"action": "delete"}))
        .await;
    assert_eq!(status, 202, "{vm}");
    let (status, err) = admin
        .post(&format!("/admin/vms/{b1}/actions"), &json!({"action": "fly"}))
        .await;
    assert_eq!(status, 422, "{err}");
    let (_, log) = admin.get("/audit").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "admin_vm_delete"
                && e["target"] == format!("vm:{b1}")
                && e["actor"] == "admin"),
        "{log}"
    );
}

#[tokio::test]
async fn the_admin_user_and_tenant_lists_filter_and_sort_by_the_same_parameters() {
    let app = crate::helpers::spawn_app().await;
    let browser = app.admin().await;
    app.tenant_with_member(&browser, "acme", "alice").await;
    app.tenant_with_member(&browser, "globex", "bob").await;
    let admin = app.api(&browser.token("admin").await);

    let usernames = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        usernames(&admin.get("/users?role=member&sort=-username").await.1),
        ["bob", "alice"]
    );
    assert_eq!(usernames(&admin.get("/users?tenant=globex").await.1), ["bob"]);
    assert_eq!(usernames(&admin.get("/users?q=ALI").await.1), ["alice"]);
    let (_, tenants) = admin.get("/tenants?q=glo").await;
    assert_eq!(tenants.as_array().unwrap().len(), 1);
    assert_eq!(tenants[0]["name"], "globex");
    for (path, field) in [
        ("/users?sort=password", "sort"),
        ("/users?role=root", "role"),
        ("/tenants?status=gone", "status"),
        ("/tenants?sort=-secret", "sort"),
    ] {
        let (status, err) = admin.get(path).await;
        assert_eq!(status, 422, "{path}: {err}");
        assert_eq!(err["error"]["field"], field, "{path}: {err}");
    }
}
