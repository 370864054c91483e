//! The launch dialog's key pair picker: the tenant's saved keys as checkboxes, sent as the comma-separated
//! `key_pair_ids`. Pasting a key in the dialog stays possible; both end up in `authorized_keys`.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::key_pairs::list_key_pairs;
use crate::components::FieldError;
use crate::error::AppError;

#[component]
pub fn LaunchKeyPairFields(error: Signal<Option<AppError>>) -> impl IntoView {
    let keys = Resource::new(|| (), |_| list_key_pairs());
    let chosen = RwSignal::new(Vec::<String>::new());
    let toggle = move |id: String, on: bool| {
        chosen.update(|c| {
            c.retain(|x| *x != id);
            if on {
                c.push(id);
            }
        })
    };
    view! {
        <fieldset class="field key-pair-picker" data-testid="launch-key-pairs">
            <legend>"Key pairs"<span class="optional">" (optional)"</span></legend>
            <input type="hidden" name="key_pair_ids" prop:value=move || chosen.get().join(",")/>
            <Suspense fallback=|| view! { <p class="loading">"Loading key pairs…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="field-hint" data-testid="no-key-pairs">
                                "No saved key pairs. "<A href="/key-pairs">"Add one"</A>" or paste a key below."
                            </p>
                        }.into_any(),
                        Ok(list) => list.into_iter().map(|k| {
                            let id = k.id.clone();
                            let input_id = format!("launch-key-{}", k.id);
                            let label_for = input_id.clone();
                            view! {
                                <label class="check" for=label_for>
                                    <input type="checkbox" id=input_id data-testid="launch-key-pair"
                                        data-key-name=k.name.clone()
                                        on:change=move |ev| toggle(id.clone(), event_target_checked(&ev))/>
                                    " "{k.name.clone()}" "
                                    <code class="muted small">{k.fingerprint.clone()}</code>
                                </label>
                            }
                        }).collect_view().into_any(),
                        Err(_) => view! {
                            <p class="field-hint">"Your key pairs could not be loaded; paste a key below."</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
            <FieldError error name="key_pair_ids"/>
        </fieldset>
    }
}
