//! `/admin/quotas`: every tenant's limits next to its usage, edited in place; and the defaults that apply
//! to tenants without limits of their own.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::{list_quotas, SetQuota};
use crate::components::vm::fmt_mib;
use crate::components::{action_error, AdminOnly, ErrorBox, FormError, PageHeader};
use crate::model::QuotaView;

#[component]
pub fn QuotasPage() -> impl IntoView {
    view! {
        <Title text="Quotas"/>
        <PageHeader title="Quotas"
            subtitle="Limits per tenant. vCPUs and memory count for instances that are creating, starting, running or rebooting; instances and disk count for every instance that exists."/>
        <AdminOnly>
            <Quotas/>
        </AdminOnly>
    }
}

#[component]
fn Quotas() -> impl IntoView {
    let set = ServerAction::<SetQuota>::new();
    let quotas = Resource::new(move || set.version().get(), |_| list_quotas());
    let error = action_error(set);
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Defaults for tenants without their own limits"</h2></div>
            <QuotaForm tenant_id="*".into() label="defaults".into() q=None set/>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"Tenants"</h2></div>
            <FormError error fields=&[]/>
            <Transition fallback=|| view! { <p class="loading">"Loading quotas…"</p> }>
                {move || Suspend::new(async move {
                    match quotas.await {
                        Ok(list) => list
                            .into_iter()
                            .map(|q| view! { <TenantQuota q set/> })
                            .collect_view()
                            .into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TenantQuota(q: QuotaView, set: ServerAction<SetQuota>) -> impl IntoView {
    let usage = format!(
        "in use: {} instances, {} vCPUs, {} memory, {} GiB disk{}",
        q.used.instances,
        q.used.vcpus,
        fmt_mib(u32::try_from(q.used.memory_mib).unwrap_or(u32::MAX)),
        q.used.disk_gib,
        if q.is_default { " (default limits)" } else { "" }
    );
    let (name, title, label, id) = (
        q.tenant_name.clone(),
        q.tenant_name.clone(),
        q.tenant_name.clone(),
        q.tenant_id.clone(),
    );
    view! {
        <div class="quota-tenant" data-testid="tenant-quota" data-tenant=name>
            <h3>{title}" "<span class="muted small">{usage}</span></h3>
            <QuotaForm tenant_id=id label q=Some(q) set/>
        </div>
    }
}

/// Four number inputs and Save. With `q` = None the inputs start empty (defaults form).
#[component]
fn QuotaForm(
    tenant_id: String,
    label: String,
    q: Option<QuotaView>,
    set: ServerAction<SetQuota>,
) -> impl IntoView {
    let v = |f: fn(&QuotaView) -> i64| q.as_ref().map(|q| f(q).to_string()).unwrap_or_default();
    let id = |name: &str| format!("q-{label}-{name}");
    let (vi, vc, vm, vd) = (
        v(|q| q.limits.instances),
        v(|q| q.limits.vcpus),
        v(|q| q.limits.memory_mib),
        v(|q| q.limits.disk_gib),
    );
    let (ii, ic, im, id_) = (id("instances"), id("vcpus"), id("memory"), id("disk"));
    view! {
        <ActionForm action=set>
            <input type="hidden" name="tenant_id" value=tenant_id/>
            <div class="form-row">
                <div class="field"><label for=ii.clone()>"Instances"</label>
                    <input id=ii name="instances" type="number" min="0" required=true value=vi/></div>
                <div class="field"><label for=ic.clone()>"vCPUs"</label>
                    <input id=ic name="vcpus" type="number" min="0" required=true value=vc/></div>
                <div class="field"><label for=im.clone()>"Memory (MiB)"</label>
                    <input id=im name="memory_mib" type="number" min="0" required=true value=vm/></div>
                <div class="field"><label for=id_.clone()>"Disk (GiB)"</label>
                    <input id=id_ name="disk_gib" type="number" min="0" required=true value=vd/></div>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary" data-testid="save-quota">"Save"</button>
                </div>
            </div>
        </ActionForm>
    }
}
