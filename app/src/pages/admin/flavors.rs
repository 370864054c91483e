//! `/admin/flavors`: machine sizes tenants launch from — list, create, and withdraw or offer again.
//! Withdrawn flavors stay on the VMs that use them (each VM keeps a snapshot of its size). A new price
//! applies to usage intervals opened afterwards (each start of a VM); past invoices keep their prices.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::catalogue::{CreateFlavor, SetFlavorDisabled, SetFlavorPrice};
use crate::api::vms::list_flavors;
use crate::components::launch::fmt_price;
use crate::components::vm::fmt_mib;
use crate::components::{action_error, AdminOnly, ErrorBox, Field, FormError, PageHeader};
use crate::model::FlavorView;

#[component]
pub fn FlavorsPage() -> impl IntoView {
    view! {
        <Title text="Flavors"/>
        <PageHeader title="Flavors" subtitle="Machine sizes and their hourly prices."/>
        <AdminOnly>
            <Flavors/>
        </AdminOnly>
    }
}

#[component]
fn Flavors() -> impl IntoView {
    let create = ServerAction::<CreateFlavor>::new();
    let toggle = ServerAction::<SetFlavorDisabled>::new();
    let price = ServerAction::<SetFlavorPrice>::new();
    let flavors = Resource::new(
        move || {
            (
                create.version().get(),
                toggle.version().get(),
                price.version().get(),
            )
        },
        |_| list_flavors(),
    );
    let create_error = action_error(create);
    let toggle_error = action_error(toggle);
    let price_error = action_error(price);
    view! {
        <section class="panel">
            <div class="panel-header"><h2>"Create a flavor"</h2></div>
            <ActionForm action=create>
                <div class="form-row">
                    <Field label="Name" name="name" error=create_error required=true form="flavor" placeholder="e.g. m1.tiny"/>
                    <Field label="vCPUs" name="vcpus" kind="number" error=create_error required=true form="flavor" min="1" max="4"/>
                    <Field label="Memory (MiB)" name="memory_mib" kind="number" error=create_error required=true form="flavor" min="64" max="8192"/>
                    <Field label="Disk (GiB)" name="disk_gib" kind="number" error=create_error required=true form="flavor" min="1" max="2048"/>
                    <Field label="Price per hour (cents)" name="hourly_price_minor" kind="number" error=create_error required=true form="flavor" min="0"/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending() data-testid="create-flavor">"Create flavor"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["name", "vcpus", "memory_mib", "disk_gib", "hourly_price_minor"]/>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"All flavors"</h2></div>
            <FormError error=toggle_error/>
            <FormError error=price_error fields=&[]/>
            <p class="muted small panel-note">"A new price applies from each VM's next start; past usage keeps the price it ran at."</p>
            <Transition fallback=|| view! { <p class="loading">"Loading flavors…"</p> }>
                {move || Suspend::new(async move {
                    match flavors.await {
                        Ok(list) => view! { <FlavorTable list toggle price/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn FlavorTable(
    list: Vec<FlavorView>,
    toggle: ServerAction<SetFlavorDisabled>,
    price: ServerAction<SetFlavorPrice>,
) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|f| {
            let id = f.id.clone();
            let disabled = f.disabled;
            let input_id = format!("price-{}", f.id);
            let (form_id, price_label) = (f.id.clone(), format!("Price of {} in cents per hour", f.name));
            let (price_now, price_title) = (f.hourly_price_minor.to_string(), fmt_price(f.hourly_price_minor));
            view! {
                <tr data-testid="flavor-row" data-flavor=f.name.clone()>
                    <td class="strong">{f.name.clone()}</td>
                    <td>{f.vcpus}</td>
                    <td>{fmt_mib(f.memory_mib)}</td>
                    <td>{f.disk_gib}" GiB"</td>
                    <td>
                        <ActionForm action=price>
                            <div class="inline-form price-form">
                            <input type="hidden" name="id" value=form_id.clone()/>
                            <label class="sr-only" for=input_id.clone()>{price_label.clone()}</label>
                            <input id=input_id.clone() type="number" name="hourly_price_minor" min="0" required=true class="price-input"
                                value=price_now.clone() data-testid="flavor-price-input"
                                title=price_title.clone()/>
                            <button type="submit" class="btn btn-small" data-testid="flavor-price-save">"Set price"</button>
                            </div>
                        </ActionForm>
                    </td>
                    <td>{if disabled { "withdrawn" } else { "offered" }}</td>
                    <td class="actions">
                        <button type="button" class="btn btn-small"
                            on:click=move |_| { toggle.dispatch(SetFlavorDisabled { id: id.clone(), disabled: (!disabled).to_string() }); }>
                            {if disabled { "Offer again" } else { "Withdraw" }}
                        </button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="flavors-table">
            <thead><tr><th>"Name"</th><th>"vCPUs"</th><th>"Memory"</th><th>"Disk"</th><th>"Price (cents / h)"</th><th>"Status"</th>
                <th class="actions">"Actions"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
