//! Exact supervision, proved with real VMMs: the portal SIGKILLed at every step of launch, start, stop,
//! reboot and delete (`PORTAL_CRASH_AT`, not timing luck) and restarted leaves exactly one VMM per VM that
//! should run and none otherwise, quota equal to what runs and one open usage interval per running VM; a
//! second VMM for a VM or its disk is refused; a stopping VM still counts against the quota; force-off and
//! delete end a VMM whose sockets are gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use vmm_api::run_dir::RunDir;

use crate::helpers::{Api, Site, TestApp};
use crate::vm_helpers::*;

/// Generous upper bound for a state to be reached; emulated guests and machines differ.
const T: Duration = GUEST_WAIT;

/// How a case brings the VM to the step where the portal dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Launch,
    Start,
    Stop,
    Reboot,
    Delete,
    GuestPowerOff,
}

/// (scenario, crash point, the state the VM must settle in after the restart)
const CASES: &[(Scenario, &str, &str)] = &[
    (Scenario::Launch, "provision.begin", "running"),
    (Scenario::Launch, "provision.files_ready", "running"),
    (Scenario::Launch, "boot.before_spawn", "running"),
    (Scenario::Launch, "boot.after_spawn", "running"),
    (Scenario::Launch, "boot.before_running", "running"),
    (Scenario::Start, "boot.before_spawn", "running"),
    (Scenario::Start, "boot.after_spawn", "running"),
    (Scenario::Start, "boot.before_running", "running"),
    (Scenario::Stop, "stop.begin", "stopped"),
    (Scenario::Stop, "watch.exit_seen", "stopped"),
    (Scenario::Stop, "stop.vmm_gone", "stopped"),
    (Scenario::Reboot, "reboot.begin", "running"),
    (Scenario::Reboot, "reboot.vmm_gone", "running"),
    (Scenario::Reboot, "boot.after_spawn", "running"),
    (Scenario::Delete, "delete.begin", "gone"),
    (Scenario::Delete, "delete.vmm_gone", "gone"),
    (Scenario::Delete, "delete.files_removed", "gone"),
    (Scenario::GuestPowerOff, "watch.exit_seen", "stopped"),
];

/// Live VMM processes whose config lives under `data_dir`, by VM id (read from `/proc`).
fn live_vmms(data_dir: &Path) -> HashMap<String, Vec<i32>> {
    let vms_dir = data_dir.join("vms");
    let mut found: HashMap<String, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next());
        if matches!(state, Some("Z") | Some("X") | None) {
            continue;
        }
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let config = args
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| PathBuf::from(&w[1]));
        if let Some(config) = config.filter(|c| c.starts_with(&vms_dir)) {
            let id = config
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            found.entry(id).or_default().push(pid);
        }
    }
    found
}

async fn db(data_dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", data_dir.join("portal.db").display()))
        .await
        .unwrap()
}

/// Waits until no VM is in a transitional state.
async fn settled(data_dir: &Path, case: &str) {
    let pool = db(data_dir).await;
    let deadline = Instant::now() + T;
    loop {
        let busy: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, state FROM vms WHERE state IN ('creating', 'starting', 'stopping', 'rebooting', 'deleting')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if busy.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{case}: VMs never settled: {busy:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pool.close().await;
}

/// The invariants a crash at any instant must leave, once reconciliation has settled.
async fn check_invariants(data_dir: &Path, api: &Api, case: &str) {
    let pool = db(data_dir).await;
    let vmms = live_vmms(data_dir);
    for (vm, pids) in &vmms {
        assert_eq!(pids.len(), 1, "{case}: VM {vm} has {} VMMs: {pids:?}", pids.len());
    }
    let rows: Vec<(String, String, Option<String>, i64, i64)> =
        sqlx::query_as("SELECT id, state, vmm_run_id, vcpus, memory_mib FROM vms")
            .fetch_all(&pool)
            .await
            .unwrap();
    let (mut vcpus, mut memory) = (0, 0);
    for (id, state, run_id, cpus, mib) in &rows {
        let has_vmm = vmms.contains_key(id);
        assert_eq!(
            state == "running",
            has_vmm,
            "{case}: VM {id} is {state} with{} a VMM",
            if has_vmm { "" } else { "out" }
        );
        assert_eq!(
            run_id.is_some(),
            has_vmm,
            "{case}: VM {id} ({state}) run id {run_id:?}"
        );
        if has_vmm {
            vcpus += cpus;
            memory += mib;
        }
    }
    for vm in vmms.keys() {
        assert!(
            rows.iter().any(|r| &r.0 == vm && r.1 == "running"),
            "{case}: a VMM runs for {vm}, which is not a running VM"
        );
    }
    let open: Vec<(String, i64)> =
        sqlx::query_as("SELECT vm_id, COUNT(*) FROM usage_intervals WHERE ended_at IS NULL GROUP BY vm_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut open_vms: Vec<&str> = open.iter().map(|(vm, _)| vm.as_str()).collect();
    open_vms.sort();
    let mut running: Vec<&str> = vmms.keys().map(String::as_str).collect();
    running.sort();
    assert_eq!(open_vms, running, "{case}: open usage intervals vs running VMMs");
    assert!(open.iter().all(|(_, n)| *n == 1), "{case}: {open:?}");
    let (status, quota) = api.get("/quota").await;
    assert_eq!(status, 200, "{quota}");
    assert_eq!(
        (
            quota["used"]["vcpus"].as_i64(),
            quota["used"]["memory_mib"].as_i64()
        ),
        (Some(vcpus), Some(memory)),
        "{case}: quota used vs what runs"
    );
    pool.close().await;
}

/// Waits for a portal that was told to crash to die by SIGKILL (which proves the point was reached).
fn died_at_point(portal: &mut PortalProcess, case: &str) {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + T;
    loop {
        if let Some(status) = portal.child.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(9),
                "{case}: the portal ended with {status}, not at its crash point"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: the portal never reached its crash point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A VM of the case's scenario brought to the step just before the action, on a portal without a crash
/// point; returns its id (`None` for a launch, which creates the VM in the action).
async fn prepare(
    api: &Api,
    scenario: Scenario,
    name: &str,
    image: &str,
    flavor: &str,
    data: &Path,
) -> Option<String> {
    if scenario == Scenario::Launch {
        return None;
    }
    let vm = launch(api, name, image, flavor).await;
    wait_state(api, &vm, "running", T).await;
    if scenario == Scenario::Start {
        action(api, &vm, "force_off").await;
        wait_state(api, &vm, "stopped", T).await;
    }
    if scenario == Scenario::GuestPowerOff {
        wait_console(&data.join("vms").join(&vm), "PROBE-GUEST READY", T);
    }
    Some(vm)
}

/// The step the portal dies in. Its answer may never come (the portal can die before it answers).
async fn act(
    api: &Api,
    scenario: Scenario,
    vm: Option<&str>,
    name: &str,
    image: &str,
    flavor: &str,
    data: &Path,
) {
    let vm = vm.unwrap_or_default();
    let (path, body) = match scenario {
        Scenario::Launch => (
            "/vms".to_string(),
            json!({ "name": name, "image_id": image, "flavor_id": flavor }),
        ),
        Scenario::Start => (format!("/vms/{vm}/actions"), json!({"action": "start"})),
        Scenario::Stop => (format!("/vms/{vm}/actions"), json!({"action": "stop"})),
        Scenario::Reboot => (format!("/vms/{vm}/actions"), json!({"action": "reboot"})),
        Scenario::Delete => (format!("/vms/{vm}/actions"), json!({"action": "delete"})),
        Scenario::GuestPowerOff => {
            serial_line(&data.join("vms").join(vm), "poweroff");
            return;
        }
    };
    let sent = api
        .client
        .post(format!("{}/api/v1{path}", api.base))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await;
    if let Ok(res) = sent {
        assert_eq!(res.status(), 202, "{scenario:?}: {:?}", res.text().await);
    }
}

async fn vm_named(api: &Api, name: &str) -> Option<String> {
    let (_, list) = api.get("/vms").await;
    list.as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["id"].as_str())
        .map(str::to_string)
}

#[tokio::test]
async fn a_portal_killed_at_every_step_leaves_vms_vmms_quota_and_ledger_consistent() {
    if !kvm_or_skip("a_portal_killed_at_every_step_leaves_vms_vmms_quota_and_ledger_consistent") {
        return;
    }
    let (_data, data_dir, _reaper, guest) = portal_data();
    let portal = PortalProcess::start(&data_dir, guest.path());
    let site: Site = TestApp::attach(&portal.base);
    let api = member_api(&site, "crashes").await;
    let token = api.token.clone();
    let (image, flavor) = probe_and_micro(&api).await;
    drop(portal);

    for (i, (scenario, point, expected)) in CASES.iter().enumerate() {
        let case = format!("{scenario:?} killed at {point}");
        let name = format!("c{i}");
        eprintln!("--- {case}");
        // Set up on a portal without a crash point (setting up may pass the same point).
        let portal = PortalProcess::start(&data_dir, guest.path());
        let api = TestApp::attach(&portal.base).api(&token);
        let vm = prepare(&api, *scenario, &name, &image, &flavor, &data_dir).await;
        portal.terminate();

        let mut portal =
            PortalProcess::start_with_env(&data_dir, guest.path(), &[("PORTAL_CRASH_AT", point)]);
        let api = TestApp::attach(&portal.base).api(&token);
        act(&api, *scenario, vm.as_deref(), &name, &image, &flavor, &data_dir).await;
        died_at_point(&mut portal, &case);
        drop(portal);

        let portal = PortalProcess::start(&data_dir, guest.path());
        let api = TestApp::attach(&portal.base).api(&token);
        settled(&data_dir, &case).await;
        check_invariants(&data_dir, &api, &case).await;
        let vm = match vm {
            Some(vm) => vm,
            None => vm_named(&api, &name)
                .await
                .unwrap_or_else(|| panic!("{case}: VM lost")),
        };
        let (status, body) = api.get(&format!("/vms/{vm}")).await;
        let state = if status == 404 {
            "gone"
        } else {
            body["state"].as_str().unwrap()
        };
        assert_eq!(state, *expected, "{case}: {body:#}");
        // Still controllable: delete it, and nothing of it is left running or billed.
        if state != "gone" {
            assert_eq!(action(&api, &vm, "delete").await.0, 202, "{case}");
            wait_state(&api, &vm, "gone", T).await;
            assert!(
                !data_dir.join("vms").join(&vm).exists(),
                "{case}: files left behind"
            );
        }
        check_invariants(&data_dir, &api, &format!("{case}, after delete")).await;
        portal.terminate();
    }
}

#[tokio::test]
async fn a_second_vmm_for_a_vm_or_its_disk_is_refused_and_lost_sockets_do_not_stop_an_end() {
    if !kvm_or_skip("a_second_vmm_for_a_vm_or_its_disk_is_refused_and_lost_sockets_do_not_stop_an_end") {
        return;
    }
    let app = crate::helpers::spawn_app_with_vms().await;
    let api = member_api(&app, "exclusive").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "only-one", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run_dir = app.data_dir.join("vms").join(&vm);
    let files = RunDir::new(&run_dir);
    wait_console(&run_dir, "PROBE-GUEST READY", T);
    let status_before = std::fs::read(files.pid_file()).unwrap();

    // The same config again: the run directory is held.
    let second = std::process::Command::new(vmm_binary())
        .arg("--config")
        .arg(files.config())
        .output()
        .unwrap();
    assert_eq!(
        second.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("has a VMM already"));
    // Another run directory, the same disk: the disk is held.
    let other = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files.config()).unwrap()).unwrap();
    config["run_dir"] = json!(other.path());
    let third = std::process::Command::new(vmm_binary())
        .arg("--config-json")
        .arg(config.to_string())
        .output()
        .unwrap();
    assert_eq!(
        third.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(String::from_utf8_lossy(&third.stderr).contains("disk.raw is in use by another VMM"));
    // The refused VMMs touched nothing: the first still runs, answers and owns its files.
    assert_eq!(live_vmms(&app.data_dir).get(&vm).map(Vec::len), Some(1));
    assert_eq!(control(&run_dir, json!({"cmd": "status"}))["state"], "running");
    assert_eq!(std::fs::read(files.pid_file()).unwrap(), status_before);
    assert!(!files.exit_status().exists());

    // Its sockets gone, force-off still ends it (by the process the run lock names).
    for sock in [files.control(), files.serial(), files.vnc()] {
        std::fs::remove_file(sock).unwrap();
    }
    assert_eq!(action(&api, &vm, "force_off").await.0, 202);
    wait_state(&api, &vm, "stopped", T).await;
    assert!(live_vmms(&app.data_dir).is_empty());

    // And delete, likewise, for a VM started again and robbed of its sockets.
    assert_eq!(action(&api, &vm, "start").await.0, 202);
    wait_state(&api, &vm, "running", T).await;
    for sock in [files.control(), files.serial(), files.vnc()] {
        std::fs::remove_file(sock).unwrap();
    }
    assert_eq!(action(&api, &vm, "delete").await.0, 202);
    wait_state(&api, &vm, "gone", T).await;
    assert!(live_vmms(&app.data_dir).is_empty());
    assert!(!run_dir.exists());
    check_invariants(&app.data_dir, &api, "after delete").await;
}

#[tokio::test]
async fn a_stopping_vm_counts_against_the_quota_until_its_vmm_exits() {
    if !kvm_or_skip("a_stopping_vm_counts_against_the_quota_until_its_vmm_exits") {
        return;
    }
    let app = crate::helpers::spawn_app_with_vms().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, _) = app.tenant_with_member(&admin, "tight", "tia").await;
    let tia = app.signed_in("tia", "tia-password-1").await;
    let api = app.api(&tia.token("tia").await);
    let (status, _) = admin_api
        .send(
            Method::PUT,
            &format!("/quotas/{tenant}"),
            Some(json!({"instances": 5, "vcpus": 1, "memory_mib": 4096, "disk_gib": 50})),
        )
        .await;
    assert_eq!(status, 204);
    let (image, flavor) = probe_and_micro(&api).await;
    let first = launch(&api, "first", &image, &flavor).await;
    wait_state(&api, &first, "running", T).await;
    // A paused guest cannot answer Ctrl-Alt-Del: the graceful stop waits out its timeout while the VMM runs.
    let run_dir = app.data_dir.join("vms").join(&first);
    assert_eq!(control(&run_dir, json!({"cmd": "pause"}))["ok"], true);
    assert_eq!(action(&api, &first, "stop").await.0, 202);
    wait_state(&api, &first, "stopping", T).await;
    let (status, err) = api
        .send(
            Method::POST,
            "/vms",
            Some(json!({"name": "second", "image_id": image, "flavor_id": flavor})),
        )
        .await;
    assert_eq!(status, 403, "a stopping VM still runs: {err}");
    assert_eq!(err["error"]["kind"], "quota_exceeded");
    let (_, quota) = api.get("/quota").await;
    assert_eq!(quota["used"]["vcpus"], 1);
    // Once its VMM has exited (forced after the stop timeout), the vCPU is free again.
    wait_state(&api, &first, "stopped", T).await;
    let second = launch(&api, "second", &image, &flavor).await;
    wait_state(&api, &second, "running", T).await;
    check_invariants(&app.data_dir, &api, "stopping quota").await;
}

#[tokio::test]
async fn a_vmm_that_cannot_record_its_exit_still_ends_consistently() {
    if !kvm_or_skip("a_vmm_that_cannot_record_its_exit_still_ends_consistently") {
        return;
    }
    let (_data, data_dir, _reaper, guest) = portal_data();
    let mut portal = PortalProcess::start(&data_dir, guest.path());
    let api = member_api(&TestApp::attach(&portal.base), "full-disk").await;
    let token = api.token.clone();
    let (image, flavor) = probe_and_micro(&api).await;
    let watched = launch(&api, "watched", &image, &flavor).await;
    let orphaned = launch(&api, "orphaned", &image, &flavor).await;
    for vm in [&watched, &orphaned] {
        wait_state(&api, vm, "running", T).await;
        let run_dir = data_dir.join("vms").join(vm);
        wait_console(&run_dir, "PROBE-GUEST READY", T);
        // The status file cannot be written (as on a full disk): its temporary name is taken by a directory.
        std::fs::create_dir(RunDir::new(&run_dir).exit_status().with_extension("tmp")).unwrap();
    }
    // Watched by the portal: the exit code comes from waiting on the child.
    serial_line(&data_dir.join("vms").join(&watched), "poweroff");
    wait_state(&api, &watched, "stopped", T).await;
    check_invariants(&data_dir, &api, "unrecorded exit, watched").await;

    // Ended while the portal was down, with nothing recorded: crashed, its time billed until noticed.
    portal.child.kill().unwrap();
    portal.child.wait().unwrap();
    serial_line(&data_dir.join("vms").join(&orphaned), "poweroff");
    let deadline = Instant::now() + T;
    while live_vmms(&data_dir).contains_key(&orphaned) {
        assert!(Instant::now() < deadline, "the guest did not power off");
        std::thread::sleep(Duration::from_millis(20));
    }
    let portal = PortalProcess::start(&data_dir, guest.path());
    let api = TestApp::attach(&portal.base).api(&token);
    let vm = wait_state(&api, &orphaned, "crashed", T).await;
    assert!(
        vm["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("without recording an exit status"),
        "{vm:#}"
    );
    check_invariants(&data_dir, &api, "unrecorded exit, portal down").await;
}

#[tokio::test]
async fn one_portal_per_data_directory() {
    let (_data, data_dir, _reaper, guest) = portal_data();
    let first = PortalProcess::start(&data_dir, guest.path());
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_portal"))
        .env("PORTAL_LISTEN", "127.0.0.1:0")
        .env("PORTAL_DATA_DIR", &data_dir)
        .env("PORTAL_GUEST_DIR", guest.path())
        .env("PORTAL_NETWORK__ENABLED", "false")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("Another portal is running on the data directory"),
        "{err}"
    );
    // The first is unaffected, and once it is gone the directory can be served again.
    assert_eq!(
        reqwest::get(format!("{}/healthz", first.base))
            .await
            .unwrap()
            .status(),
        200
    );
    first.terminate();
    let again = PortalProcess::start(&data_dir, guest.path());
    assert_eq!(
        reqwest::get(format!("{}/healthz", again.base))
            .await
            .unwrap()
            .status(),
        200
    );
}
