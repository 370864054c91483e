//! How VMs are reached from outside: port forwards (a port of the uplink address → a VM's port) and
//! floating IPs (an address of the configured pool, 1:1 to a VM). Allocation checks the tenant's quota
//! and picks a free port or address inside one IMMEDIATE transaction; uniqueness is the database's.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sqlx::{FromRow, SqlitePool};

use super::networks::{check_limit, FloatingRow, ForwardRow, Limit};

/// Why an allocation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{what} quota exceeded: {used} of {limit} in use")]
    Quota {
        what: &'static str,
        used: i64,
        limit: i64,
    },
    #[error("Host port {0} is already forwarded")]
    PortTaken(u16),
    #[error("No free host port left in {0}..={1}")]
    NoPort(u16, u16),
    #[error("No floating IP left in {0}")]
    NoAddress(Ipv4Net),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

/// A forward with its VM's name.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ForwardWithVm {
    #[sqlx(flatten)]
    pub forward: ForwardRow,
    pub vm_name: String,
}

/// A floating IP with its VM's name, if attached.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct FloatingWithVm {
    #[sqlx(flatten)]
    pub floating: FloatingRow,
    pub vm_name: Option<String>,
}

pub async fn forwards(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<ForwardWithVm>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.*, v.name AS vm_name FROM port_forwards f JOIN vms v ON v.id = f.vm_id \
         WHERE f.tenant_id = ? ORDER BY f.host_port",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

pub async fn forwards_of_vm(pool: &SqlitePool, vm_id: &str) -> Result<Vec<ForwardWithVm>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.*, v.name AS vm_name FROM port_forwards f JOIN vms v ON v.id = f.vm_id \
         WHERE f.vm_id = ? ORDER BY f.host_port",
    )
    .bind(vm_id)
    .fetch_all(pool)
    .await
}

/// A new forward; `host_port` chosen as the lowest free one in `range` when `None`.
pub struct NewForward<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub vm_id: &'a str,
    pub protocol: &'a str,
    pub host_port: Option<u16>,
    pub vm_port: u16,
    pub range: (u16, u16),
}

/// Creates the forward; returns its host port.
pub async fn create_forward(pool: &SqlitePool, f: &NewForward<'_>, now: i64) -> Result<u16, AccessError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Err((used, limit)) = check_limit(&mut tx, f.tenant_id, Limit::PortForwards).await? {
        return Err(AccessError::Quota {
            what: "port_forwards",
            used,
            limit,
        });
    }
    let taken: Vec<i64> =
        sqlx::query_scalar("SELECT host_port FROM port_forwards WHERE protocol = ? ORDER BY host_port")
            .bind(f.protocol)
            .fetch_all(&mut *tx)
            .await?;
    let is_taken = |p: u16| taken.binary_search(&i64::from(p)).is_ok();
    let port = match f.host_port {
        Some(p) if is_taken(p) => return Err(AccessError::PortTaken(p)),
        Some(p) => p,
        None => (f.range.0..=f.range.1)
            .find(|p| !is_taken(*p))
            .ok_or(AccessError::NoPort(f.range.0, f.range.1))?,
    };
    sqlx::query(
        "INSERT INTO port_forwards (id, tenant_id, vm_id, protocol, host_port, vm_port, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(f.id)
    .bind(f.tenant_id)
    .bind(f.vm_id)
    .bind(f.protocol)
    .bind(i64::from(port))
    .bind(i64::from(f.vm_port))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(port)
}

pub async fn get_forward(pool: &SqlitePool, id: &str) -> Result<Option<ForwardRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM port_forwards WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn delete_forward(pool: &SqlitePool, id: &str, tenant_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM port_forwards WHERE id = ? AND tenant_id = ?")
        .bind(id)
        .bind(tenant_id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(done == 1)
}

pub async fn floating(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<FloatingWithVm>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.*, v.name AS vm_name FROM floating_ips f LEFT JOIN vms v ON v.id = f.vm_id \
         WHERE f.tenant_id = ? ORDER BY f.address",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

pub async fn get_floating(pool: &SqlitePool, id: &str) -> Result<Option<FloatingWithVm>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.*, v.name AS vm_name FROM floating_ips f LEFT JOIN vms v ON v.id = f.vm_id WHERE f.id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn floating_of_vm(pool: &SqlitePool, vm_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT address FROM floating_ips WHERE vm_id = ?")
        .bind(vm_id)
        .fetch_optional(pool)
        .await
}

/// Allocates the lowest free address of `pool_net` to the tenant (skipping the uplink's own two).
pub async fn allocate_floating(
    pool: &SqlitePool,
    id: &str,
    tenant_id: &str,
    pool_net: Ipv4Net,
    reserved: &[Ipv4Addr],
    now: i64,
) -> Result<Ipv4Addr, AccessError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Err((used, limit)) = check_limit(&mut tx, tenant_id, Limit::FloatingIps).await? {
        return Err(AccessError::Quota {
            what: "floating_ips",
            used,
            limit,
        });
    }
    let used: Vec<String> = sqlx::query_scalar("SELECT address FROM floating_ips")
        .fetch_all(&mut *tx)
        .await?;
    let address = pool_net
        .hosts()
        .filter(|a| !reserved.contains(a))
        .find(|a| !used.iter().any(|u| u == &a.to_string()))
        .ok_or(AccessError::NoAddress(pool_net))?;
    sqlx::query(
        "INSERT INTO floating_ips (id, tenant_id, address, vm_id, created_at) VALUES (?, ?, ?, NULL, ?)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(address.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(address)
}

/// Attaches (or with `None` detaches) the tenant's floating IP. False if it is not the tenant's.
pub async fn attach_floating(
    pool: &SqlitePool,
    id: &str,
    tenant_id: &str,
    vm_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE floating_ips SET vm_id = ? WHERE id = ? AND tenant_id = ?")
        .bind(vm_id)
        .bind(id)
        .bind(tenant_id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(done == 1)
}

pub async fn release_floating(pool: &SqlitePool, id: &str, tenant_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM floating_ips WHERE id = ? AND tenant_id = ?")
        .bind(id)
        .bind(tenant_id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(done == 1)
}
