//! Rectangle encoders: Raw, Zlib and ZRLE (RFC 6143 7.7.1, 7.7.6; Zlib as in the RFB community spec).
//!
//! An [`Encoder`] belongs to one client: Zlib and ZRLE each use one zlib stream that lives as long as the
//! connection (the client's inflater keeps the matching state), flushed with a sync flush after every
//! rectangle. Input pixels are native `0x00RRGGBB` values, row-major, `w * h` of them; the output is the
//! rectangle's payload (the caller writes the rectangle header).

use flate2::{Compress, Compression, FlushCompress};

use super::pixel::PixelFormat;

pub const ENC_RAW: i32 = 0;
pub const ENC_ZLIB: i32 = 6;
pub const ENC_ZRLE: i32 = 16;

/// ZRLE tile edge (RFC 6143 7.7.6).
const ZRLE_TILE: usize = 64;
/// Largest palette a packed-palette ZRLE tile may have.
const ZRLE_MAX_PACKED: usize = 16;

/// Errors of the encoders.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("Failed to compress a rectangle")]
    Compress(#[source] flate2::CompressError),
    #[error("Compressed rectangle exceeds 4 GiB")]
    TooLarge,
}

/// How a client's rectangles are encoded: the first of these in the client's SetEncodings list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    Zlib,
    Zrle,
}

impl Encoding {
    pub fn code(self) -> i32 {
        match self {
            Encoding::Raw => ENC_RAW,
            Encoding::Zlib => ENC_ZLIB,
            Encoding::Zrle => ENC_ZRLE,
        }
    }

    pub fn from_code(code: i32) -> Option<Encoding> {
        match code {
            ENC_RAW => Some(Encoding::Raw),
            ENC_ZLIB => Some(Encoding::Zlib),
            ENC_ZRLE => Some(Encoding::Zrle),
            _ => None,
        }
    }
}

/// Per-client encoder state.
pub struct Encoder {
    level: u32,
    zlib: Option<Compress>,
    zrle: Option<Compress>,
    scratch: Vec<u8>,
}

impl Encoder {
    /// `level` is the zlib level (0-9) used when a stream is first needed.
    pub fn new(level: u32) -> Self {
        Encoder {
            level: level.min(9),
            zlib: None,
            zrle: None,
            scratch: Vec::new(),
        }
    }

    /// Sets the level for streams not created yet (a live stream keeps its level: the client's
    /// inflater does not care, and restarting a stream would desynchronise it).
    pub fn set_level(&mut self, level: u32) {
        self.level = level.min(9);
    }

    /// Appends the payload of one `w` x `h` rectangle.
    pub fn encode(
        &mut self,
        enc: Encoding,
        pf: &PixelFormat,
        pixels: &[u32],
        w: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        match enc {
            Encoding::Raw => {
                out.reserve(pixels.len() * pf.bytes_per_pixel());
                for &px in pixels {
                    pf.put_pixel(px, out);
                }
                Ok(())
            }
            Encoding::Zlib => {
                self.scratch.clear();
                for &px in pixels {
                    pf.put_pixel(px, &mut self.scratch);
                }
                let level = self.level;
                let stream = self
                    .zlib
                    .get_or_insert_with(|| Compress::new(Compression::new(level), true));
                deflate_with_length(stream, &self.scratch, out)
            }
            Encoding::Zrle => {
                self.scratch.clear();
                let h = pixels.len().checked_div(w).unwrap_or(0);
                zrle_tiles(pf, pixels, w, h, &mut self.scratch);
                let level = self.level;
                let stream = self
                    .zrle
                    .get_or_insert_with(|| Compress::new(Compression::new(level), true));
                deflate_with_length(stream, &self.scratch, out)
            }
        }
    }
}

/// Writes a 4-byte big-endian length and `input` deflated with a sync flush.
fn deflate_with_length(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    let in_start = c.total_in();
    loop {
        out.reserve(input.len() / 4 + 256);
        let consumed = usize::try_from(c.total_in() - in_start).map_err(|_| EncodeError::TooLarge)?;
        c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
            .map_err(EncodeError::Compress)?;
        let consumed = usize::try_from(c.total_in() - in_start).map_err(|_| EncodeError::TooLarge)?;
        // The flush is complete once all input is taken and the output did not fill its space.
        if consumed == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    let n = u32::try_from(out.len() - start).map_err(|_| EncodeError::TooLarge)?;
    out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Appends ZRLE's run-length bytes for a run of `len` (>= 1) pixels.
fn put_run_length(len: usize, out: &mut Vec<u8>) {
    let mut v = len - 1;
    while v >= 255 {
        out.push(255);
        v -= 255;
    }
    out.push(v as u8);
}

/// The uncompressed ZRLE tile stream of a rectangle.
fn zrle_tiles(pf: &PixelFormat, pixels: &[u32], w: usize, h: usize, out: &mut Vec<u8>) {
    let cpx = pf.cpixel_len();
    let mut tile: Vec<u32> = Vec::with_capacity(ZRLE_TILE * ZRLE_TILE);
    for ty in (0..h).step_by(ZRLE_TILE) {
        let th = ZRLE_TILE.min(h - ty);
        for tx in (0..w).step_by(ZRLE_TILE) {
            let tw = ZRLE_TILE.min(w - tx);
            tile.clear();
            for row in ty..ty + th {
                tile.extend_from_slice(&pixels[row * w + tx..row * w + tx + tw]);
            }
            zrle_tile(pf, cpx, &tile, tw, out);
        }
    }
}

/// Encodes one tile as solid, packed palette, plain RLE or raw, whichever fits.
fn zrle_tile(pf: &PixelFormat, cpx: usize, tile: &[u32], tw: usize, out: &mut Vec<u8>) {
    let mut palette: Vec<u32> = Vec::with_capacity(ZRLE_MAX_PACKED + 1);
    let mut rle_cost = 0usize;
    let mut run = 0usize;
    let mut prev = None;
    for &px in tile {
        if prev == Some(px) {
            run += 1;
        } else {
            if palette.len() <= ZRLE_MAX_PACKED && !palette.contains(&px) {
                palette.push(px);
            }
            if run > 0 {
                rle_cost += cpx + (run - 1) / 255 + 1;
            }
            run = 1;
            prev = Some(px);
        }
    }
    rle_cost += cpx + run.saturating_sub(1) / 255 + 1;

    match palette.len() {
        0 => {}
        1 => {
            out.push(1);
            pf.put_cpixel(palette[0], out);
        }
        n if n <= ZRLE_MAX_PACKED => {
            out.push(n as u8);
            for &c in &palette {
                pf.put_cpixel(c, out);
            }
            let bits = match n {
                2 => 1,
                3..=4 => 2,
                _ => 4,
            };
            for row in tile.chunks(tw) {
                let mut byte = 0u8;
                let mut used = 0;
                let mut last = (u32::MAX, 0u8);
                for &px in row {
                    if px != last.0 {
                        last = (px, palette.iter().position(|&c| c == px).unwrap_or(0) as u8);
                    }
                    let idx = last.1;
                    byte |= idx << (8 - bits - used);
                    used += bits;
                    if used == 8 {
                        out.push(byte);
                        byte = 0;
                        used = 0;
                    }
                }
                if used > 0 {
                    out.push(byte);
                }
            }
        }
        _ if rle_cost < tile.len() * cpx => {
            out.push(128);
            let mut i = 0;
            while i < tile.len() {
                let px = tile[i];
                let mut j = i + 1;
                while j < tile.len() && tile[j] == px {
                    j += 1;
                }
                pf.put_cpixel(px, out);
                put_run_length(j - i, out);
                i = j;
            }
        }
        _ => {
            out.push(0);
            for &px in tile {
                pf.put_cpixel(px, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{decode_rect, Inflaters};
    use super::*;

    fn novnc() -> PixelFormat {
        PixelFormat {
            red_shift: 0,
            blue_shift: 16,
            ..PixelFormat::NATIVE
        }
    }

    /// A 150x70 picture with every kind of tile: solid, two-colour text, gradients, noise.
    fn picture(w: usize, h: usize) -> Vec<u32> {
        let mut seed = 0x1234_5678u32;
        (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if x < 64 {
                    0x0020_3040
                } else if x < 128 {
                    if (x * 7 + y * 3) % 5 == 0 {
                        0x00ff_ffff
                    } else {
                        0
                    }
                } else if y < 32 {
                    (x as u32 * 0x010203) & 0x00ff_ffff
                } else {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    seed >> 8
                }
            })
            .collect()
    }

    #[test]
    fn every_encoding_round_trips_through_one_stream() {
        let (w, h) = (150, 70);
        let pic = picture(w, h);
        for pf in [novnc(), PixelFormat::NATIVE] {
            for enc in [Encoding::Raw, Encoding::Zlib, Encoding::Zrle] {
                let mut encoder = Encoder::new(6);
                let mut inflaters = Inflaters::default();
                // Twice: the second rectangle only decodes if the stream state carried over.
                for round in 0..2 {
                    let mut out = Vec::new();
                    encoder.encode(enc, &pf, &pic, w, &mut out).unwrap();
                    let mut cursor = &out[..];
                    let got = decode_rect(&mut cursor, enc.code(), &pf, w, h, &mut inflaters).unwrap();
                    assert!(cursor.is_empty(), "{enc:?} left bytes over");
                    let want: Vec<u32> = pic.iter().map(|&p| pf.convert(p)).collect();
                    assert_eq!(got, want, "{enc:?} round {round} pixels differ");
                }
            }
        }
    }

    #[test]
    fn zrle_compresses_a_text_screen_far_below_raw() {
        let (w, h) = (640, 64);
        let pic: Vec<u32> = (0..w * h)
            .map(|i| {
                if (i % w) % 8 < 2 && (i / w) % 16 > 3 {
                    0x00aaaaaa
                } else {
                    0
                }
            })
            .collect();
        let mut out = Vec::new();
        Encoder::new(6)
            .encode(Encoding::Zrle, &novnc(), &pic, w, &mut out)
            .unwrap();
        assert!(out.len() * 50 < w * h * 4, "zrle {} bytes", out.len());
    }

    #[test]
    fn sixteen_bit_zrle_uses_two_byte_cpixels() {
        let pf = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
            big_endian: false,
        };
        let pic = picture(100, 40);
        let mut out = Vec::new();
        Encoder::new(1)
            .encode(Encoding::Zrle, &pf, &pic, 100, &mut out)
            .unwrap();
        let got = decode_rect(&mut &out[..], ENC_ZRLE, &pf, 100, 40, &mut Inflaters::default()).unwrap();
        let want: Vec<u32> = pic.iter().map(|&p| pf.convert(p)).collect();
        assert_eq!(got, want);
    }
}
