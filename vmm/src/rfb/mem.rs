//! An in-memory [`FrameSource`]: for tests and the RFB bench, and a stand-in screen for a VM that has
//! no framebuffer. Writes through its methods mark rows dirty, as KVM's dirty log would.

use std::sync::Mutex;

use super::FrameSource;
use crate::lock;

struct Inner {
    width: u32,
    height: u32,
    /// `0x00RRGGBB` per pixel.
    pixels: Vec<u32>,
    dirty: Vec<bool>,
}

/// A screen held in memory.
pub struct MemFrame {
    inner: Mutex<Inner>,
}

impl MemFrame {
    /// A black `width` x `height` screen.
    pub fn new(width: u32, height: u32) -> Self {
        MemFrame {
            inner: Mutex::new(Inner {
                width,
                height,
                pixels: vec![0; width as usize * height as usize],
                dirty: vec![false; height as usize],
            }),
        }
    }

    /// Fills a rectangle (clipped) with one colour.
    pub fn fill(&self, x: u32, y: u32, w: u32, h: u32, colour: u32) {
        self.draw(x, y, w, h, |_, _| colour);
    }

    /// Sets each pixel of a rectangle (clipped) to `f(x, y)`.
    pub fn draw(&self, x: u32, y: u32, w: u32, h: u32, f: impl Fn(u32, u32) -> u32) {
        let mut g = lock(&self.inner);
        let x1 = x.saturating_add(w).min(g.width);
        let y1 = y.saturating_add(h).min(g.height);
        let width = g.width as usize;
        for yy in y..y1 {
            for xx in x..x1 {
                g.pixels[yy as usize * width + xx as usize] = f(xx, yy) & 0x00ff_ffff;
            }
            g.dirty[yy as usize] = true;
        }
    }

    /// Marks rows written without changing them (a guest redrawing the same pixels).
    pub fn touch_rows(&self, y0: u32, y1: u32) {
        let mut g = lock(&self.inner);
        let end = y1.min(g.height) as usize;
        for d in g.dirty.iter_mut().take(end).skip(y0 as usize) {
            *d = true;
        }
    }

    /// Replaces the screen with a black one of another size (all rows dirty).
    pub fn resize(&self, width: u32, height: u32) {
        let mut g = lock(&self.inner);
        *g = Inner {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
            dirty: vec![true; height as usize],
        };
    }

    /// One pixel, `0x00RRGGBB`.
    pub fn pixel(&self, x: u32, y: u32) -> u32 {
        let g = lock(&self.inner);
        g.pixels
            .get(y as usize * g.width as usize + x as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Same as [`FrameSource::take_dirty_rows`].
    pub fn take_dirty(&self) -> Vec<(u32, u32)> {
        let mut g = lock(&self.inner);
        let ranges = row_ranges(&g.dirty);
        g.dirty.iter_mut().for_each(|d| *d = false);
        ranges
    }
}

/// Turns per-row flags into `y0..y1` ranges.
pub fn row_ranges(rows: &[bool]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut start = None;
    for (y, &d) in rows.iter().chain(std::iter::once(&false)).enumerate() {
        match (d, start) {
            (true, None) => start = Some(y as u32),
            (false, Some(s)) => {
                out.push((s, y as u32));
                start = None;
            }
            _ => {}
        }
    }
    out
}

impl FrameSource for MemFrame {
    fn size(&self) -> (u32, u32) {
        let g = lock(&self.inner);
        (g.width, g.height)
    }

    fn stride(&self) -> usize {
        lock(&self.inner).width as usize * 4
    }

    fn read_rows(&self, y0: u32, rows: u32, out: &mut [u8]) {
        let g = lock(&self.inner);
        let width = g.width as usize;
        let end = y0.saturating_add(rows).min(g.height);
        for y in y0..end {
            let src = &g.pixels[y as usize * width..][..width];
            let at = (y - y0) as usize * width * 4;
            let Some(dst) = out.get_mut(at..at + width * 4) else {
                break;
            };
            for (d, p) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&p.to_le_bytes());
            }
        }
    }

    fn take_dirty_rows(&self) -> Vec<(u32, u32)> {
        self.take_dirty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_mark_rows_and_read_back_as_xrgb() {
        let f = MemFrame::new(4, 6);
        assert!(f.take_dirty().is_empty());
        f.fill(1, 1, 2, 2, 0x00112233);
        f.touch_rows(4, 5);
        assert_eq!(f.take_dirty(), vec![(1, 3), (4, 5)]);
        assert!(f.take_dirty().is_empty());
        let mut out = vec![0u8; 16];
        f.read_rows(1, 1, &mut out);
        assert_eq!(&out[4..8], &[0x33, 0x22, 0x11, 0]);
        assert_eq!(row_ranges(&[true, true, false, true]), vec![(0, 2), (3, 4)]);
    }
}
