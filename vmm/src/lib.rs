//! The cloud portal's virtual machine monitor: one process per VM on KVM, built from rust-vmm crates.
//!
//! The server never links this crate's KVM parts; it spawns the `vmm` binary with a JSON config and talks
//! to it over the control, serial and VNC unix sockets.
//!
//! Order of things (see `builder`): config → KVM VM (irqchip, PIT, RAM) → framebuffer slot → legacy
//! devices → virtio-mmio devices → kernel, initrd, command line, ACPI, zero page → vCPUs → run loop
//! (`runner`), with `control` and the serial hub serving the unix sockets.

pub mod boot;
pub mod builder;
pub mod bus;
pub mod config;
pub mod control;
pub mod devices;
pub mod framebuffer;
pub mod layout;
pub mod rfb;
pub mod runner;
pub mod state;
pub mod stats;
pub mod virtio;
pub mod vstate;

/// Exit codes and the run directory are the portal↔VMM contract: they live in `vmm-api`.
pub use vmm_api::{exit_codes, run_dir};

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
