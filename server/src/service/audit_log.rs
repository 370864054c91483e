//! The admin's view of the audit log: the page's and `GET /api/v1/audit`'s parameters checked (a bad date,
//! action, sort or page is a 422 naming the parameter) and turned into a `db::audit_search::AuditFilter`,
//! and the matching entries with their targets named.

use app::error::AppError;
use app::model::{AuditPage, AuditQuery, AuditView};
use app::port::Caller;
use time::{Date, Month, Time};

use super::{internal, Service};
use crate::db::audit_search::{self, AuditFilter};
use crate::db::{audit_targets, format_time};

/// Largest page of the audit log.
pub const MAX_LIMIT: u32 = 1000;
/// The page when the request names none.
pub const DEFAULT_LIMIT: u32 = 200;
/// Longest text filter.
const MAX_TEXT: usize = 100;

fn text<'a>(field: &str, value: &'a str) -> Result<Option<&'a str>, AppError> {
    let v = value.trim();
    if v.chars().count() > MAX_TEXT || v.contains('\0') {
        return Err(AppError::invalid(
            field,
            format!("The {field} filter must be at most {MAX_TEXT} characters."),
        ));
    }
    Ok(Some(v).filter(|v| !v.is_empty()))
}

/// Unix seconds at the start of a UTC day written `YYYY-MM-DD`.
fn day_start(field: &str, value: &str) -> Result<Option<i64>, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        AppError::invalid(
            field,
            format!("\"{v}\" is not a date; write it as YYYY-MM-DD, e.g. 2026-11-28."),
        )
    };
    let mut parts = v.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    Ok(Some(date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()))
}

/// Validates `q` into a filter.
fn check(q: &AuditQuery) -> Result<AuditFilter<'_>, AppError> {
    let action = text("action", &q.action)?;
    if let Some(a) = action {
        if !a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(AppError::invalid(
                "action",
                "An action is lowercase letters, digits and '_', e.g. vm_launch.",
            ));
        }
    }
    let from = day_start("from", &q.from)?;
    // The last day counts whole.
    let until = day_start("to", &q.to)?.map(|t| t + 86_400);
    if let (Some(from), Some(until)) = (from, until) {
        if from >= until {
            return Err(AppError::invalid("to", "The last day comes before the first."));
        }
    }
    let oldest_first = match q.sort.trim() {
        "" | "-at" => false,
        "at" => true,
        _ => {
            return Err(AppError::invalid(
                "sort",
                "Sort by at (oldest first) or -at (newest first).",
            ))
        }
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("Limit must be between 1 and {MAX_LIMIT}."),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > 10_000_000 {
        return Err(AppError::invalid("offset", "Offset must be at most 10000000."));
    }
    Ok(AuditFilter {
        text: text("q", &q.q)?,
        actor: text("actor", &q.actor)?,
        action,
        target: text("target", &q.target)?,
        from,
        until,
        oldest_first,
        limit: i64::from(limit),
        offset: i64::from(offset),
    })
}

impl Service {
    /// The entries matching `query`, one page, with their targets named (admins).
    pub(super) async fn search_audit(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> Result<AuditPage, AppError> {
        caller.require_admin()?;
        let filter = check(&query)?;
        let rows = audit_search::search(self.pool(), &filter)
            .await
            .map_err(internal)?;
        let total = audit_search::count(self.pool(), &filter)
            .await
            .map_err(internal)?;
        let targets: Vec<String> = rows.iter().map(|r| r.target.clone()).collect();
        let names = audit_targets::labels(self.pool(), &targets)
            .await
            .map_err(internal)?;
        let items = rows
            .into_iter()
            .map(|r| AuditView {
                target_name: names.get(&r.target).cloned().unwrap_or_else(|| r.target.clone()),
                seq: r.seq,
                at: format_time(r.at),
                actor: r.actor_name,
                tenant_id: r.tenant_id,
                action: r.action,
                target: r.target,
                detail: r.detail,
                hash: r.hash,
            })
            .collect();
        Ok(AuditPage {
            items,
            total: u64::try_from(total).unwrap_or(0),
            limit: u32::try_from(filter.limit).unwrap_or(DEFAULT_LIMIT),
            offset: u32::try_from(filter.offset).unwrap_or(0),
        })
    }

    /// Every action in the log (admins).
    pub(super) async fn list_audit_actions(&self, caller: &Caller) -> Result<Vec<String>, AppError> {
        caller.require_admin()?;
        audit_search::actions(self.pool()).await.map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(from: &str, to: &str) -> AuditQuery {
        AuditQuery {
            from: from.into(),
            to: to.into(),
            ..AuditQuery::default()
        }
    }

    #[test]
    fn days_are_whole_utc_days() {
        let q = query("2026-11-28", "2026-11-28");
        let f = check(&q).unwrap();
        assert_eq!(f.from, Some(1_795_824_000));
        assert_eq!(f.until, Some(1_795_824_000 + 86_400));
        let none = query("", "");
        assert_eq!(check(&none).unwrap().from, None);
    }

    #[test]
    fn bad_dates_sorts_and_actions_name_their_parameter() {
        for (q, field) in [
            (query("2026-13-01", ""), "from"),
            (query("28.11.2026", ""), "from"),
            (query("", "2026-02-30"), "to"),
            (query("", "yesterday"), "to"),
            (query("2026-11-28", "2026-11-01"), "to"),
            (
                AuditQuery {
                    sort: "name".into(),
                    ..AuditQuery::default()
                },
                "sort",
            ),
            (
                AuditQuery {
                    action: "vm launch'".into(),
                    ..AuditQuery::default()
                },
                "action",
            ),
            (
                AuditQuery {
                    limit: Some(0),
                    ..AuditQuery::default()
                },
                "limit",
            ),
        ] {
            match check(&q) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field, "{q:?}"),
                other => panic!("{q:?}: {other:?}"),
            }
        }
    }
}
