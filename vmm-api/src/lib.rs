//! The contract between the portal and the `vmm` processes it supervises, in a crate of its own so that
//! the portal does not link the VMM's KVM code to speak it: how a VMM reports its end (`exit_codes`), and
//! the run directory they share (`run_dir`: file names, the run lock that makes a VM's VMM exclusive, the
//! pid record by which a restarted portal finds it again).
//!
//! No KVM, no async runtime, no unsafe code: only files, `flock` and serde.

#![forbid(unsafe_code)]

pub mod exit_codes;
pub mod run_dir;
