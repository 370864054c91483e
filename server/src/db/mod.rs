//! The SQLite database: one pool, WAL mode, foreign keys on, migrations applied at start.
//! Queries live in the submodules, one per table group; services never write SQL.

pub mod admission;
pub mod audit;
pub mod audit_search;
pub mod audit_targets;
pub mod boot;
pub mod console;
pub mod flavors;
pub mod images;
pub mod key_pairs;
pub mod metrics;
pub mod networks;
pub mod public_access;
pub mod quotas;
pub mod sandbox;
pub mod security_groups;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod vm_search;
pub mod vms;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("Failed to open the database at {path}")]
    Open { path: String, source: sqlx::Error },
    #[error("Failed to apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Opens (creating if needed) `<data_dir>/portal.db` and applies migrations.
pub async fn connect(data_dir: &Path) -> Result<SqlitePool, DbError> {
    let path = data_dir.join("portal.db");
    let display = path.display().to_string();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{display}"))
        .map_err(|source| DbError::Open {
            path: display.clone(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Open {
            path: display,
            source,
        })?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .map_err(DbError::Migrate)?;
    Ok(pool)
}

/// Current time in unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as an RFC 3339 UTC timestamp for display.
pub fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// True when an error is a UNIQUE constraint violation (a name already taken).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
