//! The VM page's "Network" panel: the VM's cards (address, MAC, subnet), its security groups (with an
//! editor), floating IP and port forwards, and how to reach it — a copyable `ssh` command, or a "Forward
//! SSH" button that forwards a public port to the VM's port 22 and then shows the command.
//!
//! The actions are owned by the page (outside the part that refetches on every VM event), so an error such
//! as "no uplink" stays next to its button while the VM changes state.

use leptos::prelude::*;

use crate::api::networks::{list_security_groups, CreatePortForward, SetVmGroups};
use crate::components::network::{forward_text, CopyField};
use crate::components::{action_error, FormError};
use crate::model::{GroupRef, VmNetworkView};

#[component]
pub fn NetworkPanel(
    vm_id: String,
    network: VmNetworkView,
    forward: ServerAction<CreatePortForward>,
    set_groups: ServerAction<SetVmGroups>,
) -> impl IntoView {
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
    let forward_error = action_error(forward);
    let nics = nics
        .into_iter()
        .map(|n| {
            view! {
                <tr data-testid="vm-nic">
                    <td data-label="Network">{n.network_name.clone()}</td>
                    <td data-label="Address"><code data-testid="vm-ip">{n.ip.clone()}</code></td>
                    <td data-label="MAC"><code data-testid="vm-mac">{n.mac.clone()}</code></td>
                    <td data-label="Subnet"><code>{n.cidr.clone()}</code>" via "<code>{n.gateway.clone()}</code></td>
                </tr>
            }
        })
        .collect_view();
    let forwards = port_forwards
        .iter()
        .map(forward_text)
        .collect::<Vec<_>>()
        .join(", ");
    let vm = StoredValue::new(vm_id);
    let ssh = match ssh_command {
        Some(cmd) => view! { <CopyField text=cmd testid="vm-ssh"/> }.into_any(),
        None => view! {
            <div class="ssh-missing">
                <p class="muted small">"Forward a public port to port 22, or attach a floating IP, to reach the VM with ssh."</p>
                <button type="button" class="btn btn-small btn-primary" data-testid="forward-ssh"
                    disabled=move || forward.pending().get()
                    on:click=move |_| {
                        forward.dispatch(CreatePortForward {
                            vm_id: vm.get_value(),
                            protocol: "tcp".into(),
                            vm_port: "22".into(),
                            host_port: String::new(),
                        });
                    }>"Forward SSH"</button>
                <div data-testid="forward-ssh-error"><FormError error=forward_error/></div>
            </div>
        }
        .into_any(),
    };
    Some(view! {
        <section class="panel" data-testid="vm-network">
            <div class="panel-header"><h2>"Network"</h2></div>
            <table class="table table-stack">
                <thead><tr><th>"Network"</th><th>"Address"</th><th>"MAC"</th><th>"Subnet"</th></tr></thead>
                <tbody>{nics}</tbody>
            </table>
            <dl class="props">
                <dt>"Floating IP"</dt><dd data-testid="vm-floating-ip">{floating_ip.unwrap_or_else(|| "\u{2014}".into())}</dd>
                <dt>"Port forwards"</dt>
                <dd data-testid="vm-forwards">{if forwards.is_empty() { "\u{2014}".to_string() } else { forwards }}</dd>
                <dt>"SSH"</dt><dd data-testid="vm-ssh-box">{ssh}</dd>
                <dt>"Security groups"</dt>
                <dd><GroupsEditor vm_id=vm.get_value() current=security_groups set_groups/></dd>
            </dl>
        </section>
    }
    .into_any())
}

/// The VM's groups as ticks over all the tenant's groups, saved together (a VM keeps at least one).
#[component]
fn GroupsEditor(
    vm_id: String,
    current: Vec<GroupRef>,
    set_groups: ServerAction<SetVmGroups>,
) -> impl IntoView {
    let groups = Resource::new(|| (), |_| list_security_groups());
    let names = current
        .iter()
        .map(|g| g.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let chosen = RwSignal::new(current.into_iter().map(|g| g.id).collect::<Vec<_>>());
    let editing = RwSignal::new(false);
    let error = action_error(set_groups);
    let vm = StoredValue::new(vm_id);
    let save = move |_| {
        set_groups.dispatch(SetVmGroups {
            vm_id: vm.get_value(),
            group_ids: chosen.get_untracked(),
        });
    };
    view! {
        <div class="groups-editor">
            <span data-testid="vm-groups">{names}</span>" "
            <Show when=move || !editing.get()>
                <button type="button" class="btn btn-small btn-link" data-testid="edit-vm-groups"
                    on:click=move |_| editing.set(true)>"Change"</button>
            </Show>
            <Show when=move || editing.get()>
                <Transition fallback=|| view! { <p class="loading">"Loading groups…"</p> }>
                    {move || Suspend::new(async move {
                        groups.await.ok().map(|list| {
                            let boxes = list
                                .into_iter()
                                .map(|g| {
                                    let id = StoredValue::new(g.id.clone());
                                    let checked = move || chosen.with(|c| c.contains(&id.get_value()));
                                    view! {
                                        <label class="check" data-testid="vm-group-choice" data-name=g.name.clone()>
                                            <input type="checkbox" prop:checked=checked on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                chosen.update(|c| {
                                                    c.retain(|x| *x != id.get_value());
                                                    if on { c.push(id.get_value()); }
                                                });
                                            }/>
                                            {g.name.clone()}
                                        </label>
                                    }
                                })
                                .collect_view();
                            view! { <div class="check-list">{boxes}</div> }
                        })
                    })}
                </Transition>
                <div class="form-inline-actions">
                    <button type="button" class="btn btn-small btn-primary" data-testid="save-vm-groups"
                        disabled=move || set_groups.pending().get() on:click=save>"Save groups"</button>
                    <button type="button" class="btn btn-small" on:click=move |_| editing.set(false)>"Cancel"</button>
                </div>
            </Show>
            <FormError error/>
        </div>
    }
    .into_any()
}
