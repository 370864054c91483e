//! The cloud portal's virtual machine monitor: one process per VM on KVM, built from rust-vmm crates.
//!
//! The server does not link this crate: it shares only the contract crate `vmm-api` with it (config,
//! control protocol, run directory), spawns the `vmm` binary with a JSON config and talks to it over the
//! control, serial and VNC unix sockets.
//!
//! Order of things (see `builder`): config → host files opened once (`builder::HostFiles`) → KVM VM
//! (irqchip, PIT) → guest RAM (`memory`, dirty-tracked) registered as memslots → framebuffer slot →
//! legacy devices → virtio-mmio devices → kernel, initrd, command line, ACPI, zero page → vCPUs → run
//! loop (`runner`), with `control` and the serial hub serving the unix sockets. Every thread is started
//! through `threads::spawn`, under the seccomp filter of its kind (`seccomp`).

pub mod boot;
pub mod builder;
pub mod bus;
pub mod control;
pub mod devices;
pub mod framebuffer;
pub mod jail;
pub mod memory;
pub mod rfb;
pub mod runner;
pub mod seccomp;
pub mod state;
pub mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod threads;
pub mod virtio;
pub mod vstate;

/// The portal↔VMM contract lives in `vmm-api` (no KVM code, so the portal does not link this crate):
/// the config and its limits, the guest layout, exit codes and the run directory. Re-exported so the
/// VMM's own paths (`crate::layout`, `vmm::config`, …) stay what they were.
pub use vmm_api::{config, exit_codes, layout, run_dir};

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: a panicked holder cannot leave our plain-data state in a form
/// worse than aborting the VM would.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Logs at `$level` the first time this call site is reached.
#[macro_export]
macro_rules! log_once {
    ($level:ident, $($arg:tt)*) => {{
        static LOGGED: ::std::sync::atomic::AtomicBool = ::std::sync::atomic::AtomicBool::new(false);
        if !LOGGED.swap(true, ::std::sync::atomic::Ordering::Relaxed) {
            ::tracing::$level!($($arg)*);
        }
    }};
}
