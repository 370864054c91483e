//! `/login`: the sign-in page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::api::auth::{current_user, Login};
use crate::components::{action_error, mark_hydrated, Field, FormError, PRODUCT_NAME};

#[component]
pub fn LoginPage() -> impl IntoView {
    // Someone already signed in (or arriving back here after a no-JavaScript sign-in) goes to the dashboard.
    let me = Resource::new_blocking(|| (), |_| current_user());
    let login = ServerAction::<Login>::new();
    let error = action_error(login);
    let pending = login.pending();
    mark_hydrated();
    // A full page load after sign-in: every signed-in page then starts from the new session.
    Effect::new(move |_| {
        if let Some(Ok(_)) = login.value().get() {
            let _ = window().location().set_href("/");
        }
    });
    view! {
        <Title text="Sign in"/>
        <Suspense>
            {move || Suspend::new(async move {
                matches!(me.await, Ok(Some(_))).then(|| view! { <Redirect path="/"/> })
            })}
        </Suspense>
        <div class="login-page">
            <div class="login-card">
                <div class="login-brand">
                    <span class="brand-mark" aria-hidden="true"></span>
                    <span class="brand-name">{PRODUCT_NAME}</span>
                </div>
                <h1>"Sign in"</h1>
                <p class="login-sub">"Use the account your cloud administrator gave you."</p>
                <ActionForm action=login>
                    <FormError error fields=&["username", "password"]/>
                    <Field label="Username" name="username" error required=true autocomplete="username" form="login"/>
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        error
                        required=true
                        autocomplete="current-password"
                        form="login"
                    />
                    <button type="submit" class="btn btn-primary btn-block" disabled=pending data-testid="sign-in">
                        {move || if pending.get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
            </div>
            <p class="login-foot">{PRODUCT_NAME}" · self-service virtual machines"</p>
        </div>
    }
}
