//! `/admin/quotas`: every tenant's limits next to its usage, edited in place; and the defaults that apply
//! to tenants without limits of their own (shown with the values in force). A save is confirmed next to
//! the form it came from.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::{list_quotas, quota_defaults, SetQuota};
use crate::components::vm::{count, fmt_mib};
use crate::components::{action_error, AdminOnly, ErrorBox, FormError, PageHeader};
use crate::model::{QuotaSet, QuotaView};

#[component]
pub fn QuotasPage() -> impl IntoView {
    view! {
        <Title text="Quotas"/>
        <PageHeader title="Quotas"
            subtitle="Limits per tenant. vCPUs and memory count for instances that are creating, starting, running or rebooting; instances and disk count for every instance that exists. Networks (the default one included), floating IPs (held, attached or not) and port forwards count while they exist."/>
        <AdminOnly>
            <Quotas/>
        </AdminOnly>
    }
}

#[component]
fn Quotas() -> impl IntoView {
    let set = ServerAction::<SetQuota>::new();
    let quotas = Resource::new(move || set.version().get(), |_| list_quotas());
    let defaults = Resource::new(move || set.version().get(), |_| quota_defaults());
    let error = action_error(set);
    // The form whose Save was pressed last: the confirmation shows there.
    let saving = RwSignal::new(None::<String>);
    provide_context(Saving(saving));
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Defaults for tenants without their own limits"</h2></div>
            <Transition fallback=|| view! { <p class="loading">"Loading the defaults…"</p> }>
                {move || Suspend::new(async move {
                    match defaults.await {
                        Ok(limits) => view! {
                            <QuotaForm tenant_id="*".into() label="defaults".into() limits set/>
                        }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
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
    let n = q.network_used;
    let usage = format!(
        "in use: {}, {}, {} memory, {} GiB disk; {}, {}, {}{}",
        count(q.used.instances, "instance", "instances"),
        count(q.used.vcpus, "vCPU", "vCPUs"),
        fmt_mib(u32::try_from(q.used.memory_mib).unwrap_or(u32::MAX)),
        q.used.disk_gib,
        count(n.networks, "network", "networks"),
        count(n.floating_ips, "floating IP", "floating IPs"),
        count(n.port_forwards, "port forward", "port forwards"),
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
            <QuotaForm tenant_id=id label limits=QuotaSet::full(q.limits, q.network_limits) set/>
        </div>
    }
}

/// Which quota form was saved last (its label).
#[derive(Clone, Copy)]
struct Saving(RwSignal<Option<String>>);

/// Seven number inputs (compute, then network), filled with the limits in force, and Save; "Saved"
/// appears once the save went through.
#[component]
fn QuotaForm(
    tenant_id: String,
    label: String,
    limits: QuotaSet,
    set: ServerAction<SetQuota>,
) -> impl IntoView {
    let saving = use_context::<Saving>().map(|s| s.0);
    let mine = StoredValue::new(label.clone());
    let saved = move || {
        saving.is_some_and(|s| s.with(|l| l.as_deref() == Some(mine.get_value().as_str())))
            && !set.pending().get()
            && matches!(set.value().get(), Some(Ok(())))
    };
    let field = move |name: &'static str, key: &str, text: &'static str, value: Option<i64>| {
        let id = format!("q-{label}-{key}");
        let value = value.map(|v| v.to_string()).unwrap_or_default();
        view! {
            <div class="field"><label for=id.clone()>{text}</label>
                <input id=id name=name type="number" min="0" required=true value=value/></div>
        }
    };
    view! {
        <ActionForm action=set>
            <input type="hidden" name="tenant_id" value=tenant_id/>
            <div class="form-row quota-row">
                {field("instances", "instances", "Instances", Some(limits.instances))}
                {field("vcpus", "vcpus", "vCPUs", Some(limits.vcpus))}
                {field("memory_mib", "memory", "Memory (MiB)", Some(limits.memory_mib))}
                {field("disk_gib", "disk", "Disk (GiB)", Some(limits.disk_gib))}
            </div>
            <div class="form-row quota-row">
                {field("networks", "networks", "Networks", limits.networks)}
                {field("floating_ips", "floating-ips", "Floating IPs", limits.floating_ips)}
                {field("port_forwards", "port-forwards", "Port forwards", limits.port_forwards)}
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary" data-testid="save-quota"
                        on:click=move |_| if let Some(s) = saving { s.set(Some(mine.get_value())) }>"Save"</button>
                    <span class="form-status" role="status" data-testid="quota-saved">
                        {move || saved().then_some("\u{2713} Saved")}
                    </span>
                </div>
            </div>
        </ActionForm>
    }
}
