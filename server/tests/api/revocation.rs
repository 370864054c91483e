//! Revocation reaches what is already open: disabling a user or tenant, resetting or changing a password and
//! revoking a token close that user's open event streams and consoles within a second (with the reason),
//! end their sessions, and revoke — not suspend — their API tokens where the credentials are in doubt.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app, spawn_app_with_vms, Api, Browser, Site};
use crate::vm_helpers::*;

/// The promise: what is open closes within a second.
const WITHIN: Duration = Duration::from_secs(1);

/// An open `GET /api/v1/events` stream.
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(req: reqwest::RequestBuilder) -> Self {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        Self {
            res,
            buf: String::new(),
        }
    }

    async fn by_token(site: &Site, token: &str) -> Self {
        Self::open(
            reqwest::Client::new()
                .get(format!("{}/api/v1/events", site.base))
                .bearer_auth(token),
        )
        .await
    }

    async fn by_session(browser: &Browser) -> Self {
        Self::open(browser.client.get(format!("{}/api/v1/events", browser.base))).await
    }

    /// The `revoked` event's message, after which the stream must end — all within `WITHIN`.
    async fn revoked(mut self) -> String {
        let ended = tokio::time::timeout(WITHIN, async {
            while let Some(chunk) = self.res.chunk().await.unwrap() {
                self.buf.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream is still open: {:?}", self.buf);
        let data = self
            .buf
            .split("event: revoked\n")
            .nth(1)
            .and_then(|rest| rest.strip_prefix("data: "))
            .and_then(|rest| rest.lines().next())
            .unwrap_or_else(|| panic!("no revoked event in {:?}", self.buf));
        let v: Value = serde_json::from_str(data).unwrap();
        v["message"].as_str().unwrap().to_string()
    }

    /// The stream stays open (nothing arrives and it does not end) for a moment.
    async fn still_open(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.res.chunk()).await;
        assert!(next.is_err(), "the stream ended or delivered: {next:?}");
    }
}

struct Member {
    id: String,
    tenant_id: String,
    browser: Browser,
    tokens: Vec<(String, String)>,
}

/// A member of `tenant` signed in, with two API tokens (id, secret).
async fn member(site: &Site, admin: &Browser, tenant: &str) -> Member {
    let user = format!("{tenant}-user");
    let (tenant_id, id) = site.tenant_with_member(admin, tenant, &user).await;
    let browser = site.signed_in(&user, &format!("{user}-password-1")).await;
    let mut tokens = vec![];
    for name in ["one", "two"] {
        let t = browser
            .call_ok("create_token", &[("name", name), ("expires_in_days", "")])
            .await;
        tokens.push((
            t["token"]["id"].as_str().unwrap().to_string(),
            t["secret"].as_str().unwrap().to_string(),
        ));
    }
    Member {
        id,
        tenant_id,
        browser,
        tokens,
    }
}

async fn status_of(site: &Site, token: &str) -> u16 {
    site.api(token).get("/whoami").await.0
}

async fn session_ok(m: &Member) -> bool {
    m.browser.call_ok("me", &[]).await != Value::Null
}

#[tokio::test]
async fn revoking_a_token_closes_only_what_it_opened_and_admins_can_revoke_any_users_tokens() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let m = member(&app, &admin, "acme").await;
    let (one, two) = (&m.tokens[0], &m.tokens[1]);
    let by_one = Events::by_token(&app, &one.1).await;
    let mut by_two = Events::by_token(&app, &two.1).await;
    let mut by_session = Events::by_session(&m.browser).await;

    m.browser.call_ok("revoke_token", &[("id", &one.0)]).await;
    assert!(by_one.revoked().await.contains("revoked"));
    by_two.still_open().await;
    by_session.still_open().await;

    // Admins list and revoke another user's tokens.
    let (status, list) = admin_api.get(&format!("/users/{}/tokens", m.id)).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], two.0.as_str());
    let path = format!("/users/{}/tokens/{}", m.id, two.0);
    assert_eq!(admin_api.send(Method::DELETE, &path, None).await.0, 204);
    by_two.revoked().await;
    assert_eq!(status_of(&app, &two.1).await, 401);
    by_session.still_open().await;
    // Members may not.
    let own = app.api(&m.browser.token("three").await);
    assert_eq!(own.get(&format!("/users/{}/tokens", m.id)).await.0, 403);
}

#[tokio::test]
async fn a_password_reset_closes_everything_ends_sessions_and_revokes_tokens() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let m = member(&app, &admin, "acme").await;
    let streams = [
        Events::by_token(&app, &m.tokens[0].1).await,
        Events::by_session(&m.browser).await,
    ];
    let (status, _) = app
        .api(&admin.token("admin").await)
        .send(
            Method::POST,
            &format!("/users/{}/password", m.id),
            Some(json!({"password": "a-brand-new-password"})),
        )
        .await;
    assert_eq!(status, 204);
    for s in streams {
        assert!(s.revoked().await.contains("password was reset"));
    }
    assert!(!session_ok(&m).await);
    for (_, secret) in &m.tokens {
        assert_eq!(status_of(&app, secret).await, 401, "tokens are revoked on reset");
    }
}

#[tokio::test]
async fn changing_ones_password_closes_open_streams_but_keeps_this_session() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let m = member(&app, &admin, "acme").await;
    let stream = Events::by_session(&m.browser).await;
    m.browser
        .call_ok(
            "change_password",
            &[
                ("current_password", "acme-user-password-1"),
                ("new_password", "another-password-2"),
                ("confirm_password", "another-password-2"),
            ],
        )
        .await;
    assert!(stream.revoked().await.contains("password was changed"));
    assert!(session_ok(&m).await);
}

#[tokio::test]
async fn disabling_a_user_closes_everything_and_re_enabling_revives_no_token() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let m = member(&app, &admin, "acme").await;
    let streams = [
        Events::by_token(&app, &m.tokens[0].1).await,
        Events::by_session(&m.browser).await,
    ];
    admin
        .call_ok("set_user_disabled", &[("id", &m.id), ("disabled", "true")])
        .await;
    for s in streams {
        assert!(s.revoked().await.contains("account was disabled"));
    }
    admin
        .call_ok("set_user_disabled", &[("id", &m.id), ("disabled", "false")])
        .await;
    assert!(!session_ok(&m).await, "the session stays ended");
    assert_eq!(status_of(&app, &m.tokens[1].1).await, 401, "tokens stay revoked");
}

#[tokio::test]
async fn disabling_a_tenant_closes_its_members_streams_and_re_enabling_revives_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let m = member(&app, &admin, "acme").await;
    let other = member(&app, &admin, "globex").await;
    let streams = [
        Events::by_token(&app, &m.tokens[0].1).await,
        Events::by_session(&m.browser).await,
    ];
    let mut others = Events::by_session(&other.browser).await;
    admin
        .call_ok(
            "set_tenant_disabled",
            &[("id", &m.tenant_id), ("disabled", "true")],
        )
        .await;
    for s in streams {
        assert!(s.revoked().await.contains("tenant was disabled"));
    }
    others.still_open().await;
    admin
        .call_ok(
            "set_tenant_disabled",
            &[("id", &m.tenant_id), ("disabled", "false")],
        )
        .await;
    assert!(!session_ok(&m).await, "the member's session stays ended");
    assert_eq!(status_of(&app, &m.tokens[1].1).await, 401);
    assert!(session_ok(&other).await);
}

/// A console WebSocket opened with a ticket from `api`.
async fn console(
    site: &Site,
    api: &Api,
    vm: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (status, t) = api
        .send(
            Method::POST,
            &format!("/vms/{vm}/console"),
            Some(json!({"kind": "serial"})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let url = format!(
        "{}{}",
        site.base.replacen("http", "ws", 1),
        t["ws_path"].as_str().unwrap()
    );
    let (ws, _) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap();
    ws
}

/// The close frame's code and reason, which must come within `WITHIN`.
async fn closed(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> (u16, String) {
    tokio::time::timeout(WITHIN, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed within a second")
}

#[tokio::test]
async fn open_consoles_close_with_the_reason_when_access_is_revoked() {
    if !kvm_or_skip("open_consoles_close_with_the_reason_when_access_is_revoked") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let admin = app.admin().await;
    let m = member(&app, &admin, "acme").await;
    let (one, two) = (app.api(&m.tokens[0].1), app.api(&m.tokens[1].1));
    let (image, flavor) = probe_and_micro(&one).await;
    let vm = launch(&one, "alpha", &image, &flavor).await;
    wait_state(&one, &vm, "running", GUEST_WAIT).await;
    let mut via_one = console(&app, &one, &vm).await;
    let mut via_two = console(&app, &two, &vm).await;

    // Revoking a token closes the console opened through it, not the other.
    m.browser.call_ok("revoke_token", &[("id", &m.tokens[0].0)]).await;
    let (code, reason) = closed(&mut via_one).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("revoked"), "{reason}");

    admin
        .call_ok("set_user_disabled", &[("id", &m.id), ("disabled", "true")])
        .await;
    let (code, reason) = closed(&mut via_two).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "Your account was disabled by an administrator.")
    );
}
