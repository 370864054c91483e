//! virtio-blk over a raw disk image file: IN, OUT, FLUSH and GET_ID, one request queue.
//!
//! Requests are processed synchronously when the driver notifies. A request is laid out as a
//! device-readable 16-byte header, data (readable for OUT, writable for IN/GET_ID) and a device-writable
//! status byte at the very end; no framing across descriptors is assumed. Malformed requests get
//! VIRTIO_BLK_S_IOERR/UNSUPP when the status byte is reachable, otherwise the chain is returned with used
//! length 0. The status byte is always written after the data.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{DescriptorChain, Queue, Reader, Writer};
use vm_memory::bitmap::BitmapSlice;
use vm_memory::{Address, Bytes, Permissions};

use super::block_counters::BlockCounters;
use super::{
    add_used, collect_chain, pop_chain, warn_once, ActivateContext, GuestMemory, GuestMemoryT, Interrupt,
    VirtioDevice, VirtioError, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC,
};

/// Sector size of the virtio-blk protocol.
pub const SECTOR_SIZE: u64 = 512;
/// Request queue size.
pub const QUEUE_SIZE: u16 = 256;
/// Largest single data segment the driver may send (config `size_max`).
pub const SIZE_MAX: u32 = 1 << 20;
/// Largest number of data segments per request (config `seg_max`): the ring minus header and status.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Most data one request may carry: `seg_max` segments of `size_max` (254 MiB), what the config space
/// promises the driver. Indirect tables of up to 65535 buffers that may overlap let a chain claim far
/// more than guest RAM; a bound keeps the used length inside its `u32` and one request from holding the
/// vCPU for a long copy.
pub const MAX_REQUEST_DATA: usize = SEG_MAX as usize * SIZE_MAX as usize;
/// Length of the request header (type, reserved, sector).
const HEADER_LEN: usize = 16;
/// Bounce buffer for file <-> guest copies; large requests are copied in chunks of this size.
const CHUNK: usize = 64 * 1024;
/// Config space exposed: capacity, size_max, seg_max, geometry, blk_size.
const CONFIG_LEN: usize = 24;

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("Failed to open disk image {path}")]
    OpenImage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to read the size of disk image {path}")]
    ImageSize {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Disk serial is {0} bytes long, at most 20 are allowed")]
    SerialTooLong(usize),
}

/// How to back a virtio-blk device.
#[derive(Debug, Clone)]
pub struct BlockConfig {
    pub path: PathBuf,
    pub read_only: bool,
    /// Returned by VIRTIO_BLK_T_GET_ID (`/sys/block/vdX/serial`), at most 20 bytes.
    pub serial: String,
}

/// A virtio-blk device backed by a raw image file.
pub struct Block {
    /// Shared with the VMM, which opens the image once and keeps it across guest reboots.
    file: Arc<File>,
    read_only: bool,
    serial: [u8; VIRTIO_BLK_ID_BYTES as usize],
    capacity_sectors: u64,
    config: [u8; CONFIG_LEN],
    bounce: Vec<u8>,
    active: Option<Active>,
    /// Completed I/O, shared with the control socket and kept across reboots.
    counters: Arc<BlockCounters>,
}

struct Active {
    mem: GuestMemory,
    interrupt: Interrupt,
    queue: Queue,
}

/// A request answer: status byte and how many bytes of writable data were produced before it.
struct Outcome {
    status: u32,
    data_written: u32,
}

impl Outcome {
    fn status(status: u32) -> Self {
        Self {
            status,
            data_written: 0,
        }
    }
}

/// Opens the image of `cfg` for reading, and for writing unless the disk is read-only.
pub fn open_image(cfg: &BlockConfig) -> Result<File, BlockError> {
    OpenOptions::new()
        .read(true)
        .write(!cfg.read_only)
        .open(&cfg.path)
        .map_err(|source| BlockError::OpenImage {
            path: cfg.path.clone(),
            source,
        })
}

impl Block {
    /// Opens the image and creates the device (see [`Block::with_file`]).
    pub fn new(cfg: &BlockConfig) -> Result<Block, BlockError> {
        Self::with_file(cfg, Arc::new(open_image(cfg)?))
    }

    /// Creates the device on an image opened by [`open_image`]; its size is read now, so a disk
    /// resized between guest reboots shows its new size at the next boot.
    pub fn with_file(cfg: &BlockConfig, file: Arc<File>) -> Result<Block, BlockError> {
        let serial_bytes = cfg.serial.as_bytes();
        if serial_bytes.len() > VIRTIO_BLK_ID_BYTES as usize {
            return Err(BlockError::SerialTooLong(serial_bytes.len()));
        }
        let mut serial = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        serial[..serial_bytes.len()].copy_from_slice(serial_bytes);

        let len = file
            .metadata()
            .map_err(|source| BlockError::ImageSize {
                path: cfg.path.clone(),
                source,
            })?
            .len();
        if !len.is_multiple_of(SECTOR_SIZE) {
            tracing::warn!(path = %cfg.path.display(), len, "disk image size is not a multiple of 512; the tail is not visible");
        }
        let capacity_sectors = len / SECTOR_SIZE;

        let mut config = [0u8; CONFIG_LEN];
        config[0..8].copy_from_slice(&capacity_sectors.to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        // geometry (16..20) unused; blk_size (20..24) only meaningful with VIRTIO_BLK_F_BLK_SIZE.
        config[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());

        Ok(Block {
            file,
            read_only: cfg.read_only,
            serial,
            capacity_sectors,
            config,
            bounce: vec![0u8; CHUNK],
            active: None,
            counters: Arc::new(BlockCounters::new(&cfg.serial)),
        })
    }

    /// Counts this device's I/O in `counters` (the disk's, which outlive this boot's device).
    pub fn with_counters(mut self, counters: Arc<BlockCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Disk size in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity_sectors
    }

    /// Handles one chain and returns the used length to report.
    fn handle_chain<M: GuestMemoryT>(&mut self, mem: &M, chain: DescriptorChain<&M>) -> u32 {
        let descs = match collect_chain(&chain) {
            Ok(d) => d,
            Err(shape) => {
                warn_once!(?shape, "virtio-blk: malformed descriptor chain dropped");
                return 0;
            }
        };
        // The status byte is the last byte of the last (device-writable) descriptor.
        let status_addr = match descs.last() {
            Some(d) if d.is_write_only() && d.len() > 0 => d.addr().checked_add(u64::from(d.len()) - 1),
            _ => None,
        };
        let Some(status_addr) = status_addr.filter(|a| mem.check_range(*a, 1, Permissions::Write)) else {
            warn_once!("virtio-blk: request without a usable status byte dropped");
            return 0;
        };

        let outcome = self.execute(mem, chain);
        if outcome.status != VIRTIO_BLK_S_OK {
            tracing::debug!(status = outcome.status, "virtio-blk: request failed");
        }
        if mem.write_obj(outcome.status as u8, status_addr).is_err() {
            return 0;
        }
        outcome.data_written.saturating_add(1)
    }

    fn execute<M: GuestMemoryT>(&mut self, mem: &M, chain: DescriptorChain<&M>) -> Outcome {
        let mut reader: Reader<'_, _> = match chain.clone().reader(mem) {
            Ok(r) => r,
            Err(_) => {
                warn_once!("virtio-blk: readable descriptor outside guest memory");
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
        };
        let mut writer: Writer<'_, _> = match chain.writer(mem) {
            Ok(w) => w,
            Err(_) => {
                warn_once!("virtio-blk: writable descriptor outside guest memory");
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
        };
        let mut header = [0u8; HEADER_LEN];
        if reader.available_bytes() < HEADER_LEN || reader.read_exact(&mut header).is_err() {
            warn_once!(
                len = reader.available_bytes(),
                "virtio-blk: request header too short"
            );
            return Outcome::status(VIRTIO_BLK_S_IOERR);
        }
        let req_type = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let sector = u64::from_le_bytes([
            header[8], header[9], header[10], header[11], header[12], header[13], header[14], header[15],
        ]);
        // Everything writable except the trailing status byte is data.
        let data_out = writer.available_bytes().saturating_sub(1);
        if writer.split_at(data_out).is_err() {
            return Outcome::status(VIRTIO_BLK_S_IOERR);
        }
        let data_in = reader.available_bytes();
        if data_in.max(data_out) > MAX_REQUEST_DATA {
            warn_once!(
                data_in,
                data_out,
                "virtio-blk: request larger than seg_max * size_max refused"
            );
            return Outcome::status(VIRTIO_BLK_S_IOERR);
        }

        match req_type {
            VIRTIO_BLK_T_IN => {
                if data_in != 0 {
                    warn_once!("virtio-blk: read request with device-readable data buffers");
                    return Outcome::status(VIRTIO_BLK_S_IOERR);
                }
                self.read_sectors(sector, data_out, &mut writer)
            }
            VIRTIO_BLK_T_OUT => {
                if data_out != 0 {
                    warn_once!("virtio-blk: write request with device-writable data buffers");
                    return Outcome::status(VIRTIO_BLK_S_IOERR);
                }
                if self.read_only {
                    warn_once!("virtio-blk: write to a read-only disk refused");
                    return Outcome::status(VIRTIO_BLK_S_IOERR);
                }
                self.write_sectors(sector, data_in, &mut reader)
            }
            VIRTIO_BLK_T_FLUSH => {
                if self.read_only {
                    return Outcome::status(VIRTIO_BLK_S_OK);
                }
                match self.file.sync_data() {
                    Ok(()) => Outcome::status(VIRTIO_BLK_S_OK),
                    Err(e) => {
                        tracing::error!(error = %e, "virtio-blk: flush failed");
                        Outcome::status(VIRTIO_BLK_S_IOERR)
                    }
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                let n = data_out.min(self.serial.len());
                match writer.write_all(&self.serial[..n]) {
                    Ok(()) => Outcome {
                        status: VIRTIO_BLK_S_OK,
                        data_written: n as u32,
                    },
                    Err(_) => Outcome::status(VIRTIO_BLK_S_IOERR),
                }
            }
            other => {
                warn_once!(req_type = other, "virtio-blk: unsupported request type");
                Outcome::status(VIRTIO_BLK_S_UNSUPP)
            }
        }
    }

    /// Byte offset of a data transfer, if it is sector-aligned and inside the disk.
    fn check_range(&self, sector: u64, len: usize) -> Option<u64> {
        let len = len as u64;
        if !len.is_multiple_of(SECTOR_SIZE) {
            warn_once!(len, "virtio-blk: data length is not a multiple of 512");
            return None;
        }
        let end = sector.checked_add(len / SECTOR_SIZE)?;
        if end > self.capacity_sectors {
            warn_once!(
                sector,
                len,
                capacity = self.capacity_sectors,
                "virtio-blk: request beyond the disk"
            );
            return None;
        }
        sector.checked_mul(SECTOR_SIZE)
    }

    fn read_sectors<B: BitmapSlice>(
        &mut self,
        sector: u64,
        len: usize,
        writer: &mut Writer<'_, B>,
    ) -> Outcome {
        let Some(mut offset) = self.check_range(sector, len) else {
            return Outcome::status(VIRTIO_BLK_S_IOERR);
        };
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(self.bounce.len());
            let buf = &mut self.bounce[..n];
            if let Err(e) = self.file.read_exact_at(buf, offset) {
                tracing::error!(error = %e, offset, "virtio-blk: reading the disk image failed");
                return Outcome {
                    status: VIRTIO_BLK_S_IOERR,
                    data_written: done as u32,
                };
            }
            if writer.write_all(buf).is_err() {
                return Outcome {
                    status: VIRTIO_BLK_S_IOERR,
                    data_written: done as u32,
                };
            }
            done += n;
            offset += n as u64;
        }
        self.counters.count_read(len as u64);
        Outcome {
            status: VIRTIO_BLK_S_OK,
            data_written: len as u32,
        }
    }

    fn write_sectors<B: BitmapSlice>(
        &mut self,
        sector: u64,
        len: usize,
        reader: &mut Reader<'_, B>,
    ) -> Outcome {
        let Some(mut offset) = self.check_range(sector, len) else {
            return Outcome::status(VIRTIO_BLK_S_IOERR);
        };
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(self.bounce.len());
            let buf = &mut self.bounce[..n];
            if reader.read_exact(buf).is_err() {
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            if let Err(e) = self.file.write_all_at(buf, offset) {
                tracing::error!(error = %e, offset, "virtio-blk: writing the disk image failed");
                return Outcome::status(VIRTIO_BLK_S_IOERR);
            }
            done += n;
            offset += n as u64;
        }
        self.counters.count_write(len as u64);
        Outcome::status(VIRTIO_BLK_S_OK)
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_INDIRECT_DESC
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_SIZE_MAX);
        if self.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        if let Some(src) = self.config.get(offset..offset.saturating_add(data.len())) {
            data.copy_from_slice(src);
        } else {
            data.fill(0);
        }
    }

    fn write_config(&mut self, offset: usize, _data: &[u8]) {
        warn_once!(offset, "virtio-blk: config space is read-only; write ignored");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError> {
        let got = ctx.queues.len();
        let Some(queue) = ctx.queues.into_iter().next() else {
            return Err(VirtioError::ActivateQueueCount { expected: 1, got });
        };
        self.active = Some(Active {
            mem: ctx.mem,
            interrupt: ctx.interrupt,
            queue,
        });
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError> {
        if index != 0 {
            return Err(VirtioError::NotifyUnknownQueue(index));
        }
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        let result = self.drain(&mut active);
        self.active = Some(active);
        result
    }

    fn reset(&mut self) {
        self.active = None;
    }
}

impl Block {
    fn drain(&mut self, active: &mut Active) -> Result<(), VirtioError> {
        let mem = active.mem.clone();
        let mut used_any = false;
        let result = loop {
            let chain = match pop_chain(&mut active.queue, &mem, 0) {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let head = chain.head_index();
            let len = self.handle_chain(&mem, chain);
            if let Err(e) = add_used(&mut active.queue, &mem, 0, head, len) {
                break Err(e);
            }
            used_any = true;
        };
        if used_any {
            active.interrupt.signal_used_queue();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;

    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

    use super::*;
    use crate::virtio::testutil::{counting_irq, memory, r, w, Buf, CountingIrq, DriverQueue};

    const HDR: u64 = 0x8000;
    const DATA: u64 = 0x20000;
    const STATUS: u64 = 0x9000;
    const SECTORS: u64 = 512;

    struct Fixture {
        _file: tempfile::NamedTempFile,
        path: PathBuf,
        dev: Block,
        dq: DriverQueue,
        irq: Arc<CountingIrq>,
    }

    fn fixture_with(read_only: bool, serial: &str) -> Fixture {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&vec![0u8; (SECTORS * SECTOR_SIZE) as usize])
            .unwrap();
        let path = file.path().to_path_buf();
        let mut dev = Block::new(&BlockConfig {
            path: path.clone(),
            read_only,
            serial: serial.into(),
        })
        .unwrap();
        let mem = memory();
        let dq = DriverQueue::new(&mem, 0x1000, 16);
        let irq = counting_irq();
        dev.activate(ActivateContext {
            mem,
            interrupt: Interrupt::new(irq.clone()),
            queues: vec![dq.queue()],
            acked_features: dev.features(),
        })
        .unwrap();
        Fixture {
            _file: file,
            path,
            dev,
            dq,
            irq,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(false, "serial-1")
    }

    impl Fixture {
        fn header(&self, req_type: u32, sector: u64) {
            let mut h = [0u8; 16];
            h[0..4].copy_from_slice(&req_type.to_le_bytes());
            h[8..16].copy_from_slice(&sector.to_le_bytes());
            self.dq.write_bytes(HDR, &h);
            self.dq.write_bytes(STATUS, &[0xff]);
        }

        /// Submits a chain, runs the device and returns (status byte, used len).
        fn submit(&mut self, bufs: &[Buf]) -> (u8, u32) {
            let before = self.dq.used_idx();
            self.dq.add_chain(bufs);
            self.dev.process_queue(0).unwrap();
            assert_eq!(
                self.dq.used_idx(),
                before.wrapping_add(1),
                "exactly one chain returned"
            );
            let (_, len) = self.dq.used_elem(before);
            (self.dq.read_bytes(STATUS, 1)[0], len)
        }

        fn write(&mut self, sector: u64, data: &[u8]) -> (u8, u32) {
            self.header(VIRTIO_BLK_T_OUT, sector);
            self.dq.write_bytes(DATA, data);
            self.submit(&[r(HDR, 16), r(DATA, data.len() as u32), w(STATUS, 1)])
        }

        fn read(&mut self, sector: u64, len: u32) -> (u8, u32, Vec<u8>) {
            self.header(VIRTIO_BLK_T_IN, sector);
            self.dq.write_bytes(DATA, &vec![0xee; len as usize]);
            let (s, l) = self.submit(&[r(HDR, 16), w(DATA, len), w(STATUS, 1)]);
            (s, l, self.dq.read_bytes(DATA, len as usize))
        }

        fn assert_still_works(&mut self) {
            let pattern: Vec<u8> = (0..512u32).map(|i| (i * 7) as u8).collect();
            assert_eq!(self.write(3, &pattern), (VIRTIO_BLK_S_OK as u8, 1));
            let (s, _, back) = self.read(3, 512);
            assert_eq!(s, VIRTIO_BLK_S_OK as u8);
            assert_eq!(back, pattern);
        }
    }

    #[test]
    fn write_then_read_back_reaches_the_file() {
        let mut f = fixture();
        let pattern: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(f.write(1, &pattern), (VIRTIO_BLK_S_OK as u8, 1));
        let on_disk = std::fs::read(&f.path).unwrap();
        assert_eq!(&on_disk[512..1536], &pattern[..]);

        // Read back through two writable data descriptors: used len counts data + status.
        f.header(VIRTIO_BLK_T_IN, 1);
        let (s, len) = f.submit(&[r(HDR, 16), w(DATA, 512), w(DATA + 0x1000, 512), w(STATUS, 1)]);
        assert_eq!((s, len), (VIRTIO_BLK_S_OK as u8, 1025));
        assert_eq!(f.dq.read_bytes(DATA, 512), &pattern[..512]);
        assert_eq!(f.dq.read_bytes(DATA + 0x1000, 512), &pattern[512..]);
        assert!(f.irq.count() >= 2, "guest interrupted for completions");
    }

    #[test]
    fn large_request_crosses_bounce_chunks() {
        let mut f = fixture();
        let pattern: Vec<u8> = (0..(CHUNK as u32 * 2 + 4096)).map(|i| (i % 253) as u8).collect();
        assert_eq!(f.write(0, &pattern).0, VIRTIO_BLK_S_OK as u8);
        let (s, len, back) = f.read(0, pattern.len() as u32);
        assert_eq!(s, VIRTIO_BLK_S_OK as u8);
        assert_eq!(len, pattern.len() as u32 + 1);
        assert_eq!(back, pattern);
    }

    #[test]
    fn requests_beyond_seg_max_times_size_max_are_refused_before_any_io() {
        // A sparse 1 GiB disk, so only the new bound (not the disk's end) can refuse the request.
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(1 << 30).unwrap();
        let cfg = BlockConfig {
            path: file.path().into(),
            read_only: false,
            serial: String::new(),
        };
        let mut dev = Block::new(&cfg).unwrap();
        let mem = memory();
        let mut dq = DriverQueue::new(&mem, 0x1000, 16);
        dev.activate(ActivateContext {
            mem,
            interrupt: Interrupt::new(counting_irq()),
            queues: vec![dq.queue()],
            acked_features: dev.features(),
        })
        .unwrap();
        // 255 overlapping 1 MiB buffers over all of guest RAM (ring included) in one indirect table:
        // 255 MiB of data from 1 MiB of memory, one segment more than seg_max.
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
        dq.write_bytes(HDR, &h);
        let mut bufs = vec![r(HDR, 16)];
        bufs.extend(std::iter::repeat_n(w(0, SIZE_MAX), SEG_MAX as usize + 1));
        bufs.push(w(STATUS, 1));
        dq.add_indirect(0x40000, &bufs);
        dev.process_queue(0).unwrap();
        assert_eq!(dq.used_idx(), 1);
        assert_eq!(dq.used_elem(0), (0, 1), "status byte only");
        assert_eq!(dq.read_bytes(STATUS, 1)[0], VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(
            dq.read_bytes(HDR, 4),
            VIRTIO_BLK_T_IN.to_le_bytes(),
            "nothing was read into RAM"
        );
    }

    #[test]
    fn get_id_returns_the_serial() {
        let mut f = fixture_with(false, "vm-42-root");
        f.header(VIRTIO_BLK_T_GET_ID, 0);
        let (s, len) = f.submit(&[r(HDR, 16), w(DATA, 20), w(STATUS, 1)]);
        assert_eq!((s, len), (VIRTIO_BLK_S_OK as u8, 21));
        let mut expected = b"vm-42-root".to_vec();
        expected.resize(20, 0);
        assert_eq!(f.dq.read_bytes(DATA, 20), expected);
    }

    #[test]
    fn serial_longer_than_20_bytes_is_rejected() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let cfg = BlockConfig {
            path: file.path().into(),
            read_only: false,
            serial: "x".repeat(21),
        };
        assert!(matches!(Block::new(&cfg), Err(BlockError::SerialTooLong(21))));
    }

    #[test]
    fn missing_image_is_an_open_error() {
        let cfg = BlockConfig {
            path: "/nonexistent/disk.img".into(),
            read_only: false,
            serial: String::new(),
        };
        assert!(matches!(Block::new(&cfg), Err(BlockError::OpenImage { .. })));
    }

    #[test]
    fn flush_succeeds() {
        let mut f = fixture();
        f.header(VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(f.submit(&[r(HDR, 16), w(STATUS, 1)]), (VIRTIO_BLK_S_OK as u8, 1));
    }

    #[test]
    fn read_only_disk_refuses_writes_and_says_so() {
        let mut f = fixture_with(true, "");
        assert_ne!(f.dev.features() & (1 << VIRTIO_BLK_F_RO), 0);
        assert_eq!(f.write(0, &[0xaa; 512]).0, VIRTIO_BLK_S_IOERR as u8);
        assert!(
            std::fs::read(&f.path).unwrap().iter().all(|&b| b == 0),
            "file untouched"
        );
        let (s, _, back) = f.read(0, 512);
        assert_eq!(s, VIRTIO_BLK_S_OK as u8);
        assert_eq!(back, vec![0u8; 512]);
    }

    #[test]
    fn config_space_reports_capacity_and_limits() {
        let f = fixture();
        let mut cap = [0u8; 8];
        f.dev.read_config(0, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), SECTORS);
        let mut seg = [0u8; 4];
        f.dev.read_config(12, &mut seg);
        assert_eq!(u32::from_le_bytes(seg), SEG_MAX);
        assert_ne!(f.dev.features() & (1 << VIRTIO_BLK_F_FLUSH), 0);
        assert_eq!(f.dev.features() & (1 << VIRTIO_BLK_F_RO), 0);
    }

    #[test]
    fn requests_outside_the_disk_or_unaligned_fail_cleanly() {
        let mut f = fixture();
        assert_eq!(f.read(SECTORS, 512).0, VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(f.read(SECTORS - 1, 1024).0, VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(f.read(u64::MAX, 512).0, VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(f.write(u64::MAX / 512, &[1; 512]).0, VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(f.read(0, 100).0, VIRTIO_BLK_S_IOERR as u8);
        assert_eq!(f.write(0, &[1; 700]).0, VIRTIO_BLK_S_IOERR as u8);
        // The last sector itself is fine.
        assert_eq!(f.read(SECTORS - 1, 512).0, VIRTIO_BLK_S_OK as u8);
        f.assert_still_works();
    }

    #[test]
    fn unknown_request_type_is_unsupported() {
        let mut f = fixture();
        f.header(0x1234, 0);
        assert_eq!(
            f.submit(&[r(HDR, 16), w(STATUS, 1)]),
            (VIRTIO_BLK_S_UNSUPP as u8, 1)
        );
        f.assert_still_works();
    }

    #[test]
    fn chain_without_status_is_dropped_with_len_0() {
        let mut f = fixture();
        f.header(VIRTIO_BLK_T_OUT, 0);
        let (status, len) = f.submit(&[r(HDR, 16), r(DATA, 512)]);
        assert_eq!(len, 0);
        assert_eq!(status, 0xff, "nothing written");
        // Status descriptor present but device-readable: same.
        let (_, len) = f.submit(&[r(HDR, 16), r(STATUS, 1)]);
        assert_eq!(len, 0);
        f.assert_still_works();
    }

    #[test]
    fn short_header_is_an_io_error() {
        let mut f = fixture();
        f.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            f.submit(&[r(HDR, 8), w(STATUS, 1)]),
            (VIRTIO_BLK_S_IOERR as u8, 1)
        );
        // Header split over two descriptors is fine (no framing assumptions).
        assert_eq!(
            f.submit(&[r(HDR, 4), r(HDR + 4, 12), w(DATA, 512), w(STATUS, 1)])
                .0,
            VIRTIO_BLK_S_OK as u8
        );
        f.assert_still_works();
    }

    #[test]
    fn buffers_outside_guest_memory_fail_cleanly() {
        let mut f = fixture();
        let outside = 0x4000_0000;
        f.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            f.submit(&[r(HDR, 16), w(outside, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        f.header(VIRTIO_BLK_T_OUT, 0);
        assert_eq!(
            f.submit(&[r(HDR, 16), r(outside, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        // Straddling the end of memory.
        assert_eq!(
            f.submit(&[r(HDR, 16), r(0xf_ff00, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        // Status byte outside memory: nothing can be reported, chain returned with len 0.
        f.header(VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(f.submit(&[r(HDR, 16), w(outside, 1)]).1, 0);
        f.assert_still_works();
    }

    #[test]
    fn looping_descriptor_chain_is_dropped() {
        let mut f = fixture();
        f.header(VIRTIO_BLK_T_IN, 0);
        // 0 -> 1 -> 0 -> ... never ends.
        f.dq.write_desc(0, HDR, 16, VRING_DESC_F_NEXT as u16, 1);
        f.dq.write_desc(1, STATUS, 1, (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16, 0);
        f.dq.publish(0);
        f.dev.process_queue(0).unwrap();
        assert_eq!(f.dq.used_idx(), 1);
        assert_eq!(f.dq.used_elem(0), (0, 0));
        // `next` pointing past the table.
        f.dq.write_desc(2, HDR, 16, VRING_DESC_F_NEXT as u16, 500);
        f.dq.publish(2);
        f.dev.process_queue(0).unwrap();
        assert_eq!(f.dq.used_elem(1), (2, 0));
        // Head index past the table: skipped, queue keeps going.
        f.dq.publish(999);
        f.dev.process_queue(0).unwrap();
        f.assert_still_works();
    }

    #[test]
    fn wrong_descriptor_directions_are_refused() {
        let mut f = fixture();
        // Read request whose data buffer is device-readable.
        f.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            f.submit(&[r(HDR, 16), r(DATA, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        // Write request whose data buffer is device-writable: the disk must not change.
        f.header(VIRTIO_BLK_T_OUT, 0);
        f.dq.write_bytes(DATA, &[0x55; 512]);
        assert_eq!(
            f.submit(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        assert!(std::fs::read(&f.path).unwrap()[..512].iter().all(|&b| b == 0));
        // Header marked device-writable.
        f.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            f.submit(&[w(HDR, 16), w(DATA, 512), w(STATUS, 1)]).0,
            VIRTIO_BLK_S_IOERR as u8
        );
        // Readable descriptor after a writable one violates the spec: dropped.
        f.header(VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            f.submit(&[r(HDR, 8), w(DATA, 512), r(HDR + 8, 8), w(STATUS, 1)])
                .1,
            0
        );
        f.assert_still_works();
    }

    #[test]
    fn indirect_descriptors_work() {
        let mut f = fixture();
        let pattern = [0x5a; 512];
        f.header(VIRTIO_BLK_T_OUT, 5);
        f.dq.write_bytes(DATA, &pattern);
        f.dq.add_indirect(0x70000, &[r(HDR, 16), r(DATA, 512), w(STATUS, 1)]);
        f.dev.process_queue(0).unwrap();
        assert_eq!(f.dq.read_bytes(STATUS, 1)[0], VIRTIO_BLK_S_OK as u8);
        assert_eq!(&std::fs::read(&f.path).unwrap()[5 * 512..6 * 512], &pattern[..]);
    }

    #[test]
    fn impossible_avail_index_is_fatal_for_the_queue() {
        let mut f = fixture();
        f.dq.set_avail_idx(100); // more entries than the 16-entry ring can hold
        assert!(matches!(
            f.dev.process_queue(0),
            Err(VirtioError::PopChain { .. })
        ));
        assert!(matches!(
            f.dev.process_queue(5),
            Err(VirtioError::NotifyUnknownQueue(5))
        ));
    }
}
