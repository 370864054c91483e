//! `/admin/usage`: usage of all tenants for a month — totals per tenant, every line, CSV export (a plain
//! download link). The month is in the URL.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::all_usage;
use crate::components::after_render::after_render;
use crate::components::billing::{fmt_money_fine, DailyChart, InvoiceTable};
use crate::components::month::{month_param, MonthPicker};
use crate::components::{AdminOnly, ErrorBox, PageHeader};

#[component]
pub fn AdminUsagePage() -> impl IntoView {
    let month = month_param();
    let usage = Resource::new(move || month.get(), all_usage);
    // The month on display: the URL's, else the loaded invoice's (copied out of the Transition below).
    let loaded = RwSignal::new(String::new());
    let shown = Signal::derive(move || {
        let m = month.get();
        if m.is_empty() {
            loaded.get()
        } else {
            m
        }
    });
    view! {
        <Title text="Usage by tenant"/>
        <PageHeader title="Usage by tenant" subtitle="What every tenant used in a calendar month (UTC).">
            <MonthPicker shown testid="admin-usage-month"/>
            <a class="btn" data-testid="admin-usage-csv" rel="external" download=""
                href=move || format!("/api/v1/admin/usage.csv?month={}", shown.get())>
                "Download CSV (all tenants)"
            </a>
        </PageHeader>
        <AdminOnly>
            <Transition fallback=|| view! { <p class="loading">"Loading usage…"</p> }>
                {move || Suspend::new(async move {
                    let result = usage.await;
                    if let Ok(inv) = &result {
                        let m = inv.month.clone();
                        after_render(move || loaded.set(m));
                    }
                    match result {
                        Ok(inv) => {
                            let mut per_tenant: BTreeMap<String, i64> = BTreeMap::new();
                            for l in &inv.lines {
                                *per_tenant.entry(l.tenant_name.clone()).or_default() += l.amount_hundredths;
                            }
                            let totals = per_tenant
                                .into_iter()
                                .map(|(t, amount)| view! { <tr><td class="strong">{t}</td><td class="num">{fmt_money_fine(amount)}</td></tr> })
                                .collect_view();
                            view! {
                                <section class="panel">
                                    <div class="panel-header"><h2>{format!("Totals per tenant, {}", inv.month)}</h2></div>
                                    <table class="table" data-testid="tenant-totals">
                                        <thead><tr><th>"Tenant"</th><th class="num">"Amount"</th></tr></thead>
                                        <tbody>{totals}</tbody>
                                    </table>
                                    <div class="chart-wrap"><DailyChart invoice=inv.clone()/></div>
                                </section>
                                <section class="panel">
                                    <div class="panel-header"><h2>"All lines"</h2></div>
                                    <InvoiceTable invoice=inv by_tenant=true/>
                                </section>
                            }.into_any()
                        }
                        Err(error) => view! { <ErrorBox error/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminOnly>
    }
}
