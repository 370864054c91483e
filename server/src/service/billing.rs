//! Quotas, usage and invoices, and the audit log's admin view.

use std::collections::BTreeMap;

use app::error::AppError;
use app::model::{
    AuditCheck, AuditPage, AuditQuery, Invoice, NetworkLimits, QuotaLimits, QuotaSet, QuotaView,
};
use app::port::{Billing, Caller};
use async_trait::async_trait;

use super::{internal, Service};
use crate::billing::{self, Period};
use crate::db::{self, audit, networks, quotas, tenants, usage};
use crate::domain::parse_id;

fn limits_view(l: quotas::Limits) -> QuotaLimits {
    QuotaLimits {
        instances: l.instances,
        vcpus: l.vcpus,
        memory_mib: l.memory_mib,
        disk_gib: l.disk_gib,
    }
}

fn network_view(l: quotas::NetworkLimits) -> NetworkLimits {
    NetworkLimits {
        networks: l.networks,
        floating_ips: l.floating_ips,
        port_forwards: l.port_forwards,
    }
}

/// `value` if it is between 0 and `max`. The maxima below are stated again, for clients, in the OpenAPI
/// document (`api::schema`).
fn in_range(field: &str, value: i64, max: i64) -> Result<i64, AppError> {
    if (0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::invalid(field, format!("Must be between 0 and {max}.")))
    }
}

/// Every value in range, or the first that is not (nothing is changed then).
fn check_limits(l: &QuotaSet) -> Result<(quotas::Limits, quotas::NetworkChange), AppError> {
    let optional = |field: &str, v: Option<i64>, max: i64| v.map(|v| in_range(field, v, max)).transpose();
    Ok((
        quotas::Limits {
            instances: in_range("instances", l.instances, 10_000)?,
            vcpus: in_range("vcpus", l.vcpus, 100_000)?,
            memory_mib: in_range("memory_mib", l.memory_mib, 1 << 30)?,
            disk_gib: in_range("disk_gib", l.disk_gib, 1 << 24)?,
        },
        quotas::NetworkChange {
            networks: optional("networks", l.networks, 1_000)?,
            floating_ips: optional("floating_ips", l.floating_ips, 1_000)?,
            port_forwards: optional("port_forwards", l.port_forwards, 10_000)?,
        },
    ))
}

impl Service {
    async fn quota_of(&self, tenant_id: &str, tenant_name: &str) -> Result<QuotaView, AppError> {
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let (limits, own) = quotas::effective(&mut conn, tenant_id).await.map_err(internal)?;
        let used = quotas::usage(&mut conn, tenant_id).await.map_err(internal)?;
        let network_limits = quotas::network_limits(&mut conn, tenant_id)
            .await
            .map_err(internal)?;
        let network_used = networks::usage(&mut conn, tenant_id).await.map_err(internal)?;
        Ok(QuotaView {
            tenant_id: tenant_id.to_string(),
            tenant_name: tenant_name.to_string(),
            limits: limits_view(limits),
            used: limits_view(used),
            network_limits: network_view(network_limits),
            network_used: network_view(network_used),
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

    async fn quota_defaults(&self, caller: &Caller) -> Result<QuotaSet, AppError> {
        caller.require_admin()?;
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let limits = quotas::limits(&mut conn, quotas::DEFAULTS)
            .await
            .map_err(internal)?;
        let network = quotas::network_limits(&mut conn, quotas::DEFAULTS)
            .await
            .map_err(internal)?;
        Ok(QuotaSet::full(limits_view(limits), network_view(network)))
    }

    async fn set_quota(&self, caller: &Caller, tenant_id: String, limits: QuotaSet) -> Result<(), AppError> {
        caller.require_admin()?;
        let (limits, network) = check_limits(&limits)?;
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
        let n = quotas::set(self.pool(), &tenant, limits, network, db::now())
            .await
            .map_err(internal)?;
        // The values now in force, the kept network limits included, so the entry alone says what was set.
        let detail = format!(
            "instances={} vcpus={} memory_mib={} disk_gib={} networks={} floating_ips={} port_forwards={}",
            limits.instances,
            limits.vcpus,
            limits.memory_mib,
            limits.disk_gib,
            n.networks,
            n.floating_ips,
            n.port_forwards
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

    async fn audit_log(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, AppError> {
        self.search_audit(caller, query).await
    }

    async fn audit_actions(&self, caller: &Caller) -> Result<Vec<String>, AppError> {
        self.list_audit_actions(caller).await
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
