//! The network plane of one host: makes the portal's namespace hold exactly what a [`NetState`] asks
//! for — bridges with their gateways, DHCP servers, the uplink's floating addresses and the firewall —
//! and opens the TAP of a VM's card when its VMM is spawned.
//!
//! [`Plane::apply`] is idempotent and converges from any starting point (a fresh namespace, one left by a
//! crashed portal, one with leftovers of deleted networks): it creates what is missing, corrects what
//! differs and removes what the plane owns but the state no longer has (bridges and DHCP servers named
//! with the plane's prefix). A VMM's TAP exists only while the VMM that holds its descriptor runs; a TAP
//! with the plane's prefix that no port names (one made persistent by hand) is removed.
//!
//! The firewall is replaced as a whole by [`Plane::apply_all`] and on the first apply; later
//! [`Plane::apply`]s that change only set and map elements (a VM launched or deleted) update the applied
//! ruleset in place (`ruleset::Rendered::changes_from`), falling back to the whole replace if the kernel
//! refuses the update.
//!
//! Converging and [`Plane::destroy`] exclude each other across `Plane` values and processes (an
//! exclusive `flock` on `plane.lock` in the state directory), and a converge never recreates the
//! namespace: a destroy that lands while a portal is converging waits for it, removes what it started,
//! and every later converge of that portal fails on the missing namespace instead of starting DHCP
//! servers in a namespace nobody can name any more.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::dhcp::{Dhcp, DhcpError};
use crate::links::{self, LinkError};
use crate::namespace::{Namespace, NamespaceError};
use crate::state::{NetState, Network, Port};

/// Prefix of every bridge the plane creates (and may delete).
pub const BRIDGE_PREFIX: &str = "cpbr";
/// Prefix of every TAP the plane creates.
pub const TAP_PREFIX: &str = "cpt";

/// Errors realising the state.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Dhcp(#[from] DhcpError),
    #[error("Failed to open the TAP {0}")]
    Tap(String, #[source] vnet_tap::TapError),
    #[error("Port {0} is not in the network state")]
    UnknownPort(String),
    #[error(transparent)]
    Firewall(#[from] crate::nft::NftError),
    #[error("Failed to lock the plane ({0})")]
    Lock(PathBuf, #[source] std::io::Error),
}

/// The host's tenant networking.
#[derive(Debug, Clone)]
pub struct Plane {
    ns: Namespace,
    dhcp: Dhcp,
    /// Held (exclusively) while converging or destroying.
    lock: PathBuf,
    /// The ruleset this plane last applied (shared by clones), `None` before the first apply and after a
    /// failed one.
    applied: Arc<Mutex<Option<crate::ruleset::Rendered>>>,
}

impl Plane {
    /// The plane in namespace `netns` (created if missing), keeping DHCP files under `state_dir`.
    pub fn open(netns: &str, state_dir: impl Into<PathBuf>) -> Result<Plane, PlaneError> {
        let state_dir = state_dir.into();
        Ok(Plane {
            ns: Namespace::ensure(netns)?,
            dhcp: Dhcp::new(state_dir.join("dhcp")),
            lock: state_dir.join("plane.lock"),
            applied: Arc::default(),
        })
    }

    /// Waits for and holds the plane's lock until the returned file is dropped.
    fn exclusive(&self) -> Result<File, PlaneError> {
        let locked = || -> std::io::Result<File> {
            if let Some(dir) = self.lock.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.lock)?;
            file.lock()?;
            Ok(file)
        };
        locked().map_err(|e| PlaneError::Lock(self.lock.clone(), e))
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Makes the namespace match `state`: links and addresses first, then the firewall (one atomic
    /// batch: the element changes since the last apply when only those differ, else the whole ruleset),
    /// then the floating addresses on the uplink, then the DHCP servers.
    pub fn apply(&self, state: &NetState) -> Result<(), PlaneError> {
        self.converge(state, false)
    }

    /// [`Plane::apply`] with the whole ruleset replaced whatever was applied before (periodic resync:
    /// repairs a ruleset changed behind the plane's back).
    pub fn apply_all(&self, state: &NetState) -> Result<(), PlaneError> {
        self.converge(state, true)
    }

    fn converge(&self, state: &NetState, whole: bool) -> Result<(), PlaneError> {
        let _locked = self.exclusive()?;
        let uplink = state.uplink.clone();
        let floating: Vec<Ipv4Addr> = state.floating_ips.iter().map(|f| f.address).collect();
        self.ns.netlink(|h| async move {
            let before = links::list(&h).await?;
            let addrs = links::all_addresses(&h).await?;
            for net in &state.networks {
                let known = before.iter().find(|l| l.name == net.bridge).map(|l| {
                    let on_it: Vec<(Ipv4Addr, u8)> = addrs
                        .iter()
                        .filter(|(i, _, _)| *i == l.index)
                        .map(|(_, ip, p)| (*ip, *p))
                        .collect();
                    (l, on_it)
                });
                let known = known.as_ref().map(|(l, a)| (*l, a.as_slice()));
                links::ensure_bridge(
                    &h,
                    &net.bridge,
                    net.mtu,
                    net.gateway,
                    net.cidr.prefix_len(),
                    known,
                )
                .await?;
            }
            let all = links::list(&h).await?;
            for stale in all.iter().filter(|l| {
                l.name.starts_with(BRIDGE_PREFIX) && !state.networks.iter().any(|n| n.bridge == l.name)
            }) {
                links::delete(&h, &stale.name).await?;
                tracing::info!(bridge = %stale.name, "removed a bridge no network uses");
            }
            // A TAP of ours that no port names has no VMM that should hold it (a VMM's TAP is not
            // persistent and goes with its last descriptor): one left persistent by hand or by a crash.
            for stray in all.iter().filter(|l| {
                l.name.starts_with(TAP_PREFIX)
                    && !state
                        .networks
                        .iter()
                        .any(|n| n.ports.iter().any(|p| p.tap == l.name))
            }) {
                links::delete(&h, &stray.name).await?;
                tracing::info!(tap = %stray.name, "removed a TAP no port uses");
            }
            // TAPs of running VMMs rejoin their bridge (e.g. after the bridge was recreated).
            for net in &state.networks {
                for port in &net.ports {
                    if all.iter().any(|l| l.name == port.tap) {
                        links::attach_known(&h, &all, &port.tap, &net.bridge, net.mtu).await?;
                    }
                }
            }
            Ok::<(), PlaneError>(())
        })??;
        self.firewall(state, whole)?;
        // Floating addresses after the firewall: an address that answered before its DNAT rule existed
        // would have its first packets delivered to the plane itself, and conntrack would keep the flow
        // there.
        if let Some(up) = &uplink {
            let (ifname, own) = (up.ifname.clone(), up.address);
            self.ns
                .netlink(|h| async move { sync_floating(&h, &ifname, own, &floating).await })??;
        }
        for net in &state.networks {
            self.dhcp.ensure(&self.ns, net)?;
        }
        for bridge in self.dhcp.known() {
            if !state.networks.iter().any(|n| n.bridge == bridge) {
                self.dhcp.stop(&bridge)?;
            }
        }
        Ok(())
    }

    fn firewall(&self, state: &NetState, whole: bool) -> Result<(), PlaneError> {
        let rendered = crate::ruleset::render_parts(state);
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let update = match (&*applied, whole) {
            (Some(before), false) => rendered.changes_from(before),
            _ => None,
        };
        let netns = Some(self.ns.name());
        match update {
            Some(batch) if batch.is_empty() => return Ok(()),
            Some(batch) => match crate::nft::apply(&batch, netns) {
                Ok(()) => {
                    *applied = Some(rendered);
                    return Ok(());
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "updating the ruleset in place failed: replacing it whole"
                ),
            },
            None => {}
        }
        *applied = None;
        crate::nft::apply(rendered.text(), netns)?;
        *applied = Some(rendered);
        Ok(())
    }

    /// Creates the TAP of `port_id` in the namespace, joined to its network's bridge, and returns its
    /// descriptor for the VMM. Fails if the TAP exists (another VMM holds it).
    pub fn open_tap(&self, state: &NetState, port_id: &str) -> Result<OwnedFd, PlaneError> {
        let (net, port) = find_port(state, port_id).ok_or_else(|| PlaneError::UnknownPort(port_id.into()))?;
        let name = port.tap.clone();
        let tap = self
            .ns
            .enter(|| vnet_tap::Tap::open(&name))?
            .map_err(|e| PlaneError::Tap(name.clone(), e))?;
        let (bridge, mtu) = (net.bridge.clone(), net.mtu);
        self.ns
            .netlink(|h| async move { links::attach(&h, &name, &bridge, mtu).await })??;
        Ok(tap.into_fd())
    }

    /// Stops every DHCP server and deletes the namespace with all it holds (tests, uninstall).
    pub fn destroy(self) -> Result<(), PlaneError> {
        let _locked = self.exclusive()?;
        for bridge in self.dhcp.known() {
            self.dhcp.stop(&bridge)?;
        }
        self.ns.delete()?;
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

fn find_port<'a>(state: &'a NetState, port_id: &str) -> Option<(&'a Network, &'a Port)> {
    state
        .networks
        .iter()
        .find_map(|n| n.ports.iter().find(|p| p.id == port_id).map(|p| (n, p)))
}

/// The uplink carries its own address plus one /32 per floating IP (so the outside's ARP finds them);
/// other /32s are floating IPs released since.
async fn sync_floating(
    h: &rtnetlink::Handle,
    ifname: &str,
    own: Ipv4Addr,
    floating: &[Ipv4Addr],
) -> Result<(), LinkError> {
    let link = links::find(h, ifname)
        .await?
        .ok_or_else(|| LinkError::Missing(ifname.into()))?;
    let want: Vec<(Ipv4Addr, u8)> = floating.iter().map(|a| (*a, 32)).collect();
    links::ensure_addresses(h, link.index, ifname, &want, false).await?;
    for (ip, prefix) in links::addresses(h, link.index).await? {
        if prefix == 32 && ip != own && !floating.contains(&ip) {
            links::remove_address(h, link.index, ifname, ip, prefix).await?;
        }
    }
    Ok(())
}
