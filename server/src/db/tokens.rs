//! Queries on `api_tokens`. Every read and write is scoped to the owning user (and so tenant).

use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const SELECT: &str = "SELECT id, user_id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens";

pub struct NewTokenRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub now: i64,
    pub expires_at: Option<i64>,
}

pub async fn insert(pool: &SqlitePool, t: NewTokenRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.id)
    .bind(t.user_id)
    .bind(t.tenant_id)
    .bind(t.name)
    .bind(t.prefix)
    .bind(t.token_hash)
    .bind(t.now)
    .bind(t.expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The caller's live (unrevoked) tokens, newest first.
pub async fn list_for_user(
    pool: &SqlitePool,
    user_id: &str,
    tenant_id: &str,
) -> Result<Vec<TokenRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE user_id = ? AND tenant_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id"
    ))
    .bind(user_id)
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Revokes one of the caller's tokens. Returns false when the caller has no such live token.
pub async fn revoke(
    pool: &SqlitePool,
    id: &str,
    user_id: &str,
    tenant_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND tenant_id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(user_id)
    .bind(tenant_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The owner of a live, unexpired token with this hash.
pub async fn user_for_hash(
    pool: &SqlitePool,
    token_hash: &str,
    now: i64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
    ))
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
}

/// Records use, at most once a minute per token (avoids a write on every API call).
pub async fn touch(pool: &SqlitePool, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    )
    .bind(now)
    .bind(id)
    .bind(now - 60)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Revokes every live token of a user (disabled, password reset). Returns how many.
pub async fn revoke_all_of_user(
    db: impl sqlx::SqliteExecutor<'_>,
    user_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Revokes every live token of a tenant's users (tenant disabled). Returns how many.
pub async fn revoke_all_of_tenant(
    db: impl sqlx::SqliteExecutor<'_>,
    tenant_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(tenant_id)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Whether the token with this id is live (not revoked, not expired).
pub async fn is_live(pool: &SqlitePool, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT 1 FROM api_tokens WHERE id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map(|r| r.is_some())
}
