//! Lists whose search, filters, sort and page live in the URL's query string, so reload, back/forward and
//! bookmarks keep them: filter controls navigate to the same path with one parameter changed (a new history
//! entry), sort headers are links, and pages read the parameters with `use_query_map`.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;
use leptos_router::NavigateOptions;

/// The query string of `map` with `key` set to `value` (removed when empty); any other change than the page
/// itself starts again at the first page.
pub fn with_param(map: &ParamsMap, key: &str, value: &str) -> String {
    let mut next = map.clone();
    next.remove(key);
    if key != "offset" {
        next.remove("offset");
    }
    if !value.is_empty() {
        next.insert(key.to_string(), value.to_string());
    }
    let query = next.to_query_string();
    if query.is_empty() {
        "?".into()
    } else {
        query
    }
}

/// The sort parameter after clicking the header of `key`: ascending first, then descending.
pub fn next_sort(current: &str, key: &str) -> String {
    if current == key {
        format!("-{key}")
    } else {
        key.to_string()
    }
}

/// A query parameter of the current URL ("" when absent).
pub fn query_param(key: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get(key).unwrap_or_default()))
}

/// Navigates to the current path with `key` set to `value`.
fn set_param(query: Memo<ParamsMap>, key: &str, value: &str) {
    let href = query.with_untracked(|q| with_param(q, key, value));
    let navigate = use_navigate();
    navigate(
        &href,
        NavigateOptions {
            scroll: false,
            ..Default::default()
        },
    );
}

/// A table header that sorts the list by `key` (a link: the order is in the URL).
#[component]
pub fn SortHeader(label: &'static str, key: &'static str) -> impl IntoView {
    let query = use_query_map();
    let sort = Memo::new(move |_| query.with(|q| q.get("sort").unwrap_or_default()));
    let href = move || query.with(|q| with_param(q, "sort", &next_sort(&sort.get(), key)));
    let mark = move || match sort.get().as_str() {
        s if s == key => " \u{25b2}",
        s if s.strip_prefix('-') == Some(key) => " \u{25bc}",
        _ => "",
    };
    let aria = move || match sort.get().as_str() {
        s if s == key => "ascending",
        s if s.strip_prefix('-') == Some(key) => "descending",
        _ => "none",
    };
    view! {
        <th aria-sort=aria>
            <A href={href} {..} class="sort-link" data-testid=format!("sort-{key}")>{label}{mark}</A>
        </th>
    }
}

/// A search box bound to the query parameter `key`: Enter (or leaving the field) applies it.
#[component]
pub fn FilterText(key: &'static str, label: &'static str, placeholder: &'static str) -> impl IntoView {
    let query = use_query_map();
    let value = Memo::new(move |_| query.with(|q| q.get(key).unwrap_or_default()));
    let id = format!("filter-{key}");
    view! {
        <div class="filter">
            <label for=id.clone()>{label}</label>
            <input id=id type="search" name=key placeholder=placeholder prop:value=move || value.get()
                data-testid=format!("filter-{key}") maxlength="100"
                on:change=move |ev| set_param(query, key, event_target_value(&ev).trim())/>
        </div>
    }
}

/// A date field (`YYYY-MM-DD`) bound to the query parameter `key`: picking or typing a whole date applies it.
#[component]
pub fn FilterDate(key: &'static str, label: &'static str) -> impl IntoView {
    let query = use_query_map();
    let value = Memo::new(move |_| query.with(|q| q.get(key).unwrap_or_default()));
    let id = format!("filter-{key}");
    view! {
        <div class="filter">
            <label for=id.clone()>{label}</label>
            <input id=id type="date" name=key prop:value=move || value.get() data-testid=format!("filter-{key}")
                on:change=move |ev| set_param(query, key, event_target_value(&ev).trim())/>
        </div>
    }
}

/// A drop-down bound to the query parameter `key`; the first option is "any" (empty value).
#[component]
pub fn FilterSelect(
    key: &'static str,
    label: &'static str,
    /// (value, label) pairs after "Any".
    #[prop(into)]
    options: Signal<Vec<(String, String)>>,
) -> impl IntoView {
    let query = use_query_map();
    let value = Memo::new(move |_| query.with(|q| q.get(key).unwrap_or_default()));
    let id = format!("filter-{key}");
    // The options appear once the page is live (Effects run after hydration): options loaded in the browser
    // may arrive before the list around them hydrates, and must not be part of what hydration compares.
    let live = RwSignal::new(false);
    Effect::new(move |_| live.set(true));
    view! {
        <div class="filter">
            <label for=id.clone()>{label}</label>
            <select id=id name=key data-testid=format!("filter-{key}") prop:value=move || value.get()
                on:change=move |ev| set_param(query, key, &event_target_value(&ev))>
                <option value="">"Any"</option>
                {move || if live.get() { options.get() } else { Vec::new() }.into_iter().map(|(v, l)| {
                    let selected = v == value.get_untracked();
                    view! { <option value=v selected=selected>{l}</option> }
                }).collect_view()}
            </select>
        </div>
    }
}

/// The VM states a list can filter by, as (value, label).
pub fn state_options() -> Vec<(String, String)> {
    use crate::model::VmState;
    [
        VmState::Running,
        VmState::Stopped,
        VmState::Crashed,
        VmState::Creating,
        VmState::Starting,
        VmState::Stopping,
        VmState::Rebooting,
        VmState::Deleting,
    ]
    .iter()
    .map(|s| (s.as_str().to_string(), s.as_str().to_string()))
    .collect()
}

/// "Clear filters" when any parameter is set.
#[component]
pub fn ClearFilters() -> impl IntoView {
    let query = use_query_map();
    let any = Memo::new(move |_| query.with(|q| !q.to_query_string().is_empty()));
    view! {
        <Show when=move || any.get()>
            <A href="?" {..} class="btn btn-small btn-link" data-testid="clear-filters">"Clear filters"</A>
        </Show>
    }
}

/// Previous/next page links for a list of `total` rows shown `limit` at a time from `offset`.
#[component]
pub fn Pager(total: u64, limit: u32, offset: u32) -> impl IntoView {
    let query = use_query_map();
    let prev = (offset > 0).then(|| offset.saturating_sub(limit));
    let next_start = u64::from(offset) + u64::from(limit);
    let next = (next_start < total).then_some(next_start);
    let first = if total == 0 { 0 } else { u64::from(offset) + 1 };
    let last = (u64::from(offset) + u64::from(limit)).min(total);
    view! {
        <div class="pager" data-testid="pager">
            <span class="muted">{format!("{first}–{last} of {total}")}</span>
            {prev.map(|p| view! {
                <A href=move || query.with(|q| with_param(q, "offset", &p.to_string()))
                    {..} class="btn btn-small" data-testid="page-prev">"\u{2190} Previous"</A>
            })}
            {next.map(|n| view! {
                <A href=move || query.with(|q| with_param(q, "offset", &n.to_string()))
                    {..} class="btn btn-small" data-testid="page-next">"Next \u{2192}"</A>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> ParamsMap {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn a_changed_filter_keeps_the_others_and_goes_back_to_the_first_page() {
        let q = map(&[("state", "running"), ("offset", "50")]);
        let href = with_param(&q, "q", "web");
        assert!(href.starts_with('?'));
        assert!(href.contains("state=running") && href.contains("q=web"), "{href}");
        assert!(!href.contains("offset"), "{href}");
        assert_eq!(with_param(&map(&[("q", "web")]), "q", ""), "?");
        assert!(with_param(&q, "offset", "100").contains("offset=100"));
    }

    #[test]
    fn a_sort_header_toggles_its_direction() {
        assert_eq!(next_sort("", "name"), "name");
        assert_eq!(next_sort("name", "name"), "-name");
        assert_eq!(next_sort("-name", "name"), "name");
        assert_eq!(next_sort("-created", "name"), "name");
    }
}
