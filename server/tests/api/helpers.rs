//! `spawn_app()`: the real application on a free port with its own temporary data directory, and clients
//! that talk to it like a browser (cookies + same-origin header) or an API client (bearer token).

use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use serde_json::Value;
use server::config::Settings;
use server::startup::Application;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

pub struct TestApp {
    pub site: Site,
    pub data_dir: std::path::PathBuf,
    /// VMMs outlive the portal by design: kill this test's before its data directory goes.
    _reaper: super::vm_helpers::VmmReaper,
    pub _data: tempfile::TempDir,
    pub _guest: Option<tempfile::TempDir>,
}

/// A browser-like client: a cookie jar and the portal's own `Origin` on every request.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_tests(data.path().to_path_buf());
    // No guest images unless a test asks for them (`spawn_app_with_vms`).
    settings.guest_dir = data.path().join("no-guest-images");
    tweak(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped());
    let data_dir = std::fs::canonicalize(data.path()).expect("data dir");
    TestApp {
        site: Site { base },
        _reaper: super::vm_helpers::VmmReaper(data_dir.clone()),
        data_dir,
        _data: data,
        _guest: None,
    }
}

/// A portal that can run VMs: the real `vmm` binary and the probe guest registered as an image.
pub async fn spawn_app_with_vms() -> TestApp {
    let guest = super::vm_helpers::probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let mut app = spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(super::vm_helpers::vmm_binary());
    })
    .await;
    app._guest = Some(guest);
    app
}

/// A portal reached over HTTP: where the client helpers live.
pub struct Site {
    pub base: String,
}

impl std::ops::Deref for TestApp {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

impl TestApp {
    /// A handle on a portal running elsewhere (a separate process); nothing is cleaned up by it.
    pub fn attach(base: &str) -> Site {
        Site {
            base: base.to_string(),
        }
    }
}

impl Site {
    pub fn browser(&self) -> Browser {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(&self.base).expect("origin"));
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser {
            client,
            base: self.base.clone(),
        }
    }

    /// A browser signed in as `username`.
    pub async fn signed_in(&self, username: &str, password: &str) -> Browser {
        let browser = self.browser();
        let res = browser
            .call("login", &[("username", username), ("password", password)])
            .await;
        assert_eq!(
            res.status(),
            200,
            "login of {username} failed: {}",
            res.text().await.unwrap_or_default()
        );
        browser
    }

    pub async fn admin(&self) -> Browser {
        self.signed_in("admin", ADMIN_PASSWORD).await
    }

    /// Creates a tenant and a member in it (as admin); returns (tenant id, user id).
    pub async fn tenant_with_member(&self, admin: &Browser, tenant: &str, user: &str) -> (String, String) {
        let t = admin
            .call_ok(
                "create_tenant",
                &[("name", tenant), ("description", "test tenant")],
            )
            .await;
        let tenant_id = t["id"].as_str().expect("tenant id").to_string();
        let u = admin
            .call_ok(
                "create_user",
                &[
                    ("tenant_id", &tenant_id),
                    ("username", user),
                    ("display_name", user),
                    ("role", "member"),
                    ("password", &format!("{user}-password-1")),
                ],
            )
            .await;
        (tenant_id, u["id"].as_str().expect("user id").to_string())
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: self.base.clone(),
            token: token.to_string(),
        }
    }
}

impl Browser {
    /// Calls a server function (form-encoded, as the browser's forms do).
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}/api/fn/{endpoint}", self.base))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Calls a server function that must succeed and returns its JSON.
    pub async fn call_ok(&self, endpoint: &str, form: &[(&str, &str)]) -> Value {
        let res = self.call(endpoint, form).await;
        let status = res.status();
        let body = res.text().await.expect("body");
        assert_eq!(status, 200, "{endpoint} failed: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Creates an API token and returns its secret.
    pub async fn token(&self, name: &str) -> String {
        let t = self
            .call_ok("create_token", &[("name", name), ("expires_in_days", "")])
            .await;
        t["secret"].as_str().expect("secret").to_string()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }
}

/// An API client with a bearer token.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body.clone())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body.clone())).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}
