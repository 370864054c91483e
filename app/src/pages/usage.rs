//! `/usage`: the tenant's quota use and its invoice for a month — line items per instance, the daily cost
//! chart and a CSV download (a plain link the router leaves alone: `rel="external"`, `download`). The month
//! is in the URL (`components/month.rs`).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::my_invoice;
use crate::components::after_render::after_render;
use crate::components::billing::{fmt_money_fine, DailyChart, InvoiceTable};
use crate::components::month::{month_param, MonthPicker};
use crate::components::quota::QuotaCards;
use crate::components::{vm_changes, EmptyState, ErrorBox, PageHeader};

#[component]
pub fn UsagePage() -> impl IntoView {
    let month = month_param();
    let changes = vm_changes();
    let invoice = Resource::new(move || (month.get(), changes.get()), |(m, _)| my_invoice(m));
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
        <Title text="Usage"/>
        <PageHeader title="Usage" subtitle="What your tenant uses and what it costs, per calendar month (UTC).">
            <MonthPicker shown testid="usage-month"/>
            <a class="btn" data-testid="usage-csv" rel="external" download=""
                href=move || format!("/api/v1/usage.csv?month={}", shown.get())>
                "Download CSV"
            </a>
        </PageHeader>
        <QuotaCards network=true/>
        <Transition fallback=|| view! { <p class="loading">"Loading usage…"</p> }>
            {move || Suspend::new(async move {
                let result = invoice.await;
                if let Ok(inv) = &result {
                    let m = inv.month.clone();
                    after_render(move || loaded.set(m));
                }
                match result {
                    Ok(inv) if inv.lines.is_empty() => view! {
                        <section class="panel">
                            <EmptyState title="No usage in this month" icon="\u{25d4}">
                                <p>"Usage is recorded, to the second, while your instances are powered on."</p>
                            </EmptyState>
                        </section>
                    }.into_any(),
                    Ok(inv) => view! {
                        <section class="panel">
                            <div class="panel-header">
                                <h2>{format!("Daily cost, {}", inv.month)}</h2>
                                <span class="muted">{format!("Total {}", fmt_money_fine(inv.total_hundredths))}</span>
                            </div>
                            <div class="chart-wrap"><DailyChart invoice=inv.clone()/></div>
                        </section>
                        <section class="panel">
                            <div class="panel-header"><h2>{format!("Invoice {}", inv.month)}</h2></div>
                            <InvoiceTable invoice=inv/>
                        </section>
                    }.into_any(),
                    Err(error) => view! { <ErrorBox error/> }.into_any(),
                }
            })}
        </Transition>
    }
}
