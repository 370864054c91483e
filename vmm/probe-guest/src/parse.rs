//! Number parsing and formatting without `core::fmt` (small and fast on a slow emulated CPU).

/// Parses an unsigned integer like the kernel's `simple_strtoull(.., 0)`: `0x` hex, leading-`0` octal,
/// otherwise decimal. Returns the value and the unparsed rest; `None` if no digit was consumed or overflow.
pub fn parse_prefix(s: &[u8]) -> Option<(u64, &[u8])> {
    let (radix, digits) = if s.len() > 2 && s[0] == b'0' && (s[1] == b'x' || s[1] == b'X') {
        (16, &s[2..])
    } else if s.len() > 1 && s[0] == b'0' && s[1].is_ascii_digit() {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let mut value: u64 = 0;
    let mut used = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u64,
            b'a'..=b'f' => (c - b'a' + 10) as u64,
            b'A'..=b'F' => (c - b'A' + 10) as u64,
            _ => break,
        };
        if d >= radix {
            break;
        }
        value = value.checked_mul(radix)?.checked_add(d)?;
        used += 1;
    }
    if used == 0 {
        return None;
    }
    Some((value, &digits[used..]))
}

/// A whole token as a number (no trailing garbage).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    match parse_prefix(s)? {
        (v, []) => Some(v),
        _ => None,
    }
}

/// The kernel's `memparse`: a number with an optional K/M/G/T suffix (binary multiples).
pub fn memparse(s: &[u8]) -> Option<(u64, &[u8])> {
    let (v, rest) = parse_prefix(s)?;
    let shift = match rest.first() {
        Some(b'k' | b'K') => 10,
        Some(b'm' | b'M') => 20,
        Some(b'g' | b'G') => 30,
        Some(b't' | b'T') => 40,
        _ => return Some((v, rest)),
    };
    let scaled = v.checked_mul(1u64 << shift)?;
    Some((scaled, &rest[1..]))
}

/// Six hex digits `rrggbb` → 0xRRGGBB.
pub fn parse_rgb(s: &[u8]) -> Option<u32> {
    if s.len() != 6 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

/// Decimal digits of `n`, written to the end of `buf`.
pub fn fmt_dec(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

pub const HEX: &[u8; 16] = b"0123456789abcdef";

/// `0x` and lower-case hex digits of `n` (no leading zeros).
pub fn fmt_hex(mut n: u64, buf: &mut [u8; 18]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    i -= 1;
    buf[i] = b'x';
    i -= 1;
    buf[i] = b'0';
    &buf[i..]
}

/// Splits off the first space-separated word; returns (word, rest with leading spaces removed).
pub fn next_word(s: &[u8]) -> (&[u8], &[u8]) {
    let s = trim_start(s);
    let end = s.iter().position(|&c| c == b' ').unwrap_or(s.len());
    (&s[..end], trim_start(&s[end..]))
}

pub fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b' ' && c != b'\t').unwrap_or(s.len());
    &s[start..]
}

pub fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_the_kernel() {
        assert_eq!(parse_u64(b"4096"), Some(4096));
        assert_eq!(parse_u64(b"0xd0000000"), Some(0xd000_0000));
        assert_eq!(parse_u64(b"010"), Some(8));
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }

    #[test]
    fn memparse_scales_suffixes() {
        assert_eq!(memparse(b"4K@x"), Some((4096, &b"@x"[..])));
        assert_eq!(memparse(b"0x1000@"), Some((0x1000, &b"@"[..])));
        assert_eq!(memparse(b"2M"), Some((2 << 20, &b""[..])));
    }

    #[test]
    fn formats_numbers() {
        let mut d = [0u8; 20];
        assert_eq!(fmt_dec(0, &mut d), b"0");
        let mut d = [0u8; 20];
        assert_eq!(fmt_dec(u64::MAX, &mut d), b"18446744073709551615");
        let mut h = [0u8; 18];
        assert_eq!(fmt_hex(0xd000_0000, &mut h), b"0xd0000000");
        let mut h = [0u8; 18];
        assert_eq!(fmt_hex(u64::MAX, &mut h), b"0xffffffffffffffff");
    }

    #[test]
    fn words_and_colours() {
        assert_eq!(
            next_word(b"  blk-write 3 hello world"),
            (&b"blk-write"[..], &b"3 hello world"[..])
        );
        assert_eq!(next_word(b"x"), (&b"x"[..], &b""[..]));
        assert_eq!(parse_rgb(b"ff8000"), Some(0xff8000));
        assert_eq!(parse_rgb(b"ff800"), None);
        assert_eq!(parse_rgb(b"gg8000"), None);
    }
}
