//! Tenant networks on one host, realised from a desired state ([`state::NetState`]) that the portal
//! derives from its database:
//!
//! - `state`: the desired state (networks, ports, security groups, port forwards, floating IPs);
//! - `ruleset`: the one nftables ruleset (an `inet` table for isolation, security groups and NAT, a
//!   `bridge` table for anti-spoofing) rendered from it;
//! - `nft`: applying that ruleset atomically with `nft -f`, inside the portal's namespace.
//!
//! Everything lives in a network namespace the portal owns, joined to the host by a veth pair, so the
//! host's own network is never touched (ARCHITECTURE.md, "Networks"; NETWORKING.md for the measured
//! kernel facts and the ruleset shape that passed).

pub mod dhcp;
pub mod links;
pub mod namespace;
pub mod nft;
pub mod plane;
pub mod ruleset;
pub mod state;
pub mod uplink;

pub use plane::{Plane, PlaneError};
pub use state::NetState;
