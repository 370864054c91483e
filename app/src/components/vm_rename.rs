//! Renaming a VM from its page: a "Rename" button that opens an inline form (the name is checked by the
//! server as at launch); the page and the lists follow through the event stream. Whether the form is open
//! is the page's (`open`), so a refetch of the page (any VM of the tenant changing) keeps it open with its
//! error.

use leptos::prelude::*;

use crate::api::vm_lists::RenameVm;
use crate::components::{action_error, FieldError};

#[component]
pub fn RenameButton(
    vm_id: String,
    name: String,
    rename: ServerAction<RenameVm>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let error = action_error(rename);
    let done = rename.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = done.get() {
            open.set(false);
        }
    });
    let vm_id = StoredValue::new(vm_id);
    let name = StoredValue::new(name);
    view! {
        <Show when=move || open.get() fallback=move || view! {
            <button type="button" class="btn btn-small" data-testid="vm-rename"
                on:click=move |_| { rename.clear(); open.set(true) }>"Rename"</button>
        }>
            <ActionForm action=rename attr:class="rename-form" attr:data-testid="rename-form">
                <input type="hidden" name="id" value=vm_id.get_value()/>
                <label class="visually-hidden" for="rename-name">"New name"</label>
                <input id="rename-name" name="name" value=name.get_value() required=true maxlength="63"
                    data-testid="rename-name" autocomplete="off"/>
                <button type="submit" class="btn btn-small btn-primary" disabled=rename.pending()
                    data-testid="rename-save">"Save"</button>
                <button type="button" class="btn btn-small" on:click=move |_| open.set(false)>"Cancel"</button>
                <FieldError error name="name"/>
            </ActionForm>
        </Show>
    }
}
