//! A disk's I/O counters in the control socket's `status`: the probe guest's block reads and writes show
//! up as requests and bytes on the disk they went to, which the portal's metrics sampler relies on.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};
use serde_json::json;

#[test]
fn status_counts_guest_block_reads_and_writes() {
    if !kvm_or_skip("status_counts_guest_block_reads_and_writes") {
        return;
    }
    let vm = TestVm::start(VmOpts {
        framebuffer: false,
        ..VmOpts::probe("probe-disk-io")
    });
    let mut serial = vm.serial();
    serial.wait_for("PROBE-GUEST READY", TIMEOUT);
    let disk = |vm: &TestVm| vm.control(json!({"cmd": "status"}))["disks"][0].clone();
    let before = disk(&vm);
    assert_eq!(before["serial"], "probe-disk-io-disk", "{before}");

    serial.command("blk-write 3 counted", "OK");
    serial.command("blk-write 4 twice", "OK");
    serial.command("blk-read 3", "DATA counted");
    let after = disk(&vm);
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!(delta("write_requests"), 2, "{before} -> {after}");
    assert_eq!(delta("write_bytes"), 1024, "{before} -> {after}");
    assert_eq!(delta("read_requests"), 1, "{before} -> {after}");
    assert_eq!(delta("read_bytes"), 512, "{before} -> {after}");
    assert_eq!(vm.control(json!({"cmd": "stop"}))["ok"], true);
}
