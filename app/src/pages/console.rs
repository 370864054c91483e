//! `/instances/:id/console`: a VM's console on a page of its own (like Proxmox's pop-out console). The VM's
//! state is re-read every few seconds in the browser, so the console connects when the VM starts and says
//! so when it stops.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::vms::get_vm;
use crate::components::console_gate::GatedConsole;
use crate::components::ErrorBox;
use crate::error::AppError;
use crate::model::VmDetail;

/// How often the page re-reads the VM's state.
const POLL: std::time::Duration = std::time::Duration::from_secs(3);

#[component]
pub fn ConsolePage() -> impl IntoView {
    let params = use_params_map();
    let vm_id = params.read_untracked().get("id").unwrap_or_default();
    let detail = RwSignal::new(None::<VmDetail>);
    let error = RwSignal::new(None::<AppError>);
    let id = vm_id.clone();
    // Effects run only in the browser: the first read and the polling happen after hydration.
    Effect::new(move |_| {
        let load = {
            let id = id.clone();
            move || {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    match get_vm(id).await {
                        Ok(d) => {
                            detail.try_set(Some(d));
                            error.try_set(None);
                        }
                        Err(e) => {
                            error.try_set(Some(e));
                        }
                    }
                });
            }
        };
        load();
        if let Ok(handle) = set_interval_with_handle(load, POLL) {
            on_cleanup(move || handle.clear());
        }
    });
    let vm_state = Memo::new(move |_| {
        if error.with(Option::is_some) {
            return None;
        }
        detail.with(|d| d.as_ref().map(|d| d.vm.state))
    });
    let name = move || detail.with(|d| d.as_ref().map(|d| d.vm.name.clone()).unwrap_or_default());
    let state = move || detail.with(|d| d.as_ref().map_or("…", |d| d.vm.state.as_str()));
    let back = format!("/instances/{vm_id}");
    view! {
        <Title text="Console"/>
        <header class="page-header">
            <div>
                <h1>"Console " <span data-testid="console-vm-name">{name}</span></h1>
                <p class="page-subtitle">
                    "State: " <span class="console-vm-state" data-testid="console-vm-state">{state}</span>
                </p>
            </div>
            <div class="page-actions">
                <a class="btn" href=back>"Back to the instance"</a>
            </div>
        </header>
        {move || error.get().map(|error| view! { <ErrorBox error/> })}
        <GatedConsole vm_id=vm_id state=vm_state/>
    }
}
