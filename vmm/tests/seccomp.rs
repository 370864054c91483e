//! Seccomp on a running VMM (issue 15): every thread of the process runs under a filter, a forbidden
//! system call ends the VMM with `EXIT_SECCOMP` and leaves a record naming the call and the thread, and
//! `off` really installs nothing.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};
use serde_json::json;
use vmm_api::exit_codes::EXIT_SECCOMP;
use vmm_api::seccomp::Violation;

const BANNER: &str = "PROBE-GUEST READY";

/// (thread name, `Seccomp:` value) of every thread of `pid`.
fn seccomp_of_threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let mode = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        out.push((comm.trim().to_string(), mode));
    }
    out
}

#[test]
fn every_thread_of_a_running_vmm_is_filtered() {
    if !kvm_or_skip("every_thread_of_a_running_vmm_is_filtered") {
        return;
    }
    let vm = TestVm::start(VmOpts::probe("seccomp-threads"));
    let serial = vm.serial();
    serial.wait_for(BANNER, TIMEOUT);
    // A VNC viewer and a control client keep their connection threads alive while we look.
    let _viewer = UnixStream::connect(vm.files().vnc()).unwrap();
    let status = vm.control(json!({"cmd": "status"}));
    assert_eq!(status["state"], "running", "{status}");
    let pid = status["pid"].as_u64().unwrap() as u32;
    // The main thread installs its filter before the vCPUs start; wait for every thread to show up.
    let deadline = Instant::now() + TIMEOUT;
    let threads = loop {
        let threads = seccomp_of_threads(pid);
        let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
        if ["vmm", "spawner", "signals", "control", "serial", "vnc", "vcpu0"]
            .iter()
            .all(|n| names.contains(n))
            && names.iter().any(|n| n.starts_with("serial-"))
            && names.contains(&"vnc-client")
        {
            break threads;
        }
        assert!(Instant::now() < deadline, "threads missing: {names:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    for (name, mode) in &threads {
        assert_eq!(
            mode, "2",
            "thread {name} is not filtered (Seccomp: {mode}); all: {threads:?}"
        );
    }
    assert!(
        vm.stderr().contains("seccomp filters ready") && vm.stderr().contains("\"kill\""),
        "no start-up line with the mode:\n{}",
        vm.stderr()
    );
    // Status (memory and CPU figures read from /proc) still works under the filters.
    assert!(
        vm.control(json!({"cmd": "status"}))["rss_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn a_forbidden_call_ends_the_vmm_and_names_the_call_and_thread() {
    if !kvm_or_skip("a_forbidden_call_ends_the_vmm_and_names_the_call_and_thread") {
        return;
    }
    let mut vm = TestVm::start(VmOpts {
        framebuffer: false,
        ..VmOpts::probe("seccomp-kill")
    });
    vm.serial().wait_for(BANNER, TIMEOUT);
    // The connection's thread dies with the process: no answer comes back.
    let answer = vm.try_control(json!({"cmd": "debug-forbidden-syscall"}));
    assert!(answer.is_err(), "the VMM answered: {answer:?}");
    assert_eq!(vm.wait_exit(TIMEOUT), EXIT_SECCOMP, "stderr:\n{}", vm.stderr());
    let run_id = ""; // started by hand: no run id
    let v = Violation::read(&vm.run_dir, run_id).expect("no violation recorded");
    assert_eq!(
        v.reason(),
        "seccomp violation: syscall 59 (execve) in a control thread"
    );
    assert!(
        vm.stderr()
            .contains("seccomp violation: syscall 59 (execve) in a control thread"),
        "not in the log:\n{}",
        vm.stderr()
    );
}

#[test]
fn with_seccomp_off_nothing_is_filtered_and_the_call_just_fails() {
    if !kvm_or_skip("with_seccomp_off_nothing_is_filtered_and_the_call_just_fails") {
        return;
    }
    let mut vm = TestVm::start(VmOpts {
        framebuffer: false,
        extra: json!({"seccomp": "off"}),
        ..VmOpts::probe("seccomp-off")
    });
    vm.serial().wait_for(BANNER, TIMEOUT);
    let answer = vm.control(json!({"cmd": "debug-forbidden-syscall"}));
    assert_eq!(answer["ok"], false, "{answer}");
    let pid = vm.control(json!({"cmd": "status"}))["pid"].as_u64().unwrap() as u32;
    let threads = seccomp_of_threads(pid);
    assert!(threads.iter().all(|(_, m)| m == "0"), "{threads:?}");
    assert_eq!(vm.control(json!({"cmd": "stop"}))["ok"], true);
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
}
