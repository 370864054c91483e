//! The host end of a virtio-net card: a TAP file descriptor (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), each
//! read or write one Ethernet frame behind a 12-byte `virtio_net_hdr_v1`.
//!
//! One copy for both ends of the process boundary: the VMM uses the descriptor, the portal's network
//! plane (`netplane`) and the tests create it.
//!
//! The VMM never creates TAPs (that needs network-admin rights): whoever spawns it opens the TAP and
//! passes the descriptor ([`Tap::from_inherited`] checks its flags). [`Tap::open`] is for those spawners
//! (tests, benchmarks, later the portal's network plumbing). Setting the vnet header size and the offloads
//! works on an attached descriptor without privileges.
//!
//! Hand-written rather than a crate: the few ioctls are all there is, and the crates seen either lack
//! `IFF_VNET_HDR`/offload control or are unmaintained (NETWORKING.md); Firecracker and Cloud Hypervisor
//! also keep their own.
//!
//! Tests and fuzzing can back a card with a `SOCK_SEQPACKET` socket instead ([`Tap::seqpacket`]): it
//! keeps frame boundaries and reports `EAGAIN` the same way, and offload requests are accepted as no-ops.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Size of `virtio_net_hdr_v1` (with `num_buffers`): what precedes every frame on the TAP.
pub const VNET_HDR_LEN: usize = 12;

/// Errors opening or checking a TAP.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("Failed to open /dev/net/tun")]
    OpenTun(#[source] io::Error),
    #[error("TAP name {0:?} is empty, too long or contains a NUL")]
    BadName(String),
    #[error("TUNSETIFF failed for {0:?}")]
    SetIff(String, #[source] io::Error),
    #[error("Descriptor {0} is not an attached TUN/TAP device (TUNGETIFF failed)")]
    NotTap(RawFd, #[source] io::Error),
    #[error(
        "Descriptor {fd} is a TUN/TAP device with flags {flags:#x}; IFF_TAP|IFF_NO_PI|IFF_VNET_HDR needed"
    )]
    WrongFlags { fd: RawFd, flags: i32 },
    #[error("TUNSETVNETHDRSZ failed")]
    SetVnetHdrSize(#[source] io::Error),
    #[error("Failed to make descriptor {0} non-blocking")]
    NonBlocking(RawFd, #[source] io::Error),
    #[error("Failed to create a socket pair")]
    SocketPair(#[source] io::Error),
}

/// What backs the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tap,
    SeqPacket,
}

/// A non-blocking TAP descriptor with a 12-byte vnet header.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    kind: Kind,
    name: String,
}

/// The flags a card's TAP must have.
const REQUIRED_FLAGS: i32 = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

fn ifreq_with_name(name: &str) -> Result<libc::ifreq, TapError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(TapError::BadName(name.into()));
    }
    // SAFETY: ifreq is plain old data; all zeros is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(ifr)
}

impl Tap {
    /// Creates (or attaches to) the TAP `name` in the caller's network namespace, with the flags a card
    /// needs. Needs CAP_NET_ADMIN unless the TAP is persistent and owned by the caller.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        let mut ifr = ifreq_with_name(name)?;
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::OpenTun)?;
        ifr.ifr_ifru.ifru_flags = REQUIRED_FLAGS as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives on our stack for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            return Err(TapError::SetIff(name.into(), io::Error::last_os_error()));
        }
        Self::from_fd(OwnedFd::from(file))
    }

    /// Takes over an inherited descriptor after checking it is a TAP with the required flags; sets the
    /// vnet header size and non-blocking mode.
    pub fn from_inherited(fd: OwnedFd) -> Result<Tap, TapError> {
        Self::from_fd(fd)
    }

    fn from_fd(fd: OwnedFd) -> Result<Tap, TapError> {
        let raw = fd.as_raw_fd();
        // SAFETY: ifreq is plain old data; all zeros is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF writes one ifreq into our stack variable; on a descriptor that is not a
        // TUN/TAP it fails without writing.
        let rc = unsafe { libc::ioctl(raw, libc::TUNGETIFF, &mut ifr) };
        if rc < 0 {
            return Err(TapError::NotTap(raw, io::Error::last_os_error()));
        }
        // SAFETY: TUNGETIFF filled in the flags member of the union.
        let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags }) & 0xffff;
        if flags & REQUIRED_FLAGS != REQUIRED_FLAGS {
            return Err(TapError::WrongFlags { fd: raw, flags });
        }
        // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ.
        let name = unsafe { CStr::from_ptr(ifr.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer we pass.
        let rc = unsafe { libc::ioctl(raw, libc::TUNSETVNETHDRSZ, &hdr_len) };
        if rc < 0 {
            return Err(TapError::SetVnetHdrSize(io::Error::last_os_error()));
        }
        set_nonblocking(raw)?;
        Ok(Tap {
            fd,
            kind: Kind::Tap,
            name,
        })
    }

    /// A connected `SOCK_SEQPACKET` pair: the first end backs a card like a TAP would, the second is
    /// the "host side" a test reads and writes frames (with their vnet header) on.
    pub fn seqpacket() -> Result<(Tap, OwnedFd), TapError> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into the array we pass.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(TapError::SocketPair(io::Error::last_os_error()));
        }
        // SAFETY: socketpair succeeded; both descriptors are fresh and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        set_nonblocking(a.as_raw_fd())?;
        Ok((
            Tap {
                fd: a,
                kind: Kind::SeqPacket,
                name: "seqpacket".into(),
            },
            b,
        ))
    }

    /// Gives the descriptor back (to pass it to a `vmm` process).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The interface name (`seqpacket` for a socket-backed card).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which offloads the TAP may use in frames it hands us (`TUN_F_*`), from the features the guest
    /// acknowledged. A socket-backed card accepts any.
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        if self.kind == Kind::SeqPacket {
            return Ok(());
        }
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads one frame (vnet header first) into `buf`; `WouldBlock` when none is waiting. A frame longer
    /// than `buf` is truncated by the kernel (the caller sizes `buf` for the largest frame allowed).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read writes at most buf.len() bytes into buf.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one frame gathered from `iovs` (vnet header first) with a single `writev`.
    ///
    /// # Safety
    /// Every iovec must describe memory readable for its whole length for the duration of the call.
    pub unsafe fn writev(&self, iovs: &[libc::iovec]) -> io::Result<usize> {
        let count = iovs.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: the caller guarantees the iovecs point at readable memory; writev only reads them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iovs.as_ptr(), count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn set_nonblocking(fd: RawFd) -> Result<(), TapError> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no pointers involved.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(TapError::NonBlocking(fd, io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        assert!(matches!(Tap::open(""), Err(TapError::BadName(_))));
        assert!(matches!(
            Tap::open("0123456789abcdefXX"),
            Err(TapError::BadName(_))
        ));
        assert!(matches!(Tap::open("a\0b"), Err(TapError::BadName(_))));
    }

    #[test]
    fn a_descriptor_that_is_not_a_tap_is_refused() {
        let file = File::open("/dev/null").unwrap();
        assert!(matches!(
            Tap::from_inherited(OwnedFd::from(file)),
            Err(TapError::NotTap(..))
        ));
    }

    #[test]
    fn a_seqpacket_card_keeps_frame_boundaries() {
        let (tap, peer) = Tap::seqpacket().unwrap();
        let frame = [7u8; 100];
        let iov = [
            libc::iovec {
                iov_base: frame.as_ptr() as *mut _,
                iov_len: 40,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut _,
                iov_len: 60,
            },
        ];
        // SAFETY: both iovecs point into `frame`, alive for the call.
        assert_eq!(unsafe { tap.writev(&iov) }.unwrap(), 100);
        let mut buf = [0u8; 200];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 100);
        assert_eq!(tap.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        tap.set_offload(libc::TUN_F_CSUM).unwrap();
    }
}
