//! COM1: a vm-superio 8250 UART whose output fans out to every `serial.sock` client, a 64 KiB
//! console ring (served by the `console-log` control command) and an optional log file.
//!
//! The [`SerialHub`] outlives reboots; each boot creates a new [`SerialDevice`] and attaches it.
//! Input from clients is queued in the hub and moved into the UART's 64-byte FIFO as the guest
//! drains it, so a fast typist never loses bytes to a full FIFO.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::lock;

/// Console bytes kept for `console-log`.
pub const CONSOLE_RING_BYTES: usize = 64 * 1024;
/// Chunks buffered per client before output to that (slow) client is dropped.
const CLIENT_QUEUE_CHUNKS: usize = 4096;
/// Input bytes buffered while the guest is not reading.
const MAX_PENDING_INPUT: usize = 64 * 1024;

/// Raises the UART interrupt through an irqfd.
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Serial state that survives reboots.
pub struct SerialHub {
    clients: Mutex<Vec<SyncSender<Vec<u8>>>>,
    ring: Mutex<VecDeque<u8>>,
    log_file: Option<Mutex<File>>,
    input: Mutex<VecDeque<u8>>,
    device: Mutex<Weak<Mutex<SerialDevice>>>,
}

impl SerialHub {
    pub fn new(log_file: Option<File>) -> Arc<Self> {
        Arc::new(SerialHub {
            clients: Mutex::new(Vec::new()),
            ring: Mutex::new(VecDeque::with_capacity(CONSOLE_RING_BYTES)),
            log_file: log_file.map(Mutex::new),
            input: Mutex::new(VecDeque::new()),
            device: Mutex::new(Weak::new()),
        })
    }

    /// A new client: returns the receiver of all future output.
    pub fn subscribe(&self) -> Receiver<Vec<u8>> {
        let (tx, rx) = sync_channel(CLIENT_QUEUE_CHUNKS);
        lock(&self.clients).push(tx);
        rx
    }

    /// The last `CONSOLE_RING_BYTES` of output.
    pub fn console_log(&self) -> Vec<u8> {
        lock(&self.ring).iter().copied().collect()
    }

    fn output(&self, buf: &[u8]) {
        {
            let mut ring = lock(&self.ring);
            let overflow = (ring.len() + buf.len()).saturating_sub(CONSOLE_RING_BYTES);
            let drop_n = overflow.min(ring.len());
            ring.drain(..drop_n);
            ring.extend(buf.iter().rev().take(CONSOLE_RING_BYTES).rev());
        }
        if let Some(f) = &self.log_file {
            let _ = lock(f).write_all(buf);
        }
        lock(&self.clients).retain(|c| match c.try_send(buf.to_vec()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Bytes typed by a client: queued, then pushed into the UART FIFO as far as it has room.
    pub fn input(&self, bytes: &[u8]) {
        let dev = lock(&self.device).upgrade();
        match dev {
            Some(dev) => {
                let mut dev = lock(&dev);
                self.queue_input(bytes);
                dev.fill_fifo(self);
            }
            None => self.queue_input(bytes),
        }
    }

    fn queue_input(&self, bytes: &[u8]) {
        let mut q = lock(&self.input);
        let room = MAX_PENDING_INPUT.saturating_sub(q.len());
        q.extend(bytes.iter().take(room));
    }

    /// Attaches the UART of the current boot.
    pub fn attach(&self, dev: &Arc<Mutex<SerialDevice>>) {
        *lock(&self.device) = Arc::downgrade(dev);
    }
}

/// The `Write` side vm-superio sends transmitted bytes to.
pub struct HubWriter(Arc<SerialHub>);

impl Write for HubWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.output(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The 8250 on the port-I/O bus at `SERIAL_PORT_BASE`.
pub struct SerialDevice {
    uart: Serial<EventFdTrigger, NoEvents, HubWriter>,
    hub: Arc<SerialHub>,
}

impl SerialDevice {
    pub fn new(irq: EventFd, hub: Arc<SerialHub>) -> Arc<Mutex<Self>> {
        let dev = Arc::new(Mutex::new(SerialDevice {
            uart: Serial::new(EventFdTrigger(irq), HubWriter(hub.clone())),
            hub: hub.clone(),
        }));
        hub.attach(&dev);
        dev
    }

    fn fill_fifo(&mut self, hub: &SerialHub) {
        let mut q = lock(&hub.input);
        let n = self.uart.fifo_capacity().min(q.len());
        if n == 0 {
            return;
        }
        let bytes: Vec<u8> = q.drain(..n).collect();
        if let Err(e) = self.uart.enqueue_raw_bytes(&bytes) {
            tracing::debug!(error = ?e, "serial input not delivered");
        }
    }
}

/// Receive buffer register offset.
const RBR: u8 = 0;

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let Ok(off) = u8::try_from(offset) else {
            data.fill(0xff);
            return;
        };
        let v = self.uart.read(off);
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
        if off == RBR {
            let hub = self.hub.clone();
            self.fill_fifo(&hub);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), Some(&v)) = (u8::try_from(offset), data.first()) {
            if let Err(e) = self.uart.write(off, v) {
                tracing::debug!(error = ?e, "serial write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LSR: u64 = 5;
    const LSR_DATA_READY: u8 = 1;

    #[test]
    fn output_reaches_clients_ring_and_input_survives_a_full_fifo() {
        let hub = SerialHub::new(None);
        let rx = hub.subscribe();
        let dev = SerialDevice::new(EventFd::new(libc::EFD_NONBLOCK).unwrap(), hub.clone());
        for b in b"hi" {
            lock(&dev).write(0, &[*b]);
        }
        let got: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(got, b"hi");
        assert_eq!(hub.console_log(), b"hi");

        let typed: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        hub.input(&typed);
        let mut read = Vec::new();
        let mut b = [0u8];
        loop {
            lock(&dev).read(LSR, &mut b);
            if b[0] & LSR_DATA_READY == 0 {
                break;
            }
            lock(&dev).read(0, &mut b);
            read.push(b[0]);
        }
        assert_eq!(read, typed);
    }

    #[test]
    fn console_ring_keeps_the_last_64k() {
        let hub = SerialHub::new(None);
        hub.output(&vec![b'x'; CONSOLE_RING_BYTES]);
        hub.output(b"tail");
        let log = hub.console_log();
        assert_eq!(log.len(), CONSOLE_RING_BYTES);
        assert!(log.ends_with(b"xtail"));
    }
}
