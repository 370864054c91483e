//! Quota display: used / limit for each resource, as cards with a bar.

use leptos::prelude::*;

use crate::api::billing::my_quota;
use crate::components::vm::fmt_mib;
use crate::components::vm_changes;
use crate::model::QuotaView;

/// The signed-in tenant's four quotas, refreshed on VM changes.
#[component]
pub fn QuotaCards() -> impl IntoView {
    let changes = vm_changes();
    let quota = Resource::new(move || changes.get(), |_| my_quota());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                quota.await.ok().map(|q| view! { <QuotaRow q/> })
            })}
        </Transition>
    }
}

#[component]
pub fn QuotaRow(q: QuotaView) -> impl IntoView {
    let card = |label: &'static str, key: &'static str, used: i64, limit: i64, show: fn(i64) -> String| {
        let pct = if limit > 0 {
            (used * 100 / limit).min(100)
        } else {
            100
        };
        let class = if used >= limit {
            "quota-bar full"
        } else if pct >= 80 {
            "quota-bar high"
        } else {
            "quota-bar"
        };
        view! {
            <div class="card stat" data-testid=format!("quota-{key}")>
                <div class="stat-label">{label}</div>
                <div class="stat-value">{show(used)}<span class="stat-unit">" / "{show(limit)}</span></div>
                <div class=class><span style=format!("width: {pct}%")></span></div>
            </div>
        }
    };
    let mem = |v: i64| fmt_mib(u32::try_from(v).unwrap_or(u32::MAX));
    view! {
        <section class="cards" aria-label="Quota" data-testid="quota">
            {card("Instances", "instances", q.used.instances, q.limits.instances, |v| v.to_string())}
            {card("vCPUs", "vcpus", q.used.vcpus, q.limits.vcpus, |v| v.to_string())}
            {card("Memory", "memory", q.used.memory_mib, q.limits.memory_mib, mem)}
            {card("Disk", "disk", q.used.disk_gib, q.limits.disk_gib, |v| format!("{v} GiB"))}
        </section>
    }
}
