//! VM lists that filter, sort and page (a tenant's Instances; the admin's view of every tenant's VMs),
//! renaming a VM, and the power actions an admin may take on any tenant's VM. The list parameters are
//! validated here (an unknown sort key or state is a 422 naming the parameter) and become a
//! `db::vm_search::VmFilter`, which binds every value.

use std::collections::HashMap;
use std::sync::OnceLock;

use app::error::AppError;
use app::model::{AdminVmPage, AdminVmView, VmAction, VmListQuery, VmState, VmView};
use app::port::{Caller, VmLists};
use async_trait::async_trait;

use super::vms::{vm_view, ActionRequest};
use super::{internal, Service};
use crate::db::vm_search::{self, Sort, SortKey, VmFilter};
use crate::db::{self, tenants, vms};
use crate::domain::{parse_id, VmName};

/// Largest page of a VM list.
pub const MAX_PAGE: u32 = 500;
/// The admin's page when the request names none.
pub const DEFAULT_ADMIN_PAGE: u32 = 50;
/// Longest search text and image or tenant name in a list query.
const MAX_TEXT: usize = 100;

/// The compute host this portal places VMs on (one host today; the name the admin view shows and filters
/// by).
pub fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// A list query's checked parts.
struct Checked<'a> {
    filter: VmFilter<'a>,
    limit: Option<u32>,
    offset: u32,
}

fn text<'a>(field: &str, value: &'a str) -> Result<Option<&'a str>, AppError> {
    let v = value.trim();
    if v.len() > MAX_TEXT || v.contains('\0') {
        return Err(AppError::invalid(
            field,
            format!("The {field} filter must be at most {MAX_TEXT} characters."),
        ));
    }
    Ok(Some(v).filter(|v| !v.is_empty()))
}

/// Validates the parameters every VM list shares; `admin` allows the `tenant` sort key.
fn check<'a>(q: &'a VmListQuery, admin: bool, default_limit: Option<u32>) -> Result<Checked<'a>, AppError> {
    let state = match q.state.trim() {
        "" => None,
        s => Some(
            VmState::parse(s)
                .filter(|s| *s != VmState::Deleted)
                .ok_or_else(|| {
                    AppError::invalid(
                        "state",
                        format!("Unknown state \"{s}\"; use e.g. running, stopped or crashed."),
                    )
                })?,
        ),
    };
    let sort = match q.sort.trim() {
        "" => Sort::default(),
        s => {
            let (descending, key) = match s.strip_prefix('-') {
                Some(k) => (true, k),
                None => (false, s),
            };
            let key = SortKey::parse(key)
                .filter(|k| admin || *k != SortKey::Tenant)
                .ok_or_else(|| {
                    let keys = if admin {
                        "name, created, state, image or tenant"
                    } else {
                        "name, created, state or image"
                    };
                    AppError::invalid(
                        "sort",
                        format!("Sort by {keys}, with '-' in front for descending."),
                    )
                })?;
            Sort { key, descending }
        }
    };
    let limit = q.limit.or(default_limit);
    if let Some(l) = limit {
        if !(1..=MAX_PAGE).contains(&l) {
            return Err(AppError::invalid(
                "limit",
                format!("Limit must be between 1 and {MAX_PAGE}."),
            ));
        }
    }
    let offset = q.offset.unwrap_or(0);
    if offset > 1_000_000 {
        return Err(AppError::invalid("offset", "Offset must be at most 1000000."));
    }
    Ok(Checked {
        filter: VmFilter {
            tenant_id: None,
            text: text("q", &q.q)?,
            state,
            image: text("image", &q.image)?,
            sort,
            limit: limit.map(i64::from),
            offset: i64::from(offset),
        },
        limit,
        offset,
    })
}

impl Service {
    /// Any tenant's VM that is not deleted (admins).
    async fn any_live_vm(&self, id: &str) -> Result<vms::VmRow, AppError> {
        let id = parse_id("VM", id)?;
        match vms::get(self.pool(), &id).await.map_err(internal)? {
            Some(vm) if vm.state() != VmState::Deleted => Ok(vm),
            _ => Err(AppError::not_found("VM")),
        }
    }
}

#[async_trait]
impl VmLists for Service {
    async fn search_vms(&self, caller: &Caller, query: VmListQuery) -> Result<Vec<VmView>, AppError> {
        for (field, value) in [("tenant", &query.tenant), ("host", &query.host)] {
            if !value.trim().is_empty() {
                return Err(AppError::invalid(
                    field,
                    format!("Your instances list has no {field} filter."),
                ));
            }
        }
        let mut checked = check(&query, false, None)?;
        checked.filter.tenant_id = Some(&caller.tenant_id);
        let rows = vm_search::search(self.pool(), &checked.filter)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(vm_view).collect())
    }

    async fn rename_vm(&self, caller: &Caller, vm_id: String, name: String) -> Result<VmView, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        let name = VmName::parse(&name)?;
        if name.as_str() == vm.name {
            return Ok(vm_view(&vm));
        }
        match vm_search::rename(self.pool(), &caller.tenant_id, &vm.id, name.as_str(), db::now()).await {
            Ok(true) => {}
            Ok(false) => return Err(AppError::not_found("VM")),
            Err(e) if db::is_unique_violation(&e) => {
                return Err(AppError::invalid(
                    "name",
                    format!("You already have a VM named {}.", name.as_str()),
                ))
            }
            Err(e) => return Err(internal(e)),
        }
        tracing::info!(vm_id = vm.id, tenant_id = caller.tenant_id, "VM renamed");
        self.audit(
            Some(caller),
            "vm_rename",
            &format!("vm:{}", vm.id),
            &format!("name={} new_name={}", vm.name, name.as_str()),
        )
        .await;
        let renamed = self.tenant_vm(caller, &vm.id).await?;
        self.supervisor().announce(&renamed);
        Ok(vm_view(&renamed))
    }

    async fn admin_vms(&self, caller: &Caller, query: VmListQuery) -> Result<AdminVmPage, AppError> {
        caller.require_admin()?;
        let checked = check(&query, true, Some(DEFAULT_ADMIN_PAGE))?;
        let limit = checked.limit.unwrap_or(DEFAULT_ADMIN_PAGE);
        let empty = AdminVmPage {
            items: vec![],
            total: 0,
            limit,
            offset: checked.offset,
        };
        let host = text("host", &query.host)?;
        if host.is_some_and(|h| h != host_name()) {
            return Ok(empty);
        }
        let all_tenants = tenants::list(self.pool()).await.map_err(internal)?;
        let mut filter = checked.filter;
        if let Some(wanted) = text("tenant", &query.tenant)? {
            match all_tenants.iter().find(|t| t.id == wanted || t.name == wanted) {
                Some(t) => filter.tenant_id = Some(&t.id),
                None => return Ok(empty),
            }
        }
        let names: HashMap<&str, &str> = all_tenants
            .iter()
            .map(|t| (t.id.as_str(), t.name.as_str()))
            .collect();
        let rows = vm_search::search(self.pool(), &filter).await.map_err(internal)?;
        let total = vm_search::count(self.pool(), &filter).await.map_err(internal)?;
        let items = rows
            .iter()
            .map(|row| AdminVmView {
                vm: vm_view(row),
                tenant_name: names
                    .get(row.tenant_id.as_str())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                host: host_name().to_string(),
            })
            .collect();
        Ok(AdminVmPage {
            items,
            total: u64::try_from(total).unwrap_or(0),
            limit,
            offset: checked.offset,
        })
    }

    async fn admin_vm_action(
        &self,
        caller: &Caller,
        vm_id: String,
        action: VmAction,
    ) -> Result<VmView, AppError> {
        caller.require_admin()?;
        let vm = self.any_live_vm(&vm_id).await?;
        let admin_action = format!("admin_vm_{}", action.as_str());
        let request = ActionRequest {
            message: format!("{} requested by an admin", action.label()),
            audit_action: &admin_action,
            audit_detail: format!("name={} tenant_id={}", vm.name, vm.tenant_id),
        };
        self.act_on(caller, &vm, action, &request).await
    }
}
