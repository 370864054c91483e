//! VM lists that filter and sort (the parameters are the page's query string), renaming a VM, and the
//! admin's view of every tenant's VMs with its actions.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{AdminVmPage, VmView};

/// A page number or size from a form field: empty is "not given".
#[cfg(feature = "ssr")]
pub(crate) fn number(field: &str, value: &str) -> Result<Option<u32>, AppError> {
    match value.trim() {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| AppError::invalid(field, format!("The {field} must be a whole number."))),
    }
}

#[server(prefix = "/api/fn", endpoint = "search_vms")]
pub async fn search_vms(
    #[server(default)] q: String,
    #[server(default)] state: String,
    #[server(default)] image: String,
    #[server(default)] sort: String,
) -> Result<Vec<VmView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let query = crate::model::VmListQuery {
            q,
            state,
            image,
            sort,
            ..crate::model::VmListQuery::default()
        };
        portal.search_vms(&caller, query).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "rename_vm")]
pub async fn rename_vm(id: String, name: String) -> Result<VmView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.rename_vm(&caller, id, name).await })
        .await
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/api/fn", endpoint = "admin_vms")]
pub async fn admin_vms(
    #[server(default)] q: String,
    #[server(default)] state: String,
    #[server(default)] image: String,
    #[server(default)] tenant: String,
    #[server(default)] host: String,
    #[server(default)] sort: String,
    #[server(default)] limit: String,
    #[server(default)] offset: String,
) -> Result<AdminVmPage, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let query = crate::model::VmListQuery {
            q,
            state,
            image,
            tenant,
            host,
            sort,
            limit: number("limit", &limit)?,
            offset: number("offset", &offset)?,
        };
        portal.admin_vms(&caller, query).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "admin_vm_action")]
pub async fn admin_vm_action(id: String, action: String) -> Result<VmView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let action = crate::model::VmAction::parse(&action)
            .ok_or_else(|| AppError::invalid("action", "Unknown action."))?;
        portal.admin_vm_action(&caller, id, action).await
    })
    .await
}
