//! `VmConsole`: a VM's graphical console (noVNC), serial console (xterm.js) and console log, as tabs.
//!
//! The component renders plain markup marked `data-console`; the ES module `/js/console.js` (web/console.js),
//! loaded once per document by the shell (a script inserted by client-side navigation would never run),
//! finds it once the page has hydrated or whenever it appears, asks for console tokens and connects. `data-running` follows the
//! `running` signal, and the module connects or disconnects when it changes, so the console can sit on a
//! page whose VM is started and stopped. Styles: `/style/console.css`, registered by `App` for every page.

use leptos::prelude::*;

#[component]
pub fn VmConsole(vm_id: String, #[prop(into)] running: Signal<bool>) -> impl IntoView {
    view! {
        <section
            class="vm-console"
            data-console=""
            data-vm-id=vm_id
            data-running=move || running.get().to_string()
            data-testid="vm-console"
        >
            <div class="console-tabs" role="tablist" aria-label="Console">
                <button type="button" role="tab" data-tab="screen" aria-selected="true">"Screen"</button>
                <button type="button" role="tab" data-tab="serial" aria-selected="false">"Serial console"</button>
                <button type="button" role="tab" data-tab="log" aria-selected="false">"Console log"</button>
            </div>
            <div class="console-pane" data-pane="screen" role="tabpanel">
                <div class="console-toolbar">
                    <span class="console-status" data-status="" data-state="idle" role="status" aria-live="polite">
                        "Not connected"
                    </span>
                    <span class="console-spacer"></span>
                    <button type="button" class="btn" data-action="ctrlaltdel" title="Send Ctrl-Alt-Del to the VM">
                        "Ctrl-Alt-Del"
                    </button>
                    <button type="button" class="btn" data-action="paste" title="Type the clipboard's text into the VM">
                        "Paste as keystrokes"
                    </button>
                    <label class="console-check">
                        <input type="checkbox" data-action="fit" checked=true/>
                        " Fit to window"
                    </label>
                    <button type="button" class="btn" data-action="fullscreen">"Fullscreen"</button>
                    <button type="button" class="btn" data-action="reconnect">"Reconnect"</button>
                </div>
                <div class="console-paste" data-paste="" hidden=true>
                    <label>
                        "Text to type into the VM (US keyboard layout)"
                        <textarea data-paste-text="" rows="3" spellcheck="false"></textarea>
                    </label>
                    <button type="button" class="btn btn-primary" data-action="type">"Type it"</button>
                </div>
                <div class="console-screen" data-screen=""></div>
            </div>
            <div class="console-pane" data-pane="serial" role="tabpanel" hidden=true>
                <div class="console-toolbar">
                    <span class="console-status" data-serial-status="" role="status">"Not connected"</span>
                    <span class="console-spacer"></span>
                    <button type="button" class="btn" data-action="reconnect-serial">"Reconnect"</button>
                </div>
                <div class="console-terminal" data-terminal=""></div>
            </div>
            <div class="console-pane" data-pane="log" role="tabpanel" hidden=true>
                <div class="console-toolbar">
                    <span class="muted">"The last 64 KiB of the VM's serial output."</span>
                    <span class="console-spacer"></span>
                    <button type="button" class="btn" data-action="refresh-log">"Refresh"</button>
                </div>
                <pre class="console-log" data-log=""></pre>
            </div>
        </section>
    }
}
