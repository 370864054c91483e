//! Security headers on every HTML and API answer: a CSP naming this response's nonce (the one on the page's
//! inline scripts) with `frame-ancestors 'none'`, nosniff, Referrer-Policy, X-Frame-Options, and HSTS only
//! when the portal is served over HTTPS.

use crate::helpers::{spawn_app, spawn_app_with};

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} on {}", res.url()))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_pages_their_nonce() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let mut nonces = vec![];
    for path in [
        "/login",
        "/api/v1/whoami",
        "/api/v1/nope",
        "/api/fn/me",
        "/no-such-page",
        "/healthz",
    ] {
        let res = if path.starts_with("/api/fn") {
            client.post(format!("{}{path}", app.base)).send().await.unwrap()
        } else {
            client.get(format!("{}{path}", app.base)).send().await.unwrap()
        };
        let csp = header(&res, "content-security-policy").to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self' 'nonce-"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline';") || !csp.contains("script-src 'self' 'unsafe-inline'"));
        assert_eq!(header(&res, "x-frame-options"), "DENY");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert_eq!(header(&res, "referrer-policy"), "same-origin");
        assert!(res.headers().get("strict-transport-security").is_none());
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap()
            .to_string();
        if path == "/login" {
            let html = res.text().await.unwrap();
            let tagged = html.matches(&format!("nonce=\"{nonce}\"")).count();
            let scripts = html.matches("<script").count();
            assert!(tagged >= 1, "the hydration script carries the nonce");
            let external = html.matches("<script type=\"module\" src=").count();
            assert_eq!(
                tagged + external,
                scripts,
                "every inline script carries the nonce: {html}"
            );
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 6, "a fresh nonce per response");
}

#[tokio::test]
async fn hsts_is_sent_when_served_over_https() {
    let app = spawn_app_with(|s| s.secure_cookies = true).await;
    let res = reqwest::get(format!("{}/login", app.base)).await.unwrap();
    assert!(header(&res, "strict-transport-security").starts_with("max-age="));
}
