//! virtio-blk behind the real virtio-mmio transport, driven by a hostile guest driver: arbitrary
//! descriptor tables (chained and indirect), avail rings and indices, addresses and lengths, request
//! headers of every type with any sector, on a read-write or read-only disk whose size may not be a
//! multiple of 512.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use fuzz_common::{Addr, Driver, Op, Setup};
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
}

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
    cell.get_or_init(|| {
        let f = tempfile::tempfile().expect("scratch disk");
        f.set_len(len).expect("scratch disk size");
        Arc::new(f)
    })
    .clone()
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
            let t = match req_type {
                ReqType::In => 0,
                ReqType::Out => 1,
                ReqType::Flush => 4,
                ReqType::GetId => 8,
                ReqType::Other(t) => *t,
            };
            let sector = match sector {
                Sector::Near(s) => u64::from(*s),
                Sector::Any(s) => *s,
            };
            let mut h = [0u8; 16];
            h[0..4].copy_from_slice(&t.to_le_bytes());
            h[4..8].copy_from_slice(&reserved.to_le_bytes());
            h[8..16].copy_from_slice(&sector.to_le_bytes());
            let _ = d.mem.write_slice(&h, GuestAddress(addr.0));
        }
    });
});
