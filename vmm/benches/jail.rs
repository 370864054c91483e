//! What the jail costs at start (`cargo bench -p vmm --bench jail`, as root): VMM process start → first
//! guest exit on BOOT_MARKER_PORT with and without a jail, interleaved runs in the same process, medians.
//! The jail (cgroup, rlimits, mount namespace and pivot_root, identity, Landlock) is built between those
//! two points, so the difference of the medians is its cost; the goal is at most 5 ms. The same
//! difference is also taken from this process's spawn of the VMM to the first exit it sees through the
//! control socket (polled every millisecond, so each figure carries up to a millisecond and a round trip
//! of polling): nothing of the jail can hide outside the measured window.
#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestVm, VmOpts, TIMEOUT};
use serde_json::json;
use vmm_api::cgroup::{Hierarchy, CGROUP_ROOT};
use vmm_api::jail::{JailConfig, Limits};

/// Many: other work on the machine makes single starts vary by tens of milliseconds.
const RUNS: usize = 41;
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

/// The jail's own timings (`cgroup_us=…` etc. in its "jail entered" log line), in ms.
fn jail_steps(stderr: &str) -> Vec<(String, f64)> {
    let Some(line) = stderr.lines().find(|l| l.contains("jail entered")) else {
        return vec![];
    };
    // Without the terminal colours tracing may add around names and values.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            let k = k.strip_suffix("_us")?;
            Some((k.to_string(), v.parse::<f64>().ok()? / 1000.0))
        })
        .collect()
}

/// One start, in ms.
struct Run {
    /// VMM process start → first guest exit, as the VMM measures it.
    first: f64,
    /// This process's spawn of the VMM → first guest exit, from the wall clocks of both (the VMM's start
    /// time is recorded to the millisecond, so each figure carries up to a millisecond of rounding).
    from_spawn: f64,
    /// Spawn → the first exit seen through the control socket (polled every millisecond).
    seen: f64,
    /// The jail's own steps.
    steps: Vec<(String, f64)>,
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn one_run(jail: Option<&JailConfig>) -> Run {
    let t0 = Instant::now();
    let spawned_unix = unix_ms();
    let extra = match jail {
        Some(j) => json!({ "jail": j }),
        None => json!({}),
    };
    let mut vm = TestVm::start(VmOpts {
        extra,
        ..VmOpts::probe("bench-jail")
    });
    let deadline = Instant::now() + TIMEOUT;
    let (first, started_unix) = loop {
        if let Ok(v) = vm.try_control(json!({"cmd": "status"})) {
            if let Some(f) = v["boot"]["first_exit_ms"].as_f64() {
                break (f, v["started_unix_ms"].as_f64().unwrap());
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
    Run {
        first,
        from_spawn: started_unix + first - spawned_unix,
        seen,
        steps: jail_steps(&vm.stderr()),
    }
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    cgroups.prepare_parent(PARENT, cpus).unwrap();
    let (mut plain, mut jailed) = (vec![], vec![]);
    let _ = one_run(None); // warm the page cache and the probe guest build
    for i in 0..RUNS {
        let jail = JailConfig {
            uid: 260_000 + i as u32,
            gid: 260_000 + i as u32,
            cgroup: format!("{PARENT}/run-{}-{i}", std::process::id()),
            limits: Limits::for_vm(1, 64),
        };
        plain.push(one_run(None));
        jailed.push(one_run(Some(&jail)));
        let _ = cgroups.remove(&jail.cgroup);
    }
    let med = |runs: &[Run], f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let row = |runs: &[Run]| {
        (
            med(runs, |r| r.first),
            med(runs, |r| r.from_spawn),
            med(runs, |r| r.seen),
        )
    };
    let (p, j) = (row(&plain), row(&jailed));
    let mut steps: Vec<(String, Vec<f64>)> = vec![];
    for (name, ms) in jailed.iter().flat_map(|r| r.steps.iter()) {
        match steps.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(*ms),
            None => steps.push((name.clone(), vec![*ms])),
        }
    }
    println!(
        "First guest exit, medians of {RUNS} interleaved runs (cgroup v{}), ms:",
        cgroups.version()
    );
    println!("                 from VMM start   from spawn   seen from spawn (1 ms polling)");
    let line = |name: &str, (a, b, c): (f64, f64, f64)| {
        println!("  {name:<13} {a:12.2} {b:12.2} {c:12.2}");
    };
    line("without jail", p);
    line("with jail", j);
    line("jail cost", (j.0 - p.0, j.1 - p.1, j.2 - p.2));
    println!("  (goal: jail cost <= 5 ms)");
    let steps: Vec<String> = steps
        .into_iter()
        .map(|(name, v)| format!("{name} {:.2}", median(v)))
        .collect();
    println!(
        "  jail steps (medians, ms, as the VMM logs them): {}",
        steps.join(", ")
    );
}
