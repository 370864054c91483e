//! The usage ledger: one interval per VMM process, opened when the portal commits to starting a VMM and
//! closed when that VMM's exit is known (`db::vms::vmm_started` / `vmm_ended`, in the same transaction as
//! the run id), never by polling: every second a VM holds host resources is recorded once and only once.

use sqlx::{FromRow, SqliteConnection, SqlitePool};

/// Opens an interval for the VM at `at`, with its flavor and the flavor's price now.
pub async fn open(conn: &mut SqliteConnection, vm_id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_intervals (vm_id, tenant_id, vm_name, flavor_id, flavor_name, vcpus, memory_mib, \
         hourly_price_minor, started_at) \
         SELECT v.id, v.tenant_id, v.name, v.flavor_id, f.name, v.vcpus, v.memory_mib, f.hourly_price_minor, ? \
         FROM vms v JOIN flavors f ON f.id = v.flavor_id WHERE v.id = ? \
         AND NOT EXISTS (SELECT 1 FROM usage_intervals u WHERE u.vm_id = v.id AND u.ended_at IS NULL)",
    )
    .bind(at)
    .bind(vm_id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Closes the VM's open interval at `at` (never before it started).
pub async fn close(conn: &mut SqliteConnection, vm_id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE usage_intervals SET ended_at = MAX(started_at, ?) WHERE vm_id = ? AND ended_at IS NULL",
    )
    .bind(at)
    .bind(vm_id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Closes, at `now`, every open interval of a VM that has no VMM run: intervals a portal older than the
/// run ids left open. Run once at start; returns how many it closed.
pub async fn close_without_run(pool: &SqlitePool, now: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE usage_intervals SET ended_at = MAX(started_at, ?) WHERE ended_at IS NULL \
         AND vm_id IN (SELECT id FROM vms WHERE vmm_run_id IS NULL)",
    )
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Interval {
    pub vm_id: String,
    pub tenant_id: String,
    pub vm_name: String,
    pub flavor_name: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub hourly_price_minor: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// Intervals overlapping [from, to), for one tenant or all (`None`).
pub async fn overlapping(
    pool: &SqlitePool,
    tenant_id: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<Interval>, sqlx::Error> {
    sqlx::query_as(
        "SELECT vm_id, tenant_id, vm_name, flavor_name, vcpus, memory_mib, hourly_price_minor, started_at, ended_at \
         FROM usage_intervals WHERE (? IS NULL OR tenant_id = ?) AND started_at < ? \
         AND (ended_at IS NULL OR ended_at > ?) ORDER BY started_at, id",
    )
    .bind(tenant_id)
    .bind(tenant_id)
    .bind(to)
    .bind(from)
    .fetch_all(pool)
    .await
}
