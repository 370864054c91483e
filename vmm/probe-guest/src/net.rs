//! virtio-net driver (virtio 1.2 section 5.1), polled: a receive ring kept full of buffers and an echo
//! loop that sends each received frame back from the same buffer (no copy: the buffer goes from the
//! receive queue to the transmit queue and back).
//!
//! The last buffer is kept for frames the probe makes itself ([`Net::send`]); [`Net::receive`] hands one
//! received frame at a time to a caller that may turn it into a reply in place (`ping.rs`).
//!
//! Buffer `i` of the pool is always descriptor `i`, in the receive queue's table while the device may
//! fill it and in the transmit queue's table while the device sends it; [`Slot`] records which, so a
//! device returning a buffer it does not hold is noticed instead of corrupting the rings.

use crate::arena;
use crate::netframe::{self, F_GUEST_TSO4, F_GUEST_TSO6, F_HOST_TSO4, F_HOST_TSO6, F_MAC, F_STATUS, HDR_LEN};
use crate::serial;
use crate::virtio::{Error, Queue, Transport, DESC_F_WRITE};

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Ring size asked for; the device may offer less.
const QUEUE_SIZE: u16 = 256;
const MAX_BUFFERS: usize = QUEUE_SIZE as usize;

// Config space (struct virtio_net_config).
const CFG_MAC: usize = 0;
const CFG_STATUS: usize = 6;
const CFG_MTU: usize = 10;
const LINK_UP: u16 = 1;

/// Received frames handled before the transmit queue is notified: bounds the latency of the first
/// frame of a burst while still sending many frames per VM exit.
const RX_BATCH: u32 = 64;
/// Turns of the echo loop without progress between two looks at the serial port (each look is a VM
/// exit); input there aborts the echo.
const IDLE_TURNS_PER_SERIAL_CHECK: u32 = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Driver,
    Rx,
    Tx,
}

/// Frame and byte counts (bytes are Ethernet frames, without the virtio-net header).
#[derive(Clone, Copy, Default)]
pub struct Stats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Buffers the device returned that could not be echoed: too short, or not the device's to return.
    pub bad: u64,
}

/// How an echo ended early.
pub enum EchoError {
    /// Serial input arrived while waiting for frames.
    Interrupted,
    /// The device returned a buffer it did not hold or an impossible length.
    Device,
}

pub struct Net {
    transport: Transport,
    rx: Queue,
    tx: Queue,
    features: u64,
    mac: [u8; 6],
    mtu: u16,
    link_up: Option<bool>,
    pool: *mut u8,
    buf_size: usize,
    buffers: u16,
    slots: [Slot; MAX_BUFFERS],
    stats: Stats,
    /// Set when the device misbehaved: it was reset and is out of service.
    failed: bool,
}

/// What [`Net::receive`] found.
pub enum Received {
    /// No frame was waiting.
    Nothing,
    /// A frame was handled (replied to or given back to the receive queue).
    Frame,
}

impl Net {
    /// Negotiates (with the checksum and TSO offloads if `offload`), reads the configuration, sets up
    /// both queues and fills the receive queue.
    pub fn init(transport: Transport, offload: bool) -> Result<Self, Error> {
        let features = transport.negotiate_with(|offered| netframe::choose_features(offered, offload))?;
        let mac = if features & F_MAC != 0 {
            read_mac(&transport)
        } else {
            // A locally administered address; the VMM would drop everything sent from it.
            [0x02, 0, 0, 0, 0, 1]
        };
        let mtu = netframe::effective_mtu(features, transport.config16(CFG_MTU));
        let link_up = (features & F_STATUS != 0).then(|| transport.config16(CFG_STATUS) & LINK_UP != 0);
        let rx = transport.setup_queue_sized(RX_QUEUE, QUEUE_SIZE)?;
        let tx = transport.setup_queue_sized(TX_QUEUE, QUEUE_SIZE)?;
        let buf_size = netframe::rx_buffer_size(features, mtu);
        let buffers = (arena::NET_POOL_BYTES / buf_size)
            .min(rx.size() as usize)
            .min(tx.size() as usize);
        // At least one receive buffer and the send buffer.
        if buffers < 2 {
            transport.fail();
            return Err(Error::QueueUnavailable);
        }
        let pool = arena::alloc_uninit(buffers * buf_size, 64).ok_or(Error::OutOfMemory)?;
        transport.driver_ok();
        let mut net = Self {
            transport,
            rx,
            tx,
            features,
            mac,
            mtu,
            link_up,
            pool,
            buf_size,
            buffers: buffers as u16,
            slots: [Slot::Driver; MAX_BUFFERS],
            stats: Stats::default(),
            failed: false,
        };
        for i in 0..net.send_buffer() {
            let addr = net.buffer(i) as u64;
            net.rx.set_desc(i, addr, buf_size as u32, DESC_F_WRITE, 0);
            net.post_rx(i);
        }
        net.rx.notify();
        Ok(net)
    }

    pub fn report(&self) {
        serial::puts("probe:   net: mac ");
        serial::write_bytes(&netframe::fmt_mac(&self.mac));
        serial::puts(", mtu ");
        serial::put_dec(self.mtu as u64);
        match self.link_up {
            Some(true) => serial::puts(", link up"),
            Some(false) => serial::puts(", link down"),
            None => {}
        }
        serial::puts(", ");
        serial::put_dec(self.buffers as u64);
        serial::puts(" rx buffers of ");
        serial::put_dec(self.buf_size as u64);
        serial::puts(" bytes");
        if self.features & (F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6) != 0 {
            serial::puts(", tso");
        }
        serial::puts("\r\n");
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The buffer kept for [`Net::send`]: never in the receive queue.
    fn send_buffer(&self) -> u16 {
        self.buffers - 1
    }

    /// Sends `frame` (an Ethernet frame) from the send buffer and waits (bounded) until the device has
    /// taken it. False if the frame does not fit, the device failed or did not take it; received
    /// frames are left waiting meanwhile.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        let id = self.send_buffer();
        if self.failed || HDR_LEN + frame.len() > self.buf_size || self.slots[id as usize] != Slot::Driver {
            return false;
        }
        let buf = self.buffer(id);
        // SAFETY: the send buffer is the driver's (Slot::Driver): the device holds no descriptor for it,
        // and HDR_LEN + frame.len() ≤ buf_size bytes are written.
        let out = unsafe { core::slice::from_raw_parts_mut(buf, HDR_LEN + frame.len()) };
        out[..HDR_LEN].fill(0);
        out[HDR_LEN..].copy_from_slice(frame);
        self.tx.set_desc(id, buf as u64, out.len() as u32, 0, 0);
        self.slots[id as usize] = Slot::Tx;
        self.tx.push(id);
        self.tx.notify();
        for _ in 0..crate::virtio::POLL_LIMIT {
            self.complete_tx();
            if self.slots[id as usize] == Slot::Driver {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
                return true;
            }
            core::hint::spin_loop();
        }
        false
    }

    /// Takes transmissions the device finished: the send buffer back to the driver, replies back to the
    /// receive queue.
    fn complete_tx(&mut self) {
        let mut reposted = false;
        while let Some((id, _)) = self.tx.pop_used() {
            if self.take(id, Slot::Tx) && id != self.send_buffer() {
                self.post_rx(id);
                reposted = true;
            }
        }
        if reposted {
            self.rx.notify_if_needed();
        }
    }

    /// Hands the next received frame (if any) to `handle`, which may rewrite it in place into a reply
    /// and return the reply's length: the reply is sent from the same buffer. Also finishes earlier
    /// sends. `Err` if the device returned a buffer it did not hold (it is then out of service).
    pub fn receive(
        &mut self,
        handle: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<Received, EchoError> {
        if self.failed {
            return Err(EchoError::Device);
        }
        self.complete_tx();
        let Some((id, len)) = self.rx.pop_used() else {
            return Ok(Received::Nothing);
        };
        if !self.take(id, Slot::Rx) || len as usize > self.buf_size {
            self.failed = true;
            self.transport.reset();
            return Err(EchoError::Device);
        }
        let buf = self.buffer(id);
        // SAFETY: the device returned buffer `id` (Slot::Driver now) with `len` ≤ buf_size bytes written.
        let frame = unsafe { core::slice::from_raw_parts_mut(buf, len as usize) };
        let reply = match frame.get_mut(HDR_LEN..) {
            Some(eth) => {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += eth.len() as u64;
                handle(eth).filter(|&n| n <= eth.len())
            }
            None => {
                self.stats.bad += 1;
                None
            }
        };
        match reply {
            Some(n) => {
                frame[..HDR_LEN].fill(0);
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += n as u64;
                self.tx.set_desc(id, buf as u64, (HDR_LEN + n) as u32, 0, 0);
                self.slots[id as usize] = Slot::Tx;
                self.tx.push(id);
                self.tx.notify();
            }
            None => {
                self.post_rx(id);
                self.rx.notify_if_needed();
            }
        }
        Ok(Received::Frame)
    }

    fn buffer(&self, i: u16) -> *mut u8 {
        // SAFETY: i < buffers, so the buffer lies inside the pool of buffers * buf_size bytes.
        unsafe { self.pool.add(i as usize * self.buf_size) }
    }

    /// Hands buffer `i` (descriptor `i` of the receive table, set up once in `init`) to the device.
    fn post_rx(&mut self, i: u16) {
        self.slots[i as usize] = Slot::Rx;
        self.rx.push(i);
    }

    /// The slot of a buffer the device returned, if it was the device's to return on that queue.
    fn take(&mut self, id: u16, from: Slot) -> bool {
        match self.slots.get_mut(id as usize) {
            Some(s) if *s == from && id < self.buffers => {
                *s = Slot::Driver;
                true
            }
            _ => {
                self.stats.bad += 1;
                false
            }
        }
    }

    /// Receives `count` frames and sends each back (see `netframe::echo_rewrite`), in arrival order.
    /// Returns once the device has taken every echo off the transmit queue. Frames that arrived before
    /// the call are echoed first.
    pub fn echo(&mut self, count: u64) -> Result<u64, (EchoError, u64)> {
        if self.failed {
            return Err((EchoError::Device, 0));
        }
        let mut received = 0u64;
        let mut sent = 0u64;
        let mut idle = 0u32;
        let mut outcome = Ok(());
        while sent < count {
            let mut progress = false;
            // Sent buffers go back to the receive queue.
            let mut reposted = false;
            while let Some((id, _)) = self.tx.pop_used() {
                if !self.take(id, Slot::Tx) {
                    outcome = Err(EchoError::Device);
                    break;
                }
                if id == self.send_buffer() {
                    continue;
                }
                self.post_rx(id);
                sent += 1;
                reposted = true;
            }
            if reposted {
                self.rx.notify_if_needed();
                progress = true;
            }
            // Received frames become echoes.
            let mut queued = 0;
            while outcome.is_ok() && received < count && queued < RX_BATCH {
                let Some((id, len)) = self.rx.pop_used() else {
                    break;
                };
                if !self.take(id, Slot::Rx) {
                    outcome = Err(EchoError::Device);
                    break;
                }
                if self.queue_echo(id, len) {
                    received += 1;
                    queued += 1;
                } else {
                    self.post_rx(id);
                    self.rx.notify_if_needed();
                }
                progress = true;
            }
            if queued > 0 {
                self.tx.notify_if_needed();
            }
            if outcome.is_err() {
                break;
            }
            if progress {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle >= IDLE_TURNS_PER_SERIAL_CHECK {
                idle = 0;
                if serial::try_read().is_some() {
                    outcome = Err(EchoError::Interrupted);
                    break;
                }
            }
            core::hint::spin_loop();
        }
        match outcome {
            Ok(()) => Ok(sent),
            Err(EchoError::Interrupted) => {
                self.reclaim_tx();
                Err((EchoError::Interrupted, sent))
            }
            Err(EchoError::Device) => {
                // Its rings can no longer be trusted: take it out of service.
                self.failed = true;
                self.transport.reset();
                Err((EchoError::Device, sent))
            }
        }
    }

    /// Rewrites received buffer `id` (`len` bytes) into its echo and queues it for transmission.
    /// False (and counted) if it cannot be echoed.
    fn queue_echo(&mut self, id: u16, len: u32) -> bool {
        let len = len as usize;
        if len > self.buf_size {
            self.stats.bad += 1;
            return false;
        }
        let buf = self.buffer(id);
        // SAFETY: the device returned buffer `id` (Slot::Driver now) with `len` ≤ buf_size bytes
        // written; nothing else refers to it until it is queued below.
        let frame = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        if netframe::echo_rewrite(frame, &self.mac).is_err() {
            self.stats.bad += 1;
            return false;
        }
        let bytes = (len - HDR_LEN) as u64;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += bytes;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += bytes;
        self.tx.set_desc(id, buf as u64, len as u32, 0, 0);
        self.slots[id as usize] = Slot::Tx;
        self.tx.push(id);
        true
    }

    /// After an aborted echo: waits (bounded) for the device to finish the queued transmissions, so
    /// their buffers go back to the receive queue.
    fn reclaim_tx(&mut self) {
        for _ in 0..crate::virtio::POLL_LIMIT {
            if !self.slots[..self.send_buffer() as usize].contains(&Slot::Tx) {
                break;
            }
            while let Some((id, _)) = self.tx.pop_used() {
                if self.take(id, Slot::Tx) && id != self.send_buffer() {
                    self.post_rx(id);
                }
            }
            core::hint::spin_loop();
        }
        self.rx.notify();
    }
}

/// The MAC (six 8-bit fields), read again if the configuration changed in between.
fn read_mac(t: &Transport) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for _ in 0..4 {
        let before = t.config_generation();
        for (i, b) in mac.iter_mut().enumerate() {
            *b = t.config8(CFG_MAC + i);
        }
        if t.config_generation() == before {
            break;
        }
    }
    mac
}
