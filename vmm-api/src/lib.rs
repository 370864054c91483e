//! The contract between the portal and the `vmm` processes it supervises, in a crate of its own so that
//! the portal does not link the VMM's KVM code to speak it:
//!
//! - `config`: the VM configuration the portal hands to a VMM (JSON), its validation and its limits;
//! - `layout`: the guest's memory map, ports and IRQs (also the probe guest's contract);
//! - `cpuid`: which CPUID bit a Linux `clearcpuid=` number names (validated by `config`, applied by the VMM);
//! - `control`: the `control.sock` protocol (typed requests and responses) and, with the `client` feature,
//!   the one client that speaks it (tokio);
//! - `exit_codes`: how a VMM reports its end;
//! - `jail` and `cgroup`: the sandbox a VMM builds around itself (identity, limits) and the per-VM cgroups
//!   both sides manage;
//! - `seccomp`: the filter mode and the violation record a VMM leaves (`syscall_names` names the call);
//! - `run_dir`: the run directory they share (file names, the run lock that makes a VM's VMM exclusive, the
//!   pid record by which a restarted portal finds it again).
//!
//! No KVM and no unsafe code; tokio only with `client`. Without the default `std` feature only the
//! pure-number modules (`layout`, `cpuid`) remain and the crate is `no_std`, for the freestanding probe
//! guest.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

pub mod cpuid;
pub mod layout;

#[cfg(feature = "std")]
pub mod cgroup;
#[cfg(feature = "std")]
pub mod config;
#[cfg(feature = "std")]
pub mod control;
#[cfg(feature = "std")]
pub mod exit_codes;
#[cfg(feature = "std")]
pub mod jail;
#[cfg(feature = "std")]
pub mod run_dir;
#[cfg(feature = "std")]
pub mod seccomp;
#[cfg(feature = "std")]
pub mod syscall_names;

/// "outer: inner: innermost": an error with its chain of sources, for logs and for reasons shown to
/// people. Both ends of the process boundary (the VMM's logs, the portal's crash reasons) word error
/// chains with it alike.
#[cfg(feature = "std")]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(all(test, feature = "std"))]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("Outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_name_every_cause() {
        let e = Outer(std::io::Error::other("innermost"));
        assert_eq!(super::error_chain(&e), "Outer: innermost");
    }
}
