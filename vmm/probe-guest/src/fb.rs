//! Linear framebuffer drawing: a title bar, a dark background cleared a few rows per main-loop turn, a
//! text cursor for keyboard input and rectangle fills for `fb-fill`.
//!
//! The screen is cleared incrementally because on an emulated CPU a full 1024x768 clear takes seconds and
//! would stall the serial command loop; anything drawn first completes the clear, so nothing drawn can be
//! overwritten by it.

use crate::bootparams::FbInfo;
use crate::font::{self, CELL_HEIGHT, CELL_WIDTH};

const BACKGROUND: u32 = 0x10_18_20;
const TITLE_BAR: u32 = 0x30_50_a0;
const TEXT: u32 = 0xff_ff_ff;
/// Text starts at character row 2 (pixel y = 32), column 0.
const FIRST_TEXT_ROW: usize = 2;
const CLEAR_ROWS_PER_STEP: usize = 8;

pub struct Framebuffer {
    base: *mut u8,
    width: usize,
    height: usize,
    stride: usize,
    bytes_per_pixel: usize,
    info: FbInfo,
    /// Pixel rows [0, cleared) already hold the background (or the title bar).
    cleared: usize,
    col: usize,
    row: usize,
}

impl Framebuffer {
    /// # Safety
    /// `info` must describe framebuffer memory that is identity mapped and used by nothing else.
    pub unsafe fn new(info: FbInfo) -> Self {
        Self {
            base: info.base as *mut u8,
            width: info.width as usize,
            height: info.height as usize,
            stride: info.stride as usize,
            bytes_per_pixel: info.depth.div_ceil(8) as usize,
            info,
            cleared: 0,
            col: 0,
            row: FIRST_TEXT_ROW,
        }
    }

    /// 0xRRGGBB → the pixel value for this framebuffer's channel layout.
    fn pixel(&self, rgb: u32) -> u32 {
        let channel = |value: u32, (size, pos): (u8, u8)| {
            let size = size.min(8) as u32;
            ((value & 0xff) >> (8 - size)) << pos
        };
        channel(rgb >> 16, self.info.red) | channel(rgb >> 8, self.info.green) | channel(rgb, self.info.blue)
    }

    /// Fills `n` pixels of one row starting at pixel (x, y); callers clip.
    fn fill_span(&mut self, x: usize, y: usize, n: usize, pixel: u32) {
        let start = y * self.stride + x * self.bytes_per_pixel;
        // SAFETY: callers clip to width/height, so the span lies inside stride * height bytes of the
        // mapped framebuffer.
        unsafe {
            let p = self.base.add(start);
            match self.bytes_per_pixel {
                // Two pixels per store: on an emulated CPU each `rep` iteration costs about the same
                // whatever its width, so this halves the time of a fill.
                4 => core::arch::asm!(
                    "rep stosq",
                    "test {odd}, 1",
                    "jz 2f",
                    "mov dword ptr [rdi], eax",
                    "2:",
                    odd = in(reg) n,
                    inout("rdi") p => _,
                    inout("rcx") n / 2 => _,
                    in("rax") (pixel as u64) | ((pixel as u64) << 32),
                    options(nostack),
                ),
                3 => {
                    for i in 0..n {
                        let q = p.add(i * 3);
                        q.write_volatile(pixel as u8);
                        q.add(1).write_volatile((pixel >> 8) as u8);
                        q.add(2).write_volatile((pixel >> 16) as u8);
                    }
                }
                _ => {
                    for i in 0..n {
                        (p.add(i * 2) as *mut u16).write_volatile(pixel as u16);
                    }
                }
            }
        }
    }

    /// One pixel; callers clip.
    fn put_pixel(&mut self, x: usize, y: usize, pixel: u32) {
        if self.bytes_per_pixel == 4 {
            // SAFETY: (x, y) is inside the mapped framebuffer (callers clip).
            unsafe { (self.base.add(y * self.stride + x * 4) as *mut u32).write_volatile(pixel) }
        } else {
            self.fill_span(x, y, 1, pixel);
        }
    }

    fn fill_raw(&mut self, x: usize, y: usize, w: usize, h: usize, pixel: u32) {
        if x >= self.width || y >= self.height {
            return;
        }
        let w = w.min(self.width - x);
        let h = h.min(self.height - y);
        for row in y..y + h {
            self.fill_span(x, row, w, pixel);
        }
    }

    /// Clears the next few rows of background; call once per main-loop turn. False when done.
    pub fn clear_step(&mut self) -> bool {
        if self.cleared >= self.height {
            return false;
        }
        let rows = CLEAR_ROWS_PER_STEP.min(self.height - self.cleared);
        let bg = self.pixel(BACKGROUND);
        self.fill_raw(0, self.cleared, self.width, rows, bg);
        self.cleared += rows;
        true
    }

    fn finish_clear(&mut self) {
        while self.cleared < self.height {
            self.clear_step();
        }
    }

    /// Title bar: one text row in a distinct colour across the top.
    pub fn draw_title(&mut self, text: &[u8]) {
        let bar = self.pixel(TITLE_BAR);
        self.fill_raw(0, 0, self.width, CELL_HEIGHT, bar);
        self.cleared = self.cleared.max(CELL_HEIGHT.min(self.height));
        for (i, &c) in text.iter().enumerate() {
            self.draw_glyph(1 + i, 0, c, TEXT, TITLE_BAR);
        }
    }

    /// `fb-fill`: a clipped rectangle in 0xRRGGBB.
    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: u32) {
        self.finish_clear();
        let p = self.pixel(rgb);
        self.fill_raw(x as usize, y as usize, w as usize, h as usize, p);
    }

    fn draw_glyph(&mut self, col: usize, row: usize, c: u8, fg: u32, bg: u32) {
        let (x0, y0) = (col * CELL_WIDTH, row * CELL_HEIGHT);
        if x0 + CELL_WIDTH > self.width || y0 + CELL_HEIGHT > self.height {
            return;
        }
        let (fg, bg) = (self.pixel(fg), self.pixel(bg));
        for y in 0..CELL_HEIGHT {
            for x in 0..CELL_WIDTH {
                let p = if font::pixel(c, x, y) { fg } else { bg };
                self.put_pixel(x0 + x, y0 + y, p);
            }
        }
    }

    fn rows(&self) -> usize {
        self.height / CELL_HEIGHT
    }

    fn cols(&self) -> usize {
        self.width / CELL_WIDTH
    }

    /// Draws `c` at the text cursor and advances it (wrapping at the right edge).
    pub fn put_char(&mut self, c: u8) {
        self.finish_clear();
        if self.col >= self.cols() {
            self.newline();
        }
        self.draw_glyph(self.col, self.row, c, TEXT, BACKGROUND);
        self.col += 1;
    }

    /// Moves to the start of the next text row (back to the first one at the bottom) and blanks it.
    pub fn newline(&mut self) {
        self.finish_clear();
        self.col = 0;
        self.row += 1;
        if self.row >= self.rows() {
            self.row = FIRST_TEXT_ROW;
        }
        let bg = self.pixel(BACKGROUND);
        self.fill_raw(0, self.row * CELL_HEIGHT, self.width, CELL_HEIGHT, bg);
    }

    pub fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
            self.draw_glyph(self.col, self.row, b' ', TEXT, BACKGROUND);
        }
    }
}
