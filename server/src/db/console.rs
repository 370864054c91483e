//! Queries on `console_tokens`: issuing a console token and redeeming it once.

use sqlx::{FromRow, SqlitePool};

/// A console token as stored (the secret itself never is).
#[derive(Debug, Clone, FromRow)]
pub struct ConsoleTokenRow {
    pub user_id: String,
    pub tenant_id: String,
    pub vm_id: String,
    pub kind: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The API token the ticket was issued through (`None`: a session).
    pub api_token_id: Option<String>,
}

pub struct NewConsoleToken<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    pub vm_id: &'a str,
    pub kind: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub api_token_id: Option<&'a str>,
}

pub async fn insert(pool: &SqlitePool, t: NewConsoleToken<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO console_tokens (token_hash, user_id, tenant_id, vm_id, kind, created_at, expires_at, \
         api_token_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.token_hash)
    .bind(t.user_id)
    .bind(t.tenant_id)
    .bind(t.vm_id)
    .bind(t.kind)
    .bind(t.now)
    .bind(t.expires_at)
    .bind(t.api_token_id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Marks the token used if it is for `vm_id`, unused and unexpired, in one statement: of two concurrent
/// redemptions only one gets the row back.
pub async fn redeem(
    pool: &SqlitePool,
    token_hash: &str,
    vm_id: &str,
    now: i64,
) -> Result<Option<ConsoleTokenRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE console_tokens SET used_at = ?1 \
         WHERE token_hash = ?2 AND vm_id = ?3 AND used_at IS NULL AND expires_at > ?1 \
         RETURNING user_id, tenant_id, vm_id, kind, expires_at, used_at, api_token_id",
    )
    .bind(now)
    .bind(token_hash)
    .bind(vm_id)
    .fetch_optional(pool)
    .await
}

/// The token, whatever its state (to say why a redemption failed).
pub async fn get(pool: &SqlitePool, token_hash: &str) -> Result<Option<ConsoleTokenRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, tenant_id, vm_id, kind, expires_at, used_at, api_token_id FROM console_tokens \
         WHERE token_hash = ?",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Forgets tokens that expired more than an hour ago (they can no longer be redeemed anyway).
pub async fn prune(pool: &SqlitePool, now: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM console_tokens WHERE expires_at < ?")
        .bind(now - 3600)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}
