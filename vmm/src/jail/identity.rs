//! The jailed VMM's identity: rlimits, then the VM's own gid and uid with no supplementary groups, no
//! capabilities in any set and `no_new_privs`.
//!
//! Order matters: the bounding and ambient sets are cleared while CAP_SETPCAP is still held; the switch to
//! a non-zero uid then clears the permitted and effective sets (no SECBIT_KEEP_CAPS), and the inheritable
//! set, which a uid change keeps, is cleared last.

use caps::CapSet;
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use vmm_api::jail::Limits;

use super::JailError;

/// RLIMIT_NOFILE, RLIMIT_NPROC and RLIMIT_CORE (no core dumps: guest memory would land on the host).
pub(super) fn set_rlimits(limits: &Limits) -> Result<(), JailError> {
    let set = |r, v, name| setrlimit(r, v, v).map_err(|e| JailError::Rlimit(name, e));
    set(Resource::RLIMIT_NOFILE, limits.nofile, "RLIMIT_NOFILE")?;
    set(Resource::RLIMIT_NPROC, limits.pids_max, "RLIMIT_NPROC")?;
    set(Resource::RLIMIT_CORE, 0, "RLIMIT_CORE")
}

/// Becomes `uid`:`gid` for good, without capabilities, unable to gain any.
pub(super) fn drop_to(uid: u32, gid: u32) -> Result<(), JailError> {
    caps::clear(None, CapSet::Bounding).map_err(|e| JailError::Caps("bounding", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| JailError::Caps("ambient", e))?;
    setgroups(&[]).map_err(|e| JailError::Identity("clear the supplementary groups", e))?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setresgid(gid, gid, gid).map_err(|e| JailError::Identity("set the VM's gid", e))?;
    setresuid(uid, uid, uid).map_err(|e| JailError::Identity("set the VM's uid", e))?;
    for (set, name) in [
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        caps::clear(None, set).map_err(|e| JailError::Caps(name, e))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| JailError::Identity("set no_new_privs", e))
}
