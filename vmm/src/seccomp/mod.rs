//! Per-thread seccomp filters (issue 15, ARCHITECTURE.md "The jail"): every thread of the VMM runs under
//! the allow-list of its [`ThreadKind`] (`rules`), built with seccompiler and installed by
//! `threads::spawn` before the thread runs the caller's code; the main thread installs its own after
//! setup, before the guest runs (`runner`).
//!
//! The mode comes from the VM config (`vmm_api::seccomp::SeccompMode`): `kill` (default) traps a refused
//! call into the SIGSYS handler (`sigsys`), which records it for the portal and ends the VMM with
//! `EXIT_SECCOMP`; `log` lets the kernel log it and go on; `off` installs nothing. Everything a filter
//! needs is prepared in [`init`] (the programs compiled, the record file opened): installing one later is
//! a single system call with no allocation, and nothing opens a path after start that a filter would have
//! to allow.

mod ioctls;
pub mod rules;
mod sigsys;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use vmm_api::run_dir::RunDir;
pub use vmm_api::seccomp::SeccompMode;

use crate::threads::ThreadKind;

/// Errors building or installing filters.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("Failed to build an allow-list")]
    Build(#[source] seccompiler::BackendError),
    #[error("Failed to compile the {0} filter")]
    Compile(&'static str, #[source] seccompiler::BackendError),
    #[error("Failed to install the {0} filter")]
    Install(&'static str, #[source] seccompiler::Error),
    #[error("Failed to open the violation record {0}")]
    Record(PathBuf, #[source] std::io::Error),
    #[error("Failed to install the SIGSYS handler")]
    Handler(#[source] std::io::Error),
}

/// The compiled program of each kind, in `ThreadKind::ALL` order.
struct Compiled {
    mode: SeccompMode,
    programs: Vec<(ThreadKind, BpfProgram)>,
}

static COMPILED: OnceLock<Compiled> = OnceLock::new();

/// The mode the filters were set up in (`off` before [`init`], e.g. in unit tests).
pub fn mode() -> SeccompMode {
    COMPILED.get().map_or(SeccompMode::Off, |c| c.mode)
}

/// The BPF program of `kind` in `mode` (`None` for `off`).
pub fn program(kind: ThreadKind, mode: SeccompMode) -> Result<Option<BpfProgram>, SeccompError> {
    let mismatch = match mode {
        SeccompMode::Kill => SeccompAction::Trap,
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::Off => return Ok(None),
    };
    let filter = SeccompFilter::new(
        rules::rules(kind)?,
        mismatch,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(SeccompError::Build)?;
    BpfProgram::try_from(filter)
        .map(Some)
        .map_err(|e| SeccompError::Compile(kind.name(), e))
}

/// How many system calls the allow-list of `kind` names (some only with certain arguments).
pub fn allowed_calls(kind: ThreadKind) -> Result<usize, SeccompError> {
    Ok(rules::rules(kind)?.len())
}

/// Prepares the filters for the whole process, once, before any thread is spawned: in `kill` mode opens
/// the violation record (`run_id=` line first) and installs the SIGSYS handler; compiles every kind's
/// program.
pub fn init(mode: SeccompMode, dir: &RunDir, run_id: Option<&str>) -> Result<(), SeccompError> {
    if mode != SeccompMode::Off {
        // One malloc arena for every thread. glibc opens files lazily for its other arenas: it sizes
        // their number from /sys/devices/system/cpu/online when a thread first needs one, and the first
        // time such an arena's heap shrinks it reads /proc/sys/vm/overcommit_memory — in whatever
        // thread frees, under that thread's filter (a VNC client thread ending killed a VMM so). The
        // main arena needs neither; the VMM allocates little outside setup, so sharing it costs nothing
        // measurable.
        // SAFETY: mallopt only sets a tunable of the allocator.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
    if mode == SeccompMode::Kill {
        let path = dir.seccomp_violation();
        let record = std::fs::write(&path, format!("run_id={}\n", run_id.unwrap_or("")))
            .and_then(|()| std::fs::OpenOptions::new().append(true).open(&path))
            .map_err(|e| SeccompError::Record(path.clone(), e))?;
        sigsys::install(record).map_err(SeccompError::Handler)?;
    }
    let mut programs = Vec::new();
    for kind in ThreadKind::ALL {
        if let Some(p) = program(kind, mode)? {
            programs.push((kind, p));
        }
    }
    if mode == SeccompMode::Off {
        tracing::warn!(
            mode = mode.as_str(),
            "seccomp filters off: threads run unfiltered"
        );
    } else {
        let counts: Vec<String> = ThreadKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), allowed_calls(*k).unwrap_or(0)))
            .collect();
        tracing::info!(mode = mode.as_str(), allowed = %counts.join(" "), "seccomp filters ready");
    }
    // A second init (tests) keeps the first: threads already run under its programs.
    let _ = COMPILED.set(Compiled { mode, programs });
    Ok(())
}

/// Installs the filter of `kind` on the calling thread (nothing in `off` mode or before [`init`]).
pub fn apply(kind: ThreadKind) -> Result<(), SeccompError> {
    let Some(compiled) = COMPILED.get() else {
        return Ok(());
    };
    match compiled.programs.iter().find(|(k, _)| *k == kind) {
        Some((_, program)) => {
            seccompiler::apply_filter(program).map_err(|e| SeccompError::Install(kind.name(), e))
        }
        None => Ok(()),
    }
}
