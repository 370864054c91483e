//! Network namespaces a test creates for itself, and a TAP inside one with a raw (`AF_PACKET`) socket on
//! its host side — the harness for network tests (workplace rule: traffic only inside namespaces the
//! test made, never the machine's own network).
//!
//! A namespace is made by a short-lived thread that `unshare(CLONE_NEWNET)`s and opens its
//! `/proc/thread-self/ns/net`; that descriptor keeps the namespace alive and lets later threads
//! ([`NetNs::enter`]) and child processes ([`NetNs::command`]) join it. Dropping every descriptor (the
//! namespace's, the TAP's, the sockets') tears it down with everything in it: nothing to clean up and
//! nothing left behind when a test fails.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::virtio::net::Tap;

/// Errors setting up a test network.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error("{what} failed")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("Failed to run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("Creating the TAP failed")]
    Tap(#[source] crate::virtio::net::TapError),
    #[error("The namespace thread panicked")]
    Thread,
}

fn sys(what: &'static str) -> NetNsError {
    NetNsError::Sys {
        what,
        source: io::Error::last_os_error(),
    }
}

/// A network namespace owned by the test.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// A new, empty namespace (only `lo`, down).
    pub fn new() -> Result<NetNs, NetNsError> {
        std::thread::spawn(|| {
            // SAFETY: unshare takes a flag word; the new namespace applies to this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(sys("unshare(CLONE_NEWNET)"));
            }
            let file = std::fs::File::open("/proc/thread-self/ns/net").map_err(|source| NetNsError::Sys {
                what: "opening /proc/thread-self/ns/net",
                source,
            })?;
            Ok(NetNs {
                fd: OwnedFd::from(file),
            })
        })
        .join()
        .map_err(|_| NetNsError::Thread)?
    }

    /// Runs `f` on a thread inside the namespace (sockets and TAPs it creates belong to the namespace).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetNsError> {
        let fd = self.fd.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a namespace descriptor we hold open; affects this thread only.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(sys("setns(CLONE_NEWNET)"));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| NetNsError::Thread)?
        })
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd: RawFd = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only makes the async-signal-safe
        // setns system call on a descriptor inherited from the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a command in the namespace and fails unless it succeeds.
    pub fn run(&self, args: &[&str]) -> Result<Output, NetNsError> {
        let cmd = args.join(" ");
        let (program, rest) = args.split_first().ok_or_else(|| NetNsError::Command {
            cmd: cmd.clone(),
            stderr: "empty command".into(),
        })?;
        let out = self
            .command(program)
            .args(rest)
            .output()
            .map_err(|source| NetNsError::Spawn {
                cmd: cmd.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(NetNsError::Command {
                cmd,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out)
    }
}

/// A TAP in a fresh namespace, up, with the host address `host_cidr` (e.g. `10.0.2.1/24`) and no IPv6
/// (so the kernel sends nothing of its own), and a raw socket bound to it.
#[derive(Debug)]
pub struct TestTap {
    pub ns: NetNs,
    pub name: String,
    /// The card's descriptor, to hand to the VMM (or a device in a unit test).
    pub tap: Option<Tap>,
    pub packet: PacketSocket,
}

impl TestTap {
    pub fn new(name: &str, host_cidr: &str, mtu: u16) -> Result<TestTap, NetNsError> {
        let ns = NetNs::new()?;
        let tap = ns.enter(|| Tap::open(name))?.map_err(NetNsError::Tap)?;
        let mtu = mtu.to_string();
        ns.run(&[
            "ip",
            "link",
            "set",
            "dev",
            name,
            "addrgenmode",
            "none",
            "mtu",
            &mtu,
        ])?;
        ns.run(&["ip", "addr", "add", host_cidr, "dev", name])?;
        ns.run(&["ip", "link", "set", "dev", name, "up"])?;
        ns.run(&["ip", "link", "set", "dev", "lo", "up"])?;
        let packet = ns.enter(|| PacketSocket::bind(name))??;
        Ok(TestTap {
            ns,
            name: name.into(),
            tap: Some(tap),
            packet,
        })
    }

    /// The TAP as an owned descriptor (to pass to a `vmm` process).
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.tap.take().map(Tap::into_fd)
    }
}

/// `AF_PACKET` socket bound to one interface: sends raw Ethernet frames out of it and receives the
/// frames that arrive on it (its own outgoing frames are skipped).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

impl PacketSocket {
    /// Binds to `ifname` in the calling thread's namespace.
    pub fn bind(ifname: &str) -> Result<PacketSocket, NetNsError> {
        let name = CString::new(ifname).map_err(|_| NetNsError::Command {
            cmd: "if_nametoindex".into(),
            stderr: "name contains NUL".into(),
        })?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(sys("if_nametoindex"));
        }
        // SAFETY: creating a socket; no pointers.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL_BE),
            )
        };
        if raw < 0 {
            return Err(sys("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; zeros are valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = index as i32;
        // SAFETY: bind reads a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(sys("bind(AF_PACKET)"));
        }
        let big: libc::c_int = 8 << 20;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: setting an int option; a failure only leaves the default size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&big as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
        }
        Ok(PacketSocket { fd })
    }

    /// Sends one Ethernet frame out of the interface (blocks while the socket buffer is full).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: send reads `frame` for its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next frame that arrived on the interface within `timeout`, or `None`.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_600];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: poll reads and writes one pollfd on our stack.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if rc == 0 {
                return Ok(None);
            }
            // SAFETY: sockaddr_ll is plain old data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom writes at most buf.len() bytes and one sockaddr_ll of from_len bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                    continue;
                }
                return Err(e);
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
    }
}
