//! Test-only RFB decoding: the client side of Raw, Zlib and ZRLE, to check what the server sends.

use flate2::{Decompress, FlushDecompress};

use super::pixel::PixelFormat;

/// A client's two persistent inflate streams.
pub struct Inflaters {
    zlib: Decompress,
    zrle: Decompress,
}

impl Default for Inflaters {
    fn default() -> Self {
        Inflaters {
            zlib: Decompress::new(true),
            zrle: Decompress::new(true),
        }
    }
}

pub fn take<'a>(cur: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if cur.len() < n {
        return Err(format!("short input: want {n}, have {}", cur.len()));
    }
    let (a, b) = cur.split_at(n);
    *cur = b;
    Ok(a)
}

pub fn u8_(cur: &mut &[u8]) -> Result<u8, String> {
    Ok(take(cur, 1)?[0])
}

pub fn u32_(cur: &mut &[u8]) -> Result<u32, String> {
    let b = take(cur, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A client pixel value of `len` bytes.
fn value(cur: &mut &[u8], len: usize, big_endian: bool) -> Result<u32, String> {
    let b = take(cur, len)?;
    Ok(if big_endian {
        b.iter().fold(0, |v, &x| (v << 8) | u32::from(x))
    } else {
        b.iter().rev().fold(0, |v, &x| (v << 8) | u32::from(x))
    })
}

fn pixel(cur: &mut &[u8], pf: &PixelFormat) -> Result<u32, String> {
    value(cur, pf.bytes_per_pixel(), pf.big_endian)
}

fn cpixel(cur: &mut &[u8], pf: &PixelFormat) -> Result<u32, String> {
    if pf.cpixel_len() != 3 {
        return pixel(cur, pf);
    }
    let v = value(cur, 3, pf.big_endian)?;
    Ok(if pf.convert(0x00ff_ffff) & 0xff00_0000 == 0 {
        v
    } else {
        v << 8
    })
}

fn inflate(cur: &mut &[u8], d: &mut Decompress) -> Result<Vec<u8>, String> {
    let len = u32_(cur)? as usize;
    let input = take(cur, len)?;
    let mut out = Vec::with_capacity(len * 4 + 1024);
    let start = d.total_in();
    loop {
        let used = (d.total_in() - start) as usize;
        if used == input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(64 * 1024);
        d.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Decodes one rectangle's payload into client pixel values (`pf.convert` of the native pixels).
pub fn decode_rect(
    cur: &mut &[u8],
    encoding: i32,
    pf: &PixelFormat,
    w: usize,
    h: usize,
    inf: &mut Inflaters,
) -> Result<Vec<u32>, String> {
    match encoding {
        0 => (0..w * h).map(|_| pixel(cur, pf)).collect(),
        6 => {
            let data = inflate(cur, &mut inf.zlib)?;
            let mut d = &data[..];
            let px = (0..w * h).map(|_| pixel(&mut d, pf)).collect();
            if !d.is_empty() {
                return Err("zlib data left over".into());
            }
            px
        }
        16 => {
            let data = inflate(cur, &mut inf.zrle)?;
            let mut d = &data[..];
            let mut out = vec![0u32; w * h];
            for ty in (0..h).step_by(64) {
                for tx in (0..w).step_by(64) {
                    let (tw, th) = (64.min(w - tx), 64.min(h - ty));
                    let tile = zrle_tile(&mut d, pf, tw, th)?;
                    for (i, px) in tile.into_iter().enumerate() {
                        out[(ty + i / tw) * w + tx + i % tw] = px;
                    }
                }
            }
            if !d.is_empty() {
                return Err("zrle data left over".into());
            }
            Ok(out)
        }
        e => Err(format!("unexpected encoding {e}")),
    }
}

fn zrle_tile(d: &mut &[u8], pf: &PixelFormat, tw: usize, th: usize) -> Result<Vec<u32>, String> {
    let sub = u8_(d)?;
    let n = tw * th;
    match sub {
        0 => (0..n).map(|_| cpixel(d, pf)).collect(),
        1 => Ok(vec![cpixel(d, pf)?; n]),
        2..=16 => {
            let pal: Vec<u32> = (0..sub).map(|_| cpixel(d, pf)).collect::<Result<_, _>>()?;
            let bits = match sub {
                2 => 1,
                3..=4 => 2,
                _ => 4,
            };
            let mut out = Vec::with_capacity(n);
            for _ in 0..th {
                let row = take(d, (tw * bits).div_ceil(8))?;
                for x in 0..tw {
                    let bit = x * bits;
                    let idx = (row[bit / 8] >> (8 - bits - bit % 8)) & ((1 << bits) - 1);
                    out.push(*pal.get(idx as usize).ok_or("palette index")?);
                }
            }
            Ok(out)
        }
        128 => {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let px = cpixel(d, pf)?;
                let mut len = 1;
                loop {
                    let b = u8_(d)?;
                    len += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                out.extend(std::iter::repeat_n(px, len));
            }
            if out.len() != n {
                return Err("rle overrun".into());
            }
            Ok(out)
        }
        s => Err(format!("unexpected zrle subencoding {s}")),
    }
}
