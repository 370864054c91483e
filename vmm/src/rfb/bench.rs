//! A small RFB bench: bytes a viewer receives for the first frame, for one typed glyph, and while the
//! screen is idle. Runs over a socket pair against an in-memory 1024x768 "text console", so it needs no
//! KVM; `vmm --bench` or the ignored test `rfb::tests::bench_prints_figures` call it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::keymap::KEY_A;
use super::mem::MemFrame;
use super::{InputSink, RfbError, RfbServer};

/// Measured figures.
#[derive(Debug, Clone, Copy)]
pub struct BenchFigures {
    /// First full frame, ZRLE, noVNC's pixel format.
    pub first_frame_bytes: u64,
    /// From the request to the last byte of the first frame (encoding dominates).
    pub first_frame_time: Duration,
    /// The update after typing one character (an 8x16 glyph drawn by the "guest").
    pub glyph_bytes: u64,
    /// From the key press to the last byte of that update.
    pub glyph_latency: Duration,
    /// Everything received during the idle period (an update request outstanding throughout).
    pub idle_bytes: u64,
    pub idle: Duration,
}

/// Draws a glyph at the next cell whenever KEY_A goes down, like a console echoing what is typed.
struct Echo {
    frame: Arc<MemFrame>,
    cell: std::sync::atomic::AtomicU32,
}

impl InputSink for Echo {
    fn key(&self, code: u16, down: bool) {
        if code == KEY_A && down {
            let n = self.cell.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (x, y) = (8 * (n % 128), 16 * (20 + n / 128));
            self.frame.draw(
                x,
                y,
                8,
                16,
                |px, py| {
                    if (px + py) % 3 == 0 {
                        0x00aa_aaaa
                    } else {
                        0
                    }
                },
            );
        }
    }

    fn pointer(&self, _x: u32, _y: u32, _buttons: u8) {}
}

fn read_exact_vec(s: &mut UnixStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// Reads FramebufferUpdates (ZRLE and pseudo rectangles only) until one carries pixels; returns
/// the bytes read and when the last one came.
fn read_pixel_update(s: &mut UnixStream) -> std::io::Result<(u64, Instant)> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut total = 0u64;
    loop {
        let head = read_exact_vec(s, 4)?;
        total += 4;
        let mut pixels = false;
        for _ in 0..u16::from_be_bytes([head[2], head[3]]) {
            let r = read_exact_vec(s, 12)?;
            total += 12;
            let skip = match i32::from_be_bytes([r[8], r[9], r[10], r[11]]) {
                16 => {
                    pixels = true;
                    let len = read_exact_vec(s, 4)?;
                    total += 4;
                    u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize
                }
                -308 => {
                    let n = read_exact_vec(s, 4)?;
                    total += 4;
                    usize::from(n[0]) * 16
                }
                _ => 0,
            };
            read_exact_vec(s, skip)?;
            total += skip as u64;
        }
        if pixels {
            return Ok((total, Instant::now()));
        }
    }
}

/// Counts whatever arrives within `period`.
fn count_for(s: &mut UnixStream, period: Duration) -> std::io::Result<u64> {
    let end = Instant::now() + period;
    let mut total = 0u64;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(total);
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(total)
            }
            Err(e) => return Err(e),
        }
    }
}

const INCREMENTAL_REQUEST: [u8; 10] = [3, 1, 0, 0, 0, 0, 0x04, 0x00, 0x03, 0x00];

/// Runs the bench with an idle period of `idle`.
pub fn bench_figures(idle: Duration) -> Result<BenchFigures, RfbError> {
    let io = RfbError::Socket;
    let frame = Arc::new(MemFrame::new(1024, 768));
    // A console with twenty lines of "text".
    frame.draw(0, 0, 1024, 320, |x, y| {
        if (x / 8 + y / 16) % 3 != 0 && (x * 7 + y * 13) % 5 == 0 {
            0x00aa_aaaa
        } else {
            0
        }
    });
    let echo = Arc::new(Echo {
        frame: frame.clone(),
        cell: 0.into(),
    });
    let server = RfbServer::new(frame.clone(), echo, "bench")?;
    let (mut c, s) = UnixStream::pair().map_err(io)?;
    server.handle_connection(s)?;
    let result = (|| -> std::io::Result<BenchFigures> {
        let mut hello = [0u8; 12];
        c.read_exact(&mut hello)?;
        c.write_all(b"RFB 003.008\n")?;
        let mut sec = [0u8; 2];
        c.read_exact(&mut sec)?;
        c.write_all(&[1])?;
        let mut res = [0u8; 4];
        c.read_exact(&mut res)?;
        c.write_all(&[1])?;
        let mut init = [0u8; 24];
        c.read_exact(&mut init)?;
        let mut name = vec![0u8; u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize];
        c.read_exact(&mut name)?;
        // noVNC's format and encodings (ZRLE preferred among those we have).
        let mut msg = vec![
            0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0,
        ];
        let encs: [i32; 5] = [16, 0, -223, -258, -308];
        msg.extend_from_slice(&[2, 0, 0, encs.len() as u8]);
        for e in encs {
            msg.extend_from_slice(&e.to_be_bytes());
        }
        msg.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0x04, 0x00, 0x03, 0x00]);
        c.write_all(&msg)?;
        let asked = Instant::now();
        let (first_frame_bytes, last) = read_pixel_update(&mut c)?;
        let first_frame_time = last.saturating_duration_since(asked);

        c.write_all(&INCREMENTAL_REQUEST)?;
        let pressed = Instant::now();
        c.write_all(&[4, 1, 0, 0, 0, 0, 0, b'a', 4, 0, 0, 0, 0, 0, 0, b'a'])?;
        let (glyph_bytes, last) = read_pixel_update(&mut c)?;

        c.write_all(&INCREMENTAL_REQUEST)?;
        let idle_bytes = count_for(&mut c, idle)?;
        Ok(BenchFigures {
            first_frame_bytes,
            first_frame_time,
            glyph_bytes,
            glyph_latency: last.saturating_duration_since(pressed),
            idle_bytes,
            idle,
        })
    })();
    server.stop();
    result.map_err(io)
}
