//! Quotas, usage and invoices, and the audit log's admin view.

use std::collections::BTreeMap;

use app::error::AppError;
use app::model::{AuditCheck, AuditView, Invoice, QuotaLimits, QuotaView};
use app::port::{Billing, Caller};
use async_trait::async_trait;

use super::{internal, Service};
use crate::billing::{self, Period};
use crate::db::{self, audit, audit_targets, format_time, quotas, tenants, usage};
use crate::domain::parse_id;

fn limits_view(l: quotas::Limits) -> QuotaLimits {
    QuotaLimits {
        instances: l.instances,
        vcpus: l.vcpus,
        memory_mib: l.memory_mib,
        disk_gib: l.disk_gib,
    }
}

fn check_limits(l: &QuotaLimits) -> Result<quotas::Limits, AppError> {
    let fields = [
        ("instances", l.instances, 10_000),
        ("vcpus", l.vcpus, 100_000),
        ("memory_mib", l.memory_mib, 1 << 30),
        ("disk_gib", l.disk_gib, 1 << 24),
    ];
    for (field, value, max) in fields {
        if !(0..=max).contains(&value) {
            return Err(AppError::invalid(field, format!("Must be between 0 and {max}.")));
        }
    }
    Ok(quotas::Limits {
        instances: l.instances,
        vcpus: l.vcpus,
        memory_mib: l.memory_mib,
        disk_gib: l.disk_gib,
    })
}

impl Service {
    async fn quota_of(&self, tenant_id: &str, tenant_name: &str) -> Result<QuotaView, AppError> {
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let (limits, own) = quotas::effective(&mut conn, tenant_id).await.map_err(internal)?;
        let used = quotas::usage(&mut conn, tenant_id).await.map_err(internal)?;
        Ok(QuotaView {
            tenant_id: tenant_id.to_string(),
            tenant_name: tenant_name.to_string(),
            limits: limits_view(limits),
            used: limits_view(used),
            is_default: !own,
        })
    }

    async fn tenant_names(&self) -> Result<BTreeMap<String, String>, AppError> {
        let rows = tenants::list(self.pool()).await.map_err(internal)?;
        Ok(rows.into_iter().map(|t| (t.id, t.name)).collect())
    }

    async fn invoice_for(&self, tenant_id: Option<&str>, month: &str) -> Result<Invoice, AppError> {
        let now = db::now();
        let period = Period::parse(month, now).map_err(|e| AppError::invalid("month", e.to_string()))?;
        let intervals = usage::overlapping(self.pool(), tenant_id, period.start, period.end)
            .await
            .map_err(internal)?;
        Ok(billing::invoice(
            &period,
            &intervals,
            now,
            &self.tenant_names().await?,
        ))
    }
}

#[async_trait]
impl Billing for Service {
    async fn my_quota(&self, caller: &Caller) -> Result<QuotaView, AppError> {
        let name = tenants::get(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?
            .map(|t| t.name)
            .unwrap_or_default();
        self.quota_of(&caller.tenant_id, &name).await
    }

    async fn list_quotas(&self, caller: &Caller) -> Result<Vec<QuotaView>, AppError> {
        caller.require_admin()?;
        let mut out = Vec::new();
        for t in tenants::list(self.pool()).await.map_err(internal)? {
            out.push(self.quota_of(&t.id, &t.name).await?);
        }
        Ok(out)
    }

    async fn quota_defaults(&self, caller: &Caller) -> Result<QuotaLimits, AppError> {
        caller.require_admin()?;
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let limits = quotas::limits(&mut conn, quotas::DEFAULTS)
            .await
            .map_err(internal)?;
        Ok(limits_view(limits))
    }

    async fn set_quota(
        &self,
        caller: &Caller,
        tenant_id: String,
        limits: QuotaLimits,
    ) -> Result<(), AppError> {
        caller.require_admin()?;
        let limits = check_limits(&limits)?;
        let tenant = if tenant_id.trim() == quotas::DEFAULTS {
            quotas::DEFAULTS.to_string()
        } else {
            let id = parse_id("Tenant", &tenant_id)?;
            tenants::get(self.pool(), &id)
                .await
                .map_err(internal)?
                .ok_or_else(|| AppError::not_found("Tenant"))?
                .id
        };
        quotas::set(self.pool(), &tenant, limits, db::now())
            .await
            .map_err(internal)?;
        let detail = format!(
            "instances={} vcpus={} memory_mib={} disk_gib={}",
            limits.instances, limits.vcpus, limits.memory_mib, limits.disk_gib
        );
        self.audit(Some(caller), "quota_set", &format!("tenant:{tenant}"), &detail)
            .await;
        Ok(())
    }

    async fn my_invoice(&self, caller: &Caller, month: String) -> Result<Invoice, AppError> {
        self.invoice_for(Some(&caller.tenant_id), &month).await
    }

    async fn all_usage(&self, caller: &Caller, month: String) -> Result<Invoice, AppError> {
        caller.require_admin()?;
        self.invoice_for(None, &month).await
    }

    async fn audit_log(&self, caller: &Caller, limit: u32) -> Result<Vec<AuditView>, AppError> {
        caller.require_admin()?;
        let rows = audit::recent(self.pool(), i64::from(limit.clamp(1, 1000)))
            .await
            .map_err(internal)?;
        let targets: Vec<String> = rows.iter().map(|r| r.target.clone()).collect();
        let names = audit_targets::labels(self.pool(), &targets)
            .await
            .map_err(internal)?;
        Ok(rows
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
            .collect())
    }

    async fn verify_audit(&self, caller: &Caller) -> Result<AuditCheck, AppError> {
        caller.require_admin()?;
        let v = audit::verify(self.pool()).await.map_err(internal)?;
        Ok(AuditCheck {
            entries: v.entries,
            broken_at: v.broken_at,
        })
    }
}
