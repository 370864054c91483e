//! Crash injection for tests: with `PORTAL_CRASH_AT=<point>` in its environment the portal SIGKILLs itself
//! when a VM flow reaches that point, so tests can prove that a crash at every step of launch, start, stop,
//! reboot and delete leaves the database, the ledger and the VMM processes consistent (`tests/api/crash.rs`).
//! Unset (always, outside those tests) it costs one comparison per point.

use std::sync::OnceLock;

/// Every crash point, in the order a VM's life reaches them.
pub const POINTS: &[&str] = &[
    // launch: the VM row exists, its files do not yet
    "provision.begin",
    // files made, not yet `starting`
    "provision.files_ready",
    // run id and usage interval recorded with the run lock held; the VMM not spawned yet
    "boot.before_spawn",
    // the VMM spawned; its pid not recorded, nobody watching it
    "boot.after_spawn",
    // the VMM reported running; the VM not yet `running`
    "boot.before_running",
    // a stop/reboot/delete accepted (`stopping`, `rebooting`, `deleting`); the VMM not asked yet
    "stop.begin",
    "reboot.begin",
    "delete.begin",
    // the VMM is gone; the next state not recorded yet
    "stop.vmm_gone",
    "reboot.vmm_gone",
    "delete.vmm_gone",
    // the VM's files removed; not yet `deleted`
    "delete.files_removed",
    // a VMM ended by itself (e.g. the guest powered off); its end not recorded yet
    "watch.exit_seen",
];

/// The environment variable naming the point to crash at.
pub const ENV: &str = "PORTAL_CRASH_AT";

/// Kills the portal (SIGKILL: no destructor, no flush, like a power cut for this process) if `name` is the
/// configured crash point.
pub fn point(name: &'static str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        tracing::warn!(point = name, "{ENV}: killing the portal here");
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
