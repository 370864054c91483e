//! `/key-pairs`: the tenant's saved SSH public keys — save one (pasted from a `.pub` file, checked by the
//! server: Ed25519, ECDSA or RSA of 2048 bits or more), see its SHA256 fingerprint, delete it. The launch
//! dialog offers them (`components/launch_keys.rs`).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::key_pairs::{list_key_pairs, CreateKeyPair, DeleteKeyPair};
use crate::components::{
    action_error, fmt_time, EmptyState, ErrorBox, Field, FieldError, FormError, PageHeader,
};
use crate::model::KeyPairView;

#[component]
pub fn KeyPairsPage() -> impl IntoView {
    let create = ServerAction::<CreateKeyPair>::new();
    let delete = ServerAction::<DeleteKeyPair>::new();
    let keys = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_key_pairs(),
    );
    let create_error = action_error(create);
    let delete_error = action_error(delete);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let created = create.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = created.get() {
            if let Some(form) = form_ref.get() {
                form.reset();
            }
        }
    });
    view! {
        <Title text="Key pairs"/>
        <PageHeader
            title="Key pairs"
            subtitle="SSH public keys you can pick when launching an instance. Only the public half is stored."
        />
        <section class="panel">
            <div class="panel-header"><h2>"Add a key pair"</h2></div>
            {move || match created.get() {
                Some(Ok(k)) => Some(view! {
                    <div class="alert alert-success" role="status" data-testid="key-pair-saved">
                        <span class="alert-message">"Saved “"{k.name}"” ("<code>{k.fingerprint}</code>")."</span>
                    </div>
                }),
                _ => None,
            }}
            <ActionForm action=create node_ref=form_ref>
                <Field label="Name" name="name" error=create_error required=true form="key-pair"
                    placeholder="e.g. laptop" hint="Letters, digits, '.', '_', '-' or '@'."/>
                <div class="field">
                    <label for="key-pair-public_key">"Public key"</label>
                    <textarea id="key-pair-public_key" name="public_key" rows="3" required=true
                        data-testid="key-pair-public-key" spellcheck="false"
                        placeholder="ssh-ed25519 AAAAC3Nz… you@laptop"></textarea>
                    <p class="field-hint">"The contents of e.g. ~/.ssh/id_ed25519.pub (one line)."</p>
                    <FieldError error=create_error name="public_key"/>
                </div>
                <FormError error=create_error fields=&["name", "public_key"]/>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary" disabled=create.pending()
                        data-testid="save-key-pair">"Save key pair"</button>
                </div>
            </ActionForm>
        </section>
        <section class="panel">
            <div class="panel-header"><h2>"Your key pairs"</h2></div>
            <FormError error=delete_error/>
            <Transition fallback=|| view! { <p class="loading">"Loading key pairs…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No key pairs" icon="\u{25d8}">
                                <p>"Add your SSH public key once, then pick it whenever you launch."</p>
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <KeyPairTable list delete/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn KeyPairTable(list: Vec<KeyPairView>, delete: ServerAction<DeleteKeyPair>) -> impl IntoView {
    let confirming = RwSignal::new(None::<String>);
    let rows = list
        .into_iter()
        .map(|k| {
            let id = k.id.clone();
            let id_ask = k.id.clone();
            let id_confirm = k.id.clone();
            let asking = move || confirming.with(|c| c.as_deref() == Some(id.as_str()));
            view! {
                <tr data-testid="key-pair-row" data-key-name=k.name.clone()>
                    <td class="strong">{k.name.clone()}</td>
                    <td>{format!("{} ({} bits)", k.algorithm, k.bits)}</td>
                    <td><code class="fingerprint" data-testid="key-pair-fingerprint">{k.fingerprint.clone()}</code></td>
                    <td title=k.created_at.clone()>{fmt_time(&k.created_at)}</td>
                    <td class="actions">
                        <Show when=asking fallback=move || {
                            let id = id_ask.clone();
                            view! {
                                <button type="button" class="btn btn-small btn-danger-outline"
                                    data-testid="delete-key-pair"
                                    on:click=move |_| confirming.set(Some(id.clone()))>"Delete"</button>
                            }
                        }>
                            {
                                let id = id_confirm.clone();
                                view! {
                                    <span class="confirm" role="alertdialog">
                                        "Delete? Instances keep their copy. "
                                        <button type="button" class="btn btn-small btn-danger"
                                            data-testid="confirm-delete-key-pair"
                                            on:click=move |_| {
                                                delete.dispatch(DeleteKeyPair { id: id.clone() });
                                                confirming.set(None);
                                            }>"Yes, delete"</button>
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
        <div class="table-scroll">
            <table class="table" data-testid="key-pairs-table">
                <thead><tr><th>"Name"</th><th>"Type"</th><th>"Fingerprint"</th><th>"Added"</th>
                    <th class="actions">"Actions"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
