//! `/admin/vms`: every tenant's VMs (admins) — search, filter by tenant, state and host, sort, page, all in
//! the URL's query string and applied by the server; power actions and delete on any VM, each audited.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::admin::list_tenants;
use crate::api::vm_lists::{admin_vms, AdminVmAction};
use crate::components::list_query::{
    state_options, ClearFilters, FilterSelect, FilterText, Pager, SortHeader,
};
use crate::components::vm::{size_line, StateBadge};
use crate::components::{action_error, fmt_time, AdminOnly, ErrorBox, FormError, PageHeader};
use crate::model::{AdminVmPage, AdminVmView, VmAction};

#[component]
pub fn AdminVmsPage() -> impl IntoView {
    view! {
        <Title text="All instances"/>
        <PageHeader title="All instances" subtitle="Every tenant's virtual machines, on every host."/>
        <AdminOnly>
            <AdminVms/>
        </AdminOnly>
    }
}

#[component]
fn AdminVms() -> impl IntoView {
    let act = ServerAction::<AdminVmAction>::new();
    let query = use_query_map();
    let page = Resource::new(
        move || (query.get(), act.version().get()),
        |(q, _)| {
            let p = move |k: &str| q.get(k).unwrap_or_default();
            admin_vms(
                p("q"),
                p("state"),
                p("image"),
                p("tenant"),
                p("host"),
                p("sort"),
                p("limit"),
                p("offset"),
            )
        },
    );
    // Loaded in the browser only: the options are not in the server-rendered page, so hydration matches.
    let tenants = LocalResource::new(list_tenants);
    let tenant_options = Signal::derive(move || {
        tenants
            .get()
            .and_then(Result::ok)
            .map(|list| list.into_iter().map(|t| (t.name.clone(), t.name)).collect())
            .unwrap_or_default()
    });
    let act_error = action_error(act);
    view! {
        <section class="panel">
            <div class="filters" role="search" data-testid="admin-vm-filters">
                <FilterText key="q" label="Search" placeholder="Name or ID"/>
                <FilterSelect key="tenant" label="Tenant" options=tenant_options/>
                <FilterSelect key="state" label="State" options=Signal::derive(state_options)/>
                <FilterText key="host" label="Host" placeholder="Host name"/>
                <ClearFilters/>
            </div>
            <FormError error=act_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading instances…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => view! { <AdminVmTable page act/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AdminVmTable(page: AdminVmPage, act: ServerAction<AdminVmAction>) -> impl IntoView {
    let AdminVmPage {
        items,
        total,
        limit,
        offset,
    } = page;
    if items.is_empty() {
        return view! {
            <p class="muted" data-testid="no-matches">"No instances match these filters."</p>
            <Pager total limit offset/>
        }
        .into_any();
    }
    let rows = items
        .into_iter()
        .map(|row| view! { <AdminVmRow row act/> })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-testid="admin-vms-table">
                <thead>
                    <tr><SortHeader label="Name" key="name"/><SortHeader label="Tenant" key="tenant"/>
                        <SortHeader label="State" key="state"/><SortHeader label="Image" key="image"/>
                        <th>"Flavor"</th><th>"Host"</th><SortHeader label="Created" key="created"/>
                        <th class="actions">"Actions"</th></tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <Pager total limit offset/>
    }
    .into_any()
}

#[component]
fn AdminVmRow(row: AdminVmView, act: ServerAction<AdminVmAction>) -> impl IntoView {
    let AdminVmView {
        vm,
        tenant_name,
        host,
    } = row;
    let confirming = RwSignal::new(None::<VmAction>);
    let name = vm.name.clone();
    let buttons = vm
        .state
        .allowed_actions()
        .iter()
        .copied()
        .map(|a| {
            let id = vm.id.clone();
            let destructive = matches!(a, VmAction::Delete | VmAction::ForceOff);
            view! {
                <button type="button" class="btn btn-small" data-testid=format!("admin-vm-{}", a.as_str())
                    disabled=move || act.pending().get()
                    on:click=move |_| {
                        if destructive {
                            confirming.set(Some(a));
                        } else {
                            act.dispatch(AdminVmAction { id: id.clone(), action: a.as_str().into() });
                        }
                    }>{a.label()}</button>
            }
        })
        .collect_view();
    let id = vm.id.clone();
    let tenant_attr = tenant_name.clone();
    let short_id = vm.id.chars().take(8).collect::<String>();
    view! {
        <tr data-testid="admin-vm-row" data-vm-name=vm.name.clone() data-tenant=tenant_attr>
            <td class="strong">{vm.name.clone()}<div class="muted small"><code>{short_id}</code></div></td>
            <td>{tenant_name}</td>
            <td><StateBadge state=vm.state/></td>
            <td>{vm.image_name.clone()}</td>
            <td>{vm.flavor_name.clone()}<div class="muted small">{size_line(&vm)}</div></td>
            <td>{host}</td>
            <td title=vm.created_at.clone()>{fmt_time(&vm.created_at)}</td>
            <td class="actions">
                <div class="vm-actions">
                    {buttons}
                    {move || confirming.get().map(|a| {
                        let id = id.clone();
                        view! {
                            <span class="confirm" role="alertdialog">
                                {format!("{} {name} of another tenant?", a.label())}" "
                                <button type="button" class="btn btn-small btn-danger" data-testid="confirm-admin-action"
                                    on:click=move |_| {
                                        act.dispatch(AdminVmAction { id: id.clone(), action: a.as_str().into() });
                                        confirming.set(None);
                                    }>{format!("Yes, {}", a.label().to_lowercase())}</button>
                                <button type="button" class="btn btn-small" on:click=move |_| confirming.set(None)>"Cancel"</button>
                            </span>
                        }
                    })}
                </div>
            </td>
        </tr>
    }
}
