//! The jailed VMM's view of the file system: a private mount namespace whose root is a small read-only
//! tmpfs holding two mount points, `/vm` (the run directory: sockets, disks, exit status) and `/proc`
//! (`hidepid=invisible,subset=pid`: only this uid's processes, no system files; the VMM reads its own
//! `/proc/self` for its statistics).
//!
//! The tmpfs is mounted on `<run_dir>/jail` (made here, root's, empty), so no path outside the VM's own
//! directory is needed; `pivot_root(".", ".")` then a lazy unmount of the old root leaves nothing of the
//! host's tree reachable (pivot_root(2), "pivot_root(".", ".")").

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};
use vmm_api::jail::{JAIL_ROOT_DIR, JAIL_RUN_DIR};

use super::JailError;

fn err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> JailError {
    let what = what.into();
    move |e| JailError::Mount(what, e)
}

fn mkdir(path: &Path) -> Result<(), JailError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(JailError::Mount(
            format!("create {}", path.display()),
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )),
    }
}

/// Enters the jail's mount namespace and root; afterwards the run directory is at `/vm`.
pub(super) fn enter_root(run_dir: &Path) -> Result<(), JailError> {
    const NONE: Option<&str> = None;
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(err("unshare the mount namespace"))?;
    // Nothing mounted from here on reaches the host, and nothing the host mounts reaches the jail.
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(err("make the mounts private"))?;
    let root = run_dir.join(JAIL_ROOT_DIR);
    mkdir(&root)?;
    mount(
        Some("jail"),
        &root,
        Some("tmpfs"),
        safe,
        Some("mode=0755,size=64k,nr_inodes=16"),
    )
    .map_err(err("mount the jail's root"))?;
    let vm = root.join(JAIL_RUN_DIR.trim_start_matches('/'));
    mkdir(&vm)?;
    // Not recursive: the tmpfs on `<run_dir>/jail` is not carried into `/vm/jail`.
    mount(Some(run_dir), &vm, NONE, MsFlags::MS_BIND, NONE).map_err(err("bind the run directory"))?;
    mount(
        NONE,
        &vm,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | safe,
        NONE,
    )
    .map_err(err("restrict the run directory mount"))?;
    let proc_ = root.join("proc");
    mkdir(&proc_)?;
    mount(
        Some("proc"),
        &proc_,
        Some("proc"),
        safe,
        Some("hidepid=invisible,subset=pid"),
    )
    .map_err(err("mount /proc"))?;
    chdir(&root).map_err(err("enter the jail's root"))?;
    pivot_root(".", ".").map_err(err("pivot_root into the jail"))?;
    // The old root is now stacked on "/": detach it and everything under it.
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach the host's root"))?;
    chdir("/").map_err(err("enter /"))?;
    mount(
        NONE,
        "/",
        NONE,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | safe,
        NONE,
    )
    .map_err(err("make the jail's root read-only"))?;
    Ok(())
}
