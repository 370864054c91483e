//! Transmit path: frames from the guest's transmit queue to the TAP, each chain with one `writev`.
//!
//! The vnet header and the Ethernet header (the first 26 bytes) are copied out of guest memory and
//! checked on the copy — the guest cannot change them between the check and the write: the source MAC
//! must be the card's (else the frame is dropped and counted) and the offload request must be one the
//! driver negotiated. The rest of the frame is written straight from guest memory. A chain that is not a
//! frame is returned with length 0 and logged once. When the TAP answers `EAGAIN` the chain stays
//! pending and is retried when the TAP is writable; nothing behind it is sent first, so order is kept.

use std::io::ErrorKind;

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend};

use super::counters::Drop;
use super::engine::{Engine, Progress, BUDGET, MAX_FRAME_LEN, MIN_FRAME_LEN};
use super::tap::VNET_HDR_LEN;
use super::TX_QUEUE;
use crate::virtio::{add_used, collect_chain, pop_chain, warn_once, VirtioError};

/// vnet header plus Ethernet header: the part checked on a host copy.
pub const HEAD_LEN: usize = VNET_HDR_LEN + MIN_FRAME_LEN;
/// Most guest memory pieces one frame may be gathered from (a queue of 256 plus the split head).
const MAX_SEGMENTS: usize = 260;

/// A frame taken from the transmit queue and not yet accepted by the TAP.
#[derive(Debug)]
pub struct PendingTx {
    head: u16,
    /// Host copy of the vnet and Ethernet headers.
    header: [u8; HEAD_LEN],
    /// The rest of the frame in guest memory.
    rest: Vec<(GuestAddress, usize)>,
    /// Frame length without the vnet header.
    frame_len: usize,
}

/// Why a chain is not a frame.
#[derive(Debug, Clone, Copy)]
enum Malformed {
    Shape,
    Writable,
    Length,
    Unmapped,
    Offload,
}

impl Engine {
    /// Sends guest frames until the queue is empty, the TAP pushes back or the budget is spent.
    pub fn process_tx(&mut self) -> Result<Progress, VirtioError> {
        let mut used_any = false;
        let mut progress = Progress::More;
        for _ in 0..BUDGET {
            let pending = match self.tx_pending.take() {
                Some(p) => p,
                None => match self.next_tx_frame()? {
                    Some(Some(p)) => p,
                    Some(None) => {
                        used_any = true;
                        continue;
                    }
                    None => {
                        progress = Progress::Idle;
                        break;
                    }
                },
            };
            match self.write_frame(&pending) {
                Ok(_) => self.counters.sent(pending.frame_len),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.tx_pending = Some(pending);
                    progress = Progress::WaitWritable;
                    break;
                }
                Err(e) => {
                    warn_once!(error = %e, "virtio-net: the TAP refused a frame");
                    self.counters.dropped(Drop::TxTapError);
                }
            }
            let mem = self.mem.clone();
            add_used(&mut self.tx, &mem, TX_QUEUE, pending.head, 0)?;
            used_any = true;
        }
        if used_any {
            self.interrupt.signal_used_queue();
        }
        Ok(progress)
    }

    /// Takes the next chain. `None`: the queue is empty; `Some(None)`: the chain was not sendable and
    /// has been returned (dropped and counted); `Some(Some(frame))`: a frame to write.
    fn next_tx_frame(&mut self) -> Result<Option<Option<PendingTx>>, VirtioError> {
        let mem = self.mem.clone();
        let Some(chain) = pop_chain(&mut self.tx, &mem, TX_QUEUE)? else {
            return Ok(None);
        };
        let head = chain.head_index();
        let frame = match collect_chain(&chain) {
            Err(_) => Err(Malformed::Shape),
            Ok(descs) => self.check_frame(head, &descs),
        };
        match frame {
            Ok(p) if p.header[VNET_HDR_LEN + 6..HEAD_LEN - 2] != self.mac => {
                warn_once!(
                    head,
                    "virtio-net: guest sent a frame from a source MAC that is not the card's, dropped"
                );
                self.counters.dropped(Drop::TxSpoofedSource);
            }
            Ok(p) => return Ok(Some(Some(p))),
            Err(why) => {
                warn_once!(head, reason = ?why, "virtio-net: malformed transmit chain returned empty");
                self.counters.dropped(Drop::TxMalformed);
            }
        }
        add_used(&mut self.tx, &mem, TX_QUEUE, head, 0)?;
        Ok(Some(None))
    }

    /// Checks a chain's shape, copies its headers and lists the rest of the frame.
    fn check_frame(
        &self,
        head: u16,
        descs: &[virtio_queue::desc::split::Descriptor],
    ) -> Result<PendingTx, Malformed> {
        if descs.iter().any(|d| d.is_write_only()) {
            return Err(Malformed::Writable);
        }
        let total: usize = descs.iter().map(|d| d.len() as usize).sum();
        if !(HEAD_LEN..=VNET_HDR_LEN + MAX_FRAME_LEN).contains(&total) {
            return Err(Malformed::Length);
        }
        let mut header = [0u8; HEAD_LEN];
        let mut rest = Vec::new();
        let mut filled = 0;
        for d in descs {
            let (addr, len) = (d.addr(), d.len() as usize);
            if len == 0 {
                continue;
            }
            let take = (HEAD_LEN - filled).min(len);
            if take > 0 {
                self.mem
                    .read_slice(&mut header[filled..filled + take], addr)
                    .map_err(|_| Malformed::Unmapped)?;
                filled += take;
            }
            if take < len {
                let start = addr.checked_add(take as u64).ok_or(Malformed::Unmapped)?;
                let len = len - take;
                if !self.mem.check_range(start, len) {
                    return Err(Malformed::Unmapped);
                }
                rest.push((start, len));
                if rest.len() > MAX_SEGMENTS {
                    return Err(Malformed::Shape);
                }
            }
        }
        self.check_offload(&header)?;
        Ok(PendingTx {
            head,
            header,
            rest,
            frame_len: total - VNET_HDR_LEN,
        })
    }

    /// The header may ask only for offloads the driver negotiated (virtio 1.2 5.1.6.2).
    fn check_offload(&self, header: &[u8; HEAD_LEN]) -> Result<(), Malformed> {
        let flags = u32::from(header[0]);
        let gso = u32::from(header[1]);
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && !self.acked(VIRTIO_NET_F_CSUM) {
            return Err(Malformed::Offload);
        }
        if gso & VIRTIO_NET_HDR_GSO_ECN != 0 && !self.acked(VIRTIO_NET_F_HOST_ECN) {
            return Err(Malformed::Offload);
        }
        let allowed = match gso & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE => true,
            VIRTIO_NET_HDR_GSO_TCPV4 => self.acked(VIRTIO_NET_F_HOST_TSO4),
            VIRTIO_NET_HDR_GSO_TCPV6 => self.acked(VIRTIO_NET_F_HOST_TSO6),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Malformed::Offload)
        }
    }

    /// One `writev` of the header copy and the frame's guest memory.
    fn write_frame(&self, p: &PendingTx) -> std::io::Result<usize> {
        let mut iovs = Vec::with_capacity(1 + p.rest.len());
        iovs.push(libc::iovec {
            iov_base: p.header.as_ptr() as *mut libc::c_void,
            iov_len: HEAD_LEN,
        });
        for &(addr, len) in &p.rest {
            for slice in self.mem.get_slices(addr, len) {
                let slice = slice.map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
                iovs.push(libc::iovec {
                    iov_base: slice.ptr_guard().as_ptr() as *mut libc::c_void,
                    iov_len: slice.len(),
                });
            }
        }
        // SAFETY: the first iovec points at `p.header`, alive for the call; the others at guest memory
        // slices vm-memory just checked, which stay mapped while `self.mem` (a clone of the mapping) lives.
        unsafe { self.tap.writev(&iovs) }
    }
}
