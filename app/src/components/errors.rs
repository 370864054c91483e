//! How `AppError`s are shown: a banner for page and form errors, a line under a form field for field errors.

use leptos::prelude::*;

use crate::error::AppError;

/// A banner with the message of an error (page-level, or a form error not tied to one field).
#[component]
pub fn ErrorBox(error: AppError) -> impl IntoView {
    let title = match &error {
        AppError::Unauthenticated => "Signed out",
        AppError::Forbidden => "Not allowed",
        AppError::NotFound { .. } => "Not found",
        AppError::Invalid { .. } => "Please check the form",
        AppError::Conflict { .. } => "Conflict",
        AppError::TooLarge => "Too large",
        AppError::QuotaExceeded { .. } => "Over quota",
        AppError::TooManyRequests { .. } => "Too many attempts",
        AppError::Internal => "Server error",
        AppError::Transport { .. } => "Connection problem",
    };
    view! {
        <div class="alert alert-error" role="alert" data-testid="error" data-kind=error_kind(&error)>
            <strong class="alert-title">{title}</strong>
            <span class="alert-message">{error.to_string()}</span>
        </div>
    }
}

/// The error of a form, unless it belongs to one of the form's own `fields` (those show next to the field).
#[component]
pub fn FormError(
    #[prop(into)] error: Signal<Option<AppError>>,
    #[prop(optional)] fields: &'static [&'static str],
) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|err| !err.field().is_some_and(|f| fields.contains(&f)))
            .map(|error| {
                view! { <ErrorBox error/> }
            })
    }
}

/// The message of an `Invalid` error about the field `name`, shown under that field.
#[component]
pub fn FieldError(#[prop(into)] error: Signal<Option<AppError>>, name: &'static str) -> impl IntoView {
    move || {
        error.get().filter(|err| err.field() == Some(name)).map(|err| {
            view! {
                <p class="field-error" data-testid=format!("field-error-{name}") role="alert">
                    {err.to_string()}
                </p>
            }
        })
    }
}

/// A stable name for the kind of error (used by styles and tests).
pub fn error_kind(error: &AppError) -> &'static str {
    error.kind()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_match_the_json_tag_the_server_sends() {
        let errors = [
            AppError::Unauthenticated,
            AppError::Forbidden,
            AppError::not_found("Tenant"),
            AppError::invalid("name", "Name is required."),
            AppError::conflict("Name taken."),
            AppError::TooLarge,
            AppError::TooManyRequests {
                message: "Slow down.".into(),
                retry_after_secs: 3,
            },
            AppError::Internal,
            AppError::Transport {
                message: "offline".into(),
            },
        ];
        for err in errors {
            let json = serde_json::to_value(&err).unwrap();
            assert_eq!(json["error"]["kind"], error_kind(&err));
        }
    }
}
