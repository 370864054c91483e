//! Queries on `tenants`.

use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub disabled: bool,
    pub created_at: i64,
    pub user_count: i64,
}

const SELECT: &str = "SELECT t.id, t.name, t.description, t.disabled, t.created_at, \
     (SELECT COUNT(*) FROM users u WHERE u.tenant_id = t.id) AS user_count FROM tenants t";

pub async fn list(pool: &SqlitePool) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY t.name"))
        .fetch_all(pool)
        .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE t.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn insert(
    pool: &SqlitePool,
    id: &str,
    name: &str,
    description: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO tenants (id, name, description, created_at) VALUES (?, ?, ?, ?)")
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Returns false when no tenant has this id.
pub async fn set_disabled(
    db: impl sqlx::SqliteExecutor<'_>,
    id: &str,
    disabled: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE tenants SET disabled = ? WHERE id = ?")
        .bind(disabled)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
