//! The side menu on narrow screens: below 760 px the menu is hidden and a Menu button in the top bar opens
//! it over the page (`style/responsive.css`). A real `<button>` with `aria-expanded`/`aria-controls`, so it
//! works from the keyboard; the menu closes on navigation (links, Back and Forward), on Escape and on a tap
//! beside it.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// Whether the side menu is open (narrow screens only); provided by the layout's frame.
#[derive(Clone, Copy)]
pub struct NavOpen(pub RwSignal<bool>);

/// Provides [`NavOpen`] and closes the menu whenever the route changes: Back and Forward (the browser's
/// `popstate`, heard directly: the route effect alone left the menu open over the page there, issue 16),
/// a menu link (`close_on_click`) and any other navigation (the effect on the location).
pub fn provide_nav_state() -> RwSignal<bool> {
    let open = RwSignal::new(false);
    provide_context(NavOpen(open));
    let location = use_location();
    Effect::new(move |_| {
        location.pathname.track();
        location.search.track();
        open.set(false);
    });
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::popstate, move |_| open.set(false));
        on_cleanup(move || handle.remove());
    }
    open
}

/// Whether the menu is open (false outside the frame).
pub fn nav_open() -> Signal<bool> {
    let open = use_context::<NavOpen>().map(|n| n.0);
    Signal::derive(move || open.is_some_and(|o| o.get()))
}

/// The top bar's Menu button.
#[component]
pub fn NavToggle() -> impl IntoView {
    let open = use_context::<NavOpen>().map(|n| n.0);
    let toggle = move |_| {
        if let Some(o) = open {
            o.update(|v| *v = !*v);
        }
    };
    let expanded = move || open.is_some_and(|o| o.get()).to_string();
    view! {
        <button type="button" class="nav-toggle" data-testid="nav-toggle" aria-controls="sidenav"
            aria-expanded=expanded aria-label="Menu" on:click=toggle>
            <span class="nav-toggle-bars" aria-hidden="true"></span>
            <span class="nav-toggle-text">"Menu"</span>
        </button>
    }
}

/// The dimmed page behind the open menu: a tap on it closes the menu.
#[component]
pub fn NavScrim() -> impl IntoView {
    let open = use_context::<NavOpen>().map(|n| n.0);
    let close = move |_| {
        if let Some(o) = open {
            o.set(false);
        }
    };
    view! {
        <Show when=move || open.is_some_and(|o| o.get())>
            <div class="nav-scrim" aria-hidden="true" on:click=close></div>
        </Show>
    }
}

/// The side menu's keydown handler: Escape on the open menu closes it and gives the focus back to the
/// Menu button.
pub fn close_on_escape() -> impl Fn(leptos::ev::KeyboardEvent) + Clone + 'static {
    let open = use_context::<NavOpen>().map(|n| n.0);
    move |ev| {
        if ev.key() != "Escape" {
            return;
        }
        if let Some(open) = open.filter(|o| o.get_untracked()) {
            open.set(false);
            focus_toggle();
        }
    }
}

/// The side menu's click handler: following one of its links closes it.
pub fn close_on_click() -> impl Fn(leptos::ev::MouseEvent) + Clone + 'static {
    let open = use_context::<NavOpen>().map(|n| n.0);
    move |_| {
        if let Some(open) = open.filter(|o| o.get_untracked()) {
            open.set(false);
        }
    }
}

fn focus_toggle() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(button) = document()
            .query_selector("[data-testid=nav-toggle]")
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = button.focus();
        }
    }
}
