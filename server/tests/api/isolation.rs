//! Tenant isolation: a member of tenant B tries tenant A's user and token ids on every route that takes
//! an id, through server functions and the REST API, and gets 404 (not theirs) or 403 (admin only).

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn tenant_b_cannot_see_or_touch_tenant_a() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (tenant_a, alice_id) = app.tenant_with_member(&admin, "tenant-a", "alice").await;
    app.tenant_with_member(&admin, "tenant-b", "bob").await;

    let alice = app.signed_in("alice", "alice-password-1").await;
    let alice_secret = alice.token("alice-token").await;
    let alice_token_id = alice.call_ok("list_tokens", &[]).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let bob = app.signed_in("bob", "bob-password-1").await;
    let bob_api = app.api(&bob.token("bob-token").await);

    // Bob's listings show only his own things.
    let listed = bob.call_ok("list_tokens", &[]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&alice_token_id));
    let (_, listed) = bob_api.get("/tokens").await;
    assert!(!listed.to_string().contains(&alice_token_id));

    // Alice's token id: not found for Bob, by both routes; the token still works afterwards.
    assert_eq!(
        bob.call("revoke_token", &[("id", &alice_token_id)])
            .await
            .status(),
        404
    );
    assert_eq!(
        bob_api
            .send(Method::DELETE, &format!("/tokens/{alice_token_id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(app.api(&alice_secret).get("/whoami").await.0, 200);

    // Admin routes with tenant A's ids: forbidden for a member, by both routes; nothing changes.
    for (endpoint, form) in [
        ("list_tenants", vec![]),
        ("list_users", vec![]),
        (
            "set_user_disabled",
            vec![("id", alice_id.as_str()), ("disabled", "true")],
        ),
        (
            "reset_password",
            vec![("id", alice_id.as_str()), ("password", "hijacked-password")],
        ),
        (
            "set_tenant_disabled",
            vec![("id", tenant_a.as_str()), ("disabled", "true")],
        ),
        (
            "create_user",
            vec![
                ("tenant_id", tenant_a.as_str()),
                ("username", "mallory"),
                ("display_name", ""),
                ("role", "admin"),
                ("password", "mallory-password"),
            ],
        ),
        ("create_tenant", vec![("name", "bobs-own"), ("description", "")]),
    ] {
        assert_eq!(bob.call(endpoint, &form).await.status(), 403, "{endpoint}");
    }
    let rest: [(Method, String, Option<serde_json::Value>); 7] = [
        (Method::GET, "/tenants".into(), None),
        (Method::GET, "/users".into(), None),
        (
            Method::PATCH,
            format!("/users/{alice_id}"),
            Some(json!({"disabled": true})),
        ),
        (
            Method::POST,
            format!("/users/{alice_id}/password"),
            Some(json!({"password": "hijacked-password"})),
        ),
        (
            Method::PATCH,
            format!("/tenants/{tenant_a}"),
            Some(json!({"disabled": true})),
        ),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"tenant_id": tenant_a, "username": "mallory",
            "display_name": "", "role": "admin", "password": "mallory-password"})),
        ),
        (Method::POST, "/tenants".into(), Some(json!({"name": "bobs-own"}))),
    ];
    for (method, path, body) in rest {
        let (status, err) = bob_api.send(method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(err["error"]["kind"], "forbidden");
    }
    let alice_again = app.signed_in("alice", "alice-password-1").await;
    assert_eq!(alice_again.call_ok("me", &[]).await["tenant_name"], "tenant-a");
    assert_eq!(
        admin.call_ok("list_users", &[]).await.as_array().unwrap().len(),
        3
    );
}

/// Tenant B's member tries tenant A's VM on every VM route (server functions and REST): always 404, and
/// A's VM keeps running untouched. Also a private image of tenant A is invisible and unusable for B.
#[tokio::test]
async fn tenant_b_cannot_see_or_touch_tenant_a_vms() {
    use crate::vm_helpers::{kvm_or_skip, launch, probe_and_micro, wait_state};
    if !kvm_or_skip("tenant_b_cannot_see_or_touch_tenant_a_vms") {
        return;
    }
    let app = crate::helpers::spawn_app_with_vms().await;
    let admin = app.admin().await;
    app.tenant_with_member(&admin, "tenant-a", "alice").await;
    app.tenant_with_member(&admin, "tenant-b", "bob").await;
    let alice = app.signed_in("alice", "alice-password-1").await;
    let alice_api = app.api(&alice.token("alice-token").await);
    let bob = app.signed_in("bob", "bob-password-1").await;
    let bob_api = app.api(&bob.token("bob-token").await);

    let (image, flavor) = probe_and_micro(&alice_api).await;
    let vm = launch(&alice_api, "alices-vm", &image, &flavor).await;
    wait_state(&alice_api, &vm, "running", crate::vm_helpers::GUEST_WAIT).await;

    // Listings: Bob sees nothing of Alice's.
    assert_eq!(bob_api.get("/vms").await.1, json!([]));
    assert_eq!(bob.call_ok("list_vms", &[]).await, json!([]));

    // Every id-taking route, both ways.
    assert_eq!(bob_api.get(&format!("/vms/{vm}")).await.0, 404);
    assert_eq!(bob.call("get_vm", &[("id", &vm)]).await.status(), 404);
    for action in ["start", "stop", "reboot", "force_off", "delete"] {
        let (status, err) = bob_api
            .send(
                Method::POST,
                &format!("/vms/{vm}/actions"),
                Some(json!({ "action": action })),
            )
            .await;
        assert_eq!(status, 404, "{action}: {err}");
        assert_eq!(
            bob.call("act_on_vm", &[("id", &vm), ("action", action)])
                .await
                .status(),
            404,
            "{action}"
        );
    }
    assert_eq!(
        bob_api.send(Method::DELETE, &format!("/vms/{vm}"), None).await.0,
        404
    );
    // A launch cannot reuse A's name space either: Bob's own VM of the same name is fine and separate.
    let bobs = launch(&bob_api, "alices-vm", &image, &flavor).await;
    assert_ne!(bobs, vm);

    // Alice's VM is untouched.
    let (_, v) = alice_api.get(&format!("/vms/{vm}")).await;
    assert_eq!(v["state"], "running");
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] != "bob"));
}
