//! The way out of the portal's namespace: a veth pair whose outer end stays in the namespace the portal
//! runs in (the host's, or a test's "host" namespace) and whose inner end is the plane's uplink. The
//! uplink network's first address goes on the outer end, the second on the inner end, which routes
//! everything else through the outer one. Floating IPs are further addresses on the inner end (see
//! `plane.rs`); the outer side reaches them over the shared link.
//!
//! The outer end is the only thing the plane ever adds to the namespace it was started from — or, when
//! `outer_ns` is given, to that namespace instead (tests put the outside world in a namespace of their
//! own, so nothing touches the machine's network).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::links::{self, LinkError};
use crate::namespace::{Namespace, NamespaceError};
use crate::state::Uplink;

/// Errors making the uplink.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("The uplink network {0} has fewer than two host addresses")]
    TooSmall(Ipv4Net),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("Failed to open an rtnetlink connection in the portal's own namespace")]
    Netlink(#[source] std::io::Error),
    #[error("Failed to open the plane's namespace")]
    OpenNamespace(#[source] std::io::Error),
    #[error("netlink: {0}")]
    Request(&'static str, #[source] rtnetlink::Error),
}

/// The two addresses of an uplink network: (outer end, inner end).
pub fn addresses(net: Ipv4Net) -> Result<(Ipv4Addr, Ipv4Addr), UplinkError> {
    let mut hosts = net.hosts();
    match (hosts.next(), hosts.next()) {
        (Some(outer), Some(inner)) => Ok((outer, inner)),
        _ => Err(UplinkError::TooSmall(net)),
    }
}

/// Makes the veth pair `outer`/`inner` (created if missing) with the uplink network's addresses and the
/// inner end's default route; returns the plane's view of it. Blocking (netlink on runtimes of its own):
/// call it from a blocking context.
pub fn ensure_veth(
    ns: &Namespace,
    outer_ns: Option<&Namespace>,
    outer: &str,
    inner: &str,
    net: Ipv4Net,
) -> Result<Uplink, UplinkError> {
    let (outer_ip, inner_ip) = addresses(net)?;
    let prefix = net.prefix_len();
    let inner_name = inner.to_string();
    let inner_exists = ns
        .netlink(|h| async move { links::find(&h, &inner_name).await })??
        .is_some();
    outer_netlink(outer_ns, |h| async move {
        if !inner_exists {
            // A half-made pair (outer end only) is replaced.
            links::delete(&h, outer).await?;
            h.link()
                .add(LinkVeth::new(outer, inner).build())
                .execute()
                .await
                .map_err(|e| UplinkError::Request("creating the uplink veth", e))?;
            let ns_file = std::fs::File::open(ns.path()).map_err(UplinkError::OpenNamespace)?;
            let peer = links::find(&h, inner)
                .await?
                .ok_or_else(|| LinkError::Missing(inner.into()))?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(peer.index)
                        .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&ns_file))
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| UplinkError::Request("moving the uplink into the plane's namespace", e))?;
        }
        let out = links::find(&h, outer)
            .await?
            .ok_or_else(|| LinkError::Missing(outer.into()))?;
        h.link()
            .set(LinkUnspec::new_with_index(out.index).up().build())
            .execute()
            .await
            .map_err(|e| UplinkError::Request("setting the uplink up", e))?;
        links::ensure_addresses(&h, out.index, outer, &[(outer_ip, prefix)], false).await?;
        Ok(())
    })?;
    let inner_name = inner.to_string();
    ns.netlink(|h| async move {
        let link = links::find(&h, &inner_name)
            .await?
            .ok_or_else(|| LinkError::Missing(inner_name.clone()))?;
        h.link()
            .set(LinkUnspec::new_with_index(link.index).up().build())
            .execute()
            .await
            .map_err(|e| UplinkError::Request("setting the uplink up", e))?;
        links::ensure_addresses(&h, link.index, &inner_name, &[(inner_ip, prefix)], false).await?;
        h.route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(outer_ip)
                    .output_interface(link.index)
                    .build(),
            )
            .replace()
            .execute()
            .await
            .map_err(|e| UplinkError::Request("adding the default route", e))?;
        Ok::<(), UplinkError>(())
    })??;
    Ok(Uplink {
        ifname: inner.to_string(),
        address: inner_ip,
    })
}

/// Runs netlink requests in `outer` (a named namespace) or, without one, in the calling thread's.
fn outer_netlink<F, Fut>(outer: Option<&Namespace>, f: F) -> Result<(), UplinkError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), UplinkError>>,
{
    match outer {
        Some(o) => o.netlink(f)?,
        None => in_own_namespace(f),
    }
}

/// Runs netlink requests in the namespace of the calling thread, on a runtime of their own.
fn in_own_namespace<F, Fut>(f: F) -> Result<(), UplinkError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = Result<(), UplinkError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(UplinkError::Netlink)?;
    rt.block_on(async {
        let (conn, h, _) = rtnetlink::new_connection().map_err(UplinkError::Netlink)?;
        let task = tokio::spawn(conn);
        let r = f(h).await;
        task.abort();
        r
    })
}

/// Removes the outer end (and with it the pair). Blocking.
pub fn remove_veth(outer_ns: Option<&Namespace>, outer: &str) -> Result<(), UplinkError> {
    outer_netlink(outer_ns, |h| async move {
        links::delete(&h, outer).await.map_err(UplinkError::from)
    })
}
