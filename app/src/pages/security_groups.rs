//! `/security-groups`: the tenant's security groups, each a card with its ingress rules. Create and delete
//! groups, add a rule (protocol, ports, a source block or group) or delete one, and the one-click "Allow SSH
//! from anywhere" (tcp 22 from 0.0.0.0/0) — how a tenant opens SSH on the default group. Egress is always
//! allowed and replies always pass, so rules only ever let traffic in.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::networks::{
    list_security_groups, network_settings, AddRule, CreateSecurityGroup, DeleteRule, DeleteSecurityGroup,
};
use crate::components::network::{
    allows_ssh_from_anywhere, rule_ports, rule_source, ConfirmButton, NetworksOff,
};
use crate::components::{action_error, EmptyState, ErrorBox, Field, FieldError, FormError, PageHeader};
use crate::error::AppError;
use crate::model::{GroupRef, NetProtocol, SecurityGroupView};

#[component]
pub fn SecurityGroupsPage() -> impl IntoView {
    let create = ServerAction::<CreateSecurityGroup>::new();
    let delete = ServerAction::<DeleteSecurityGroup>::new();
    let settings = Resource::new(|| (), |_| network_settings());
    let groups = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_security_groups(),
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
        <Title text="Security groups"/>
        <PageHeader title="Security groups"
            subtitle="Which traffic may reach your VMs. Everything inbound is dropped unless a rule of one of the VM's groups lets it in; outbound traffic and replies always pass."/>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move { settings.await.ok().map(|settings| view! { <NetworksOff settings/> }) })}
        </Transition>
        <section class="panel">
            <div class="panel-header"><h2>"Create a security group"</h2></div>
            <ActionForm action=create node_ref=form_ref>
                <div class="form-row">
                    <Field label="Name" name="name" error=create_error required=true form="group" placeholder="e.g. web"/>
                    <Field label="Description" name="description" error=create_error form="group"/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending()
                            data-testid="create-group">"Create group"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["name", "description"]/>
            </ActionForm>
        </section>
        <FormError error=delete_error/>
        <Transition fallback=|| view! { <p class="loading">"Loading security groups…"</p> }>
            {move || Suspend::new(async move {
                match groups.await {
                    Ok(list) if list.is_empty() => view! {
                        <section class="panel">
                            <EmptyState title="No security groups yet" icon="\u{25eb}">
                                <p>"Your first VM gets a default group; or create one above."</p>
                            </EmptyState>
                        </section>
                    }.into_any(),
                    Ok(list) => {
                        let refs: Vec<GroupRef> = list.iter().map(|g| GroupRef { id: g.id.clone(), name: g.name.clone() }).collect();
                        list.into_iter()
                            .map(|group| view! { <GroupCard group all=refs.clone() delete/> })
                            .collect_view()
                            .into_any()
                    }
                    Err(error) => view! { <ErrorBox error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// One group: its rules, the forms that change them, and deleting the group. Rule changes answer with the
/// group as it is now, so the card redraws itself without reloading the page.
#[component]
fn GroupCard(
    group: SecurityGroupView,
    all: Vec<GroupRef>,
    delete: ServerAction<DeleteSecurityGroup>,
) -> impl IntoView {
    let current = RwSignal::new(group.clone());
    let add = ServerAction::<AddRule>::new();
    let remove = ServerAction::<DeleteRule>::new();
    let add_error = action_error(add);
    let remove_error = action_error(remove);
    let added = add.value();
    let removed = remove.value();
    Effect::new(move |_| {
        if let Some(Ok(g)) = added.get() {
            current.set(g);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(g)) = removed.get() {
            current.set(g);
        }
    });
    let SecurityGroupView {
        id,
        name,
        description,
        is_default,
        vms,
        ..
    } = group;
    let gid = StoredValue::new(id.clone());
    let allow_ssh = move |_| {
        add.dispatch(AddRule {
            group_id: gid.get_value(),
            protocol: "tcp".into(),
            port_min: "22".into(),
            port_max: "22".into(),
            source_cidr: "0.0.0.0/0".into(),
            source_group_id: String::new(),
        });
    };
    let why = if is_default {
        "The default group cannot be deleted.".to_string()
    } else if vms > 0 {
        format!("{vms} VM(s) are in it: move them to other groups first.")
    } else {
        String::new()
    };
    let blocked = !why.is_empty();
    let rules = move || {
        let g = current.get();
        if g.rules.is_empty() {
            return view! { <p class="muted small" data-testid="no-rules">"No rules: nothing can reach VMs in this group from outside it."</p> }.into_any();
        }
        let rows = g
            .rules
            .into_iter()
            .map(|r| {
                let rule_id = r.id.clone();
                view! {
                    <tr data-testid="rule-row">
                        <td data-label="Protocol">{r.protocol.as_str()}</td>
                        <td data-label="Ports">{rule_ports(&r)}</td>
                        <td data-label="Source">{rule_source(&r)}</td>
                        <td class="actions" data-label="">
                            <button type="button" class="btn btn-small btn-danger-outline" data-testid="delete-rule"
                                disabled=move || remove.pending().get()
                                on:click=move |_| { remove.dispatch(DeleteRule { group_id: gid.get_value(), rule_id: rule_id.clone() }); }>
                                "Delete"
                            </button>
                        </td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <table class="table table-stack" data-testid="rules-table">
                <thead><tr><th>"Protocol"</th><th>"Ports"</th><th>"Source"</th><th class="actions">"Actions"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <section class="panel" data-testid="group-card" data-name=name.clone()>
            <div class="panel-header panel-header-wrap">
                <div>
                    <h2>{name.clone()}
                        {is_default.then(|| view! { <span class="badge badge-on badge-inline">"default"</span> })}
                    </h2>
                    <p class="muted small">
                        {format!("{vms} VM(s)")}
                        {(!description.is_empty()).then(|| format!(" · {description}"))}
                    </p>
                </div>
                <div class="panel-actions">
                    {move || if allows_ssh_from_anywhere(&current.get()) {
                        view! { <span class="badge badge-on badge-text" data-testid="ssh-open">"SSH open to anywhere"</span> }.into_any()
                    } else {
                        view! {
                            <button type="button" class="btn btn-small" data-testid="allow-ssh"
                                disabled=move || add.pending().get() on:click=allow_ssh>
                                "Allow SSH from anywhere"
                            </button>
                        }.into_any()
                    }}
                    <ConfirmButton label="Delete" testid="delete-group"
                        question=format!("Delete group {name}?")
                        disabled=Signal::derive(move || blocked || delete.pending().get())
                        why_disabled=why
                        on_confirm=Callback::new(move |_| { delete.dispatch(DeleteSecurityGroup { id: gid.get_value() }); })/>
                </div>
            </div>
            <FormError error=remove_error/>
            {rules}
            <RuleForm group_id=id all add error=add_error/>
        </section>
    }
}

/// The "add a rule" form of one group: protocol, ports (TCP/UDP only), and a source block or group.
#[component]
fn RuleForm(
    group_id: String,
    all: Vec<GroupRef>,
    add: ServerAction<AddRule>,
    error: Signal<Option<AppError>>,
) -> impl IntoView {
    let protocol = RwSignal::new(NetProtocol::Tcp);
    let by_group = RwSignal::new(false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let added = add.value();
    // After a rule is added the form starts over (on failure the values stay for correction).
    Effect::new(move |_| {
        if let Some(Ok(_)) = added.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
            protocol.set(NetProtocol::Tcp);
            by_group.set(false);
        }
    });
    let no_ports = move || !matches!(protocol.get(), NetProtocol::Tcp | NetProtocol::Udp);
    let invalid =
        move |name: &'static str| move || error.with(|e| e.as_ref().and_then(AppError::field) == Some(name));
    let prefix = format!("rule-{group_id}");
    let id = move |field: &str| format!("{prefix}-{field}");
    let groups = all
        .into_iter()
        .map(|g| view! { <option value=g.id>{format!("VMs in group {}", g.name)}</option> })
        .collect_view();
    view! {
        <h3 class="subheading">"Add a rule"</h3>
        <ActionForm action=add node_ref=form_ref>
            <input type="hidden" name="group_id" value=group_id.clone()/>
            <div class="form-row rule-form">
                <div class="field field-narrow" class:field-invalid=invalid("protocol")>
                    <label for=id("protocol")>"Protocol"</label>
                    <select id=id("protocol") name="protocol" data-testid="rule-protocol"
                        on:change=move |ev| protocol.set(NetProtocol::parse(&event_target_value(&ev)).unwrap_or(NetProtocol::Any))>
                        <option value="tcp" selected=true>"TCP"</option>
                        <option value="udp">"UDP"</option>
                        <option value="icmp">"ICMP"</option>
                        <option value="any">"Any"</option>
                    </select>
                    <FieldError error name="protocol"/>
                </div>
                <div class="field field-narrow" class:field-invalid=invalid("port_min")>
                    <label for=id("port_min")>"From port"</label>
                    <input id=id("port_min") name="port_min" type="number" min="1" max="65535" placeholder="22"
                        data-testid="rule-port-min" disabled=no_ports/>
                    <FieldError error name="port_min"/>
                </div>
                <div class="field field-narrow" class:field-invalid=invalid("port_max")>
                    <label for=id("port_max")>"To port"<span class="optional">" (optional)"</span></label>
                    <input id=id("port_max") name="port_max" type="number" min="1" max="65535"
                        data-testid="rule-port-max" disabled=no_ports/>
                    <FieldError error name="port_max"/>
                </div>
                <div class="field" class:field-invalid=invalid("source_group_id")>
                    <label for=id("source_group_id")>"Source"</label>
                    <select id=id("source_group_id") name="source_group_id" data-testid="rule-source"
                        on:change=move |ev| by_group.set(!event_target_value(&ev).is_empty())>
                        <option value="" selected=true>"Address block (CIDR)"</option>
                        {groups}
                    </select>
                    <FieldError error name="source_group_id"/>
                </div>
                <div class="field" class:field-invalid=invalid("source_cidr") class:hidden=move || by_group.get()>
                    <label for=id("source_cidr")>"Block"</label>
                    <input id=id("source_cidr") name="source_cidr" type="text" placeholder="0.0.0.0/0"
                        data-testid="rule-cidr" disabled=move || by_group.get()/>
                    <FieldError error name="source_cidr"/>
                </div>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary" disabled=add.pending() data-testid="add-rule">"Add rule"</button>
                </div>
            </div>
            <FormError error fields=&["protocol", "port_min", "port_max", "source_group_id", "source_cidr"]/>
        </ActionForm>
    }
}
