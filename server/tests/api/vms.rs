//! VM lifecycle against real KVM guests (the probe guest: KVM here is emulated and slow, and the probe
//! boots in milliseconds). Every transition, guest-initiated power off, a killed VMM, and a portal restart
//! with a running VM.

use std::time::Duration;

use serde_json::json;

use super::helpers::{spawn_app_with_vms, ADMIN_PASSWORD};
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;

#[tokio::test]
async fn two_vms_walk_every_transition() {
    if !kvm_or_skip("two_vms_walk_every_transition") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let a = launch(&api, "alpha", &image, &flavor).await;
    let b = launch(&api, "beta", &image, &flavor).await;
    wait_state(&api, &a, "running", T).await;
    wait_state(&api, &b, "running", T).await;
    let run_a = app.data_dir.join("vms").join(&a);
    let run_b = app.data_dir.join("vms").join(&b);
    wait_console(&run_a, "PROBE-GUEST READY", T);
    wait_console(&run_b, "PROBE-GUEST READY", T);

    // Each VM has its own disk: a write in one is not seen in the other.
    serial_line(&run_a, "blk-write 3 only-in-alpha");
    wait_console(&run_a, "OK", T);
    serial_line(&run_b, "blk-read 3");
    let log_b = wait_console(&run_b, "DATA", T);
    assert!(!log_b.contains("only-in-alpha"));

    // The config disk carries the VM's name.
    let (_, list) = api.get("/vms").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Illegal transitions are refused with a reason.
    let (status, err) = action(&api, &a, "start").await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("while it is running"),
        "{err}"
    );

    // Graceful stop: Ctrl-Alt-Del reaches the guest, which powers off.
    let (status, vm) = action(&api, &a, "stop").await;
    assert_eq!(status, 202, "{vm}");
    assert_eq!(vm["state"], "stopping");
    wait_state(&api, &a, "stopped", T).await;
    let (status, _) = action(&api, &a, "stop").await;
    assert_eq!(status, 409);

    // Start again: same disk.
    action(&api, &a, "start").await;
    wait_state(&api, &a, "running", T).await;
    wait_console(&run_a, "PROBE-GUEST READY", T);
    serial_line(&run_a, "blk-read 3");
    wait_console(&run_a, "DATA only-in-alpha", T);

    // Reboot: a fresh VMM process, same disk.
    let before = control(&run_a, json!({"cmd": "status"}));
    let (status, vm) = action(&api, &a, "reboot").await;
    assert_eq!((status, vm["state"].as_str()), (202, Some("rebooting")));
    wait_state(&api, &a, "running", T).await;
    let after = control(&run_a, json!({"cmd": "status"}));
    assert_ne!(
        before["pid"], after["pid"],
        "reboot starts a fresh VMM: {before} {after}"
    );

    // Force off.
    action(&api, &a, "force_off").await;
    let stopped = wait_state(&api, &a, "stopped", T).await;
    let history: Vec<String> = stopped["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap().to_string())
        .collect();
    // Newest first: force off, reboot, start, stop, launch.
    for expected in [
        "stopped",
        "stopping",
        "running",
        "starting",
        "rebooting",
        "creating",
    ] {
        assert!(
            history.contains(&expected.to_string()),
            "{expected} missing from {history:?}"
        );
    }

    // Delete: the directory goes, the VM is gone from every view.
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("/vms/{a}"), None)
        .await;
    assert_eq!(status, 202);
    wait_state(&api, &a, "gone", T).await;
    assert!(!run_a.exists(), "disk and run directory removed");
    // B is untouched throughout.
    let vm_b = wait_state(&api, &b, "running", T).await;
    assert_eq!(vm_b["name"], "beta");
    action(&api, &b, "delete").await;
    wait_state(&api, &b, "gone", T).await;
    let (_, list) = api.get("/vms").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn guest_power_off_and_a_killed_vmm_are_noticed() {
    if !kvm_or_skip("guest_power_off_and_a_killed_vmm_are_noticed") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "web", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run = app.data_dir.join("vms").join(&vm);
    wait_console(&run, "PROBE-GUEST READY", T);

    // The guest powers itself off: stopped, not crashed.
    serial_line(&run, "poweroff");
    let v = wait_state(&api, &vm, "stopped", T).await;
    assert_eq!(v["events"][0]["message"], "guest powered off");

    // kill -9 of the VMM: crashed, with the reason.
    action(&api, &vm, "start").await;
    wait_state(&api, &vm, "running", T).await;
    let pid = control(&run, json!({"cmd": "status"}))["pid"].as_i64().unwrap();
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let v = wait_state(&api, &vm, "crashed", T).await;
    assert!(v["state_reason"].as_str().unwrap().contains("signal 9"), "{v}");
    // A crashed VM can be started again.
    action(&api, &vm, "start").await;
    wait_state(&api, &vm, "running", T).await;
}

#[tokio::test]
async fn a_portal_restart_keeps_vms_running_and_controllable() {
    if !kvm_or_skip("a_portal_restart_keeps_vms_running_and_controllable") {
        return;
    }
    let (_data, data_dir, _reaper, guest) = portal_data();

    let portal = PortalProcess::start(&data_dir, guest.path());
    let app = super::helpers::TestApp::attach(&portal.base);
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let keep = launch(&api, "keep", &image, &flavor).await;
    let lost = launch(&api, "lost", &image, &flavor).await;
    wait_state(&api, &keep, "running", T).await;
    wait_state(&api, &lost, "running", T).await;
    let run_keep = data_dir.join("vms").join(&keep);
    let run_lost = data_dir.join("vms").join(&lost);
    let pid = control(&run_keep, json!({"cmd": "status"}))["pid"]
        .as_i64()
        .unwrap();
    let pid_lost = control(&run_lost, json!({"cmd": "status"}))["pid"]
        .as_i64()
        .unwrap();

    // Stop the portal (SIGTERM): the VMs keep running.
    portal.terminate();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "VMM survived the portal"
    );
    // While it is down, one VMM dies.
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid_lost.to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let portal = PortalProcess::start(&data_dir, guest.path());
    let app = super::helpers::TestApp::attach(&portal.base);
    let admin = app.signed_in("acme-user", "acme-user-password-1").await;
    let token = admin.token("after restart").await;
    let api = app.api(&token);
    wait_state(&api, &keep, "running", T).await;
    let v = wait_state(&api, &lost, "crashed", T).await;
    assert!(
        v["state_reason"]
            .as_str()
            .unwrap()
            .contains("portal was not running"),
        "{v}"
    );
    // Both ran jailed; the cgroup of the VMM that died while the portal was away is swept at start.
    if rustix::process::geteuid().is_root() {
        super::jail::assert_jailed(pid);
        super::jail::wait_cgroup_gone(&format!("cloud-portal-tests/{lost}")).await;
    }
    // Re-adopted: still controllable, and its end is noticed.
    action(&api, &keep, "stop").await;
    wait_state(&api, &keep, "stopped", T).await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/exe")).exists() || {
            // The pid may be a zombie until reaped by init; it is not our VMM any more.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        }
    );
    let _ = ADMIN_PASSWORD;
    drop(portal);
}
