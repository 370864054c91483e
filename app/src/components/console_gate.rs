//! The console panel only for a VM that can have a console: while the VM runs, `VmConsole`; while it is
//! stopped, starting or stopping, a plain line saying so (no tabs, no "Not connected", and the browser
//! asks for no console ticket); for a deleted or unknown VM, nothing. The `VmConsole` stays mounted once
//! shown (hidden when the VM is not running), so its connection follows the VM across state changes.

use leptos::prelude::*;

use crate::components::console::VmConsole;
use crate::model::VmState;

/// What to say instead of a console, for a VM in `state`.
pub fn console_off_text(state: VmState) -> &'static str {
    match state {
        VmState::Running => "",
        VmState::Stopped => "The VM is stopped. Start it to use its console.",
        VmState::Crashed => "The VM is not running. Start it again to use its console.",
        VmState::Creating | VmState::Starting => "The VM is starting; its console opens when it runs.",
        VmState::Rebooting => "The VM is rebooting; its console reopens when it runs again.",
        VmState::Stopping => "The VM is stopping.",
        VmState::Deleting | VmState::Deleted => "The VM is being deleted.",
    }
}

/// `state`: the VM's state once known (`None`: not loaded yet, deleted or unknown).
#[component]
pub fn GatedConsole(vm_id: String, #[prop(into)] state: Signal<Option<VmState>>) -> impl IntoView {
    let running = Memo::new(move |_| state.get() == Some(VmState::Running));
    let gone = Memo::new(move |_| matches!(state.get(), None | Some(VmState::Deleted)));
    // Mounted on first run and kept: unmounting would drop the connection at every refetch.
    let ever_ran = RwSignal::new(false);
    Effect::new(move |_| {
        if running.get() {
            ever_ran.set(true);
        }
    });
    let vm_id = StoredValue::new(vm_id);
    view! {
        <Show when=move || !gone.get() && !running.get()>
            <section class="console-off" data-testid="console-off" role="status">
                <strong>"Console: "</strong>
                {move || state.get().map(console_off_text).unwrap_or_default()}
            </section>
        </Show>
        <Show when=move || ever_ran.get()>
            <div hidden=move || !running.get()>
                <VmConsole vm_id=vm_id.get_value() running=Signal::from(running)/>
            </div>
        </Show>
    }
    .into_any()
}
