//! Quota display: used / limit for each resource, as cards with a bar (compute, and optionally network).

use leptos::prelude::*;

use crate::api::billing::my_quota;
use crate::components::vm::fmt_mib;
use crate::components::vm_changes;
use crate::model::QuotaView;

/// The signed-in tenant's four compute quotas, refreshed on VM changes; with `network`, a second row with
/// the three network quotas (the Usage page; the dashboard keeps to what a launch needs).
#[component]
pub fn QuotaCards(#[prop(optional)] network: bool) -> impl IntoView {
    let changes = vm_changes();
    let quota = Resource::new(move || changes.get(), |_| my_quota());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                quota.await.ok().map(|q| view! { <QuotaRow q network/> })
            })}
        </Transition>
    }
}

/// One quota as a card: used / limit and a bar that turns amber at 80 % and red when full.
fn card(
    label: &'static str,
    key: &'static str,
    used: i64,
    limit: i64,
    show: fn(i64) -> String,
) -> impl IntoView {
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
}

#[component]
pub fn QuotaRow(q: QuotaView, #[prop(optional)] network: bool) -> impl IntoView {
    let mem = |v: i64| fmt_mib(u32::try_from(v).unwrap_or(u32::MAX));
    let plain = |v: i64| v.to_string();
    let (nl, nu) = (q.network_limits, q.network_used);
    view! {
        <section class="cards" aria-label="Quota" data-testid="quota">
            {card("Instances", "instances", q.used.instances, q.limits.instances, plain)}
            {card("vCPUs", "vcpus", q.used.vcpus, q.limits.vcpus, plain)}
            {card("Memory", "memory", q.used.memory_mib, q.limits.memory_mib, mem)}
            {card("Disk", "disk", q.used.disk_gib, q.limits.disk_gib, |v| format!("{v} GiB"))}
        </section>
        {network.then(|| view! {
            <section class="cards" aria-label="Network quota" data-testid="network-quota">
                {card("Networks", "networks", nu.networks, nl.networks, plain)}
                {card("Floating IPs", "floating-ips", nu.floating_ips, nl.floating_ips, plain)}
                {card("Port forwards", "port-forwards", nu.port_forwards, nl.port_forwards, plain)}
            </section>
        })}
    }
}
