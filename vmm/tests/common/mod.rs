//! Shared helpers for the VMM integration tests: find /dev/kvm, build the probe guest once, spawn
//! the real `vmm` binary in a temporary run directory and talk to its sockets (the control socket through
//! the portal's own client, `vmm_api::control::client`).
#![allow(dead_code, clippy::unwrap_used)] // shared test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod frames;
pub mod gso;
pub mod netns;

use serde_json::{json, Value};
use vmm_api::control::client::Client;
use vmm_api::control::Request;
use vmm_api::run_dir::RunDir;

/// Generous: guest instructions run thousands of times slower on emulated KVM hosts.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the tests can run VMs here; prints a loud SKIP otherwise.
pub fn kvm_or_skip(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        true
    } else {
        eprintln!("SKIP: {test}: /dev/kvm is absent");
        false
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The probe guest ELF (`PROBE_GUEST_ELF` overrides), (re)built with cargo once per test binary so a stale
/// guest is never tested (a no-op build costs well under a second).
pub fn probe_guest() -> PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        if let Some(p) = std::env::var_os("PROBE_GUEST_ELF") {
            return PathBuf::from(p);
        }
        let dir = manifest_dir().join("probe-guest");
        let elf = dir.join("target/x86_64-unknown-none/release/probe-guest");
        // Serialise builds across test binaries running at the same time.
        let lock_path = std::env::temp_dir().join("vmm-probe-guest-build.lock");
        let lock = std::fs::File::create(&lock_path).expect("create build lock");
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "--release",
                    "--target",
                    "x86_64-unknown-none",
                    "--manifest-path",
                ])
                .arg(dir.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(dir.join("target"))
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("run cargo for the probe guest");
            assert!(status.success(), "probe guest build failed");
        }
        drop(lock);
        elf
    })
    .clone()
}

/// True when /dev/kvm is served by a software instruction emulator (kvm_pvm on these development hosts):
/// KVM on hardware needs VT-x or AMD-V, so a CPU without `vmx`/`svm` means emulated guest execution.
pub fn emulated_kvm_host() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    !hw || Path::new("/sys/module/kvm_pvm").exists()
}

/// One image of guest/out/manifest.json (written by guest/build.sh), paths made absolute.
pub struct LinuxImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The image's cmdline, plus the manifest's `emulated_host_extra_cmdline` on emulated KVM hosts.
    pub cmdline: String,
    /// CPUID bits to hide (the `clearcpuid=` numbers of the extra cmdline) on emulated KVM hosts.
    pub cpuid_mask: Vec<u32>,
    pub virtio_discovery: String,
}

/// The guest image `name` from `GUEST_OUT` (default: the repository's guest/out), or None with a loud
/// SKIP line when the images have not been built (`guest/build.sh`).
pub fn linux_image(test: &str, name: &str) -> Option<LinuxImage> {
    let repo = manifest_dir().join("..");
    let out = std::env::var_os("GUEST_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("guest/out"));
    let manifest = out.join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        eprintln!(
            "SKIP: {test}: {} not found: build the guest images with guest/build.sh",
            manifest.display()
        );
        return None;
    };
    let m: Value = serde_json::from_str(&text).unwrap();
    let Some(img) = m["images"].as_array().unwrap().iter().find(|i| i["name"] == name) else {
        eprintln!("SKIP: {test}: no image {name:?} in {}", manifest.display());
        return None;
    };
    // Manifest paths are relative to the repository root (guest/out/...); resolve them in `out`.
    let resolve = |field: &str| out.join(Path::new(img[field].as_str().unwrap()).file_name().unwrap());
    let (kernel, initrd) = (resolve("kernel"), resolve("initrd"));
    if !kernel.exists() || !initrd.exists() {
        eprintln!(
            "SKIP: {test}: {} or {} missing: run guest/build.sh",
            kernel.display(),
            initrd.display()
        );
        return None;
    }
    let mut cmdline = img["cmdline"].as_str().unwrap().to_string();
    let mut cpuid_mask = vec![];
    if emulated_kvm_host() {
        let extra = m["emulated_host_extra_cmdline"].as_str().unwrap_or_default();
        cmdline = format!("{cmdline} {extra}");
        cpuid_mask = extra
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("clearcpuid="))
            .flat_map(|l| l.split(',').map(|n| n.parse::<u32>().unwrap()))
            .collect();
    }
    Some(LinuxImage {
        kernel,
        initrd,
        cmdline,
        cpuid_mask,
        virtio_discovery: img["virtio_mmio_discovery"]
            .as_str()
            .unwrap_or("cmdline")
            .to_string(),
    })
}

/// Collects everything a serial.sock client receives.
pub struct SerialClient {
    stream: UnixStream,
    buf: Arc<Mutex<Vec<u8>>>,
}

impl SerialClient {
    /// Connects, also when the socket's file is there a moment before the VMM listens on it (`bind`
    /// creates the file, `listen` follows): refused connections are retried for a bounded while.
    pub fn connect(path: &Path) -> SerialClient {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("connect serial.sock: {e}"),
            }
        };
        let mut reader = stream.try_clone().unwrap();
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        SerialClient { stream, buf }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` has been received `count` times in total.
    pub fn wait_for_n(&self, needle: &str, count: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text();
            if t.matches(needle).count() >= count {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} x{count}; serial so far:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_n(needle, 1, timeout)
    }

    /// Types a command line (CR-terminated, like a terminal).
    pub fn send_line(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r").as_bytes())
            .expect("write serial");
    }

    /// Sends `line` and returns the guest's one-line result that starts with `result_prefix`.
    pub fn command(&mut self, line: &str, result_prefix: &str) -> String {
        self.command_one_of(line, &[result_prefix])
    }

    /// Sends `line` and returns the guest's first result line that starts with one of `prefixes`. Lines the
    /// guest prints meanwhile for other reasons (e.g. its diagnostics after the banner) are passed over.
    pub fn command_one_of(&mut self, line: &str, prefixes: &[&str]) -> String {
        let before = self.mark();
        self.send_line(line);
        self.result_since(before, prefixes, TIMEOUT)
    }

    /// Where the output received so far ends: pass it to [`SerialClient::result_since`].
    pub fn mark(&self) -> usize {
        self.text().len()
    }

    /// The first line starting with one of `prefixes` after the first line received since `mark` (the
    /// echo of the command typed there): for commands that run long, whose answer is awaited without
    /// typing anything more.
    pub fn result_since(&self, mark: usize, prefixes: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text();
            let new = &t[mark.min(t.len())..];
            // Only complete lines: the guest may be in the middle of printing the last one.
            let complete = &new[..new.rfind("\r\n").unwrap_or(0)];
            if let Some(l) = complete
                .split("\r\n")
                .skip(1)
                .find(|l| prefixes.iter().any(|p| l.starts_with(p)))
            {
                return l.to_string();
            }
            assert!(Instant::now() < deadline, "no {prefixes:?} line; got:\n{new}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `vmm` process with its temporary run directory.
pub struct TestVm {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub run_dir: PathBuf,
    pub stderr: Arc<Mutex<String>>,
}

/// Options for `TestVm::start`.
pub struct VmOpts {
    pub name: &'static str,
    pub kernel: PathBuf,
    pub cmdline: String,
    pub disk_mib: Option<u64>,
    pub framebuffer: bool,
    pub memory_mib: u64,
    pub initrd: Option<PathBuf>,
    /// A disk image to attach instead of a fresh zeroed one (`disk_mib` is then ignored).
    pub disk_image: Option<PathBuf>,
    /// Further config fields merged over the defaults (cpuid_mask, virtio_discovery, framebuffer, ...).
    pub extra: Value,
    /// Network cards: (MAC, MTU, TAP descriptor), passed to the VMM at descriptors 4, 5, ...
    pub nics: Vec<(String, u16, std::os::fd::OwnedFd)>,
}

impl VmOpts {
    /// The probe guest with a 1 MiB disk and a 640x480 framebuffer.
    pub fn probe(name: &'static str) -> VmOpts {
        VmOpts {
            kernel: probe_guest(),
            ..Self::probe_like(name)
        }
    }

    /// Same defaults, kernel left for the caller to set.
    pub fn probe_like(name: &'static str) -> VmOpts {
        VmOpts {
            name,
            kernel: PathBuf::new(),
            cmdline: String::new(),
            disk_mib: Some(1),
            framebuffer: true,
            memory_mib: 64,
            initrd: None,
            disk_image: None,
            extra: json!({}),
            nics: Vec::new(),
        }
    }
}

impl TestVm {
    pub fn start(opts: VmOpts) -> TestVm {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let mut disks = vec![];
        if let Some(image) = &opts.disk_image {
            disks.push(json!({"path": image, "read_only": false, "serial": format!("{}-disk", opts.name)}));
        } else if let Some(mib) = opts.disk_mib {
            let disk = dir.path().join("disk.img");
            std::fs::File::create(&disk).unwrap().set_len(mib << 20).unwrap();
            disks.push(json!({"path": disk, "read_only": false, "serial": format!("{}-disk", opts.name)}));
        }
        let mut cfg = json!({
            "vm_id": opts.name, "vcpus": 1, "memory_mib": opts.memory_mib, "kernel": opts.kernel,
            "cmdline": opts.cmdline, "disks": disks, "run_dir": run_dir,
        });
        if opts.framebuffer {
            cfg["framebuffer"] = json!({"width": 640, "height": 480});
        }
        if let Some(initrd) = &opts.initrd {
            cfg["initrd"] = json!(initrd);
        }
        if let Some(extra) = opts.extra.as_object() {
            for (k, v) in extra {
                cfg[k] = v.clone();
            }
        }
        let mut fds = Vec::new();
        let mut nics = Vec::new();
        for (i, (mac, mtu, fd)) in opts.nics.into_iter().enumerate() {
            let child_fd = vmm_api::config::MIN_TAP_FD + i as i32;
            nics.push(json!({"mac": mac, "mtu": mtu, "tap_fd": child_fd}));
            fds.push(command_fds::FdMapping {
                parent_fd: fd,
                child_fd,
            });
        }
        if !nics.is_empty() {
            cfg["nics"] = json!(nics);
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmm"));
        command_fds::CommandFdExt::fd_mappings(&mut command, fds).unwrap();
        let mut child = command
            .arg("--config-json")
            .arg(cfg.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vmm");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let s = stderr.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(&mut pipe);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                s.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let vm = TestVm {
            child,
            dir,
            run_dir,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let files = vm.files();
        while !files.serial().exists() || !files.control().exists() {
            assert!(
                Instant::now() < deadline,
                "vmm sockets did not appear; stderr:\n{}",
                vm.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        vm
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The names inside the run directory.
    pub fn files(&self) -> RunDir {
        RunDir::new(&self.run_dir)
    }

    pub fn serial(&self) -> SerialClient {
        SerialClient::connect(&self.files().serial())
    }

    pub fn disk_path(&self) -> PathBuf {
        self.dir.path().join("disk.img")
    }

    /// One control request; panics on transport errors. Refusals are answers (`"ok": false`).
    pub fn control(&self, req: Value) -> Value {
        self.try_control(req)
            .unwrap_or_else(|e| panic!("control: {e}; stderr:\n{}", self.stderr()))
    }

    /// One control request, written and answered as JSON for the tests' convenience; the exchange itself
    /// is typed (`vmm_api::control`).
    pub fn try_control(&self, req: Value) -> std::io::Result<Value> {
        let req: Request = serde_json::from_value(req).map_err(std::io::Error::other)?;
        let answer = Client::of(&self.files())
            .with_timeout(TIMEOUT)
            .exchange_blocking(&req)
            .map_err(|e| std::io::Error::other(vmm_api::error_chain(&e)))?;
        serde_json::to_value(answer).map_err(std::io::Error::other)
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                if st.code().is_none() {
                    eprintln!("vmm ended by {st}; stderr:\n{}", self.stderr());
                }
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("vmm did not exit; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls status until the process exits; returns (exit code, last state seen).
    pub fn wait_exit_watching_state(&mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(v) = self.try_control(json!({"cmd": "status"})) {
                last = v["state"].as_str().unwrap_or_default().to_string();
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), last);
            }
            assert!(
                Instant::now() < deadline,
                "vmm did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
