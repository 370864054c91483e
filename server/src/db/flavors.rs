//! Queries on `flavors`.

use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct FlavorRow {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub hourly_price_minor: i64,
    pub disabled: bool,
    pub created_at: i64,
}

const SELECT: &str =
    "SELECT id, name, vcpus, memory_mib, disk_gib, hourly_price_minor, disabled, created_at FROM flavors";

pub async fn list(pool: &SqlitePool) -> Result<Vec<FlavorRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY vcpus, memory_mib, name"))
        .fetch_all(pool)
        .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<FlavorRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn insert(pool: &SqlitePool, f: &FlavorRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO flavors (id, name, vcpus, memory_mib, disk_gib, hourly_price_minor, disabled, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&f.id)
    .bind(&f.name)
    .bind(f.vcpus)
    .bind(f.memory_mib)
    .bind(f.disk_gib)
    .bind(f.hourly_price_minor)
    .bind(f.disabled)
    .bind(f.created_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Returns false when no flavor has this id.
pub async fn set_disabled(pool: &SqlitePool, id: &str, disabled: bool) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE flavors SET disabled = ? WHERE id = ?")
        .bind(disabled)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The price of usage intervals opened from now on. Returns false when no flavor has this id.
pub async fn set_price(pool: &SqlitePool, id: &str, hourly_price_minor: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE flavors SET hourly_price_minor = ? WHERE id = ?")
        .bind(hourly_price_minor)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM flavors")
        .fetch_one(pool)
        .await
}
