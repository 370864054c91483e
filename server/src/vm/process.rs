//! VMM processes: spawning one per VM in its own process group (so stopping the portal does not stop it),
//! telling whether a recorded process still runs, signalling it, and reading how it ended.
//!
//! A process is identified by its pid *and* its start time (`/proc/<pid>/stat` field 22, clock ticks since
//! boot), so a reused pid is never mistaken for our VMM after a restart.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};
use vmm::exit_codes::{self, ExitStatus};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Failed to open the VMM log {0}")]
    Log(PathBuf, #[source] std::io::Error),
    #[error("Failed to start the VMM {0}")]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("The VMM exited before it could be identified")]
    Vanished,
}

/// A VMM process we started or adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmmProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Starts `vmm --config <config>` with stdout and stderr appended to `log`.
pub fn spawn(vmm_binary: &Path, config: &Path, log: &Path) -> Result<(Child, VmmProcess), ProcessError> {
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| ProcessError::Log(log.to_path_buf(), e))
    };
    let child = Command::new(vmm_binary)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        // Its own process group: Ctrl-C or a service manager stopping the portal does not reach the VM.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| ProcessError::Spawn(vmm_binary.to_path_buf(), e))?;
    let pid = child.id().ok_or(ProcessError::Vanished)?;
    let pid = i32::try_from(pid).map_err(|_| ProcessError::Vanished)?;
    let start_ticks = start_ticks(pid).ok_or(ProcessError::Vanished)?;
    Ok((child, VmmProcess { pid, start_ticks }))
}

/// Fields of `/proc/<pid>/stat` after the command name: (state, start time in ticks).
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name (field 2) is in parentheses and may contain spaces or ')': split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3 (state); start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of a live process, in clock ticks since boot.
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

impl VmmProcess {
    /// True while this very process runs (not a zombie, not a reused pid).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, ticks)) if ticks == self.start_ticks && state != 'Z' && state != 'X')
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
}

/// How the VMM in `run_dir` ended, if it recorded it.
pub fn read_exit_status(run_dir: &Path) -> Option<ExitStatus> {
    let bytes = std::fs::read(run_dir.join(exit_codes::STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// When the VMM in `run_dir` recorded its exit (unix seconds), if it did.
pub fn exit_time(run_dir: &Path) -> Option<i64> {
    let modified = std::fs::metadata(run_dir.join(exit_codes::STATUS_FILE))
        .ok()?
        .modified()
        .ok()?;
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
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (vm (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 98765 1000 200";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

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
}
