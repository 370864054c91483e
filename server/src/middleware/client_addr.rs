//! The client's address: the peer's, or — behind a reverse proxy — the one a trusted proxy put in the
//! configured header (`client_ip_header`, believed only from `trusted_proxies`; anyone else can write any
//! header). Handlers and services read `ClientAddr` from the request's extensions.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName};

/// The address a request came from, as far as the portal can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Where the client's address comes from.
#[derive(Debug, Clone, Default)]
pub struct ProxyPolicy {
    pub header: Option<HeaderName>,
    pub trusted: Arc<[IpAddr]>,
}

impl ProxyPolicy {
    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let Some(header) = &self.header else {
            return peer;
        };
        if !self.trusted.contains(&peer) {
            return peer;
        }
        // The proxy appends the address it saw: the last entry of the last such header.
        headers
            .get_all(header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .unwrap_or(peer)
    }
}

pub async fn client_addr(State(policy): State<ProxyPolicy>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let ip = policy.client(peer.ip(), req.headers());
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy_and_only_its_last_entry() {
        let proxy = IpAddr::from([127, 0, 0, 1]);
        let stranger = IpAddr::from([203, 0, 113, 9]);
        let policy = ProxyPolicy {
            header: Some(HeaderName::from_static("x-forwarded-for")),
            trusted: Arc::from(vec![proxy]),
        };
        let spoofed = headers(&["1.1.1.1, 198.51.100.7"]);
        assert_eq!(policy.client(proxy, &spoofed), IpAddr::from([198, 51, 100, 7]));
        assert_eq!(policy.client(stranger, &spoofed), stranger);
        assert_eq!(policy.client(proxy, &headers(&["garbage"])), proxy);
        assert_eq!(policy.client(proxy, &headers(&[])), proxy);
        assert_eq!(ProxyPolicy::default().client(proxy, &spoofed), proxy);
    }
}
