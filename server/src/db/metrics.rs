//! Queries on `vm_metrics`: the sampler's pass (insert the new samples, roll ended 5-minute buckets up,
//! prune by age and drop deleted VMs' rows, in one transaction) and the series a graph reads.

use sqlx::{FromRow, SqlitePool};

/// `resolution` of raw samples.
pub const RAW: i64 = 0;
/// `resolution` (and bucket length, seconds) of rolled-up rows.
pub const ROLLUP: i64 = 300;
/// Raw rows of the last few buckets are (re)considered for roll-up each pass: a bucket is rolled up
/// once it has ended, and `INSERT OR IGNORE` keeps a bucket rolled up once.
const ROLLUP_LOOKBACK: i64 = 3 * ROLLUP;

/// One sample: the VMM's counters at `at` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct SampleRow {
    pub at: i64,
    pub cpu_ms: i64,
    pub rss_bytes: i64,
    pub disk_read_bytes: i64,
    pub disk_write_bytes: i64,
}

/// How long each tier is kept, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_secs: i64,
    pub rollup_secs: i64,
}

/// What a pass changed (for the sampler's debug log and the tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassOutcome {
    pub inserted: u64,
    pub rolled_up: u64,
    pub pruned: u64,
}

/// Inserts `samples` (VM id, sample), rolls up every ended bucket of the recent raw rows, prunes rows older
/// than their tier's retention and the rows of VMs deleted within the roll-up retention (older ones'
/// rows are gone by age already), all in one transaction.
pub async fn record_pass(
    pool: &SqlitePool,
    samples: &[(String, SampleRow)],
    now: i64,
    keep: Retention,
) -> Result<PassOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut out = PassOutcome::default();
    for (vm_id, s) in samples {
        out.inserted += sqlx::query(
            "INSERT OR REPLACE INTO vm_metrics \
             (vm_id, resolution, at, cpu_ms, rss_bytes, disk_read_bytes, disk_write_bytes) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(vm_id)
        .bind(RAW)
        .bind(s.at)
        .bind(s.cpu_ms)
        .bind(s.rss_bytes)
        .bind(s.disk_read_bytes)
        .bind(s.disk_write_bytes)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    let current_bucket = now.div_euclid(ROLLUP) * ROLLUP;
    let from = (now - keep.raw_secs).max(current_bucket - ROLLUP_LOOKBACK);
    out.rolled_up = sqlx::query(
        "INSERT OR IGNORE INTO vm_metrics \
         (vm_id, resolution, at, cpu_ms, rss_bytes, disk_read_bytes, disk_write_bytes) \
         SELECT vm_id, ?1, (at / ?1) * ?1 AS bucket, MAX(cpu_ms), CAST(AVG(rss_bytes) AS INTEGER), \
                MAX(disk_read_bytes), MAX(disk_write_bytes) \
         FROM vm_metrics WHERE resolution = ?2 AND at >= ?3 AND at < ?4 GROUP BY vm_id, bucket",
    )
    .bind(ROLLUP)
    .bind(RAW)
    .bind(from)
    .bind(current_bucket)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    for (resolution, keep_secs) in [(RAW, keep.raw_secs), (ROLLUP, keep.rollup_secs)] {
        out.pruned += sqlx::query("DELETE FROM vm_metrics WHERE resolution = ? AND at < ?")
            .bind(resolution)
            .bind(now - keep_secs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    out.pruned += sqlx::query(
        "DELETE FROM vm_metrics WHERE vm_id IN \
         (SELECT id FROM vms WHERE state = 'deleted' AND COALESCE(deleted_at, updated_at) >= ?)",
    )
    .bind(now - keep.rollup_secs - keep.raw_secs)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(out)
}

/// A VM's rows of one tier since `from` (unix seconds), oldest first.
pub async fn series(
    pool: &SqlitePool,
    vm_id: &str,
    resolution: i64,
    from: i64,
) -> Result<Vec<SampleRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, cpu_ms, rss_bytes, disk_read_bytes, disk_write_bytes FROM vm_metrics \
         WHERE vm_id = ? AND resolution = ? AND at >= ? ORDER BY at",
    )
    .bind(vm_id)
    .bind(resolution)
    .bind(from)
    .fetch_all(pool)
    .await
}

/// The running VMs to sample: id, with their vCPU count (for CPU percentages).
pub async fn running_vms(pool: &SqlitePool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT id, vcpus FROM vms WHERE state = 'running' AND vmm_run_id IS NOT NULL")
        .fetch_all(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Retention = Retention {
        raw_secs: 3600,
        rollup_secs: 7 * 86400,
    };
    /// A Tuesday, on a 5-minute boundary.
    const T0: i64 = 1_795_000_200;

    async fn pool_with_vms(dir: &std::path::Path) -> SqlitePool {
        let pool = crate::db::connect(dir).await.expect("database");
        for sql in [
            "INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', 0)",
            "INSERT INTO users (id, tenant_id, username, display_name, password_hash, role, created_at, \
             password_changed_at) VALUES ('u1', 't1', 'ann', 'Ann', 'x', 'member', 0, 0)",
            "INSERT INTO flavors (id, name, vcpus, memory_mib, disk_gib, hourly_price_minor, created_at) \
             VALUES ('f1', 'tiny', 1, 128, 1, 0, 0)",
            "INSERT INTO images (id, name, os, kernel_path, created_at) VALUES ('i1', 'probe', 'x', '/k', 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect("fixture");
        }
        for (id, state) in [("vm-a", "running"), ("vm-b", "running")] {
            sqlx::query(
                "INSERT INTO vms (id, tenant_id, created_by, name, image_id, flavor_id, vcpus, memory_mib, \
                 disk_gib, state, created_at, updated_at) VALUES (?, 't1', 'u1', ?, 'i1', 'f1', 1, 128, 1, ?, 0, 0)",
            )
            .bind(id)
            .bind(id)
            .bind(state)
            .execute(&pool)
            .await
            .expect("vm");
        }
        pool
    }

    fn sample(at: i64, cpu_ms: i64, rss: i64) -> SampleRow {
        SampleRow {
            at,
            cpu_ms,
            rss_bytes: rss,
            disk_read_bytes: cpu_ms * 10,
            disk_write_bytes: cpu_ms * 20,
        }
    }

    async fn count(pool: &SqlitePool, vm: &str, resolution: i64) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM vm_metrics WHERE vm_id = ? AND resolution = ?")
            .bind(vm)
            .bind(resolution)
            .fetch_one(pool)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn ended_buckets_roll_up_once_and_old_rows_are_pruned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_vms(dir.path()).await;
        // Two hours of 10-second samples for vm-a, recorded pass by pass as the sampler would.
        let mut last = PassOutcome::default();
        for i in 0..720 {
            let at = T0 + i * 10;
            let s = sample(at, i * 100, 1000 + (i % 30));
            last = record_pass(&pool, &[("vm-a".into(), s)], at, KEEP)
                .await
                .expect("pass");
        }
        let now = T0 + 719 * 10;
        // Raw rows: only the last hour is left.
        let raw = series(&pool, "vm-a", RAW, 0).await.expect("raw");
        assert_eq!(
            raw.len(),
            361,
            "raw rows at 10 s for one hour, both ends included"
        );
        assert!(raw.iter().all(|r| r.at >= now - 3600));
        assert_eq!(last.inserted, 1);
        // 5-minute rows: every ended bucket of the two hours, each the bucket's last counter and mean RSS.
        let rolled = series(&pool, "vm-a", ROLLUP, 0).await.expect("rollup");
        assert_eq!(
            rolled.len(),
            23,
            "24 buckets in two hours, the last one still running"
        );
        assert_eq!(rolled[0].at, T0);
        assert_eq!(rolled[0].cpu_ms, 29 * 100, "the bucket's last cumulative counter");
        assert_eq!(
            rolled[0].rss_bytes,
            1000 + 14,
            "the bucket's mean RSS (1000..=1029)"
        );
        assert_eq!(rolled[1].disk_write_bytes, 59 * 100 * 20);
        assert!(rolled.windows(2).all(|w| w[1].at - w[0].at == ROLLUP));

        // A week later, the 5-minute rows of the first two hours age out too.
        let later = now + 7 * 86400 + ROLLUP;
        let out = record_pass(&pool, &[("vm-a".into(), sample(later, 999_999, 1))], later, KEEP)
            .await
            .expect("pass");
        assert_eq!(count(&pool, "vm-a", ROLLUP).await, 0, "{out:?}");
        assert_eq!(count(&pool, "vm-a", RAW).await, 1, "only the new sample");
    }

    #[tokio::test]
    async fn a_deleted_vms_rows_go_in_the_next_pass_and_others_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_vms(dir.path()).await;
        let both = |at| {
            vec![
                ("vm-a".to_string(), sample(at, 1, 1)),
                ("vm-b".to_string(), sample(at, 1, 1)),
            ]
        };
        record_pass(&pool, &both(T0), T0, KEEP).await.expect("pass");
        record_pass(&pool, &both(T0 + 10), T0 + 10, KEEP)
            .await
            .expect("pass");
        sqlx::query("UPDATE vms SET state = 'deleted', deleted_at = ? WHERE id = 'vm-b'")
            .bind(T0 + 15)
            .execute(&pool)
            .await
            .expect("delete");
        let out = record_pass(&pool, &[("vm-a".into(), sample(T0 + 20, 2, 1))], T0 + 20, KEEP)
            .await
            .expect("pass");
        assert_eq!(out.pruned, 2, "vm-b's two samples");
        assert_eq!(count(&pool, "vm-b", RAW).await, 0);
        assert_eq!(count(&pool, "vm-a", RAW).await, 3);
        let running = running_vms(&pool).await.expect("running");
        assert!(running.is_empty(), "no VM has a VMM run id here: {running:?}");
    }
}
