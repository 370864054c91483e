//! Every malformed, oversized or out-of-range input gets a 4xx in the JSON error envelope, with the field
//! and a sentence a person can act on, and no ERROR log line: server functions, REST, multipart uploads and
//! the console WebSocket, one table each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use reqwest::Method;
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::{spawn_app, spawn_app_with};

/// Counts ERROR events of everything running on this test's thread (the app runs on the test's
/// current-thread runtime).
struct ErrorCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn count_errors() -> (Arc<AtomicUsize>, tracing::subscriber::DefaultGuard) {
    let count = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(ErrorCounter(count.clone()));
    (count, tracing::subscriber::set_default(subscriber))
}

/// Checks an answer: its status, the envelope, the field (if any) and a message.
async fn check(case: &str, res: reqwest::Response, status: u16, field: Option<&str>) -> Value {
    let got = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{case}: {text}");
    assert!(
        ctype.starts_with("application/json"),
        "{case}: content-type {ctype:?}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{case}: not JSON: {text}"));
    let err = &body["error"];
    assert!(err["kind"].is_string(), "{case}: {body}");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.len() > 10 && message.ends_with('.'),
        "{case}: message {message:?}"
    );
    if let Some(field) = field {
        assert_eq!(err["field"], field, "{case}: {body}");
    }
    body
}

/// (case, who calls, server function, form, status, field).
type FnCase<'a> = (
    &'a str,
    &'a crate::helpers::Browser,
    &'a str,
    Vec<(&'a str, &'a str)>,
    u16,
    Option<&'a str>,
);

#[tokio::test]
async fn server_functions_answer_bad_input_with_4xx_json() {
    let (errors, _guard) = count_errors();
    let app = spawn_app().await;
    let admin = app.admin().await;
    let anon = app.browser();
    let tenant = admin
        .call_ok("create_tenant", &[("name", "acme"), ("description", "")])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let huge = "x".repeat(10 * 1024 * 1024);
    let over = "y".repeat(300 * 1024);
    let quota = |field: &'static str, value: &'static str| {
        let mut form = vec![
            ("tenant_id", tenant.as_str()),
            ("instances", "1"),
            ("vcpus", "1"),
            ("memory_mib", "128"),
            ("disk_gib", "1"),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        form
    };
    let flavor = |vcpus: &'static str| {
        vec![
            ("name", "z1.test"),
            ("vcpus", vcpus),
            ("memory_mib", "128"),
            ("disk_gib", "1"),
            ("hourly_price_minor", "1"),
        ]
    };
    let table: Vec<FnCase> = vec![
        (
            "login without password",
            &anon,
            "login",
            vec![("username", "admin")],
            422,
            Some("password"),
        ),
        ("get_vm without id", &admin, "get_vm", vec![], 422, Some("id")),
        (
            "quota instances=abc",
            &admin,
            "set_quota",
            quota("instances", "abc"),
            422,
            Some("instances"),
        ),
        (
            "quota vcpus=1e99",
            &admin,
            "set_quota",
            quota("vcpus", "1e99"),
            422,
            Some("vcpus"),
        ),
        (
            "quota disk=-5",
            &admin,
            "set_quota",
            quota("disk_gib", "-5"),
            422,
            Some("disk_gib"),
        ),
        (
            "quota floating_ips=-1",
            &admin,
            "set_quota",
            quota("floating_ips", "-1"),
            422,
            Some("floating_ips"),
        ),
        (
            "quota networks=abc",
            &admin,
            "set_quota",
            quota("networks", "abc"),
            422,
            Some("networks"),
        ),
        (
            "flavor vcpus=-1",
            &admin,
            "create_flavor",
            flavor("-1"),
            422,
            Some("vcpus"),
        ),
        (
            "flavor vcpus=abc",
            &admin,
            "create_flavor",
            flavor("abc"),
            422,
            Some("vcpus"),
        ),
        (
            "flavor disabled=maybe",
            &admin,
            "set_flavor_disabled",
            vec![("id", "x"), ("disabled", "maybe")],
            422,
            Some("disabled"),
        ),
        (
            "tenant disabled=maybe",
            &admin,
            "set_tenant_disabled",
            vec![("id", tenant.as_str()), ("disabled", "maybe")],
            422,
            Some("disabled"),
        ),
        (
            "10 MB user_data",
            &admin,
            "launch_vm",
            vec![
                ("name", "a"),
                ("image_id", "x"),
                ("flavor_id", "y"),
                ("ssh_key", ""),
                ("user_data", &huge),
            ],
            413,
            None,
        ),
        (
            "300 KiB description",
            &admin,
            "create_tenant",
            vec![("name", "big"), ("description", &over)],
            413,
            None,
        ),
        (
            "300 KiB unauthenticated",
            &anon,
            "login",
            vec![("username", &over), ("password", "x")],
            413,
            None,
        ),
    ];
    for (case, who, endpoint, form, status, field) in table {
        check(case, who.call(endpoint, &form).await, status, field).await;
    }

    // A body over the limit without a length is cut off while it streams.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 16 * 1024]));
    let res = admin
        .client
        .post(format!("{}/api/fn/create_tenant", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    check("chunked 1 MiB", res, 413, None).await;

    // Throttled answers say when to come back.
    let app2 = spawn_app_with(|s| s.login.per_account_per_address_per_minute = 1).await;
    let b = app2.browser();
    b.call("login", &[("username", "admin"), ("password", "wrong-password")])
        .await;
    let res = b
        .call("login", &[("username", "admin"), ("password", "wrong-password")])
        .await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    check("throttled", res, 429, None).await;
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "a client's mistakes logged as errors"
    );
}

#[tokio::test]
async fn rest_routes_answer_bad_input_with_4xx_json() {
    let (errors, _guard) = count_errors();
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.api(&admin.token("t").await);
    let (_, users) = api.get("/users").await;
    let user = users[0]["id"].as_str().unwrap().to_string();
    let over = "y".repeat(300 * 1024);
    let send = |method: Method, path: &str| {
        api.client
            .request(method, format!("{}/api/v1{path}", app.base))
            .bearer_auth(&api.token)
    };
    let quota = json!({"instances": 1e99, "vcpus": 1, "memory_mib": 1, "disk_gib": 1});
    let flavor =
        json!({"name": "z1.x", "vcpus": -1, "memory_mib": 128, "disk_gib": 1, "hourly_price_minor": 1});
    let table: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        (
            "audit limit=-1",
            send(Method::GET, "/audit?limit=-1"),
            422,
            Some("limit"),
        ),
        (
            "audit limit=abc",
            send(Method::GET, "/audit?limit=abc"),
            422,
            Some("limit"),
        ),
        (
            "usage month=nonsense",
            send(Method::GET, "/usage?month=13-2026"),
            422,
            Some("month"),
        ),
        (
            "quota 1e99",
            send(Method::PUT, "/quotas/*").json(&quota),
            422,
            Some("instances"),
        ),
        (
            "flavor vcpus=-1",
            send(Method::POST, "/flavors").json(&flavor),
            422,
            Some("vcpus"),
        ),
        (
            "user disabled=maybe",
            send(Method::PATCH, &format!("/users/{user}")).json(&json!({"disabled": "maybe"})),
            422,
            Some("disabled"),
        ),
        (
            "token without name",
            send(Method::POST, "/tokens").json(&json!({})),
            422,
            Some("name"),
        ),
        (
            "unknown field",
            send(Method::POST, "/tokens").json(&json!({"name": "a", "x": 1})),
            422,
            Some("x"),
        ),
        (
            "not JSON",
            send(Method::POST, "/tokens")
                .header("content-type", "application/json")
                .body("{"),
            422,
            Some("body"),
        ),
        (
            "no content type",
            send(Method::POST, "/tokens").body("{}"),
            422,
            Some("body"),
        ),
        (
            "JSON array",
            send(Method::POST, "/tokens").json(&json!([])),
            422,
            Some("body"),
        ),
        (
            "over 256 KiB",
            send(Method::POST, "/tenants").json(&json!({"name": "a", "description": over})),
            413,
            None,
        ),
        (
            "non-multipart upload",
            send(Method::POST, "/images").json(&json!({"name": "x"})),
            422,
            Some("body"),
        ),
        ("bad path id", send(Method::GET, "/vms/%FF%FE"), 404, None),
        ("unknown route", send(Method::GET, "/nope"), 404, None),
        ("wrong method", send(Method::PUT, "/vms"), 405, None),
        (
            "action unknown",
            send(Method::POST, "/vms/x/actions").json(&json!({"action": "explode"})),
            422,
            Some("action"),
        ),
    ];
    for (case, req, status, field) in table {
        let res = req.send().await.unwrap();
        if status == 405 {
            assert!(res.headers().contains_key("allow"), "{case}: no Allow header");
        }
        check(case, res, status, field).await;
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "a client's mistakes logged as errors"
    );
}

/// A multipart body: `parts` of (name, content), streamed lazily so a huge part is never built here.
fn multipart(parts: Vec<(&'static str, usize)>) -> (String, reqwest::Body) {
    let boundary = "x-boundary-x";
    let chunks = parts.into_iter().flat_map(move |(name, len)| {
        let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n");
        let body = (0..len.div_ceil(65536)).map(move |i| vec![b'n'; 65536.min(len - i * 65536)]);
        std::iter::once(head.into_bytes())
            .chain(body)
            .chain(std::iter::once(b"\r\n".to_vec()))
    });
    let end = std::iter::once(format!("--{boundary}--\r\n").into_bytes());
    let all = chunks.chain(end).map(Ok::<_, std::io::Error>);
    (
        format!("multipart/form-data; boundary={boundary}"),
        reqwest::Body::wrap_stream(stream::iter(all)),
    )
}

#[tokio::test]
async fn uploads_check_each_field_and_the_total_while_streaming() {
    let (errors, _guard) = count_errors();
    let app = spawn_app().await; // 64 MiB upload limit
    let admin = app.admin().await;
    let api = app.api(&admin.token("t").await);
    let upload = |parts: Vec<(&'static str, usize)>| {
        let (ctype, body) = multipart(parts);
        api.client
            .post(format!("{}/api/v1/images", app.base))
            .bearer_auth(&api.token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    // A 96 MiB text field is refused after its first 4 KiB: without streaming, the answer would only
    // come after the whole field (and the 64 MiB upload limit) was read.
    let res = tokio::time::timeout(Duration::from_secs(60), upload(vec![("name", 96 << 20)]))
        .await
        .expect("answered while streaming");
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            assert!(status == 422 || status == 413, "{status}");
            check("huge name", res, status, None).await;
        }
        // The portal answered and closed before the client finished sending: also fine.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let res = upload(vec![("name", 5000), ("kernel", 10)]).await.unwrap();
    check("5000-byte name", res, 422, Some("name")).await;
    let res = upload(vec![("nonsense", 10)]).await.unwrap();
    check("unknown field", res, 422, Some("nonsense")).await;
    // Declared larger than the limit: refused before a byte is read.
    let res = api
        .client
        .post(format!("{}/api/v1/images", app.base))
        .bearer_auth(&api.token)
        .header("content-type", "multipart/form-data; boundary=b")
        .header("content-length", (200u64 << 20).to_string())
        .body("")
        .send()
        .await;
    if let Ok(res) = res {
        check("declared 200 MiB", res, 413, None).await;
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "a client's mistakes logged as errors"
    );
}

#[tokio::test]
async fn console_websocket_refusals_are_json() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let url = format!("{}/console/00000000-0000-0000-0000-000000000000/ws", app.base);
    let res = client.get(&url).send().await.unwrap();
    check("plain GET", res, 426, None).await;
    for token in ["", "cct_short", &"x".repeat(5000)] {
        let res = client
            .get(format!("{url}?token={token}"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        check("bad token", res, 401, None).await;
    }
}
