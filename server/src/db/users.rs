//! Queries on `users`.

use app::model::Role;
use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub tenant_disabled: bool,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub auth_epoch: i64,
    pub created_at: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }

    /// The user may sign in and act: neither they nor their tenant is disabled.
    pub fn is_active(&self) -> bool {
        !self.disabled && !self.tenant_disabled
    }
}

const SELECT: &str = "SELECT u.id, u.tenant_id, t.name AS tenant_name, t.disabled AS tenant_disabled, \
     u.username, u.display_name, u.password_hash, u.role, u.disabled, u.auth_epoch, u.created_at \
     FROM users u JOIN tenants t ON t.id = u.tenant_id";

pub struct NewUserRow<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub now: i64,
}

pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY t.name, u.username"))
        .fetch_all(pool)
        .await
}

pub async fn by_id(pool: &SqlitePool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_username(pool: &SqlitePool, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE u.username = ?"))
        .bind(username)
        .fetch_optional(pool)
        .await
}

pub async fn insert(pool: &SqlitePool, user: NewUserRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, tenant_id, username, display_name, password_hash, role, created_at, \
         password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user.id)
    .bind(user.tenant_id)
    .bind(user.username)
    .bind(user.display_name)
    .bind(user.password_hash)
    .bind(user.role.as_str())
    .bind(user.now)
    .bind(user.now)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Sets a new password hash and ends every session of the user (bumps the auth epoch). Returns the new
/// epoch, or `None` when the user does not exist.
pub async fn set_password(
    db: impl sqlx::SqliteExecutor<'_>,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, auth_epoch = auth_epoch + 1 \
         WHERE id = ? RETURNING auth_epoch",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Returns false when no user has this id. Disabling also ends the user's sessions.
pub async fn set_disabled(
    db: impl sqlx::SqliteExecutor<'_>,
    id: &str,
    disabled: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET disabled = ?, auth_epoch = auth_epoch + ? WHERE id = ?")
        .bind(disabled)
        .bind(i64::from(disabled))
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the sessions of every user of a tenant (bumps their auth epochs).
pub async fn end_sessions_of_tenant(
    db: impl sqlx::SqliteExecutor<'_>,
    tenant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET auth_epoch = auth_epoch + 1 WHERE tenant_id = ?")
        .bind(tenant_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Active admins other than `except_id` (to refuse disabling the last one).
pub async fn other_active_admins(pool: &SqlitePool, except_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.role = 'admin' AND u.disabled = 0 AND t.disabled = 0 AND u.id <> ?",
    )
    .bind(except_id)
    .fetch_one(pool)
    .await
}
