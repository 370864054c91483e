//! The VMs' jail uids (`vms.sandbox_uid`): allocated in SQL from the configured range, one per VM, kept
//! across starts, released when the VM is deleted.

use sqlx::SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum SandboxDbError {
    #[error("Every uid in the sandbox range {0}..={1} is taken: widen sandbox.uid_range")]
    Exhausted(u32, u32),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The VM's uid, allocating the lowest free one of `first..=last` if it has none (or one outside the
/// range, after the range was changed). One statement: the unique index settles a race between two
/// allocations, and the loser tries again.
pub async fn allocate_uid(
    pool: &SqlitePool,
    vm_id: &str,
    first: u32,
    last: u32,
) -> Result<u32, SandboxDbError> {
    for _ in 0..8 {
        let assigned = sqlx::query(
            "UPDATE vms SET sandbox_uid = ( \
               SELECT MIN(c) FROM ( \
                 SELECT ?1 AS c UNION ALL SELECT sandbox_uid + 1 FROM vms WHERE sandbox_uid IS NOT NULL \
               ) WHERE c BETWEEN ?1 AND ?2 \
                 AND c NOT IN (SELECT sandbox_uid FROM vms WHERE sandbox_uid IS NOT NULL)) \
             WHERE id = ?3 AND (sandbox_uid IS NULL OR sandbox_uid NOT BETWEEN ?1 AND ?2)",
        )
        .bind(i64::from(first))
        .bind(i64::from(last))
        .bind(vm_id)
        .execute(pool)
        .await;
        match assigned {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
        let uid: Option<i64> = sqlx::query_scalar("SELECT sandbox_uid FROM vms WHERE id = ?")
            .bind(vm_id)
            .fetch_optional(pool)
            .await?
            .flatten();
        return match uid.and_then(|u| u32::try_from(u).ok()) {
            Some(u) if (first..=last).contains(&u) => Ok(u),
            _ => Err(SandboxDbError::Exhausted(first, last)),
        };
    }
    Err(SandboxDbError::Exhausted(first, last))
}

/// Every VM this database knows, deleted ones included (whose cgroups may be left to sweep).
pub async fn vm_ids(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM vms").fetch_all(pool).await
}

/// Gives the VM's uid back (the VM is deleted).
pub async fn release_uid(pool: &SqlitePool, vm_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE vms SET sandbox_uid = NULL WHERE id = ?")
        .bind(vm_id)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn vm(pool: &SqlitePool, id: &str) {
        sqlx::query(
            "INSERT INTO vms (id, tenant_id, created_by, name, image_id, flavor_id, vcpus, memory_mib, \
             disk_gib, state, created_at, updated_at) VALUES (?, 't', 'u', ?, 'i', 'f', 1, 128, 1, 'starting', 0, 0)",
        )
        .bind(id)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }

    async fn fixture(pool: &SqlitePool) {
        for sql in [
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'acme', 0)",
            "INSERT INTO users (id, tenant_id, username, display_name, password_hash, role, created_at, \
             password_changed_at) VALUES ('u', 't', 'ann', 'Ann', 'x', 'member', 0, 0)",
            "INSERT INTO flavors (id, name, vcpus, memory_mib, disk_gib, hourly_price_minor, created_at) \
             VALUES ('f', 'small', 1, 128, 1, 100, 0)",
            "INSERT INTO images (id, name, os, kernel_path, created_at) VALUES ('i', 'probe', 'test', '/k', 0)",
        ] {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
    }

    #[tokio::test]
    async fn uids_are_unique_kept_reused_after_delete_and_run_out_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(dir.path()).await.unwrap();
        fixture(&pool).await;
        for id in ["a", "b", "c"] {
            vm(&pool, id).await;
        }
        assert_eq!(allocate_uid(&pool, "a", 500, 501).await.unwrap(), 500);
        assert_eq!(allocate_uid(&pool, "b", 500, 501).await.unwrap(), 501);
        // Kept across starts.
        assert_eq!(allocate_uid(&pool, "a", 500, 501).await.unwrap(), 500);
        let err = allocate_uid(&pool, "c", 500, 501).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Every uid in the sandbox range 500..=501 is taken: widen sandbox.uid_range"
        );
        release_uid(&pool, "a").await.unwrap();
        assert_eq!(allocate_uid(&pool, "c", 500, 501).await.unwrap(), 500);
        // A VM whose uid lies outside a changed range gets a new one.
        assert_eq!(allocate_uid(&pool, "b", 600, 700).await.unwrap(), 600);
    }
}
