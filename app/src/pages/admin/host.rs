//! `/admin/host`: the machine VMs run on — CPUs, memory and disk (physical, what VMs may commit under
//! admission control, committed by VMs, really used), the KVM mode, and every VM on it with its VMM's jail
//! (uid, and the CPU, memory and task limits its cgroup enforces; "—" when no VMM runs or the sandbox is off).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::host::get_host;
use crate::components::vm::fmt_mib;
use crate::components::{AdminOnly, ErrorBox, PageHeader};
use crate::model::{HostResource, HostView, HostVm, HostVmJail, Me};

/// MiB as people read them (u64 MiB, for host sizes beyond `u32`).
fn mib(v: u64) -> String {
    match u32::try_from(v) {
        Ok(m) => fmt_mib(m),
        Err(_) => format!("{:.1} TiB", v as f64 / (1024.0 * 1024.0)),
    }
}

fn bytes(v: u64) -> String {
    if v < 1024 * 1024 {
        format!("{} KiB", v.div_ceil(1024))
    } else {
        mib(v / (1024 * 1024))
    }
}

#[component]
fn ResourceRow(name: &'static str, r: HostResource, sizes: bool) -> impl IntoView {
    let show = move |v: u64| if sizes { mib(v) } else { v.to_string() };
    let capacity = if (r.overcommit - 1.0).abs() > f64::EPSILON || r.capacity != r.physical {
        format!("{} (×{:.1})", show(r.capacity), r.overcommit)
    } else {
        show(r.capacity)
    };
    let share = if r.capacity > 0 {
        format!("{:.0} %", r.committed as f64 * 100.0 / r.capacity as f64)
    } else {
        "—".into()
    };
    view! {
        <tr data-testid=format!("host-{name}")>
            <th scope="row">{name}</th>
            <td class="num" data-testid="physical">{show(r.physical)}</td>
            <td class="num" data-testid="capacity">{capacity}</td>
            <td class="num" data-testid="committed">{show(r.committed)}
                <meter class="host-meter" min="0" max=r.capacity.max(1) value=r.committed.min(r.capacity.max(1))
                    title=share.clone()>{share.clone()}</meter>
            </td>
            <td class="num" data-testid="used">{r.used.map(show).unwrap_or_else(|| "—".into())}</td>
            <td class="num">{r.free.map(show).unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}

/// A running VMM's jail: its uid, and under it the limits its cgroup enforces; "—" without one.
fn jail_cell(jail: Option<HostVmJail>) -> AnyView {
    let Some(j) = jail else {
        return view! { <span data-testid="vm-uid">"—"</span> }.into_any();
    };
    let unlimited = || "unlimited".to_string();
    let memory = j.memory_limit_bytes.map(bytes).unwrap_or_else(unlimited);
    let tasks = j.pids_max.map(|n| n.to_string()).unwrap_or_else(unlimited);
    view! {
        <span title=format!("cgroup {}", j.cgroup)>"uid "<span data-testid="vm-uid">{j.uid}</span></span>
        <div class="muted small">
            <span data-testid="vm-cpu-limit">{j.cpus()}</span>" · "
            <span data-testid="vm-memory-limit">{memory}</span>" · "
            <span data-testid="vm-tasks-limit">{tasks}</span>" tasks"
        </div>
    }
    .into_any()
}

#[component]
fn HostVms(vms: Vec<HostVm>, own_tenant: String) -> impl IntoView {
    if vms.is_empty() {
        return view! { <p class="muted panel-body">"No VMs on this host."</p> }.into_any();
    }
    let rows = vms
        .into_iter()
        .map(|vm| {
            // The instance page is the tenant's own; other tenants' VMs are listed without a link.
            let label = vm.name.clone();
            let name = if vm.tenant_id == own_tenant {
                view! { <A href=format!("/instances/{}", vm.id)>{label}</A> }.into_any()
            } else {
                view! { <span>{label}</span> }.into_any()
            };
            view! {
                <tr data-testid="host-vm" data-vm-name=vm.name.clone()>
                    <td class="strong">{name}<div class="muted small"><code>{vm.id.chars().take(8).collect::<String>()}</code></div></td>
                    <td>{vm.tenant_name.clone()}</td>
                    <td><span class=format!("state-badge state-{}", vm.state.as_str())>{vm.state.as_str()}</span></td>
                    <td class="num">{vm.vcpus}</td>
                    <td class="num">{fmt_mib(vm.memory_mib)}</td>
                    <td class="num" data-testid="vm-rss">{vm.rss_bytes.map(bytes).unwrap_or_else(|| "—".into())}</td>
                    <td class="num">{format!("{} GiB", vm.disk_gib)}</td>
                    <td class="num">{bytes(vm.disk_allocated_bytes)}</td>
                    <td>{jail_cell(vm.jail.clone())}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-testid="host-vms">
                <thead><tr><th>"VM"</th><th>"Tenant"</th><th>"State"</th><th class="num">"vCPUs"</th>
                    <th class="num">"Memory"</th><th class="num">"Resident"</th><th class="num">"Disk"</th>
                    <th class="num">"Allocated"</th>
                    <th title="The uid the VMM runs as and the CPU, memory and task limits its cgroup enforces (hover: the cgroup)">"Jail"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn HostPanels(host: HostView) -> impl IntoView {
    let own_tenant = use_context::<Me>().map(|me| me.tenant_id).unwrap_or_default();
    let count = host.vms.len();
    view! {
        <section class="panel">
            <div class="panel-header"><h2>{format!("Host {}", host.hostname)}</h2></div>
            <dl class="props">
                <dt>"KVM"</dt><dd data-testid="kvm-mode">{host.kvm_mode.clone()}</dd>
                <dt>"VMM sandbox"</dt><dd data-testid="sandbox-mode">{host.sandbox.clone().unwrap_or_else(|| "none configured".into())}</dd>
            </dl>
            <div class="table-scroll">
                <table class="table" data-testid="host-resources">
                    <thead><tr><th>"Resource"</th><th class="num">"Physical"</th>
                        <th class="num" title="What admission control lets VMs commit: physical × overcommit − host reserve">"VMs may commit"</th>
                        <th class="num" title="Flavors of the VMs that hold the resource">"Committed"</th>
                        <th class="num" title="VMM resident memory; blocks allocated by VM disks">"Used"</th>
                        <th class="num">"Free"</th></tr></thead>
                    <tbody>
                        <ResourceRow name="cpus" r=host.cpus.clone() sizes=false/>
                        <ResourceRow name="memory" r=host.memory.clone() sizes=true/>
                        <ResourceRow name="disk" r=host.disk.clone() sizes=true/>
                    </tbody>
                </table>
            </div>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>{format!("VMs on this host ({count})")}</h2></div>
            <HostVms vms=host.vms own_tenant/>
        </section>
    }
}

#[component]
pub fn HostPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let host = Resource::new(move || refresh.get(), |_| get_host());
    view! {
        <Title text="Host"/>
        <PageHeader title="Host" subtitle="The machine VMs run on: what it has, what VMs commit and use.">
            <button type="button" class="btn" data-testid="host-refresh"
                on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
        </PageHeader>
        <AdminOnly>
            <Transition fallback=|| view! { <p class="loading">"Loading the host…"</p> }>
                {move || Suspend::new(async move {
                    match host.await {
                        Ok(host) => view! { <HostPanels host/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminOnly>
    }
}
