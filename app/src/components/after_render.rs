//! Acting on loaded data without making the page's frame reload. A resource read in an `Effect` or in a
//! reactive closure outside its own `<Transition>` registers with the nearest suspense boundary up the
//! tree — the signed-in layout's — which then re-renders the whole frame on every refetch: the console
//! element was rebuilt and asked for a ticket for a VM that had just stopped (issue 16: 409s on every
//! power change). So pages copy what they need out of their own `Suspend`, through these helpers.

/// Runs `f` in the browser once the current render (hydration included) is done; never on the server, so
/// server HTML and the first browser render agree.
pub fn after_render(f: impl FnOnce() + 'static) {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move { f() });
    #[cfg(not(feature = "hydrate"))]
    let _ = f;
}

/// Runs `f` in the browser before the next paint, after what is being rendered now is in the document.
pub fn before_paint(f: impl FnOnce() + 'static) {
    #[cfg(feature = "hydrate")]
    leptos::prelude::request_animation_frame(f);
    #[cfg(not(feature = "hydrate"))]
    let _ = f;
}
