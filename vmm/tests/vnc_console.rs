//! The VM's screen over `vnc.sock` with a real guest: an RFB 3.8 viewer types a key, the probe guest echoes it
//! on its serial port and draws the glyph, and the viewer receives exactly that part of the screen.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{kvm_or_skip, TestVm, VmOpts, TIMEOUT};

fn read_exact(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Reads one FramebufferUpdate of Raw rectangles: (x, y, w, h, pixels).
fn read_update(s: &mut UnixStream) -> Vec<(u16, u16, u16, u16, Vec<u8>)> {
    let head = read_exact(s, 4);
    assert_eq!(head[0], 0, "expected FramebufferUpdate");
    let mut rects = Vec::new();
    for _ in 0..u16_at(&head, 2) {
        let r = read_exact(s, 12);
        let (x, y, w, h) = (u16_at(&r, 0), u16_at(&r, 2), u16_at(&r, 4), u16_at(&r, 6));
        let encoding = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
        let pixels = if encoding == 0 {
            read_exact(s, w as usize * h as usize * 4)
        } else {
            Vec::new()
        };
        rects.push((x, y, w, h, pixels));
    }
    rects
}

fn request(s: &mut UnixStream, incremental: bool, w: u16, h: u16) {
    let mut msg = vec![3, u8::from(incremental), 0, 0, 0, 0];
    msg.extend_from_slice(&w.to_be_bytes());
    msg.extend_from_slice(&h.to_be_bytes());
    s.write_all(&msg).unwrap();
}

#[test]
fn a_vnc_viewer_types_into_the_guest_and_sees_the_glyph_drawn() {
    if !kvm_or_skip("a_vnc_viewer_types_into_the_guest_and_sees_the_glyph_drawn") {
        return;
    }
    let vm = TestVm::start(VmOpts::probe("probe-vnc"));
    let serial = vm.serial();
    serial.wait_for("PROBE-GUEST READY", TIMEOUT);

    let mut s = UnixStream::connect(vm.files().vnc()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(read_exact(&mut s, 12), b"RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").unwrap();
    assert_eq!(read_exact(&mut s, 2), [1, 1], "one security type: None");
    s.write_all(&[1]).unwrap();
    assert_eq!(read_exact(&mut s, 4), [0, 0, 0, 0], "security result OK");
    s.write_all(&[1]).unwrap(); // shared
    let init = read_exact(&mut s, 24);
    let (w, h) = (u16_at(&init, 0), u16_at(&init, 2));
    assert_eq!((w, h), (640, 480));
    assert_eq!(init[4], 32, "32 bits per pixel");
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    assert_eq!(read_exact(&mut s, name_len), b"probe-vnc");

    // Raw only, then a full frame.
    s.write_all(&[2, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    request(&mut s, false, w, h);
    let full = read_update(&mut s);
    let area: usize = full.iter().map(|r| r.2 as usize * r.3 as usize).sum();
    assert_eq!(area, 640 * 480, "the first frame covers the screen");

    // Key 'a' down and up (keysym 0x61) → virtio-input → the guest.
    for down in [1u8, 0] {
        s.write_all(&[4, down, 0, 0, 0, 0, 0, 0x61]).unwrap();
    }
    serial.wait_for("KEY a", TIMEOUT);

    // The glyph cell (0, 32)..(8, 48) arrives in an incremental update with light pixels in it.
    let deadline = Instant::now() + TIMEOUT;
    let mut drawn = false;
    while !drawn {
        assert!(Instant::now() < deadline, "the glyph never arrived");
        request(&mut s, true, w, h);
        for (x, y, rw, rh, px) in read_update(&mut s) {
            for row in 32..48u16 {
                for col in 0..8u16 {
                    if col >= x && col < x + rw && row >= y && row < y + rh {
                        let i = ((row - y) as usize * rw as usize + (col - x) as usize) * 4;
                        drawn |= px[i] > 0xc0 && px[i + 1] > 0xc0 && px[i + 2] > 0xc0;
                    }
                }
            }
        }
    }

    // Once the screen is idle, an incremental request gets no answer at all (the request stays pending).
    s.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    let mut quiet = false;
    for _ in 0..20 {
        request(&mut s, true, w, h);
        let mut first = [0u8; 1];
        match s.read(&mut first) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                quiet = true;
                break;
            }
            Ok(1) => {
                // Damage still settling: consume that update and ask again.
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                let rest = read_exact(&mut s, 3);
                for _ in 0..u16_at(&[0, rest[0], rest[1], rest[2]], 2) {
                    let r = read_exact(&mut s, 12);
                    read_exact(&mut s, u16_at(&r, 4) as usize * u16_at(&r, 6) as usize * 4);
                }
                s.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
            }
            other => panic!("unexpected read result {other:?}"),
        }
    }
    assert!(quiet, "an idle screen must send nothing");
}
