//! VM metrics over REST: a running probe VM's samples appear (CPU, memory, and the disk bytes its guest
//! wrote), ranges are checked, and another tenant cannot read them.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::helpers::spawn_app_with;
use super::vm_helpers::{
    kvm_or_skip, launch, member_api, probe_and_micro, probe_guest_dir, serial_line, vmm_binary, wait_console,
    wait_state,
};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn a_running_vms_samples_appear_for_its_tenant_only() {
    if !kvm_or_skip("a_running_vms_samples_appear_for_its_tenant_only") {
        return;
    }
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let mut app = spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        // One sample a second, so the test waits seconds, not minutes.
        s.metrics.interval_secs = 1;
    })
    .await;
    app._guest = Some(guest);
    let api = member_api(&app, "metrics-acme").await;
    let other = member_api(&app, "metrics-globex").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "graphs", &image, &flavor).await;
    wait_state(&api, &vm, "running", TIMEOUT).await;
    let run_dir = app.data_dir.join("vms").join(&vm);
    wait_console(&run_dir, "PROBE-GUEST READY", TIMEOUT);

    // Sampling has begun (a point needs two samples), so the write below falls between samples.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, m) = api.get(&format!("/vms/{vm}/metrics")).await;
        if !m["points"].as_array().cloned().unwrap_or_default().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no samples: {m:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The guest writes to its disk; the write rate shows in the series.
    serial_line(&run_dir, "blk-write 2 metrics-test");
    wait_console(&run_dir, "OK", TIMEOUT);
    let deadline = Instant::now() + TIMEOUT;
    let metrics = loop {
        let (status, m) = api.get(&format!("/vms/{vm}/metrics?range=1h")).await;
        assert_eq!(status, 200, "{m}");
        let points = m["points"].as_array().cloned().unwrap_or_default();
        if points
            .iter()
            .any(|p| p["disk_write_bps"].as_f64().unwrap_or(0.0) > 0.0)
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no disk write in the samples: {m:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(metrics["vm_id"], vm.as_str());
    assert_eq!(metrics["range"], "1h");
    assert_eq!(metrics["step_secs"], 1);
    let points = metrics["points"].as_array().unwrap();
    for p in points {
        let cpu = p["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{p}");
        assert!(
            p["memory_bytes"].as_u64().unwrap() > 1 << 20,
            "a VMM has more than 1 MiB resident: {p}"
        );
    }
    let at: Vec<i64> = points.iter().map(|p| p["at"].as_i64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "oldest first: {at:?}");

    // The day view reads roll-ups plus the samples of the running bucket.
    let (status, day) = api.get(&format!("/vms/{vm}/metrics?range=1d")).await;
    assert_eq!((status, day["range"].clone()), (200, Value::from("1d")), "{day}");
    assert_eq!(day["step_secs"], 300);
    assert!(!day["points"].as_array().unwrap().is_empty(), "{day}");

    // Bad input is refused with the field named; nothing else is accepted.
    for bad in ["?range=2h", "?range=", "?range=1h&extra=1"] {
        let (status, body) = api.get(&format!("/vms/{vm}/metrics{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (_, body) = api.get(&format!("/vms/{vm}/metrics?range=2h")).await;
    assert_eq!(body["error"]["field"], "range", "{body}");

    // Another tenant's member sees no such VM, and neither does anyone for an unknown id.
    let (status, body) = other.get(&format!("/vms/{vm}/metrics")).await;
    assert_eq!(status, 404, "another tenant read the metrics: {body}");
    let (status, _) = api.get("/vms/00000000-0000-4000-8000-000000000000/metrics").await;
    assert_eq!(status, 404);

    // Deleted: the VM and its metrics are gone.
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("/vms/{vm}"), None)
        .await;
    assert_eq!(status, 202);
    wait_state(&api, &vm, "gone", TIMEOUT).await;
    let (status, _) = api.get(&format!("/vms/{vm}/metrics")).await;
    assert_eq!(status, 404);
}
