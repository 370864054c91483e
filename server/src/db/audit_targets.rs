//! Names for the audit log's targets. Entries store `kind:id` (part of the hash chain, so never rewritten);
//! the admin view shows `name (short id)` looked up here, falling back to the stored text for kinds or ids
//! that have no row (a target never created, like a failed sign-in's unknown username).

use std::collections::HashMap;

use sqlx::SqlitePool;

/// Each kind services write before the colon, with its table and name column.
pub const KINDS: [(&str, &str, &str); 9] = [
    ("vm", "vms", "name"),
    ("user", "users", "username"),
    ("tenant", "tenants", "name"),
    ("token", "api_tokens", "name"),
    ("flavor", "flavors", "name"),
    ("image", "images", "name"),
    ("network", "networks", "name"),
    ("security_group", "security_groups", "name"),
    ("floating_ip", "floating_ips", "address"),
];

/// The query for the name of a `kind`'s row by id.
fn name_query(kind: &str) -> Option<String> {
    KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, table, column)| format!("SELECT {column} FROM {table} WHERE id = ?"))
}

/// The first 8 characters of an id: enough to tell two things of the same name apart.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `kind name (short id)` for `kind:id` targets whose row exists; otherwise the target as stored.
fn label(kind: &str, id: &str, name: Option<String>) -> String {
    match name {
        Some(name) => format!("{} {name} ({})", kind.replace('_', " "), short_id(id)),
        None => format!("{kind}:{id}"),
    }
}

/// Labels for `targets`, each looked up once (a page of the log names the same VM many times).
pub async fn labels(pool: &SqlitePool, targets: &[String]) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut out = HashMap::new();
    for target in targets {
        let target = target.as_str();
        if out.contains_key(target) {
            continue;
        }
        let shown = match target.split_once(':') {
            Some((kind, id)) => match name_query(kind) {
                Some(q) => {
                    let name: Option<String> = sqlx::query_scalar(&q).bind(id).fetch_optional(pool).await?;
                    label(kind, id, name)
                }
                None => target.to_string(),
            },
            None => target.to_string(),
        };
        out.insert(target.to_string(), shown);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_kind_and_a_short_id() {
        let id = "1a2b3c4d-0000-4000-8000-000000000000";
        assert_eq!(label("vm", id, Some("web".into())), "vm web (1a2b3c4d)");
        assert_eq!(
            label("security_group", id, Some("ssh".into())),
            "security group ssh (1a2b3c4d)"
        );
        assert_eq!(label("vm", id, None), format!("vm:{id}"));
        assert_eq!(short_id("abc"), "abc");
    }
}
