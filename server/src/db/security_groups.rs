//! Security groups, their ingress rules and which VMs are in them.

use sqlx::{FromRow, SqlitePool};

pub use super::networks::{add_rule, attach_group, GroupRow, RuleRow};

/// A group with the number of VMs in it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct GroupWithVms {
    #[sqlx(flatten)]
    pub group: GroupRow,
    pub vms: i64,
}

pub async fn list(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<GroupWithVms>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.*, (SELECT COUNT(*) FROM vm_security_groups m WHERE m.group_id = g.id) AS vms \
         FROM security_groups g WHERE g.tenant_id = ? ORDER BY g.is_default DESC, g.name",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<GroupWithVms>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.*, (SELECT COUNT(*) FROM vm_security_groups m WHERE m.group_id = g.id) AS vms \
         FROM security_groups g WHERE g.id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn rules(pool: &SqlitePool, group_id: &str) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM security_group_rules WHERE group_id = ? ORDER BY created_at, id")
        .bind(group_id)
        .fetch_all(pool)
        .await
}

pub async fn create(
    pool: &SqlitePool,
    id: &str,
    tenant_id: &str,
    name: &str,
    description: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO security_groups (id, tenant_id, name, description, is_default, created_at) \
         VALUES (?, ?, ?, ?, 0, ?)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Deletes a group that is not the default and has no VMs; false otherwise. Rules of other groups
/// naming it as their source go with it.
pub async fn delete_unused(pool: &SqlitePool, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM security_groups WHERE id = ? AND is_default = 0 \
         AND NOT EXISTS (SELECT 1 FROM vm_security_groups WHERE group_id = ?)",
    )
    .bind(id)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub async fn delete_rule(pool: &SqlitePool, group_id: &str, rule_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM security_group_rules WHERE id = ? AND group_id = ?")
        .bind(rule_id)
        .bind(group_id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(done == 1)
}

/// The groups of a VM, by name.
pub async fn of_vm(pool: &SqlitePool, vm_id: &str) -> Result<Vec<GroupRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.* FROM security_groups g JOIN vm_security_groups m ON m.group_id = g.id \
         WHERE m.vm_id = ? ORDER BY g.name",
    )
    .bind(vm_id)
    .fetch_all(pool)
    .await
}

/// Replaces a VM's groups in one transaction.
pub async fn set_for_vm(pool: &SqlitePool, vm_id: &str, group_ids: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM vm_security_groups WHERE vm_id = ?")
        .bind(vm_id)
        .execute(&mut *tx)
        .await?;
    for g in group_ids {
        attach_group(&mut tx, vm_id, g).await?;
    }
    tx.commit().await
}
