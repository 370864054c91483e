//! Helpers for tests that run real VMs: KVM check, the `vmm` binary and the probe guest, a portal process
//! that can be stopped and restarted on the same data directory, and waiting for VM states.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vmm_api::control::client::Client;
use vmm_api::control::Request;
use vmm_api::run_dir::RunDir;

use super::helpers::{Api, Site, ADMIN_PASSWORD};

/// Upper bound for a VM to reach a state. Generous on purpose: guests are emulated, machines differ
/// several-fold in speed, and tests wait on the state itself, never on this time.
pub const GUEST_WAIT: Duration = Duration::from_secs(180);

/// True when /dev/kvm is usable; otherwise prints a loud SKIP line.
pub fn kvm_or_skip(test: &str) -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        return true;
    }
    eprintln!(
        "\n!!!!!!!! SKIP {test}: /dev/kvm is not available; this test needs real KVM guests !!!!!!!!\n"
    );
    false
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `vmm` binary cargo built next to this test (`cargo test` of the workspace builds it).
pub fn vmm_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("vmm");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vmm` (scripts/test.sh does) before the server's VM tests",
        bin.display()
    );
    bin
}

/// A guest directory holding just the probe guest (built by scripts/build-probe.sh if missing).
pub fn probe_guest_dir() -> tempfile::TempDir {
    let built = repo().join("guest/out/probe-guest");
    if !built.exists() {
        let ok = Command::new("bash")
            .arg(repo().join("scripts/build-probe.sh"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the probe guest failed");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&built, dir.path().join("probe-guest")).unwrap();
    dir
}

/// Kills every VMM whose config lives under `data_dir` (test clean-up: VMs outlive the portal by design).
pub fn kill_vmms_under(data_dir: &Path) {
    let _ = Command::new("pkill")
        .arg("-KILL")
        .arg("-f")
        .arg(format!("vmm --config {}", data_dir.display()))
        .status();
    remove_test_cgroups(data_dir);
}

/// Removes the cgroups of the VMs under `data_dir` (their VMMs were just killed, so no portal watched them
/// end), waiting a moment for the killed processes to leave them.
fn remove_test_cgroups(data_dir: &Path) {
    let Ok(cgroups) = vmm_api::cgroup::Hierarchy::detect(Path::new(vmm_api::cgroup::CGROUP_ROOT)) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(data_dir.join("vms")) else {
        return;
    };
    for vm in entries.flatten() {
        let path = format!("cloud-portal-tests/{}", vm.file_name().to_string_lossy());
        let deadline = Instant::now() + Duration::from_secs(5);
        while cgroups.remove(&path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// For portals run as processes: a data directory (and its canonical path), a reaper for the VMMs started
/// under it, and a guest directory with the probe guest. Keep all four alive for the test; the reaper is
/// dropped before the directory.
pub fn portal_data() -> (tempfile::TempDir, PathBuf, VmmReaper, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = std::fs::canonicalize(data.path()).unwrap();
    let reaper = VmmReaper(data_dir.clone());
    (data, data_dir, reaper, probe_guest_dir())
}

/// Kills the test's VMMs when dropped, even if the test fails.
pub struct VmmReaper(pub PathBuf);

impl Drop for VmmReaper {
    fn drop(&mut self) {
        kill_vmms_under(&self.0);
    }
}

/// The catalogue ids a launch needs: (probe image id, t1.micro flavor id).
pub async fn probe_and_micro(api: &Api) -> (String, String) {
    let (status, images) = api.get("/images").await;
    assert_eq!(status, 200, "{images}");
    let image = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["is_test"] == true)
        .unwrap_or_else(|| panic!("probe image not registered: {images}"));
    let (_, flavors) = api.get("/flavors").await;
    let flavor = flavors
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "t1.micro")
        .unwrap();
    (
        image["id"].as_str().unwrap().to_string(),
        flavor["id"].as_str().unwrap().to_string(),
    )
}

pub async fn launch(api: &Api, name: &str, image: &str, flavor: &str) -> String {
    let (status, vm) = api
        .send(
            reqwest::Method::POST,
            "/vms",
            Some(json!({ "name": name, "image_id": image, "flavor_id": flavor })),
        )
        .await;
    assert_eq!(status, 202, "{vm}");
    vm["id"].as_str().unwrap().to_string()
}

pub async fn action(api: &Api, vm: &str, action: &str) -> (u16, Value) {
    api.send(
        reqwest::Method::POST,
        &format!("/vms/{vm}/actions"),
        Some(json!({ "action": action })),
    )
    .await
}

/// Polls the VM until it reaches `state`; panics with its history otherwise.
pub async fn wait_state(api: &Api, vm: &str, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = api.get(&format!("/vms/{vm}")).await;
        if state == "gone" && status == 404 {
            return body;
        }
        if status == 200 && body["state"] == state {
            return body;
        }
        if Instant::now() > deadline {
            panic!("VM {vm} did not reach {state} in {timeout:?}: {status} {body:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request to a VMM control socket, written and answered as JSON (a refusal is an answer), through
/// the portal's own control client.
pub fn control(run_dir: &Path, request: Value) -> Value {
    let request: Request = serde_json::from_value(request).unwrap();
    let answer = Client::of(&RunDir::new(run_dir))
        .with_timeout(Duration::from_secs(10))
        .exchange_blocking(&request)
        .unwrap();
    serde_json::to_value(answer).unwrap()
}

/// Waits until the guest's console log contains `needle`.
pub fn wait_console(run_dir: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = control(run_dir, json!({"cmd": "console-log"}));
        let text = log["data"].as_str().unwrap_or_default().to_string();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {needle:?} on the console: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Types a line on the guest's serial console.
pub fn serial_line(run_dir: &Path, line: &str) {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(RunDir::new(run_dir).serial()).unwrap();
    s.write_all(format!("{line}\r").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
}

/// A member of a fresh tenant with an API token, on a portal with the probe image.
pub async fn member_api(app: &Site, tenant: &str) -> Api {
    let admin = app.admin().await;
    let user = format!("{tenant}-user");
    app.tenant_with_member(&admin, tenant, &user).await;
    let member = app.signed_in(&user, &format!("{user}-password-1")).await;
    let token = member.token("vm tests").await;
    app.api(&token)
}

/// `first,last`: 64 uids chosen by the data directory's path.
fn sandbox_uids(data_dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    let first = 300_000 + (h.finish() % 10_000) * 64;
    format!("{first},{}", first + 63)
}

/// The `portal` binary as a separate process, so a test can stop and restart it like an operator would.
pub struct PortalProcess {
    pub child: Child,
    pub base: String,
}

impl PortalProcess {
    pub fn start(data_dir: &Path, guest_dir: &Path) -> Self {
        Self::start_with_env(data_dir, guest_dir, &[])
    }

    /// Starts the portal with extra environment variables (e.g. a crash point).
    pub fn start_with_env(data_dir: &Path, guest_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_portal"))
            .env("PORTAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTAL_DATA_DIR", data_dir)
            .env("PORTAL_GUEST_DIR", guest_dir)
            .env("PORTAL_VMM_BINARY", vmm_binary())
            .env("PORTAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("PORTAL_STOP_TIMEOUT_SECS", "10")
            // Tests that want tenant networks turn them on with a namespace of their own.
            .env("PORTAL_NETWORK__ENABLED", "false")
            // Jailed VMMs, as in production; a block of uids of its own per data directory, so portals
            // running side by side never give two VMs one uid.
            .env("PORTAL_SANDBOX__UID_RANGE", sandbox_uids(data_dir))
            .env("PORTAL_SANDBOX__CGROUP_PARENT", "cloud-portal-tests")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data_dir.join("portal.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + GUEST_WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "portal did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, base }
    }

    /// SIGTERM and wait: a graceful portal shutdown.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for PortalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
