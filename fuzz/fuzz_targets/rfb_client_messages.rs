//! RFB client-to-server parsing, byte by byte as a client sends it: the version line, the server side of
//! the handshake over an in-memory stream, then client messages until one is refused. Everything a
//! parsed message feeds into without a socket is run too: pixel conversion and all three encoders for
//! a client's SetPixelFormat, encoding selection, damage marking for update requests, and the keysym,
//! scancode and pointer translations.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use vmm::rfb::damage::TileMap;
use vmm::rfb::encode::{Encoder, Encoding};
use vmm::rfb::glue::pointer_events;
use vmm::rfb::keymap::{keysym_to_linux, xt_to_linux};
use vmm::rfb::proto::{self, ClientMsg};

/// A stream whose reads come from the fuzzer and whose writes are kept.
struct Pipe<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A small screen with every kind of tile: flat, few colours, many colours.
fn pixels(w: usize, h: usize) -> Vec<u32> {
    (0..w * h)
        .map(|i| match (i % w) / 8 {
            0 => 0x00ff_8040,
            1 => [0x0000_00ff, 0x00ff_0000][i % 2],
            _ => (i as u32).wrapping_mul(0x0001_0307) & 0x00ff_ffff,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = <[u8; 12]>::try_from(data.get(..12).unwrap_or_default()) {
        let _ = proto::parse_version(&v);
    }
    let mut pipe = Pipe {
        input: data,
        output: Vec::new(),
    };
    let rest = match proto::handshake(&mut pipe, 64, 48, "fuzz") {
        Ok(_) => pipe.input,
        // Not a handshake: treat the whole input as messages, as if the handshake had passed.
        Err(_) => data,
    };

    let mut r = rest;
    let mut encoder = Encoder::new(6);
    let mut damage = TileMap::new(64, 48);
    let mut buttons = 0u8;
    let mut formats = 0;
    let px = pixels(24, 10);
    while let Ok(msg) = proto::read_client_msg(&mut r) {
        match msg {
            ClientMsg::SetPixelFormat(pf) => {
                formats += 1;
                if formats > 4 {
                    continue;
                }
                let mut out = Vec::new();
                for enc in [Encoding::Raw, Encoding::Zlib, Encoding::Zrle] {
                    out.clear();
                    encoder
                        .encode(enc, &pf, &px, 24, &mut out)
                        .expect("encoding a small rectangle");
                    if enc == Encoding::Raw {
                        assert_eq!(out.len(), px.len() * pf.bytes_per_pixel());
                    }
                }
            }
            ClientMsg::SetEncodings(list) => {
                let _ = list.iter().find_map(|&e| Encoding::from_code(e));
            }
            ClientMsg::UpdateRequest { x, y, w, h, .. } => {
                damage.mark_rect(x.into(), y.into(), w.into(), h.into());
                for rect in damage.rects() {
                    assert!(rect.x + rect.w <= 64 && rect.y + rect.h <= 48, "{rect:?}");
                }
                damage.clear();
            }
            ClientMsg::Key { keysym, .. } => {
                let _ = keysym_to_linux(keysym);
            }
            ClientMsg::ExtendedKey { keysym, scancode, .. } => {
                let _ = xt_to_linux(scancode);
                let _ = keysym_to_linux(keysym);
            }
            ClientMsg::Pointer { buttons: b, x, y } => {
                let events = pointer_events(buttons, x.into(), y.into(), b);
                assert!(events.len() <= 2 + 3 + 4 + 1);
                buttons = b;
            }
            ClientMsg::CutText | ClientMsg::SetDesktopSize => {}
        }
    }
});
