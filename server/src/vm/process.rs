//! VMM processes: spawning one per VM in its own process group (so stopping the portal does not stop it)
//! with the VM's run lock handed down as an inherited descriptor, finding the one that holds a run lock,
//! waiting for a process that is not our child to end (pidfd), signalling it, and reading how it ended.
//!
//! A process is identified by its pid *and* its start time (`/proc/<pid>/stat` field 22, clock ticks since
//! boot), so a reused pid is never mistaken for our VMM after a restart.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use command_fds::{CommandFdExt, FdMapping};
use tokio::process::{Child, Command};
use vmm_api::exit_codes::{self, ExitStatus};
use vmm_api::run_dir::{self, PidRecord, RunDir, RunLock};
use vmm_api::seccomp::Violation;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Failed to open the VMM log {0}")]
    Log(PathBuf, #[source] std::io::Error),
    #[error("Failed to hand the run lock to the VMM")]
    Inherit(#[source] command_fds::FdMappingCollision),
    #[error("Failed to start the VMM {0}")]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("The VMM exited before it could be identified")]
    Vanished,
}

/// The descriptor number under which a VMM finds its inherited run lock.
const LOCK_FD: i32 = 3;

/// A VMM process we started or adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmmProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Starts `vmm --config <config> --run-id <id> --lock-fd 3` with stdout and stderr appended to the run
/// directory's log and `lock` inherited as descriptor 3: the lock passes to the child without a moment in
/// which nobody holds it, so a portal that dies here leaves either no VMM or one that holds the lock.
pub fn spawn(
    vmm_binary: &Path,
    dir: &RunDir,
    run_id: &str,
    lock: RunLock,
    taps: Vec<(i32, OwnedFd)>,
) -> Result<(Child, VmmProcess), ProcessError> {
    let log = dir.log();
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| ProcessError::Log(log.clone(), e))
    };
    let mut command = Command::new(vmm_binary);
    command
        .arg("--config")
        .arg(dir.config())
        .arg("--run-id")
        .arg(run_id)
        .arg("--lock-fd")
        .arg(LOCK_FD.to_string())
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        // Its own process group: Ctrl-C or a service manager stopping the portal does not reach the VM.
        .process_group(0)
        .kill_on_drop(false);
    let mut fds = vec![FdMapping {
        parent_fd: OwnedFd::from(lock.into_file()),
        child_fd: LOCK_FD,
    }];
    // The network cards' TAPs, at the descriptors the config names.
    fds.extend(
        taps.into_iter()
            .map(|(child_fd, parent_fd)| FdMapping { parent_fd, child_fd }),
    );
    command.fd_mappings(fds).map_err(ProcessError::Inherit)?;
    let child = command
        .spawn()
        .map_err(|e| ProcessError::Spawn(vmm_binary.to_path_buf(), e))?;
    // `command` (and with it the portal's copy of the lock) is dropped here: the child's copy holds it.
    drop(command);
    let pid = child.id().ok_or(ProcessError::Vanished)?;
    let pid = i32::try_from(pid).map_err(|_| ProcessError::Vanished)?;
    let start_ticks = start_ticks(pid).ok_or(ProcessError::Vanished)?;
    Ok((child, VmmProcess { pid, start_ticks }))
}

/// The start time of a live process, in clock ticks since boot.
pub fn start_ticks(pid: i32) -> Option<u64> {
    run_dir::process_stat(pid).map(|s| s.start_ticks)
}

impl VmmProcess {
    /// True while this very process runs (not a zombie, not a reused pid).
    pub fn is_alive(&self) -> bool {
        run_dir::process_stat(self.pid).is_some_and(|s| s.start_ticks == self.start_ticks && s.is_running())
    }

    /// SIGKILL, if the process is still ours.
    pub fn kill(&self) {
        if !self.is_alive() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
                tracing::warn!(pid = self.pid, error = %e, "cannot kill the VMM");
            }
        }
    }

    /// Waits until this process (not our child) has ended. A pidfd names the process itself, so this
    /// wakes exactly when it exits, without polling; the start time is checked after opening it, so a
    /// reused pid is never waited on.
    pub async fn ended(&self) {
        let Some(pid) = rustix::process::Pid::from_raw(self.pid) else {
            return;
        };
        let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
            return; // no such process: it has ended
        };
        if !self.is_alive() {
            return;
        }
        // `with_interest` is deprecated because a raw descriptor could be closed behind tokio's back; ours is
        // an `OwnedFd` moved into the `AsyncFd`, so that cannot happen (the safe replacement is `unsafe`).
        #[allow(deprecated)]
        let registered = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE);
        match registered {
            Ok(fd) => {
                // Readable once the process has exited (pidfd_open(2)).
                let _ = fd.readable().await;
            }
            Err(e) => {
                tracing::warn!(pid = self.pid, error = %e, "cannot watch the VMM's pidfd; polling");
                while self.is_alive() {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// Who holds a run directory's lock, as far as can be known now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: the lock is ours (held until dropped), so no VMM runs the VM and none can start.
    Free,
    /// The VMM of `run_id` holds it and has recorded which process it is.
    Vmm { process: VmmProcess, run_id: String },
    /// Held, but the holder has not (yet) recorded itself: a VMM between taking the lock and writing
    /// `vmm.pid`, or a portal child between fork and exec. Ask again.
    Unknown,
}

/// Asks the lock of `dir` who runs the VM. With `Holder::Free` the caller gets the lock, to keep while it
/// settles the VM.
pub fn holder(dir: &RunDir) -> Result<(Holder, Option<RunLock>), run_dir::RunDirError> {
    if !dir.path().exists() {
        // No run directory: nothing can run there (a VMM needs its sockets and lock in it).
        return Ok((Holder::Free, None));
    }
    if let Some(lock) = RunLock::try_acquire(dir)? {
        return Ok((Holder::Free, Some(lock)));
    }
    let current = dir.current_run_id();
    match PidRecord::read(dir) {
        Some(rec) if rec.run_id == current && rec.is_alive() => Ok((
            Holder::Vmm {
                process: VmmProcess {
                    pid: rec.pid,
                    start_ticks: rec.start_ticks,
                },
                run_id: rec.run_id.unwrap_or_default(),
            },
            None,
        )),
        _ => Ok((Holder::Unknown, None)),
    }
}

/// How the VMM of `run_id` in `dir` ended, if it recorded it.
pub fn read_exit_status(dir: &RunDir, run_id: &str) -> Option<ExitStatus> {
    dir.exit_status_of(run_id)
}

/// What ended the VMM of `run_id`: a system call its seccomp filters refused (the VMM dies in its SIGSYS
/// handler, leaving that record instead of an exit status), else [`Outcome::decide`].
pub fn read_outcome(dir: &RunDir, run_id: &str, waited: Option<std::process::ExitStatus>) -> Outcome {
    match Violation::read(dir.path(), run_id) {
        Some(v) => Outcome::Failed(v.reason()),
        None => Outcome::decide(read_exit_status(dir, run_id), waited),
    }
}

/// When the VMM of `run_id` recorded its exit (unix seconds), if it did.
pub fn exit_time(dir: &RunDir, run_id: &str) -> Option<i64> {
    let file = if read_exit_status(dir, run_id).is_some() {
        dir.exit_status()
    } else {
        Violation::read(dir.path(), run_id)?;
        dir.seccomp_violation()
    };
    let modified = std::fs::metadata(file).ok()?.modified().ok()?;
    let secs = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// What ended a VMM: its recorded exit status, else the wait status of our child, else nothing known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0: the guest powered off or the VMM was stopped through its control socket.
    PoweredOff,
    /// Any other end, with a reason for people.
    Failed(String),
}

impl Outcome {
    pub fn decide(recorded: Option<ExitStatus>, waited: Option<std::process::ExitStatus>) -> Self {
        use std::os::unix::process::ExitStatusExt;
        if let Some(st) = recorded {
            return if st.code == exit_codes::EXIT_OK {
                Self::PoweredOff
            } else {
                Self::Failed(format!("VMM exited with code {} ({})", st.code, st.name))
            };
        }
        match waited {
            Some(w) if w.code() == Some(exit_codes::EXIT_OK) => Self::PoweredOff,
            Some(w) => match (w.code(), w.signal()) {
                (Some(code), _) => Self::Failed(format!(
                    "VMM exited with code {code} ({})",
                    exit_codes::name(code)
                )),
                (None, Some(sig)) => Self::Failed(format!("VMM killed by signal {sig}")),
                _ => Self::Failed("VMM ended".into()),
            },
            None => Self::Failed("VMM process vanished without recording an exit status".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let ticks = start_ticks(pid).unwrap();
        assert!(VmmProcess {
            pid,
            start_ticks: ticks
        }
        .is_alive());
        assert!(!VmmProcess {
            pid,
            start_ticks: ticks + 1
        }
        .is_alive());
    }

    #[test]
    fn outcomes_prefer_the_recorded_status() {
        use std::os::unix::process::ExitStatusExt;
        let rec = |code| {
            Some(ExitStatus {
                code,
                name: exit_codes::name(code).into(),
                run_id: None,
            })
        };
        assert_eq!(Outcome::decide(rec(0), None), Outcome::PoweredOff);
        assert_eq!(
            Outcome::decide(rec(3), Some(std::process::ExitStatus::from_raw(0))),
            Outcome::Failed("VMM exited with code 3 (triple-fault)".into())
        );
        // Killed by SIGKILL (wait status 9).
        assert_eq!(
            Outcome::decide(None, Some(std::process::ExitStatus::from_raw(9))),
            Outcome::Failed("VMM killed by signal 9".into())
        );
        assert!(matches!(Outcome::decide(None, None), Outcome::Failed(_)));
    }

    #[test]
    fn a_seccomp_violation_of_this_run_is_the_crash_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        std::fs::write(dir.seccomp_violation(), "run_id=r1\nsyscall=59 thread=vcpu\n").unwrap();
        assert_eq!(
            read_outcome(&dir, "r1", None),
            Outcome::Failed("seccomp violation: syscall 59 (execve) in a vcpu thread".into())
        );
        assert!(exit_time(&dir, "r1").is_some());
        // Another run's record, or none: the exit status decides as before.
        assert_eq!(
            read_outcome(&dir, "r2", None),
            Outcome::Failed("VMM process vanished without recording an exit status".into())
        );
        exit_codes::write_status(&dir.exit_status(), 0, Some("r2")).unwrap();
        assert_eq!(read_outcome(&dir, "r2", None), Outcome::PoweredOff);
    }
}
