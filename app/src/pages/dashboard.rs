//! `/` and `/instances`: the tenant dashboard. Until the VM lifecycle feature lands, the figures are
//! placeholders and the instance list is an empty state.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmptyState, PageHeader};
use crate::model::Me;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let tenant = use_context::<Me>().map(|me| me.tenant_name).unwrap_or_default();
    view! {
        <Title text="Instances"/>
        <PageHeader title="Instances" subtitle="Virtual machines of your tenant.">
            <button type="button" class="btn btn-primary" disabled=true data-testid="launch-instance"
                title="Launching arrives with the VM lifecycle feature">
                "+ Launch instance"
            </button>
        </PageHeader>
        <section class="cards" aria-label="Summary" data-testid="summary">
            <SummaryCard label="Instances" value="0" unit=""/>
            <SummaryCard label="vCPUs" value="0" unit=""/>
            <SummaryCard label="Memory" value="0" unit="GiB"/>
        </section>
        <section class="panel">
            <div class="panel-header">
                <h2>"Instances in "<span class="tenant-inline">{tenant}</span></h2>
            </div>
            <EmptyState title="No instances yet" icon="\u{25a3}">
                <p>"Instances you launch will be listed here with their state, size and console."</p>
                <p class="muted">"Launching instances arrives with the VM lifecycle feature."</p>
                <button type="button" class="btn btn-primary" disabled=true>"+ Launch instance"</button>
            </EmptyState>
        </section>
    }
}

/// One figure of the summary row. The figures are placeholders until instances exist.
#[component]
fn SummaryCard(label: &'static str, value: &'static str, unit: &'static str) -> impl IntoView {
    view! {
        <div class="card stat" data-testid=format!("stat-{}", label.to_lowercase())>
            <div class="stat-label">{label}</div>
            <div class="stat-value">{value}<span class="stat-unit">{unit}</span></div>
            <div class="stat-note">"Placeholder · arrives with VM lifecycle"</div>
        </div>
    }
}
