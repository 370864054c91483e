//! virtio-blk behind the real virtio-mmio transport, driven by a hostile guest driver: arbitrary
//! descriptor tables (chained and indirect), avail rings and indices, addresses and lengths, request
//! headers of every type with any sector, on a read-write or read-only disk whose size may not be a
//! multiple of 512.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use fuzz_common::{Addr, Buf, Driver, Len, Op, Setup};
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress};
use vmm::virtio::block::{Block, BlockConfig};

/// 128 sectors, plus a 100-byte tail the device must not expose on the odd disk.
const DISK_BYTES: u64 = 128 * 512;

#[derive(Debug, Arbitrary)]
enum ReqType {
    In,
    Out,
    Flush,
    GetId,
    Other(u32),
}

#[derive(Debug, Arbitrary)]
enum Sector {
    Near(u8),
    Any(u64),
}

#[derive(Debug, Arbitrary)]
enum BlockOp {
    /// A request header (type, reserved, sector) written at `addr`.
    Header {
        addr: Addr,
        req_type: ReqType,
        reserved: u32,
        sector: Sector,
    },
    /// A whole request the way Linux lays it out: header, `sectors` of data split over `segments`
    /// buffers (device-writable for reads), status byte; then QueueNotify.
    Request {
        req_type: ReqType,
        sector: Sector,
        sectors: u8,
        segments: u8,
        indirect: bool,
    },
}

/// Where [`BlockOp::Request`] puts its header, data and status (RAM regions 0 and 1, away from the
/// default rings at 4-24 KiB; the data may straddle the two regions).
const REQ_HEADER: u64 = 0x8000;
const REQ_STATUS: u64 = 0x8100;
const REQ_TABLE: u64 = 0x8200;
const REQ_DATA: u64 = 0xa000;

#[derive(Debug, Arbitrary)]
struct Input {
    read_only: bool,
    odd_size: bool,
    serial: [u8; 20],
    serial_len: u8,
    setup: Setup,
    ops: Vec<Op<BlockOp>>,
}

/// One scratch disk per process (contents carry over between runs; nothing branches on them).
fn disk(odd_size: bool) -> Arc<File> {
    static EVEN: OnceLock<Arc<File>> = OnceLock::new();
    static ODD: OnceLock<Arc<File>> = OnceLock::new();
    let (cell, len) = if odd_size {
        (&ODD, DISK_BYTES + 100)
    } else {
        (&EVEN, DISK_BYTES)
    };
    cell.get_or_init(|| Arc::new(fuzz_common::scratch_file(len)))
        .clone()
}

fn request_type(t: &ReqType) -> u32 {
    match t {
        ReqType::In => 0,
        ReqType::Out => 1,
        ReqType::Flush => 4,
        ReqType::GetId => 8,
        ReqType::Other(t) => *t,
    }
}

fn header(req_type: &ReqType, reserved: u32, sector: &Sector) -> [u8; 16] {
    let sector = match sector {
        Sector::Near(s) => u64::from(*s),
        Sector::Any(s) => *s,
    };
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&request_type(req_type).to_le_bytes());
    h[4..8].copy_from_slice(&reserved.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    h
}

fuzz_target!(|input: Input| {
    let serial_len = usize::from(input.serial_len % 21);
    let serial = String::from_utf8_lossy(&input.serial[..serial_len]).into_owned();
    let cfg = BlockConfig {
        path: "fuzz-disk".into(),
        read_only: input.read_only,
        serial,
    };
    // A lossy serial can grow past 20 bytes; the VMM refuses that at config time.
    let Ok(dev) = Block::with_file(&cfg, disk(input.odd_size)) else {
        return;
    };
    let mut driver = Driver::new(Box::new(dev));
    driver.run_all(&input.setup, &input.ops, |d, op| match op {
        BlockOp::Header {
            addr,
            req_type,
            reserved,
            sector,
        } => {
            let _ = d
                .mem
                .write_slice(&header(req_type, *reserved, sector), GuestAddress(addr.0));
        }
        BlockOp::Request {
            req_type,
            sector,
            sectors,
            segments,
            indirect,
        } => {
            let _ = d
                .mem
                .write_slice(&header(req_type, 0, sector), GuestAddress(REQ_HEADER));
            let write = !matches!(req_type, ReqType::Out);
            let total = u32::from(*sectors % 64) * 512;
            let segments = u32::from(segments % 8) + 1;
            let mut bufs = vec![Buf {
                addr: Addr(REQ_HEADER),
                len: Len(16),
                write: false,
            }];
            let mut at = 0;
            for i in 0..segments {
                let len = if i + 1 == segments {
                    total - at
                } else {
                    total / segments
                };
                if len > 0 {
                    bufs.push(Buf {
                        addr: Addr(REQ_DATA + u64::from(at)),
                        len: Len(len),
                        write,
                    });
                }
                at += len;
            }
            bufs.push(Buf {
                addr: Addr(REQ_STATUS),
                len: Len(1),
                write: true,
            });
            d.add_chain(0, &bufs, indirect.then_some(REQ_TABLE));
            d.write32(fuzz_common::reg::QUEUE_NOTIFY, 0);
        }
    });
});
