//! `/tokens`: personal API tokens. Lists them, creates one (showing its secret exactly once) and revokes.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::tokens::{list_tokens, CreateToken, RevokeToken};
use crate::components::{action_error, fmt_time, EmptyState, ErrorBox, Field, FormError, PageHeader};
use crate::model::{NewToken, TokenView};

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    let create_error = action_error(create);
    let revoke_error = action_error(revoke);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let created = create.value();
    // Clear the form once a token is made; on failure the values stay for correction.
    Effect::new(move |_| {
        if let Some(Ok(_)) = created.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    view! {
        <Title text="API tokens"/>
        <PageHeader
            title="API tokens"
            subtitle="Personal tokens let scripts and tools call the REST API as you. Treat them like passwords."
        />
        {move || match created.get() {
            Some(Ok(new)) => Some(view! { <SecretOnce new on_done=move || create.clear()/> }),
            _ => None,
        }}
        <section class="panel">
            <div class="panel-header"><h2>"Create a token"</h2></div>
            <ActionForm action=create node_ref=form_ref>
                <div class="form-row">
                    <Field label="Name" name="name" error=create_error required=true form="token"
                        placeholder="e.g. ci-deploy"/>
                    <Field label="Expires in (days)" name="expires_in_days" kind="number" error=create_error
                        form="token" min="1" max="3650" hint="Leave empty for a token that does not expire."/>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=create.pending()
                            data-testid="create-token">"Create token"</button>
                    </div>
                </div>
                <FormError error=create_error fields=&["name", "expires_in_days"]/>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"Your tokens"</h2></div>
            <FormError error=revoke_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading tokens…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No API tokens" icon="\u{25c8}">
                                <p>"Create a token to use the REST API from scripts."</p>
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <TokenTable list revoke/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The new token's secret, shown once, with a copy button and a warning.
#[component]
fn SecretOnce(new: NewToken, on_done: impl Fn() + Send + Sync + 'static) -> impl IntoView {
    let copied = RwSignal::new(false);
    let secret = new.secret.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let _ = window().navigator().clipboard().write_text(&secret);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &secret;
        copied.set(true);
    };
    view! {
        <div class="secret-box" role="status" data-testid="token-created">
            <div class="secret-head">
                <strong>"Token “"{new.token.name.clone()}"” created"</strong>
            </div>
            <p class="secret-warning">
                "Copy this token now. It is shown only once and cannot be recovered: if you lose it, revoke it and create a new one."
            </p>
            <div class="secret-row">
                <code class="secret" data-testid="token-secret">{new.secret.clone()}</code>
                <button type="button" class="btn" on:click=copy data-testid="copy-token">
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
            <button type="button" class="btn btn-link" on:click=move |_| on_done()>"I have saved it"</button>
        </div>
    }
}

#[component]
fn TokenTable(list: Vec<TokenView>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    // The token whose revocation awaits confirmation.
    let confirming = RwSignal::new(None::<String>);
    let rows = list
        .into_iter()
        .map(|t| {
            let id = t.id.clone();
            let id_ask = t.id.clone();
            let id_confirm = t.id.clone();
            let asking = move || confirming.with(|c| c.as_deref() == Some(id.as_str()));
            view! {
                <tr data-testid="token-row">
                    <td class="strong">{t.name.clone()}</td>
                    <td><code>{t.prefix.clone()}"…"</code></td>
                    <td title=t.created_at.clone()>{fmt_time(&t.created_at)}</td>
                    <td>{t.last_used_at.as_deref().map(fmt_time).unwrap_or_else(|| "Never".into())}</td>
                    <td>{t.expires_at.as_deref().map(fmt_time).unwrap_or_else(|| "Never".into())}</td>
                    <td class="actions">
                        <Show
                            when=asking.clone()
                            fallback=move || {
                                let id = id_ask.clone();
                                view! {
                                    <button type="button" class="btn btn-small btn-danger-outline"
                                        data-testid="revoke-token"
                                        on:click=move |_| confirming.set(Some(id.clone()))>"Revoke"</button>
                                }
                            }
                        >
                            {
                                let id = id_confirm.clone();
                                view! {
                                    <span class="confirm">
                                        "Revoke? "
                                        <button type="button" class="btn btn-small btn-danger"
                                            data-testid="confirm-revoke"
                                            on:click=move |_| {
                                                revoke.dispatch(RevokeToken { id: id.clone() });
                                                confirming.set(None);
                                            }>"Yes, revoke"</button>
                                        <button type="button" class="btn btn-small"
                                            on:click=move |_| confirming.set(None)>"Cancel"</button>
                                    </span>
                                }
                            }
                        </Show>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="tokens-table">
            <thead>
                <tr>
                    <th>"Name"</th><th>"Prefix"</th><th>"Created"</th><th>"Last used"</th><th>"Expires"</th>
                    <th class="actions">"Actions"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
