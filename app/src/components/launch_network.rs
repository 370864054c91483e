//! The launch dialog's network fields: which of the tenant's networks the VM's card joins (the default one
//! preselected) and its security groups (the default group ticked). Left out entirely when tenant networks
//! are off or cannot be read, so the dialog launches exactly as before (the server then picks the defaults).

use leptos::prelude::*;

use crate::api::networks::{list_networks, list_security_groups, network_settings};
use crate::components::FieldError;
use crate::error::AppError;
use crate::model::Me;

#[component]
pub fn LaunchNetworkFields(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    let tenant = use_context::<Me>().map(|me| me.tenant_id).unwrap_or_default();
    let choices = Resource::new(
        || (),
        |_| async {
            (
                network_settings().await,
                list_networks().await,
                list_security_groups().await,
            )
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || {
                let tenant = tenant.clone();
                Suspend::new(async move {
                    let (Ok(settings), Ok(networks), Ok(groups)) = choices.await else {
                        return None;
                    };
                    if !settings.enabled {
                        return None;
                    }
                    // Admins list every tenant's networks; a VM can only join its own tenant's.
                    let mut networks: Vec<_> = networks.into_iter().filter(|n| n.tenant_id == tenant).collect();
                    networks.sort_by_key(|n| !n.is_default);
                    let network_options = if networks.is_empty() {
                        view! { <option value="" selected=true>"default (created with this VM)"</option> }.into_any()
                    } else {
                        networks
                            .into_iter()
                            .map(|n| {
                                let label = format!("{} — {}{}", n.name, n.cidr, if n.is_default { " (default)" } else { "" });
                                view! { <option value=n.id selected=n.is_default>{label}</option> }
                            })
                            .collect_view()
                            .into_any()
                    };
                    let chosen = RwSignal::new(
                        groups.iter().filter(|g| g.is_default).map(|g| g.id.clone()).collect::<Vec<_>>(),
                    );
                    let group_field = if groups.is_empty() {
                        view! {
                            <p class="field-hint">"Your default security group is created with this VM."</p>
                        }.into_any()
                    } else {
                        let boxes = groups
                            .into_iter()
                            .map(|g| {
                                let id = StoredValue::new(g.id.clone());
                                view! {
                                    <label class="check" data-testid="launch-group" data-name=g.name.clone()>
                                        <input type="checkbox" prop:checked=move || chosen.with(|c| c.contains(&id.get_value()))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                chosen.update(|c| {
                                                    c.retain(|x| *x != id.get_value());
                                                    if on { c.push(id.get_value()); }
                                                });
                                            }/>
                                        {g.name.clone()}
                                        {g.is_default.then_some(" (default)")}
                                    </label>
                                }
                            })
                            .collect_view();
                        view! {
                            <div class="check-list">{boxes}</div>
                            <input type="hidden" name="security_group_ids" value=move || chosen.get().join(",")/>
                            <p class="field-hint">"None ticked: the default group."</p>
                        }.into_any()
                    };
                    Some(view! {
                        <div class="field">
                            <label for="launch-network_id">"Network"</label>
                            <select id="launch-network_id" name="network_id" data-testid="launch-network">
                                {network_options}
                            </select>
                            <FieldError error name="network_id"/>
                        </div>
                        <div class="field" data-testid="launch-groups">
                            <span class="field-label">"Security groups"</span>
                            {group_field}
                            <FieldError error name="security_group_ids"/>
                        </div>
                    })
                })
            }}
        </Transition>
    }
}
