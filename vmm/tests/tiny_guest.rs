//! Boot-path tests with hand-assembled guests (a few bytes of 64-bit code in a minimal ELF): they
//! need no guest toolchain and run in milliseconds even on emulated KVM.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};
use serde_json::json;

/// Wraps `code` in an ELF64 executable loaded and entered at 0x100000 + 120.
fn write_elf(path: &Path, code: &[u8]) {
    const BASE: u64 = 0x10_0000;
    const HDRS: u64 = 64 + 56;
    let total = HDRS + code.len() as u64;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + HDRS).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, BASE, BASE, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(code);
    std::fs::write(path, e).unwrap();
}

#[rustfmt::skip]
const HELLO_ECHO_POWEROFF: &[u8] = &[
    0x66, 0xba, 0x01, 0x06, 0xb0, 0x01, 0xee,       // out BOOT_MARKER_PORT, 1
    0x66, 0xba, 0xf8, 0x03,                         // mov dx, 0x3f8
    0xb0, b'H', 0xee, 0xb0, b'i', 0xee, 0xb0, b'\n', 0xee,
    0x66, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xf7, // wait: LSR & DATA_READY
    0x66, 0xba, 0xf8, 0x03, 0xec, 0xee,             // echo one byte
    0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee,       // out POWER_PORT, (5 << 2) | SLP_EN
    0xf4, 0xeb, 0xfd,                               // hlt loop
];

#[test]
fn hand_assembled_guest_prints_echoes_and_powers_off() {
    if !kvm_or_skip("hand_assembled_guest_prints_echoes_and_powers_off") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("hello.elf");
    write_elf(&elf, HELLO_ECHO_POWEROFF);
    let mut vm = TestVm::start(VmOpts {
        kernel: elf,
        disk_mib: None,
        framebuffer: false,
        ..VmOpts::probe_like("tiny")
    });
    let mut serial = vm.serial();
    serial.wait_for("Hi\n", TIMEOUT);
    let status = vm.control(json!({"cmd": "status"}));
    assert_eq!(status["state"], "running");
    assert!(status["boot"]["first_exit_ms"].as_f64().is_some(), "{status}");
    serial.send_line("x");
    serial.wait_for("Hi\nx", TIMEOUT);
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
}

#[test]
fn triple_fault_exits_with_its_own_code() {
    if !kvm_or_skip("triple_fault_exits_with_its_own_code") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("ud2.elf");
    write_elf(&elf, &[0x0f, 0x0b]); // ud2 with no usable IDT: #UD -> #GP -> #DF -> shutdown
    let mut vm = TestVm::start(VmOpts {
        kernel: elf,
        disk_mib: None,
        framebuffer: false,
        ..VmOpts::probe_like("ud2")
    });
    assert_eq!(
        vm.wait_exit(TIMEOUT),
        vmm::exit_codes::EXIT_TRIPLE_FAULT,
        "stderr:\n{}",
        vm.stderr()
    );
    assert!(vm.stderr().contains("triple fault"));
}

#[test]
fn sigterm_stops_a_halted_guest_cleanly() {
    if !kvm_or_skip("sigterm_stops_a_halted_guest_cleanly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("hlt.elf");
    // Boot marker, then halt with interrupts off: the vCPU sleeps inside KVM_RUN.
    write_elf(
        &elf,
        &[0x66, 0xba, 0x01, 0x06, 0xb0, 0x01, 0xee, 0xf4, 0xeb, 0xfd],
    );
    let mut vm = TestVm::start(VmOpts {
        kernel: elf,
        disk_mib: None,
        framebuffer: false,
        ..VmOpts::probe_like("hlt")
    });
    let deadline = std::time::Instant::now() + TIMEOUT;
    while vm.control(json!({"cmd": "status"}))["boot"]["first_exit_ms"].is_null() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(vm.child.id() as i32, libc::SIGTERM) };
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
    assert!(!vm.files().serial().exists(), "socket left behind");
}
