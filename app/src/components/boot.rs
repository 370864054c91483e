//! A VM's status as people read it: the state badge, except that a running VM whose guest is still booting
//! shows "booting" with the last line its console printed under it (README, "Boot progress").

use leptos::prelude::*;

use super::vm::StateBadge;
use crate::model::{BootPhase, VmState, VmView};

/// The state badge, or "booting" + the last console line while the guest boots. `data-state` stays the
/// VM's state (`running`); `data-phase` says how far the guest is.
#[component]
pub fn VmStatus(vm: VmView) -> impl IntoView {
    let boot = vm.boot.clone().filter(|_| vm.state == VmState::Running);
    match boot {
        Some(boot) if boot.phase == BootPhase::Booting => {
            let line = (!boot.line.is_empty()).then(|| {
                view! {
                    <span class="boot-line" data-testid="boot-line" title=boot.line.clone()>{boot.line.clone()}</span>
                }
            });
            view! {
                <span class="state-badge state-booting state-busy" data-testid="vm-state" data-state="running"
                    data-phase="booting" title="The guest is booting: it has not announced that it is ready yet.">
                    "booting"
                </span>
                {line}
            }
            .into_any()
        }
        Some(boot) if boot.phase == BootPhase::NoSignal => view! {
            <span data-phase="no_signal"><StateBadge state=vm.state/></span>
            <span class="boot-line muted" data-testid="boot-note">"no readiness signal"</span>
        }
        .into_any(),
        Some(boot) => view! {
            <span data-phase="ready" title=boot.ready_after().map(|t| format!("Guest ready after {t}"))>
                <StateBadge state=vm.state/>
            </span>
        }
        .into_any(),
        None => view! { <StateBadge state=vm.state/> }.into_any(),
    }
}

/// "ready after 54.8 s", "booting", "no readiness signal" for the VM page's overview.
pub fn boot_summary(vm: &VmView) -> Option<String> {
    let boot = vm.boot.as_ref().filter(|_| vm.state == VmState::Running)?;
    Some(match boot.phase {
        BootPhase::Booting => "booting".to_string(),
        BootPhase::NoSignal => "no readiness signal (shown as running)".to_string(),
        BootPhase::Ready => match boot.ready_after() {
            Some(t) => format!("ready after {t}"),
            None => "ready".to_string(),
        },
    })
}
