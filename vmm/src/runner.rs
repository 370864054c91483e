//! The VMM's main loop: build the machine, run the vCPU threads, wait for the event that ends the
//! boot (poweroff, reboot, crash, stop) and act on it.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;

use crate::builder::{self, HostFiles, Machine, RuntimeHandles};
use crate::config::VmConfig;
use crate::control::{self, ControlCtx};
use crate::devices::serial::SerialHub;
use crate::exit_codes;
use crate::lock;
use crate::memory::{self, MemoryError};
use crate::state::{RunState, Shared, VmEvent};
use crate::threads::{self, ThreadError, ThreadKind};
use crate::vstate::vcpu::{self, VcpuContext};

/// Errors that prevent the VMM from starting at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Failed to create the run directory {0}")]
    RunDir(std::path::PathBuf, #[source] std::io::Error),
    #[error("Failed to open the console log {0}")]
    ConsoleLog(std::path::PathBuf, #[source] std::io::Error),
    #[error("Failed to open /dev/kvm")]
    OpenKvm(#[source] kvm_ioctls::Error),
    #[error("Failed to set up the vCPU kick signal")]
    Signal(#[source] vcpu::VcpuError),
    #[error("Failed to start the sockets")]
    Sockets(#[source] control::ControlError),
    #[error("Failed to spawn a vCPU thread")]
    SpawnVcpu(#[source] ThreadError),
    #[error("Failed to give the vCPUs their view of guest memory")]
    VcpuMemory(#[source] MemoryError),
    #[error("Failed to set up SIGTERM/SIGINT handling")]
    Signals(#[source] std::io::Error),
    #[error("Failed to start the signal thread")]
    SpawnSignals(#[source] ThreadError),
    #[error("Failed to start the VNC server")]
    Vnc(#[source] crate::rfb::RfbError),
    #[error("Failed to filter the main thread's system calls")]
    Seccomp(#[source] ThreadError),
}

/// SIGTERM and SIGINT become a forced stop (exit code 0, sockets removed): they are blocked in every
/// thread and received by one thread with sigwait. Must run before any other thread is spawned.
fn handle_termination_signals(shared: &Arc<Shared>) -> Result<(), RunError> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
    }
    // SAFETY: blocks the signals for this thread (inherited by threads spawned later).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(RunError::Signals(std::io::Error::from_raw_os_error(rc)));
    }
    let shared = shared.clone();
    threads::spawn(ThreadKind::Signals, "signals", move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and blocked in this thread; `sig` is a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            tracing::info!(sig, "termination signal: stopping the VM");
            shared.request(VmEvent::ForceStop);
        }
    })
    .map(|_| ())
    .map_err(RunError::SpawnSignals)
}

/// Everything the VMM reaches outside its run directory, opened before a jail is entered
/// (ARCHITECTURE.md, "The jail"): `/dev/kvm`, the host files (kernel, initrd, disks, entropy source, TAPs;
/// a failure there is reported as a crashed VM once the sockets are up) and the console log.
pub struct HostAccess {
    kvm: Kvm,
    files: Result<HostFiles, builder::BuildError>,
    log_file: Option<std::fs::File>,
}

impl HostAccess {
    /// Opens it all; `taps` are the cards' descriptors, claimed at the start of `main`
    /// (`builder::claim_inherited_taps`).
    pub fn open(cfg: &VmConfig, taps: Vec<OwnedFd>) -> Result<Self, RunError> {
        let kvm = Kvm::new().map_err(RunError::OpenKvm)?;
        let log_file = match &cfg.console_log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| RunError::ConsoleLog(p.clone(), e))?,
            ),
            None => None,
        };
        // Opened once: every boot, including in-process reboots, reads the same descriptors.
        let files = HostFiles::open(cfg, taps);
        Ok(Self { kvm, files, log_file })
    }
}

/// Runs the VM described by `cfg` until it ends; returns the process exit code.
pub fn run(cfg: VmConfig, host: HostAccess, started: Instant) -> i32 {
    match run_inner(cfg, host, started) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "VMM failed");
            exit_codes::EXIT_VMM_ERROR
        }
    }
}

/// "outer: inner: innermost" for logs (shared with the portal, which words crash reasons alike).
pub use vmm_api::error_chain;

fn run_inner(cfg: VmConfig, host: HostAccess, started: Instant) -> Result<i32, RunError> {
    vcpu::install_kick_handler().map_err(RunError::Signal)?;
    std::fs::create_dir_all(&cfg.run_dir).map_err(|e| RunError::RunDir(cfg.run_dir.clone(), e))?;
    let HostAccess { kvm, files, log_file } = host;
    let shared = Arc::new(Shared::new(&cfg.vm_id, started));
    handle_termination_signals(&shared)?;
    if let Some(secs) = std::env::var("VMM_DEBUG_SAMPLE_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
    {
        shared.start_register_sampling(Duration::from_secs_f64(secs));
    }
    let hub = SerialHub::new(log_file);
    let runtime = Arc::new(Mutex::new(RuntimeHandles::default()));
    let ctx = Arc::new(ControlCtx::new(
        shared.clone(),
        hub.clone(),
        runtime.clone(),
        cfg.memory_mib,
    ));
    let sockets =
        control::start(&ctx, &cfg.control_socket(), &cfg.serial_socket()).map_err(RunError::Sockets)?;
    let vnc = match cfg.framebuffer {
        Some(fb) => Some(start_vnc(&cfg, &runtime, (fb.width, fb.height))?),
        None => None,
    };
    let code = match files {
        Ok(files) => {
            // Setup is done: from here on the main thread only builds boots from what is open.
            threads::enter_kind(ThreadKind::Main).map_err(RunError::Seccomp)?;
            boot_loop(&kvm, &cfg, &files, &shared, &hub, &runtime)?
        }
        Err(e) => {
            shared.begin_boot(false);
            tracing::error!(error = %error_chain(&e), "failed to build the VM");
            shared.set_state(RunState::Crashed);
            exit_codes::EXIT_VMM_ERROR
        }
    };
    // Give control clients a moment to read the final state before the sockets disappear.
    std::thread::sleep(Duration::from_millis(100));
    sockets.remove();
    if let Some(vnc) = vnc {
        vnc.stop();
        remove_socket(&cfg.vnc_socket());
    }
    Ok(code)
}

/// Builds and runs one machine per boot until the VM stops or crashes; returns the exit code.
fn boot_loop(
    kvm: &Kvm,
    cfg: &VmConfig,
    files: &HostFiles,
    shared: &Arc<Shared>,
    hub: &Arc<SerialHub>,
    runtime: &Mutex<RuntimeHandles>,
) -> Result<i32, RunError> {
    let mut reboot = false;
    loop {
        shared.begin_boot(reboot);
        let machine = match builder::build_for_boot(kvm, cfg, files, shared, hub) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "failed to build the VM");
                shared.set_state(RunState::Crashed);
                return Ok(exit_codes::EXIT_VMM_ERROR);
            }
        };
        match run_machine(machine, shared, runtime)? {
            VmEvent::Poweroff | VmEvent::ForceStop => {
                shared.set_state(RunState::Stopped);
                return Ok(exit_codes::EXIT_OK);
            }
            VmEvent::Reboot => {
                shared.set_state(RunState::Rebooting);
                reboot = true;
            }
            VmEvent::Crash { code, reason } => {
                tracing::error!(code, name = exit_codes::name(code), %reason, "guest crashed");
                shared.set_state(RunState::Crashed);
                return Ok(code);
            }
        }
    }
}

/// Runs the vCPUs of one boot until the event that ends it; the machine is gone when this returns.
fn run_machine(
    machine: Machine,
    shared: &Arc<Shared>,
    runtime: &Mutex<RuntimeHandles>,
) -> Result<VmEvent, RunError> {
    let Machine {
        vm,
        mem,
        vcpus,
        pio,
        mmio,
        handles,
    } = machine;
    // `VcpuContext::mem` is still untracked memory (`memory::untracked_view`).
    // SAFETY: the view lives only in `vctx`, which the vCPU threads share. All of them are joined
    // below, on the spawn-error path too, and `vctx` is dropped before `mem`, which owns the mappings.
    let vcpu_mem = unsafe { memory::untracked_view(&mem) }.map_err(RunError::VcpuMemory)?;
    *lock(runtime) = handles;
    let vctx = Arc::new(VcpuContext {
        pio,
        mmio,
        shared: shared.clone(),
        mem: vcpu_mem,
    });
    let mut threads = Vec::new();
    let mut spawn_error = None;
    for v in vcpus {
        let vctx = vctx.clone();
        match threads::spawn(ThreadKind::Vcpu, format!("vcpu{}", v.id), move || v.run(&vctx)) {
            Ok(t) => threads.push(t),
            Err(e) => {
                spawn_error = Some(e);
                break;
            }
        }
    }
    let ended = match spawn_error {
        None => {
            if shared.state() != RunState::Paused {
                shared.set_state(RunState::Running);
            }
            tracing::info!(reboots = shared.reboots(), "guest running");
            let event = shared.wait_event();
            tracing::info!(?event, "guest run ended");
            Ok(event)
        }
        Some(e) => Err(RunError::SpawnVcpu(e)),
    };
    shared.stop_vcpus();
    while threads.iter().any(|t| !t.is_finished()) {
        shared.kick_vcpus();
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in threads {
        let _ = t.join();
    }
    *lock(runtime) = RuntimeHandles::default();
    drop(vctx);
    drop(vm);
    drop(mem);
    ended
}

/// Serves the framebuffer as RFB on `vnc.sock`, following the devices of whichever boot is current: viewers
/// stay connected across guest reboots. The server is the only reader of the framebuffer's dirty log.
fn start_vnc(
    cfg: &VmConfig,
    runtime: &Arc<Mutex<RuntimeHandles>>,
    size: (u32, u32),
) -> Result<crate::rfb::RfbServer, RunError> {
    use crate::rfb::{glue, RfbServer};
    let frame = Arc::new(glue::RuntimeFrame::new(runtime.clone(), size));
    let input = Arc::new(glue::RuntimeInput::new(runtime.clone()));
    let server = RfbServer::new(frame, input, &cfg.vm_id).map_err(RunError::Vnc)?;
    let listener = RfbServer::bind(&cfg.vnc_socket()).map_err(RunError::Vnc)?;
    server.spawn(listener).map_err(RunError::Vnc)?;
    Ok(server)
}

/// Removes a stale socket file; ignores "not found".
pub fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
}
