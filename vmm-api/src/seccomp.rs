//! Seccomp in the contract: the mode the portal asks a VMM to run its system-call filters in, and the
//! record a VMM leaves in its run directory when a filter refuses a call, which the portal turns into
//! the VM's crash reason ("seccomp violation: syscall 59 (execve) in a vcpu thread").
//!
//! The record (`seccomp-violation`, [`VIOLATION_FILE`]) is written by the VMM at start with one line
//! `run_id=<id>`; the VMM's SIGSYS handler appends `syscall=<n> thread=<kind>` with raw `write`s (it
//! runs in a signal handler) and exits with `exit_codes::EXIT_SECCOMP`. A file without that second line,
//! or with another run's id, records no violation of this run.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::syscall_names::syscall_name;

/// File in the run directory recording a seccomp violation.
pub const VIOLATION_FILE: &str = "seccomp-violation";

/// What a VMM's system-call filters do with a call outside their allow-list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// The VMM logs the call and its thread, then exits with `EXIT_SECCOMP` (SIGSYS handler).
    #[default]
    Kill,
    /// The kernel logs the call (audit log, `SECCOMP_RET_LOG`) and lets it through: for finding gaps.
    Log,
    /// No filters.
    Off,
}

impl SeccompMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Log => "log",
            Self::Off => "off",
        }
    }
}

impl std::str::FromStr for SeccompMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kill" => Ok(Self::Kill),
            "log" => Ok(Self::Log),
            "off" => Ok(Self::Off),
            other => Err(format!("{other:?} is not a seccomp mode (kill, log or off)")),
        }
    }
}

/// A refused system call, as recorded by the VMM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub syscall: i64,
    /// The thread kind (`vcpu`, `control`, `main`, …).
    pub thread: String,
}

impl Violation {
    /// The violation recorded in `text` for `run_id`, if any.
    pub fn parse(text: &str, run_id: &str) -> Option<Violation> {
        let mut lines = text.lines();
        if lines.next()?.strip_prefix("run_id=")? != run_id {
            return None;
        }
        let mut syscall = None;
        let mut thread = None;
        for word in lines.next()?.split_whitespace() {
            if let Some(n) = word.strip_prefix("syscall=") {
                syscall = n.parse().ok();
            } else if let Some(t) = word.strip_prefix("thread=") {
                thread = Some(t.to_string());
            }
        }
        Some(Violation {
            syscall: syscall?,
            thread: thread?,
        })
    }

    /// The violation recorded in `run_dir` for `run_id`, if any.
    pub fn read(run_dir: &Path, run_id: &str) -> Option<Violation> {
        let text = std::fs::read_to_string(run_dir.join(VIOLATION_FILE)).ok()?;
        Self::parse(&text, run_id)
    }

    /// For people: "seccomp violation: syscall 59 (execve) in a vcpu thread".
    pub fn reason(&self) -> String {
        let name = syscall_name(self.syscall)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "seccomp violation: syscall {}{name} in a {} thread",
            self.syscall, self.thread
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_this_run_names_the_call_and_the_thread() {
        let v = Violation::parse("run_id=r1\nsyscall=59 thread=vcpu\n", "r1").unwrap();
        assert_eq!(
            v.reason(),
            "seccomp violation: syscall 59 (execve) in a vcpu thread"
        );
        assert_eq!(
            Violation::parse("run_id=r1\nsyscall=99999 thread=main\n", "r1")
                .unwrap()
                .reason(),
            "seccomp violation: syscall 99999 in a main thread"
        );
    }

    #[test]
    fn another_runs_record_or_a_clean_one_is_no_violation() {
        assert_eq!(
            Violation::parse("run_id=r0\nsyscall=59 thread=vcpu\n", "r1"),
            None
        );
        assert_eq!(Violation::parse("run_id=r1\n", "r1"), None);
        assert_eq!(Violation::parse("", "r1"), None);
        assert_eq!(Violation::parse("run_id=r1\nsyscall=x thread=vcpu\n", "r1"), None);
    }

    #[test]
    fn modes_parse_and_default_to_kill() {
        assert_eq!("log".parse::<SeccompMode>(), Ok(SeccompMode::Log));
        assert!("strict".parse::<SeccompMode>().is_err());
        assert_eq!(SeccompMode::default(), SeccompMode::Kill);
        let m: SeccompMode = serde_json::from_str("\"off\"").unwrap();
        assert_eq!(m.as_str(), "off");
    }
}
