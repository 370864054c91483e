//! The card on plain guest memory, backed by a socket pair: the driver side is written by hand
//! (`virtio::testutil`), the host side is the pair's other end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4,
};

use super::counters::Drop;
use super::*;
use crate::memory;
use crate::virtio::testutil::{counting_irq, memory, r, w, CountingIrq, DriverQueue};
use crate::virtio::Interrupt;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const SIZE: u16 = 16;

struct Rig {
    engine: Engine,
    rxq: DriverQueue,
    txq: DriverQueue,
    peer: OwnedFd,
    irq: Arc<CountingIrq>,
    counters: Arc<NetCounters>,
}

fn rig(acked: u64) -> Rig {
    let mem = memory();
    let rxq = DriverQueue::new(&mem, 0x1000, SIZE);
    let txq = DriverQueue::new(&mem, 0x2000, SIZE);
    let (tap, peer) = Tap::seqpacket().unwrap();
    let irq = counting_irq();
    let counters = Arc::new(NetCounters::new(MacAddr(MAC), "test"));
    let engine = Engine::new(
        mem,
        Interrupt::new(irq.clone()),
        vec![rxq.queue(), txq.queue()],
        Arc::new(tap),
        counters.clone(),
        MAC,
        VIRTIO_F_VERSION_1 | acked,
    )
    .unwrap();
    Rig {
        engine,
        rxq,
        txq,
        peer,
        irq,
        counters,
    }
}

/// A vnet header (no offload) followed by an Ethernet frame from `src` of `len` bytes in total.
fn frame(src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    while f.len() < VNET_HDR_LEN + len {
        f.push(seed.wrapping_add(f.len() as u8));
    }
    f
}

fn peer_send(peer: &OwnedFd, data: &[u8]) {
    // SAFETY: writing a local buffer to a socket we own.
    let n = unsafe { libc::write(peer.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

/// The next message on the peer, or None if there is none right now.
fn peer_recv(peer: &OwnedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME_LEN + 16];
    // SAFETY: reading into a local buffer from a socket we own.
    let n = unsafe {
        libc::recv(
            peer.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Puts `data` into guest memory at `addr` as a transmit chain split at `split`.
fn queue_tx(rig: &mut Rig, addr: u64, data: &[u8], split: usize) -> u16 {
    rig.txq.write_bytes(addr, data);
    let split = split.min(data.len());
    rig.txq.add_chain(&[
        r(addr, split as u32),
        r(addr + split as u64, (data.len() - split) as u32),
    ])
}

#[test]
fn transmit_gathers_a_chain_into_one_frame() {
    let mut rig = rig(0);
    let f = frame(MAC, 1000, 1);
    let head = queue_tx(&mut rig, 0x10000, &f, 5);
    assert_eq!(rig.engine.process_tx().unwrap(), Progress::Idle);
    assert_eq!(peer_recv(&rig.peer).unwrap(), f);
    assert!(peer_recv(&rig.peer).is_none(), "one chain, one frame");
    assert_eq!(rig.txq.used_idx(), 1);
    assert_eq!(rig.txq.used_elem(0), (u32::from(head), 0));
    let s = rig.counters.snapshot();
    assert_eq!((s.tx_frames, s.tx_bytes), (1, 1000));
    assert_eq!(rig.irq.count(), 1);
}

#[test]
fn frames_from_another_source_mac_are_dropped_and_counted() {
    let mut rig = rig(0);
    queue_tx(&mut rig, 0x10000, &frame(PEER, 100, 0), 40);
    // Split right inside the source MAC: the check reads the whole header across descriptors.
    let mut spoof = frame(MAC, 100, 0);
    spoof[VNET_HDR_LEN + 11] ^= 1;
    queue_tx(&mut rig, 0x20000, &spoof, VNET_HDR_LEN + 9);
    let good = frame(MAC, 100, 7);
    queue_tx(&mut rig, 0x30000, &good, 60);
    rig.engine.process_tx().unwrap();
    assert_eq!(
        peer_recv(&rig.peer).unwrap(),
        good,
        "only the frame from the card's MAC leaves"
    );
    assert!(peer_recv(&rig.peer).is_none());
    assert_eq!(rig.counters.drops_of(Drop::TxSpoofedSource), 2);
    assert_eq!(rig.txq.used_idx(), 3, "dropped chains are returned too");
}

#[test]
fn malformed_transmit_chains_are_returned_empty_and_the_queue_keeps_working() {
    let mut rig = rig(0);
    let good = frame(MAC, 64, 3);
    // Too short for an Ethernet header.
    rig.txq.write_bytes(0x10000, &good);
    rig.txq.add_chain(&[r(0x10000, 20)]);
    // A device-writable part.
    rig.txq.add_chain(&[r(0x10000, 30), w(0x11000, 64)]);
    // Outside guest memory (1 MiB).
    rig.txq.write_bytes(0x12000, &good[..26]);
    rig.txq.add_chain(&[r(0x12000, 26), r(0xff000, 0x2000)]);
    // A descriptor whose `next` loops back to itself.
    rig.txq.write_bytes(0x13000, &good);
    let head = rig.txq.add_chain(&[r(0x13000, 40), r(0x13000 + 40, 36)]);
    rig.txq.write_desc(head, 0x13000, 40, 1, head);
    // Longer than any frame.
    rig.txq
        .add_chain(&[r(0x20000, (VNET_HDR_LEN + MAX_FRAME_LEN + 1) as u32)]);
    // TSO asked for without HOST_TSO4 negotiated.
    let mut tso = good.clone();
    tso[1] = 1;
    queue_tx(&mut rig, 0x14000, &tso, 26);
    queue_tx(&mut rig, 0x15000, &good, 26);
    rig.engine.process_tx().unwrap();
    assert_eq!(peer_recv(&rig.peer).unwrap(), good);
    assert!(peer_recv(&rig.peer).is_none());
    assert_eq!(rig.counters.drops_of(Drop::TxMalformed), 6);
    assert_eq!(rig.txq.used_idx(), 7);
    for i in 0..6 {
        assert_eq!(rig.txq.used_elem(i).1, 0);
    }
}

#[test]
fn negotiated_offloads_pass_and_set_the_tap() {
    let mut rig = rig(1 << VIRTIO_NET_F_CSUM | 1 << VIRTIO_NET_F_HOST_TSO4);
    let mut tso = frame(MAC, 3000, 3);
    tso[0] = 1; // NEEDS_CSUM
    tso[1] = 1; // GSO_TCPV4
    queue_tx(&mut rig, 0x14000, &tso, 26);
    rig.engine.process_tx().unwrap();
    assert_eq!(peer_recv(&rig.peer).unwrap(), tso);

    assert_eq!(tap_offloads(0), 0);
    assert_eq!(
        tap_offloads(1 << VIRTIO_NET_F_GUEST_TSO4),
        0,
        "TSO needs GUEST_CSUM"
    );
    assert_eq!(tap_offloads(1 << VIRTIO_NET_F_GUEST_CSUM), libc::TUN_F_CSUM);
    assert_eq!(
        tap_offloads(
            1 << VIRTIO_NET_F_GUEST_CSUM | 1 << VIRTIO_NET_F_GUEST_TSO4 | 1 << VIRTIO_NET_F_GUEST_TSO6
        ),
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    );
}

#[test]
fn receive_waits_for_buffers_without_dropping() {
    let mut rig = rig(0);
    let f = frame(PEER, 500, 9);
    peer_send(&rig.peer, &f);
    assert_eq!(rig.engine.process_rx().unwrap(), Progress::WaitBuffers);
    assert_eq!(rig.counters.snapshot().rx_frames, 0);
    assert_eq!(
        rig.engine.process_rx().unwrap(),
        Progress::WaitBuffers,
        "still nothing to take it"
    );
    let head = rig.rxq.add_chain(&[w(0x40000, 1526)]);
    assert_eq!(
        rig.engine.process_rx().unwrap(),
        Progress::WaitBuffers,
        "delivered, and the ring is empty again"
    );
    assert_eq!(rig.rxq.used_elem(0), (u32::from(head), f.len() as u32));
    let mut expected = f.clone();
    expected[10] = 1; // num_buffers
    assert_eq!(rig.rxq.read_bytes(0x40000, f.len()), expected);
    let s = rig.counters.snapshot();
    assert_eq!((s.rx_frames, s.rx_bytes), (1, 500));
    assert_eq!(rig.irq.count(), 1);
}

#[test]
fn a_frame_larger_than_the_buffer_is_dropped_and_the_buffer_reused() {
    let mut rig = rig(0);
    let head = rig.rxq.add_chain(&[w(0x40000, 200), w(0x41000, 100)]);
    let big = frame(PEER, 1000, 1);
    let small = frame(PEER, 250, 2);
    peer_send(&rig.peer, &big);
    peer_send(&rig.peer, &small);
    rig.engine.process_rx().unwrap();
    assert_eq!(rig.counters.drops_of(Drop::RxTooBig), 1);
    assert_eq!(rig.rxq.used_idx(), 1);
    assert_eq!(rig.rxq.used_elem(0), (u32::from(head), small.len() as u32));
    let mut got = rig.rxq.read_bytes(0x40000, 200);
    got.extend(rig.rxq.read_bytes(0x41000, small.len() - 200));
    assert_eq!(&got[12..], &small[12..], "scattered over the chain's two buffers");
}

#[test]
fn a_receive_chain_that_cannot_take_a_frame_is_returned_empty() {
    let mut rig = rig(0);
    let bad = rig.rxq.add_chain(&[r(0x40000, 1526)]);
    let unmapped = rig.rxq.add_chain(&[w(0xfff00, 0x1000)]);
    let good = rig.rxq.add_chain(&[w(0x42000, 1526)]);
    let f = frame(PEER, 60, 4);
    peer_send(&rig.peer, &f);
    rig.engine.process_rx().unwrap();
    assert_eq!(rig.rxq.used_elem(0), (u32::from(bad), 0));
    assert_eq!(rig.rxq.used_elem(1), (u32::from(unmapped), 0));
    assert_eq!(rig.rxq.used_elem(2), (u32::from(good), f.len() as u32));
    assert_eq!(rig.counters.drops_of(Drop::RxBadChain), 2);
    assert_eq!(rig.counters.snapshot().rx_frames, 1);
}

#[test]
fn received_bytes_are_marked_dirty() {
    let mem = crate::memory::create(64 << 20).unwrap();
    let rxq = DriverQueue::new(&mem, 0x1000, SIZE);
    let txq = DriverQueue::new(&mem, 0x2000, SIZE);
    let (tap, peer) = Tap::seqpacket().unwrap();
    let mut engine = Engine::new(
        mem.clone(),
        Interrupt::new(counting_irq()),
        vec![rxq.queue(), txq.queue()],
        Arc::new(tap),
        Arc::new(NetCounters::new(MacAddr(MAC), "test")),
        MAC,
        VIRTIO_F_VERSION_1,
    )
    .unwrap();
    let mut rxq = rxq;
    rxq.add_chain(&[w(0x80_0000, 1526)]);
    memory::take_dirty_pages(&mem);
    peer_send(&peer, &frame(PEER, 100, 0));
    engine.process_rx().unwrap();
    let dirty = memory::take_dirty_pages(&mem);
    let page = 0x80_0000 / 4096;
    let (_, bits) = &dirty[0];
    assert!(
        bits[page / 64] & (1 << (page % 64)) != 0,
        "the frame's page is dirty"
    );
    let used_page = rxq.used as usize / 4096;
    assert!(
        bits[used_page / 64] & (1 << (used_page % 64)) != 0,
        "the used ring's page is dirty"
    );
}

#[test]
fn transmit_keeps_a_frame_the_tap_pushes_back_and_sends_it_first() {
    let mut rig = rig(0);
    let small: libc::c_int = 4096;
    // SAFETY: setting an int socket option on a socket we own.
    unsafe {
        libc::setsockopt(
            rig.engine.tap.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    let frames: Vec<Vec<u8>> = (0..8).map(|i| frame(MAC, 1400, i)).collect();
    for (i, f) in frames.iter().enumerate() {
        queue_tx(&mut rig, 0x10000 + i as u64 * 0x1000, f, 26);
    }
    let mut got = Vec::new();
    let mut saw_backpressure = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < frames.len() && Instant::now() < deadline {
        if rig.engine.process_tx().unwrap() == Progress::WaitWritable {
            saw_backpressure = true;
        }
        while let Some(f) = peer_recv(&rig.peer) {
            got.push(f);
        }
    }
    assert!(
        saw_backpressure,
        "a 4 KiB send buffer cannot take 8 frames of 1.4 KiB"
    );
    let seeds = |v: &[Vec<u8>]| v.iter().map(|f| (f.len(), f[26])).collect::<Vec<_>>();
    assert_eq!(seeds(&got), seeds(&frames), "every frame, in order");
    assert!(got == frames, "unchanged");
    assert_eq!(rig.counters.snapshot().tx_frames, 8);
}

#[test]
fn the_card_runs_on_its_own_thread_through_the_transport() {
    use crate::bus::BusDevice;
    use crate::virtio::mmio::MmioTransport;

    let mem = memory();
    let mut rxq = DriverQueue::new(&mem, 0x1000, SIZE);
    let mut txq = DriverQueue::new(&mem, 0x2000, SIZE);
    let (tap, peer) = Tap::seqpacket().unwrap();
    let counters = Arc::new(NetCounters::new(MacAddr(MAC), "test"));
    let net = Net::new(MacAddr(MAC), 1500, Arc::new(tap), counters.clone()).unwrap();
    let irq = counting_irq();
    let mut t = MmioTransport::new(mem.clone(), irq.clone(), Box::new(net));
    let w32 = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    let r8 = |t: &mut MmioTransport, off: u64| {
        let mut b = [0u8; 1];
        t.read(off, &mut b);
        b[0]
    };
    assert_eq!(
        (0..6).map(|i| r8(&mut t, 0x100 + i)).collect::<Vec<_>>(),
        MAC,
        "the MAC is in the config space"
    );
    w32(&mut t, 0x70, 1 | 2);
    w32(&mut t, 0x24, 1);
    w32(&mut t, 0x20, 1); // VERSION_1
    w32(&mut t, 0x70, 1 | 2 | 8);
    for (i, q) in [&rxq, &txq].into_iter().enumerate() {
        w32(&mut t, 0x30, i as u32);
        w32(&mut t, 0x38, u32::from(SIZE));
        w32(&mut t, 0x80, q.desc as u32);
        w32(&mut t, 0x90, q.avail as u32);
        w32(&mut t, 0xa0, q.used as u32);
        w32(&mut t, 0x44, 1);
    }
    w32(&mut t, 0x70, 1 | 2 | 8 | 4);
    assert!(t.is_activated());

    // Host → guest: the frame waits in the socket until a buffer is posted and kicked.
    let f = frame(PEER, 300, 5);
    peer_send(&peer, &f);
    rxq.add_chain(&[w(0x40000, 1526)]);
    w32(&mut t, 0x50, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while rxq.used_idx() == 0 {
        assert!(
            Instant::now() < deadline,
            "the card thread never delivered the frame"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rxq.used_elem(0).1, f.len() as u32);

    // Guest → host.
    let out = frame(MAC, 200, 6);
    txq.write_bytes(0x50000, &out);
    txq.add_chain(&[r(0x50000, out.len() as u32)]);
    w32(&mut t, 0x50, 1);
    let got = loop {
        if let Some(g) = peer_recv(&peer) {
            break g;
        }
        assert!(Instant::now() < deadline, "the card thread never sent the frame");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(got, out);
    // A reset stops the thread; the card answers nothing until the driver starts again.
    w32(&mut t, 0x70, 0);
    peer_send(&peer, &f);
    rxq.add_chain(&[w(0x42000, 1526)]);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rxq.used_idx(), 1);
    assert!(irq.count() >= 2);
}

/// The card on a real TAP in a namespace of the test's own, the host side an `AF_PACKET` socket on the
/// TAP: frames go both ways without a guest.
#[test]
fn a_real_tap_carries_frames_both_ways() {
    use crate::testing::netns::TestTap;
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("SKIP: a_real_tap_carries_frames_both_ways: /dev/net/tun is absent");
        return;
    }
    let mut net = TestTap::new("tapunit0", "10.0.9.1/24", 1500).unwrap();
    let tap = net.tap.take().unwrap();
    assert_eq!(tap.name(), "tapunit0");
    let mem = memory();
    let mut rxq = DriverQueue::new(&mem, 0x1000, SIZE);
    let mut txq = DriverQueue::new(&mem, 0x2000, SIZE);
    let counters = Arc::new(NetCounters::new(MacAddr(MAC), tap.name()));
    tap.set_offload(0).unwrap();
    let mut engine = Engine::new(
        mem.clone(),
        Interrupt::new(counting_irq()),
        vec![rxq.queue(), txq.queue()],
        Arc::new(tap),
        counters.clone(),
        MAC,
        VIRTIO_F_VERSION_1,
    )
    .unwrap();

    // Host → guest: a raw frame sent on the TAP's host side lands in a receive buffer, vnet header first.
    let mut host_frame = frame(PEER, 200, 3)[VNET_HDR_LEN..].to_vec();
    host_frame[0..6].copy_from_slice(&MAC);
    host_frame[6..12].copy_from_slice(&PEER);
    rxq.add_chain(&[w(0x40000, 1526)]);
    net.packet.send(&host_frame).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rxq.used_idx() == 0 {
        assert!(Instant::now() < deadline, "the frame never reached the guest");
        engine.process_rx().unwrap();
    }
    let (_, len) = rxq.used_elem(0);
    assert_eq!(len as usize, VNET_HDR_LEN + host_frame.len());
    assert_eq!(
        rxq.read_bytes(0x40000 + VNET_HDR_LEN as u64, host_frame.len()),
        host_frame
    );

    // Guest → host: a frame from the card's MAC arrives on the host side unchanged.
    let out = frame(MAC, 300, 8);
    txq.write_bytes(0x50000, &out);
    txq.add_chain(&[r(0x50000, out.len() as u32)]);
    engine.process_tx().unwrap();
    let got = loop {
        let f = net
            .packet
            .recv(Duration::from_secs(30))
            .unwrap()
            .expect("no frame on the host side");
        if f[12..14] == [0x88, 0xb5] {
            break f;
        }
    };
    assert!(got == out[VNET_HDR_LEN..], "the frame arrived changed");
    let s = counters.snapshot();
    assert_eq!((s.rx_frames, s.tx_frames), (1, 1));
}
