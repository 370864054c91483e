//! Offloads through a card: TCP/IPv4 frames of up to 64 KiB with a virtio-net header asking for
//! segmentation (GSO TCPV4) and checksum completion, sent and received on the TAP by an `AF_PACKET`
//! socket with `PACKET_VNET_HDR`, so they travel unsegmented. The addresses are made-up ones inside the
//! test's namespace; nothing routes them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::frames::pattern;
use super::netns::NetNs;

/// `struct virtio_net_hdr` as packet sockets use it: 10 bytes, little-endian on x86.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

pub const VNET_HDR_LEN: usize = 10;
pub const F_NEEDS_CSUM: u8 = 1;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
/// TCP payload per segment at MTU 1500.
pub const MSS: u16 = 1448;
/// Ethernet + IPv4 + TCP headers.
pub const HEADERS: usize = 14 + 20 + 20;
/// The largest frame: an IPv4 packet of 65535 bytes behind its Ethernet header.
pub const MAX_FRAME: usize = 14 + 65_535;
/// The largest GSO frame a TAP takes whole: the kernel segments in software, before the TAP, every GSO
/// frame of at least the device's gso_max_size (65536, GSO_LEGACY_MAX_SIZE; the length counts the
/// Ethernet header). Seen on 6.18: a 65,536-byte frame reached the card as 46 segments.
pub const GSO_MAX_FRAME: usize = 65_535;

impl VnetHdr {
    fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// TCP/IPv4 frame `seq` (also its TCP sequence number) of `len` bytes (HEADERS..=MAX_FRAME) from `src`
/// to `dst`, with the header a TSO-capable sender gives it: checksum left to the device (NEEDS_CSUM, the
/// TCP checksum field holding the pseudo-header sum) and, if the payload is larger than one MSS, GSO
/// TCPV4.
pub fn tcp4_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> (VnetHdr, Vec<u8>) {
    assert!((HEADERS..=MAX_FRAME).contains(&len), "TCP frame length {len}");
    let ip_len = (len - 14) as u16;
    let (saddr, daddr) = ([10, 0, 6, 1], [10, 0, 6, 2]);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&saddr);
    ip[16..20].copy_from_slice(&daddr);
    let ip_sum = !fold(sum16(&ip));
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let tcp_len = ip_len - 20;
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40_000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5_001u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    let pseudo = sum16(&saddr) + sum16(&daddr) + 6 + u32::from(tcp_len);
    tcp[16..18].copy_from_slice(&fold(pseudo).to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend((HEADERS..len).map(|i| pattern(seq, len, i)));
    let gso = len - HEADERS > usize::from(MSS);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if gso { GSO_TCPV4 } else { GSO_NONE },
        hdr_len: HEADERS as u16,
        gso_size: if gso { MSS } else { 0 },
        csum_start: 34,
        csum_offset: 16,
    };
    (hdr, f)
}

/// The TCP sequence number of a frame from [`tcp4_frame`] (None for anything else).
pub fn tcp_seq(f: &[u8]) -> Option<u32> {
    if f.len() < HEADERS || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    Some(u32::from_be_bytes([f[38], f[39], f[40], f[41]]))
}

/// Whether `got` carries the header `sent` asked for: the offload fields a round trip must keep
/// (`hdr_len` is the kernel's idea of the linear part and may change).
pub fn same_offload(sent: &VnetHdr, got: &VnetHdr) -> bool {
    (
        sent.flags,
        sent.gso_type,
        sent.gso_size,
        sent.csum_start,
        sent.csum_offset,
    ) == (
        got.flags,
        got.gso_type,
        got.gso_size,
        got.csum_start,
        got.csum_offset,
    )
}

fn sys(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn set_int(fd: &OwnedFd, level: i32, opt: i32, value: i32) -> io::Result<()> {
    // SAFETY: setsockopt reads one int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(sys("setsockopt"))
    }
}

/// `AF_PACKET` socket on one interface exchanging (virtio-net header, frame) pairs; its own outgoing
/// frames are not received.
pub struct VnetSocket {
    fd: OwnedFd,
}

impl VnetSocket {
    /// Binds to `ifname` inside `ns`.
    pub fn bind(ns: &NetNs, ifname: &str) -> io::Result<VnetSocket> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        ns.enter(|| {
            // SAFETY: if_nametoindex reads a NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                return Err(sys("if_nametoindex"));
            }
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: creating a socket; no pointers.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(all),
                )
            };
            if raw < 0 {
                return Err(sys("socket(AF_PACKET)"));
            }
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            set_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
            set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
            for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
                set_int(&fd, libc::SOL_SOCKET, opt, 16 << 20)?;
            }
            // SAFETY: sockaddr_ll is plain old data; zeros are valid.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = all;
            addr.sll_ifindex = index as i32;
            // SAFETY: bind reads a sockaddr_ll of the size passed.
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
            Ok(VnetSocket { fd })
        })
        .map_err(io::Error::other)?
    }

    /// Sends one frame with its header (blocks while the socket buffer is full).
    pub fn send(&self, hdr: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        let h = hdr.to_bytes();
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: h.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: writev reads the two buffers for their lengths.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(sys("writev(AF_PACKET)"));
        }
        Ok(())
    }

    /// The next (header, frame) within `timeout`, or None.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<(VnetHdr, Vec<u8>)>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME + 64];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll reads and writes one pollfd on our stack.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
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
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::other(format!("frame of {n} bytes truncated")));
            }
            if n < VNET_HDR_LEN {
                return Err(io::Error::other(format!(
                    "{n} bytes: shorter than the vnet header"
                )));
            }
            let hdr = VnetHdr::from_bytes(&buf[..VNET_HDR_LEN]);
            return Ok(Some((hdr, buf[VNET_HDR_LEN..n].to_vec())));
        }
    }
}
