//! Seccomp figures (`cargo bench -p vmm --bench seccomp`): how many system calls each thread kind's
//! filter allows, next to Firecracker's (its VMM thread 50, its vCPU threads 27), the size of each BPF
//! program, and the median time to build every kind's program and to install one on a thread.
#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

use std::time::Instant;

use vmm::seccomp::{self, SeccompMode};
use vmm::threads::ThreadKind;

const RUNS: usize = 50;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn firecracker(kind: ThreadKind) -> &'static str {
    match kind {
        ThreadKind::Main => "50 (vmm)",
        ThreadKind::Vcpu => "27 (vcpu)",
        _ => "-",
    }
}

fn main() {
    println!(
        "{:<10} {:>8} {:>12} {:>14}",
        "thread", "syscalls", "BPF instrs", "Firecracker"
    );
    for kind in ThreadKind::ALL {
        let calls = seccomp::allowed_calls(kind).unwrap();
        let len = seccomp::program(kind, SeccompMode::Kill).unwrap().unwrap().len();
        println!(
            "{:<10} {calls:>8} {len:>12} {:>14}",
            kind.name(),
            firecracker(kind)
        );
    }
    let build: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for kind in ThreadKind::ALL {
                std::hint::black_box(seccomp::program(kind, SeccompMode::Kill).unwrap());
            }
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    // Installed in `log` mode (same program length as `kill`) on a throw-away thread: a filter cannot be
    // removed, and the bench harness is not a VMM thread.
    let vcpu = seccomp::program(ThreadKind::Vcpu, SeccompMode::Log)
        .unwrap()
        .unwrap();
    let install: Vec<f64> = (0..RUNS)
        .map(|_| {
            let p = vcpu.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                seccompiler::apply_filter(&p).unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .join()
            .unwrap()
        })
        .collect();
    println!(
        "median build of all {} programs: {:.0} µs; median install of one (vcpu): {:.1} µs ({RUNS} runs)",
        ThreadKind::ALL.len(),
        median(build),
        median(install)
    );
}
