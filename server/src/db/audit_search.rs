//! The admin's audit log filtered, ordered and paged as one SQL query with bound parameters. Only rows are
//! chosen here: nothing is rewritten, so the hash chain (`audit::verify`) is untouched by any filter.
//! A target matches by its stored text (`kind:id`) or by the current name of the row it points to.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::audit::AuditRow;
use super::audit_targets::KINDS;
use super::vm_search::like_escape;

/// Which entries; `None`: any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// Part of the actor, action, target (or its name) or detail.
    pub text: Option<&'a str>,
    /// Part of the actor's name, or the actor's id.
    pub actor: Option<&'a str>,
    /// One action.
    pub action: Option<&'a str>,
    /// Part of the target or of its name.
    pub target: Option<&'a str>,
    /// Unix seconds, inclusive.
    pub from: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub limit: i64,
    pub offset: i64,
}

/// `(a.target LIKE pattern OR a.target IN (kind:id of every row whose name matches))`.
fn push_target<'q>(b: &mut QueryBuilder<'q, Sqlite>, pattern: &str) {
    b.push("(a.target LIKE ")
        .push_bind(pattern.to_string())
        .push(" ESCAPE '\\' OR a.target IN (");
    for (i, (kind, table, column)) in KINDS.iter().enumerate() {
        if i > 0 {
            b.push(" UNION ALL ");
        }
        // Table, column and kind are constants of this program, never request text.
        b.push(format!(
            "SELECT '{kind}:' || id FROM {table} WHERE {column} LIKE "
        ))
        .push_bind(pattern.to_string())
        .push(" ESCAPE '\\'");
    }
    b.push("))");
}

fn push_where<'q>(b: &mut QueryBuilder<'q, Sqlite>, f: &AuditFilter<'q>) {
    b.push(" WHERE 1 = 1");
    if let Some(text) = f.text {
        let pattern = format!("%{}%", like_escape(text));
        b.push(" AND (a.actor_name LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR a.action LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR a.detail LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR ");
        push_target(b, &pattern);
        b.push(")");
    }
    if let Some(actor) = f.actor {
        b.push(" AND (a.actor_name LIKE ")
            .push_bind(format!("%{}%", like_escape(actor)))
            .push(" ESCAPE '\\' OR a.actor_id = ")
            .push_bind(actor)
            .push(")");
    }
    if let Some(action) = f.action {
        b.push(" AND a.action = ").push_bind(action);
    }
    if let Some(target) = f.target {
        b.push(" AND ");
        push_target(b, &format!("%{}%", like_escape(target)));
    }
    if let Some(from) = f.from {
        b.push(" AND a.at >= ").push_bind(from);
    }
    if let Some(until) = f.until {
        b.push(" AND a.at < ").push_bind(until);
    }
}

/// The matching entries, in order, one page.
pub async fn search(pool: &SqlitePool, f: &AuditFilter<'_>) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT a.* FROM audit_log a");
    push_where(&mut b, f);
    // Time order is append order: `seq` grows with every entry (and is the primary key, so no sort).
    let dir = if f.oldest_first { "ASC" } else { "DESC" };
    b.push(format!(" ORDER BY a.seq {dir}"));
    b.push(" LIMIT ")
        .push_bind(f.limit)
        .push(" OFFSET ")
        .push_bind(f.offset);
    b.build_query_as::<AuditRow>().fetch_all(pool).await
}

/// How many entries match (all pages).
pub async fn count(pool: &SqlitePool, f: &AuditFilter<'_>) -> Result<i64, sqlx::Error> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM audit_log a");
    push_where(&mut b, f);
    b.build_query_scalar::<i64>().fetch_one(pool).await
}

/// Every action the log holds, in alphabetical order.
pub async fn actions(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT action FROM audit_log ORDER BY action")
        .fetch_all(pool)
        .await
}
