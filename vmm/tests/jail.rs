//! The jail with the real `vmm` binary and the probe guest (root and /dev/kvm required; skipped loudly
//! otherwise): a jailed VMM runs as its own uid with no capabilities and `no_new_privs`, sees only its
//! run directory and its own processes, sits in a cgroup with its limits, and can reach neither another
//! VM's disk through its view nor, as its uid, from the host's view.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};
use serde_json::json;
use vmm_api::cgroup::{Hierarchy, CGROUP_ROOT};
use vmm_api::jail::{JailConfig, Limits};

const PARENT: &str = "vmm-tests";

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        true
    } else {
        eprintln!("SKIP: {test}: the jail needs root");
        false
    }
}

/// A jail for test VM `n` of this test process (uids from 250000 up, far from the portal's defaults).
fn jail(n: u32) -> JailConfig {
    let uid = 250_000 + (std::process::id() % 1000) * 10 + n;
    JailConfig {
        uid,
        gid: uid,
        cgroup: format!("{PARENT}/jail-{}-{n}", std::process::id()),
        limits: Limits::for_vm(1, 64),
    }
}

fn start_jailed(name: &'static str, jail: &JailConfig) -> TestVm {
    let vm = TestVm::start(VmOpts {
        extra: json!({ "jail": jail }),
        ..VmOpts::probe(name)
    });
    let deadline = Instant::now() + TIMEOUT;
    while vm.control(json!({"cmd": "status"}))["boot"]["banner_ms"]
        .as_f64()
        .is_none()
    {
        assert!(Instant::now() < deadline, "no banner; stderr:\n{}", vm.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    vm
}

fn status_field(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Forks a child that joins `pid`'s mount namespace (its root becomes the jail's), takes `uid`, and tries
/// to open `inside` (a path in that view) and then, from outside (`host_fd`, a descriptor of the host's
/// root opened before), `outside`; returns the two errnos (0: opened).
fn open_as_escaped_vmm(pid: u32, uid: u32, inside: &Path, outside: &Path) -> (i32, i32) {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).unwrap();
    let host_root = std::fs::File::open("/").unwrap();
    let inside = CString::new(inside.as_os_str().as_encoded_bytes()).unwrap();
    let outside = CString::new(outside.strip_prefix("/").unwrap().as_os_str().as_encoded_bytes()).unwrap();
    let (rd, wr) = {
        let mut p = [0; 2];
        // SAFETY: `p` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        (p[0], p[1])
    };
    // SAFETY: the child only makes async-signal-safe system calls and `_exit`s.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        // SAFETY: plain system calls on descriptors and C strings that live until `_exit`.
        unsafe {
            let try_open = |dirfd: i32, path: &CString| -> i32 {
                let fd = libc::openat(dirfd, path.as_ptr(), libc::O_RDONLY);
                if fd >= 0 {
                    0
                } else {
                    *libc::__errno_location()
                }
            };
            let ok = libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) == 0
                && libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(uid, uid, uid) == 0
                && libc::setresuid(uid, uid, uid) == 0;
            let result: [i32; 2] = if ok {
                [
                    try_open(libc::AT_FDCWD, &inside),
                    try_open(host_root.as_raw_fd(), &outside),
                ]
            } else {
                [-1, -1]
            };
            libc::write(wr, result.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end; reading 8 bytes into an 8-byte buffer; reaping our child.
    unsafe {
        libc::close(wr);
        let mut result = [0i32; 2];
        assert_eq!(libc::read(rd, result.as_mut_ptr().cast(), 8), 8);
        libc::close(rd);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        (result[0], result[1])
    }
}

#[test]
fn a_jailed_vmm_runs_unprivileged_in_its_own_view_and_cgroup_and_cannot_reach_another_vms_disk() {
    let test = "a_jailed_vmm_runs_unprivileged_in_its_own_view_and_cgroup_and_cannot_reach_another_vms_disk";
    if !kvm_or_skip(test) || !root_or_skip(test) {
        return;
    }
    let cgroups = Hierarchy::detect(Path::new(CGROUP_ROOT)).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    cgroups.prepare_parent(PARENT, cpus).unwrap();
    let (ja, jb) = (jail(1), jail(2));
    let mut a = start_jailed("jail-a", &ja);
    let b = start_jailed("jail-b", &jb);
    let pid = a.child.id();

    // Identity: its own uid and gid, no capability in any set, no way to gain one.
    assert_eq!(status_field(pid, "Uid:"), format!("{0}\t{0}\t{0}\t{0}", ja.uid));
    assert_eq!(status_field(pid, "Gid:"), format!("{0}\t{0}\t{0}\t{0}", ja.gid));
    assert_eq!(status_field(pid, "Groups:"), "");
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(pid, set), "0000000000000000", "{set}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    // Every thread (vCPU, sockets, signals) has the same credentials.
    for task in names(Path::new(&format!("/proc/{pid}/task"))) {
        let st = std::fs::read_to_string(format!("/proc/{pid}/task/{task}/status")).unwrap();
        assert!(
            st.contains(&format!("Uid:\t{0}\t{0}\t{0}\t{0}", ja.uid)),
            "thread {task}"
        );
        assert!(st.contains("CapEff:\t0000000000000000"), "thread {task}");
    }

    // View: the jail's root holds the run directory and /proc, nothing of the host.
    let root = Path::new(&format!("/proc/{pid}/root")).to_path_buf();
    assert_eq!(names(&root), vec!["proc", "vm"]);
    let vm_dir = names(&root.join("vm"));
    for f in ["control.sock", "serial.sock", "vnc.sock", "vmm.lock", "vmm.pid"] {
        assert!(
            vm_dir.contains(&f.to_string()),
            "{f} missing from /vm: {vm_dir:?}"
        );
    }
    // The run directory is the VM's group's alone, sticky: root's files in it stay root's.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&a.run_dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, ja.gid, 0o1770)
    );

    // Another VM's disk: not in A's view at all, and A's uid cannot open it from the host's view either
    // (the portal gives each VM's disks to its uid, mode 0600, as here).
    let b_disk = b.disk_path();
    std::os::unix::fs::chown(&b_disk, Some(jb.uid), Some(jb.gid)).unwrap();
    std::fs::set_permissions(&b_disk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (inside, outside) = open_as_escaped_vmm(pid, ja.uid, &b_disk, &b_disk);
    assert_eq!(inside, libc::ENOENT, "B's disk must not exist in A's view");
    assert_eq!(
        outside,
        libc::EACCES,
        "A's uid must not open B's disk from the host"
    );
    let b_run = open_as_escaped_vmm(pid, ja.uid, Path::new("/vm/vmm.pid"), &b.run_dir.join("vmm.pid"));
    assert_eq!(
        b_run,
        (0, libc::EACCES),
        "A reads its own run directory, never B's"
    );

    // Limits: the cgroup holds the process and carries the VM's limits.
    let in_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(in_cgroup.contains(&format!("/{}", ja.cgroup)), "{in_cgroup}");
    // On v1 the VMM's one thread moved itself (`tasks`), before it started any other: so every thread
    // (vCPU, sockets, signals, spawner) is in the VM's cgroup in every controller, and the cgroup counts
    // the process as its member.
    let want = format!("/{}", ja.cgroup);
    for task in names(Path::new(&format!("/proc/{pid}/task"))) {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{task}/cgroup")) else {
            continue; // the thread ended meanwhile
        };
        for controller in ["cpu", "memory", "pids"] {
            let at = text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
                (ctl.split(',').any(|c| c == controller) || (ctl.is_empty() && cgroups.version() == 2))
                    .then_some(path)
            });
            assert_eq!(at, Some(want.as_str()), "thread {task}, {controller}:\n{text}");
        }
    }
    for dir in cgroups.dirs(&ja.cgroup) {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string(), "{}", dir.display());
    }
    // Memory the guest touched is charged to the VM's cgroup (so its limit covers guest RAM): the cgroup
    // holds at least the guest's resident pages.
    let guest_resident = a.control(json!({"cmd": "status"}))["guest_resident_bytes"]
        .as_u64()
        .unwrap();
    let usage_file = match cgroups.version() {
        1 => "memory.usage_in_bytes",
        _ => "memory.current",
    };
    let usage: u64 = std::fs::read_to_string(
        cgroups
            .dirs(&ja.cgroup)
            .iter()
            .find(|d| d.join(usage_file).exists())
            .unwrap()
            .join(usage_file),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(
        guest_resident > 0 && usage >= guest_resident,
        "the VM's cgroup is charged {usage} bytes, the guest has {guest_resident} resident"
    );
    for (file, value) in cgroups.limit_files(&ja.cgroup, &ja.limits) {
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            value,
            "{}",
            file.display()
        );
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max core file size") && l.contains(" 0 ")),
        "{limits}"
    );

    // The guest still works jailed: stop it through the socket; it records its exit in its run directory.
    a.control(json!({"cmd": "stop"}));
    assert_eq!(a.wait_exit(TIMEOUT), 0, "stderr:\n{}", a.stderr());
    assert!(a.files().exit_status().exists());
    cgroups.remove(&ja.cgroup).unwrap();
    assert!(cgroups.dirs(&ja.cgroup).iter().all(|d| !d.exists()));
    drop(b);
    // Killed, B's cgroup empties and goes too.
    let deadline = Instant::now() + TIMEOUT;
    while cgroups.remove(&jb.cgroup).is_err() {
        assert!(Instant::now() < deadline, "B's cgroup stayed busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_jail_that_cannot_be_built_stops_the_vmm_before_the_guest_runs() {
    let test = "a_jail_that_cannot_be_built_stops_the_vmm_before_the_guest_runs";
    if !kvm_or_skip(test) || !root_or_skip(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    // The cgroup's parent does not exist: the jail cannot be built.
    let jail = JailConfig {
        cgroup: format!("vmm-tests-absent-{}/vm", std::process::id()),
        ..jail(9)
    };
    let cfg = json!({
        "vm_id": "no-jail", "vcpus": 1, "memory_mib": 64, "kernel": common::probe_guest(),
        "run_dir": run_dir, "jail": jail,
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vmm"))
        .arg("--config-json")
        .arg(cfg.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(vmm_api::exit_codes::EXIT_VMM_ERROR),
        "{stderr}"
    );
    assert!(stderr.contains("cannot build the jail"), "{stderr}");
    assert!(
        !stderr.contains("guest running"),
        "the guest ran unjailed:\n{stderr}"
    );
    assert!(!run_dir.join("control.sock").exists());
    let status = std::fs::read_to_string(vmm_api::run_dir::RunDir::new(&run_dir).exit_status()).unwrap();
    assert!(
        status.contains(&vmm_api::exit_codes::EXIT_VMM_ERROR.to_string()),
        "{status}"
    );
}
