//! `/admin/tenants`: every tenant, creating one, and disabling or enabling it.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::admin::{list_tenants, CreateTenant, SetTenantDisabled};
use crate::components::admin_filters::{tenant_query, TenantFilters};
use crate::components::list_query::SortHeader;
use crate::components::{
    action_error, fmt_time, AdminOnly, EmptyState, ErrorBox, Field, FormError, PageHeader,
};
use crate::model::{filter_tenants, TenantView};

#[component]
pub fn TenantsPage() -> impl IntoView {
    view! {
        <Title text="Tenants"/>
        <PageHeader title="Tenants" subtitle="Organisations that own users, instances and quotas."/>
        <AdminOnly>
            <Tenants/>
        </AdminOnly>
    }
}

#[component]
fn Tenants() -> impl IntoView {
    let create = ServerAction::<CreateTenant>::new();
    let toggle = ServerAction::<SetTenantDisabled>::new();
    let tenants = Resource::new(
        move || (create.version().get(), toggle.version().get()),
        |_| list_tenants(),
    );
    let create_error = action_error(create);
    let toggle_error = action_error(toggle);
    let created = create.value();
    let form_ref = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = created.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Create a tenant"</h2></div>
            {move || match created.get() {
                Some(Ok(t)) => Some(view! {
                    <div class="alert alert-success" role="status" data-testid="tenant-created">
                        <span class="alert-message">"Tenant “"{t.name}"” created."</span>
                    </div>
                }),
                _ => None,
            }}
            <ActionForm action=create node_ref=form_ref>
                <div class="form-row">
                    <Field label="Name" name="name" error=create_error required=true form="tenant"
                        placeholder="e.g. acme"/>
                    <Field label="Description" name="description" error=create_error form="tenant"
                        placeholder="What this tenant is for"/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending()
                            data-testid="create-tenant">"Create tenant"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["name", "description"]/>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"All tenants"</h2></div>
            <TenantFilters/>
            <FormError error=toggle_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading tenants…"</p> }>
                {move || Suspend::new(async move {
                    match tenants.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No tenants yet"/>
                        }.into_any(),
                        Ok(list) => {
                            // Filtered and sorted by the URL's query string (`components/admin_filters.rs`).
                            let list = StoredValue::new(list);
                            let query = leptos_router::hooks::use_query_map();
                            (move || match filter_tenants(list.get_value(), &tenant_query(&query.get())) {
                                Ok(list) => view! { <TenantTable list toggle/> }.into_any(),
                                Err(error) => view! { <ErrorBox error/> }.into_any(),
                            }).into_any()
                        }
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TenantTable(list: Vec<TenantView>, toggle: ServerAction<SetTenantDisabled>) -> impl IntoView {
    let pending = toggle.pending();
    let rows = list
        .into_iter()
        .map(|t| {
            let id = t.id.clone();
            let disabled = t.disabled;
            view! {
                <tr data-testid="tenant-row" data-name=t.name.clone()>
                    <td class="strong">{t.name.clone()}</td>
                    <td class="muted">{t.description.clone()}</td>
                    <td class="num">{t.user_count}</td>
                    <td><StatusBadge disabled/></td>
                    <td title=t.created_at.clone()>{fmt_time(&t.created_at)}</td>
                    <td class="actions">
                        <button
                            type="button"
                            class=if disabled { "btn btn-small" } else { "btn btn-small btn-danger-outline" }
                            data-testid="toggle-tenant"
                            disabled=pending
                            on:click=move |_| {
                                toggle.dispatch(SetTenantDisabled { id: id.clone(), disabled: (!disabled).to_string() });
                            }
                        >
                            {if disabled { "Enable" } else { "Disable" }}
                        </button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="tenants-table">
            <thead>
                <tr>
                    <SortHeader label="Name" key="name"/><th>"Description"</th>
                    <SortHeader label="Users" key="users"/><th>"Status"</th>
                    <SortHeader label="Created" key="created"/><th class="actions">"Actions"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// "Active" or "Disabled", coloured.
#[component]
pub fn StatusBadge(disabled: bool) -> impl IntoView {
    if disabled {
        view! { <span class="badge badge-off">"Disabled"</span> }
    } else {
        view! { <span class="badge badge-on">"Active"</span> }
    }
}
