//! `cargo bench -p server --bench lifecycle`: VM lifecycle figures on real KVM with the probe guest.
//!
//! Prints medians: API launch → `running` and → guest banner (10 launches); 50 VMs of 128 MiB running at
//! once (total and per-VM RSS of the VMM processes); the dashboard page's latency percentiles under 64
//! concurrent clients with those 50 idle VMs listed (a small Rust load generator, like `wrk -c64`); then how
//! many idle 128 MiB VMs the host holds: more are launched, one after another, until BENCH_MAX_VMS run or a
//! limit is hit (a refused launch, a VM that does not run, or the host's MemAvailable under 1 GiB), with
//! the total and per-VM RSS of all their VMMs. The load average is printed with each figure: the machine
//! may be shared. The metrics sampler runs as in production (every 10 s).
//! The dashboard's figures come with a floor measured in the same run under the same load: `/healthz`
//! (no session, one trivial query, no rendering), so the ratio says how much of the latency is the page's
//! own work and how much is 64 clients sharing the machine's cores with the load generator.
//! Env: BENCH_VMS (default 50), BENCH_SECONDS (load duration, default 10), BENCH_CLIENTS (default 64),
//! BENCH_MAX_VMS (default 100), BENCH_ONLY=dashboard (only the VMs the dashboard lists and its load: no
//! launch latencies, no capacity search), RUST_LOG (the portal's log to stderr, e.g. `sqlx::query=debug`
//! to see the statements of one request).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::config::Settings;
use server::startup::Application;
use vmm_api::control::client::Client as VmmControl;
use vmm_api::run_dir::RunDir;

const PASSWORD: &str = "bench-admin-password";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `vmm` binary: VMM_BINARY, else next to this bench's profile directory, else built.
fn vmm_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VMM_BINARY") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("bench exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
    let bin = profile_dir.join("vmm");
    if !bin.exists() {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "vmm", "--bin", "vmm"]);
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo").success(), "building the vmm failed");
    }
    bin
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The host's MemAvailable in MiB (0 if unreadable).
fn mem_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// The 1-minute load average, to say how busy the (possibly shared) machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// RSS in MiB of the VMMs of `ids`: (total, median, max, how many answered).
async fn vmm_rss(data_dir: &Path, ids: &[String]) -> (f64, f64, f64, usize) {
    let mut rss: Vec<f64> = Vec::new();
    for id in ids {
        let vmm = VmmControl::of(&RunDir::new(data_dir.join("vms").join(id)));
        if let Ok(status) = vmm.status().await {
            rss.push(rss_kib(status.pid) as f64 / 1024.0);
        }
    }
    if rss.is_empty() {
        return (0.0, 0.0, 0.0, 0);
    }
    let total: f64 = rss.iter().sum();
    let n = rss.len();
    let med = median(&mut rss);
    (total, med, rss.last().copied().unwrap_or(0.0), n)
}

/// Whether the guest of the VM in `run_dir` has printed its banner (asked of its VMM).
async fn banner_printed(run_dir: &Path) -> bool {
    VmmControl::of(&RunDir::new(run_dir))
        .console_log()
        .await
        .is_ok_and(|log| log.contains("PROBE-GUEST READY"))
}

/// Latencies (ms, sorted) of `clients` concurrent clients each GETting `url` in a loop until `seconds`
/// have passed, every response checked to be a success.
async fn load(browser: &reqwest::Client, url: &str, clients: usize, seconds: usize) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let browser = browser.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = browser.get(&url).send().await.expect("get");
                assert!(res.status().is_success(), "{url}: {}", res.status());
                let _ = res.bytes().await.expect("body");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    lat.sort_by(f64::total_cmp);
    lat
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
            .await
            .expect("request")
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

#[tokio::main]
async fn main() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("!!!!!!!! SKIP lifecycle bench: /dev/kvm is not available !!!!!!!!");
        return;
    }
    let probe = repo().join("guest/out/probe-guest");
    assert!(
        probe.exists(),
        "{} missing: run scripts/build-probe.sh",
        probe.display()
    );
    if std::env::var_os("RUST_LOG").is_some() {
        server::telemetry::init("pretty");
    }
    let dashboard_only = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "dashboard");
    let data = tempfile::tempdir().expect("tempdir");
    let guest = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&probe, guest.path().join("probe-guest")).expect("copy probe");
    let mut settings = Settings::for_tests(data.path().to_path_buf());
    settings.guest_dir = guest.path().to_path_buf();
    settings.vmm_binary = Some(vmm_binary());
    settings.admin_password = Some(secrecy::SecretString::from(PASSWORD));
    let app = Application::build(settings).await.expect("app");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped());
    let data_dir = std::fs::canonicalize(data.path()).expect("data dir");
    let _reaper = Reaper(data_dir.clone());

    // An admin session and token; the admin tenant runs the VMs.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::ORIGIN, base.parse().expect("origin"));
            h
        })
        .build()
        .expect("client");
    let login = browser
        .post(format!("{base}/api/fn/login"))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert!(login.status().is_success());
    let token: Value = browser
        .post(format!("{base}/api/fn/create_token"))
        .form(&[("name", "bench"), ("expires_in_days", "")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let api = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        token: token["secret"].as_str().expect("secret").to_string(),
    };
    // Room for every VM the bench starts (the defaults allow 10 instances).
    let me = api.call(reqwest::Method::GET, "/whoami", None).await;
    let tenant = me["tenant_id"].as_str().expect("tenant id").to_string();
    let limits = json!({"instances": 1000, "vcpus": 1000, "memory_mib": 1 << 20, "disk_gib": 100_000});
    api.call(reqwest::Method::PUT, &format!("/quotas/{tenant}"), Some(limits))
        .await;
    let images = api.call(reqwest::Method::GET, "/images", None).await;
    let image = images
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["is_test"] == true)
        .expect("probe")["id"]
        .clone();
    let flavors = api.call(reqwest::Method::GET, "/flavors", None).await;
    let flavor = flavors
        .as_array()
        .expect("flavors")
        .iter()
        .find(|f| f["name"] == "t1.micro")
        .expect("micro")["id"]
        .clone();

    // 1. Launch → running → banner, 10 times (each VM deleted afterwards).
    let (mut to_running, mut to_banner) = (Vec::new(), Vec::new());
    for i in 0..if dashboard_only { 0 } else { 10 } {
        let t0 = Instant::now();
        let vm = api
            .call(
                reqwest::Method::POST,
                "/vms",
                Some(json!({"name": format!("lat-{i}"), "image_id": image, "flavor_id": flavor})),
            )
            .await;
        let id = vm["id"]
            .as_str()
            .unwrap_or_else(|| panic!("launch refused: {vm}"))
            .to_string();
        loop {
            let v = api.call(reqwest::Method::GET, &format!("/vms/{id}"), None).await;
            if v["state"] == "running" {
                break;
            }
            assert_ne!(v["state"], "crashed", "{v}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_running.push(t0.elapsed().as_secs_f64() * 1000.0);
        let run_dir = data_dir.join("vms").join(&id);
        while !banner_printed(&run_dir).await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_banner.push(t0.elapsed().as_secs_f64() * 1000.0);
        api.call(
            reqwest::Method::POST,
            &format!("/vms/{id}/actions"),
            Some(json!({"action": "delete"})),
        )
        .await;
    }
    if !dashboard_only {
        println!(
            "API launch -> running        median {:7.1} ms (10 launches)",
            median(&mut to_running)
        );
        println!(
            "API launch -> guest banner   median {:7.1} ms (10 launches, probe guest)",
            median(&mut to_banner)
        );
    }

    // 2. Many VMs at once.
    let n = env_or("BENCH_VMS", 50);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..n {
        let vm = api
            .call(
                reqwest::Method::POST,
                "/vms",
                Some(json!({"name": format!("many-{i}"), "image_id": image, "flavor_id": flavor})),
            )
            .await;
        ids.push(
            vm["id"]
                .as_str()
                .unwrap_or_else(|| panic!("launch refused: {vm}"))
                .to_string(),
        );
    }
    for id in &ids {
        loop {
            let v = api.call(reqwest::Method::GET, &format!("/vms/{id}"), None).await;
            if v["state"] == "running" {
                break;
            }
            assert_ne!(v["state"], "crashed", "{v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all_running = t0.elapsed();
    // Let every guest print its banner (its memory is then touched as much as it will be).
    for id in &ids {
        let run_dir = data_dir.join("vms").join(id);
        while !banner_printed(&run_dir).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut rss: Vec<f64> = Vec::new();
    for id in &ids {
        let vmm = VmmControl::of(&RunDir::new(data_dir.join("vms").join(id)));
        if let Ok(status) = vmm.status().await {
            rss.push(rss_kib(status.pid) as f64 / 1024.0);
        }
    }
    let total: f64 = rss.iter().sum();
    println!(
        "{n} VMs x 128 MiB running    all running after {:.1} s; VMM RSS total {:.0} MiB, per VM median {:.1} MiB (max {:.1})",
        all_running.as_secs_f64(),
        total,
        median(&mut rss),
        rss.last().copied().unwrap_or(0.0)
    );

    // 3. Dashboard under load, with the n VMs listed.
    let load_before = load_average();
    let clients = env_or("BENCH_CLIENTS", 64);
    let seconds = env_or("BENCH_SECONDS", 10);
    let page = browser
        .get(format!("{base}/instances"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(page.contains("many-0"), "the dashboard lists the VMs");
    // The floor first (same clients, same VMs, same session cookie), then the page.
    let floor = load(&browser, &format!("{base}/healthz"), clients, seconds).await;
    let lat = load(&browser, &format!("{base}/instances"), clients, seconds).await;
    for (what, l) in [("healthz (floor)", &floor), ("dashboard", &lat)] {
        println!(
            "{what:<16} {clients} clients, {n} VMs  {} requests in {seconds} s ({:.0}/s); p50 {:.1} ms, p99 {:.1} ms",
            l.len(),
            l.len() as f64 / seconds as f64,
            percentile(l, 0.5),
            percentile(l, 0.99)
        );
    }
    println!(
        "dashboard / healthz          p50 x{:.1}, p99 x{:.1} (load average before: {load_before}, after: {})",
        percentile(&lat, 0.5) / percentile(&floor, 0.5),
        percentile(&lat, 0.99) / percentile(&floor, 0.99),
        load_average()
    );
    if dashboard_only {
        return;
    }

    // 4. How many idle 128 MiB VMs this host holds.
    let target = env_or("BENCH_MAX_VMS", 100);
    let t0 = Instant::now();
    let mut limit = String::from("none");
    while ids.len() < target {
        if mem_available_mib() < 1024 {
            limit = format!("host MemAvailable {} MiB < 1 GiB", mem_available_mib());
            break;
        }
        let vm = api
            .call(
                reqwest::Method::POST,
                "/vms",
                Some(json!({"name": format!("many-{}", ids.len()), "image_id": image, "flavor_id": flavor})),
            )
            .await;
        let Some(id) = vm["id"].as_str().map(str::to_string) else {
            limit = format!("launch refused: {vm}");
            break;
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        let state = loop {
            let v = api.call(reqwest::Method::GET, &format!("/vms/{id}"), None).await;
            let state = v["state"].as_str().unwrap_or_default().to_string();
            if state == "running" || state == "crashed" || state == "stopped" || Instant::now() > deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if state != "running" {
            limit = format!("VM {} did not run: {state}", ids.len());
            break;
        }
        ids.push(id);
    }
    for id in &ids {
        let run_dir = data_dir.join("vms").join(id);
        let deadline = Instant::now() + Duration::from_secs(300);
        while !banner_printed(&run_dir).await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (total, med, max, answered) = vmm_rss(&data_dir, &ids).await;
    println!(
        "idle VMs x 128 MiB held      {answered} running (goal {target}; limit hit: {limit}) after {:.1} s more; \
         VMM RSS total {total:.0} MiB, per VM median {med:.1} MiB (max {max:.1}); host MemAvailable {} MiB; \
         load average {}",
        t0.elapsed().as_secs_f64(),
        mem_available_mib(),
        load_average()
    );
}

/// Kills the bench's VMMs at the end.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(format!("vmm --config {}", self.0.display()))
            .status();
    }
}
