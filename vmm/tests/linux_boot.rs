//! The minimal Linux guest of guest/build.sh (Debian linux-source 6.1 microVM kernel + busybox-static
//! initramfs, image "minimal" of guest/out/manifest.json) booted by the real `vmm` binary: the busybox
//! banner on serial, the virtio disk mounted by /init, the portal's config disk applied (hostname, SSH
//! keys, a user-data script run), the SSH server up with its host key on the console, a shell command
//! answered over serial.sock, the framebuffer console drawn, no user process crashed, and `poweroff`
//! ending the VMM with exit code 0. With a network card on a TAP in a namespace the test made (issue 13):
//! the address from `ip=`, `ping` answered and `ssh root@guest 'echo ok'` with the config disk's key,
//! the host key checked against the one the console showed; without `ip=`, a DHCP lease from busybox
//! udhcpd in that namespace, taken in the background.
//!
//! On hardware KVM this takes about a second. On the emulated KVM of the development hosts (kvm_pvm,
//! see FACTS.md) every guest instruction is emulated and the boot takes minutes; the test prints the
//! measured times. Skips loudly without /dev/kvm or without built images.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::TestTap;
use common::{kvm_or_skip, linux_image, SerialClient, TestVm, VmOpts};
use serde_json::json;

const BANNER: &str = "cloud-portal guest: busybox init ready";
/// Generous for emulated hosts (measured there: see the README); hardware KVM needs seconds.
const BOOT_TIMEOUT: Duration = Duration::from_secs(25 * 60);
const STEP_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DISK_TEXT: &str = "written by the host into the ext4 disk";
/// What /init prints once dropbear listens, and before it the host key in `ssh`'s own notation.
const SSHD_READY: &str = "init: sshd listening on port 22";
const HOST_KEY_LINE: &str = "init: ssh host key ED25519 SHA256:";
const HOST_PUBKEY_LINE: &str = "init: ssh host public key ";

/// A 16 MiB ext4 image holding /hello.txt, or None when mkfs.ext4 is not installed.
fn ext4_disk(dir: &Path) -> Option<std::path::PathBuf> {
    let root = dir.join("disk-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), format!("{DISK_TEXT}\n")).unwrap();
    let img = dir.join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&img)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(img)
}

/// A config disk as the portal writes it (server/src/vm/disk.rs): a ustar archive of meta-data.json,
/// user-data and ssh/authorized_keys on the raw device, padded to whole sectors.
fn config_disk(dir: &Path, authorized_keys: &str) -> std::path::PathBuf {
    let root = dir.join("config-root");
    std::fs::create_dir_all(root.join("ssh")).unwrap();
    let meta = json!({"instance-id": "boot-test-id", "local-hostname": "boot-test", "tenant-id": "t"});
    std::fs::write(
        root.join("meta-data.json"),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
    std::fs::write(
        root.join("user-data"),
        "#!/bin/sh\necho user-data-says-$((6*7))\n",
    )
    .unwrap();
    std::fs::write(root.join("ssh/authorized_keys"), authorized_keys).unwrap();
    let tar = dir.join("config.tar");
    let ok = Command::new("tar")
        .args(["--format=ustar", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .args(["meta-data.json", "user-data", "ssh/authorized_keys"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    let len = std::fs::metadata(&tar).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tar)
        .unwrap()
        .set_len(len.div_ceil(512) * 512)
        .unwrap();
    tar
}

/// Pixels of a binary PPM that are not black.
fn lit_pixels(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let header_end = data.windows(4).position(|w| w == b"255\n").unwrap() + 4;
    data[header_end..]
        .chunks(3)
        .filter(|p| p.iter().any(|&c| c > 0x20))
        .count()
}

/// Waits until serial output contains `needle`; fails early with the whole story if the VMM exits.
fn wait(vm: &mut TestVm, serial: &SerialClient, needle: &str, timeout: Duration) {
    let started = Instant::now();
    let deadline = started + timeout;
    while !serial.text().contains(needle) {
        if let Ok(Some(st)) = vm.child.try_wait() {
            panic!(
                "vmm exited ({st}) before {needle:?}; serial:\n{}\nstderr:\n{}",
                serial.text(),
                vm.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within {timeout:?}; serial:\n{}\nstderr:\n{}",
            serial.text(),
            vm.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 11, the guest half: on kvm_pvm, user code runs natively and (on AMD hosts) uses the host's
/// AVX-512 registers, which only an XSAVE kernel switches between processes. `noxsave` in the
/// emulated-host command line brought back the crashes the boot test above sees only sometimes.
#[test]
fn emulated_host_cmdline_keeps_xsave() {
    let out = std::env::var_os("GUEST_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/out"));
    let manifest = out.join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        eprintln!(
            "SKIP: emulated_host_cmdline_keeps_xsave: {} not built",
            manifest.display()
        );
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let extra = m["emulated_host_extra_cmdline"].as_str().unwrap_or_default();
    assert!(
        !extra.split_whitespace().any(|w| w == "noxsave"),
        "guest/build.sh's emulated-host cmdline disables XSAVE: {extra}"
    );
}

#[test]
fn minimal_linux_boots_to_busybox_and_answers_on_serial() {
    let test = "minimal_linux_boots_to_busybox_and_answers_on_serial";
    if !kvm_or_skip(test) {
        return;
    }
    let Some(img) = linux_image(test, "minimal") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let disk = ext4_disk(scratch.path());
    if disk.is_none() {
        eprintln!("note: mkfs.ext4 not found: booting with a blank disk");
    }
    let root_disk = disk.clone().unwrap_or_else(|| {
        let blank = scratch.path().join("blank.img");
        std::fs::File::create(&blank).unwrap().set_len(16 << 20).unwrap();
        blank
    });
    let disks = json!([
        {"path": root_disk, "read_only": false, "serial": "root"},
        {"path": config_disk(scratch.path(), "ssh-ed25519 AAAAtest user@host\n"), "read_only": true, "serial": "config"},
    ]);
    let started = Instant::now();
    let mut vm = TestVm::start(VmOpts {
        kernel: img.kernel,
        initrd: Some(img.initrd),
        cmdline: img.cmdline,
        memory_mib: 128,
        extra: json!({
            "cpuid_mask": img.cpuid_mask,
            "virtio_discovery": img.virtio_discovery,
            "disks": disks,
        }),
        ..VmOpts::probe_like("linux-minimal")
    });
    let mut serial = vm.serial();
    wait(&mut vm, &serial, BANNER, BOOT_TIMEOUT);
    let banner_at = started.elapsed();
    eprintln!(
        "linux-minimal: vmm start -> busybox banner: {:.1} s",
        banner_at.as_secs_f64()
    );
    if disk.is_some() {
        wait(
            &mut vm,
            &serial,
            "init: mounted /dev/vda (ext4) at /mnt",
            STEP_TIMEOUT,
        );
    } else {
        wait(&mut vm, &serial, "init: /dev/vda has no filesystem", STEP_TIMEOUT);
    }

    // The config disk: hostname and keys applied, the user-data script run.
    wait(&mut vm, &serial, "init: config disk /dev/vd", STEP_TIMEOUT);
    wait(
        &mut vm,
        &serial,
        "init: ssh keys installed for root",
        STEP_TIMEOUT,
    );
    wait(&mut vm, &serial, "user-data: user-data-says-42", STEP_TIMEOUT);
    // The line the portal's boot progress waits for (server/src/vm/boot_rule.rs): after the config disk.
    wait(&mut vm, &serial, "cloud-portal: ready", STEP_TIMEOUT);
    let text = serial.text();
    let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
    assert!(at("init: ssh keys installed for root") < at("cloud-portal: ready"));

    // No network card: one quiet line, and the SSH server still comes up, its host key on the console.
    wait(&mut vm, &serial, "init: no eth0", STEP_TIMEOUT);
    wait(&mut vm, &serial, HOST_KEY_LINE, STEP_TIMEOUT);
    wait(&mut vm, &serial, SSHD_READY, STEP_TIMEOUT);
    eprintln!(
        "linux-minimal: vmm start -> sshd listening: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The serial shell answers (the typed line is echoed verbatim; only the shell prints "sum=42").
    // The login shell's prompt (PS1 '\h:\w\$ ' from /etc/profile) shows the config disk's hostname.
    wait(&mut vm, &serial, "boot-test:", STEP_TIMEOUT);
    serial.send_line(
        "echo sum=$((6*7)); cat /mnt/hello.txt 2>/dev/null || echo no-disk-file; cat /root/.ssh/authorized_keys",
    );
    wait(&mut vm, &serial, "sum=42", STEP_TIMEOUT);
    if disk.is_some() {
        wait(&mut vm, &serial, &format!("{DISK_TEXT}\r\n"), STEP_TIMEOUT);
    }
    wait(
        &mut vm,
        &serial,
        "ssh-ed25519 AAAAtest user@host\r\n",
        STEP_TIMEOUT,
    );
    // No user process died on the way (issue 11: busybox processes started while others ran and died
    // of another process's AVX-512 registers; the console shows only some of them). The pattern and
    // the end marker are spelled so that the echoed command line matches neither.
    serial.send_line("dmesg | grep 'segfault[ ]at'; echo segfault-check-$((40+2))");
    wait(&mut vm, &serial, "segfault-check-42", STEP_TIMEOUT);
    let text = serial.text();
    assert!(
        !text.contains("segfault at") && !text.contains("Segmentation fault"),
        "a guest process crashed; serial:\n{text}\nstderr:\n{}",
        vm.stderr()
    );
    eprintln!(
        "linux-minimal: vmm start -> shell answered: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The framebuffer console (tty1: banner and shell prompt) drew text.
    let shot = scratch.path().join("screen.ppm");
    let r = vm.control(json!({"cmd": "screendump", "path": shot}));
    assert_eq!(r["ok"], true, "{r}");
    let lit = lit_pixels(&shot);
    assert!(lit > 200, "framebuffer console drew only {lit} lit pixels");

    serial.send_line("poweroff");
    let (code, last_state) = vm.wait_exit_watching_state(STEP_TIMEOUT);
    assert_eq!(code, 0, "serial:\n{}\nstderr:\n{}", serial.text(), vm.stderr());
    assert_eq!(last_state, "stopped");
    eprintln!(
        "linux-minimal: vmm start -> poweroff exit 0: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs `cmd` to its end or kills it after `timeout`; None when it was killed.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Option<std::process::Output> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(child.wait_with_output().unwrap())
}

/// Pings `addr` from the test's namespace until it answers; the first answers wait for ARP and a slow
/// guest, so this retries within the step's bound.
fn ping_until_answered(net: &TestTap, addr: &str, vm: &mut TestVm, serial: &SerialClient) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let mut ping = net.ns.command("ping");
        ping.args(["-c", "1", "-W", "10", addr]);
        if run_bounded(ping, Duration::from_secs(30)).is_some_and(|o| o.status.success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no ping answer from {addr}; serial:\n{}\nstderr:\n{}",
            serial.text(),
            vm.stderr()
        );
        assert!(vm.child.try_wait().unwrap().is_none(), "vmm exited");
    }
}

/// The text after `prefix` on the first console line that has it.
fn console_value(text: &str, prefix: &str) -> String {
    let line = text.lines().find(|l| l.contains(prefix)).unwrap();
    line[line.find(prefix).unwrap() + prefix.len()..]
        .trim()
        .to_string()
}

/// Issue 13: the minimal image on a virtio-net card whose TAP sits in a network namespace this test made
/// (`10.0.5.1/24` on the host side), configured by the kernel from `ip=`. The guest answers ping, and
/// `ssh root@10.0.5.2 'echo ok'` with the key from the config disk prints `ok`, checked against the host
/// key the console showed (so the fingerprint line a user compares is the real one); a key that is
/// not authorized is refused and no password method is offered.
#[test]
fn minimal_linux_on_a_tap_answers_ping_and_ssh() {
    let test = "minimal_linux_on_a_tap_answers_ping_and_ssh";
    if !kvm_or_skip(test) {
        return;
    }
    let Some(img) = linux_image(test, "minimal") else {
        return;
    };
    for tool in ["ip", "ping", "ssh", "ssh-keygen"] {
        if Command::new(tool).arg("-V").output().is_err() {
            eprintln!("SKIP: {test}: `{tool}` not installed (scripts/install-deps.sh)");
            return;
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let key = scratch.path().join("id_ed25519");
    let stranger = scratch.path().join("stranger");
    for k in [&key, &stranger] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "boot-test", "-f"])
            .arg(k)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen failed");
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let disks = json!([
        {"path": config_disk(scratch.path(), &public), "read_only": true, "serial": "config"},
    ]);
    let mut net = TestTap::new("tapboot0", "10.0.5.1/24", 1500).unwrap();
    let started = Instant::now();
    let mut vm = TestVm::start(VmOpts {
        kernel: img.kernel,
        initrd: Some(img.initrd),
        cmdline: format!("{} ip=10.0.5.2::10.0.5.1:255.255.255.0::eth0:off", img.cmdline),
        memory_mib: 128,
        disk_mib: None,
        extra: json!({
            "cpuid_mask": img.cpuid_mask,
            "virtio_discovery": img.virtio_discovery,
            "disks": disks,
        }),
        nics: vec![("52:54:00:00:05:02".into(), 1500, net.take_fd().unwrap())],
        ..VmOpts::probe_like("linux-net")
    });
    let mut serial = vm.serial();
    wait(&mut vm, &serial, BANNER, BOOT_TIMEOUT);
    wait(
        &mut vm,
        &serial,
        "init: eth0 10.0.5.2/24 (kernel, ip=)",
        STEP_TIMEOUT,
    );
    wait(&mut vm, &serial, SSHD_READY, STEP_TIMEOUT);
    eprintln!(
        "linux-net: vmm start -> sshd listening: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    ping_until_answered(&net, "10.0.5.2", &mut vm, &serial);
    eprintln!(
        "linux-net: vmm start -> ping answered: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The host key the console showed, as a known_hosts entry; its fingerprint is the one printed.
    let text = serial.text();
    let host_pub = console_value(&text, HOST_PUBKEY_LINE);
    let known_hosts = scratch.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("10.0.5.2 {host_pub}\n")).unwrap();
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&known_hosts)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let fingerprint = format!("SHA256:{}", console_value(&text, HOST_KEY_LINE));
    assert!(
        listed.contains(&fingerprint),
        "console fingerprint {fingerprint} is not that of the console's public key: {listed}"
    );

    let ssh = |identity: &Path| {
        let mut cmd = net.ns.command("ssh");
        cmd.arg("-i")
            .arg(identity)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=120",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["root@10.0.5.2", "echo ok"]);
        run_bounded(cmd, STEP_TIMEOUT).expect("ssh did not finish")
    };
    let out = ssh(&key);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "ssh stderr: {}\nserial:\n{}\nvmm stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        serial.text(),
        vm.stderr()
    );
    eprintln!(
        "linux-net: vmm start -> ssh 'echo ok' answered: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // A key the config disk did not carry is refused, and the server offers no password method.
    let out = ssh(&stranger);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied (publickey)"),
        "an unknown key was not refused as expected: {err}"
    );

    serial.send_line("poweroff");
    let (code, _) = vm.wait_exit_watching_state(STEP_TIMEOUT);
    assert_eq!(code, 0, "serial:\n{}\nstderr:\n{}", serial.text(), vm.stderr());
}

/// Kills a helper process (the test's DHCP server) when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Without `ip=`, /init leaves eth0 to busybox udhcpc in the background: the boot goes on (the shell and
/// sshd do not wait for a lease), the lease from a DHCP server in the test's namespace (busybox udhcpd on
/// the TAP's host side) is reported on the console, and the guest answers ping at that address.
#[test]
fn minimal_linux_on_a_tap_without_ip_gets_a_dhcp_lease() {
    let test = "minimal_linux_on_a_tap_without_ip_gets_a_dhcp_lease";
    if !kvm_or_skip(test) {
        return;
    }
    let Some(img) = linux_image(test, "minimal") else {
        return;
    };
    for tool in ["ip", "ping", "busybox"] {
        if Command::new(tool).arg("--help").output().is_err() {
            eprintln!("SKIP: {test}: `{tool}` not installed (scripts/install-deps.sh)");
            return;
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let mut net = TestTap::new("tapdhcp0", "10.0.6.1/24", 1500).unwrap();
    let conf = scratch.path().join("udhcpd.conf");
    let dir = scratch.path().display();
    std::fs::write(scratch.path().join("leases"), "").unwrap();
    std::fs::write(
        &conf,
        format!(
            "start 10.0.6.50\nend 10.0.6.60\ninterface tapdhcp0\nlease_file {dir}/leases\n\
             pidfile {dir}/udhcpd.pid\nopt router 10.0.6.1\nopt subnet 255.255.255.0\nopt dns 10.0.6.1\n"
        ),
    )
    .unwrap();
    let _dhcpd = KillOnDrop(
        net.ns
            .command("busybox")
            .arg("udhcpd")
            .arg("-f")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let disks = json!([
        {"path": config_disk(scratch.path(), "ssh-ed25519 AAAAtest user@host\n"), "read_only": true, "serial": "config"},
    ]);
    let started = Instant::now();
    let mut vm = TestVm::start(VmOpts {
        kernel: img.kernel,
        initrd: Some(img.initrd),
        cmdline: img.cmdline,
        memory_mib: 128,
        disk_mib: None,
        extra: json!({
            "cpuid_mask": img.cpuid_mask,
            "virtio_discovery": img.virtio_discovery,
            "disks": disks,
        }),
        nics: vec![("52:54:00:00:06:02".into(), 1500, net.take_fd().unwrap())],
        ..VmOpts::probe_like("linux-dhcp")
    });
    let mut serial = vm.serial();
    wait(&mut vm, &serial, BANNER, BOOT_TIMEOUT);
    wait(
        &mut vm,
        &serial,
        "init: eth0: DHCP in the background",
        STEP_TIMEOUT,
    );
    wait(&mut vm, &serial, SSHD_READY, STEP_TIMEOUT);
    wait(&mut vm, &serial, "(DHCP, router 10.0.6.1)", STEP_TIMEOUT);
    eprintln!(
        "linux-dhcp: vmm start -> lease reported: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let lease = console_value(&serial.text(), "init: eth0 ");
    let addr = lease.split('/').next().unwrap().to_string();
    assert!(addr.starts_with("10.0.6."), "lease line: {lease}");
    ping_until_answered(&net, &addr, &mut vm, &serial);

    serial.send_line("poweroff");
    let (code, _) = vm.wait_exit_watching_state(STEP_TIMEOUT);
    assert_eq!(code, 0, "serial:\n{}\nstderr:\n{}", serial.text(), vm.stderr());
}
