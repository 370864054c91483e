//! The hash-chained audit log. `append` links each entry to the previous one inside an IMMEDIATE
//! transaction, so concurrent appends cannot fork the chain; `verify` recomputes it.

use sha2::{Digest, Sha256};
use sqlx::{FromRow, SqlitePool};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub tenant_id: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What is recorded.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor_id: Option<&'a str>,
    pub actor_name: &'a str,
    pub tenant_id: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
}

/// SHA-256 over the previous hash and the entry's fields, each length-prefixed so no two different
/// entries serialise alike.
pub fn entry_hash(prev: &str, at: i64, e: &Entry<'_>) -> String {
    let mut h = Sha256::new();
    let fields = [
        prev,
        &at.to_string(),
        e.actor_id.unwrap_or(""),
        e.actor_name,
        e.tenant_id.unwrap_or(""),
        e.action,
        e.target,
        e.detail,
    ];
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

pub async fn append(pool: &SqlitePool, e: &Entry<'_>, at: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let prev: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let prev = prev.unwrap_or_else(|| GENESIS.to_string());
    let hash = entry_hash(&prev, at, e);
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_name, tenant_id, action, target, detail, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(e.actor_id)
    .bind(e.actor_name)
    .bind(e.tenant_id)
    .bind(e.action)
    .bind(e.target)
    .bind(e.detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The newest entries first.
pub async fn recent(pool: &SqlitePool, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?")
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Where the chain breaks, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub entries: i64,
    /// The first entry whose link or hash does not match.
    pub broken_at: Option<i64>,
}

/// Recomputes the whole chain.
pub async fn verify(pool: &SqlitePool) -> Result<Verification, sqlx::Error> {
    let rows: Vec<AuditRow> = sqlx::query_as("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(pool)
        .await?;
    let mut prev = GENESIS.to_string();
    for row in &rows {
        let e = Entry {
            actor_id: row.actor_id.as_deref(),
            actor_name: &row.actor_name,
            tenant_id: row.tenant_id.as_deref(),
            action: &row.action,
            target: &row.target,
            detail: &row.detail,
        };
        if row.prev_hash != prev || entry_hash(&prev, row.at, &e) != row.hash {
            return Ok(Verification {
                entries: rows.len() as i64,
                broken_at: Some(row.seq),
            });
        }
        prev = row.hash.clone();
    }
    Ok(Verification {
        entries: rows.len() as i64,
        broken_at: None,
    })
}
