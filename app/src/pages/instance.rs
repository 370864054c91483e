//! `/instances/:id`: one VM — state and actions, its configuration, its state history, and the console
//! (screen, serial, log).
//! Follows state changes live; after deletion it says so and links back to the list.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::vms::{get_vm, ActOnVm};
use crate::components::console::VmConsole;
use crate::components::vm::{size_line, StateBadge, VmActions};
use crate::components::{action_error, fmt_time, vm_changes, ErrorBox, FormError};
use crate::error::AppError;
use crate::model::{VmDetail, VmNetworkView, VmState};

#[component]
pub fn InstancePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let act = ServerAction::<ActOnVm>::new();
    let changes = vm_changes();
    let detail = Resource::new(
        move || (id(), changes.get(), act.version().get()),
        |(id, _, _)| get_vm(id),
    );
    let act_error = action_error(act);
    // The console lives outside the refetched part so it stays connected across state updates; it is told
    // whether the VM runs from an Effect (browser only), so server and hydration render the same markup.
    let running = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(d)) = detail.get() {
            running.set(d.vm.state == VmState::Running);
        }
    });
    let vm_id = params.with_untracked(|p| p.get("id").unwrap_or_default());
    view! {
        <Title text="Instance"/>
        <p class="breadcrumb"><A href="/instances">"Instances"</A>" / "</p>
        <Transition fallback=|| view! { <p class="loading">"Loading instance…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <Detail d act act_error/> }.into_any(),
                    Err(AppError::NotFound { .. }) => view! {
                        <div class="alert alert-info" data-testid="vm-gone">
                            <strong class="alert-title">"This instance does not exist (any more)."</strong>
                            <span class="alert-message"><A href="/instances">"Back to the instance list"</A></span>
                        </div>
                    }.into_any(),
                    Err(error) => view! { <ErrorBox error/> }.into_any(),
                }
            })}
        </Transition>
        <VmConsole vm_id running/>
    }
}

/// Addresses, MAC, security groups and how to reach the VM.
#[component]
fn NetworkPanel(network: VmNetworkView) -> impl IntoView {
    let VmNetworkView {
        nics,
        security_groups,
        floating_ip,
        port_forwards,
        ssh_command,
    } = network;
    if nics.is_empty() {
        return None;
    }
    let nics = nics
        .into_iter()
        .map(|n| {
            view! {
                <tr data-testid="vm-nic">
                    <td>{n.network_name.clone()}</td>
                    <td><code data-testid="vm-ip">{n.ip.clone()}</code></td>
                    <td><code>{n.mac.clone()}</code></td>
                    <td><code>{n.cidr.clone()}</code>" via "<code>{n.gateway.clone()}</code></td>
                </tr>
            }
        })
        .collect_view();
    let groups = security_groups
        .iter()
        .map(|g| g.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let forwards = port_forwards
        .iter()
        .map(|f| {
            format!(
                "{}:{} \u{2192} {}/{}",
                f.host_address,
                f.host_port,
                f.protocol.as_str(),
                f.vm_port
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(view! {
        <section class="panel" data-testid="vm-network">
            <div class="panel-header"><h2>"Network"</h2></div>
            <table class="table">
                <thead><tr><th>"Network"</th><th>"Address"</th><th>"MAC"</th><th>"Subnet"</th></tr></thead>
                <tbody>{nics}</tbody>
            </table>
            <dl class="props">
                <dt>"Security groups"</dt><dd data-testid="vm-groups">{groups}</dd>
                <dt>"Floating IP"</dt><dd>{floating_ip.unwrap_or_else(|| "\u{2014}".into())}</dd>
                <dt>"Port forwards"</dt><dd>{if forwards.is_empty() { "\u{2014}".to_string() } else { forwards }}</dd>
                <dt>"SSH"</dt>
                <dd>{match ssh_command {
                    Some(cmd) => view! { <code class="copyable" data-testid="vm-ssh">{cmd}</code> }.into_any(),
                    None => view! { <span>"Add a port forward to port 22 or a floating IP to reach the VM from outside."</span> }.into_any(),
                }}</dd>
            </dl>
        </section>
    })
}

#[component]
fn Detail(d: VmDetail, act: ServerAction<ActOnVm>, act_error: Signal<Option<AppError>>) -> impl IntoView {
    let VmDetail { vm, events, network } = d;
    let running = vm.state == VmState::Running;
    let events = events
        .into_iter()
        .map(|e| view! {
            <tr data-testid="vm-event">
                <td title=e.at.clone()>{fmt_time(&e.at)}</td>
                <td>{e.from_state.map(|s| s.as_str()).unwrap_or("—")}" \u{2192} "<strong>{e.to_state.as_str()}</strong></td>
                <td>{e.actor.clone()}</td>
                <td>{e.message.clone()}</td>
            </tr>
        })
        .collect_view();
    view! {
        <header class="page-header">
            <div>
                <h1 data-testid="vm-name">{vm.name.clone()}" "<StateBadge state=vm.state/></h1>
                <p class="page-subtitle">{size_line(&vm)}</p>
                {(!vm.state_reason.is_empty()).then(|| view! {
                    <p class="alert alert-warning" data-testid="vm-reason">{vm.state_reason.clone()}</p>
                })}
            </div>
            <div class="page-actions">
                {running.then(|| view! {
                    <a class="btn btn-small" href=format!("/instances/{}/console", vm.id) target="_blank"
                        data-testid="console-window">"Console in new window"</a>
                })}
                <VmActions vm=vm.clone() action=act/>
            </div>
        </header>
        <FormError error=act_error/>
        <section class="panel">
            <div class="panel-header"><h2>"Overview"</h2></div>
            <dl class="props">
                <dt>"ID"</dt><dd><code>{vm.id.clone()}</code></dd>
                <dt>"Image"</dt><dd>{vm.image_name.clone()}</dd>
                <dt>"Flavor"</dt><dd>{vm.flavor_name.clone()}</dd>
                <dt>"Created"</dt><dd>{fmt_time(&vm.created_at)}</dd>
                <dt>"Last started"</dt><dd>{vm.started_at.as_deref().map(fmt_time).unwrap_or_else(|| "—".into())}</dd>
            </dl>
        </section>
        <NetworkPanel network=network/>
        <section class="panel">
            <div class="panel-header"><h2>"History"</h2></div>
            <table class="table" data-testid="vm-events">
                <thead><tr><th>"When"</th><th>"Change"</th><th>"By"</th><th>"What"</th></tr></thead>
                <tbody>{events}</tbody>
            </table>
        </section>
    }
}
