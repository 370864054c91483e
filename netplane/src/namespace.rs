//! The portal's network namespace: a named namespace (`/run/netns/<name>`, made with iproute2's
//! `ip netns add`, so it outlives the portal and VMs keep their network across a portal restart) that
//! holds every bridge, TAP, DHCP server and rule of the tenant networks. The host's own namespace is
//! never changed.
//!
//! Code joins it per operation: [`Namespace::enter`] runs a closure on a short-lived thread that
//! `setns`'d into it (sockets, TAPs and netlink connections made there belong to the namespace);
//! [`Namespace::netlink`] does the same with an rtnetlink connection on a current-thread runtime;
//! [`Namespace::command`] starts a process inside it.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Errors creating or joining the namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("Namespace name {0:?} is not a short [a-z0-9-] name")]
    BadName(String),
    #[error("Failed to run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("Failed to open {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("setns into {0} failed")]
    Setns(String, #[source] io::Error),
    #[error("Failed to set {0}")]
    Sysctl(&'static str, #[source] io::Error),
    #[error("Failed to start a tokio runtime in the namespace")]
    Runtime(#[source] io::Error),
    #[error("Failed to open a netlink connection")]
    Netlink(#[source] io::Error),
    #[error("A thread inside the namespace panicked")]
    Thread,
    #[error("Netlink requests in {0} got no answer within {1:?}")]
    NetlinkTimeout(String, std::time::Duration),
}

/// Bounds one [`Namespace::netlink`] call: the kernel answers netlink requests at once, so a call this
/// slow is stuck (a lost reply); failing it lets the caller's next convergence try again instead of
/// waiting for ever.
const NETLINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A named network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    name: String,
}

/// Runs `program args` (outside any namespace) and fails with its stderr unless it succeeds.
pub(crate) fn run(cmd: &mut Command) -> Result<std::process::Output, NamespaceError> {
    let text = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| NamespaceError::Spawn {
        cmd: text.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(NamespaceError::Command {
            cmd: text,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

impl Namespace {
    /// The namespace `name`, created if missing, with forwarding on and bridged IPv4 passed through the
    /// `inet` firewall hooks (NETWORKING.md: br_netfilter).
    pub fn ensure(name: &str) -> Result<Namespace, NamespaceError> {
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NamespaceError::BadName(name.into()));
        }
        let ns = Namespace { name: name.into() };
        if !ns.path().exists() {
            run(Command::new("ip").args(["netns", "add", name]))?;
            tracing::info!(netns = name, "created the network namespace");
        }
        ns.enter(|| -> Result<(), NamespaceError> {
            write_sysctl("net/ipv4/ip_forward", "1")?;
            // Present when br_netfilter is built in or loaded (NETWORKING.md: built in here).
            write_sysctl("net/bridge/bridge-nf-call-iptables", "1")?;
            Ok(())
        })??;
        run(ns.command("ip")?.args(["link", "set", "dev", "lo", "up"]))?;
        Ok(ns)
    }

    /// An existing namespace, without creating or changing it.
    pub fn existing(name: &str) -> Option<Namespace> {
        let ns = Namespace { name: name.into() };
        ns.path().exists().then_some(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    fn open(&self) -> Result<File, NamespaceError> {
        File::open(self.path()).map_err(|e| NamespaceError::Open(self.path(), e))
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NamespaceError> {
        let file = self.open()?;
        let name = self.name.clone();
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(file.as_raw_fd(), &name)?;
                Ok(f())
            })
            .join()
            .map_err(|_| NamespaceError::Thread)?
        })
    }

    /// Runs `f` with an rtnetlink handle inside the namespace (on a thread of its own with a
    /// current-thread runtime: the connection's socket is made after the `setns`).
    pub fn netlink<T, F, Fut>(&self, f: F) -> Result<T, NamespaceError>
    where
        T: Send,
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: Future<Output = T>,
    {
        self.enter(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(NamespaceError::Runtime)?;
            rt.block_on(async {
                let (conn, handle, _) = rtnetlink::new_connection().map_err(NamespaceError::Netlink)?;
                let task = tokio::spawn(conn);
                let out = tokio::time::timeout(NETLINK_TIMEOUT, f(handle)).await;
                task.abort();
                out.map_err(|_| NamespaceError::NetlinkTimeout(self.name.clone(), NETLINK_TIMEOUT))
            })
        })?
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Result<Command, NamespaceError> {
        let file = self.open()?;
        let mut cmd = Command::new(program);
        // SAFETY: the closure runs in the forked child before exec and only calls setns (async-signal-safe)
        // on the namespace descriptor the parent opened; the descriptor is close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Deletes the namespace (what is left in it goes with it once no process holds it).
    pub fn delete(self) -> Result<(), NamespaceError> {
        run(Command::new("ip").args(["netns", "delete", &self.name]))?;
        Ok(())
    }
}

fn setns(fd: RawFd, name: &str) -> Result<(), NamespaceError> {
    // SAFETY: setns on an open namespace descriptor; it changes this thread's namespace only.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(NamespaceError::Setns(name.into(), io::Error::last_os_error()));
    }
    Ok(())
}

/// Writes a `/proc/sys/...` value of the calling thread's network namespace.
fn write_sysctl(key: &'static str, value: &str) -> Result<(), NamespaceError> {
    std::fs::write(Path::new("/proc/sys").join(key), value).map_err(|e| NamespaceError::Sysctl(key, e))
}
