//! What the jail costs at start (`cargo bench -p vmm --bench jail`, as root): VMM process start → first
//! guest exit on BOOT_MARKER_PORT with and without a jail, interleaved runs in the same process, medians.
//! The jail (cgroup, rlimits, mount namespace and pivot_root, identity, Landlock) is built between those
//! two points, so the difference of the medians is its cost; the goal is at most 5 ms.
#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestVm, VmOpts, TIMEOUT};
use serde_json::json;
use vmm_api::cgroup::{Hierarchy, CGROUP_ROOT};
use vmm_api::jail::{JailConfig, Limits};

const RUNS: usize = 15;
const PARENT: &str = "vmm-bench";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (VMM start → first guest exit as the VMM measures it, spawn → first exit as seen from here), in ms.
fn one_run(jail: Option<&JailConfig>) -> (f64, f64) {
    let t0 = Instant::now();
    let extra = match jail {
        Some(j) => json!({ "jail": j }),
        None => json!({}),
    };
    let mut vm = TestVm::start(VmOpts {
        extra,
        ..VmOpts::probe("bench-jail")
    });
    let deadline = Instant::now() + TIMEOUT;
    let first = loop {
        if let Ok(v) = vm.try_control(json!({"cmd": "status"})) {
            if let Some(f) = v["boot"]["first_exit_ms"].as_f64() {
                break f;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no first exit; stderr:\n{}",
            vm.stderr()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let seen = t0.elapsed().as_secs_f64() * 1000.0;
    vm.control(json!({"cmd": "stop"}));
    vm.wait_exit(TIMEOUT);
    (first, seen)
}

fn main() {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("SKIP: jail bench: /dev/kvm is absent");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: jail bench: the jail needs root");
        return;
    }
    let cgroups = Hierarchy::detect(Path::new(CGROUP_ROOT)).unwrap();
    cgroups.prepare_parent(PARENT).unwrap();
    let (mut plain, mut jailed, mut plain_seen, mut jailed_seen) = (vec![], vec![], vec![], vec![]);
    one_run(None); // warm the page cache and the probe guest build
    for i in 0..RUNS {
        let jail = JailConfig {
            uid: 260_000 + i as u32,
            gid: 260_000 + i as u32,
            cgroup: format!("{PARENT}/run-{}-{i}", std::process::id()),
            limits: Limits::for_vm(1, 64),
        };
        let (f, s) = one_run(None);
        plain.push(f);
        plain_seen.push(s);
        let (f, s) = one_run(Some(&jail));
        jailed.push(f);
        jailed_seen.push(s);
        let _ = cgroups.remove(&jail.cgroup);
    }
    let (p, j) = (median(plain), median(jailed));
    println!(
        "VMM start -> first guest exit (medians of {RUNS} interleaved runs, cgroup v{}):",
        cgroups.version()
    );
    println!(
        "  without jail: {p:8.2} ms   (spawn -> first exit seen: {:8.2} ms)",
        median(plain_seen)
    );
    println!(
        "  with jail:    {j:8.2} ms   (spawn -> first exit seen: {:8.2} ms)",
        median(jailed_seen)
    );
    println!("  jail cost:    {:8.2} ms   (goal <= 5 ms)", j - p);
}
