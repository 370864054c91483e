//! A live RFB session against the real server code: a client connects over a socket pair, does the
//! handshake with a fuzzer-chosen version and security answer, then sends a mix of well-formed
//! messages and raw bytes while the screen changes under it (drawing, resizing, rows touched), and
//! hangs up. The server must answer, end the session when the client goes, and never panic; a session
//! still open 10 s after the client hung up is a finding.
#![no_main]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustix::net::{send, SendFlags};
use vmm::rfb::mem::MemFrame;
use vmm::rfb::{InputSink, RfbServer};

/// How long the server may take to close after the client hung up.
const END_TIMEOUT: Duration = Duration::from_secs(10);

struct NoInput;

impl InputSink for NoInput {
    fn key(&self, _: u16, _: bool) {}
    fn pointer(&self, _: u32, _: u32, _: u8) {}
}

#[derive(Debug, Arbitrary)]
enum Version {
    V3_3,
    V3_7,
    V3_8,
    Raw([u8; 12]),
}

#[derive(Debug, Arbitrary)]
enum Enc {
    Raw,
    Zlib,
    Zrle,
    DesktopSize,
    ExtendedDesktopSize,
    QemuExtendedKey,
    Level(u8),
    Other(i32),
}

impl Enc {
    fn code(&self) -> i32 {
        match self {
            Enc::Raw => 0,
            Enc::Zlib => 6,
            Enc::Zrle => 16,
            Enc::DesktopSize => -223,
            Enc::ExtendedDesktopSize => -308,
            Enc::QemuExtendedKey => -258,
            Enc::Level(l) => -256 + i32::from(l % 12),
            Enc::Other(c) => *c,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Msg {
    SetPixelFormat {
        bpp: u8,
        depth: u8,
        big_endian: bool,
        true_colour: bool,
        max: [u16; 3],
        shift: [u8; 3],
    },
    SetEncodings(Vec<Enc>),
    UpdateRequest {
        incremental: bool,
        x: u16,
        y: u16,
        w: u16,
        h: u16,
    },
    Key {
        down: bool,
        keysym: u32,
    },
    Pointer {
        buttons: u8,
        x: u16,
        y: u16,
    },
    CutText(Vec<u8>),
    ExtendedKey {
        down: u16,
        keysym: u32,
        scancode: u32,
    },
    SetDesktopSize {
        w: u16,
        h: u16,
        screens: u8,
    },
}

impl Msg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Msg::SetPixelFormat {
                bpp,
                depth,
                big_endian,
                true_colour,
                max,
                shift,
            } => {
                out.extend_from_slice(&[0, 0, 0, 0]);
                let bpp = [8, 16, 32, *bpp][usize::from(bpp % 4)];
                out.extend_from_slice(&[bpp, *depth, u8::from(*big_endian), u8::from(*true_colour)]);
                for m in max {
                    out.extend_from_slice(&m.to_be_bytes());
                }
                out.extend_from_slice(shift);
                out.extend_from_slice(&[0, 0, 0]);
            }
            Msg::SetEncodings(list) => {
                out.extend_from_slice(&[2, 0]);
                out.extend_from_slice(&(list.len() as u16).to_be_bytes());
                for e in list {
                    out.extend_from_slice(&e.code().to_be_bytes());
                }
            }
            Msg::UpdateRequest {
                incremental,
                x,
                y,
                w,
                h,
            } => {
                out.extend_from_slice(&[3, u8::from(*incremental)]);
                for v in [x, y, w, h] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Msg::Key { down, keysym } => {
                out.extend_from_slice(&[4, u8::from(*down), 0, 0]);
                out.extend_from_slice(&keysym.to_be_bytes());
            }
            Msg::Pointer { buttons, x, y } => {
                out.extend_from_slice(&[5, *buttons]);
                out.extend_from_slice(&x.to_be_bytes());
                out.extend_from_slice(&y.to_be_bytes());
            }
            Msg::CutText(text) => {
                out.extend_from_slice(&[6, 0, 0, 0]);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text);
            }
            Msg::ExtendedKey {
                down,
                keysym,
                scancode,
            } => {
                out.extend_from_slice(&[255, 0]);
                out.extend_from_slice(&down.to_be_bytes());
                out.extend_from_slice(&keysym.to_be_bytes());
                out.extend_from_slice(&scancode.to_be_bytes());
            }
            Msg::SetDesktopSize { w, h, screens } => {
                out.extend_from_slice(&[251, 0]);
                out.extend_from_slice(&w.to_be_bytes());
                out.extend_from_slice(&h.to_be_bytes());
                out.extend_from_slice(&[*screens, 0]);
                for i in 0..*screens {
                    out.extend_from_slice(&[i; 16]);
                }
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Step {
    Msg(Msg),
    /// Bytes as they are, e.g. half a message.
    Raw(Vec<u8>),
    /// The guest draws.
    Draw {
        x: u8,
        y: u8,
        w: u8,
        h: u8,
        colour: u32,
    },
    /// The guest rewrites rows without changing them.
    Touch {
        y0: u8,
        y1: u8,
    },
    /// The guest changes the screen size (up to 96 x 96, zero included).
    Resize {
        w: u8,
        h: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Session {
    width: u8,
    height: u8,
    version: Version,
    security: Option<u8>,
    shared: u8,
    steps: Vec<Step>,
}

/// Sends all of `buf` unless the server has hung up; never raises SIGPIPE.
fn send_all(s: &UnixStream, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match send(s, buf, SendFlags::NOSIGNAL) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf = &buf[n..],
        }
    }
    true
}

fuzz_target!(|session: Session| {
    let frame = Arc::new(MemFrame::new(
        u32::from(session.width % 97),
        u32::from(session.height % 97),
    ));
    frame.draw(0, 0, 96, 96, |x, y| (x * 0x0301 + y * 0x0001_0007) & 0x00ff_ffff);
    let server = RfbServer::new(frame.clone(), Arc::new(NoInput), "fuzz").expect("server");
    server.set_poll_interval(Duration::from_millis(1));
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    server.handle_connection(theirs).expect("client threads");

    // Everything the server sends is drained on another thread, so its writer never blocks on us.
    let mut reader = ours.try_clone().expect("socket clone");
    reader.set_read_timeout(Some(END_TIMEOUT)).expect("read timeout");
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                // A server that hangs up with bytes of ours unread resets the connection: also an end.
                Ok(0) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    });

    let mut hello = match session.version {
        Version::V3_3 => b"RFB 003.003\n".to_vec(),
        Version::V3_7 => b"RFB 003.007\n".to_vec(),
        Version::V3_8 => b"RFB 003.008\n".to_vec(),
        Version::Raw(v) => v.to_vec(),
    };
    hello.push(session.security.unwrap_or(1));
    hello.push(session.shared);
    let mut open = send_all(&ours, &hello);
    let mut buf = Vec::new();
    for step in &session.steps {
        match step {
            Step::Msg(m) => {
                buf.clear();
                m.encode(&mut buf);
                open = open && send_all(&ours, &buf);
            }
            Step::Raw(bytes) => open = open && send_all(&ours, bytes),
            Step::Draw { x, y, w, h, colour } => frame.fill(
                u32::from(*x),
                u32::from(*y),
                u32::from(*w),
                u32::from(*h),
                *colour,
            ),
            Step::Touch { y0, y1 } => frame.touch_rows(u32::from(*y0), u32::from(*y1)),
            Step::Resize { w, h } => frame.resize(u32::from(w % 97), u32::from(h % 97)),
        }
    }
    let _ = ours.shutdown(std::net::Shutdown::Write);
    let ended = drain.join().expect("drain thread");
    server.stop();
    if let Err(e) = ended {
        panic!("RFB session still open {END_TIMEOUT:?} after the client hung up: {e}");
    }
});
