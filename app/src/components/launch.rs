//! The launch dialog: name, image, flavor, network and security groups (`launch_network.rs`), SSH key and
//! user data. Submits `launch_vm`; the new VM appears in the list at once (in `creating`) and moves on live.
//! Focus moves into the dialog when it opens and Escape closes it (the opener takes focus back); the
//! image reaching a shell fastest is pre-selected (`image_choice.rs`), and Launch is disabled while the
//! chosen flavor is over the quota.

use leptos::prelude::*;

use crate::api::billing::my_quota;
use crate::api::vms::{list_flavors, list_images, LaunchVm};
use crate::components::after_render::before_paint;
use crate::components::image_choice::{default_image, image_hint};
use crate::components::launch_keys::LaunchKeyPairFields;
use crate::components::launch_network::LaunchNetworkFields;
use crate::components::vm::{count, fmt_mib};
use crate::components::{action_error, ErrorBox, Field, FieldError, FormError};
use crate::model::{FlavorView, QuotaView};

/// Minor units (cents) per hour as "0.02 / h".
pub fn fmt_price(minor: i64) -> String {
    format!("{}.{:02} / h", minor / 100, minor % 100)
}

#[component]
pub fn LaunchDialog(launch: ServerAction<LaunchVm>, on_close: Callback<()>) -> impl IntoView {
    let catalogue = Resource::new(
        || (),
        |_| async { (list_images().await, list_flavors().await, my_quota().await) },
    );
    let error = action_error(launch);
    let result = launch.value();
    // Close once the launch succeeded.
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            on_close.run(());
        }
    });
    let dialog = NodeRef::<leptos::html::Div>::new();
    // Focus into the dialog as it opens (browser only); the name field takes it once the form is there.
    Effect::new(move |_| {
        if let Some(el) = dialog.get() {
            let inside = document()
                .active_element()
                .is_some_and(|a| el.contains(Some(&*a)));
            if !inside {
                let _ = el.focus();
            }
        }
    });
    view! {
        <div class="modal-backdrop" on:click=move |_| on_close.run(())></div>
        <div class="modal" role="dialog" aria-modal="true" aria-labelledby="launch-title" data-testid="launch-dialog"
            tabindex="-1" node_ref=dialog
            on:keydown=move |ev| if ev.key() == "Escape" { ev.prevent_default(); on_close.run(()) }>
            <header class="modal-header">
                <h2 id="launch-title">"Launch instance"</h2>
                <button type="button" class="btn btn-link" aria-label="Close" on:click=move |_| on_close.run(())>
                    "\u{2715}"
                </button>
            </header>
            <Transition fallback=|| view! { <p class="loading">"Loading images and flavors…"</p> }>
                {move || Suspend::new(async move {
                    match catalogue.await {
                        (Ok(images), Ok(flavors), quota) => {
                            let quota = quota.ok();
                            let chosen = RwSignal::new(flavors.first().map(|f| f.id.clone()).unwrap_or_default());
                            let flavor_list = StoredValue::new(flavors.clone());
                            let quota_for_problem = quota.clone();
                            let problem = Memo::new(move |_| {
                                let q = quota_for_problem.as_ref()?;
                                let id = chosen.get();
                                flavor_list.with_value(|fs| fs.iter().find(|f| f.id == id).and_then(|f| flavor_problem(q, f)))
                            });
                            let image = RwSignal::new(default_image(&images).unwrap_or_default());
                            let image_list = StoredValue::new(images.clone());
                            let hint = move || {
                                let id = image.get();
                                image_list.with_value(|is| is.iter().find(|i| i.id == id).map(image_hint))
                            };
                            let first = image.get_untracked();
                            let image_options = images
                                .into_iter()
                                .map(|i| {
                                    let label = if i.is_test { format!("{} — {} (test)", i.name, i.os) } else { format!("{} — {}", i.name, i.os) };
                                    view! { <option value=i.id.clone() selected=i.id == first>{label}</option> }
                                })
                                .collect_view();
                            // The name field takes the focus once the form is in the document.
                            before_paint(focus_name_field);
                            let flavor_options = flavors
                                .into_iter()
                                .map(|f| {
                                    let over = quota.as_ref().and_then(|q| flavor_problem(q, &f)).is_some();
                                    let label = format!(
                                        "{} — {}, {}, {} GiB, {}{}",
                                        f.name, count(i64::from(f.vcpus), "vCPU", "vCPUs"), fmt_mib(f.memory_mib), f.disk_gib, fmt_price(f.hourly_price_minor),
                                        if over { " — over quota" } else { "" }
                                    );
                                    view! { <option value=f.id.clone() class:over-quota=over>{label}</option> }
                                })
                                .collect_view();
                            view! {
                                <ActionForm action=launch>
                                    <div class="modal-body">
                                        <Field label="Name" name="name" error required=true form="launch"
                                            placeholder="e.g. web-1" hint="Lowercase letters, digits and '-'; also the hostname."/>
                                        <div class="field">
                                            <label for="launch-image_id">"Image"</label>
                                            <select id="launch-image_id" name="image_id" required=true data-testid="launch-image"
                                                on:change=move |ev| image.set(event_target_value(&ev))>
                                                {image_options}
                                            </select>
                                            <p class="field-hint" data-testid="image-hint">{hint}</p>
                                            <FieldError error name="image_id"/>
                                        </div>
                                        <div class="field" class:field-invalid=move || problem.get().is_some()>
                                            <label for="launch-flavor_id">"Flavor"</label>
                                            <select id="launch-flavor_id" name="flavor_id" required=true data-testid="launch-flavor"
                                                on:change=move |ev| chosen.set(event_target_value(&ev))>
                                                {flavor_options}
                                            </select>
                                            {quota.as_ref().map(|q| {
                                                let left = q.left();
                                                view! {
                                                    <p class="field-hint" data-testid="quota-left">
                                                        {format!("Your quota has {}, {}, {} memory and {} GiB disk left.",
                                                            count(left.instances, "instance", "instances"), count(left.vcpus, "vCPU", "vCPUs"),
                                                            fmt_mib(u32::try_from(left.memory_mib).unwrap_or(u32::MAX)), left.disk_gib)}
                                                    </p>
                                                }
                                            })}
                                            {move || problem.get().map(|p| view! {
                                                <p class="field-error" data-testid="quota-problem">{p}</p>
                                            })}
                                            <FieldError error name="flavor_id"/>
                                        </div>
                                        <LaunchNetworkFields error/>
                                        <LaunchKeyPairFields error/>
                                        <div class="field">
                                            <label for="launch-ssh_key">"SSH public key"<span class="optional">" (optional)"</span></label>
                                            <textarea id="launch-ssh_key" name="ssh_key" rows="2"
                                                placeholder="ssh-ed25519 AAAA… you@laptop"></textarea>
                                            <p class="field-hint">"Written to the config disk as ssh/authorized_keys."</p>
                                            <FieldError error name="ssh_key"/>
                                        </div>
                                        <div class="field">
                                            <label for="launch-user_data">"User data"<span class="optional">" (optional)"</span></label>
                                            <textarea id="launch-user_data" name="user_data" rows="4"
                                                placeholder="#!/bin/sh"></textarea>
                                            <p class="field-hint">"Up to 64 KiB, given to the guest on its config disk (/dev/vdb, a tar archive)."</p>
                                            <FieldError error name="user_data"/>
                                        </div>
                                        <FormError error fields=&["name", "image_id", "flavor_id", "network_id", "security_group_ids", "key_pair_ids", "ssh_key", "user_data"]/>
                                    </div>
                                    <footer class="modal-footer">
                                        <button type="button" class="btn" on:click=move |_| on_close.run(())>"Cancel"</button>
                                        <button type="submit" class="btn btn-primary"
                                            disabled=move || launch.pending().get() || problem.get().is_some()
                                            title=move || problem.get().unwrap_or_default()
                                            data-testid="launch-submit">"Launch"</button>
                                    </footer>
                                </ActionForm>
                            }.into_any()
                        }
                        (Err(error), _, _) | (_, Err(error), _) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Moves the focus to the dialog's name field.
fn focus_name_field() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(el) = document()
            .get_element_by_id("launch-name")
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }
}

/// Why launching this flavor would exceed the quota, if it would.
fn flavor_problem(q: &QuotaView, f: &FlavorView) -> Option<String> {
    q.launch_problem(f.vcpus, f.memory_mib, f.disk_gib)
        .map(|p| format!("Over your quota: {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_shown_in_major_units() {
        assert_eq!(fmt_price(2), "0.02 / h");
        assert_eq!(fmt_price(1250), "12.50 / h");
    }
}
