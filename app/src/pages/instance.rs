//! `/instances/:id`: one VM — state and actions, its configuration, its network (addresses, groups, how to
//! reach it: `components/vm_network.rs`), its state history, the console (screen, serial, log) and its
//! metrics graphs (`components/metrics.rs`).
//! Follows state changes live; after deletion it says so and links back to the list. The console panel is
//! there only while the VM runs (`console_gate.rs`): a stopped VM shows a plain "the VM is stopped".

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::networks::{CreatePortForward, SetVmGroups};
use crate::api::vm_lists::RenameVm;
use crate::api::vms::{get_vm, ActOnVm};
use crate::components::after_render::after_render;
use crate::components::boot::{boot_summary, VmStatus};
use crate::components::console_gate::GatedConsole;
use crate::components::metrics::MetricsPanel;
use crate::components::vm::{size_line, VmActions};
use crate::components::vm_network::NetworkPanel;
use crate::components::vm_rename::{RenameButton, RenameState};
use crate::components::{action_error, fmt_time, vm_changes, ErrorBox, FormError};
use crate::error::AppError;
use crate::model::{VmDetail, VmState};

#[component]
pub fn InstancePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let act = ServerAction::<ActOnVm>::new();
    // Network changes made from the page; owned here so their errors outlive the refetches below.
    let net = NetActions {
        forward: ServerAction::<CreatePortForward>::new(),
        set_groups: ServerAction::<SetVmGroups>::new(),
        rename: ServerAction::<RenameVm>::new(),
        rename_state: RenameState::default(),
    };
    // Refetch after a successful rename only: a refused one keeps the form open with its error.
    let renamed = RwSignal::new(0u32);
    let rename_result = net.rename.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = rename_result.get() {
            renamed.update(|n| *n += 1);
        }
    });
    let changes = vm_changes();
    let detail = Resource::new(
        move || {
            let net_versions = (
                net.forward.version().get(),
                net.set_groups.version().get(),
                renamed.get(),
            );
            (id(), changes.get(), act.version().get(), net_versions)
        },
        |(id, ..)| get_vm(id),
    );
    let act_error = action_error(act);
    // The console lives outside the refetched part so it stays connected across state updates; it is told
    // whether the VM runs from an Effect (browser only), so server and hydration render the same markup.
    // Set from inside the Transition below (`components/after_render.rs` says why not from an Effect).
    let state = RwSignal::new(None::<VmState>);
    let vm_id = params.with_untracked(|p| p.get("id").unwrap_or_default());
    view! {
        <Title text="Instance"/>
        <p class="breadcrumb"><A href="/instances">"Instances"</A>" / "</p>
        <Transition fallback=|| view! { <p class="loading">"Loading instance…"</p> }>
            {move || Suspend::new(async move {
                let result = detail.await;
                let now = result.as_ref().ok().map(|d| d.vm.state);
                after_render(move || state.set(now));
                match result {
                    Ok(d) => view! { <Detail d act act_error net/> }.into_any(),
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
        <GatedConsole vm_id=vm_id.clone() state/>
        <MetricsPanel vm_id changes/>
    }
}

/// The page's network actions (see `components/vm_network.rs`).
#[derive(Clone, Copy)]
struct NetActions {
    forward: ServerAction<CreatePortForward>,
    set_groups: ServerAction<SetVmGroups>,
    /// Renaming the VM (`components/vm_rename.rs`).
    rename: ServerAction<RenameVm>,
    /// The rename form's open state and typed name (kept across refetches).
    rename_state: RenameState,
}

#[component]
fn Detail(
    d: VmDetail,
    act: ServerAction<ActOnVm>,
    act_error: Signal<Option<AppError>>,
    net: NetActions,
) -> impl IntoView {
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
                <h1 data-testid="vm-name">{vm.name.clone()}" "<VmStatus vm=vm.clone()/></h1>
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
                <RenameButton vm_id=vm.id.clone() name=vm.name.clone() rename=net.rename state=net.rename_state/>
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
                {boot_summary(&vm).map(|b| view! { <dt>"Guest"</dt><dd data-testid="vm-boot">{b}</dd> })}
            </dl>
        </section>
        <NetworkPanel vm_id=vm.id.clone() network forward=net.forward set_groups=net.set_groups/>
        <section class="panel">
            <div class="panel-header"><h2>"History"</h2></div>
            <table class="table" data-testid="vm-events">
                <thead><tr><th>"When"</th><th>"Change"</th><th>"By"</th><th>"What"</th></tr></thead>
                <tbody>{events}</tbody>
            </table>
        </section>
    }
}
