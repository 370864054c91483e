//! Security headers on every response — pages, API answers, static files and errors alike:
//!
//! - `Content-Security-Policy`: scripts only from the portal itself plus the page's own inline scripts
//!   (Leptos' hydration script and streamed resources carry this response's nonce), wasm compilation
//!   (`'wasm-unsafe-eval'`), styles from the portal or nonce'd `<style>` elements, WebSockets and fetches
//!   to the portal only, no plugins, no `<base>`, forms posting only to the portal, and `frame-ancestors
//!   'none'` (no other site can frame the console). Style *attributes* stay allowed (`style-src-attr`):
//!   xterm.js colours cells with them, and they cannot load anything `img-src`/`font-src` forbid.
//! - `X-Frame-Options: DENY` (older browsers), `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: same-origin`, and `Strict-Transport-Security` when the portal is served over HTTPS
//!   (`secure_cookies`).
//!
//! The nonce is made here, handed to the page renderer in the request's extensions (`CspNonce`, read by the
//! Leptos context in `startup.rs`) and named in this response's policy.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::HeaderValue;
use rand::RngCore;

/// This response's CSP nonce (128 random bits, base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspNonce(pub String);

impl CspNonce {
    fn new() -> Self {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// Whether to send HSTS (the portal is reached over HTTPS).
#[derive(Debug, Clone, Copy)]
pub struct HeaderPolicy {
    pub https: bool,
}

/// The policy for a response whose inline scripts carry `nonce`.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; \
         font-src 'self'; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

pub async fn security_headers(State(policy): State<HeaderPolicy>, mut req: Request, next: Next) -> Response {
    let nonce = CspNonce::new();
    req.extensions_mut().insert(nonce.clone());
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&nonce.0)) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if policy.https {
        headers.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_portals_own_and_this_pages_nonce() {
        let csp = content_security_policy("abc");
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
        assert_ne!(CspNonce::new(), CspNonce::new());
    }
}
