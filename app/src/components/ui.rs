//! Small layout helpers shared by pages: page header, empty state, admin guard, time formatting and the
//! hydration marker the browser tests wait for.

use leptos::prelude::*;

use crate::model::Me;

/// The title row of a page, with an optional line of explanation.
#[component]
pub fn PageHeader(
    title: &'static str,
    #[prop(optional)] subtitle: Option<&'static str>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <header class="page-header">
            <div>
                <h1>{title}</h1>
                {subtitle.map(|s| view! { <p class="page-subtitle">{s}</p> })}
            </div>
            <div class="page-actions">{children.map(|c| c())}</div>
        </header>
    }
}

/// A friendly placeholder for a list with nothing in it yet.
#[component]
pub fn EmptyState(
    title: &'static str,
    #[prop(optional)] icon: Option<&'static str>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <div class="empty-state" data-testid="empty-state">
            <div class="empty-icon" aria-hidden="true">{icon.unwrap_or("\u{25a2}")}</div>
            <h2>{title}</h2>
            {children.map(|c| c())}
        </div>
    }
}

/// Shows its children only to admins; members see why they cannot use the page.
#[component]
pub fn AdminOnly(children: ChildrenFn) -> impl IntoView {
    let is_admin = use_context::<Me>().is_some_and(|me| me.is_admin());
    if is_admin {
        children().into_any()
    } else {
        view! {
            <div class="alert alert-warning" role="alert" data-testid="admin-required">
                <strong class="alert-title">"Administrators only"</strong>
                <span class="alert-message">
                    "You need to be an administrator to view this page."
                </span>
            </div>
        }
        .into_any()
    }
}

/// A timestamp from the server (RFC 3339) shown as `YYYY-MM-DD HH:MM`; anything else is shown as is.
pub fn fmt_time(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let looks_rfc3339 = bytes.len() >= 16
        && bytes.get(4) == Some(&b'-')
        && bytes.get(7) == Some(&b'-')
        && matches!(bytes.get(10), Some(b'T' | b' '))
        && bytes.get(13) == Some(&b':');
    match (looks_rfc3339, raw.get(..10), raw.get(11..16)) {
        (true, Some(date), Some(time)) => format!("{date} {time}"),
        _ => raw.to_string(),
    }
}

/// Marks `<body data-hydrated="true">` once this component has hydrated in the browser. Effects never run
/// during server rendering, so the attribute means "interactive".
pub fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_shortened_to_the_minute() {
        assert_eq!(fmt_time("2026-11-23T23:31:02Z"), "2026-11-23 23:31");
        assert_eq!(fmt_time("2026-11-23 23:31:02.123+00:00"), "2026-11-23 23:31");
    }

    #[test]
    fn unknown_formats_are_left_alone() {
        assert_eq!(fmt_time("yesterday"), "yesterday");
        assert_eq!(fmt_time(""), "");
    }
}
