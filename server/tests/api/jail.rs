//! The VMM jail through the portal (README, "Jail and threat model"), with real KVM and the probe guest,
//! as root (skipped loudly otherwise): each VM's VMM runs under its own uid without capabilities, sees
//! only its own run directory, owns its disks where no other VM's uid can read them, sits in a cgroup with
//! its flavor's limits, and the cgroup goes when the VMM ends.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use vmm_api::cgroup::{Hierarchy, CGROUP_ROOT};
use vmm_api::jail::Limits;

use super::helpers::spawn_app_with_vms;
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;

fn status_field(pid: i64, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Whether `uid` can read `path` from the host's view (as a VMM that escaped its own would try).
fn readable_as(uid: u32, path: &Path) -> bool {
    std::process::Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ])
        .args(["head", "-c", "1"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn the_health_check_says_whether_vmms_are_jailed() {
    let off = super::helpers::spawn_app_with(|s| s.sandbox.mode = server::config::SandboxMode::Off).await;
    let body: serde_json::Value = reqwest::get(format!("{}/healthz", off.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["sandbox"], "off");
    if rustix::process::geteuid().is_root() {
        let on = super::helpers::spawn_app().await;
        let body: serde_json::Value = reqwest::get(format!("{}/healthz", on.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["sandbox"], "on");
    }
}

/// The VMM `pid` runs jailed: not root, no effective capability, `no_new_privs`, its root the jail's.
pub fn assert_jailed(pid: i64) {
    assert_ne!(status_field(pid, "Uid:").split_whitespace().next(), Some("0"));
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    assert_eq!(names(Path::new(&format!("/proc/{pid}/root"))), vec!["proc", "vm"]);
}

/// Waits until cgroup `path` is gone from every hierarchy.
pub async fn wait_cgroup_gone(path: &str) {
    let cgroups = Hierarchy::detect(Path::new(CGROUP_ROOT)).unwrap();
    let deadline = Instant::now() + T;
    while cgroups.dirs(path).iter().any(|d| d.exists()) {
        assert!(Instant::now() < deadline, "cgroup {path} stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_vmm_is_jailed_under_its_own_uid_view_and_cgroup() {
    let test = "every_vmm_is_jailed_under_its_own_uid_view_and_cgroup";
    if !kvm_or_skip(test) {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: {test}: the jail needs the portal to run as root");
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
    let pid_of = |run: &Path| control(run, json!({"cmd": "status"}))["pid"].as_i64().unwrap();
    let (pid_a, pid_b) = (pid_of(&run_a), pid_of(&run_b));

    // Identity: a uid of its own (not root, not B's), no capability in any set, no way to gain one.
    let uid_a: u32 = status_field(pid_a, "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let uid_b: u32 = status_field(pid_b, "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid_a, 0);
    assert_ne!(uid_a, uid_b, "two VMs share a uid");
    assert_eq!(status_field(pid_a, "Uid:"), format!("{0}\t{0}\t{0}\t{0}", uid_a));
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(pid_a, set), "0000000000000000", "{set}");
    }
    assert_eq!(status_field(pid_a, "NoNewPrivs:"), "1");
    // Jailed and filtered together: every thread of the portal's VMM has its seccomp filter (mode 2), its
    // uid, no capabilities and no_new_privs.
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid_a}/task"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tasks.len() > 2, "a running VMM has several threads");
    for task in tasks {
        let st = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if st.is_empty() {
            continue; // the thread ended meanwhile
        }
        let name = task.file_name();
        assert!(
            st.contains("\nSeccomp:\t2\n"),
            "{test}: thread {name:?} unfiltered:\n{st}"
        );
        assert!(st.contains("\nNoNewPrivs:\t1\n"), "{test}: thread {name:?}");
        assert!(
            st.contains("\nCapEff:\t0000000000000000\n"),
            "{test}: thread {name:?}"
        );
        assert!(
            st.contains(&format!("\nUid:\t{uid_a}\t")),
            "{test}: thread {name:?}"
        );
    }

    // View: the VMM's root is its jail — its run directory and /proc, nothing else of the host.
    let root = std::path::PathBuf::from(format!("/proc/{pid_a}/root"));
    assert_eq!(names(&root), vec!["proc", "vm"]);
    let inside = names(&root.join("vm"));
    for f in [
        "control.sock",
        "serial.sock",
        "vnc.sock",
        "disk.raw",
        "config.tar",
    ] {
        assert!(inside.contains(&f.to_string()), "{f} not in the jail: {inside:?}");
    }
    // B's disk is not even there in A's view.
    let b_disk = run_b.join("disk.raw");
    assert!(!root.join(b_disk.strip_prefix("/").unwrap()).exists());
    assert!(!root.join("vm").join(&b).exists());

    // Files: the disks are the VM's uid's alone, the run directory its group's; another VM's uid can read
    // neither B's disk nor anything in B's run directory, even from the host's view.
    let disk = std::fs::metadata(run_a.join("disk.raw")).unwrap();
    assert_eq!((disk.uid(), disk.mode() & 0o777), (uid_a, 0o600));
    let dir = std::fs::metadata(&run_a).unwrap();
    assert_eq!((dir.gid(), dir.mode() & 0o7777), (uid_a, 0o1770));
    assert!(readable_as(uid_b, &b_disk), "B's own uid reads its disk");
    assert!(!readable_as(uid_a, &b_disk), "A's uid read B's disk");
    assert!(
        !readable_as(uid_a, &run_b.join("config.tar")),
        "A's uid read B's config disk"
    );

    // Limits: A sits in its cgroup with its flavor's limits (t1.micro: 1 vCPU, 128 MiB).
    let cgroups = Hierarchy::detect(Path::new(CGROUP_ROOT)).unwrap();
    let cgroup = format!("cloud-portal-tests/{a}");
    let member = std::fs::read_to_string(format!("/proc/{pid_a}/cgroup")).unwrap();
    assert!(member.contains(&cgroup), "{member}");
    for (file, value) in cgroups.limit_files(&cgroup, &Limits::for_vm(1, 128)) {
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            value,
            "{}",
            file.display()
        );
    }

    // The host page shows each running VM's jail as the kernel enforces it: A's uid, and the CPU, memory
    // and task limits read from the cgroup files A's VMM is in.
    let admin = app.api(&app.admin().await.token("host page").await);
    let (status, host) = admin.get("/admin/host").await;
    assert_eq!(status, 200, "{host}");
    let row_of = |host: &serde_json::Value, id: &str| {
        host["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not on the host page: {host:#}"))
    };
    let limits = Limits::for_vm(1, 128);
    let jail = &row_of(&host, &a)["jail"];
    assert_eq!(jail["uid"], uid_a, "{host:#}");
    assert_eq!(jail["cgroup"], cgroup.as_str());
    assert_eq!(
        jail["cpu_millis"], 1500,
        "1 vCPU and half a CPU for the VMM itself"
    );
    assert_eq!(jail["memory_limit_bytes"], limits.memory_bytes);
    assert_eq!(jail["pids_max"], limits.pids_max);
    assert_eq!(row_of(&host, &b)["jail"]["uid"], uid_b);

    // The jailed guest still stops gracefully, and its cgroup goes with its VMM.
    let (status, v) = action(&api, &a, "stop").await;
    assert_eq!(status, 202, "{v}");
    wait_state(&api, &a, "stopped", T).await;
    wait_cgroup_gone(&cgroup).await;
    // No VMM, no jail on the host page.
    let host = admin.get("/admin/host").await.1;
    assert_eq!(row_of(&host, &a)["jail"], serde_json::Value::Null, "{host:#}");
    // Started again, it is jailed under the same uid (kept in the database while the VM exists).
    let (status, v) = action(&api, &a, "start").await;
    assert_eq!(status, 202, "{v}");
    wait_state(&api, &a, "running", T).await;
    let again: u32 = status_field(pid_of(&run_a), "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(again, uid_a);
}

#[tokio::test]
async fn with_the_sandbox_off_the_host_page_shows_no_jail_for_a_running_vm() {
    let test = "with_the_sandbox_off_the_host_page_shows_no_jail_for_a_running_vm";
    if !kvm_or_skip(test) {
        return;
    }
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let app = super::helpers::spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        s.sandbox.mode = server::config::SandboxMode::Off;
    })
    .await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "open", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let admin = app.api(&app.admin().await.token("host page").await);
    let (status, host) = admin.get("/admin/host").await;
    assert_eq!(status, 200, "{host}");
    let row = &host["vms"][0];
    assert_eq!(row["id"], vm.as_str(), "{host:#}");
    assert!(row["rss_bytes"].as_u64().is_some(), "the VMM runs: {host:#}");
    assert_eq!(row["jail"], serde_json::Value::Null, "no jail to show: {host:#}");
    assert!(host["sandbox"].as_str().unwrap().starts_with("OFF"), "{host:#}");
}
