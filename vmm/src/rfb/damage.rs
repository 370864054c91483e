//! Damage tracking: which parts of the screen changed, at 8x8-pixel tile granularity.
//!
//! KVM's dirty log tells us which rows the guest wrote, not which pixels changed. The [`Shadow`] (one per
//! server, owned by the dirty-tracker thread) keeps the last seen copy of the screen, compares just the
//! dirty rows and yields a [`TileMap`] of tiles whose pixels really differ, so a cursor blink or a typed
//! glyph costs one small rectangle, and a guest rewriting identical pixels costs nothing. Each client
//! ORs those maps into its own [`TileMap`] until it asks for an update: memory per client is fixed (one
//! bit per tile) however long it stays behind, which is how damage is coalesced for slow clients.

use super::FrameSource;

/// Tile edge in pixels.
pub const TILE: u32 = 8;
/// Above this many rectangles an update is simplified to one span per tile row.
pub const MAX_RECTS: usize = 64;

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One bit per 8x8 tile of a `width` x `height` screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileMap {
    width: u32,
    height: u32,
    cols: u32,
    rows: u32,
    bits: Vec<u64>,
}

impl TileMap {
    /// No damage.
    pub fn new(width: u32, height: u32) -> Self {
        let cols = width.div_ceil(TILE);
        let rows = height.div_ceil(TILE);
        let words = (cols as usize * rows as usize).div_ceil(64);
        TileMap {
            width,
            height,
            cols,
            rows,
            bits: vec![0; words],
        }
    }

    /// Everything damaged.
    pub fn full(width: u32, height: u32) -> Self {
        let mut m = Self::new(width, height);
        m.mark_rect(0, 0, width, height);
        m
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
    }

    fn index(&self, col: u32, row: u32) -> usize {
        row as usize * self.cols as usize + col as usize
    }

    pub fn set(&mut self, col: u32, row: u32) {
        if col < self.cols && row < self.rows {
            let i = self.index(col, row);
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }

    pub fn get(&self, col: u32, row: u32) -> bool {
        col < self.cols && row < self.rows && {
            let i = self.index(col, row);
            self.bits[i / 64] & (1 << (i % 64)) != 0
        }
    }

    /// Marks every tile touching the pixel rectangle (clipped to the screen).
    pub fn mark_rect(&mut self, x: u32, y: u32, w: u32, h: u32) {
        let x1 = x.saturating_add(w).min(self.width);
        let y1 = y.saturating_add(h).min(self.height);
        if x >= x1 || y >= y1 {
            return;
        }
        for row in y / TILE..y1.div_ceil(TILE) {
            for col in x / TILE..x1.div_ceil(TILE) {
                self.set(col, row);
            }
        }
    }

    /// Adds `other`'s damage; a map of another geometry (screen resized) damages everything.
    pub fn merge(&mut self, other: &TileMap) {
        if other.cols == self.cols && other.rows == self.rows {
            for (a, b) in self.bits.iter_mut().zip(&other.bits) {
                *a |= *b;
            }
        } else if !other.is_empty() {
            self.mark_rect(0, 0, self.width, self.height);
        }
    }

    /// Runs of damaged tiles in one tile row: (first col, last col + 1).
    fn runs(&self, row: u32) -> Vec<(u32, u32)> {
        let mut runs = Vec::new();
        let mut start = None;
        for col in 0..=self.cols {
            match (self.get(col, row), start) {
                (true, None) => start = Some(col),
                (false, Some(s)) => {
                    runs.push((s, col));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }

    /// The damage as pixel rectangles: horizontal runs of tiles, merged downwards while the next
    /// tile row has the same run. Many scattered tiles are simplified to one span per tile row.
    pub fn rects(&self) -> Vec<Rect> {
        let exact = self.merge_rows(|row| self.runs(row));
        if exact.len() <= MAX_RECTS {
            return exact;
        }
        self.merge_rows(|row| {
            let runs = self.runs(row);
            match (runs.first(), runs.last()) {
                (Some(a), Some(b)) => vec![(a.0, b.1)],
                _ => Vec::new(),
            }
        })
    }

    fn merge_rows(&self, spans: impl Fn(u32) -> Vec<(u32, u32)>) -> Vec<Rect> {
        // Open rectangles in tile units: (col0, col1, row0, row1).
        let mut open: Vec<(u32, u32, u32, u32)> = Vec::new();
        let mut done = Vec::new();
        for row in 0..self.rows {
            let mut next = Vec::new();
            for (c0, c1) in spans(row) {
                match open.iter().position(|o| o.0 == c0 && o.1 == c1) {
                    Some(i) => {
                        let o = open.swap_remove(i);
                        next.push((c0, c1, o.2, row + 1));
                    }
                    None => next.push((c0, c1, row, row + 1)),
                }
            }
            done.append(&mut open);
            open = next;
        }
        done.append(&mut open);
        done.sort_by_key(|o| (o.2, o.0));
        done.into_iter()
            .map(|(c0, c1, r0, r1)| {
                let (x, y) = (c0 * TILE, r0 * TILE);
                Rect {
                    x,
                    y,
                    w: (c1 * TILE).min(self.width) - x,
                    h: (r1 * TILE).min(self.height) - y,
                }
            })
            .collect()
    }
}

/// The last seen screen contents, `width * 4` bytes per row.
pub struct Shadow {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    buf: Vec<u8>,
}

impl Shadow {
    /// Copies the whole screen.
    pub fn new(frame: &dyn FrameSource) -> Self {
        let (width, height) = frame.size();
        let row = width as usize * 4;
        let mut s = Shadow {
            width,
            height,
            pixels: vec![0; row * height as usize],
            buf: Vec::new(),
        };
        s.read(frame, 0, height);
        let stride = frame.stride().max(row);
        for y in 0..height as usize {
            s.pixels[y * row..(y + 1) * row].copy_from_slice(&s.buf[y * stride..][..row]);
        }
        s
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn read(&mut self, frame: &dyn FrameSource, y0: u32, rows: u32) {
        let len = rows as usize * frame.stride().max(self.width as usize * 4);
        self.buf.clear();
        self.buf.resize(len, 0);
        frame.read_rows(y0, rows, &mut self.buf);
    }

    /// Compares the given dirty row ranges (`y0..y1`) with the copy, updates it and returns the
    /// tiles that changed.
    pub fn update(&mut self, frame: &dyn FrameSource, dirty: &[(u32, u32)]) -> TileMap {
        let mut changed = TileMap::new(self.width, self.height);
        let mut ranges: Vec<(u32, u32)> = dirty
            .iter()
            .map(|&(a, b)| (a.min(self.height), b.min(self.height)))
            .filter(|(a, b)| a < b)
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let row = self.width as usize * 4;
        let stride = frame.stride().max(row);
        let tile_bytes = TILE as usize * 4;
        for (y0, y1) in merged {
            self.read(frame, y0, y1 - y0);
            for y in y0..y1 {
                let new = &self.buf[(y - y0) as usize * stride..][..row];
                let old = &mut self.pixels[y as usize * row..][..row];
                if new == old {
                    continue;
                }
                for (col, (n, o)) in new.chunks(tile_bytes).zip(old.chunks(tile_bytes)).enumerate() {
                    if n != o {
                        changed.set(col as u32, y / TILE);
                    }
                }
                old.copy_from_slice(new);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::super::mem::MemFrame;
    use super::*;

    #[test]
    fn one_glyph_is_one_rect() {
        let mut m = TileMap::new(1024, 768);
        m.mark_rect(80, 32, 8, 16);
        assert_eq!(
            m.rects(),
            vec![Rect {
                x: 80,
                y: 32,
                w: 8,
                h: 16
            }]
        );
    }

    #[test]
    fn runs_merge_downwards_and_clip_to_the_screen() {
        let mut m = TileMap::new(100, 50);
        m.mark_rect(0, 0, 100, 20); // three tile rows, full width (last tile column is partial)
        m.mark_rect(96, 40, 50, 50); // bottom-right partial tile
        assert_eq!(
            m.rects(),
            vec![
                Rect {
                    x: 0,
                    y: 0,
                    w: 100,
                    h: 24
                },
                Rect {
                    x: 96,
                    y: 40,
                    w: 4,
                    h: 10
                },
            ]
        );
        assert!(
            TileMap::full(100, 50).rects()
                == vec![Rect {
                    x: 0,
                    y: 0,
                    w: 100,
                    h: 50
                }]
        );
    }

    #[test]
    fn scattered_damage_is_bounded() {
        let mut m = TileMap::new(1024, 768);
        for row in 0..96 {
            for col in (row % 2..128).step_by(2) {
                m.set(col, row);
            }
        }
        let rects = m.rects();
        assert!(rects.len() <= 96, "{} rects", rects.len());
        // Every damaged tile is covered.
        for row in 0..96 {
            for col in 0..128 {
                if m.get(col, row) {
                    let (x, y) = (col * TILE, row * TILE);
                    assert!(rects
                        .iter()
                        .any(|r| x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h));
                }
            }
        }
    }

    #[test]
    fn shadow_reports_only_pixels_that_changed() {
        let frame = MemFrame::new(64, 32);
        let mut shadow = Shadow::new(&frame);
        // Rows written with identical contents: no damage.
        assert!(shadow.update(&frame, &[(0, 32)]).is_empty());
        frame.fill(20, 9, 3, 2, 0x00ff0000);
        let changed = shadow.update(&frame, &frame.take_dirty());
        assert_eq!(
            changed.rects(),
            vec![Rect {
                x: 16,
                y: 8,
                w: 8,
                h: 8
            }]
        );
        // Already seen: the same rows again give nothing.
        assert!(shadow.update(&frame, &[(9, 11)]).is_empty());
    }
}
