//! Tenant networks in SQL: networks and their address blocks, VM ports (MAC, fixed address, TAP),
//! security groups and rules, port forwards and floating IPs. Allocation happens inside the caller's
//! IMMEDIATE transaction (the launch's), so a VM and its addresses appear together or not at all, and
//! uniqueness is the database's (`UNIQUE` on blocks, addresses, MACs, TAPs).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sqlx::{FromRow, SqliteConnection, SqlitePool};

/// Where networks get their addresses: `/24` blocks of `pool`, numbered by slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    pub pool: Ipv4Net,
    pub mtu: u16,
}

/// First host address handed to VMs (.1 is the gateway; .2–.9 are kept for services).
pub const FIRST_VM_HOST: u8 = 10;
/// Offset of VXLAN ids (slot 0 → 1000).
const VXLAN_BASE: i64 = 1000;

impl AddressPlan {
    /// The `/24` of `slot`, if the pool has it.
    pub fn block(&self, slot: i64) -> Option<Ipv4Net> {
        let slot = usize::try_from(slot).ok()?;
        self.pool.subnets(24).ok()?.nth(slot)
    }

    /// How many networks the pool holds.
    pub fn slots(&self) -> i64 {
        1i64 << u32::from(24u8.saturating_sub(self.pool.prefix_len()))
    }
}

/// Why an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("No address block left in the pool {0}")]
    PoolExhausted(Ipv4Net),
    #[error("No address left on network {0}")]
    NetworkFull(String),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NetworkRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub slot: i64,
    pub cidr: String,
    pub gateway: String,
    pub mtu: i64,
    pub vxlan_id: i64,
    pub is_default: bool,
    pub created_at: i64,
}

impl NetworkRow {
    pub fn bridge(&self) -> String {
        format!("{}{}", netplane::plane::BRIDGE_PREFIX, self.slot)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PortRow {
    pub seq: i64,
    pub id: String,
    pub vm_id: String,
    pub network_id: String,
    pub nic_index: i64,
    pub mac: String,
    pub ip: String,
    pub tap: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub is_default: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RuleRow {
    pub id: String,
    pub group_id: String,
    pub protocol: String,
    pub port_min: Option<i64>,
    pub port_max: Option<i64>,
    pub source_cidr: Option<String>,
    pub source_group_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ForwardRow {
    pub id: String,
    pub tenant_id: String,
    pub vm_id: String,
    pub protocol: String,
    pub host_port: i64,
    pub vm_port: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct FloatingRow {
    pub id: String,
    pub tenant_id: String,
    pub address: String,
    pub vm_id: Option<String>,
    pub created_at: i64,
}

/// The MAC of port number `seq`: locally administered `52:54:00` plus 24 bits of the sequence.
pub fn mac_of(seq: i64) -> String {
    let s = seq & 0xff_ffff;
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (s >> 16) & 0xff,
        (s >> 8) & 0xff,
        s & 0xff
    )
}

/// The TAP name of port number `seq` (at most 15 bytes).
pub fn tap_of(seq: i64) -> String {
    format!("{}{:x}", netplane::plane::TAP_PREFIX, seq & 0xff_ffff_ffff)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The tenant's default network, created (with the lowest free block) if it has none.
pub async fn ensure_default_network(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    plan: &AddressPlan,
    now: i64,
) -> Result<NetworkRow, AllocError> {
    let existing: Option<NetworkRow> =
        sqlx::query_as("SELECT * FROM networks WHERE tenant_id = ? AND is_default = 1")
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(n) = existing {
        return Ok(n);
    }
    create_network(conn, tenant_id, "default", true, plan, now).await
}

/// Creates a network with the lowest free block of the pool.
pub async fn create_network(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    name: &str,
    is_default: bool,
    plan: &AddressPlan,
    now: i64,
) -> Result<NetworkRow, AllocError> {
    let used: Vec<i64> = sqlx::query_scalar("SELECT slot FROM networks ORDER BY slot")
        .fetch_all(&mut *conn)
        .await?;
    let slot = (0..plan.slots())
        .find(|s| used.binary_search(s).is_err())
        .ok_or(AllocError::PoolExhausted(plan.pool))?;
    let block = plan.block(slot).ok_or(AllocError::PoolExhausted(plan.pool))?;
    let gateway = block.hosts().next().ok_or(AllocError::PoolExhausted(plan.pool))?;
    let row = NetworkRow {
        id: new_id(),
        tenant_id: tenant_id.into(),
        name: name.into(),
        slot,
        cidr: block.to_string(),
        gateway: gateway.to_string(),
        mtu: i64::from(plan.mtu),
        vxlan_id: VXLAN_BASE + slot,
        is_default,
        created_at: now,
    };
    sqlx::query(
        "INSERT INTO networks (id, tenant_id, name, slot, cidr, gateway, mtu, vxlan_id, is_default, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.id)
    .bind(&row.tenant_id)
    .bind(&row.name)
    .bind(row.slot)
    .bind(&row.cidr)
    .bind(&row.gateway)
    .bind(row.mtu)
    .bind(row.vxlan_id)
    .bind(row.is_default)
    .bind(row.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// The tenant's network `id`, if it is the tenant's.
pub async fn tenant_network(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<NetworkRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM networks WHERE id = ? AND tenant_id = ?")
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(conn)
        .await
}

/// Gives the VM a card on `network` with the lowest free address; MAC and TAP follow from its number.
pub async fn add_port(
    conn: &mut SqliteConnection,
    vm_id: &str,
    network: &NetworkRow,
    nic_index: i64,
    now: i64,
) -> Result<PortRow, AllocError> {
    let block: Ipv4Net = network
        .cidr
        .parse()
        .map_err(|_| AllocError::NetworkFull(network.id.clone()))?;
    let used: Vec<String> = sqlx::query_scalar("SELECT ip FROM ports WHERE network_id = ?")
        .bind(&network.id)
        .fetch_all(&mut *conn)
        .await?;
    let ip = block
        .hosts()
        .filter(|a| a.octets()[3] >= FIRST_VM_HOST)
        .find(|a| !used.iter().any(|u| u == &a.to_string()))
        .ok_or_else(|| AllocError::NetworkFull(network.name.clone()))?;
    let id = new_id();
    // MAC and TAP need the row's number: insert with unique placeholders (the id), then set them.
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO ports (id, vm_id, network_id, nic_index, mac, ip, tap, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(&id)
    .bind(vm_id)
    .bind(&network.id)
    .bind(nic_index)
    .bind(format!("pending-{id}"))
    .bind(ip.to_string())
    .bind(format!("pending-{id}"))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE ports SET mac = ?, tap = ? WHERE seq = ?")
        .bind(mac_of(seq))
        .bind(tap_of(seq))
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    Ok(PortRow {
        seq,
        id,
        vm_id: vm_id.into(),
        network_id: network.id.clone(),
        nic_index,
        mac: mac_of(seq),
        ip: ip.to_string(),
        tap: tap_of(seq),
        created_at: now,
    })
}

/// The tenant's default security group, created if missing: ingress from its own members only.
pub async fn ensure_default_group(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM security_groups WHERE tenant_id = ? AND is_default = 1")
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO security_groups (id, tenant_id, name, description, is_default, created_at) \
         VALUES (?, ?, 'default', 'Ingress from VMs in this group; egress anywhere.', 1, ?)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    add_rule(conn, &id, "any", None, None, Some(&id), now).await?;
    Ok(id)
}

/// Adds an ingress rule (checked by the caller; the table's CHECKs hold the rest).
pub async fn add_rule(
    conn: &mut SqliteConnection,
    group_id: &str,
    protocol: &str,
    ports: Option<(u16, u16)>,
    source_cidr: Option<&str>,
    source_group_id: Option<&str>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO security_group_rules (id, group_id, protocol, port_min, port_max, source_cidr, \
         source_group_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(group_id)
    .bind(protocol)
    .bind(ports.map(|p| i64::from(p.0)))
    .bind(ports.map(|p| i64::from(p.1)))
    .bind(source_cidr)
    .bind(source_group_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Applies a group to a VM's ports.
pub async fn attach_group(
    conn: &mut SqliteConnection,
    vm_id: &str,
    group_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO vm_security_groups (vm_id, group_id) VALUES (?, ?)")
        .bind(vm_id)
        .bind(group_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Releases everything networked a deleted VM held: its ports (and addresses), group memberships, port
/// forwards, and its floating IP (which stays allocated to the tenant, detached).
pub async fn release_vm(conn: &mut SqliteConnection, vm_id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM ports WHERE vm_id = ?",
        "DELETE FROM vm_security_groups WHERE vm_id = ?",
        "DELETE FROM port_forwards WHERE vm_id = ?",
        "UPDATE floating_ips SET vm_id = NULL WHERE vm_id = ?",
    ] {
        sqlx::query(sql).bind(vm_id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A VM's ports, in card order.
pub async fn ports_of_vm(pool: &SqlitePool, vm_id: &str) -> Result<Vec<PortRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM ports WHERE vm_id = ? ORDER BY nic_index")
        .bind(vm_id)
        .fetch_all(pool)
        .await
}

/// Every row the host's network state is built from (one read transaction, so it is consistent).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub networks: Vec<NetworkRow>,
    pub ports: Vec<PortRow>,
    pub groups: Vec<GroupRow>,
    pub rules: Vec<RuleRow>,
    /// (vm_id, group_id)
    pub vm_groups: Vec<(String, String)>,
    pub forwards: Vec<ForwardRow>,
    pub floating: Vec<FloatingRow>,
}

pub async fn snapshot(pool: &SqlitePool) -> Result<Snapshot, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let snap = Snapshot {
        networks: sqlx::query_as("SELECT * FROM networks ORDER BY slot")
            .fetch_all(&mut *tx)
            .await?,
        ports: sqlx::query_as("SELECT * FROM ports ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?,
        groups: sqlx::query_as("SELECT * FROM security_groups ORDER BY created_at, id")
            .fetch_all(&mut *tx)
            .await?,
        rules: sqlx::query_as("SELECT * FROM security_group_rules ORDER BY created_at, id")
            .fetch_all(&mut *tx)
            .await?,
        vm_groups: sqlx::query_as("SELECT vm_id, group_id FROM vm_security_groups ORDER BY vm_id, group_id")
            .fetch_all(&mut *tx)
            .await?,
        forwards: sqlx::query_as("SELECT * FROM port_forwards ORDER BY protocol, host_port")
            .fetch_all(&mut *tx)
            .await?,
        floating: sqlx::query_as("SELECT * FROM floating_ips ORDER BY address")
            .fetch_all(&mut *tx)
            .await?,
    };
    tx.commit().await?;
    Ok(snap)
}

/// A network with the number of cards on it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NetworkWithPorts {
    #[sqlx(flatten)]
    pub network: NetworkRow,
    pub ports: i64,
}

/// The tenant's networks (every tenant's with `None`).
pub async fn list(pool: &SqlitePool, tenant_id: Option<&str>) -> Result<Vec<NetworkWithPorts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.*, (SELECT COUNT(*) FROM ports p WHERE p.network_id = n.id) AS ports FROM networks n \
         WHERE ?1 IS NULL OR n.tenant_id = ?1 ORDER BY n.tenant_id, n.created_at, n.name",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<NetworkRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM networks WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A limit of the tenant's (its own quota row, else the defaults): `networks`, `floating_ips` or
/// `port_forwards`.
pub async fn limit(conn: &mut SqliteConnection, tenant_id: &str, column: Limit) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM quotas WHERE tenant_id IN (?, '*') ORDER BY tenant_id = '*' LIMIT 1",
        column.as_str()
    );
    sqlx::query_scalar(&sql).bind(tenant_id).fetch_one(conn).await
}

/// The network quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Networks,
    FloatingIps,
    PortForwards,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Networks => "networks",
            Self::FloatingIps => "floating_ips",
            Self::PortForwards => "port_forwards",
        }
    }

    fn count_sql(self) -> &'static str {
        match self {
            Self::Networks => "SELECT COUNT(*) FROM networks WHERE tenant_id = ?",
            Self::FloatingIps => "SELECT COUNT(*) FROM floating_ips WHERE tenant_id = ?",
            Self::PortForwards => "SELECT COUNT(*) FROM port_forwards WHERE tenant_id = ?",
        }
    }
}

/// `Ok(())` when the tenant may have one more of `what`; else (used, limit).
pub async fn check_limit(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    what: Limit,
) -> Result<Result<(), (i64, i64)>, sqlx::Error> {
    let max = limit(conn, tenant_id, what).await?;
    let used: i64 = sqlx::query_scalar(what.count_sql())
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(if used < max { Ok(()) } else { Err((used, max)) })
}

/// How many of each the tenant has now, counted as `check_limit` counts them.
pub async fn usage(
    conn: &mut SqliteConnection,
    tenant_id: &str,
) -> Result<super::quotas::NetworkLimits, sqlx::Error> {
    let mut counts = [0_i64; 3];
    let kinds = [Limit::Networks, Limit::FloatingIps, Limit::PortForwards];
    for (n, what) in counts.iter_mut().zip(kinds) {
        *n = sqlx::query_scalar(what.count_sql())
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
    }
    let [networks, floating_ips, port_forwards] = counts;
    Ok(super::quotas::NetworkLimits {
        networks,
        floating_ips,
        port_forwards,
    })
}

/// Deletes a network that has no cards; false if it has some (or is gone).
pub async fn delete_if_empty(pool: &SqlitePool, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM networks WHERE id = ? AND NOT EXISTS (SELECT 1 FROM ports WHERE network_id = ?)",
    )
    .bind(id)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// A VM's cards with their networks, in card order.
pub async fn vm_nics(pool: &SqlitePool, vm_id: &str) -> Result<Vec<(PortRow, NetworkRow)>, sqlx::Error> {
    let ports = ports_of_vm(pool, vm_id).await?;
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        if let Some(n) = get(pool, &p.network_id).await? {
            out.push((p, n));
        }
    }
    Ok(out)
}

/// The VM whose card on the network with `gateway` has address `ip` (for the metadata service).
pub async fn vm_at(pool: &SqlitePool, gateway: &str, ip: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT p.vm_id FROM ports p JOIN networks n ON n.id = p.network_id WHERE n.gateway = ? AND p.ip = ?",
    )
    .bind(gateway)
    .bind(ip)
    .fetch_optional(pool)
    .await
}

/// Parses an address stored by this module.
pub fn ip(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_taps_and_blocks_follow_their_numbers() {
        assert_eq!(mac_of(1), "52:54:00:00:00:01");
        assert_eq!(mac_of(0x0a0b0c), "52:54:00:0a:0b:0c");
        assert_eq!(tap_of(255), "cptff");
        assert!(tap_of(i64::MAX).len() <= 15);
        let plan = AddressPlan {
            pool: "10.200.0.0/16".parse().unwrap(),
            mtu: 1500,
        };
        assert_eq!(plan.slots(), 256);
        assert_eq!(plan.block(0).unwrap().to_string(), "10.200.0.0/24");
        assert_eq!(plan.block(255).unwrap().to_string(), "10.200.255.0/24");
        assert!(plan.block(256).is_none());
    }
}
