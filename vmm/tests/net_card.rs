//! A `vmm` process with network cards on TAPs in a namespace the test made: the guest sees the card, the
//! control socket reports its counters, and the VMM refuses what is not a TAP it inherited. (Frames
//! through a guest: `probe_net.rs`; through Linux with SSH: `linux_boot.rs`.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::netns::TestTap;
use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};

const BANNER: &str = "PROBE-GUEST READY";

#[test]
fn the_guest_sees_the_card_and_status_reports_it() {
    if !kvm_or_skip("the_guest_sees_the_card_and_status_reports_it") {
        return;
    }
    let mut net = TestTap::new("tapcard0", "10.0.3.1/24", 1500).unwrap();
    let mut opts = VmOpts::probe("net-card");
    opts.nics = vec![("52:54:00:00:03:02".into(), 1500, net.take_fd().unwrap())];
    let mut vm = TestVm::start(opts);
    let serial = vm.serial();
    let text = serial.wait_for(BANNER, TIMEOUT);
    assert!(
        text.contains("type 1 (net)"),
        "the probe lists no net device:\n{text}"
    );
    let status = vm.control(serde_json::json!({"cmd": "status"}));
    let nic = &status["nics"][0];
    assert_eq!(nic["mac"], "52:54:00:00:03:02", "{status}");
    assert_eq!(nic["tap"], "tapcard0");
    assert_eq!(nic["drops"]["tx_spoofed_source"], 0);
    vm.control(serde_json::json!({"cmd": "stop"}));
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
}

/// Runs a VMM to its end with `fd` passed as descriptor 4; returns its stderr.
fn run_to_end(name: &str, tap_fd: i32, fd: Option<std::os::fd::OwnedFd>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({
        "vm_id": name, "vcpus": 1, "memory_mib": 64, "kernel": common::probe_guest(),
        "run_dir": dir.path().join("run"),
        "nics": [{"mac": "52:54:00:00:03:04", "tap_fd": tap_fd}],
    });
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vmm"));
    if let Some(fd) = fd {
        command_fds::CommandFdExt::fd_mappings(
            &mut cmd,
            vec![command_fds::FdMapping {
                parent_fd: fd,
                child_fd: 4,
            }],
        )
        .unwrap();
    }
    let out = cmd.arg("--config-json").arg(cfg.to_string()).output().unwrap();
    assert!(!out.status.success(), "the VMM ran with a bad card");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_descriptor_that_is_not_an_inherited_tap_is_refused_at_start() {
    if !kvm_or_skip("a_descriptor_that_is_not_an_inherited_tap_is_refused_at_start") {
        return;
    }
    let file = std::fs::File::open("/dev/null").unwrap();
    let stderr = run_to_end("net-not-tap", 4, Some(file.into()));
    assert!(stderr.contains("is not a usable TAP"), "stderr:\n{stderr}");
    let stderr = run_to_end("net-no-fd", 77, None);
    assert!(stderr.contains("did not inherit"), "stderr:\n{stderr}");
}
