//! `/` and `/instances`: the tenant dashboard — summary figures, the instance list with actions, and the
//! launch dialog. The list follows state changes live (server-sent events); its search, filters and sort are
//! the URL's query string (`components/vm_filters.rs`), applied by the server.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::vm_lists::search_vms;
use crate::api::vms::{ActOnVm, LaunchVm};
use crate::components::boot::VmStatus;
use crate::components::launch::LaunchDialog;
use crate::components::list_query::SortHeader;
use crate::components::quota::QuotaCards;
use crate::components::vm::{size_line, VmActions};
use crate::components::vm_filters::{filtered, VmFilters};
use crate::components::{action_error, fmt_time, vm_changes, EmptyState, ErrorBox, FormError, PageHeader};
use crate::model::{Me, VmView};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let tenant = StoredValue::new(use_context::<Me>().map(|me| me.tenant_name).unwrap_or_default());
    let launch = ServerAction::<LaunchVm>::new();
    let act = ServerAction::<ActOnVm>::new();
    let changes = vm_changes();
    let query = leptos_router::hooks::use_query_map();
    let vms = Resource::new(
        move || {
            (
                changes.get(),
                launch.version().get(),
                act.version().get(),
                query.get(),
            )
        },
        |(.., q)| {
            let p = move |k: &str| q.get(k).unwrap_or_default();
            search_vms(p("q"), p("state"), p("image"), p("sort"))
        },
    );
    let act_error = action_error(act);
    let open = RwSignal::new(false);
    // Closing the dialog gives the focus back to the button that opened it.
    let opener = NodeRef::<leptos::html::Button>::new();
    let on_close = Callback::new(move |_| {
        open.set(false);
        if let Some(button) = opener.get_untracked() {
            let _ = button.focus();
        }
    });
    view! {
        <Title text="Instances"/>
        <PageHeader title="Instances" subtitle="Virtual machines of your tenant.">
            <button type="button" class="btn btn-primary" data-testid="launch-instance" node_ref=opener
                on:click=move |_| { launch.clear(); open.set(true) }>
                "+ Launch instance"
            </button>
        </PageHeader>
        <Show when=move || open.get()>
            <LaunchDialog launch on_close/>
        </Show>
        <QuotaCards/>
        <Transition fallback=|| view! { <p class="loading">"Loading instances…"</p> }>
            {move || Suspend::new(async move {
                match vms.await {
                    Ok(list) => {
                        let tenant = tenant.get_value();
                        view! {
                            <section class="panel">
                                <div class="panel-header">
                                    <h2>"Instances in "<span class="tenant-inline">{tenant}</span></h2>
                                </div>
                                <VmFilters/>
                                <FormError error=act_error/>
                                {if list.is_empty() && filtered(&query.get_untracked()) {
                                    view! {
                                        <p class="muted" data-testid="no-matches">"No instances match these filters."</p>
                                    }.into_any()
                                } else if list.is_empty() {
                                    view! {
                                        <EmptyState title="No instances yet" icon="\u{25a3}">
                                            <p>"Launch an instance: pick an image and a flavor, and it boots in seconds."</p>
                                            <button type="button" class="btn btn-primary"
                                                on:click=move |_| open.set(true)>"+ Launch instance"</button>
                                        </EmptyState>
                                    }.into_any()
                                } else {
                                    view! { <VmTable list act/> }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                    Err(error) => view! { <ErrorBox error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn VmTable(list: Vec<VmView>, act: ServerAction<ActOnVm>) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|vm| {
            let href = format!("/instances/{}", vm.id);
            let name = vm.name.clone();
            view! {
                <tr data-testid="vm-row" data-vm-name=vm.name.clone()>
                    <td class="strong"><A href=href>{name}</A></td>
                    <td><VmStatus vm=vm.clone()/>
                        {(!vm.state_reason.is_empty()).then(|| view! {
                            <div class="muted small" title=vm.state_reason.clone()>{vm.state_reason.clone()}</div>
                        })}
                    </td>
                    <td>{vm.image_name.clone()}</td>
                    <td>{vm.flavor_name.clone()}<div class="muted small">{size_line(&vm)}</div></td>
                    <td title=vm.created_at.clone()>{fmt_time(&vm.created_at)}</td>
                    <td class="actions"><VmActions vm=vm.clone() action=act/></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="vms-table">
            <thead>
                <tr><SortHeader label="Name" key="name"/><SortHeader label="State" key="state"/>
                    <SortHeader label="Image" key="image"/><th>"Flavor"</th><SortHeader label="Created" key="created"/>
                    <th class="actions">"Actions"</th></tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
