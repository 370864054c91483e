//! Receive path: frames from the TAP into the guest's receive queue.
//!
//! A frame is read from the TAP only while the guest has a buffer chain available, so nothing is dropped
//! because the ring is empty: the event loop stops watching the TAP ([`Progress::WaitBuffers`]) and the
//! kernel queues frames until the guest adds buffers and kicks. Each frame goes into one chain (no
//! `VIRTIO_NET_F_MRG_RXBUF`; the driver posts chains big enough for the negotiated offloads, virtio 1.2
//! 5.1.6.3.1). A chain that cannot take a frame (device-readable parts, addresses outside memory) is
//! returned empty and the frame tries the next one; a frame larger than a well-formed chain is dropped
//! and counted. Writes go through the dirty-tracked guest memory, so every byte the device stores is in
//! the dirty bitmap.

use std::io::{ErrorKind, Write};
use std::num::Wrapping;
use std::sync::atomic::Ordering;

use virtio_queue::{QueueOwnedT, QueueT};

use super::counters::Drop;
use super::engine::{Engine, Progress, BUDGET};
use super::tap::VNET_HDR_LEN;
use super::RX_QUEUE;
use crate::virtio::{add_used, collect_chain, pop_chain, warn_once, VirtioError};

impl Engine {
    /// Whether the driver has made a chain available that the device has not taken yet.
    fn rx_has_buffer(&self) -> Result<bool, VirtioError> {
        let avail = self
            .rx
            .avail_idx(&self.mem, Ordering::Acquire)
            .map_err(|source| VirtioError::PopChain {
                index: RX_QUEUE,
                source,
            })?;
        Ok(avail != Wrapping(self.rx.next_avail()))
    }

    /// Moves frames from the TAP into the guest until the TAP is empty, the guest has no buffers or the
    /// budget is spent.
    pub fn process_rx(&mut self) -> Result<Progress, VirtioError> {
        let mut used_any = false;
        let mut progress = Progress::More;
        for _ in 0..BUDGET {
            if self.rx_frame.is_none() {
                if !self.rx_has_buffer()? {
                    progress = Progress::WaitBuffers;
                    break;
                }
                match self.tap.read(&mut self.rx_buf) {
                    Ok(n) if n < VNET_HDR_LEN => {
                        warn_once!(
                            len = n,
                            "virtio-net: TAP gave a frame shorter than its vnet header"
                        );
                        continue;
                    }
                    Ok(n) => self.rx_frame = Some(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        progress = Progress::Idle;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn_once!(error = %e, "virtio-net: reading the TAP failed");
                        progress = Progress::Idle;
                        break;
                    }
                }
            }
            match self.deliver()? {
                Some(used) => used_any |= used,
                None => {
                    progress = Progress::WaitBuffers;
                    break;
                }
            }
        }
        if used_any {
            self.interrupt.signal_used_queue();
        }
        Ok(progress)
    }

    /// Puts the frame in `rx_buf` into the next chain. `None`: no chain available (the frame stays);
    /// `Some(used)`: the frame was delivered or dropped, `used` says whether a chain went to the used ring.
    fn deliver(&mut self) -> Result<Option<bool>, VirtioError> {
        let Some(len) = self.rx_frame else {
            return Ok(Some(false));
        };
        let mem = self.mem.clone();
        let Some(chain) = pop_chain(&mut self.rx, &mem, RX_QUEUE)? else {
            return Ok(None);
        };
        let head = chain.head_index();
        let well_formed =
            matches!(collect_chain(&chain), Ok(descs) if descs.iter().all(|d| d.is_write_only()));
        let writer = if well_formed {
            chain.writer(&mem).ok()
        } else {
            None
        };
        let Some(mut writer) = writer else {
            warn_once!(
                head,
                "virtio-net: receive chain with device-readable or unmapped buffers, returned empty"
            );
            self.counters.dropped(Drop::RxBadChain);
            add_used(&mut self.rx, &mem, RX_QUEUE, head, 0)?;
            // The frame stays for the next chain.
            return Ok(Some(true));
        };
        if writer.available_bytes() < len {
            warn_once!(
                frame = len,
                buffer = writer.available_bytes(),
                "virtio-net: frame larger than the guest's receive buffer, dropped"
            );
            self.counters.dropped(Drop::RxTooBig);
            self.rx_frame = None;
            // The chain was not used: give it back for the next frame.
            self.rx.go_to_previous_position();
            return Ok(Some(false));
        }
        // num_buffers (bytes 10..12 of virtio_net_hdr_v1) is 1: one chain per frame.
        self.rx_buf[10..12].copy_from_slice(&1u16.to_le_bytes());
        if writer.write_all(&self.rx_buf[..len]).is_err() {
            // Mapped a moment ago; only a concurrent memory change could get here.
            warn_once!(head, "virtio-net: writing a frame into guest memory failed");
            self.counters.dropped(Drop::RxBadChain);
            add_used(&mut self.rx, &mem, RX_QUEUE, head, 0)?;
            return Ok(Some(true));
        }
        self.counters.received(len - VNET_HDR_LEN);
        self.rx_frame = None;
        add_used(&mut self.rx, &mem, RX_QUEUE, head, len as u32)?;
        Ok(Some(true))
    }
}
