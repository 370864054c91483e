//! The REST API: bearer tokens, JSON errors, bad bodies.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn whoami_answers_who_and_which_tenant() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.tenant_with_member(&admin, "acme", "alice").await;
    let alice = app.signed_in("alice", "alice-password-1").await;
    let api = app.api(&alice.token("ci").await);
    let (status, me) = api.get("/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["tenant_name"], "acme");
}

#[tokio::test]
async fn wrong_missing_and_revoked_tokens_get_401_json() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let secret = admin.token("ci").await;
    let tokens = admin.call_ok("list_tokens", &[]).await;
    assert_eq!(tokens[0]["name"], "ci");
    assert!(
        !tokens.to_string().contains(&secret),
        "listing must never show the secret"
    );

    for bad in ["", "nonsense", &format!("{}x", &secret[..secret.len() - 1])] {
        let (status, body) = app.api(bad).get("/whoami").await;
        assert_eq!(status, 401, "token {bad:?}");
        assert_eq!(body["error"]["kind"], "unauthenticated");
    }
    let res = reqwest::get(format!("{}/api/v1/whoami", app.base)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    assert_eq!(app.api(&secret).get("/whoami").await.0, 200);
    let id = tokens[0]["id"].as_str().unwrap();
    admin.call_ok("revoke_token", &[("id", id)]).await;
    let (status, body) = app.api(&secret).get("/whoami").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "Please sign in.");
}

#[tokio::test]
async fn tokens_are_managed_over_the_api_and_shown_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.api(&admin.token("bootstrap").await);
    let (status, created) = api
        .send(
            Method::POST,
            "/tokens",
            Some(json!({"name": "deploy", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(status, 201);
    let secret = created["secret"].as_str().unwrap();
    assert!(created["token"]["expires_at"].is_string());
    assert_eq!(app.api(secret).get("/whoami").await.0, 200);
    let (_, list) = api.get("/tokens").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(secret));
    let id = created["token"]["id"].as_str().unwrap();
    assert_eq!(
        api.send(Method::DELETE, &format!("/tokens/{id}"), None).await.0,
        204
    );
    assert_eq!(
        api.send(Method::DELETE, &format!("/tokens/{id}"), None).await.0,
        404
    );
    assert_eq!(app.api(secret).get("/whoami").await.0, 401);
}

#[tokio::test]
async fn bad_bodies_get_clear_json_errors_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.api(&admin.token("t").await);
    let post = |body: &'static str| {
        api.client
            .post(format!("{}/api/v1/tenants", app.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(body)
    };
    for body in [
        "{",
        "[]",
        r#"{"name": 5}"#,
        r#"{"name": "ok-name", "extra": 1}"#,
        r#"{"name": ""}"#,
    ] {
        let res = post(body).send().await.unwrap();
        assert_eq!(res.status(), 422, "body {body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let res = api
        .client
        .post(format!("{}/api/v1/tenants", app.base))
        .bearer_auth(&api.token)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(1_000_000));
    let res = api
        .client
        .post(format!("{}/api/v1/tenants", app.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let (_, tenants) = api.get("/tenants").await;
    assert_eq!(tenants.as_array().unwrap().len(), 1, "nothing was created");
    assert_eq!(api.get("/no-such-route").await.0, 404);
}

#[tokio::test]
async fn admins_manage_tenants_and_users_over_the_api() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.api(&admin.token("t").await);
    let (status, tenant) = api
        .send(
            Method::POST,
            "/tenants",
            Some(json!({"name": "beta", "description": "B"})),
        )
        .await;
    assert_eq!(status, 201);
    let tid = tenant["id"].as_str().unwrap();
    let (status, user) = api
        .send(
            Method::POST,
            "/users",
            Some(json!({"tenant_id": tid, "username": "bob",
        "display_name": "Bob", "role": "member", "password": "bob-password-1"})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let uid = user["id"].as_str().unwrap();
    let (status, user) = api
        .send(
            Method::PATCH,
            &format!("/users/{uid}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((status, user["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = api
        .send(
            Method::POST,
            &format!("/users/{uid}/password"),
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, t) = api
        .send(
            Method::PATCH,
            &format!("/tenants/{tid}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((status, t["disabled"].as_bool()), (200, Some(true)));
}
