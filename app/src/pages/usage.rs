//! `/usage`: resource usage of the tenant. Empty until instances and metering exist.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmptyState, PageHeader};

#[component]
pub fn UsagePage() -> impl IntoView {
    view! {
        <Title text="Usage"/>
        <PageHeader title="Usage" subtitle="vCPU hours, memory and disk your tenant has used."/>
        <section class="panel">
            <EmptyState title="No usage recorded yet" icon="\u{25d4}">
                <p>"Usage is recorded while your instances run."</p>
                <p class="muted">"Usage reports arrive with the VM lifecycle feature."</p>
            </EmptyState>
        </section>
    }
}
