//! A VM's run directory, shared by the portal and the VMM: the names of what lives in it, the **run lock**
//! that makes a VM's VMM exclusive, and the **pid record** by which a restarted portal finds its VMM.
//!
//! The protocol (one VMM per VM, provably):
//! 1. The portal takes the run lock (`flock(LOCK_EX)` on `vmm.lock`). If it cannot, a VMM already runs this
//!    VM: it adopts that one and never starts a second.
//! 2. Holding the lock, it writes a fresh run id into the lock file, records the run id in its database
//!    (the VM now "may have a VMM": quota and billing count it), and spawns the VMM with the locked
//!    descriptor inherited. The lock is therefore held without a gap from before the database says
//!    "starting a VMM" until that VMM exits — even if the portal dies at any instant in between, because
//!    a forked child holds the same open file description.
//! 3. The VMM checks that the inherited descriptor is this directory's lock, locks each disk (`LOCK_EX`
//!    for writable, `LOCK_SH` for read-only ones), and writes `vmm.pid` (pid, start time, run id). A VMM
//!    started by hand takes the lock itself. Either way, a lock or disk held by another VMM makes it exit
//!    with `EXIT_LOCKED` before touching anything in the directory.
//! 4. The kernel drops the locks when the VMM exits, however it exits. So "the lock can be taken" means
//!    "no VMM runs this VM", and "it cannot" means "one does": the portal's reconciliation asks the lock,
//!    not a pid that might be stale, and holds it while it settles the VM so none can start meanwhile.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit_codes;

pub const CONFIG_FILE: &str = "vmm.json";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const SERIAL_SOCKET: &str = "serial.sock";
pub const VNC_SOCKET: &str = "vnc.sock";
pub const LOG_FILE: &str = "vmm.log";
pub const LOCK_FILE: &str = "vmm.lock";
pub const PID_FILE: &str = "vmm.pid";

/// Errors of the run directory's files and locks.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("Failed to open {0}")]
    Open(PathBuf, #[source] std::io::Error),
    #[error("Failed to lock {0}")]
    Lock(PathBuf, #[source] std::io::Error),
    #[error("{0} is in use by another VMM")]
    Held(PathBuf),
    #[error("The inherited descriptor is not the run lock {0}")]
    NotTheLock(PathBuf),
    #[error("Failed to read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("Failed to write {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// The paths of one VM's run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    pub fn control(&self) -> PathBuf {
        self.path.join(CONTROL_SOCKET)
    }

    pub fn serial(&self) -> PathBuf {
        self.path.join(SERIAL_SOCKET)
    }

    pub fn vnc(&self) -> PathBuf {
        self.path.join(VNC_SOCKET)
    }

    pub fn log(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    pub fn lock(&self) -> PathBuf {
        self.path.join(LOCK_FILE)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path.join(PID_FILE)
    }

    pub fn exit_status(&self) -> PathBuf {
        self.path.join(exit_codes::STATUS_FILE)
    }

    /// Where a VMM records a system call its seccomp filters refused (`seccomp::Violation`).
    pub fn seccomp_violation(&self) -> PathBuf {
        self.path.join(crate::seccomp::VIOLATION_FILE)
    }

    /// The run id written into the lock file by whoever last took the lock to start a VMM. While the lock
    /// is held it names the run of the VMM that holds it.
    pub fn current_run_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.lock()).ok()?;
        let id = text.trim();
        (!id.is_empty()).then(|| id.to_string())
    }

    /// How the VMM of `run_id` ended, if it recorded it (a status of another run is not returned).
    pub fn exit_status_of(&self, run_id: &str) -> Option<exit_codes::ExitStatus> {
        let bytes = std::fs::read(self.exit_status()).ok()?;
        let status: exit_codes::ExitStatus = serde_json::from_slice(&bytes).ok()?;
        (status.run_id.as_deref() == Some(run_id)).then_some(status)
    }
}

/// An exclusive hold on a run directory: while a `RunLock` exists, no VMM runs that VM and none can start.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock if nobody holds it; `None` when a VMM (or another holder) has it.
    pub fn try_acquire(dir: &RunDir) -> Result<Option<Self>, RunDirError> {
        let path = dir.lock();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| RunDirError::Open(path.clone(), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file, path })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(RunDirError::Lock(path, e)),
        }
    }

    /// Takes over a lock inherited from the portal: checks that `file` is this directory's lock file and
    /// that its open file description holds the lock (locking again through the same description
    /// succeeds; any other holder makes it fail).
    pub fn inherit(file: File, dir: &RunDir) -> Result<Self, RunDirError> {
        let path = dir.lock();
        let ours = file.metadata().map_err(|e| RunDirError::Read(path.clone(), e))?;
        let on_disk = std::fs::metadata(&path).map_err(|e| RunDirError::Read(path.clone(), e))?;
        if (ours.dev(), ours.ino()) != (on_disk.dev(), on_disk.ino()) {
            return Err(RunDirError::NotTheLock(path));
        }
        match file.try_lock() {
            Ok(()) => Ok(Self { file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(RunDirError::Held(path)),
            Err(std::fs::TryLockError::Error(e)) => Err(RunDirError::Lock(path, e)),
        }
    }

    /// Replaces the run id in the lock file (flushed to disk: it must survive a host crash as well as the
    /// database row that names it).
    pub fn set_run_id(&self, run_id: &str) -> Result<(), RunDirError> {
        let write = || -> std::io::Result<()> {
            self.file.set_len(0)?;
            self.file.write_all_at(run_id.as_bytes(), 0)?;
            self.file.sync_data()
        };
        write().map_err(|e| RunDirError::Write(self.path.clone(), e))
    }

    /// The locked file, to be handed to a child process (the lock goes with the open file description).
    pub fn into_file(self) -> File {
        self.file
    }
}

/// Locks a disk image for this process's lifetime: exclusively when the VM writes it, shared when it
/// only reads it, so two VMMs never write one disk and nobody writes a disk another VM reads.
pub fn lock_disk(path: &Path, read_only: bool) -> Result<File, RunDirError> {
    let file = File::open(path).map_err(|e| RunDirError::Open(path.to_path_buf(), e))?;
    let locked = if read_only {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunDirError::Held(path.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(RunDirError::Lock(path.to_path_buf(), e)),
    }
}

/// Which process runs a VM: written by the VMM into `vmm.pid` once it holds the run lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22): with the pid, it names one
    /// process for ever, so a reused pid is never taken for the VMM.
    pub start_ticks: u64,
    #[serde(default)]
    pub run_id: Option<String>,
}

impl PidRecord {
    /// The record of the calling process.
    pub fn of_self(run_id: Option<&str>) -> Option<Self> {
        let pid = i32::try_from(std::process::id()).ok()?;
        Some(Self {
            pid,
            start_ticks: process_stat(pid)?.start_ticks,
            run_id: run_id.map(str::to_string),
        })
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn write(&self, dir: &RunDir) -> Result<(), RunDirError> {
        let path = dir.pid_file();
        let tmp = path.with_extension("pid.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| RunDirError::Write(path.clone(), e))
    }

    pub fn read(dir: &RunDir) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(dir.pid_file()).ok()?).ok()
    }

    /// True while this very process runs (not a zombie, not a reused pid).
    pub fn is_alive(&self) -> bool {
        process_stat(self.pid).is_some_and(|s| s.start_ticks == self.start_ticks && s.is_running())
    }
}

/// The two fields of `/proc/<pid>/stat` that identify a process and tell whether it still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, Z (zombie), X (dead), ...
    pub state: char,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Neither a zombie nor dead.
    pub fn is_running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Reads `/proc/<pid>/stat`.
pub fn process_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may contain spaces or ')': split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); the start time is field 22.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "1234 (vm (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 98765 1000 200";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_ticks: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_lock_is_exclusive_and_released_with_its_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        let held = RunLock::try_acquire(&dir).unwrap().expect("free at first");
        held.set_run_id("run-1").unwrap();
        assert!(
            RunLock::try_acquire(&dir).unwrap().is_none(),
            "a second holder is refused"
        );
        assert_eq!(dir.current_run_id().as_deref(), Some("run-1"));
        // Handing the file on (as to a child) keeps the lock: it belongs to the open file description.
        let file = held.into_file();
        assert!(RunLock::try_acquire(&dir).unwrap().is_none());
        let again = RunLock::inherit(file, &dir).expect("the holder's own description");
        drop(again);
        let next = RunLock::try_acquire(&dir)
            .unwrap()
            .expect("free once the holder is gone");
        next.set_run_id("run-2").unwrap();
        assert_eq!(dir.current_run_id().as_deref(), Some("run-2"));
    }

    #[test]
    fn an_inherited_descriptor_must_be_the_lock_and_hold_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        let other = tmp.path().join("other");
        std::fs::write(&other, b"").unwrap();
        std::fs::write(dir.lock(), b"").unwrap();
        assert!(matches!(
            RunLock::inherit(File::open(&other).unwrap(), &dir),
            Err(RunDirError::NotTheLock(_))
        ));
        let _holder = RunLock::try_acquire(&dir).unwrap().unwrap();
        // The same file opened anew is another description: the holder's lock refuses it.
        assert!(matches!(
            RunLock::inherit(File::open(dir.lock()).unwrap(), &dir),
            Err(RunDirError::Held(_))
        ));
    }

    #[test]
    fn writable_disks_are_exclusive_and_read_only_ones_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = tmp.path().join("disk.raw");
        std::fs::write(&disk, [0u8; 512]).unwrap();
        let writer = lock_disk(&disk, false).unwrap();
        assert!(matches!(lock_disk(&disk, false), Err(RunDirError::Held(_))));
        assert!(matches!(lock_disk(&disk, true), Err(RunDirError::Held(_))));
        drop(writer);
        let r1 = lock_disk(&disk, true).unwrap();
        let _r2 = lock_disk(&disk, true).expect("readers share");
        assert!(matches!(lock_disk(&disk, false), Err(RunDirError::Held(_))));
        drop(r1);
    }

    #[test]
    fn pid_records_name_a_live_process_and_their_run() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        let me = PidRecord::of_self(Some("run-9")).unwrap();
        me.write(&dir).unwrap();
        let read = PidRecord::read(&dir).unwrap();
        assert_eq!(read, me);
        assert!(read.is_alive());
        let reused = PidRecord {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive(), "another start time is another process");
    }

    #[test]
    fn exit_status_of_another_run_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        exit_codes::write_status(&dir.exit_status(), 0, Some("old")).unwrap();
        assert!(dir.exit_status_of("new").is_none());
        assert_eq!(dir.exit_status_of("old").map(|s| s.code), Some(0));
    }
}
