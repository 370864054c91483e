//! Process exit codes of the `vmm` binary: the server maps them to VM states.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | guest powered off (ACPI S5), graceful shutdown completed, or forced stop via `control.sock` |
//! | 1 | VMM error before or between boots (bad config, missing kernel/disk, KVM setup failed) |
//! | 2 | usage error (command-line arguments) |
//! | 3 | guest triple fault (KVM_EXIT_SHUTDOWN) |
//! | 4 | KVM_EXIT_INTERNAL_ERROR (typically an instruction KVM could not emulate; RIP and bytes logged) |
//! | 5 | KVM_EXIT_FAIL_ENTRY (the CPU refused to enter the guest) |
//! | 6 | KVM_RUN failed with an unexpected error |
//! | 7 | the guest reported a crash (KVM system event CRASH, e.g. pvpanic) |
//! | 8 | refused to start: another VMM holds this VM's run directory or one of its disks (see `run_dir`); a
//! |   | refused VMM touches nothing in the run directory, so it never disturbs the one that runs |
//! | 9 | a seccomp filter refused a system call (`seccomp`: the call and thread are in `seccomp-violation`) |

pub const EXIT_OK: i32 = 0;
pub const EXIT_VMM_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_TRIPLE_FAULT: i32 = 3;
pub const EXIT_INTERNAL_ERROR: i32 = 4;
pub const EXIT_FAIL_ENTRY: i32 = 5;
pub const EXIT_KVM_RUN: i32 = 6;
pub const EXIT_GUEST_CRASH: i32 = 7;
pub const EXIT_LOCKED: i32 = 8;
pub const EXIT_SECCOMP: i32 = 9;

/// All codes with a short name, for logs and documentation.
pub const TABLE: &[(i32, &str)] = &[
    (EXIT_OK, "stopped"),
    (EXIT_VMM_ERROR, "vmm-error"),
    (EXIT_USAGE, "usage"),
    (EXIT_TRIPLE_FAULT, "triple-fault"),
    (EXIT_INTERNAL_ERROR, "internal-error"),
    (EXIT_FAIL_ENTRY, "fail-entry"),
    (EXIT_KVM_RUN, "kvm-run-error"),
    (EXIT_GUEST_CRASH, "guest-crash"),
    (EXIT_LOCKED, "locked"),
    (EXIT_SECCOMP, "seccomp-violation"),
];

/// File in the run directory where the VMM records how it ended:
/// `{"code": 0, "name": "stopped", "run_id": "…"}`.
pub const STATUS_FILE: &str = "exit-status.json";

/// How a VMM process ended, as recorded in `STATUS_FILE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitStatus {
    pub code: i32,
    pub name: String,
    /// The run the status belongs to (`run_dir::RunLock::run_id`), so a status left by an earlier run is
    /// never taken for this one's. `None` for a VMM started by hand without a run id.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// Writes the exit status atomically (temporary file, then rename): a full disk leaves either the old
/// file or none, never a half-written one.
pub fn write_status(path: &std::path::Path, code: i32, run_id: Option<&str>) -> std::io::Result<()> {
    let status = ExitStatus {
        code,
        name: name(code).to_string(),
        run_id: run_id.map(str::to_string),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&status).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Short name of an exit code.
pub fn name(code: i32) -> &'static str {
    TABLE
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<i32> = TABLE.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
        assert_eq!(name(EXIT_TRIPLE_FAULT), "triple-fault");
        assert_eq!(name(EXIT_LOCKED), "locked");
    }

    #[test]
    fn a_status_without_run_id_still_reads() {
        let old: ExitStatus = serde_json::from_str(r#"{"code": 0, "name": "stopped"}"#).unwrap();
        assert_eq!(old.run_id, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATUS_FILE);
        write_status(&path, EXIT_GUEST_CRASH, Some("r1")).unwrap();
        let read: ExitStatus = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            (read.code, read.run_id.as_deref()),
            (EXIT_GUEST_CRASH, Some("r1"))
        );
    }
}
