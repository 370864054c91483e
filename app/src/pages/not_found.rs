//! The page for addresses that match no route (answered with HTTP 404).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::mark_hydrated;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    mark_hydrated();
    view! {
        <Title text="Page not found"/>
        <div class="centered-page" data-testid="not-found">
            <div class="big-code">"404"</div>
            <h1>"Page not found"</h1>
            <p>"The page you asked for does not exist or has moved."</p>
            <a class="btn btn-primary" href="/">"Back to the dashboard"</a>
        </div>
    }
}
