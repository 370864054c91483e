//! `/admin/audit`: the audit log (newest first) and a check of its hash chain.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::{audit_log, VerifyAudit};
use crate::components::{action_error, fmt_time, AdminOnly, ErrorBox, FormError, PageHeader};

#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Title text="Audit log"/>
        <PageHeader title="Audit log"
            subtitle="Sign-ins (and refused ones), accounts, tokens, launches and power actions, consoles, the catalogue, quotas and networks. Append-only; each entry carries the hash of the one before."/>
        <AdminOnly>
            <Audit/>
        </AdminOnly>
    }
}

#[component]
fn Audit() -> impl IntoView {
    let verify = ServerAction::<VerifyAudit>::new();
    let entries = Resource::new(|| (), |_| audit_log());
    let error = action_error(verify);
    view! {
        <section class="panel">
            <div class="panel-header">
                <h2>"Integrity"</h2>
                <button type="button" class="btn" data-testid="verify-audit"
                    on:click=move |_| { verify.dispatch(VerifyAudit {}); }>"Verify the chain"</button>
            </div>
            <FormError error/>
            {move || verify.value().get().and_then(Result::ok).map(|c| match c.broken_at {
                None => view! {
                    <div class="alert alert-success" data-testid="audit-ok">{format!("All {} entries verified: the chain is intact.", c.entries)}</div>
                }.into_any(),
                Some(seq) => view! {
                    <div class="alert alert-error" data-testid="audit-broken">{format!("The chain breaks at entry {seq}: entries from there on were altered or removed.")}</div>
                }.into_any(),
            })}
        </section>
        <section class="panel">
            <Transition fallback=|| view! { <p class="loading">"Loading the audit log…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Ok(list) => {
                            let rows = list.into_iter().map(|e| view! {
                                <tr data-testid="audit-entry">
                                    <td>{e.seq}</td>
                                    <td title=e.at.clone()>{fmt_time(&e.at)}</td>
                                    <td>{e.actor.clone()}</td>
                                    <td class="strong">{e.action.clone()}</td>
                                    <td title=e.target.clone() data-testid="audit-target">{e.target_name.clone()}</td>
                                    <td>{e.detail.clone()}</td>
                                    <td><code class="small" title=e.hash.clone()>{e.hash.chars().take(12).collect::<String>()}"…"</code></td>
                                </tr>
                            }).collect_view();
                            view! {
                                <table class="table" data-testid="audit-table">
                                    <thead><tr><th>"#"</th><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Detail"</th><th>"Hash"</th></tr></thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            }.into_any()
                        }
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
