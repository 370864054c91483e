//! virtio-net's receive and transmit paths (the card's `Engine`, the code its network thread runs) behind
//! the real virtio-mmio transport, with a socket pair in place of the TAP (`Tap::seqpacket`).
//!
//! The guest side is the hostile driver on both queues (arbitrary descriptors, chains, indirect tables,
//! avail indices, addresses, lengths), plus Linux-shaped receive buffers and transmit frames with any
//! vnet header, source MAC and length, split over any number of buffers. The host side sends arbitrary
//! frames (runts, oversized, any vnet header) and drains or stops draining what the card sends, so the
//! TAP pushes back with EAGAIN. Instead of the network thread, the engine runs when the guest kicks a
//! queue and when the fuzzer says so (the TAP became readable or writable): the same code, without a
//! thread, so runs repeat.
//!
//! Beyond "no panic, no hang": every frame that reaches the host must carry the card's own source MAC and
//! only offloads the driver negotiated, and be a whole frame (vnet header and Ethernet header at least,
//! [`MAX_FRAME_LEN`] at most).
#![no_main]

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use fuzz_common::{Addr, Buf, Driver, Len, Op, Setup};
use libfuzzer_sys::fuzz_target;
use rustix::net::{recv, send, RecvFlags, SendFlags};
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
};
use vm_memory::{Bytes, GuestAddress};
use vmm::virtio::net::{
    tap_offloads, Engine, NetCounters, Tap, MAX_FRAME_LEN, OFFERED_FEATURES, QUEUE_SIZE, VNET_HDR_LEN,
};
use vmm::virtio::{ActivateContext, VirtioDevice, VirtioError, VIRTIO_F_VERSION_1};
use vmm_api::config::MacAddr;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
/// vnet header plus Ethernet header.
const HEAD_LEN: usize = VNET_HDR_LEN + 14;
/// Receive buffers go to [RX_AREA, RX_AREA + RX_SPAN) (regions 0 and 1, across their boundary), transmit
/// frames are written at TX_AREA (region 2, so the largest frames run off its end).
const RX_AREA: u64 = 0x8000;
const RX_SPAN: u64 = 0x1_8000;
const TX_AREA: u64 = 0x3_0000;
/// Indirect tables for receive and transmit chains (region 0, after the default rings).
const RX_TABLE: u64 = 0x6000;
const TX_TABLE: u64 = 0x7000;

/// `vmm::virtio::net::Net` without its thread: activation builds the engine the same way (offloads set
/// on the TAP from the acked features, `Engine::new` on the transport's queues), a kick runs it.
struct Card {
    tap: Arc<Tap>,
    counters: Arc<NetCounters>,
    engine: Arc<Mutex<Option<Engine>>>,
    acked: Arc<Mutex<u64>>,
}

impl VirtioDevice for Card {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | OFFERED_FEATURES
    }

    fn config_len(&self) -> usize {
        12
    }

    fn read_config(&self, _offset: usize, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError> {
        self.reset();
        self.tap
            .set_offload(tap_offloads(ctx.acked_features))
            .expect("offloads on a socket pair are a no-op");
        // Frames of an earlier activation may still wait on the host side: check against every
        // negotiation of this run.
        *lock(&self.acked) |= ctx.acked_features;
        let engine = Engine::new(
            ctx.mem,
            ctx.interrupt,
            ctx.queues,
            self.tap.clone(),
            self.counters.clone(),
            MAC,
            ctx.acked_features,
        )?;
        *lock(&self.engine) = Some(engine);
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError> {
        if index > 1 {
            return Err(VirtioError::NotifyUnknownQueue(index));
        }
        run(&self.engine);
        Ok(())
    }

    fn reset(&mut self) {
        *lock(&self.engine) = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One turn of the network thread's loop.
fn run(engine: &Mutex<Option<Engine>>) {
    if let Some(e) = lock(engine).as_mut() {
        e.run();
    }
}

#[derive(Debug, Arbitrary)]
enum Source {
    Card,
    Peer,
    Any([u8; 6]),
}

#[derive(Debug, Arbitrary)]
enum NetOp {
    /// `count` receive chains of `len` device-writable bytes each, in `segments` buffers.
    RxBuffers {
        count: u8,
        len: Len,
        segments: u8,
        indirect: bool,
    },
    /// A frame of `len` bytes after the vnet header, written at `TX_AREA` (or anywhere) and queued as a
    /// chain cut at `cuts`.
    TxFrame {
        vnet: [u8; 12],
        source: Source,
        len: u16,
        cuts: Vec<u16>,
        indirect: bool,
        at: Option<Addr>,
    },
    /// The host sends a frame: vnet header, then `len` bytes (a runt, a jumbo, anything).
    PeerSend { vnet: [u8; 12], len: u32, to_card: bool },
    /// The host sends raw bytes.
    PeerRaw(Vec<u8>),
    /// The host reads (and checks) everything the card sent; until then the socket fills and the card
    /// sees EAGAIN.
    PeerDrain,
    /// The network thread wakes (the TAP became readable or writable).
    Run,
}

#[derive(Debug, Arbitrary)]
struct Case {
    setup: Setup,
    ops: Vec<Op<NetOp>>,
}

/// Checks a frame the card handed to the host.
fn check_sent(frame: &[u8], acked: u64) {
    assert!(
        (HEAD_LEN..=VNET_HDR_LEN + MAX_FRAME_LEN).contains(&frame.len()),
        "the card sent a frame of {} bytes",
        frame.len()
    );
    assert_eq!(
        frame[VNET_HDR_LEN + 6..HEAD_LEN - 2],
        MAC,
        "the card sent a frame with a spoofed source MAC"
    );
    let has = |bit: u32| acked & (1 << bit) != 0;
    let (flags, gso) = (u32::from(frame[0]), u32::from(frame[1]));
    assert!(
        flags & VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 || has(VIRTIO_NET_F_CSUM),
        "checksum offload the driver did not negotiate"
    );
    assert!(
        gso & VIRTIO_NET_HDR_GSO_ECN == 0 || has(VIRTIO_NET_F_HOST_ECN),
        "ECN offload the driver did not negotiate"
    );
    let allowed = match gso & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE => true,
        VIRTIO_NET_HDR_GSO_TCPV4 => has(VIRTIO_NET_F_HOST_TSO4),
        VIRTIO_NET_HDR_GSO_TCPV6 => has(VIRTIO_NET_F_HOST_TSO6),
        _ => false,
    };
    assert!(allowed, "segmentation offload {gso} the driver did not negotiate");
}

fn drain(peer: &OwnedFd, acked: u64, buf: &mut [u8]) {
    while let Ok((n, _)) = recv(peer, &mut *buf, RecvFlags::DONTWAIT) {
        check_sent(&buf[..n], acked);
    }
}

fn frame_bytes(vnet: &[u8; 12], dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(VNET_HDR_LEN + len);
    f.extend_from_slice(vnet);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.truncate(VNET_HDR_LEN + len);
    while f.len() < VNET_HDR_LEN + len {
        f.push(f.len() as u8);
    }
    f
}

fuzz_target!(|case: Case| {
    let (tap, peer) = Tap::seqpacket().expect("socket pair");
    let engine = Arc::new(Mutex::new(None));
    let acked = Arc::new(Mutex::new(0));
    let card = Card {
        tap: Arc::new(tap),
        counters: Arc::new(NetCounters::new(MacAddr(MAC), "fuzz")),
        engine: engine.clone(),
        acked: acked.clone(),
    };
    let mut driver = Driver::new(Box::new(card));
    let mut rx_next = 0u64;
    let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME_LEN + 64];
    driver.run_all(&case.setup, &case.ops, |d, op| match op {
        NetOp::RxBuffers {
            count,
            len,
            segments,
            indirect,
        } => {
            let len = u64::from(len.0).min(RX_SPAN);
            let segments = u64::from(segments % 4) + 1;
            for _ in 0..=count % 8 {
                if rx_next + len > RX_SPAN {
                    rx_next = 0;
                }
                let base = RX_AREA + rx_next;
                let bufs: Vec<Buf> = (0..segments)
                    .map(|i| {
                        let start = len * i / segments;
                        let end = len * (i + 1) / segments;
                        Buf {
                            addr: Addr(base + start),
                            len: Len((end - start) as u32),
                            write: true,
                        }
                    })
                    .collect();
                let table = indirect.then_some(RX_TABLE);
                d.add_chain(0, &bufs, table);
                rx_next += len;
            }
        }
        NetOp::TxFrame {
            vnet,
            source,
            len,
            cuts,
            indirect,
            at,
        } => {
            let src = match source {
                Source::Card => MAC,
                Source::Peer => PEER,
                Source::Any(m) => *m,
            };
            let f = frame_bytes(vnet, PEER, src, usize::from(*len));
            let at = at.map_or(TX_AREA, |a| a.0);
            let _ = d.mem.write_slice(&f, GuestAddress(at));
            let mut points: Vec<usize> = cuts.iter().map(|&c| usize::from(c) % (f.len() + 1)).collect();
            points.push(0);
            points.push(f.len());
            points.sort_unstable();
            points.dedup();
            let bufs: Vec<Buf> = points
                .windows(2)
                .map(|w| Buf {
                    addr: Addr(at.wrapping_add(w[0] as u64)),
                    len: Len((w[1] - w[0]) as u32),
                    write: false,
                })
                .collect();
            let table = indirect.then_some(TX_TABLE);
            d.add_chain(1, &bufs, table);
        }
        NetOp::PeerSend { vnet, len, to_card } => {
            let dst = if *to_card { MAC } else { [0xff; 6] };
            let len = (*len as usize) % (MAX_FRAME_LEN + 64);
            let f = frame_bytes(vnet, dst, PEER, len);
            let _ = send(&peer, &f, SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
        }
        NetOp::PeerRaw(bytes) => {
            let _ = send(&peer, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
        }
        NetOp::PeerDrain => drain(&peer, *lock(&acked), &mut buf),
        NetOp::Run => run(&engine),
    });
    run(&engine);
    drain(&peer, *lock(&acked), &mut buf);
});
