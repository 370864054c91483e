//! Boot progress: a running VM's guest is "booting" until it announces readiness on its console (the
//! probe guest's banner here), then "ready", with the time to ready in its history; a reboot boots again.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::helpers::spawn_app_with_vms;
use super::vm_helpers::{action, kvm_or_skip, launch, member_api, probe_and_micro, wait_state, GUEST_WAIT};

/// Polls the VM until its boot phase is `phase`.
async fn wait_phase(api: &super::helpers::Api, vm: &str, phase: &str) -> Value {
    let deadline = Instant::now() + GUEST_WAIT;
    loop {
        let (status, body) = api.get(&format!("/vms/{vm}")).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "running" && body["boot"]["phase"] == phase {
            return body;
        }
        assert!(Instant::now() < deadline, "VM {vm} never {phase}: {body:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready_entries(vm: &Value) -> Vec<String> {
    vm["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("guest ready after "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_probe_vm_goes_from_booting_to_ready_with_its_time_to_ready_in_its_history() {
    if !kvm_or_skip("boot progress") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, micro) = probe_and_micro(&api).await;
    let vm = launch(&api, "web", &image, &micro).await;
    let (_, launched) = api.get(&format!("/vms/{vm}")).await;
    assert_eq!(
        launched["boot"],
        Value::Null,
        "no boot phase before running: {launched}"
    );

    let ready = wait_phase(&api, &vm, "ready").await;
    let ms = ready["boot"]["ready_after_ms"].as_u64().unwrap();
    assert!(ms > 0 && ms < GUEST_WAIT.as_millis() as u64, "{ready:#}");
    assert!(ready["boot"]["ready_at"].is_string());
    assert_eq!(ready["boot"]["line"], "PROBE-GUEST READY");
    let entries = ready_entries(&ready);
    assert_eq!(entries.len(), 1, "{ready:#}");
    assert!(entries[0].ends_with("s (PROBE-GUEST READY)"), "{entries:?}");
    // The list shows the same.
    let (_, list) = api.get("/vms").await;
    assert_eq!(list[0]["boot"]["phase"], "ready", "{list}");

    // A reboot is a new boot: booting again, then ready again, recorded a second time.
    assert_eq!(action(&api, &vm, "reboot").await.0, 202);
    let deadline = Instant::now() + GUEST_WAIT;
    let again = loop {
        let (_, body) = api.get(&format!("/vms/{vm}")).await;
        if body["state"] == "running" && ready_entries(&body).len() == 2 {
            break body;
        }
        assert!(Instant::now() < deadline, "no second readiness: {body:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again["boot"]["phase"], "ready");
    assert_eq!(action(&api, &vm, "stop").await.0, 202);
    let stopped = wait_state(&api, &vm, "stopped", GUEST_WAIT).await;
    assert_eq!(stopped["boot"], Value::Null, "a stopped VM has no boot phase");
}
