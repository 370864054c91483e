//! The jail a VMM builds around itself (README, "Jail and threat model"), Firecracker's jailer done
//! in-process: the portal starts `vmm` as root with a [`JailConfig`] in the VM's config; after the VMM has
//! claimed its inherited descriptors and opened every host file it needs (`/dev/kvm`, kernel, initrd,
//! disks, entropy source, console log; `runner::HostAccess`), [`enter`] runs these steps in this order:
//!
//! 1. cgroup: create the VM's cgroup with its limits and move this process into it, checked in
//!    `/proc/self/cgroup` (`vmm_api::cgroup`, `Hierarchy::join_self`: on v1 the one thread moves itself,
//!    which spares the RCU grace period a `cgroup.procs` write waits for). The guest's memory, KVM's
//!    objects and every thread come after this, so all of them are charged to and limited by the cgroup;
//! 2. the run directory becomes the VM group's (mode 01770, see `own_run_dir`); rlimits: RLIMIT_NOFILE, RLIMIT_NPROC (per uid, and the uid is this VM's alone), RLIMIT_CORE 0;
//! 3. mounts (`mounts.rs`): a private mount namespace whose root is a tmpfs holding only the run directory
//!    (at `/vm`) and a `/proc` that shows only this uid's processes, entered with `pivot_root`;
//! 4. identity (`identity.rs`): no supplementary groups, the VM's gid and uid, no capabilities in any set
//!    (bounding and ambient included), `no_new_privs`;
//! 5. Landlock (`landlock.rs`): file access only beneath `/vm` and `/proc`, no TCP, no signals or abstract
//!    sockets outside the domain — logged, not fatal, where the kernel lacks it.
//!
//! Each step must run while the process has one thread: the mount namespace, the credentials and the
//! Landlock domain are per thread until threads are spawned, which then inherit them.
//! The per-thread seccomp filters come after this, as each thread starts (`threads.rs`).

mod identity;
mod landlock;
mod mounts;

use std::path::{Path, PathBuf};

use vmm_api::cgroup::{CgroupError, Hierarchy};
pub use vmm_api::jail::JailConfig;

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("Failed to place the VMM in its cgroup")]
    Cgroup(#[source] CgroupError),
    #[error("Failed to set {0}")]
    Rlimit(&'static str, #[source] nix::Error),
    #[error("Failed to {0}")]
    Mount(String, #[source] nix::Error),
    #[error("Failed to {0}")]
    Identity(&'static str, #[source] nix::Error),
    #[error("Failed to drop the {0} capabilities")]
    Caps(&'static str, #[source] caps::errors::CapsError),
    #[error("Failed to apply the Landlock rules")]
    Landlock(#[source] ::landlock::RulesetError),
    #[error("The VMM must start as root to build its jail (it runs as uid {0})")]
    NotRoot(u32),
}

/// What the jail changed for the rest of the VMM.
#[derive(Debug)]
pub struct Jailed {
    /// The run directory as the jailed VMM sees it.
    pub run_dir: PathBuf,
    /// Whether Landlock is enforced (fully or partly).
    pub landlock: bool,
}

/// The run directory becomes the VM's: group the VM's gid, mode 01770 (owner unchanged, root's when the
/// portal made it). The jailed VMM can make its sockets and record its exit there and no other VM's uid
/// can enter it; the sticky bit keeps the files root wrote there (`vmm.pid`, `vmm.lock`, `vmm.json`,
/// `vmm.log`) out of its reach: it can neither replace nor remove them.
fn own_run_dir(run_dir: &Path, gid: u32) -> Result<(), JailError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    std::os::unix::fs::chown(run_dir, None, Some(gid))
        .and_then(|()| std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o1770)))
        .map_err(|e| JailError::Identity("give the run directory to the VM's group", io(e)))
}

/// Builds the jail of `jail` around this process, whose run directory is `run_dir`. On error the process
/// may be half-jailed and must exit without running the guest.
pub fn enter(jail: &JailConfig, run_dir: &Path) -> Result<Jailed, JailError> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(JailError::NotRoot(euid));
    }
    let t0 = std::time::Instant::now();
    let us = |t: std::time::Instant| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    let cgroups = Hierarchy::detect(Path::new(vmm_api::cgroup::CGROUP_ROOT)).map_err(JailError::Cgroup)?;
    cgroups
        .create(&jail.cgroup, &jail.limits)
        .map_err(JailError::Cgroup)?;
    let create_us = us(t0);
    let t = std::time::Instant::now();
    cgroups.join_self(&jail.cgroup).map_err(JailError::Cgroup)?;
    let join_us = us(t);
    own_run_dir(run_dir, jail.gid)?;
    identity::set_rlimits(&jail.limits)?;
    let t = std::time::Instant::now();
    mounts::enter_root(run_dir)?;
    let mounts_us = us(t);
    identity::drop_to(jail.uid, jail.gid)?;
    let t = std::time::Instant::now();
    let landlock = landlock::restrict()?;
    let landlock_us = us(t);
    tracing::info!(
        uid = jail.uid,
        cgroup = %jail.cgroup,
        cgroup_version = cgroups.version(),
        landlock,
        create_us,
        join_us,
        mounts_us,
        landlock_us,
        total_us = us(t0),
        "jail entered"
    );
    Ok(Jailed {
        run_dir: PathBuf::from(vmm_api::jail::JAIL_RUN_DIR),
        landlock,
    })
}
