//! VM display pieces shared by the list and the detail page: state badge, size line and action buttons.

use leptos::prelude::*;

use crate::api::vms::ActOnVm;
use crate::model::{VmAction, VmState, VmView};

/// The state as a coloured badge; transitional states pulse.
#[component]
pub fn StateBadge(state: VmState) -> impl IntoView {
    let class = format!(
        "state-badge state-{}{}",
        state.as_str(),
        if state.is_transitional() {
            " state-busy"
        } else {
            ""
        }
    );
    view! { <span class=class data-testid="vm-state" data-state=state.as_str()>{state.as_str()}</span> }
}

/// "1 vCPU · 128 MiB · 1 GiB disk".
pub fn size_line(vm: &VmView) -> String {
    format!(
        "{} · {} · {} GiB disk",
        count(i64::from(vm.vcpus), "vCPU", "vCPUs"),
        fmt_mib(vm.memory_mib),
        vm.disk_gib
    )
}

/// "1 vCPU", "2 vCPUs": a number and the noun in the form it takes.
pub fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// MiB below 1 GiB, otherwise GiB with one decimal when needed.
pub fn fmt_mib(mib: u32) -> String {
    if mib < 1024 {
        format!("{mib} MiB")
    } else if mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{:.1} GiB", f64::from(mib) / 1024.0)
    }
}

/// Buttons for the actions the VM's state allows. Destructive ones ask for confirmation first.
#[component]
pub fn VmActions(vm: VmView, action: ServerAction<ActOnVm>) -> impl IntoView {
    let confirming = RwSignal::new(None::<VmAction>);
    let name = vm.name.clone();
    let buttons = vm
        .state
        .allowed_actions()
        .iter()
        .copied()
        .map(|act| {
            let id = vm.id.clone();
            let destructive = matches!(act, VmAction::Delete | VmAction::ForceOff);
            let class = match act {
                VmAction::Delete => "btn btn-small btn-danger-outline",
                VmAction::Start => "btn btn-small btn-primary",
                _ => "btn btn-small",
            };
            view! {
                <button type="button" class=class data-testid=format!("vm-{}", act.as_str())
                    disabled=move || action.pending().get()
                    on:click=move |_| {
                        if destructive {
                            confirming.set(Some(act));
                        } else {
                            action.dispatch(ActOnVm { id: id.clone(), action: act.as_str().into() });
                        }
                    }>{act.label()}</button>
            }
        })
        .collect_view();
    let id = vm.id.clone();
    view! {
        <div class="vm-actions">
            {buttons}
            {move || confirming.get().map(|act| {
                let id = id.clone();
                let question = match act {
                    VmAction::Delete => format!("Delete {name}? Its disk is removed for good."),
                    _ => format!("Force {name} off? Unsaved data in the guest is lost."),
                };
                view! {
                    <span class="confirm" role="alertdialog">
                        {question}" "
                        <button type="button" class="btn btn-small btn-danger" data-testid="confirm-action"
                            on:click=move |_| {
                                action.dispatch(ActOnVm { id: id.clone(), action: act.as_str().into() });
                                confirming.set(None);
                            }>{format!("Yes, {}", act.label().to_lowercase())}</button>
                        <button type="button" class="btn btn-small" on:click=move |_| confirming.set(None)>
                            "Cancel"
                        </button>
                    </span>
                }
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_shown_in_friendly_units() {
        assert_eq!(fmt_mib(128), "128 MiB");
        assert_eq!(fmt_mib(2048), "2 GiB");
        assert_eq!(fmt_mib(1536), "1.5 GiB");
        assert_eq!(count(1, "vCPU", "vCPUs"), "1 vCPU");
        assert_eq!(count(0, "vCPU", "vCPUs"), "0 vCPUs");
    }
}
