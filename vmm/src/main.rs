//! `vmm --config <file.json> [--run-id <id>] [--lock-fd <n>]` or `vmm --config-json '<json>'`: runs one VM
//! until it stops.
//!
//! With a jail in its config (the portal always gives one unless `sandbox.mode = "off"`), it opens every
//! host file it needs and then builds its jail (`vmm::jail`) before any thread starts or the guest runs.
//!
//! Before anything else it makes the VM its own (see `vmm_api::run_dir`): the run lock — inherited from the
//! portal as descriptor `<n>`, or taken here when started by hand — and a lock on every disk. A VM or disk
//! that another VMM holds makes it exit with `EXIT_LOCKED` without touching the run directory.
//!
//! Logs go to stderr (`RUST_LOG` filters, default `info`), each line carrying the `vm_id`. The exit code
//! tells how the VM ended (see `vmm::exit_codes`), and is also written, with the run id, to
//! `<run_dir>/exit-status.json` so a supervisor that is not this process's parent (e.g. after a server
//! restart) learns it too.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use vmm::config::VmConfig;
use vmm::exit_codes;
use vmm::run_dir::{self, PidRecord, RunDir, RunLock};

const USAGE: &str = "usage: vmm --config <file.json> [--run-id <id>] [--lock-fd <n>] | --config-json <json>";

/// The command line, parsed.
struct Args {
    config: Result<VmConfig, vmm::config::ConfigError>,
    run_id: Option<String>,
    lock_fd: Option<RawFd>,
}

fn parse_args(args: &[String]) -> Option<Args> {
    let mut config = None;
    let mut run_id = None;
    let mut lock_fd = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--config" => config = Some(VmConfig::from_file(std::path::Path::new(value))),
            "--config-json" => config = Some(VmConfig::parse(value)),
            "--run-id" if !value.is_empty() => run_id = Some(value.clone()),
            // Descriptors 0-2 are stdio, never a lock.
            "--lock-fd" => lock_fd = Some(value.parse::<RawFd>().ok().filter(|fd| *fd > 2)?),
            _ => return None,
        }
    }
    Some(Args {
        config: config?,
        run_id,
        lock_fd,
    })
}

/// What this process holds while the VM runs: dropped (or released by the kernel) only at exit.
struct Claim {
    _run: RunLock,
    _disks: Vec<File>,
}

/// Takes the VM's run lock and its disks, or says why not.
fn claim(
    cfg: &VmConfig,
    run_id: Option<&str>,
    lock_fd: Option<RawFd>,
) -> Result<Claim, run_dir::RunDirError> {
    let dir = RunDir::new(&cfg.run_dir);
    std::fs::create_dir_all(dir.path())
        .map_err(|e| run_dir::RunDirError::Open(dir.path().to_path_buf(), e))?;
    let run = match lock_fd {
        Some(fd) => {
            // SAFETY: the portal maps its locked file onto this descriptor number for us (`--lock-fd`), and
            // nothing else in this process uses it: we take sole ownership here, once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            RunLock::inherit(File::from(owned), &dir)?
        }
        None => RunLock::try_acquire(&dir)?.ok_or_else(|| run_dir::RunDirError::Held(dir.lock()))?,
    };
    // A run id that is not the one in the lock file belongs to a start the portal has given up on.
    if let Some(id) = run_id {
        if dir.current_run_id().as_deref() != Some(id) {
            return Err(run_dir::RunDirError::Held(dir.lock()));
        }
    }
    let disks = cfg
        .disks
        .iter()
        .map(|d| run_dir::lock_disk(&d.path, d.read_only))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Claim {
        _run: run,
        _disks: disks,
    })
}

/// Ends a VMM that failed before the guest could run, recording why in the run directory.
fn fail_early(dir: &RunDir, run_id: Option<&str>, e: &dyn std::error::Error, what: &str) -> ! {
    tracing::error!(error = %vmm::runner::error_chain(e), "{what}");
    let code = exit_codes::EXIT_VMM_ERROR;
    if let Err(e) = exit_codes::write_status(&dir.exit_status(), code, run_id) {
        tracing::warn!(error = %e, "cannot record the exit status");
    }
    std::process::exit(code);
}

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(args) = parse_args(&args) else {
        eprintln!("{USAGE}");
        std::process::exit(exit_codes::EXIT_USAGE);
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cfg = match args.config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %vmm::runner::error_chain(&e), "invalid configuration");
            std::process::exit(exit_codes::EXIT_VMM_ERROR);
        }
    };
    let span = tracing::info_span!("vm", vm_id = %cfg.vm_id);
    let _entered = span.enter();
    // Before anything else is opened: see `claim_inherited_taps`.
    let taps = match vmm::builder::claim_inherited_taps(&cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %vmm::runner::error_chain(&e), "invalid configuration");
            std::process::exit(exit_codes::EXIT_VMM_ERROR);
        }
    };
    let run_id = args.run_id.as_deref();
    let _claim = match claim(&cfg, run_id, args.lock_fd) {
        Ok(c) => c,
        Err(e @ run_dir::RunDirError::Held(_)) => {
            tracing::error!(error = %e, "refusing to start: this VM or one of its disks has a VMM already");
            std::process::exit(exit_codes::EXIT_LOCKED);
        }
        Err(e) => {
            tracing::error!(error = %vmm::runner::error_chain(&e), "cannot claim the VM's run directory");
            std::process::exit(exit_codes::EXIT_VMM_ERROR);
        }
    };
    let dir = RunDir::new(&cfg.run_dir);
    // A stale file from an earlier run would tell the supervisor this run already ended.
    let _ = std::fs::remove_file(dir.exit_status());
    match PidRecord::of_self(run_id) {
        Some(record) => {
            if let Err(e) = record.write(&dir) {
                tracing::warn!(error = %vmm::runner::error_chain(&e), "cannot record the VMM's pid");
            }
        }
        None => tracing::warn!("cannot read this process's start time"),
    }
    let host = match vmm::runner::HostAccess::open(&cfg, taps) {
        Ok(h) => h,
        Err(e) => fail_early(&dir, run_id, &e, "cannot open the VM's host files"),
    };
    // Before the jail and any thread: the filters compiled, the violation record opened (at its host
    // path) and the SIGSYS handler in place.
    if let Err(e) = vmm::seccomp::init(cfg.seccomp, &dir, run_id) {
        fail_early(&dir, run_id, &e, "cannot set up the seccomp filters");
    }
    let mut cfg = cfg;
    // A config with a jail never runs the guest outside it. Built while the process has one thread.
    if let Some(jail) = cfg.jail.clone() {
        match vmm::jail::enter(&jail, &cfg.run_dir) {
            Ok(jailed) => cfg.run_dir = jailed.run_dir,
            Err(e) => fail_early(&dir, run_id, &e, "cannot build the jail"),
        }
    }
    // Every later thread is started by the spawner, which carries no filter of its own kind yet.
    if let Err(e) = vmm::threads::start_spawner() {
        let status = RunDir::new(&cfg.run_dir);
        fail_early(&status, run_id, &e, "cannot start the spawner thread");
    }
    let status_file = RunDir::new(&cfg.run_dir).exit_status();
    let code = vmm::runner::run(cfg, host, started);
    tracing::info!(code, name = exit_codes::name(code), "vmm exiting");
    // Written while the run lock is still held: whoever takes the lock next reads the final status.
    if let Err(e) = exit_codes::write_status(&status_file, code, run_id) {
        tracing::warn!(error = %e, path = %status_file.display(), "cannot record the exit status");
    }
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_any_order_and_refuse_junk() {
        assert!(parse_args(&strings(&[
            "--config-json",
            "{}",
            "--run-id",
            "r",
            "--lock-fd",
            "3"
        ]))
        .is_some_and(|a| a.run_id.as_deref() == Some("r") && a.lock_fd == Some(3)));
        assert!(parse_args(&strings(&["--lock-fd", "1", "--config-json", "{}"])).is_none());
        assert!(parse_args(&strings(&["--lock-fd", "x", "--config-json", "{}"])).is_none());
        assert!(
            parse_args(&strings(&["--run-id", "r"])).is_none(),
            "a config is required"
        );
        assert!(parse_args(&strings(&["--config"])).is_none());
        assert!(parse_args(&strings(&["--verbose", "1", "--config-json", "{}"])).is_none());
    }
}
