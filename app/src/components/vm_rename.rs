//! Renaming a VM from its page: a "Rename" button that opens an inline form (the name is checked by the
//! server as at launch); the page and the lists follow through the event stream. Whether the form is open
//! and what is typed in it are the page's (`RenameState`), so a refetch of the page (any VM of the tenant
//! changing, e.g. another one finishing its boot) keeps the form open with the typed name and its error.

use leptos::prelude::*;

use crate::api::vm_lists::RenameVm;
use crate::components::{action_error, FieldError};

/// The rename form's state, owned by the page so it outlives the page's refetches.
#[derive(Clone, Copy)]
pub struct RenameState {
    /// Whether the form is open.
    pub open: RwSignal<bool>,
    /// The name typed so far.
    pub draft: RwSignal<String>,
}

impl Default for RenameState {
    fn default() -> Self {
        Self {
            open: RwSignal::new(false),
            draft: RwSignal::new(String::new()),
        }
    }
}

#[component]
pub fn RenameButton(
    vm_id: String,
    name: String,
    rename: ServerAction<RenameVm>,
    state: RenameState,
) -> impl IntoView {
    let RenameState { open, draft } = state;
    let error = action_error(rename);
    let done = rename.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = done.get() {
            open.set(false);
        }
    });
    let vm_id = StoredValue::new(vm_id);
    let name = StoredValue::new(name);
    let start = move |_| {
        rename.clear();
        draft.set(name.get_value());
        open.set(true);
    };
    view! {
        <Show when=move || open.get() fallback=move || view! {
            <button type="button" class="btn btn-small" data-testid="vm-rename"
                on:click=start>"Rename"</button>
        }>
            <ActionForm action=rename attr:class="rename-form" attr:data-testid="rename-form">
                <input type="hidden" name="id" value=vm_id.get_value()/>
                <label class="visually-hidden" for="rename-name">"New name"</label>
                <input id="rename-name" name="name" bind:value=draft required=true maxlength="63"
                    data-testid="rename-name" autocomplete="off"/>
                <button type="submit" class="btn btn-small btn-primary" disabled=rename.pending()
                    data-testid="rename-save">"Save"</button>
                <button type="button" class="btn btn-small" on:click=move |_| open.set(false)>"Cancel"</button>
                <FieldError error name="name"/>
            </ActionForm>
        </Show>
    }
}
