//! CSRF protection by origin check (OWASP "verifying origin with standard headers"), on top of SameSite=Lax
//! session cookies: a state-changing request that carries cookies must come from the portal's own origin.
//! Requests authenticated only by a bearer token carry no ambient credentials and are not checked.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::COOKIE;
use http::{HeaderMap, Method, StatusCode};

use crate::api::ErrorEnvelope;

/// The expected origin: configured (`https://cloud.example.com`) or derived from the request's `Host`.
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    pub public_origin: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allow,
    Refuse(&'static str),
}

fn host_of(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn judge(policy: &OriginPolicy, method: &Method, headers: &HeaderMap) -> Verdict {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Verdict::Allow;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("cross-site") {
        return Verdict::Refuse("cross-site request");
    }
    let matches = |origin: &str| match &policy.public_origin {
        Some(expected) => origin.trim_end_matches('/') == expected.trim_end_matches('/'),
        None => host_of(origin).is_some() && host_of(origin) == header("host"),
    };
    if let Some(origin) = header("origin") {
        return if origin != "null" && matches(origin) {
            Verdict::Allow
        } else {
            Verdict::Refuse("foreign origin")
        };
    }
    if let Some(referer) = header("referer") {
        return if matches(referer) {
            Verdict::Allow
        } else {
            Verdict::Refuse("foreign referer")
        };
    }
    if headers.contains_key(COOKIE) {
        return Verdict::Refuse("no origin on a cookie-authenticated request");
    }
    Verdict::Allow
}

/// Whether a request's `Origin`, if it has one, is the portal's own. For WebSocket handshakes, which are
/// GETs that browsers send cross-site with cookies (cross-site WebSocket hijacking); non-browser clients
/// send no `Origin` and pass.
pub fn origin_is_own(policy: &OriginPolicy, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    match &policy.public_origin {
        Some(expected) => origin.trim_end_matches('/') == expected.trim_end_matches('/'),
        None => {
            let host = headers.get("host").and_then(|v| v.to_str().ok());
            host_of(origin).is_some() && host_of(origin) == host
        }
    }
}

pub async fn verify_origin(State(policy): State<OriginPolicy>, req: Request, next: Next) -> Response {
    match judge(&policy, req.method(), req.headers()) {
        Verdict::Allow => next.run(req).await,
        Verdict::Refuse(why) => {
            tracing::warn!(why, path = %req.uri().path(), "refused a state-changing request (CSRF check)");
            ErrorEnvelope::new(
                StatusCode::FORBIDDEN.as_u16(),
                "forbidden",
                "This request did not come from the portal's own pages and was refused.",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    const OWN: OriginPolicy = OriginPolicy { public_origin: None };

    #[test]
    fn same_origin_posts_pass_and_foreign_ones_are_refused() {
        let post = Method::POST;
        let own = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
            ("cookie", "s=1"),
        ]);
        assert_eq!(judge(&OWN, &post, &own), Verdict::Allow);
        let evil = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.test"),
            ("cookie", "s=1"),
        ]);
        assert!(matches!(judge(&OWN, &post, &evil), Verdict::Refuse(_)));
        let cross = headers(&[
            ("host", "h"),
            ("origin", "http://h"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(matches!(judge(&OWN, &post, &cross), Verdict::Refuse(_)));
    }

    #[test]
    fn cookie_requests_without_origin_are_refused_but_bearer_only_requests_pass() {
        let post = Method::POST;
        let cookie_only = headers(&[("host", "h:1"), ("cookie", "s=1")]);
        assert!(matches!(judge(&OWN, &post, &cookie_only), Verdict::Refuse(_)));
        let bearer = headers(&[("host", "h:1"), ("authorization", "Bearer x")]);
        assert_eq!(judge(&OWN, &post, &bearer), Verdict::Allow);
        let referer = headers(&[
            ("host", "h:1"),
            ("cookie", "s=1"),
            ("referer", "http://h:1/tokens"),
        ]);
        assert_eq!(judge(&OWN, &post, &referer), Verdict::Allow);
    }

    #[test]
    fn a_configured_public_origin_is_matched_exactly() {
        let policy = OriginPolicy {
            public_origin: Some("https://cloud.example.com".into()),
        };
        let ok = headers(&[("host", "10.0.0.1:3000"), ("origin", "https://cloud.example.com")]);
        assert_eq!(judge(&policy, &Method::DELETE, &ok), Verdict::Allow);
        let http = headers(&[("host", "10.0.0.1:3000"), ("origin", "http://cloud.example.com")]);
        assert!(matches!(
            judge(&policy, &Method::DELETE, &http),
            Verdict::Refuse(_)
        ));
        assert_eq!(judge(&policy, &Method::GET, &http), Verdict::Allow);
    }

    #[test]
    fn websocket_handshakes_from_other_sites_are_refused() {
        let own = headers(&[("host", "h:1"), ("origin", "http://h:1")]);
        assert!(origin_is_own(&OWN, &own));
        let evil = headers(&[("host", "h:1"), ("origin", "http://evil.test")]);
        assert!(!origin_is_own(&OWN, &evil));
        assert!(!origin_is_own(
            &OWN,
            &headers(&[("host", "h:1"), ("origin", "null")])
        ));
        assert!(origin_is_own(&OWN, &headers(&[("host", "h:1")])));
    }
}
