//! The probe guest idles like a real guest: by default it halts until an interrupt (COM1 receive,
//! virtio-input) wakes it, so an idle probe VM costs a fraction of the vCPU time of one that polls
//! (`probe.idle=poll`), and serial input still wakes it at once.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{kvm_or_skip, SerialClient, TestVm, VmOpts, TIMEOUT};
use serde_json::json;

const BANNER: &str = "PROBE-GUEST READY";
/// Long enough for the 1 s safety tick to fire at least once in interrupt mode.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

fn vcpu_ms(vm: &TestVm) -> u64 {
    vm.control(json!({"cmd": "status"}))["vcpu_time_ms"]
        .as_u64()
        .unwrap()
}

/// The whole VMM process (vCPU, device and socket threads): the host CPU an idle VM costs.
fn process_ms(vm: &TestVm) -> u64 {
    vm.control(json!({"cmd": "status"}))["process_cpu_ms"]
        .as_u64()
        .unwrap()
}

/// Boots a probe with `cmdline`, waits until it answers (so start-up work is done), then returns the
/// vCPU milliseconds spent over `IDLE_WINDOW` of idling, and the VM with its serial client.
fn idle_cost(name: &'static str, cmdline: &str) -> (u64, TestVm, SerialClient) {
    let vm = TestVm::start(VmOpts {
        cmdline: cmdline.to_string(),
        disk_mib: None,
        framebuffer: false,
        ..VmOpts::probe(name)
    });
    let mut serial = vm.serial();
    serial.wait_for(BANNER, TIMEOUT);
    serial.command("echo settled", "settled");
    let (before, process_before) = (vcpu_ms(&vm), process_ms(&vm));
    let start = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let spent = vcpu_ms(&vm) - before;
    let process = process_ms(&vm) - process_before;
    eprintln!(
        "{name}: {spent} ms of vCPU time, {process} ms of VMM process CPU time in {:?} idle",
        start.elapsed()
    );
    (spent, vm, serial)
}

#[test]
fn idle_probe_halts_until_input_and_polling_stays_available() {
    if !kvm_or_skip("idle_probe_halts_until_input_and_polling_stays_available") {
        return;
    }
    let (halted, vm, mut serial) = idle_cost("probe-idle-irq", "");
    // Serial input wakes the halted guest: the line is answered, and the answer counts device interrupts.
    let ticks = serial.command("ticks", "TICKS ");
    let irqs: u64 = ticks
        .split_whitespace()
        .skip_while(|w| *w != "irqs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no irq count in {ticks:?}"));
    assert!(irqs > 0, "serial input did not raise an interrupt: {ticks:?}");
    assert_eq!(vm.control(json!({"cmd": "stop"}))["ok"], true);
    drop(vm);

    // The former default, a 10 ms tick, for comparison in the output only.
    let (ticking, vm, _serial) = idle_cost("probe-idle-timer", "probe.idle=timer");
    assert_eq!(vm.control(json!({"cmd": "stop"}))["ok"], true);
    drop(vm);

    let (polling, vm, _serial) = idle_cost("probe-idle-poll", "probe.idle=poll");
    assert_eq!(vm.control(json!({"cmd": "stop"}))["ok"], true);
    assert!(
        halted * 4 < polling,
        "an idle halted probe used {halted} ms of vCPU time, a polling one {polling} ms"
    );
    eprintln!(
        "idle vCPU ms over {IDLE_WINDOW:?}: interrupts {halted}, 10 ms tick {ticking}, polling {polling}"
    );
}
