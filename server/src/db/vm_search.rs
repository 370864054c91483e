//! The VM lists that filter, sort and page (a tenant's Instances, the admin's view of every VM), as one
//! SQL query with bound parameters. Sort keys come from a closed enum, never from the request text, so
//! nothing a user types reaches the SQL except as a bound value.

use app::model::VmState;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::vms::{VmRow, SELECT};

/// What a VM list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Created,
    State,
    Image,
    Tenant,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => Self::Name,
            "created" => Self::Created,
            "state" => Self::State,
            "image" => Self::Image,
            "tenant" => Self::Tenant,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Name => "v.name",
            Self::Created => "v.created_at",
            Self::State => "v.state",
            Self::Image => "i.name",
            Self::Tenant => "(SELECT t.name FROM tenants t WHERE t.id = v.tenant_id)",
        }
    }
}

/// A sort key and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    /// Newest first.
    fn default() -> Self {
        Self {
            key: SortKey::Created,
            descending: true,
        }
    }
}

/// Which VMs (never deleted ones); `None` or empty: any.
#[derive(Debug, Clone, Default)]
pub struct VmFilter<'a> {
    pub tenant_id: Option<&'a str>,
    /// Part of the name, or the start of the id (case-insensitive for ASCII).
    pub text: Option<&'a str>,
    pub state: Option<VmState>,
    /// An image name.
    pub image: Option<&'a str>,
    pub sort: Sort,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// `%` and `_` match themselves in a LIKE pattern with `ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn push_where<'q>(b: &mut QueryBuilder<'q, Sqlite>, f: &VmFilter<'q>) {
    b.push(" WHERE v.state <> 'deleted'");
    if let Some(tenant) = f.tenant_id {
        b.push(" AND v.tenant_id = ").push_bind(tenant);
    }
    if let Some(text) = f.text.filter(|t| !t.is_empty()) {
        let escaped = like_escape(text);
        b.push(" AND (v.name LIKE ")
            .push_bind(format!("%{escaped}%"))
            .push(" ESCAPE '\\' OR v.id LIKE ")
            .push_bind(format!("{escaped}%"))
            .push(" ESCAPE '\\')");
    }
    if let Some(state) = f.state {
        b.push(" AND v.state = ").push_bind(state.as_str());
    }
    if let Some(image) = f.image.filter(|t| !t.is_empty()) {
        b.push(" AND i.name = ").push_bind(image);
    }
}

/// The matching VMs, in order, one page.
pub async fn search(pool: &SqlitePool, f: &VmFilter<'_>) -> Result<Vec<VmRow>, sqlx::Error> {
    let mut b = QueryBuilder::<Sqlite>::new(SELECT);
    push_where(&mut b, f);
    let dir = if f.sort.descending { "DESC" } else { "ASC" };
    // Ties broken so pages never overlap: launches within one second by launch order (rowid), others by
    // name, then id.
    let ties = match f.sort.key {
        SortKey::Created => format!("v.rowid {dir}"),
        _ => format!("v.name {dir}, v.id {dir}"),
    };
    b.push(format!(" ORDER BY {} {dir}, {ties}", f.sort.key.column()));
    b.push(" LIMIT ")
        .push_bind(f.limit.unwrap_or(-1))
        .push(" OFFSET ")
        .push_bind(f.offset);
    b.build_query_as::<VmRow>().fetch_all(pool).await
}

/// How many VMs match (all pages).
pub async fn count(pool: &SqlitePool, f: &VmFilter<'_>) -> Result<i64, sqlx::Error> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM vms v JOIN images i ON i.id = v.image_id");
    push_where(&mut b, f);
    b.build_query_scalar::<i64>().fetch_one(pool).await
}

/// Renames one of a tenant's VMs that is not deleted; false if there is none by that id. A taken name is
/// a UNIQUE violation.
pub async fn rename(
    pool: &SqlitePool,
    tenant_id: &str,
    vm_id: &str,
    name: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE vms SET name = ?, updated_at = ? WHERE id = ? AND tenant_id = ? AND state <> 'deleted'",
    )
    .bind(name)
    .bind(now)
    .bind(vm_id)
    .bind(tenant_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_escape("web_1%"), "web\\_1\\%");
        assert_eq!(like_escape("a\\b"), "a\\\\b");
    }

    #[test]
    fn only_known_sort_keys_parse() {
        assert_eq!(SortKey::parse("name"), Some(SortKey::Name));
        assert_eq!(SortKey::parse("v.name; DROP TABLE vms"), None);
        assert_eq!(SortKey::parse(""), None);
    }
}
