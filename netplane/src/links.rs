//! Links and addresses inside the portal's namespace, over rtnetlink: the bridges of tenant networks
//! with their gateway addresses, TAPs joined to their bridge, the uplink's extra addresses (floating
//! IPs). Every function is idempotent: it makes the link look as asked, whatever it looked like.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

/// Errors changing links.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink: {what} {name}")]
    Netlink {
        what: &'static str,
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("No link named {0}")]
    Missing(String),
}

fn nl(what: &'static str, name: &str) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let name = name.to_string();
    move |source| LinkError::Netlink { what, name, source }
}

/// A link's name and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    /// Index of the bridge it is a port of, if any.
    pub controller: Option<u32>,
    pub up: bool,
    pub mtu: Option<u32>,
}

fn info(msg: &LinkMessage) -> Option<LinkInfo> {
    let mut name = None;
    let mut controller = None;
    let mut mtu = None;
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Controller(c) => controller = Some(*c),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            _ => {}
        }
    }
    Some(LinkInfo {
        name: name?,
        index: msg.header.index,
        controller,
        up: msg.header.flags.contains(LinkFlags::Up),
        mtu,
    })
}

/// Every link in the namespace.
pub async fn list(handle: &Handle) -> Result<Vec<LinkInfo>, LinkError> {
    let msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl("listing links", "*"))?;
    Ok(msgs.iter().filter_map(info).collect())
}

/// The link called `name`, if it exists.
pub async fn find(handle: &Handle, name: &str) -> Result<Option<LinkInfo>, LinkError> {
    Ok(list(handle).await?.into_iter().find(|l| l.name == name))
}

/// A bridge called `name`, up, with `mtu` and `gateway/prefix` as its address. `known` is the bridge
/// as a recent [`list`] saw it (saves a dump per bridge when many are checked).
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    mtu: u16,
    gateway: Ipv4Addr,
    prefix: u8,
    known: Option<(&LinkInfo, &[(Ipv4Addr, u8)])>,
) -> Result<u32, LinkError> {
    if let Some((l, addrs)) = known.filter(|(l, _)| l.up && l.mtu == Some(u32::from(mtu))) {
        if addrs != [(gateway, prefix)] {
            ensure_addresses(handle, l.index, name, &[(gateway, prefix)], true).await?;
        }
        return Ok(l.index);
    }
    let index = match find(handle, name).await? {
        Some(l) => l.index,
        None => {
            handle
                .link()
                .add(LinkBridge::new(name).mtu(u32::from(mtu)).build())
                .execute()
                .await
                .map_err(nl("creating bridge", name))?;
            find(handle, name)
                .await?
                .ok_or_else(|| LinkError::Missing(name.into()))?
                .index
        }
    };
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(u32::from(mtu)).up().build())
        .execute()
        .await
        .map_err(nl("setting bridge up", name))?;
    ensure_addresses(handle, index, name, &[(gateway, prefix)], true).await?;
    Ok(index)
}

/// Makes `port` a port of `bridge`, up, with `mtu`.
pub async fn attach(handle: &Handle, port: &str, bridge: &str, mtu: u16) -> Result<(), LinkError> {
    let links = list(handle).await?;
    attach_known(handle, &links, port, bridge, mtu).await
}

/// [`attach`] with the links from a recent [`list`]; does nothing if the port already is as asked.
pub async fn attach_known(
    handle: &Handle,
    links: &[LinkInfo],
    port: &str,
    bridge: &str,
    mtu: u16,
) -> Result<(), LinkError> {
    let by_name = |n: &str| {
        links
            .iter()
            .find(|l| l.name == n)
            .map(|l| l.index)
            .ok_or_else(|| LinkError::Missing(n.into()))
    };
    let (port_index, bridge_index) = (by_name(port)?, by_name(bridge)?);
    let settled = links.iter().any(|l| {
        l.index == port_index && l.controller == Some(bridge_index) && l.up && l.mtu == Some(u32::from(mtu))
    });
    if settled {
        return Ok(());
    }
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(port_index)
                .controller(bridge_index)
                .mtu(u32::from(mtu))
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("attaching to its bridge", port))
}

/// Deletes a link (a no-op when it is already gone).
pub async fn delete(handle: &Handle, name: &str) -> Result<(), LinkError> {
    if let Some(l) = find(handle, name).await? {
        handle
            .link()
            .del(l.index)
            .execute()
            .await
            .map_err(nl("deleting", name))?;
    }
    Ok(())
}

/// IPv4 addresses on a link, with their prefix lengths.
pub async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
    Ok(all_addresses(handle)
        .await?
        .into_iter()
        .filter(|(i, _, _)| *i == index)
        .map(|(_, ip, prefix)| (ip, prefix))
        .collect())
}

/// Every IPv4 address in the namespace: (link index, address, prefix length). One dump.
pub async fn all_addresses(handle: &Handle) -> Result<Vec<(u32, Ipv4Addr, u8)>, LinkError> {
    let msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl("listing addresses", "*"))?;
    Ok(msgs
        .iter()
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
                    Some((m.header.index, *ip, m.header.prefix_len))
                }
                _ => None,
            })
        })
        .collect())
}

/// Adds the addresses in `want` that the link lacks; with `exclusive`, removes the IPv4 addresses it
/// has that are not in `want`.
pub async fn ensure_addresses(
    handle: &Handle,
    index: u32,
    name: &str,
    want: &[(Ipv4Addr, u8)],
    exclusive: bool,
) -> Result<(), LinkError> {
    let have = addresses(handle, index).await?;
    for &(ip, prefix) in want {
        if !have.contains(&(ip, prefix)) {
            handle
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .replace()
                .execute()
                .await
                .map_err(nl("adding an address to", name))?;
        }
    }
    if exclusive {
        for &(ip, prefix) in have.iter().filter(|a| !want.contains(a)) {
            remove_address(handle, index, name, ip, prefix).await?;
        }
    }
    Ok(())
}

/// Removes one IPv4 address from a link.
pub async fn remove_address(
    handle: &Handle,
    index: u32,
    name: &str,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<(), LinkError> {
    let msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(IpAddr::V4(ip))
        .set_prefix_length_filter(prefix)
        .execute()
        .try_collect()
        .await
        .map_err(nl("finding an address on", name))?;
    for m in msgs {
        handle
            .address()
            .del(m)
            .execute()
            .await
            .map_err(nl("removing an address from", name))?;
    }
    Ok(())
}
