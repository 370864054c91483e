//! RFB pixel formats (RFC 6143 7.4) and conversion from the framebuffer's native 32-bit xRGB.
//!
//! The server always holds pixels as `u32` values `0x00RRGGBB`. A client may ask for any true-colour
//! format of 8, 16 or 32 bits per pixel with arbitrary channel maxima and shifts; colour-map formats and
//! other sizes are refused (the connection is closed with a reason), see [`PixelFormat::parse`].

/// A validated true-colour pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

/// Why a client's pixel format cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelFormatError {
    #[error("Unsupported bits per pixel {0} (want 8, 16 or 32)")]
    BitsPerPixel(u8),
    #[error("Colour-map pixel formats are not supported")]
    ColourMap,
    #[error("Channel maximum or shift does not fit the pixel size")]
    Channel,
}

impl PixelFormat {
    /// The framebuffer's own format: 32 bpp, depth 24, little-endian, red at 16, green at 8, blue at 0.
    pub const NATIVE: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// Parses the 16-byte PIXEL_FORMAT structure, refusing what we cannot convert to.
    pub fn parse(b: &[u8; 16]) -> Result<PixelFormat, PixelFormatError> {
        let pf = PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        };
        if !matches!(pf.bits_per_pixel, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(pf.bits_per_pixel));
        }
        if b[3] == 0 {
            return Err(PixelFormatError::ColourMap);
        }
        let bits = u32::from(pf.bits_per_pixel);
        for (max, shift) in [
            (pf.red_max, pf.red_shift),
            (pf.green_max, pf.green_shift),
            (pf.blue_max, pf.blue_shift),
        ] {
            let width = 16 - max.leading_zeros();
            if max == 0 || u32::from(shift) + width > bits {
                return Err(PixelFormatError::Channel);
            }
        }
        Ok(pf)
    }

    /// The 16-byte wire form (true-colour flag set, padding zero).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = 1;
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// The client's pixel value for a native `0x00RRGGBB` pixel.
    #[inline]
    pub fn convert(&self, px: u32) -> u32 {
        let chan = |v: u32, max: u16, shift: u8| -> u32 {
            let max = u32::from(max);
            let scaled = if max == 255 { v } else { (v * max + 127) / 255 };
            scaled << shift
        };
        chan((px >> 16) & 0xff, self.red_max, self.red_shift)
            | chan((px >> 8) & 0xff, self.green_max, self.green_shift)
            | chan(px & 0xff, self.blue_max, self.blue_shift)
    }

    /// Appends `value` (already converted) in the client's byte order, `len` bytes of it.
    #[inline]
    fn put_value(&self, value: u32, len: usize, out: &mut Vec<u8>) {
        match (len, self.big_endian) {
            (1, _) => out.push(value as u8),
            (2, false) => out.extend_from_slice(&(value as u16).to_le_bytes()),
            (2, true) => out.extend_from_slice(&(value as u16).to_be_bytes()),
            (_, false) => out.extend_from_slice(&value.to_le_bytes()[..len]),
            (_, true) => out.extend_from_slice(&value.to_be_bytes()[4 - len..]),
        }
    }

    /// Appends one native pixel in the client's format.
    #[inline]
    pub fn put_pixel(&self, px: u32, out: &mut Vec<u8>) {
        self.put_value(self.convert(px), self.bytes_per_pixel(), out);
    }

    /// ZRLE's compressed pixel (RFC 6143 7.7.6): 3 bytes when a 32-bit true-colour format with
    /// depth <= 24 uses only the low or only the high three bytes, otherwise the full pixel.
    pub fn cpixel_len(&self) -> usize {
        if self.bits_per_pixel != 32 || self.depth > 24 {
            return self.bytes_per_pixel();
        }
        let mask = self.convert(0x00ff_ffff);
        if mask & 0xff00_0000 == 0 || mask & 0x0000_00ff == 0 {
            3
        } else {
            4
        }
    }

    /// Appends one native pixel as a ZRLE CPIXEL.
    #[inline]
    pub fn put_cpixel(&self, px: u32, out: &mut Vec<u8>) {
        let value = self.convert(px);
        if self.cpixel_len() == 3 {
            // The three significant bytes, in the client's byte order.
            let mask = self.convert(0x00ff_ffff);
            let v = if mask & 0xff00_0000 == 0 {
                value
            } else {
                value >> 8
            };
            self.put_value(v, 3, out);
        } else {
            self.put_pixel(px, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(bpp: u8, depth: u8, be: u8, tc: u8, max: [u16; 3], shift: [u8; 3]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = bpp;
        b[1] = depth;
        b[2] = be;
        b[3] = tc;
        b[4..6].copy_from_slice(&max[0].to_be_bytes());
        b[6..8].copy_from_slice(&max[1].to_be_bytes());
        b[8..10].copy_from_slice(&max[2].to_be_bytes());
        b[10..13].copy_from_slice(&shift);
        b
    }

    #[test]
    fn novnc_format_puts_red_first() {
        // noVNC asks for 32 bpp depth 24 little-endian, red at 0, green at 8, blue at 16.
        let pf = PixelFormat::parse(&wire(32, 24, 0, 1, [255; 3], [0, 8, 16])).unwrap();
        let mut out = Vec::new();
        pf.put_pixel(0x00112233, &mut out);
        assert_eq!(out, [0x11, 0x22, 0x33, 0x00]);
        out.clear();
        pf.put_cpixel(0x00112233, &mut out);
        assert_eq!(out, [0x11, 0x22, 0x33]);
    }

    #[test]
    fn native_round_trips_and_big_endian_cpixel_uses_low_bytes() {
        let pf = PixelFormat::parse(&PixelFormat::NATIVE.to_bytes()).unwrap();
        assert_eq!(pf, PixelFormat::NATIVE);
        let be = PixelFormat {
            big_endian: true,
            ..PixelFormat::NATIVE
        };
        let mut out = Vec::new();
        be.put_pixel(0x00abcdef, &mut out);
        assert_eq!(out, [0x00, 0xab, 0xcd, 0xef]);
        out.clear();
        be.put_cpixel(0x00abcdef, &mut out);
        assert_eq!(out, [0xab, 0xcd, 0xef]);
    }

    #[test]
    fn rgb565_and_bgr233_scale_channels() {
        let pf = PixelFormat::parse(&wire(16, 16, 0, 1, [31, 63, 31], [11, 5, 0])).unwrap();
        let mut out = Vec::new();
        pf.put_pixel(0x00ff0000, &mut out);
        assert_eq!(out, 0xf800u16.to_le_bytes());
        out.clear();
        pf.put_pixel(0x0000ff00, &mut out);
        assert_eq!(out, 0x07e0u16.to_le_bytes());
        out.clear();
        pf.put_pixel(0x00808080, &mut out);
        assert_eq!(out, ((16u16 << 11) | (32 << 5) | 16).to_le_bytes());
        // noVNC's 8-bit mode: 2 bits per channel, red at 0, green at 2, blue at 4.
        let pf8 = PixelFormat::parse(&wire(8, 8, 0, 1, [3, 3, 3], [0, 2, 4])).unwrap();
        out.clear();
        pf8.put_pixel(0x00ff00ff, &mut out);
        assert_eq!(out, [0b11_00_11]);
        assert_eq!(pf8.cpixel_len(), 1);
        assert_eq!(pf.cpixel_len(), 2);
    }

    #[test]
    fn refuses_what_cannot_be_served() {
        assert_eq!(
            PixelFormat::parse(&wire(24, 24, 0, 1, [255; 3], [16, 8, 0])),
            Err(PixelFormatError::BitsPerPixel(24))
        );
        assert_eq!(
            PixelFormat::parse(&wire(0, 0, 0, 1, [255; 3], [16, 8, 0])),
            Err(PixelFormatError::BitsPerPixel(0))
        );
        assert_eq!(
            PixelFormat::parse(&wire(8, 8, 0, 0, [0; 3], [0; 3])),
            Err(PixelFormatError::ColourMap)
        );
        assert_eq!(
            PixelFormat::parse(&wire(16, 16, 0, 1, [255; 3], [11, 5, 0])),
            Err(PixelFormatError::Channel)
        );
        assert_eq!(
            PixelFormat::parse(&wire(32, 24, 0, 1, [0, 255, 255], [16, 8, 0])),
            Err(PixelFormatError::Channel)
        );
    }
}
