//! Quotas, usage and the audit log for the pages. Admin-only bodies are refused by the service.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{AuditCheck, AuditPage, Invoice, QuotaSet, QuotaView};

#[server(prefix = "/api/fn", endpoint = "my_quota")]
pub async fn my_quota() -> Result<QuotaView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.my_quota(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "list_quotas")]
pub async fn list_quotas() -> Result<Vec<QuotaView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_quotas(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "quota_defaults")]
pub async fn quota_defaults() -> Result<QuotaSet, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.quota_defaults(&caller).await }).await
}

/// The network limits may be left out (forms older than them): an empty or absent one keeps its value.
/// One argument per form field, as `ActionForm` sends them.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api/fn", endpoint = "set_quota")]
pub async fn set_quota(
    tenant_id: String,
    instances: String,
    vcpus: String,
    memory_mib: String,
    disk_gib: String,
    #[server(default)] networks: String,
    #[server(default)] floating_ips: String,
    #[server(default)] port_forwards: String,
) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        use crate::api::args::whole_number;
        let optional = |field: &str, text: &str| {
            (!text.trim().is_empty())
                .then(|| whole_number(field, text))
                .transpose()
        };
        let limits = QuotaSet {
            instances: whole_number("instances", &instances)?,
            vcpus: whole_number("vcpus", &vcpus)?,
            memory_mib: whole_number("memory_mib", &memory_mib)?,
            disk_gib: whole_number("disk_gib", &disk_gib)?,
            networks: optional("networks", &networks)?,
            floating_ips: optional("floating_ips", &floating_ips)?,
            port_forwards: optional("port_forwards", &port_forwards)?,
        };
        portal.set_quota(&caller, tenant_id, limits).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "my_invoice")]
pub async fn my_invoice(month: String) -> Result<Invoice, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.my_invoice(&caller, month).await }).await
}

#[server(prefix = "/api/fn", endpoint = "all_usage")]
pub async fn all_usage(month: String) -> Result<Invoice, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.all_usage(&caller, month).await }).await
}

/// The audit page's entries: the page's query string, each parameter as typed (empty: any); 50 a page
/// unless `limit` says otherwise.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api/fn", endpoint = "audit_log")]
pub async fn audit_log(
    #[server(default)] q: String,
    #[server(default)] actor: String,
    #[server(default)] action: String,
    #[server(default)] target: String,
    #[server(default)] from: String,
    #[server(default)] to: String,
    #[server(default)] sort: String,
    #[server(default)] limit: String,
    #[server(default)] offset: String,
) -> Result<AuditPage, AppError> {
    use crate::api::vm_lists::number;
    crate::port::with_caller(|portal, caller, _| async move {
        let query = crate::model::AuditQuery {
            q,
            actor,
            action,
            target,
            from,
            to,
            sort,
            limit: Some(number("limit", &limit)?.unwrap_or(AUDIT_PAGE)),
            offset: number("offset", &offset)?,
        };
        portal.audit_log(&caller, query).await
    })
    .await
}

/// Entries on one page of the admin's audit log.
pub const AUDIT_PAGE: u32 = 50;

/// Every action in the audit log, for the page's filter.
#[server(prefix = "/api/fn", endpoint = "audit_actions")]
pub async fn audit_actions() -> Result<Vec<String>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.audit_actions(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "verify_audit")]
pub async fn verify_audit() -> Result<AuditCheck, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.verify_audit(&caller).await }).await
}
