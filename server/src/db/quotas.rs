//! Tenant quotas and the usage they are checked against.
//!
//! Rule: vCPUs and memory count for every VM whose VMM runs or may run: VMs that are creating, starting,
//! running, rebooting or stopping (a launched VM starts on its own, so `creating` counts too; a stopping
//! VM still runs until its VMM exits), and any VM whose VMM has not been seen to exit (`vmm_run_id` set,
//! e.g. while it is being deleted). Instances and disk count for every VM that exists (not deleted). `check` runs inside the caller's IMMEDIATE transaction, so concurrent launches serialise on
//! the database write lock and can never overshoot.

use sqlx::{FromRow, SqliteConnection, SqlitePool};

/// The tenant id of the defaults row.
pub const DEFAULTS: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Limits {
    pub instances: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
}

/// What a tenant uses now (same shape as the limits).
pub type Usage = Limits;

/// A limit that a request would exceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource} quota exceeded: this needs {needed} more, {used} of {limit} in use ({over} over)")]
pub struct QuotaExceeded {
    pub resource: &'static str,
    pub needed: i64,
    pub used: i64,
    pub limit: i64,
    pub over: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

/// The SQL condition "this VM holds its vCPUs and memory": `vm::lifecycle::HOLDS_RESOURCES` or a VMM run
/// (a test there checks the two agree).
pub const HOLDS_RESOURCES: &str =
    "(state IN ('creating', 'starting', 'running', 'rebooting', 'stopping') OR vmm_run_id IS NOT NULL)";

/// The tenant's limits (its own row, else the defaults).
pub async fn limits(conn: &mut SqliteConnection, tenant_id: &str) -> Result<Limits, sqlx::Error> {
    sqlx::query_as(
        "SELECT instances, vcpus, memory_mib, disk_gib FROM quotas WHERE tenant_id IN (?, '*') \
         ORDER BY tenant_id = '*' LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await
}

/// The tenant's limits and whether they are its own row (false: the defaults), in one statement.
pub async fn effective(conn: &mut SqliteConnection, tenant_id: &str) -> Result<(Limits, bool), sqlx::Error> {
    let (instances, vcpus, memory_mib, disk_gib, own) = sqlx::query_as(
        "SELECT instances, vcpus, memory_mib, disk_gib, tenant_id = ?1 FROM quotas WHERE tenant_id IN (?1, '*') \
         ORDER BY tenant_id = '*' LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await?;
    let limits = Limits {
        instances,
        vcpus,
        memory_mib,
        disk_gib,
    };
    Ok((limits, own))
}

pub async fn usage(conn: &mut SqliteConnection, tenant_id: &str) -> Result<Usage, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT COUNT(*) AS instances, \
         COALESCE(SUM(CASE WHEN {HOLDS_RESOURCES} THEN vcpus ELSE 0 END), 0) AS vcpus, \
         COALESCE(SUM(CASE WHEN {HOLDS_RESOURCES} THEN memory_mib ELSE 0 END), 0) AS memory_mib, \
         COALESCE(SUM(disk_gib), 0) AS disk_gib \
         FROM vms WHERE tenant_id = ? AND state <> 'deleted'"
    ))
    .bind(tenant_id)
    .fetch_one(conn)
    .await
}

/// Refuses if adding `add` to the tenant's usage exceeds a limit (the first one found, in the order
/// instances, vCPUs, memory, disk).
pub async fn check(conn: &mut SqliteConnection, tenant_id: &str, add: Usage) -> Result<(), QuotaError> {
    let limits = limits(&mut *conn, tenant_id).await?;
    let used = usage(&mut *conn, tenant_id).await?;
    exceeds(limits, used, add).map_or(Ok(()), |e| Err(e.into()))
}

/// The first limit `used + add` would exceed.
pub fn exceeds(limits: Limits, used: Usage, add: Usage) -> Option<QuotaExceeded> {
    let checks = [
        ("Instances", add.instances, used.instances, limits.instances),
        ("vCPUs", add.vcpus, used.vcpus, limits.vcpus),
        ("Memory (MiB)", add.memory_mib, used.memory_mib, limits.memory_mib),
        ("Disk (GiB)", add.disk_gib, used.disk_gib, limits.disk_gib),
    ];
    checks
        .into_iter()
        .find(|(_, needed, used, limit)| *needed > 0 && used + needed > *limit)
        .map(|(resource, needed, used, limit)| QuotaExceeded {
            resource,
            needed,
            used,
            limit,
            over: used + needed - limit,
        })
}

/// The tenant's network limits (its own row, else the defaults); `networks::check_limit` enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct NetworkLimits {
    pub networks: i64,
    pub floating_ips: i64,
    pub port_forwards: i64,
}

/// A change of network limits: `None` keeps the value in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkChange {
    pub networks: Option<i64>,
    pub floating_ips: Option<i64>,
    pub port_forwards: Option<i64>,
}

pub async fn network_limits(
    conn: &mut SqliteConnection,
    tenant_id: &str,
) -> Result<NetworkLimits, sqlx::Error> {
    sqlx::query_as(
        "SELECT networks, floating_ips, port_forwards FROM quotas WHERE tenant_id IN (?, '*') \
         ORDER BY tenant_id = '*' LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await
}

/// Sets every limit of `tenant_id` (or of the defaults, `DEFAULTS`) and returns the network limits now in
/// force. Network limits not given keep their value: the tenant's own, or the defaults' when the tenant
/// gets its own row now (not the column defaults, which would silently change what the tenant had).
pub async fn set(
    pool: &SqlitePool,
    tenant_id: &str,
    l: Limits,
    net: NetworkChange,
    now: i64,
) -> Result<NetworkLimits, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let was = network_limits(&mut tx, tenant_id).await?;
    let n = NetworkLimits {
        networks: net.networks.unwrap_or(was.networks),
        floating_ips: net.floating_ips.unwrap_or(was.floating_ips),
        port_forwards: net.port_forwards.unwrap_or(was.port_forwards),
    };
    sqlx::query(
        "INSERT INTO quotas (tenant_id, instances, vcpus, memory_mib, disk_gib, networks, floating_ips, \
         port_forwards, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id) DO UPDATE SET instances = excluded.instances, vcpus = excluded.vcpus, \
         memory_mib = excluded.memory_mib, disk_gib = excluded.disk_gib, networks = excluded.networks, \
         floating_ips = excluded.floating_ips, port_forwards = excluded.port_forwards, \
         updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(l.instances)
    .bind(l.vcpus)
    .bind(l.memory_mib)
    .bind(l.disk_gib)
    .bind(n.networks)
    .bind(n.floating_ips)
    .bind(n.port_forwards)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        instances: 10,
        vcpus: 4,
        memory_mib: 1024,
        disk_gib: 20,
    };

    #[test]
    fn the_first_exceeded_limit_is_named_with_the_overshoot() {
        let used = Limits {
            instances: 3,
            vcpus: 3,
            memory_mib: 512,
            disk_gib: 5,
        };
        let add = Limits {
            instances: 1,
            vcpus: 2,
            memory_mib: 256,
            disk_gib: 1,
        };
        let e = exceeds(LIM, used, add).unwrap();
        assert_eq!(
            (e.resource, e.needed, e.used, e.limit, e.over),
            ("vCPUs", 2, 3, 4, 1)
        );
        assert_eq!(
            e.to_string(),
            "vCPUs quota exceeded: this needs 2 more, 3 of 4 in use (1 over)"
        );
    }

    #[test]
    fn exactly_reaching_a_limit_is_allowed_and_zero_needs_never_fail() {
        let used = Limits {
            instances: 9,
            vcpus: 3,
            memory_mib: 896,
            disk_gib: 19,
        };
        let add = Limits {
            instances: 1,
            vcpus: 1,
            memory_mib: 128,
            disk_gib: 1,
        };
        assert_eq!(exceeds(LIM, used, add), None);
        let over = Limits {
            instances: 99,
            vcpus: 99,
            memory_mib: 99_999,
            disk_gib: 999,
        };
        let none = Limits {
            instances: 0,
            vcpus: 0,
            memory_mib: 0,
            disk_gib: 0,
        };
        assert_eq!(exceeds(LIM, over, none), None, "a start adds no instance or disk");
    }
}
