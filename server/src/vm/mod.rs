//! VM orchestration: the persisted lifecycle state machine and the supervisor of one VMM process per VM.
//!
//! Every state change is a conditional database transition (`db::vms::transition`) recorded in `vm_events`
//! and broadcast to live subscribers (the browser's event stream). User actions make the first transition
//! at once and hand the slow part (graceful shutdown, boot) to a task, so the API answers immediately with
//! the VM in `stopping`, `rebooting`, ...; the task makes the next transition. Any transition that finds the
//! VM no longer in the state it expects does nothing: the action that changed it meanwhile wins.

mod actions;
mod boot_rule;
mod boot_watch;
mod control;
mod disk;
pub mod fault;
mod host;
pub mod lifecycle;
mod process;
mod reconcile;
mod sandbox;
mod supervisor;
mod vmm_config;

pub use boot_rule::BootSettings;
pub use control::ControlError;
pub use process::Outcome;
pub use sandbox::{Sandbox, SandboxError};
pub use supervisor::{Supervisor, SupervisorError, VmChange, VmSettings};
