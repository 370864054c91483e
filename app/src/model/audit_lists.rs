//! What the admin's audit log shows and in which order: the query string of `/admin/audit` and of
//! `GET /api/v1/audit` (one set of parameters for both), and one page of entries. Filters only choose
//! which entries are shown; the hash chain is always checked whole.

use serde::{Deserialize, Serialize};

use super::AuditView;

/// Filters, order and page of the audit log. Every field is optional; empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(default, deny_unknown_fields)]
pub struct AuditQuery {
    /// Free text: part of the actor, action, target (its id or its name) or detail (case-insensitive).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub q: String,
    /// Part of the actor's name (as it was when recorded), or the actor's user id.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub actor: String,
    /// One action, e.g. `vm_launch` (lowercase letters, digits and `_`).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub action: String,
    /// Part of the target as stored (`kind:id`) or of the target's current name.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub target: String,
    /// First day, `YYYY-MM-DD` (UTC, inclusive).
    #[cfg_attr(feature = "ssr", param(required = false, example = "2026-11-01"))]
    pub from: String,
    /// Last day, `YYYY-MM-DD` (UTC, inclusive).
    #[cfg_attr(feature = "ssr", param(required = false, example = "2026-11-30"))]
    pub to: String,
    /// `at` (oldest first) or `-at` (newest first, the default).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub sort: String,
    /// Page size, 1–1000 (default 200; the admin page shows 50).
    #[cfg_attr(feature = "ssr", param(required = false, minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    /// Entries to skip.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub offset: Option<u32>,
}

/// The parameters of [`AuditQuery`] that narrow the log (an empty page then means "no match").
pub const AUDIT_FILTERS: [&str; 6] = ["q", "actor", "action", "target", "from", "to"];

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// How many entries match the filters (all pages).
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}
