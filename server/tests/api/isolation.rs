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
