//! The instance list's search and filters (name or id, state, image), kept in the URL's query string.

use leptos::prelude::*;
use leptos_router::params::ParamsMap;

use crate::api::vms::list_images;
use crate::components::list_query::{state_options, ClearFilters, FilterSelect, FilterText};

/// Whether the list is narrowed by any filter (an empty list then means "no match", not "no VMs").
pub fn filtered(query: &ParamsMap) -> bool {
    ["q", "state", "image", "tenant", "host"]
        .iter()
        .any(|k| query.get(k).is_some_and(|v| !v.is_empty()))
}

#[component]
pub fn VmFilters() -> impl IntoView {
    // Loaded in the browser only: the options are not in the server-rendered page, so hydration matches.
    let images = LocalResource::new(list_images);
    let image_options = Signal::derive(move || {
        images
            .get()
            .and_then(Result::ok)
            .map(|list| list.into_iter().map(|i| (i.name.clone(), i.name)).collect())
            .unwrap_or_default()
    });
    view! {
        <div class="filters" role="search" data-testid="vm-filters">
            <FilterText key="q" label="Search" placeholder="Name or ID"/>
            <FilterSelect key="state" label="State" options=Signal::derive(state_options)/>
            <FilterSelect key="image" label="Image" options=image_options/>
            <ClearFilters/>
        </div>
    }
}
