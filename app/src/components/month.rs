//! The month shown by the usage pages lives in the URL (`?month=YYYY-MM`): back/forward and reload keep
//! it, and a link can be shared. The picker shows the invoice's month (the server resolves "this month").

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;

/// The `month` query parameter ("" when absent: this month).
pub fn month_param() -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get("month").unwrap_or_default()))
}

/// A month picker that writes the chosen month into the URL (a new history entry). `shown` is the month on
/// display (the loaded invoice's, or the parameter while it loads).
#[component]
pub fn MonthPicker(#[prop(into)] shown: Signal<String>, testid: &'static str) -> impl IntoView {
    let navigate = use_navigate();
    let location = leptos_router::hooks::use_location();
    let on_change = move |ev: leptos::ev::Event| {
        let month = event_target_value(&ev);
        if is_month(&month) {
            let path = location.pathname.get_untracked();
            navigate(&format!("{path}?month={month}"), NavigateOptions::default());
        }
    };
    view! {
        <label class="inline-field">"Month "
            <input type="month" data-testid=testid prop:value=move || shown.get() on:change=on_change/>
        </label>
    }
}

/// `YYYY-MM` with a plausible month.
pub fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_months_go_into_the_url() {
        assert!(is_month("2026-11"));
        assert!(!is_month("2026-13") && !is_month("") && !is_month("26-11") && !is_month("2026/11"));
    }
}
