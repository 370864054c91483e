//! Billing displays shared by the tenant's usage page and the admin overview: money, the invoice table
//! (lines grouped by VM, named with a short id so two VMs of one name stay apart, amounts to 1/100 of a
//! minor unit) and the daily cost chart (inline SVG, no library).

use leptos::prelude::*;

use crate::model::{Invoice, InvoiceLine};

/// Minor units as "12.34".
pub fn fmt_money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// Hundredths of a minor unit as "12.3456" (to 1/100 of a cent).
pub fn fmt_money_fine(hundredths: i64) -> String {
    let sign = if hundredths < 0 { "-" } else { "" };
    let h = hundredths.abs();
    format!("{sign}{}.{:04}", h / 10_000, h % 10_000)
}

/// The first 8 characters of an id.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Seconds as "12 h 03 min 07 s".
pub fn fmt_duration(secs: i64) -> String {
    format!(
        "{} h {:02} min {:02} s",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Daily cost bars for the month; the tallest bar fills the chart.
#[component]
pub fn DailyChart(invoice: Invoice) -> impl IntoView {
    let (w, h, pad) = (720.0_f64, 180.0_f64, 24.0_f64);
    let days = invoice.daily_hundredths.len().max(1);
    let max = invoice.daily_hundredths.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar_w = (w - pad * 2.0) / days as f64;
    let bars = invoice
        .daily_hundredths
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let bh = (v as f64 / max) * (h - pad * 2.0);
            let x = pad + i as f64 * bar_w + 1.0;
            let y = h - pad - bh;
            let label = format!("Day {}: {}", i + 1, fmt_money_fine(v));
            view! {
                <rect x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{:.1}", (bar_w - 2.0).max(1.0))
                    height=format!("{bh:.1}") class="bar"><title>{label}</title></rect>
            }
        })
        .collect_view();
    let ticks = [1usize, days / 2, days]
        .into_iter()
        .map(|d| {
            let x = pad + (d as f64 - 0.5) * bar_w;
            view! { <text x=format!("{x:.1}") y=format!("{:.1}", h - 6.0) class="tick" text-anchor="middle">{d}</text> }
        })
        .collect_view();
    view! {
        <svg class="chart" viewBox=format!("0 0 {w} {h}") role="img" data-testid="daily-chart"
            aria-label=format!("Daily cost for {}, highest day {}", invoice.month, fmt_money_fine(max as i64))>
            <line x1=format!("{pad}") y1=format!("{}", h - pad) x2=format!("{}", w - pad) y2=format!("{}", h - pad) class="axis"/>
            <text x=format!("{pad}") y="14" class="tick">{format!("max {}", fmt_money_fine(max as i64))}</text>
            {bars}
            {ticks}
        </svg>
    }
}

/// The invoice's lines and total, one group per VM (its rates, then its subtotal when it has several);
/// `by_tenant` adds the tenant column (admin view).
#[component]
pub fn InvoiceTable(invoice: Invoice, #[prop(optional)] by_tenant: bool) -> impl IntoView {
    let cols = if by_tenant { 5 } else { 4 };
    let rows = group_by_vm(invoice.lines)
        .into_iter()
        .map(|group| {
            let several = group.len() > 1;
            let first = group[0].clone();
            let vm_label = view! {
                {first.vm_name.clone()}
                <span class="invoice-vm-id" title=first.vm_id.clone()>{short_id(&first.vm_id).to_string()}</span>
            };
            let subtotal: i64 = group.iter().map(|l| l.amount_hundredths).sum();
            let lines = group
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let later = i > 0;
                    let vm_cell = if i == 0 {
                        view! { {first.vm_name.clone()}<span class="invoice-vm-id">{short_id(&first.vm_id).to_string()}</span> }.into_any()
                    } else {
                        view! { "\u{21b3} later rate" }.into_any()
                    };
                    view! {
                        <tr data-testid="invoice-line" data-vm-id=l.vm_id.clone()
                            class:invoice-rate-row=later>
                            {by_tenant.then(|| view! { <td>{l.tenant_name.clone()}</td> })}
                            <td class="strong">{vm_cell}</td>
                            <td>{l.flavor_name.clone()}</td>
                            <td title=format!("{} s", l.seconds)>{fmt_duration(l.seconds)}</td>
                            <td class="num">{fmt_money(l.hourly_price_minor)}" / h"</td>
                            <td class="num" data-testid="invoice-amount">{fmt_money_fine(l.amount_hundredths)}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                {lines}
                {several.then(|| view! {
                    <tr class="invoice-subtotal" data-testid="invoice-subtotal">
                        <td colspan=cols>{vm_label}" total"</td>
                        <td class="num">{fmt_money_fine(subtotal)}</td>
                    </tr>
                })}
            }
        })
        .collect_view();
    view! {
        <table class="table" data-testid="invoice">
            <thead><tr>
                {by_tenant.then(|| view! { <th>"Tenant"</th> })}
                <th>"Instance"</th><th>"Flavor"</th><th>"Running time"</th><th class="num">"Rate"</th><th class="num">"Amount"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
            <tfoot><tr>
                <td colspan=cols class="strong">{if invoice.partial { "Total so far" } else { "Total" }}</td>
                <td class="num strong" data-testid="invoice-total">{fmt_money_fine(invoice.total_hundredths)}</td>
            </tr></tfoot>
        </table>
    }
}

/// Consecutive lines of one VM (the server orders them so) as one group each.
fn group_by_vm(lines: Vec<InvoiceLine>) -> Vec<Vec<InvoiceLine>> {
    let mut groups: Vec<Vec<InvoiceLine>> = Vec::new();
    for line in lines {
        match groups.last_mut() {
            Some(g) if g[0].vm_id == line.vm_id && g[0].tenant_id == line.tenant_id => g.push(line),
            _ => groups.push(vec![line]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_durations_read_naturally() {
        assert_eq!(fmt_money(1234), "12.34");
        assert_eq!(fmt_money(5), "0.05");
        assert_eq!(fmt_duration(3 * 3600 + 65), "3 h 01 min 05 s");
        assert_eq!(fmt_money_fine(83), "0.0083");
        assert_eq!(fmt_money_fine(1_234_567), "123.4567");
        assert_eq!(short_id("1a2b3c4d-0000"), "1a2b3c4d");
    }
}
