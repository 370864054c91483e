//! `/account`: who the user is, and changing their own password.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::auth::ChangePassword;
use crate::components::{action_error, Field, FormError, PageHeader};
use crate::model::Me;

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = use_context::<Me>();
    let change = ServerAction::<ChangePassword>::new();
    let error = action_error(change);
    let value = change.value();
    let form_ref = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = value.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    let fact = |label: &'static str, value: String, testid: &'static str| {
        view! {
            <div class="fact">
                <dt>{label}</dt>
                <dd data-testid=testid>{value}</dd>
            </div>
        }
    };
    view! {
        <Title text="Account"/>
        <PageHeader title="Account" subtitle="Your profile and sign-in settings."/>
        <div class="grid-2">
            <section class="panel">
                <div class="panel-header"><h2>"Profile"</h2></div>
                {me.map(|me| view! {
                    <dl class="facts">
                        {fact("Username", me.username.clone(), "account-username")}
                        {fact("Display name", me.display_name.clone(), "account-display-name")}
                        {fact("Role", me.role.as_str().to_string(), "account-role")}
                        {fact("Tenant", me.tenant_name.clone(), "account-tenant")}
                    </dl>
                })}
            </section>
            <section class="panel">
                <div class="panel-header"><h2>"Change password"</h2></div>
                {move || matches!(value.get(), Some(Ok(()))).then(|| view! {
                    <div class="alert alert-success" role="status" data-testid="password-changed">
                        <span class="alert-message">
                            "Password changed. Your other sessions have been signed out."
                        </span>
                    </div>
                })}
                <ActionForm action=change node_ref=form_ref>
                    <FormError error fields=&["current_password", "new_password", "confirm_password"]/>
                    <Field label="Current password" name="current_password" kind="password" error
                        required=true autocomplete="current-password" form="pw"/>
                    <Field label="New password" name="new_password" kind="password" error
                        required=true autocomplete="new-password" form="pw"/>
                    <Field label="Confirm new password" name="confirm_password" kind="password" error
                        required=true autocomplete="new-password" form="pw"/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=change.pending()
                            data-testid="change-password">"Change password"</button>
                    </div>
                </ActionForm>
            </section>
        </div>
    }
}
