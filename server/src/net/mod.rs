//! Tenant networks on this host, kept equal to the database: the portal's network plane (`netplane`: its
//! own namespace, bridges, DHCP servers, firewall, uplink) is re-applied from a fresh snapshot of the
//! network rows whenever something changes ([`Networking::changed`], coalesced; also every minute as a
//! safety net), at start (everything the portal owns but the database no longer has is removed), and
//! right before a VMM is spawned, whose TAPs it then opens ([`Networking::open_nics`]).

pub mod metadata;
mod state;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use netplane::state::Uplink;
use netplane::{NetState, Plane, PlaneError};
use sqlx::SqlitePool;
use tokio::sync::{Mutex, Notify};
use vmm_api::config::MacAddr;

use crate::config::NetworkSettings;
use crate::db::networks::{self, AddressPlan};

pub use state::protocol;

/// Name of the uplink's end inside the plane's namespace.
const UPLINK_INNER: &str = "cp-up";
/// How often the plane is re-applied without a change (drift repair).
const RESYNC: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Plane(#[from] PlaneError),
    #[error(transparent)]
    Uplink(#[from] netplane::uplink::UplinkError),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
    #[error("A network task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("The uplink's outer namespace {0} does not exist")]
    OuterNamespace(String),
    #[error("Failed to start the metadata service")]
    Metadata(#[source] std::io::Error),
}

/// A VM's card, ready for the VMM.
pub struct OpenNic {
    pub mac: MacAddr,
    pub mtu: u16,
    pub tap: OwnedFd,
    /// The card's address and network, for the kernel's `ip=` argument.
    pub ip: std::net::Ipv4Addr,
    pub gateway: std::net::Ipv4Addr,
    pub netmask: std::net::Ipv4Addr,
}

/// The host's tenant networking.
#[derive(Clone)]
pub struct Networking {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Networking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networking")
            .field("namespace", &self.inner.settings.namespace)
            .field("uplink", &self.inner.uplink)
            .finish()
    }
}

struct Inner {
    plane: Plane,
    pool: SqlitePool,
    settings: NetworkSettings,
    uplink: Option<Uplink>,
    /// One apply at a time.
    applying: Mutex<()>,
    wake: Notify,
}

impl Networking {
    /// Opens the plane (creating its namespace and uplink if missing), applies the database's state and
    /// starts the background re-apply. `None` when networking is off.
    pub async fn start(
        settings: &NetworkSettings,
        data_dir: &Path,
        pool: SqlitePool,
    ) -> Result<Option<Networking>, NetError> {
        if !settings.enabled {
            tracing::info!("tenant networks are off: VMs get no network card");
            return Ok(None);
        }
        let s = settings.clone();
        let dir = data_dir.join("net");
        let (plane, uplink) = tokio::task::spawn_blocking(move || -> Result<_, NetError> {
            let plane = Plane::open(&s.namespace, dir)?;
            let uplink = match s.uplink {
                Some(net) => {
                    let outer_ns = match &s.uplink_outer_netns {
                        Some(name) => Some(
                            netplane::namespace::Namespace::existing(name)
                                .ok_or_else(|| NetError::OuterNamespace(name.clone()))?,
                        ),
                        None => None,
                    };
                    Some(netplane::uplink::ensure_veth(
                        plane.namespace(),
                        outer_ns.as_ref(),
                        &s.uplink_outer,
                        UPLINK_INNER,
                        net,
                    )?)
                }
                None => None,
            };
            Ok((plane, uplink))
        })
        .await??;
        let net = Networking {
            inner: Arc::new(Inner {
                plane,
                pool,
                settings: settings.clone(),
                uplink,
                applying: Mutex::new(()),
                wake: Notify::new(),
            }),
        };
        net.apply().await?;
        tracing::info!(netns = %settings.namespace, "tenant networks applied");
        // Reached only through the firewall's redirect of 169.254.169.254:80 (see metadata.rs).
        let port = settings.metadata_port;
        let listener = net
            .inner
            .plane
            .namespace()
            .enter(move || std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)))
            .map_err(PlaneError::from)?
            .map_err(NetError::Metadata)?;
        metadata::spawn(listener, net.inner.pool.clone()).map_err(NetError::Metadata)?;
        let bg = net.clone();
        tokio::spawn(async move {
            loop {
                // A change updates the firewall in place; the periodic resync replaces it whole.
                let woken = tokio::time::timeout(RESYNC, bg.inner.wake.notified()).await;
                if let Err(e) = bg.converge(woken.is_err()).await {
                    tracing::error!(error = %vmm_api::error_chain(&e), "applying the tenant networks failed");
                }
            }
        });
        Ok(Some(net))
    }

    /// Where tenant networks get their blocks.
    pub fn plan(&self) -> AddressPlan {
        AddressPlan {
            pool: self.inner.settings.pool,
            mtu: self.inner.settings.mtu,
        }
    }

    pub fn settings(&self) -> &NetworkSettings {
        &self.inner.settings
    }

    /// The uplink's address inside the plane (port forwards listen there), if there is an uplink.
    pub fn uplink(&self) -> Option<&Uplink> {
        self.inner.uplink.as_ref()
    }

    /// Something in the network rows changed: re-apply soon (coalesced with other changes).
    pub fn changed(&self) {
        self.inner.wake.notify_one();
    }

    /// The desired state now.
    pub async fn state(&self) -> Result<NetState, NetError> {
        let snap = networks::snapshot(&self.inner.pool).await?;
        Ok(state::build(
            &snap,
            self.inner.uplink.clone(),
            Some(self.inner.settings.metadata_port),
        ))
    }

    /// Makes the host match the database now; returns the state applied.
    pub async fn apply(&self) -> Result<NetState, NetError> {
        self.converge(false).await
    }

    /// [`Networking::apply`]; `whole`: replace the firewall ruleset whole rather than update it.
    async fn converge(&self, whole: bool) -> Result<NetState, NetError> {
        let _one = self.inner.applying.lock().await;
        let state = self.state().await?;
        let plane = self.inner.plane.clone();
        let applied = state.clone();
        tokio::task::spawn_blocking(move || {
            if whole {
                plane.apply_all(&applied)
            } else {
                plane.apply(&applied)
            }
        })
        .await??;
        Ok(state)
    }

    /// Realises the VM's networks and opens a TAP per card, in card order.
    pub async fn open_nics(&self, vm_id: &str) -> Result<Vec<OpenNic>, NetError> {
        let ports = networks::ports_of_vm(&self.inner.pool, vm_id).await?;
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.apply().await?;
        let plane = self.inner.plane.clone();
        tokio::task::spawn_blocking(move || {
            ports
                .iter()
                .map(|p| {
                    let net = state
                        .network_of(&p.id)
                        .ok_or_else(|| PlaneError::UnknownPort(p.id.clone()))?;
                    let port = net
                        .ports
                        .iter()
                        .find(|q| q.id == p.id)
                        .ok_or_else(|| PlaneError::UnknownPort(p.id.clone()))?;
                    let tap = plane.open_tap(&state, &p.id)?;
                    Ok(OpenNic {
                        mac: MacAddr(port.mac),
                        mtu: net.mtu,
                        tap,
                        ip: port.ip,
                        gateway: net.gateway,
                        netmask: net.cidr.netmask(),
                    })
                })
                .collect::<Result<Vec<_>, NetError>>()
        })
        .await?
    }
}
