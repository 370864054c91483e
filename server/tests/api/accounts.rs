//! Signing in and out, sessions, throttling, CSRF, first-start admin and account administration.

use crate::helpers::{spawn_app, spawn_app_with, ADMIN_PASSWORD};

#[tokio::test]
async fn health_check_reports_the_database() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn first_start_creates_an_admin_who_can_sign_in_and_out() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let me = admin.call_ok("me", &[]).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["tenant_name"], "admin");

    admin.call_ok("logout", &[]).await;
    assert_eq!(admin.call_ok("me", &[]).await, serde_json::Value::Null);
    assert_eq!(admin.call("list_tenants", &[]).await.status(), 401);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_gets_the_same_clear_error() {
    let app = spawn_app().await;
    let browser = app.browser();
    for (user, pass) in [("admin", "not-the-password"), ("nobody", "whatever-password")] {
        let res = browser
            .call("login", &[("username", user), ("password", pass)])
            .await;
        assert_eq!(res.status(), 422);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["message"], "Invalid username or password.");
    }
    let res = browser.call("login", &[("username", ""), ("password", "")]).await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_and_address_with_a_clear_message() {
    let app = spawn_app_with(|s| s.login.per_account_per_address_per_minute = 3).await;
    let browser = app.browser();
    for _ in 0..3 {
        let res = browser
            .call("login", &[("username", "admin"), ("password", "wrong-password")])
            .await;
        assert_eq!(res.status(), 422);
    }
    let res = browser
        .call("login", &[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many sign-in attempts"),
        "{body}"
    );
}

#[tokio::test]
async fn sign_in_is_throttled_per_client_address() {
    let app = spawn_app_with(|s| s.login.per_address_per_minute = 2).await;
    let browser = app.browser();
    for user in ["u1-nobody", "u2-nobody"] {
        assert_eq!(
            browser
                .call("login", &[("username", user), ("password", "x-password")])
                .await
                .status(),
            422
        );
    }
    let res = browser
        .call("login", &[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_rotated_at_sign_in() {
    let app = spawn_app().await;
    let browser = app.browser();
    // An anonymous visit that stores nothing sets no cookie; sign-in sets a fresh one.
    let res = browser
        .call("login", &[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("portal_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let first = cookie.split(';').next().unwrap().to_string();
    let res = browser
        .call("login", &[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    let second = res
        .headers()
        .get("set-cookie")
        .expect("rotated cookie")
        .to_str()
        .unwrap();
    assert_ne!(
        first,
        second.split(';').next().unwrap(),
        "session id must change at sign-in"
    );
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = admin
        .client
        .post(format!("{}/api/fn/create_tenant", app.base))
        .header("origin", "http://evil.example")
        .form(&[("name", "evil"), ("description", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let tenants = admin.call_ok("list_tenants", &[]).await;
    assert!(tenants.as_array().unwrap().iter().all(|t| t["name"] != "evil"));
}

#[tokio::test]
async fn admin_manages_tenants_and_users_and_a_member_signs_in() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (tenant_id, user_id) = app.tenant_with_member(&admin, "acme", "alice").await;
    let tenants = admin.call_ok("list_tenants", &[]).await;
    let acme = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tenant_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(acme["user_count"], 1);

    let alice = app.signed_in("alice", "alice-password-1").await;
    let me = alice.call_ok("me", &[]).await;
    assert_eq!(me["tenant_name"], "acme");
    assert_eq!(me["role"], "member");

    // Disabling ends her session at once and refuses new sign-ins.
    admin
        .call_ok("set_user_disabled", &[("id", &user_id), ("disabled", "true")])
        .await;
    assert_eq!(alice.call_ok("me", &[]).await, serde_json::Value::Null);
    let res = app
        .browser()
        .call(
            "login",
            &[("username", "alice"), ("password", "alice-password-1")],
        )
        .await;
    assert_eq!(res.status(), 422);
    admin
        .call_ok("set_user_disabled", &[("id", &user_id), ("disabled", "false")])
        .await;
    app.signed_in("alice", "alice-password-1").await;

    // A disabled tenant locks out its users.
    admin
        .call_ok("set_tenant_disabled", &[("id", &tenant_id), ("disabled", "true")])
        .await;
    let res = app
        .browser()
        .call(
            "login",
            &[("username", "alice"), ("password", "alice-password-1")],
        )
        .await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn duplicate_and_invalid_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.tenant_with_member(&admin, "acme", "alice").await;
    let res = admin
        .call("create_tenant", &[("name", "ACME"), ("description", "")])
        .await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "A tenant named acme already exists.");

    let huge = "x".repeat(10_000);
    for (name, expect_field) in [("", "name"), ("no spaces", "name"), (huge.as_str(), "name")] {
        let res = admin
            .call("create_tenant", &[("name", name), ("description", "")])
            .await;
        assert_eq!(res.status(), 422);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["field"], expect_field);
    }
    let res = admin
        .call(
            "create_user",
            &[
                ("tenant_id", "nope"),
                ("username", "bob"),
                ("display_name", ""),
                ("role", "member"),
                ("password", "long-enough-password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = admin
        .call(
            "create_user",
            &[
                ("tenant_id", "x"),
                ("username", "bob"),
                ("display_name", ""),
                ("role", "emperor"),
                ("password", "long-enough-password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = admin
        .call(
            "set_user_disabled",
            &[
                ("id", "00000000-0000-0000-0000-000000000000"),
                ("disabled", "true"),
            ],
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        admin.call_ok("list_tenants", &[]).await.as_array().unwrap().len(),
        2
    );
    assert_eq!(
        admin.call_ok("list_users", &[]).await.as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn an_admin_cannot_lock_out_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let me = admin.call_ok("me", &[]).await;
    let res = admin
        .call(
            "set_user_disabled",
            &[("id", me["user_id"].as_str().unwrap()), ("disabled", "true")],
        )
        .await;
    assert_eq!(res.status(), 409);
    let res = admin
        .call(
            "set_tenant_disabled",
            &[("id", me["tenant_id"].as_str().unwrap()), ("disabled", "true")],
        )
        .await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn changing_a_password_ends_other_sessions_and_reset_works() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, user_id) = app.tenant_with_member(&admin, "acme", "alice").await;
    let laptop = app.signed_in("alice", "alice-password-1").await;
    let phone = app.signed_in("alice", "alice-password-1").await;

    let res = laptop
        .call(
            "change_password",
            &[
                ("current_password", "wrong-one-here"),
                ("new_password", "new-password-22"),
                ("confirm_password", "new-password-22"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    laptop
        .call_ok(
            "change_password",
            &[
                ("current_password", "alice-password-1"),
                ("new_password", "new-password-22"),
                ("confirm_password", "new-password-22"),
            ],
        )
        .await;
    assert_eq!(laptop.call_ok("me", &[]).await["username"], "alice");
    assert_eq!(phone.call_ok("me", &[]).await, serde_json::Value::Null);
    app.signed_in("alice", "new-password-22").await;

    admin
        .call_ok(
            "reset_password",
            &[("id", &user_id), ("password", "reset-password-33")],
        )
        .await;
    assert_eq!(laptop.call_ok("me", &[]).await, serde_json::Value::Null);
    app.signed_in("alice", "reset-password-33").await;
}

#[tokio::test]
async fn the_sign_in_page_renders_on_the_server() {
    let app = spawn_app().await;
    let res = app.browser().get("/login").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"username\""), "{html}");
    assert!(html.contains("/pkg/portal.js"), "hydration script missing");
}

/// A portal behind a reverse proxy on loopback that says who the client is in `X-Forwarded-For`.
async fn behind_proxy(tweak: impl FnOnce(&mut server::config::Settings)) -> crate::helpers::TestApp {
    spawn_app_with(|s| {
        s.client_ip_header = Some("X-Forwarded-For".into());
        tweak(s);
    })
    .await
}

async fn login_from(app: &crate::helpers::TestApp, ip: &str, password: &str) -> reqwest::Response {
    app.browser()
        .client
        .post(format!("{}/api/fn/login", app.base))
        .header("x-forwarded-for", ip)
        .form(&[("username", "admin"), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn strangers_guessing_cannot_lock_the_owner_out_they_only_slow_the_account() {
    let app = behind_proxy(|s| {
        s.login.per_account_per_address_per_minute = 3;
        s.login.per_account_per_minute = 2;
        s.login.max_delay_secs = 1;
    })
    .await;
    // One address: refused after its allowance, with Retry-After.
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "203.0.113.1", "wrong-password").await.status(),
            422
        );
    }
    let res = login_from(&app, "203.0.113.1", ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Many addresses: never refused, only slowed.
    for i in 2..8 {
        let res = login_from(&app, &format!("203.0.113.{i}"), "wrong-password").await;
        assert_eq!(res.status(), 422, "a stranger's guess from a fresh address");
    }
    // The owner, from their own address, with the right password: in.
    let res = login_from(&app, "198.51.100.20", ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn the_forwarded_address_is_ignored_unless_configured() {
    let app = spawn_app_with(|s| s.login.per_account_per_address_per_minute = 2).await;
    for i in 1..=2 {
        login_from(&app, &format!("203.0.113.{i}"), "wrong-password").await;
    }
    // Without a configured header, a client cannot pick a fresh address for itself.
    assert_eq!(
        login_from(&app, "203.0.113.3", ADMIN_PASSWORD).await.status(),
        429
    );
}

#[tokio::test]
async fn password_changes_are_throttled_too() {
    let app = spawn_app_with(|s| s.login.per_account_per_address_per_minute = 3).await;
    let admin = app.admin().await; // one attempt
    for _ in 0..2 {
        let res = admin
            .call(
                "change_password",
                &[
                    ("current_password", "wrong-password"),
                    ("new_password", "a-new-password-1"),
                    ("confirm_password", "a-new-password-1"),
                ],
            )
            .await;
        assert_eq!(res.status(), 422);
    }
    let res = admin
        .call(
            "change_password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "a-new-password-1"),
                ("confirm_password", "a-new-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

/// The stored expiry of the only session (unix seconds) and a pool on the portal's database.
async fn session_expiry(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT CAST(strftime('%s', expiry_date) AS INTEGER) FROM tower_sessions")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn portal_db(app: &crate::helpers::TestApp) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", app.data_dir.join("portal.db").display()))
        .await
        .unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn requests_within_the_refresh_interval_write_no_session() {
    let app = spawn_app().await; // refresh every 60 s
    let admin = app.admin().await;
    let pool = portal_db(&app).await;
    let signed_in = session_expiry(&pool).await;
    for _ in 0..3 {
        let res = admin.call("me", &[]).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("set-cookie").is_none(), "no session write");
        let page = admin
            .client
            .get(format!("{}/instances", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().get("set-cookie").is_none(), "no session write");
    }
    assert_eq!(session_expiry(&pool).await, signed_in);
}

#[tokio::test]
async fn an_active_session_outlives_its_sign_in_expiry_and_an_idle_one_ends() {
    let app = spawn_app_with(|s| s.session_refresh_secs = 1).await; // idle: 60 minutes
    let admin = app.admin().await;
    let pool = portal_db(&app).await;
    // As if signed in 59 minutes 50 s ago and used since: ten seconds left at the sign-in expiry.
    sqlx::query("UPDATE tower_sessions SET expiry_date = strftime('%Y-%m-%dT%H:%M:%SZ', ?, 'unixepoch')")
        .bind(now() + 10)
        .execute(&pool)
        .await
        .unwrap();
    // The refresh interval (1 s) since sign-in passes, then a request pushes the expiry an hour ahead.
    let signed_in = now();
    while now() < signed_in + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let before = now();
    let res = admin.call("me", &[]).await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("a fresh cookie")
        .to_str()
        .unwrap();
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    let pushed = session_expiry(&pool).await;
    assert!(
        (before + 3600..=now() + 3600).contains(&pushed),
        "idle expiry is an hour after the last request, never more: {pushed} vs {before}"
    );
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["username"],
        "admin"
    );

    // Left idle past its expiry: refused, and nothing brings it back.
    sqlx::query("UPDATE tower_sessions SET expiry_date = strftime('%Y-%m-%dT%H:%M:%SZ', ?, 'unixepoch')")
        .bind(now() - 1)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(admin.call_ok("me", &[]).await, serde_json::Value::Null);
    assert_eq!(admin.call("list_tenants", &[]).await.status(), 401);
    let page = admin
        .client
        .get(format!("{}/instances", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        !page.text().await.unwrap().contains("vms-table"),
        "the dashboard is not shown"
    );
}
