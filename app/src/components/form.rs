//! Form helpers: a labelled input that shows its own validation error, and the error/success of an action.

use leptos::prelude::*;
use server_fn::ServerFn;

use crate::components::errors::FieldError;
use crate::error::AppError;

/// The error of the action's last run, if it failed.
pub fn action_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let value = action.value();
    Signal::derive(move || match value.get() {
        Some(Err(err)) => Some(err),
        _ => None,
    })
}

/// The output of the action's last run, if it succeeded.
pub fn action_succeeded<S>(action: ServerAction<S>) -> Signal<Option<S::Output>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let value = action.value();
    Signal::derive(move || value.get().and_then(Result::ok))
}

/// A labelled input named like the server function argument it fills, with its validation message below.
#[component]
pub fn Field(
    /// The visible label.
    label: &'static str,
    /// The input's `name`: the server function's argument name.
    name: &'static str,
    /// The form's error; shown here when it is about this field.
    #[prop(into)]
    error: Signal<Option<AppError>>,
    /// The input `type`.
    #[prop(default = "text")]
    kind: &'static str,
    #[prop(optional)] required: bool,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] placeholder: Option<&'static str>,
    /// A help line under the input.
    #[prop(optional)]
    hint: Option<&'static str>,
    /// Prefix for the input's id, so two forms on one page do not clash.
    #[prop(default = "f")]
    form: &'static str,
    #[prop(optional)] min: Option<&'static str>,
    #[prop(optional)] max: Option<&'static str>,
) -> impl IntoView {
    let id = format!("{form}-{name}");
    let invalid = move || error.with(|e| e.as_ref().and_then(AppError::field) == Some(name));
    view! {
        <div class="field" class:field-invalid=invalid>
            <label for=id.clone()>{label}{(!required).then(|| view! { <span class="optional">" (optional)"</span> })}</label>
            <input
                id=id
                name=name
                type=kind
                required=required
                autocomplete=autocomplete
                placeholder=placeholder
                min=min
                max=max
                aria-invalid=move || if invalid() { "true" } else { "false" }
            />
            {hint.map(|hint| view! { <p class="field-hint">{hint}</p> })}
            <FieldError error name/>
        </div>
    }
}
