//! Pieces shared by the network pages and the VM page: a command with a Copy button, the "networks are
//! off" notice, a confirm-then-act button, and how rules and forwards read as text.

use leptos::prelude::*;

use crate::model::{NetworkSettingsView, PortForwardView, RuleView, SecurityGroupView};

/// A one-line command in a read-only field with a Copy button. Copies with the Clipboard API; where that is
/// missing or refused (plain-HTTP origins, no permission) the text is selected for Ctrl+C instead.
#[component]
pub fn CopyField(
    text: String,
    /// `data-testid` of the field.
    testid: &'static str,
) -> impl IntoView {
    // "copied" after a clipboard write, "select" after falling back to a selection.
    let status = RwSignal::new("");
    let field = NodeRef::<leptos::html::Input>::new();
    let value = text.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let value = value.clone();
            leptos::task::spawn_local(async move {
                let copied = write_clipboard(&value).await;
                if !copied {
                    if let Some(input) = field.get_untracked() {
                        let _ = input.focus();
                        input.select();
                    }
                }
                status.set(if copied { "copied" } else { "select" });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&value, field);
    };
    view! {
        <div class="copy-row">
            <input class="copy-field" type="text" readonly=true value=text node_ref=field
                data-testid=testid aria-label="Command" on:focus=move |ev| {
                    #[cfg(feature = "hydrate")]
                    {
                        use wasm_bindgen::JsCast;
                        if let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                            input.select();
                        }
                    }
                    #[cfg(not(feature = "hydrate"))]
                    let _ = ev;
                }/>
            <button type="button" class="btn btn-small" on:click=copy data-testid=format!("{testid}-copy")>
                {move || if status.get() == "copied" { "Copied" } else { "Copy" }}
            </button>
        </div>
        {move || (status.get() == "select").then(|| view! {
            <p class="field-hint" data-testid=format!("{testid}-select")>"Selected: press Ctrl+C (\u{2318}C) to copy."</p>
        })}
    }
}

/// Writes `text` to the clipboard; false when the Clipboard API is absent or refuses.
#[cfg(feature = "hydrate")]
async fn write_clipboard(text: &str) -> bool {
    use wasm_bindgen::JsValue;
    let navigator = window().navigator();
    let has_clipboard = web_sys::js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
        .is_ok_and(|c| !c.is_undefined() && !c.is_null());
    if !has_clipboard {
        return false;
    }
    wasm_bindgen_futures::JsFuture::from(navigator.clipboard().write_text(text))
        .await
        .is_ok()
}

/// A notice when tenant networking is off on this cloud (nothing on the page can change then).
#[component]
pub fn NetworksOff(settings: NetworkSettingsView) -> impl IntoView {
    (!settings.enabled).then(|| {
        view! {
            <div class="alert alert-warning" role="status" data-testid="networks-off">
                <strong class="alert-title">"Tenant networks are turned off"</strong>
                <span class="alert-message">
                    "VMs on this cloud get no network card; ask the operator to turn networking on."
                </span>
            </div>
        }
    })
}

/// A small button that asks "Sure?" inline before running `on_confirm`.
#[component]
pub fn ConfirmButton(
    /// The button's label, e.g. "Delete".
    label: &'static str,
    /// The question shown instead of the button.
    question: String,
    testid: &'static str,
    #[prop(into)] disabled: Signal<bool>,
    /// Why the button is disabled (its tooltip; empty: no tooltip).
    #[prop(optional)]
    why_disabled: String,
    on_confirm: Callback<()>,
) -> impl IntoView {
    let asking = RwSignal::new(false);
    let title = (!why_disabled.is_empty()).then_some(why_disabled);
    view! {
        <Show
            when=move || asking.get()
            fallback=move || view! {
                <button type="button" class="btn btn-small btn-danger-outline" data-testid=testid
                    disabled=move || disabled.get() title=title.clone()
                    on:click=move |_| asking.set(true)>{label}</button>
            }
        >
            <span class="confirm" role="alertdialog">
                {question.clone()}" "
                <button type="button" class="btn btn-small btn-danger" data-testid=format!("confirm-{testid}")
                    on:click=move |_| { asking.set(false); on_confirm.run(()); }>{format!("Yes, {}", label.to_lowercase())}</button>
                <button type="button" class="btn btn-small" on:click=move |_| asking.set(false)>"Cancel"</button>
            </span>
        </Show>
    }
}

/// "22", "8000-8080" or "all" (a rule without ports covers every port of its protocol).
pub fn rule_ports(rule: &RuleView) -> String {
    match (rule.port_min, rule.port_max) {
        (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
        (Some(a), _) => a.to_string(),
        _ => "all".into(),
    }
}

/// Where a rule lets traffic in from: a block, or the VMs of a group.
pub fn rule_source(rule: &RuleView) -> String {
    match (&rule.source_cidr, &rule.source_group) {
        (Some(cidr), _) if cidr == "0.0.0.0/0" => "anywhere (0.0.0.0/0)".into(),
        (Some(cidr), _) => cidr.clone(),
        (None, Some(g)) => format!("group {}", g.name),
        (None, None) => "\u{2014}".into(),
    }
}

/// Whether the group already lets SSH in from anywhere (then "Allow SSH" has nothing to add).
pub fn allows_ssh_from_anywhere(group: &SecurityGroupView) -> bool {
    group.rules.iter().any(|r| {
        use crate::model::NetProtocol::{Any, Tcp};
        let ports = match (r.port_min, r.port_max) {
            (None, _) => true,
            (Some(a), b) => a <= 22 && b.unwrap_or(a) >= 22,
        };
        matches!(r.protocol, Any | Tcp) && ports && r.source_cidr.as_deref() == Some("0.0.0.0/0")
    })
}

/// "203.0.113.5:20022 → tcp/22".
pub fn forward_text(f: &PortForwardView) -> String {
    let host = if f.host_address.is_empty() {
        "(no uplink)"
    } else {
        f.host_address.as_str()
    };
    format!(
        "{host}:{} \u{2192} {}/{}",
        f.host_port,
        f.protocol.as_str(),
        f.vm_port
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupRef, NetProtocol};

    fn rule(protocol: NetProtocol, ports: (Option<u16>, Option<u16>), cidr: Option<&str>) -> RuleView {
        RuleView {
            id: "r".into(),
            protocol,
            port_min: ports.0,
            port_max: ports.1,
            source_cidr: cidr.map(str::to_string),
            source_group: cidr.is_none().then(|| GroupRef {
                id: "g".into(),
                name: "web".into(),
            }),
        }
    }

    #[test]
    fn rules_read_as_ports_and_sources() {
        assert_eq!(
            rule_ports(&rule(NetProtocol::Tcp, (Some(22), Some(22)), None)),
            "22"
        );
        assert_eq!(
            rule_ports(&rule(NetProtocol::Tcp, (Some(80), Some(90)), None)),
            "80-90"
        );
        assert_eq!(rule_ports(&rule(NetProtocol::Icmp, (None, None), None)), "all");
        assert_eq!(
            rule_source(&rule(NetProtocol::Any, (None, None), None)),
            "group web"
        );
        assert_eq!(
            rule_source(&rule(NetProtocol::Any, (None, None), Some("0.0.0.0/0"))),
            "anywhere (0.0.0.0/0)"
        );
    }

    #[test]
    fn ssh_from_anywhere_is_recognised_only_for_the_whole_internet() {
        let mut g = SecurityGroupView {
            id: "g".into(),
            name: "default".into(),
            description: String::new(),
            is_default: true,
            rules: vec![rule(NetProtocol::Tcp, (Some(22), Some(22)), Some("10.0.0.0/8"))],
            vms: 0,
        };
        assert!(!allows_ssh_from_anywhere(&g));
        g.rules
            .push(rule(NetProtocol::Tcp, (Some(20), Some(25)), Some("0.0.0.0/0")));
        assert!(allows_ssh_from_anywhere(&g));
        g.rules = vec![rule(NetProtocol::Udp, (Some(22), None), Some("0.0.0.0/0"))];
        assert!(!allows_ssh_from_anywhere(&g));
    }
}
