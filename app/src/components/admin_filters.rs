//! Search and filter bars of the admin's user, tenant and audit lists; their state is the URL's query
//! string (`list_query.rs`), read into `UserListQuery` / `TenantListQuery` (applied by `model::filter_*`)
//! and `AuditQuery` (applied by the server).

use leptos::prelude::*;
use leptos_router::params::ParamsMap;

use crate::api::billing::audit_actions;
use crate::components::list_query::{ClearFilters, FilterDate, FilterSelect, FilterText};
use crate::model::{TenantListQuery, UserListQuery};

fn param(map: &ParamsMap, key: &str) -> String {
    map.get(key).unwrap_or_default()
}

pub fn user_query(map: &ParamsMap) -> UserListQuery {
    UserListQuery {
        q: param(map, "q"),
        role: param(map, "role"),
        status: param(map, "status"),
        tenant: param(map, "tenant"),
        sort: param(map, "sort"),
    }
}

pub fn tenant_query(map: &ParamsMap) -> TenantListQuery {
    TenantListQuery {
        q: param(map, "q"),
        status: param(map, "status"),
        sort: param(map, "sort"),
    }
}

fn pairs(values: &[&str]) -> Vec<(String, String)> {
    values.iter().map(|v| (v.to_string(), v.to_string())).collect()
}

#[component]
pub fn UserFilters() -> impl IntoView {
    view! {
        <div class="filters" role="search" data-testid="user-filters">
            <FilterText key="q" label="Search" placeholder="Username or name"/>
            <FilterSelect key="role" label="Role" options=Signal::derive(|| pairs(&["admin", "member"]))/>
            <FilterSelect key="status" label="Status" options=Signal::derive(|| pairs(&["active", "disabled"]))/>
            <FilterText key="tenant" label="Tenant" placeholder="Tenant name"/>
            <ClearFilters/>
        </div>
    }
}

#[component]
pub fn TenantFilters() -> impl IntoView {
    view! {
        <div class="filters" role="search" data-testid="tenant-filters">
            <FilterText key="q" label="Search" placeholder="Name or description"/>
            <FilterSelect key="status" label="Status" options=Signal::derive(|| pairs(&["active", "disabled"]))/>
            <ClearFilters/>
        </div>
    }
}

#[component]
pub fn AuditFilters() -> impl IntoView {
    // Loaded in the browser only: the options are not in the server-rendered page, so hydration matches.
    let actions = LocalResource::new(audit_actions);
    let action_options = Signal::derive(move || {
        actions
            .get()
            .and_then(Result::ok)
            .map(|list| list.into_iter().map(|a| (a.clone(), a)).collect())
            .unwrap_or_default()
    });
    view! {
        <div class="filters" role="search" data-testid="audit-filters">
            <FilterText key="q" label="Search" placeholder="Anything in the entry"/>
            <FilterText key="actor" label="Who" placeholder="User name"/>
            <FilterSelect key="action" label="Action" options=action_options/>
            <FilterText key="target" label="Target" placeholder="Name or ID"/>
            <FilterDate key="from" label="From"/>
            <FilterDate key="to" label="To"/>
            <ClearFilters/>
        </div>
    }
}
