//! Frames through a guest: the probe guest's `net echo` sends every frame it receives back with the
//! Ethernet addresses swapped. 10,000 frames of mixed sizes go in through the TAP (from an `AF_PACKET`
//! socket in a namespace the test owns) and must all come back in order and unchanged, and the card's
//! counters in `status` must add up to exactly what was sent. With offloads negotiated, 64 KiB TCP
//! frames asking for segmentation (GSO) travel host → guest → host as one frame each, header intact.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::frames::{check_echo, frame, mixed_len, seq_of};
use common::gso::{self, same_offload, tcp4_frame, tcp_seq, VnetSocket, GSO_TCPV4};
use common::netns::TestTap;
use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};
use serde_json::json;

const BANNER: &str = "PROBE-GUEST READY";
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x04, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x04, 0x01];
const FRAMES: u32 = 10_000;
/// Frames in flight: well below what the guest's receive ring (256 buffers) and the TAP's queue hold,
/// so nothing is ever dropped for lack of room, however slowly the guest runs.
const WINDOW: usize = 128;

fn mac_str(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[test]
fn ten_thousand_frames_of_mixed_sizes_come_back_in_order_and_are_counted() {
    if !kvm_or_skip("ten_thousand_frames_of_mixed_sizes_come_back_in_order_and_are_counted") {
        return;
    }
    let mut net = TestTap::new("tapecho0", "10.0.4.1/24", 1500).unwrap();
    let mut vm = TestVm::start(VmOpts {
        disk_mib: None,
        framebuffer: false,
        nics: vec![(mac_str(GUEST_MAC), 1500, net.take_fd().unwrap())],
        ..VmOpts::probe("probe-net")
    });
    let mut serial = vm.serial();
    let boot = serial.wait_for(BANNER, TIMEOUT);
    assert!(
        boot.contains("probe:   net: mac 52:54:00:00:04:02, mtu 1500, link up"),
        "{boot}"
    );
    assert_eq!(
        serial.command("net mac", "MAC"),
        format!("MAC {}", mac_str(GUEST_MAC))
    );

    let mark = serial.mark();
    serial.send_line(&format!("net echo {FRAMES}"));
    let mut in_flight: VecDeque<Vec<u8>> = VecDeque::new();
    let (mut next_send, mut received, mut bytes) = (0u32, 0u32, 0u64);
    let started = Instant::now();
    while received < FRAMES {
        while next_send < FRAMES && in_flight.len() < WINDOW {
            let f = frame(GUEST_MAC, HOST_MAC, next_send, mixed_len(next_send));
            net.packet.send(&f).unwrap();
            bytes += f.len() as u64;
            in_flight.push_back(f);
            next_send += 1;
        }
        // Waits for the guest, not for a time: TIMEOUT only bounds a guest that stopped answering.
        let Some(got) = net.packet.recv(TIMEOUT).unwrap() else {
            panic!(
                "no frame back for {TIMEOUT:?} after {received} of {FRAMES}; serial:\n{}\nstatus: {}\nstderr:\n{}",
                serial.text(),
                vm.control(json!({"cmd": "status"})),
                vm.stderr()
            );
        };
        let Some(seq) = seq_of(&got) else {
            panic!("a frame that is not the test's came back: {got:02x?}");
        };
        assert_eq!(seq, received, "frame {seq} came back while {received} was next");
        let sent = in_flight.pop_front().unwrap();
        if let Err(e) = check_echo(&sent, &got, GUEST_MAC, HOST_MAC) {
            panic!("echo of frame {seq} ({} bytes): {e}", sent.len());
        }
        received += 1;
    }
    let elapsed = started.elapsed();
    // Typing anything would interrupt the echo: wait for its answer.
    assert_eq!(
        serial.result_since(mark, &["OK net echoed", "ERR"], TIMEOUT),
        format!("OK net echoed {FRAMES}")
    );
    eprintln!(
        "probe-net: {FRAMES} frames ({bytes} bytes) echoed in {:.2} s ({:.0} frames/s)",
        elapsed.as_secs_f64(),
        f64::from(FRAMES) / elapsed.as_secs_f64()
    );

    // The guest's count and the card's agree with what the test sent, and nothing was dropped.
    assert_eq!(
        serial.command("net stats", "NET-STATS"),
        format!("NET-STATS rx {FRAMES} {bytes} tx {FRAMES} {bytes} bad 0")
    );
    let status = vm.control(json!({"cmd": "status"}));
    let nic = &status["nics"][0];
    assert_eq!(nic["mac"], mac_str(GUEST_MAC), "{status}");
    assert_eq!(nic["tap"], "tapecho0", "{status}");
    assert_eq!(nic["rx_frames"], FRAMES, "{status}");
    assert_eq!(nic["rx_bytes"], bytes, "{status}");
    assert_eq!(nic["tx_frames"], FRAMES, "{status}");
    assert_eq!(nic["tx_bytes"], bytes, "{status}");
    for (reason, n) in nic["drops"].as_object().unwrap() {
        assert_eq!(n, 0, "drops.{reason}: {status}");
    }
    // Nothing else arrived on the TAP.
    assert_eq!(net.packet.recv(Duration::from_millis(200)).unwrap(), None);

    // An echo waiting for frames that never come ends on serial input (the second CR stays in the
    // UART until the echo loop looks), and the guest keeps serving commands.
    let mark = serial.mark();
    serial.send_line("net echo 5\r");
    assert_eq!(
        serial.result_since(mark, &["OK net echoed", "ERR"], TIMEOUT),
        "ERR net echo interrupted after 0"
    );
    assert!(serial
        .command("net stats", "NET-STATS")
        .starts_with(&format!("NET-STATS rx {FRAMES} ")));

    vm.control(json!({"cmd": "stop"}));
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
}

/// `probe.net=offload`: the guest negotiates CSUM/GUEST_CSUM and TSO4/6 both ways, so the card sets the
/// TAP's offloads and the kernel hands it TCP frames of up to 64 KiB unsegmented, with a virtio-net
/// header asking for segmentation and checksum completion; the echo sends each back with that header
/// and the TAP gets it back as one frame. (Without the TAP offloads the kernel would segment them and
/// about 45 frames would come back for each.)
#[test]
fn with_offloads_64_kib_tcp_frames_come_back_whole_with_their_gso_header() {
    if !kvm_or_skip("with_offloads_64_kib_tcp_frames_come_back_whole_with_their_gso_header") {
        return;
    }
    const N: u32 = 300;
    const OFFLOAD_WINDOW: usize = 16;
    let mut net = TestTap::new("taptso0", "10.0.6.1/24", 1500).unwrap();
    let mut vm = TestVm::start(VmOpts {
        disk_mib: None,
        framebuffer: false,
        cmdline: "probe.net=offload".into(),
        nics: vec![(mac_str(GUEST_MAC), 1500, net.take_fd().unwrap())],
        ..VmOpts::probe("probe-tso")
    });
    let mut serial = vm.serial();
    let boot = serial.wait_for(BANNER, TIMEOUT);
    assert!(boot.contains("rx buffers of 65600 bytes, tso"), "{boot}");
    let sock = VnetSocket::bind(&net.ns, "taptso0").unwrap();

    // Two thirds GSO frames of up to 64 KiB, a third single segments (checksum offload only).
    let len_of = |n: u32| match n % 3 {
        0 | 1 => gso::GSO_MAX_FRAME - (n as usize % 5) * 3000,
        _ => gso::HEADERS + 1 + (n as usize * 97) % usize::from(gso::MSS),
    };
    let mark = serial.mark();
    serial.send_line(&format!("net echo {N}"));
    let mut in_flight = VecDeque::new();
    let (mut next, mut received, mut bytes, mut gso_frames) = (0u32, 0u32, 0u64, 0);
    while received < N {
        while next < N && in_flight.len() < OFFLOAD_WINDOW {
            let (hdr, f) = tcp4_frame(GUEST_MAC, HOST_MAC, next, len_of(next));
            sock.send(&hdr, &f).unwrap();
            bytes += f.len() as u64;
            gso_frames += usize::from(hdr.gso_type == GSO_TCPV4);
            in_flight.push_back((hdr, f));
            next += 1;
        }
        let Some((hdr, got)) = sock.recv(TIMEOUT).unwrap() else {
            panic!(
                "no frame back after {received} of {N}; status: {}\nstderr:\n{}",
                vm.control(json!({"cmd": "status"})),
                vm.stderr()
            );
        };
        let (sent_hdr, sent) = in_flight.pop_front().unwrap();
        assert_eq!(
            tcp_seq(&got),
            Some(received),
            "frame {received} ({} bytes) expected, got {} bytes with {hdr:?}",
            sent.len(),
            got.len()
        );
        if let Err(e) = check_echo(&sent, &got, GUEST_MAC, HOST_MAC) {
            panic!("echo of frame {received}: {e}");
        }
        assert!(
            same_offload(&sent_hdr, &hdr),
            "frame {received}: sent with {sent_hdr:?}, back with {hdr:?}"
        );
        received += 1;
    }
    assert!(gso_frames >= 200);
    assert_eq!(
        serial.result_since(mark, &["OK net echoed", "ERR"], TIMEOUT),
        format!("OK net echoed {N}")
    );
    let status = vm.control(json!({"cmd": "status"}));
    let nic = &status["nics"][0];
    for key in ["rx_frames", "tx_frames"] {
        assert_eq!(nic[key], N, "{key}: {status}");
    }
    for key in ["rx_bytes", "tx_bytes"] {
        assert_eq!(nic[key], bytes, "{key}: {status}");
    }
    for (reason, n) in nic["drops"].as_object().unwrap() {
        assert_eq!(n, 0, "drops.{reason}: {status}");
    }
    vm.control(json!({"cmd": "stop"}));
    assert_eq!(vm.wait_exit(TIMEOUT), 0, "stderr:\n{}", vm.stderr());
}
