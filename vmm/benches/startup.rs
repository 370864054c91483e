//! VMM benchmarks with the probe guest (`cargo bench -p vmm --bench startup`), medians over >= 10 runs.
//!
//! VMM-bound figures (what the VMM itself costs): process start → first guest exit on
//! BOOT_MARKER_PORT, VMM RSS excluding guest memory, start + stop of 20 VMs in a row.
//! Guest-instruction-bound figures (dominated by how fast this host executes guest code; on emulated
//! KVM hosts thousands of times slower than hardware): first instruction → banner, and the PIO exit
//! rate (each `out 0x80` is one exit plus a few emulated loop instructions).
//!
//! Opt-in, because it takes minutes per boot on emulated KVM hosts: `VMM_BENCH_LINUX=<runs>` also boots
//! the minimal Linux image of guest/out/manifest.json (built by guest/build.sh) that many times and
//! prints the median of VMM start → busybox banner on serial.
#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{linux_image, TestVm, VmOpts, TIMEOUT};
use serde_json::{json, Value};

const RUNS: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Polls status until `pick` returns a value.
fn poll<T>(vm: &TestVm, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(v) = vm.try_control(json!({"cmd": "status"})) {
            if let Some(t) = pick(&v) {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "timed out; stderr:\n{}", vm.stderr());
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP: startup bench: /dev/kvm is absent");
        return;
    }
    let (mut first_exit, mut banner, mut overhead, mut rss) = (vec![], vec![], vec![], vec![]);
    let mut spawn_to_banner = vec![];
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let mut vm = TestVm::start(VmOpts {
            disk_mib: Some(1),
            ..VmOpts::probe("bench")
        });
        let st = poll(&vm, |v| v["boot"]["banner_ms"].as_f64().map(|_| v.clone()));
        spawn_to_banner.push(t0.elapsed().as_secs_f64() * 1000.0);
        let f = st["boot"]["first_exit_ms"].as_f64().unwrap();
        first_exit.push(f);
        banner.push(st["boot"]["banner_ms"].as_f64().unwrap() - f);
        let r = st["rss_bytes"].as_f64().unwrap();
        let g = st["guest_resident_bytes"].as_f64().unwrap();
        rss.push(r / 1048576.0);
        overhead.push((r - g) / 1048576.0);
        vm.control(json!({"cmd": "stop"}));
        vm.wait_exit(TIMEOUT);
    }

    const N: u64 = 200_000;
    let mut rate = vec![];
    for _ in 0..RUNS {
        let mut vm = TestVm::start(VmOpts {
            cmdline: format!("probe.bench=pio:{N}"),
            disk_mib: None,
            framebuffer: false,
            ..VmOpts::probe("bench-pio")
        });
        let (b, e) = poll(&vm, |v| {
            Some((v["boot"]["banner_ms"].as_f64()?, v["boot"]["ended_ms"].as_f64()?))
        });
        rate.push(N as f64 / ((e - b) / 1000.0));
        vm.wait_exit(TIMEOUT);
    }

    let mut twenty = vec![];
    for _ in 0..3 {
        let t0 = Instant::now();
        for _ in 0..20 {
            let mut vm = TestVm::start(VmOpts {
                disk_mib: Some(1),
                ..VmOpts::probe("bench-20")
            });
            poll(&vm, |v| v["boot"]["banner_ms"].as_f64());
            vm.control(json!({"cmd": "stop"}));
            vm.wait_exit(TIMEOUT);
        }
        twenty.push(t0.elapsed().as_secs_f64() * 1000.0);
    }

    println!("VMM-bound (medians of {RUNS} runs):");
    println!(
        "  vmm main() -> first guest exit on BOOT_MARKER_PORT: {:8.2} ms",
        median(first_exit)
    );
    println!(
        "  spawn vmm -> banner seen by a status poll:         {:8.2} ms",
        median(spawn_to_banner)
    );
    println!(
        "  VMM RSS excluding resident guest memory (64 MiB):  {:8.2} MiB",
        median(overhead)
    );
    println!(
        "  VMM RSS total at banner (64 MiB guest):             {:8.2} MiB",
        median(rss)
    );
    println!(
        "  start + stop of 20 probe VMs in a row (median of 3): {:7.0} ms",
        median(twenty)
    );
    println!("Guest-instruction-bound (medians of {RUNS} runs):");
    println!(
        "  first guest instruction -> banner:                 {:8.2} ms",
        median(banner)
    );
    println!(
        "  PIO exits/s on POST_CODE_PORT ({N} exits):     {:10.0} /s",
        median(rate)
    );
    linux_boot();
}

/// `VMM_BENCH_LINUX=<runs>`: VMM start → busybox banner of the minimal Linux image, median of the runs.
fn linux_boot() {
    let Some(runs) = std::env::var("VMM_BENCH_LINUX")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    else {
        println!("  minimal Linux start -> busybox banner: not run (set VMM_BENCH_LINUX=<runs>)");
        return;
    };
    let Some(img) = linux_image("startup bench", "minimal") else {
        return;
    };
    const BANNER: &str = "cloud-portal guest: busybox init ready";
    let mut secs = vec![];
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut vm = TestVm::start(VmOpts {
            kernel: img.kernel.clone(),
            initrd: Some(img.initrd.clone()),
            cmdline: img.cmdline.clone(),
            memory_mib: 128,
            disk_mib: Some(16),
            extra: json!({"cpuid_mask": img.cpuid_mask, "virtio_discovery": img.virtio_discovery}),
            ..VmOpts::probe_like("bench-linux")
        });
        let serial = vm.serial();
        serial.wait_for(BANNER, Duration::from_secs(30 * 60));
        secs.push(t0.elapsed().as_secs_f64());
        vm.control(json!({"cmd": "stop"}));
        vm.wait_exit(TIMEOUT);
    }
    let emulated = if common::emulated_kvm_host() {
        " (emulated KVM: every guest instruction is emulated)"
    } else {
        ""
    };
    println!(
        "  minimal Linux start -> busybox banner{emulated}: {:.1} s (median of {runs} run{})",
        median(secs),
        if runs == 1 { "" } else { "s" }
    );
}
