//! Admission control: whether the host can hold what a launch or start commits, checked inside the same
//! IMMEDIATE transaction as the tenant's quota (`quotas::check`), so concurrent launches of all tenants
//! serialise on the write lock and cannot overshoot the host either.
//!
//! Committed = every VM's flavor, over all tenants: memory of the VMs that hold resources (the quota rule,
//! `quotas::HOLDS_RESOURCES`), disk of every VM that exists. The host's limits are the `host_capacity` row
//! the portal wrote at start (`crate::capacity`).

use sqlx::{FromRow, SqliteConnection, SqlitePool};

use super::quotas::HOLDS_RESOURCES;
use crate::capacity::{fmt_mib, Capacity};

/// The one host this portal runs VMs on (a compute agent per host later: one row each).
pub const LOCAL: &str = "local";

/// A launch or start the host cannot hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "Not enough {resource} on the host: {} asked, {} free of {} at overcommit {overcommit:.1}",
    fmt_mib(*.asked_mib), fmt_mib(*.free_mib), fmt_mib(*.capacity_mib)
)]
pub struct HostFull {
    /// `memory` or `disk`.
    pub resource: &'static str,
    pub asked_mib: i64,
    pub free_mib: i64,
    pub capacity_mib: i64,
    pub overcommit: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Full(#[from] HostFull),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

/// The stored limits of a host.
#[derive(Debug, Clone, FromRow)]
pub struct CapacityRow {
    pub cpus: i64,
    pub memory_physical_mib: i64,
    pub memory_mib: i64,
    pub memory_overcommit: f64,
    pub disk_physical_mib: i64,
    pub disk_mib: i64,
    pub disk_overcommit: f64,
}

/// What the VMs of all tenants commit now, in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Committed {
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_mib: i64,
}

pub async fn store(pool: &SqlitePool, host: &str, c: &Capacity, now: i64) -> Result<(), sqlx::Error> {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO host_capacity (host, cpus, memory_physical_mib, memory_mib, memory_overcommit, \
         disk_physical_mib, disk_mib, disk_overcommit, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (host) DO UPDATE SET cpus = excluded.cpus, \
         memory_physical_mib = excluded.memory_physical_mib, memory_mib = excluded.memory_mib, \
         memory_overcommit = excluded.memory_overcommit, disk_physical_mib = excluded.disk_physical_mib, \
         disk_mib = excluded.disk_mib, disk_overcommit = excluded.disk_overcommit, updated_at = excluded.updated_at",
    )
    .bind(host)
    .bind(int(c.cpus))
    .bind(int(c.memory_physical_mib))
    .bind(int(c.memory_mib))
    .bind(c.memory_overcommit)
    .bind(int(c.disk_physical_mib))
    .bind(int(c.disk_mib))
    .bind(c.disk_overcommit)
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn capacity(conn: &mut SqliteConnection, host: &str) -> Result<Option<CapacityRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cpus, memory_physical_mib, memory_mib, memory_overcommit, disk_physical_mib, disk_mib, \
         disk_overcommit FROM host_capacity WHERE host = ?",
    )
    .bind(host)
    .fetch_optional(conn)
    .await
}

pub async fn committed(conn: &mut SqliteConnection) -> Result<Committed, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT COALESCE(SUM(CASE WHEN {HOLDS_RESOURCES} THEN vcpus ELSE 0 END), 0) AS vcpus, \
         COALESCE(SUM(CASE WHEN {HOLDS_RESOURCES} THEN memory_mib ELSE 0 END), 0) AS memory_mib, \
         COALESCE(SUM(disk_gib), 0) * 1024 AS disk_mib \
         FROM vms WHERE state <> 'deleted'"
    ))
    .fetch_one(conn)
    .await
}

/// Refuses if the host cannot hold `memory_mib` more memory and `disk_mib` more disk (memory first). A
/// host without a capacity row admits everything.
pub async fn check(
    conn: &mut SqliteConnection,
    memory_mib: i64,
    disk_mib: i64,
) -> Result<(), AdmissionError> {
    let Some(cap) = capacity(&mut *conn, LOCAL).await? else {
        return Ok(());
    };
    let used = committed(&mut *conn).await?;
    exceeds(&cap, used, memory_mib, disk_mib).map_or(Ok(()), |e| Err(e.into()))
}

/// The first resource `used + asked` would take past the host's capacity.
pub fn exceeds(cap: &CapacityRow, used: Committed, memory_mib: i64, disk_mib: i64) -> Option<HostFull> {
    [
        (
            "memory",
            memory_mib,
            used.memory_mib,
            cap.memory_mib,
            cap.memory_overcommit,
        ),
        ("disk", disk_mib, used.disk_mib, cap.disk_mib, cap.disk_overcommit),
    ]
    .into_iter()
    .find(|(_, asked, used, capacity, _)| *asked > 0 && used + asked > *capacity)
    .map(|(resource, asked, used, capacity, overcommit)| HostFull {
        resource,
        asked_mib: asked,
        free_mib: (capacity - used).max(0),
        capacity_mib: capacity,
        overcommit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: CapacityRow = CapacityRow {
        cpus: 2,
        memory_physical_mib: 24_000,
        memory_mib: 23_962,
        memory_overcommit: 1.0,
        disk_physical_mib: 10_240,
        disk_mib: 10_240,
        disk_overcommit: 1.0,
    };

    #[test]
    fn the_refusal_names_the_resource_what_was_asked_and_what_is_free() {
        let used = Committed {
            vcpus: 4,
            memory_mib: 23_662,
            disk_mib: 0,
        };
        let e = exceeds(&CAP, used, 512, 1024).unwrap();
        assert_eq!(
            e.to_string(),
            "Not enough memory on the host: 512 MiB asked, 300 MiB free of 23.4 GiB at overcommit 1.0"
        );
        assert_eq!(exceeds(&CAP, used, 300, 1024), None, "exactly full is allowed");
        let e = exceeds(&CAP, used, 0, 11 * 1024).unwrap();
        assert_eq!(e.resource, "disk");
        assert_eq!(exceeds(&CAP, used, 0, 0), None, "nothing asked, nothing refused");
    }
}
