//! `/networks`: the tenant's networks — list (block, gateway, MTU, cards, the default one marked), create by
//! name (the block comes from the cloud's pool) and delete an empty one. Admins see every tenant's
//! networks with a tenant column, and the cloud's address pools and uplink.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::admin::list_tenants;
use crate::api::networks::{list_networks, network_settings, CreateNetwork, DeleteNetwork};
use crate::components::network::{ConfirmButton, NetworksOff};
use crate::components::{action_error, EmptyState, ErrorBox, Field, FormError, PageHeader};
use crate::model::{Me, NetworkSettingsView, NetworkView};

#[component]
pub fn NetworksPage() -> impl IntoView {
    let me = use_context::<Me>();
    let is_admin = me.as_ref().is_some_and(Me::is_admin);
    let my_tenant = StoredValue::new(me.map(|m| m.tenant_id).unwrap_or_default());
    let create = ServerAction::<CreateNetwork>::new();
    let delete = ServerAction::<DeleteNetwork>::new();
    let settings = Resource::new(|| (), |_| network_settings());
    let networks = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_networks(),
    );
    // Admins see every tenant's networks: their names make the tenant column readable.
    let tenants = Resource::new(
        move || is_admin,
        |admin| async move {
            if !admin {
                return HashMap::new();
            }
            list_tenants()
                .await
                .map(|ts| ts.into_iter().map(|t| (t.id, t.name)).collect())
                .unwrap_or_default()
        },
    );
    let create_error = action_error(create);
    let delete_error = action_error(delete);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let created = create.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = created.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    view! {
        <Title text="Networks"/>
        <PageHeader title="Networks"
            subtitle="Private networks for your VMs: each has its own address block, gateway and DHCP, isolated from other networks."/>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                settings.await.ok().map(|s| view! {
                    <NetworksOff settings=s.clone()/>
                    {s.admin.is_some().then(|| view! { <PoolPanel s/> })}
                })
            })}
        </Transition>
        <section class="panel">
            <div class="panel-header"><h2>"Create a network"</h2></div>
            <ActionForm action=create node_ref=form_ref>
                <div class="form-row">
                    <Field label="Name" name="name" error=create_error required=true form="network"
                        placeholder="e.g. backend" hint="Its address block (a /24) is taken from the cloud's pool."/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending()
                            data-testid="create-network">"Create network"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["name"]/>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header">
                <h2>{if is_admin { "Networks of every tenant" } else { "Your networks" }}</h2>
            </div>
            <FormError error=delete_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading networks…"</p> }>
                {move || Suspend::new(async move {
                    let names = tenants.await;
                    match networks.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No networks yet" icon="\u{25c7}">
                                <p>"Your first VM gets a default network; or create one above."</p>
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! {
                            <NetworkTable list delete is_admin names my_tenant=my_tenant.get_value()/>
                        }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The cloud's address pools and uplink (admins).
#[component]
fn PoolPanel(s: NetworkSettingsView) -> impl IntoView {
    let NetworkSettingsView {
        public_address,
        floating_ips,
        forward_ports,
        admin,
        ..
    } = s;
    let none = || "\u{2014}".to_string();
    admin.map(|a| {
        view! {
            <section class="panel" data-testid="network-pools">
                <div class="panel-header"><h2>"Address pools and uplink"</h2></div>
                <dl class="props">
                    <dt>"Tenant network pool"</dt><dd><code>{a.pool}</code>" (a /24 per network)"</dd>
                    <dt>"MTU"</dt><dd>{a.mtu}</dd>
                    <dt>"Namespace"</dt><dd><code>{a.namespace}</code></dd>
                    <dt>"Uplink"</dt>
                    <dd data-testid="network-uplink">{a.uplink.unwrap_or_else(|| "none: no egress, port forwards or floating IPs".into())}</dd>
                    <dt>"Public address"</dt><dd>{public_address.unwrap_or_else(none)}</dd>
                    <dt>"Floating IP pool"</dt>
                    <dd>{match (a.floating_pool, floating_ips) {
                        (Some(p), true) => p,
                        (Some(p), false) => format!("{p} (unused without an uplink)"),
                        (None, _) => none(),
                    }}</dd>
                    <dt>"Forwardable ports"</dt><dd>{format!("{}-{}", forward_ports.0, forward_ports.1)}</dd>
                </dl>
            </section>
        }
    })
}

#[component]
fn NetworkTable(
    list: Vec<NetworkView>,
    delete: ServerAction<DeleteNetwork>,
    is_admin: bool,
    names: HashMap<String, String>,
    my_tenant: String,
) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|n| {
            let id = n.id.clone();
            let tenant = names.get(&n.tenant_id).cloned().unwrap_or_else(|| n.tenant_id.clone());
            let mine = n.tenant_id == my_tenant;
            let why = if !mine {
                Some("Another tenant's network.".to_string())
            } else if n.ports > 0 {
                Some(format!("{} VM card(s) are on it: delete those VMs first.", n.ports))
            } else {
                None
            };
            let blocked = why.is_some();
            view! {
                <tr data-testid="network-row" data-name=n.name.clone()>
                    <td class="strong" data-label="Name">
                        {n.name.clone()}
                        {n.is_default.then(|| view! { <span class="badge badge-on badge-inline" data-testid="network-default">"default"</span> })}
                    </td>
                    {is_admin.then(|| view! { <td data-label="Tenant">{tenant}</td> })}
                    <td data-label="Block"><code>{n.cidr.clone()}</code></td>
                    <td data-label="Gateway"><code>{n.gateway.clone()}</code></td>
                    <td class="num" data-label="MTU">{n.mtu}</td>
                    <td class="num" data-label="Cards" data-testid="network-ports">{n.ports}</td>
                    <td class="actions" data-label="">
                        <ConfirmButton label="Delete" testid="delete-network"
                            question=format!("Delete network {}?", n.name)
                            disabled=Signal::derive(move || blocked || delete.pending().get())
                            why_disabled=why.clone().unwrap_or_default()
                            on_confirm=Callback::new(move |_| { delete.dispatch(DeleteNetwork { id: id.clone() }); })/>
                        {why.filter(|_| mine).map(|w| view! { <div class="muted small">{w}</div> })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table table-stack" data-testid="networks-table">
            <thead>
                <tr>
                    <th>"Name"</th>{is_admin.then(|| view! { <th>"Tenant"</th> })}<th>"Block"</th><th>"Gateway"</th>
                    <th class="num">"MTU"</th><th class="num">"Cards"</th><th class="actions">"Actions"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
