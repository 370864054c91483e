//! Search, filter and sort for the admin's user and tenant lists: one set of parameters for the pages'
//! query strings and `GET /api/v1/users` / `GET /api/v1/tenants`, applied on the server for the REST API and
//! on the already-loaded list in the pages (these lists are small: every user and tenant of one cloud). An
//! unknown sort key or status is refused, naming the parameter.

use serde::{Deserialize, Serialize};

use super::{TenantView, UserView};
use crate::error::AppError;

/// `GET /api/v1/users` parameters; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(default, deny_unknown_fields)]
pub struct UserListQuery {
    /// Part of the username or display name (case-insensitive).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub q: String,
    /// `admin` or `member`.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub role: String,
    /// `active` or `disabled`.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub status: String,
    /// A tenant name.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub tenant: String,
    /// `username`, `tenant`, `role` or `created`; `-` in front for descending (default `username`).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub sort: String,
}

/// `GET /api/v1/tenants` parameters; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(default, deny_unknown_fields)]
pub struct TenantListQuery {
    /// Part of the name or description (case-insensitive).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub q: String,
    /// `active` or `disabled`.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub status: String,
    /// `name`, `users` or `created`; `-` in front for descending (default `name`).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub sort: String,
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// `None`: any; `Some(disabled)`.
fn status(value: &str) -> Result<Option<bool>, AppError> {
    match value.trim() {
        "" => Ok(None),
        "active" => Ok(Some(false)),
        "disabled" => Ok(Some(true)),
        _ => Err(AppError::invalid("status", "Status is active or disabled.")),
    }
}

/// (key, descending) of a sort parameter whose key is one of `keys`.
fn sort_key<'a>(value: &'a str, keys: &[&str], default: &'a str) -> Result<(&'a str, bool), AppError> {
    let v = match value.trim() {
        "" => default,
        v => v,
    };
    let (desc, key) = v.strip_prefix('-').map_or((false, v), |k| (true, k));
    if keys.contains(&key) {
        Ok((key, desc))
    } else {
        Err(AppError::invalid(
            "sort",
            format!("Sort by {}, with '-' in front for descending.", keys.join(", ")),
        ))
    }
}

/// The users matching `q`, in its order.
pub fn filter_users(list: Vec<UserView>, q: &UserListQuery) -> Result<Vec<UserView>, AppError> {
    let disabled = status(&q.status)?;
    let role = match q.role.trim() {
        "" => None,
        r => {
            Some(super::Role::parse(r).ok_or_else(|| AppError::invalid("role", "Role is admin or member."))?)
        }
    };
    let (key, desc) = sort_key(&q.sort, &["username", "tenant", "role", "created"], "username")?;
    let text = q.q.trim();
    let mut out: Vec<UserView> = list
        .into_iter()
        .filter(|u| text.is_empty() || contains(&u.username, text) || contains(&u.display_name, text))
        .filter(|u| role.is_none_or(|r| u.role == r))
        .filter(|u| disabled.is_none_or(|d| u.disabled == d))
        .filter(|u| q.tenant.trim().is_empty() || u.tenant_name == q.tenant.trim())
        .collect();
    out.sort_by(|a, b| {
        let o = match key {
            "tenant" => a.tenant_name.cmp(&b.tenant_name),
            "role" => a.role.as_str().cmp(b.role.as_str()),
            "created" => a.created_at.cmp(&b.created_at),
            _ => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.username.cmp(&b.username));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(out)
}

/// The tenants matching `q`, in its order.
pub fn filter_tenants(list: Vec<TenantView>, q: &TenantListQuery) -> Result<Vec<TenantView>, AppError> {
    let disabled = status(&q.status)?;
    let (key, desc) = sort_key(&q.sort, &["name", "users", "created"], "name")?;
    let text = q.q.trim();
    let mut out: Vec<TenantView> = list
        .into_iter()
        .filter(|t| text.is_empty() || contains(&t.name, text) || contains(&t.description, text))
        .filter(|t| disabled.is_none_or(|d| t.disabled == d))
        .collect();
    out.sort_by(|a, b| {
        let o = match key {
            "users" => a.user_count.cmp(&b.user_count),
            "created" => a.created_at.cmp(&b.created_at),
            _ => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn user(name: &str, tenant: &str, role: Role, disabled: bool) -> UserView {
        UserView {
            id: name.into(),
            username: name.into(),
            display_name: name.to_uppercase(),
            role,
            tenant_id: tenant.into(),
            tenant_name: tenant.into(),
            disabled,
            created_at: String::new(),
        }
    }

    #[test]
    fn users_filter_by_text_role_status_and_tenant_and_sort_both_ways() {
        let list = vec![
            user("carol", "acme", Role::Member, false),
            user("alice", "acme", Role::Admin, false),
            user("bob", "globex", Role::Member, true),
        ];
        let names = |q: UserListQuery| -> Vec<String> {
            filter_users(list.clone(), &q)
                .unwrap()
                .into_iter()
                .map(|u| u.username)
                .collect()
        };
        assert_eq!(names(UserListQuery::default()), ["alice", "bob", "carol"]);
        assert_eq!(
            names(UserListQuery {
                q: "AR".into(),
                ..Default::default()
            }),
            ["carol"]
        );
        assert_eq!(
            names(UserListQuery {
                role: "member".into(),
                ..Default::default()
            }),
            ["bob", "carol"]
        );
        assert_eq!(
            names(UserListQuery {
                status: "disabled".into(),
                ..Default::default()
            }),
            ["bob"]
        );
        assert_eq!(
            names(UserListQuery {
                tenant: "acme".into(),
                sort: "-username".into(),
                ..Default::default()
            }),
            ["carol", "alice"]
        );
        assert_eq!(
            names(UserListQuery {
                sort: "-tenant".into(),
                ..Default::default()
            }),
            ["bob", "carol", "alice"]
        );
        for (q, field) in [
            (
                UserListQuery {
                    sort: "password".into(),
                    ..Default::default()
                },
                "sort",
            ),
            (
                UserListQuery {
                    role: "root".into(),
                    ..Default::default()
                },
                "role",
            ),
            (
                UserListQuery {
                    status: "gone".into(),
                    ..Default::default()
                },
                "status",
            ),
        ] {
            assert_eq!(filter_users(list.clone(), &q).unwrap_err().field(), Some(field));
        }
    }

    #[test]
    fn tenants_sort_by_user_count() {
        let t = |name: &str, users: i64| TenantView {
            id: name.into(),
            name: name.into(),
            description: String::new(),
            disabled: false,
            user_count: users,
            created_at: String::new(),
        };
        let q = TenantListQuery {
            sort: "-users".into(),
            ..Default::default()
        };
        let out = filter_tenants(vec![t("a", 1), t("b", 3), t("c", 2)], &q).unwrap();
        assert_eq!(
            out.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
    }
}
