//! End-to-end tests of the RFB server over socket pairs, with an in-memory screen and a recording
//! input sink: what a viewer sees and what the guest would receive.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::damage::Rect;
use super::mem::MemFrame;
use super::pixel::PixelFormat;
use super::testutil::{decode_rect, Inflaters};
use super::{bench_figures, InputSink, RfbServer};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Key(u16, bool),
    Pointer(u32, u32, u8),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Ev>>);

impl InputSink for Recorder {
    fn key(&self, code: u16, down: bool) {
        self.0.lock().unwrap().push(Ev::Key(code, down));
    }
    fn pointer(&self, x: u32, y: u32, buttons: u8) {
        self.0.lock().unwrap().push(Ev::Pointer(x, y, buttons));
    }
}

impl Recorder {
    /// Waits until `n` events arrived and returns them all.
    fn wait(&self, n: usize) -> Vec<Ev> {
        let start = Instant::now();
        while self.0.lock().unwrap().len() < n && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Setup {
    frame: Arc<MemFrame>,
    input: Arc<Recorder>,
    server: RfbServer,
}

fn setup(w: u32, h: u32) -> Setup {
    let frame = Arc::new(MemFrame::new(w, h));
    frame.draw(0, 0, w, h, |x, y| (x * 0x0301 + y * 0x010007) & 0x00ff_ffff);
    frame.take_dirty();
    let input = Arc::new(Recorder::default());
    let server = RfbServer::new(frame.clone(), input.clone(), "test vm").unwrap();
    server.set_poll_interval(Duration::from_millis(5));
    Setup { frame, input, server }
}

/// An update as the test client saw it.
#[derive(Debug, Default)]
struct Update {
    rects: Vec<(Rect, i32)>,
}

impl Update {
    fn pixel_rects(&self) -> Vec<Rect> {
        self.rects
            .iter()
            .filter(|(_, e)| *e >= 0)
            .map(|(r, _)| *r)
            .collect()
    }
    fn has(&self, encoding: i32) -> bool {
        self.rects.iter().any(|(_, e)| *e == encoding)
    }
}

struct Client {
    s: UnixStream,
    pf: PixelFormat,
    inf: Inflaters,
    size: (u32, u32),
    /// The client's copy of the screen, in client pixel values.
    screen: Vec<u32>,
}

fn read_n(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).unwrap();
    b
}

impl Client {
    fn connect(server: &RfbServer, version: &[u8; 12]) -> Client {
        let (mut s, theirs) = UnixStream::pair().unwrap();
        server.handle_connection(theirs).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_n(&mut s, 12), b"RFB 003.008\n");
        s.write_all(version).unwrap();
        if version == b"RFB 003.003\n" {
            assert_eq!(read_n(&mut s, 4), [0, 0, 0, 1]);
        } else {
            assert_eq!(read_n(&mut s, 2), [1, 1]);
            s.write_all(&[1]).unwrap();
            if version == b"RFB 003.008\n" {
                assert_eq!(read_n(&mut s, 4), [0, 0, 0, 0]);
            }
        }
        s.write_all(&[1]).unwrap(); // shared
        let init = read_n(&mut s, 24);
        let w = u16::from_be_bytes([init[0], init[1]]) as u32;
        let h = u16::from_be_bytes([init[2], init[3]]) as u32;
        let pf = PixelFormat::parse(init[4..20].try_into().unwrap()).unwrap();
        assert_eq!(pf, PixelFormat::NATIVE);
        let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
        assert_eq!(read_n(&mut s, name_len), b"test vm");
        Client {
            s,
            pf,
            inf: Inflaters::default(),
            size: (w, h),
            screen: vec![0; (w * h) as usize],
        }
    }

    fn set_pixel_format(&mut self, pf: PixelFormat) {
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&pf.to_bytes());
        self.s.write_all(&m).unwrap();
        self.pf = pf;
    }

    fn set_encodings(&mut self, encs: &[i32]) {
        let mut m = vec![2, 0];
        m.extend_from_slice(&(encs.len() as u16).to_be_bytes());
        for e in encs {
            m.extend_from_slice(&e.to_be_bytes());
        }
        self.s.write_all(&m).unwrap();
    }

    fn request(&mut self, incremental: bool) {
        let mut m = vec![3, u8::from(incremental), 0, 0, 0, 0];
        m.extend_from_slice(&(self.size.0 as u16).to_be_bytes());
        m.extend_from_slice(&(self.size.1 as u16).to_be_bytes());
        self.s.write_all(&m).unwrap();
    }

    /// Reads one FramebufferUpdate, applying it to `screen`; `None` if nothing came within `wait`.
    fn update(&mut self, wait: Duration) -> Option<Update> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut head = [0u8; 4];
        if let Err(e) = self.s.read_exact(&mut head) {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            );
            return None;
        }
        self.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(head[0], 0, "FramebufferUpdate expected");
        let n = u16::from_be_bytes([head[2], head[3]]);
        let mut up = Update::default();
        for _ in 0..n {
            let h = read_n(&mut self.s, 12);
            let v = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]) as u32;
            let r = Rect {
                x: v(0),
                y: v(2),
                w: v(4),
                h: v(6),
            };
            let enc = i32::from_be_bytes(h[8..12].try_into().unwrap());
            up.rects.push((r, enc));
            let payload = match enc {
                0 => read_n(&mut self.s, (r.w * r.h) as usize * self.pf.bytes_per_pixel()),
                6 | 16 => {
                    let mut p = read_n(&mut self.s, 4);
                    let len = u32::from_be_bytes(p[..4].try_into().unwrap()) as usize;
                    p.extend(read_n(&mut self.s, len));
                    p
                }
                -223 => {
                    self.resize(r.w, r.h);
                    continue;
                }
                -308 => {
                    let b = read_n(&mut self.s, 4);
                    read_n(&mut self.s, b[0] as usize * 16);
                    if r.x == 0 {
                        self.resize(r.w, r.h);
                    }
                    continue;
                }
                -258 => continue,
                e => panic!("unexpected encoding {e}"),
            };
            let px = decode_rect(
                &mut &payload[..],
                enc,
                &self.pf,
                r.w as usize,
                r.h as usize,
                &mut self.inf,
            )
            .unwrap();
            for (i, p) in px.into_iter().enumerate() {
                let (x, y) = (r.x + i as u32 % r.w, r.y + i as u32 / r.w);
                self.screen[(y * self.size.0 + x) as usize] = p;
            }
        }
        Some(up)
    }

    fn resize(&mut self, w: u32, h: u32) {
        self.size = (w, h);
        self.screen = vec![0; (w * h) as usize];
    }

    /// Reads updates until one carries pixel rectangles.
    fn pixel_update(&mut self) -> Update {
        loop {
            let up = self.update(Duration::from_secs(5)).expect("no update");
            if !up.pixel_rects().is_empty() {
                return up;
            }
        }
    }

    fn assert_screen_matches(&self, frame: &MemFrame) {
        for y in 0..self.size.1 {
            for x in 0..self.size.0 {
                let want = self.pf.convert(frame.pixel(x, y));
                let got = self.screen[(y * self.size.0 + x) as usize];
                assert_eq!(got, want, "pixel ({x},{y})");
            }
        }
    }

    /// True once the server closed the connection.
    fn closed(&mut self) -> bool {
        self.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

const NOVNC: PixelFormat = PixelFormat {
    red_shift: 0,
    blue_shift: 16,
    ..PixelFormat::NATIVE
};

#[test]
fn handshakes_for_3_8_3_7_and_3_3_reach_server_init() {
    let t = setup(200, 100);
    for v in [b"RFB 003.008\n", b"RFB 003.007\n", b"RFB 003.003\n"] {
        let mut c = Client::connect(&t.server, v);
        assert_eq!(c.size, (200, 100));
        c.request(false);
        let up = c.pixel_update();
        assert_eq!(
            up.pixel_rects(),
            vec![Rect {
                x: 0,
                y: 0,
                w: 200,
                h: 100
            }]
        );
        c.assert_screen_matches(&t.frame);
    }
}

#[test]
fn refused_security_type_gets_a_reason_and_a_close() {
    let t = setup(16, 16);
    let (mut s, theirs) = UnixStream::pair().unwrap();
    t.server.handle_connection(theirs).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    read_n(&mut s, 12);
    s.write_all(b"RFB 003.008\n").unwrap();
    read_n(&mut s, 2);
    s.write_all(&[2]).unwrap(); // VNC authentication: not offered
    assert_eq!(read_n(&mut s, 4), [0, 0, 0, 1]);
    let len = u32::from_be_bytes(read_n(&mut s, 4).try_into().unwrap()) as usize;
    assert!(!read_n(&mut s, len).is_empty());
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn raw_updates_follow_the_clients_pixel_format() {
    let t = setup(40, 30);
    let rgb565 = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };
    let bgr233 = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        red_max: 3,
        green_max: 3,
        blue_max: 3,
        red_shift: 0,
        green_shift: 2,
        blue_shift: 4,
    };
    for pf in [NOVNC, rgb565, bgr233] {
        let mut c = Client::connect(&t.server, b"RFB 003.008\n");
        c.set_pixel_format(pf);
        c.set_encodings(&[0]);
        c.request(false);
        let up = c.pixel_update();
        assert!(up.rects.iter().all(|(_, e)| *e == 0));
        c.assert_screen_matches(&t.frame);
    }
}

#[test]
fn zrle_and_zlib_streams_stay_in_step_across_updates() {
    let t = setup(300, 200);
    for enc in [16, 6] {
        let mut c = Client::connect(&t.server, b"RFB 003.008\n");
        c.set_pixel_format(NOVNC);
        c.set_encodings(&[7, enc, 0]); // Tight first: not ours, so the next one is chosen
        c.request(false);
        let up = c.pixel_update();
        assert!(up.rects.iter().all(|(_, e)| *e == enc));
        c.assert_screen_matches(&t.frame);
        for i in 0..3 {
            t.frame
                .fill(10 + i * 50, 20, 33, 17, 0x0012_3456 * (i + 1) + enc as u32);
            c.request(true);
            c.pixel_update();
            c.assert_screen_matches(&t.frame);
        }
    }
}

#[test]
fn idle_screen_sends_nothing_and_damage_sends_only_its_rect() {
    let t = setup(1024, 768);
    let mut c = Client::connect(&t.server, b"RFB 003.008\n");
    c.set_pixel_format(NOVNC);
    c.set_encodings(&[16, 0]);
    c.request(false);
    c.pixel_update();
    c.request(true);
    // Rows rewritten with the same pixels are no damage either.
    t.frame.touch_rows(100, 200);
    assert!(c.update(Duration::from_millis(300)).is_none());
    // One glyph typed at text cell (10, 2).
    t.frame.fill(80, 32, 8, 16, 0x00ffffff);
    let up = c.pixel_update();
    assert_eq!(
        up.pixel_rects(),
        vec![Rect {
            x: 80,
            y: 32,
            w: 8,
            h: 16
        }]
    );
    c.assert_screen_matches(&t.frame);
    c.request(true);
    assert!(c.update(Duration::from_millis(300)).is_none());
}

#[test]
fn keys_reach_the_guest_as_linux_keycodes() {
    let t = setup(64, 64);
    let mut c = Client::connect(&t.server, b"RFB 003.008\n");
    let key = |down: u8, sym: u32| {
        let mut m = vec![4, down, 0, 0];
        m.extend_from_slice(&sym.to_be_bytes());
        m
    };
    let mut m = key(1, 0x61);
    m.extend(key(0, 0x61));
    m.extend(key(1, 0xffe1)); // Shift_L
    m.extend(key(1, 0x41)); // 'A' with Shift held: no extra Shift
    m.extend(key(0, 0x41));
    m.extend(key(0, 0xffe1));
    m.extend(key(1, 0xff0d)); // Return
    m.extend(key(0, 0xff0d));
    m.extend(key(1, 0x21)); // '!' without Shift: Shift is added around the press
    m.extend(key(0, 0x21));
    c.s.write_all(&m).unwrap();
    use Ev::Key;
    assert_eq!(
        t.input.wait(12),
        vec![
            Key(30, true),
            Key(30, false),
            Key(42, true),
            Key(30, true),
            Key(30, false),
            Key(42, false),
            Key(28, true),
            Key(28, false),
            Key(42, true),
            Key(2, true),
            Key(42, false),
            Key(2, false),
        ]
    );

    // QEMU Extended Key Events: acknowledged, then the scancode decides.
    c.set_encodings(&[0, -258]);
    let ack = c.update(Duration::from_secs(5)).unwrap();
    assert!(ack.has(-258));
    let ext = |down: u16, sym: u32, scan: u32| {
        let mut m = vec![255, 0];
        m.extend_from_slice(&down.to_be_bytes());
        m.extend_from_slice(&sym.to_be_bytes());
        m.extend_from_slice(&scan.to_be_bytes());
        m
    };
    let mut m = ext(1, 0x71, 0x1e); // keysym 'q' from an AZERTY client, physical key A
    m.extend(ext(0, 0x71, 0x1e));
    m.extend(ext(1, 0xff52, 0xe048));
    m.extend(ext(1, 0xff52, 0xc8));
    c.s.write_all(&m).unwrap();
    assert_eq!(
        t.input.wait(4),
        vec![Key(30, true), Key(30, false), Key(103, true), Key(103, true)]
    );
}

#[test]
fn pointer_events_are_clamped_to_the_screen() {
    let t = setup(64, 48);
    let mut c = Client::connect(&t.server, b"RFB 003.008\n");
    c.s.write_all(&[5, 1, 0, 10, 0, 20, 5, 0, 0x13, 0x88, 0x13, 0x88])
        .unwrap();
    assert_eq!(
        t.input.wait(2),
        vec![Ev::Pointer(10, 20, 1), Ev::Pointer(63, 47, 0)]
    );
}

#[test]
fn held_keys_and_buttons_are_released_when_a_viewer_leaves() {
    let t = setup(64, 48);
    let mut c = Client::connect(&t.server, b"RFB 003.008\n");
    c.s.write_all(&[4, 1, 0, 0, 0, 0, 0xff, 0xe3, 5, 1, 0, 3, 0, 4])
        .unwrap();
    assert_eq!(t.input.wait(2).len(), 2);
    drop(c);
    assert_eq!(t.input.wait(2), vec![Ev::Key(29, false), Ev::Pointer(3, 4, 0)]);
}

#[test]
fn malformed_messages_close_the_connection_without_harm() {
    let t = setup(32, 32);
    let mut bad: Vec<Vec<u8>> = vec![
        vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // 4 GiB cut text
        vec![77],                                 // unknown message type
        vec![2, 0, 0xff, 0xff],                   // SetEncodings with 65535 entries
        vec![255, 1, 0, 0],                       // QEMU audio: not offered
        vec![3, 0, 0],                            // truncated, then EOF
    ];
    for (bpp, tc) in [(24u8, 1u8), (0, 1), (8, 0)] {
        let m = vec![
            0, 0, 0, 0, bpp, 24, 0, tc, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ];
        bad.push(m);
    }
    for msg in bad {
        let mut c = Client::connect(&t.server, b"RFB 003.008\n");
        c.s.write_all(&msg).unwrap();
        c.s.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(c.closed(), "{msg:?} did not close");
    }
    let start = Instant::now();
    while t.server.client_count() > 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(t.server.client_count(), 0);
    // A garbage greeting is refused too, and the server still serves the next viewer.
    let (mut s, theirs) = UnixStream::pair().unwrap();
    t.server.handle_connection(theirs).unwrap();
    read_n(&mut s, 12);
    s.write_all(b"GET / HTTP/1").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
    let mut c = Client::connect(&t.server, b"RFB 003.008\n");
    c.request(false);
    c.pixel_update();
    c.assert_screen_matches(&t.frame);
}

#[test]
fn clients_share_the_screen_and_a_stalled_one_does_not_hold_up_the_other() {
    let t = setup(1024, 768);
    let mut a = Client::connect(&t.server, b"RFB 003.008\n");
    let mut b = Client::connect(&t.server, b"RFB 003.008\n");
    let mut stalled = Client::connect(&t.server, b"RFB 003.008\n");
    for c in [&mut a, &mut b] {
        c.set_encodings(&[16]);
        c.request(false);
        c.pixel_update();
    }
    // The stalled viewer asks for raw full frames and never reads (3 MiB each, far above the
    // socket buffer).
    stalled.set_encodings(&[0]);
    for _ in 0..4 {
        stalled.request(false);
    }
    for i in 0..5u32 {
        t.frame.fill(16 * i, 64, 8, 16, 0x00ff_0000 + i);
        for c in [&mut a, &mut b] {
            c.request(true);
            let up = c.pixel_update();
            assert_eq!(
                up.pixel_rects(),
                vec![Rect {
                    x: 16 * i,
                    y: 64,
                    w: 8,
                    h: 16
                }]
            );
            c.assert_screen_matches(&t.frame);
        }
    }
    assert_eq!(t.server.client_count(), 3);
}

#[test]
fn a_resized_screen_is_announced_before_its_pixels() {
    let t = setup(64, 48);
    let mut ext = Client::connect(&t.server, b"RFB 003.008\n");
    ext.set_encodings(&[0, -308]);
    ext.request(false);
    let first = ext.pixel_update();
    assert!(first.has(-308)); // announcement, so noVNC knows it may ask
    let mut plain = Client::connect(&t.server, b"RFB 003.008\n");
    plain.set_encodings(&[0, -223]);
    plain.request(false);
    plain.pixel_update();
    t.frame.resize(80, 40);
    t.frame.fill(0, 0, 80, 40, 0x0000_ff00);
    for (c, enc) in [(&mut ext, -308), (&mut plain, -223)] {
        c.request(true);
        let up = c.pixel_update();
        assert_eq!(up.rects[0].1, enc);
        assert_eq!(c.size, (80, 40));
        assert_eq!(
            up.pixel_rects(),
            vec![Rect {
                x: 0,
                y: 0,
                w: 80,
                h: 40
            }]
        );
        c.assert_screen_matches(&t.frame);
    }
}

#[test]
fn serve_accepts_on_a_socket_and_stop_ends_everything() {
    let t = setup(32, 32);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vnc.sock");
    let listener = RfbServer::bind(&path).unwrap();
    let thread = t.server.spawn(listener).unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_n(&mut s, 12), b"RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").unwrap();
    read_n(&mut s, 2);
    s.write_all(&[1]).unwrap();
    read_n(&mut s, 4);
    s.write_all(&[0]).unwrap();
    read_n(&mut s, 24 + 7);
    t.server.stop();
    thread.join().unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn typing_one_character_costs_a_few_dozen_bytes_and_idle_costs_none() {
    let f = bench_figures(Duration::from_millis(500)).unwrap();
    assert!(f.glyph_bytes > 0 && f.glyph_bytes < 200, "{f:?}");
    assert_eq!(f.idle_bytes, 0, "{f:?}");
}

#[test]
#[ignore = "bench: takes 10 s; run with --ignored --nocapture"]
fn bench_prints_figures() {
    let f = bench_figures(Duration::from_secs(10)).unwrap();
    eprintln!("{f:#?}");
    assert_eq!(f.idle_bytes, 0);
}

/// Writes ZRLE and Zlib rectangles in noVNC's pixel format, with the expected RGB, to `$RFB_DUMP`
/// (entries: encoding, width, height as big-endian u32, payload length u32, payload, w*h*3 RGB), so
/// noVNC's own decoders can be run against them (see the RFB report for the node harness).
#[test]
#[ignore = "manual cross-check with noVNC's decoders"]
fn dump_rects_for_novnc() {
    use super::encode::{Encoder, Encoding};
    let Ok(path) = std::env::var("RFB_DUMP") else {
        return;
    };
    let (w, h) = (150usize, 70usize);
    let mut seed = 7u32;
    let pictures: Vec<Vec<u32>> = (0..3)
        .map(|k| {
            (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    match (x / 40 + k) % 4 {
                        0 => 0x0010_2030,
                        1 => {
                            if (x + y) % 3 == 0 {
                                0x00ff_ffff
                            } else {
                                0x0000_0080
                            }
                        }
                        2 => ((x / 4 + y) as u32 * 0x0001_0101) & 0x00ff_ffff,
                        _ => (seed >> 8) & 0x00ff_ffff,
                    }
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for enc in [Encoding::Zrle, Encoding::Zlib] {
        let mut encoder = Encoder::new(6);
        for pic in &pictures {
            let mut payload = Vec::new();
            encoder.encode(enc, &NOVNC, pic, w, &mut payload).unwrap();
            for v in [enc.code() as u32, w as u32, h as u32, payload.len() as u32] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&payload);
            for &p in pic {
                out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
            }
        }
    }
    std::fs::write(path, out).unwrap();
}
