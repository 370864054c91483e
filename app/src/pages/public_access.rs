//! `/public-access`: how VMs are reached from outside the cloud — port forwards (a port of the cloud's
//! public address to a VM's port) and floating IPs (a public address of the tenant's, attached to one VM).
//! Both need the cloud's uplink; without one the page says so and the server refuses with the reason.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::networks::{
    list_floating_ips, list_port_forwards, network_settings, AllocateFloatingIp, AttachFloatingIp,
    CreatePortForward, DeletePortForward, ReleaseFloatingIp,
};
use crate::api::vms::list_vms;
use crate::components::network::{ConfirmButton, NetworksOff};
use crate::components::{action_error, EmptyState, ErrorBox, FieldError, FormError, PageHeader};
use crate::error::AppError;
use crate::model::{FloatingIpView, NetworkSettingsView, PortForwardView, VmState, VmView};

#[component]
pub fn PublicAccessPage() -> impl IntoView {
    let settings = Resource::new(|| (), |_| network_settings());
    let vms = Resource::new(
        || (),
        |_| async {
            list_vms().await.map(|list| {
                list.into_iter()
                    .filter(|v| !matches!(v.state, VmState::Deleting | VmState::Deleted))
                    .collect::<Vec<_>>()
            })
        },
    );
    view! {
        <Title text="Public access"/>
        <PageHeader title="Public access"
            subtitle="Reach your VMs from outside the cloud: forward a port of the cloud's public address, or give a VM a floating IP."/>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                settings.await.ok().map(|s| view! { <NetworksOff settings=s.clone()/><UplinkNote s/> })
            })}
        </Transition>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match vms.await {
                    Ok(vms) => view! { <PortForwards vms=vms.clone()/><FloatingIps vms/> }.into_any(),
                    Err(error) => view! { <ErrorBox error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Without an uplink nothing reaches VMs from outside: say so before anyone fills in a form.
#[component]
fn UplinkNote(s: NetworkSettingsView) -> impl IntoView {
    (s.enabled && s.public_address.is_none()).then(|| {
        view! {
            <div class="alert alert-info" role="status" data-testid="no-uplink">
                <strong class="alert-title">"No uplink"</strong>
                <span class="alert-message">
                    "This cloud has no uplink, so port forwards and floating IPs cannot be created here."
                </span>
            </div>
        }
    })
}

fn vm_options(vms: &[VmView]) -> impl IntoView {
    vms.iter()
        .map(|v| view! { <option value=v.id.clone()>{v.name.clone()}</option> })
        .collect_view()
}

#[component]
fn PortForwards(vms: Vec<VmView>) -> impl IntoView {
    let create = ServerAction::<CreatePortForward>::new();
    let delete = ServerAction::<DeletePortForward>::new();
    let forwards = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_port_forwards(),
    );
    let create_error = action_error(create);
    let delete_error = action_error(delete);
    let invalid = move |name: &'static str| move || error_on(create_error, name);
    let no_vms = vms.is_empty();
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Port forwards"</h2></div>
            <div class="form-block">
            <ActionForm action=create>
                <div class="form-row">
                    <div class="field" class:field-invalid=invalid("vm_id")>
                        <label for="fwd-vm_id">"VM"</label>
                        <select id="fwd-vm_id" name="vm_id" required=true data-testid="forward-vm">{vm_options(&vms)}</select>
                        <FieldError error=create_error name="vm_id"/>
                    </div>
                    <div class="field field-narrow" class:field-invalid=invalid("protocol")>
                        <label for="fwd-protocol">"Protocol"</label>
                        <select id="fwd-protocol" name="protocol" data-testid="forward-protocol">
                            <option value="tcp" selected=true>"TCP"</option>
                            <option value="udp">"UDP"</option>
                        </select>
                        <FieldError error=create_error name="protocol"/>
                    </div>
                    <div class="field field-narrow" class:field-invalid=invalid("vm_port")>
                        <label for="fwd-vm_port">"VM port"</label>
                        <input id="fwd-vm_port" name="vm_port" type="number" min="1" max="65535" required=true
                            placeholder="22" data-testid="forward-vm-port"/>
                        <FieldError error=create_error name="vm_port"/>
                    </div>
                    <div class="field field-narrow" class:field-invalid=invalid("host_port")>
                        <label for="fwd-host_port">"Public port"<span class="optional">" (optional)"</span></label>
                        <input id="fwd-host_port" name="host_port" type="number" min="1" max="65535"
                            data-testid="forward-host-port"/>
                        <p class="field-hint">"Empty: a free one is chosen."</p>
                        <FieldError error=create_error name="host_port"/>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=move || no_vms || create.pending().get()
                            data-testid="create-forward">"Forward"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["vm_id", "protocol", "vm_port", "host_port"]/>
            </ActionForm>
            </div>
            <FormError error=delete_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading port forwards…"</p> }>
                {move || Suspend::new(async move {
                    match forwards.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No port forwards" icon="\u{21c4}">
                                <p>"Forward TCP 22 to a VM to reach it with ssh."</p>
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <ForwardTable list delete/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn error_on(error: Signal<Option<AppError>>, name: &str) -> bool {
    error.with(|e| e.as_ref().and_then(AppError::field) == Some(name))
}

#[component]
fn ForwardTable(list: Vec<PortForwardView>, delete: ServerAction<DeletePortForward>) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|f| {
            let id = f.id.clone();
            let public = if f.host_address.is_empty() {
                format!("port {}", f.host_port)
            } else {
                format!("{}:{}", f.host_address, f.host_port)
            };
            view! {
                <tr data-testid="forward-row">
                    <td class="strong" data-label="VM"><A href=format!("/instances/{}", f.vm_id)>{f.vm_name.clone()}</A></td>
                    <td data-label="Protocol">{f.protocol.as_str()}</td>
                    <td data-label="Public"><code>{public}</code></td>
                    <td class="num" data-label="VM port">{f.vm_port}</td>
                    <td class="actions" data-label="">
                        <ConfirmButton label="Delete" testid="delete-forward"
                            question=format!("Stop forwarding port {}?", f.host_port)
                            disabled=Signal::derive(move || delete.pending().get())
                            on_confirm=Callback::new(move |_| { delete.dispatch(DeletePortForward { id: id.clone() }); })/>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table table-stack" data-testid="forwards-table">
            <thead><tr><th>"VM"</th><th>"Protocol"</th><th>"Public"</th><th class="num">"VM port"</th><th class="actions">"Actions"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn FloatingIps(vms: Vec<VmView>) -> impl IntoView {
    let allocate = ServerAction::<AllocateFloatingIp>::new();
    let attach = ServerAction::<AttachFloatingIp>::new();
    let release = ServerAction::<ReleaseFloatingIp>::new();
    let ips = Resource::new(
        move || {
            (
                allocate.version().get(),
                attach.version().get(),
                release.version().get(),
            )
        },
        |_| list_floating_ips(),
    );
    let allocate_error = action_error(allocate);
    let attach_error = action_error(attach);
    let release_error = action_error(release);
    let vms = StoredValue::new(vms);
    view! {
        <section class="panel">
            <div class="panel-header">
                <h2>"Floating IPs"</h2>
                <button type="button" class="btn btn-small btn-primary" data-testid="allocate-ip"
                    disabled=move || allocate.pending().get()
                    on:click=move |_| { allocate.dispatch(AllocateFloatingIp {}); }>"Allocate an address"</button>
            </div>
            <FormError error=allocate_error/>
            <FormError error=attach_error/>
            <FormError error=release_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading floating IPs…"</p> }>
                {move || Suspend::new(async move {
                    match ips.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No floating IPs" icon="\u{25ce}">
                                <p>"Allocate an address, then attach it to a VM: all its ports answer there (as its security groups allow)."</p>
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <FloatingTable list vms=vms.get_value() attach release/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn FloatingTable(
    list: Vec<FloatingIpView>,
    vms: Vec<VmView>,
    attach: ServerAction<AttachFloatingIp>,
    release: ServerAction<ReleaseFloatingIp>,
) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|f| {
            let id = StoredValue::new(f.id.clone());
            let target = match (f.vm_id.clone(), f.vm_name.clone()) {
                (Some(vm), Some(name)) => view! { <A href=format!("/instances/{vm}")>{name}</A> }.into_any(),
                _ => view! { <span class="muted">"not attached"</span> }.into_any(),
            };
            let chosen = RwSignal::new(vms.first().map(|v| v.id.clone()).unwrap_or_default());
            let control = if f.vm_id.is_some() {
                view! {
                    <button type="button" class="btn btn-small" data-testid="detach-ip"
                        disabled=move || attach.pending().get()
                        on:click=move |_| { attach.dispatch(AttachFloatingIp { id: id.get_value(), vm_id: String::new() }); }>
                        "Detach"
                    </button>
                }.into_any()
            } else {
                view! {
                    <span class="inline-field">
                        <select aria-label="VM to attach to" data-testid="attach-vm"
                            on:change=move |ev| chosen.set(event_target_value(&ev))>{vm_options(&vms)}</select>
                        <button type="button" class="btn btn-small" data-testid="attach-ip"
                            disabled=move || attach.pending().get() || chosen.with(String::is_empty)
                            on:click=move |_| { attach.dispatch(AttachFloatingIp { id: id.get_value(), vm_id: chosen.get_untracked() }); }>
                            "Attach"
                        </button>
                    </span>
                }.into_any()
            };
            view! {
                <tr data-testid="floating-row" data-address=f.address.clone()>
                    <td class="strong" data-label="Address"><code>{f.address.clone()}</code></td>
                    <td data-label="VM">{target}</td>
                    <td class="actions" data-label="">
                        {control}
                        <ConfirmButton label="Release" testid="release-ip"
                            question=format!("Release {}?", f.address)
                            disabled=Signal::derive(move || release.pending().get())
                            on_confirm=Callback::new(move |_| { release.dispatch(ReleaseFloatingIp { id: id.get_value() }); })/>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table table-stack" data-testid="floating-table">
            <thead><tr><th>"Address"</th><th>"VM"</th><th class="actions">"Actions"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
