//! `/usage`: the tenant's quota use and its invoice for a month — line items per instance, the daily cost
//! chart and a CSV download.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::billing::my_invoice;
use crate::components::billing::{fmt_money, DailyChart, InvoiceTable};
use crate::components::quota::QuotaCards;
use crate::components::{vm_changes, EmptyState, ErrorBox, PageHeader};

#[component]
pub fn UsagePage() -> impl IntoView {
    let month = RwSignal::new(String::new());
    let changes = vm_changes();
    let invoice = Resource::new(move || (month.get(), changes.get()), |(m, _)| my_invoice(m));
    view! {
        <Title text="Usage"/>
        <PageHeader title="Usage" subtitle="What your tenant uses and what it costs, per calendar month (UTC).">
            <label class="inline-field">"Month "
                <input type="month" data-testid="usage-month" prop:value=move || month.get()
                    on:change=move |ev| month.set(event_target_value(&ev))/>
            </label>
            <a class="btn" data-testid="usage-csv" href=move || format!("/api/v1/usage.csv?month={}", month.get())>
                "Download CSV"
            </a>
        </PageHeader>
        <QuotaCards/>
        <Transition fallback=|| view! { <p class="loading">"Loading usage…"</p> }>
            {move || Suspend::new(async move {
                match invoice.await {
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
                                <span class="muted">{format!("Total {}", fmt_money(inv.total_minor))}</span>
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
