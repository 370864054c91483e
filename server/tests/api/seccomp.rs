//! Seccomp through the portal (issue 15), with real VMMs and the probe guest: a VMM runs under the mode
//! the portal configures (`vmm_seccomp`, default `kill`), and a system call its filters refuse crashes the
//! VM with the call and the thread named as the reason, on the API; with `off`, the same call just fails
//! and the VM keeps running. The forbidden call is asked for with a control request that exists only in
//! test builds (`debug-forbidden-syscall`, feature `debug-requests`).

use std::time::Duration;

use serde_json::json;
use vmm_api::control::client::Client;
use vmm_api::control::Request;
use vmm_api::run_dir::RunDir;
use vmm_api::seccomp::SeccompMode;

use super::helpers::{spawn_app_with, spawn_app_with_vms};
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;

/// Asks the VMM in `run_dir` for the forbidden call; the answer, or the transport error when the VMM died
/// before answering.
fn forbidden_call(run_dir: &std::path::Path) -> Result<serde_json::Value, String> {
    Client::of(&RunDir::new(run_dir))
        .with_timeout(Duration::from_secs(30))
        .exchange_blocking(&Request::DebugForbiddenSyscall)
        .map(|a| serde_json::to_value(a).unwrap())
        .map_err(|e| vmm_api::error_chain(&e))
}

fn vmm_seccomp_mode(run_dir: &std::path::Path) -> serde_json::Value {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(RunDir::new(run_dir).config()).unwrap()).unwrap();
    config["seccomp"].clone()
}

#[tokio::test]
async fn a_refused_system_call_crashes_the_vm_with_the_call_named() {
    if !kvm_or_skip("a_refused_system_call_crashes_the_vm_with_the_call_named") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "jailed", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run = app.data_dir.join("vms").join(&vm);
    wait_console(&run, "PROBE-GUEST READY", T);
    assert_eq!(vmm_seccomp_mode(&run), "kill");

    let answer = forbidden_call(&run);
    assert!(
        answer.is_err(),
        "the VMM answered instead of dying: {answer:?} (a VMM built without the `debug-requests` feature \
         refuses the request: build it with `cargo test`, or `cargo build -p vmm --features debug-requests`)"
    );
    let v = wait_state(&api, &vm, "crashed", T).await;
    assert_eq!(
        v["state_reason"], "seccomp violation: syscall 59 (execve) in a control thread",
        "{v}"
    );
    // A VM that crashed this way starts again.
    action(&api, &vm, "start").await;
    wait_state(&api, &vm, "running", T).await;
}

#[tokio::test]
async fn with_seccomp_off_the_call_fails_and_the_vm_keeps_running() {
    if !kvm_or_skip("with_seccomp_off_the_call_fails_and_the_vm_keeps_running") {
        return;
    }
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let app = spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        s.vmm_seccomp = SeccompMode::Off;
    })
    .await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "free", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run = app.data_dir.join("vms").join(&vm);
    wait_console(&run, "PROBE-GUEST READY", T);
    assert_eq!(vmm_seccomp_mode(&run), "off");

    let answer = forbidden_call(&run).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("execve was not refused"),
        "{answer}"
    );
    assert_eq!(control(&run, json!({"cmd": "status"}))["state"], "running");
    let (_, v) = api.get(&format!("/vms/{vm}")).await;
    assert_eq!(v["state"], "running", "{v}");
    drop(guest);
}
