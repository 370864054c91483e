//! virtio-blk driver: one synchronous request at a time (virtio 1.2 section 5.2).

use crate::arena;
use crate::serial;
use crate::virtio::{Error, Queue, Transport, DESC_F_NEXT, DESC_F_WRITE};

const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;

const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

pub const SECTOR_SIZE: usize = 512;
pub const ID_BYTES: usize = 20;

// Request memory layout inside one arena block.
const HEADER: usize = 0; // 16 bytes: type u32, reserved u32, sector u64
const STATUS: usize = 16; // 1 byte, written by the device
const DATA: usize = 64; // SECTOR_SIZE bytes
const REQUEST_BYTES: usize = DATA + SECTOR_SIZE;

pub struct Block {
    transport: Transport,
    queue: Queue,
    mem: *mut u8,
    capacity: u64,
    read_only: bool,
    flush: bool,
    failed: bool,
}

impl Block {
    pub fn init(transport: Transport) -> Result<Self, Error> {
        let features = transport.negotiate(F_RO | F_FLUSH)?;
        let queue = transport.setup_queue(0)?;
        if queue.size() < 3 {
            transport.fail();
            return Err(Error::QueueUnavailable);
        }
        let mem = arena::alloc(REQUEST_BYTES, 64).ok_or(Error::OutOfMemory)?;
        let capacity = transport.config64(0);
        transport.driver_ok();
        Ok(Self {
            transport,
            queue,
            mem,
            capacity,
            read_only: features & F_RO != 0,
            flush: features & F_FLUSH != 0,
            failed: false,
        })
    }

    pub fn report(&self) {
        serial::puts("probe:   block: ");
        serial::put_dec(self.capacity);
        serial::puts(" sectors");
        if self.read_only {
            serial::puts(", read-only");
        }
        if self.flush {
            serial::puts(", flush");
        }
        serial::puts("\r\n");
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Runs one request; `data_len` bytes of the data buffer go out (`device_writes` false) or come back.
    fn request(
        &mut self,
        kind: u32,
        sector: u64,
        data_len: usize,
        device_writes: bool,
    ) -> Result<u32, Error> {
        if self.failed {
            return Err(Error::DeviceFailed);
        }
        let base = self.mem as u64;
        // SAFETY: `mem` is this driver's REQUEST_BYTES arena block; the device only touches it while
        // `submit_and_wait` runs.
        unsafe {
            (self.mem.add(HEADER) as *mut u32).write_volatile(kind);
            (self.mem.add(HEADER + 4) as *mut u32).write_volatile(0);
            (self.mem.add(HEADER + 8) as *mut u64).write_volatile(sector);
            self.mem.add(STATUS).write_volatile(0xff);
        }
        let status_addr = base + STATUS as u64;
        if data_len > 0 {
            let flags = DESC_F_NEXT | if device_writes { DESC_F_WRITE } else { 0 };
            self.queue.set_desc(0, base + HEADER as u64, 16, DESC_F_NEXT, 1);
            self.queue
                .set_desc(1, base + DATA as u64, data_len as u32, flags, 2);
            self.queue.set_desc(2, status_addr, 1, DESC_F_WRITE, 0);
        } else {
            self.queue.set_desc(0, base + HEADER as u64, 16, DESC_F_NEXT, 2);
            self.queue.set_desc(2, status_addr, 1, DESC_F_WRITE, 0);
        }
        let written = match self.queue.submit_and_wait(0) {
            Ok(n) => n,
            Err(e) => {
                // A late completion would scribble on the next request: take the device out of service.
                self.failed = true;
                self.transport.reset();
                return Err(e);
            }
        };
        // SAFETY: as above; the device has completed the request.
        match unsafe { self.mem.add(STATUS).read_volatile() } {
            S_OK => Ok(written),
            S_IOERR => Err(Error::Io),
            S_UNSUPP => Err(Error::Unsupported),
            _ => Err(Error::BadResponse),
        }
    }

    fn check_sector(&self, sector: u64) -> Result<(), Error> {
        if sector >= self.capacity {
            Err(Error::OutOfRange)
        } else {
            Ok(())
        }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: DATA is inside the request block.
        unsafe { self.mem.add(DATA) }
    }

    /// Reads `sector`; the returned slice is valid until the next request.
    pub fn read(&mut self, sector: u64) -> Result<&[u8], Error> {
        self.check_sector(sector)?;
        self.request(T_IN, sector, SECTOR_SIZE, true)?;
        // SAFETY: the data buffer holds SECTOR_SIZE bytes and no request is in flight.
        Ok(unsafe { core::slice::from_raw_parts(self.data(), SECTOR_SIZE) })
    }

    /// Writes `bytes` zero-padded to one sector.
    pub fn write(&mut self, sector: u64, bytes: &[u8]) -> Result<(), Error> {
        self.check_sector(sector)?;
        let n = bytes.len().min(SECTOR_SIZE);
        // SAFETY: the data buffer holds SECTOR_SIZE bytes and no request is in flight.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data(), n);
            core::ptr::write_bytes(self.data().add(n), 0, SECTOR_SIZE - n);
        }
        self.request(T_OUT, sector, SECTOR_SIZE, false).map(|_| ())
    }

    /// Without VIRTIO_BLK_F_FLUSH the device is write-through (spec 5.2.6.2), so there is nothing to do.
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.flush {
            return if self.failed {
                Err(Error::DeviceFailed)
            } else {
                Ok(())
            };
        }
        self.request(T_FLUSH, 0, 0, false).map(|_| ())
    }

    /// The device serial (VIRTIO_BLK_T_GET_ID), up to 20 bytes, NUL-terminated if shorter.
    pub fn id(&mut self) -> Result<[u8; ID_BYTES], Error> {
        self.request(T_GET_ID, 0, ID_BYTES, true)?;
        let mut id = [0u8; ID_BYTES];
        // SAFETY: the data buffer holds at least ID_BYTES bytes and no request is in flight.
        unsafe { core::ptr::copy_nonoverlapping(self.data(), id.as_mut_ptr(), ID_BYTES) };
        Ok(id)
    }
}
