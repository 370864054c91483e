//! `/admin/audit`: the audit log — search, filter by who, action, target and day range, newest or oldest
//! first, page — all in the URL's query string and applied by the server; and a check of the whole hash
//! chain (filters only choose what is shown).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::billing::{audit_log, VerifyAudit};
use crate::components::admin_filters::AuditFilters;
use crate::components::list_query::{with_param, Pager};
use crate::components::{action_error, fmt_time, AdminOnly, ErrorBox, FormError, PageHeader};
use crate::model::{AuditPage, AUDIT_FILTERS};

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
    let query = use_query_map();
    let entries = Resource::new(
        move || query.get(),
        |q| {
            let p = move |k: &str| q.get(k).unwrap_or_default();
            audit_log(
                p("q"),
                p("actor"),
                p("action"),
                p("target"),
                p("from"),
                p("to"),
                p("sort"),
                p("limit"),
                p("offset"),
            )
        },
    );
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
            <AuditFilters/>
            <Transition fallback=|| view! { <p class="loading">"Loading the audit log…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Ok(page) => view! { <AuditTable page/> }.into_any(),
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The "When" header: newest first by default, a link to the other order.
#[component]
fn TimeHeader() -> impl IntoView {
    let query = use_query_map();
    let oldest_first = Memo::new(move |_| query.with(|q| q.get("sort").as_deref() == Some("at")));
    let href = move || query.with(|q| with_param(q, "sort", if oldest_first.get() { "" } else { "at" }));
    let mark = move || {
        if oldest_first.get() {
            " \u{25b2}"
        } else {
            " \u{25bc}"
        }
    };
    let aria = move || {
        if oldest_first.get() {
            "ascending"
        } else {
            "descending"
        }
    };
    view! {
        <th aria-sort=aria>
            <A href={href} {..} class="sort-link" data-testid="sort-at">"When"{mark}</A>
        </th>
    }
}

#[component]
fn AuditTable(page: AuditPage) -> impl IntoView {
    let AuditPage {
        items,
        total,
        limit,
        offset,
    } = page;
    if items.is_empty() {
        let filtered = use_query_map().with_untracked(|q| {
            AUDIT_FILTERS
                .iter()
                .any(|k| q.get(k).is_some_and(|v| !v.is_empty()))
        });
        let text = if filtered {
            "No entries match these filters."
        } else {
            "The audit log is empty."
        };
        return view! {
            <p class="muted" data-testid="no-matches">{text}</p>
            <Pager total limit offset/>
        }
        .into_any();
    }
    let rows = items
        .into_iter()
        .map(|e| {
            view! {
                <tr data-testid="audit-entry" data-action=e.action.clone()>
                    <td>{e.seq}</td>
                    <td title=e.at.clone()>{fmt_time(&e.at)}</td>
                    <td data-testid="audit-actor">{e.actor.clone()}</td>
                    <td class="strong" data-testid="audit-action">{e.action.clone()}</td>
                    <td title=e.target.clone() data-testid="audit-target">{e.target_name.clone()}</td>
                    <td>{e.detail.clone()}</td>
                    <td><code class="small" title=e.hash.clone()>{e.hash.chars().take(12).collect::<String>()}"…"</code></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-testid="audit-table">
                <thead><tr><th>"#"</th><TimeHeader/><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Detail"</th><th>"Hash"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <Pager total limit offset/>
    }
    .into_any()
}
