//! Live updates: a signal that ticks whenever a VM of the signed-in user's tenant changes state, fed by the
//! server-sent event stream `/api/v1/events`. Pages make their resources depend on it and refetch, so
//! state changes appear without a reload. On the server (SSR) it never ticks.

use leptos::prelude::*;

/// Ticks on every VM state change in the caller's tenant (and when changes may have been missed).
pub fn vm_changes() -> ReadSignal<u64> {
    let (ticks, set_ticks) = signal(0u64);
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;
        // Effects run only in the browser, once per mount of the calling component.
        Effect::new(move |_| {
            let Ok(source) = web_sys::EventSource::new("/api/v1/events") else {
                return;
            };
            let on_change = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_| {
                set_ticks.update(|t| *t += 1);
            });
            let listener = on_change.as_ref().unchecked_ref();
            let _ = source.add_event_listener_with_callback("vm", listener);
            let _ = source.add_event_listener_with_callback("resync", listener);
            // The browser reconnects by itself; after a reconnect, changes may have been missed.
            let _ = source.add_event_listener_with_callback("open", listener);
            let kept = StoredValue::new_local((source, on_change));
            on_cleanup(move || kept.with_value(|(source, _)| source.close()));
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = set_ticks;
    ticks
}
