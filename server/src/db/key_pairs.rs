//! Queries on `key_pairs`. Every read and write is scoped to the owning tenant: another tenant's key pair
//! is never read, listed or deleted.

use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct KeyPairRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub public_key: String,
    pub algorithm: String,
    pub bits: i64,
    pub fingerprint: String,
    pub created_at: i64,
}

const SELECT: &str =
    "SELECT id, tenant_id, name, public_key, algorithm, bits, fingerprint, created_at FROM key_pairs";

pub struct NewKeyPair<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub created_by: &'a str,
    pub name: &'a str,
    pub public_key: &'a str,
    pub algorithm: &'a str,
    pub bits: i64,
    pub fingerprint: &'a str,
    pub now: i64,
}

/// Why a key pair was not saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyPairWriteError {
    /// The tenant already holds `limit` key pairs.
    #[error("The tenant already has {0} key pairs")]
    Full(i64),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

/// Saves a key pair unless the tenant already holds `limit` (checked in the same IMMEDIATE transaction).
/// A taken name is a UNIQUE violation (`Db`).
pub async fn insert(pool: &SqlitePool, k: &NewKeyPair<'_>, limit: i64) -> Result<(), KeyPairWriteError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_pairs WHERE tenant_id = ?")
        .bind(k.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
    if held >= limit {
        return Err(KeyPairWriteError::Full(limit));
    }
    sqlx::query(
        "INSERT INTO key_pairs (id, tenant_id, name, public_key, algorithm, bits, fingerprint, created_by, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(k.id)
    .bind(k.tenant_id)
    .bind(k.name)
    .bind(k.public_key)
    .bind(k.algorithm)
    .bind(k.bits)
    .bind(k.fingerprint)
    .bind(k.created_by)
    .bind(k.now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The tenant's key pairs by name.
pub async fn list(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<KeyPairRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = ? ORDER BY name"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// One of the tenant's key pairs.
pub async fn get(pool: &SqlitePool, tenant_id: &str, id: &str) -> Result<Option<KeyPairRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = ? AND id = ?"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Deletes one of the tenant's key pairs; false if it has none by that id.
pub async fn delete(pool: &SqlitePool, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM key_pairs WHERE tenant_id = ? AND id = ?")
        .bind(tenant_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
