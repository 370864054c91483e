//! RFB wire protocol (RFC 6143): the handshake, parsing of client messages with hard size limits, and
//! the server messages we send.
//!
//! Every length a client announces is checked before anything is allocated or skipped, so a hostile or
//! broken client costs at most [`MAX_CUT_TEXT`] bytes of reading and a few KiB of memory before it is
//! disconnected with a [`ProtoError`] naming the reason.

use std::io::{self, Read, Write};

use super::pixel::{PixelFormat, PixelFormatError};

/// ClientCutText longer than this closes the connection (the text is read and dropped, never stored).
pub const MAX_CUT_TEXT: u32 = 1 << 20;
/// SetEncodings with more entries than this closes the connection (real clients send about 30).
pub const MAX_ENCODINGS: u16 = 512;

pub const PSEUDO_DESKTOP_SIZE: i32 = -223;
pub const PSEUDO_QEMU_EXTENDED_KEY: i32 = -258;
pub const PSEUDO_EXTENDED_DESKTOP_SIZE: i32 = -308;
/// Compression level pseudo-encodings -256 (level 0) ..= -247 (level 9).
pub const PSEUDO_COMPRESS_LEVEL_0: i32 = -256;

const SECURITY_NONE: u8 = 1;

/// Errors of the wire protocol: each names why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("Failed to talk to the client")]
    Io(#[source] io::Error),
    #[error("Unsupported protocol version {0:?}")]
    Version(String),
    #[error("Client chose security type {0}, only None (1) is offered")]
    SecurityType(u8),
    #[error("Unusable pixel format")]
    PixelFormat(#[source] PixelFormatError),
    #[error("SetEncodings with {0} entries")]
    TooManyEncodings(u16),
    #[error("ClientCutText of {0} bytes")]
    CutTextTooLong(u32),
    #[error("Unknown client message type {0}")]
    UnknownMessage(u8),
    #[error("Unknown QEMU client message subtype {0}")]
    UnknownQemuMessage(u8),
}

impl From<io::Error> for ProtoError {
    fn from(e: io::Error) -> Self {
        ProtoError::Io(e)
    }
}

/// The protocol version agreed with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

/// A parsed client-to-server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    SetPixelFormat(PixelFormat),
    SetEncodings(Vec<i32>),
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
    /// ClientCutText, already read and dropped.
    CutText,
    /// QEMU Extended Key Event: keysym plus the XT scancode of the physical key.
    ExtendedKey {
        down: bool,
        keysym: u32,
        scancode: u32,
    },
    /// SetDesktopSize (ExtendedDesktopSize extension); we never resize, but must answer.
    SetDesktopSize,
}

fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses "RFB xxx.yyy\n" and picks the version we speak: 3.8 for 3.8 and later, 3.7, else 3.3
/// (RFC 6143 7.1.1: unknown minor versions are treated as 3.3).
pub fn parse_version(b: &[u8; 12]) -> Result<Version, ProtoError> {
    let text = String::from_utf8_lossy(b).into_owned();
    let bad = || ProtoError::Version(text.clone());
    if &b[..4] != b"RFB " || b[7] != b'.' || b[11] != b'\n' {
        return Err(bad());
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(major), Some(minor)) = (num(&b[4..7]), num(&b[8..11])) else {
        return Err(bad());
    };
    match (major, minor) {
        (3, m) if m >= 8 => Ok(Version::V3_8),
        (3, 7) => Ok(Version::V3_7),
        (3, _) => Ok(Version::V3_3),
        _ => Err(bad()),
    }
}

/// Runs the server side of the handshake up to and including ServerInit.
pub fn handshake<S: Read + Write>(
    s: &mut S,
    width: u16,
    height: u16,
    name: &str,
) -> Result<Version, ProtoError> {
    s.write_all(b"RFB 003.008\n")?;
    let version = parse_version(&read_array::<12>(s)?)?;
    match version {
        Version::V3_3 => s.write_all(&u32::from(SECURITY_NONE).to_be_bytes())?,
        Version::V3_7 | Version::V3_8 => {
            s.write_all(&[1, SECURITY_NONE])?;
            let [chosen] = read_array::<1>(s)?;
            if chosen != SECURITY_NONE {
                if version == Version::V3_8 {
                    let reason = b"Security type not offered";
                    let mut msg = 1u32.to_be_bytes().to_vec();
                    msg.extend_from_slice(&(reason.len() as u32).to_be_bytes());
                    msg.extend_from_slice(reason);
                    s.write_all(&msg)?;
                }
                return Err(ProtoError::SecurityType(chosen));
            }
            if version == Version::V3_8 {
                s.write_all(&0u32.to_be_bytes())?;
            }
        }
    }
    // ClientInit: the shared flag. We always share: several viewers may watch one VM.
    let [_shared] = read_array::<1>(s)?;
    s.write_all(&server_init(width, height, &PixelFormat::NATIVE, name))?;
    Ok(version)
}

/// The ServerInit message.
pub fn server_init(width: u16, height: u16, pf: &PixelFormat, name: &str) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(255)];
    let mut m = Vec::with_capacity(24 + name.len());
    m.extend_from_slice(&width.to_be_bytes());
    m.extend_from_slice(&height.to_be_bytes());
    m.extend_from_slice(&pf.to_bytes());
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name);
    m
}

/// Reads one client message, enforcing the size limits.
pub fn read_client_msg(r: &mut impl Read) -> Result<ClientMsg, ProtoError> {
    let [kind] = read_array::<1>(r)?;
    match kind {
        0 => {
            let b = read_array::<19>(r)?;
            let mut pf = [0u8; 16];
            pf.copy_from_slice(&b[3..]);
            PixelFormat::parse(&pf)
                .map(ClientMsg::SetPixelFormat)
                .map_err(ProtoError::PixelFormat)
        }
        2 => {
            let b = read_array::<3>(r)?;
            let n = be16(&b[1..]);
            if n > MAX_ENCODINGS {
                return Err(ProtoError::TooManyEncodings(n));
            }
            let mut encs = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                encs.push(i32::from_be_bytes(read_array::<4>(r)?));
            }
            Ok(ClientMsg::SetEncodings(encs))
        }
        3 => {
            let b = read_array::<9>(r)?;
            Ok(ClientMsg::UpdateRequest {
                incremental: b[0] != 0,
                x: be16(&b[1..]),
                y: be16(&b[3..]),
                w: be16(&b[5..]),
                h: be16(&b[7..]),
            })
        }
        4 => {
            let b = read_array::<7>(r)?;
            Ok(ClientMsg::Key {
                down: b[0] != 0,
                keysym: be32(&b[3..]),
            })
        }
        5 => {
            let b = read_array::<5>(r)?;
            Ok(ClientMsg::Pointer {
                buttons: b[0],
                x: be16(&b[1..]),
                y: be16(&b[3..]),
            })
        }
        6 => {
            let b = read_array::<7>(r)?;
            let len = be32(&b[3..]);
            if len > MAX_CUT_TEXT {
                return Err(ProtoError::CutTextTooLong(len));
            }
            let skipped = io::copy(&mut r.by_ref().take(u64::from(len)), &mut io::sink())?;
            if skipped != u64::from(len) {
                return Err(ProtoError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(ClientMsg::CutText)
        }
        251 => {
            // padding, width, height, number-of-screens, padding, then 16 bytes per screen.
            let b = read_array::<7>(r)?;
            let screens = u64::from(b[5]) * 16;
            let skipped = io::copy(&mut r.by_ref().take(screens), &mut io::sink())?;
            if skipped != screens {
                return Err(ProtoError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(ClientMsg::SetDesktopSize)
        }
        255 => {
            let [sub] = read_array::<1>(r)?;
            if sub != 0 {
                return Err(ProtoError::UnknownQemuMessage(sub));
            }
            let b = read_array::<10>(r)?;
            Ok(ClientMsg::ExtendedKey {
                down: be16(&b[0..]) != 0,
                keysym: be32(&b[2..]),
                scancode: be32(&b[6..]),
            })
        }
        other => Err(ProtoError::UnknownMessage(other)),
    }
}

/// FramebufferUpdate header for `rects` rectangles.
pub fn update_header(rects: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&rects.to_be_bytes());
}

/// A rectangle header.
pub fn rect_header(x: u16, y: u16, w: u16, h: u16, encoding: i32, out: &mut Vec<u8>) {
    for v in [x, y, w, h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&encoding.to_be_bytes());
}

/// The ExtendedDesktopSize pseudo-rectangle: one screen covering the framebuffer.
pub fn extended_desktop_size(reason: u16, status: u16, w: u16, h: u16, out: &mut Vec<u8>) {
    rect_header(reason, status, w, h, PSEUDO_EXTENDED_DESKTOP_SIZE, out);
    out.extend_from_slice(&[1, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes()); // screen id
    for v in [0u16, 0, w, h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&0u32.to_be_bytes()); // flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_negotiated_down_to_what_we_speak() {
        assert_eq!(parse_version(b"RFB 003.008\n").unwrap(), Version::V3_8);
        assert_eq!(parse_version(b"RFB 003.889\n").unwrap(), Version::V3_8);
        assert_eq!(parse_version(b"RFB 003.007\n").unwrap(), Version::V3_7);
        assert_eq!(parse_version(b"RFB 003.003\n").unwrap(), Version::V3_3);
        assert_eq!(parse_version(b"RFB 003.005\n").unwrap(), Version::V3_3);
        assert!(parse_version(b"RFB 004.000\n").is_err());
        assert!(parse_version(b"GET / HTTP/1").is_err());
        assert!(parse_version(b"RFB 0x3.008\n").is_err());
    }

    #[test]
    fn messages_parse_and_limits_hold() {
        let mut key: &[u8] = &[4, 1, 0, 0, 0, 0, 0, 0x61];
        assert_eq!(
            read_client_msg(&mut key).unwrap(),
            ClientMsg::Key {
                down: true,
                keysym: 0x61
            }
        );
        let mut ext: &[u8] = &[255, 0, 0, 1, 0, 0, 0xff, 0x52, 0, 0, 0, 0xc8];
        assert_eq!(
            read_client_msg(&mut ext).unwrap(),
            ClientMsg::ExtendedKey {
                down: true,
                keysym: 0xff52,
                scancode: 0xc8
            }
        );
        let mut cut: &[u8] = &[6, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 4];
        assert_eq!(read_client_msg(&mut cut).unwrap(), ClientMsg::CutText);
        assert_eq!(cut, &[4]);
        let mut huge_cut: &[u8] = &[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_client_msg(&mut huge_cut),
            Err(ProtoError::CutTextTooLong(0xffff_ffff))
        ));
        let mut many: &[u8] = &[2, 0, 0xff, 0xff];
        assert!(matches!(
            read_client_msg(&mut many),
            Err(ProtoError::TooManyEncodings(65535))
        ));
        let mut unknown: &[u8] = &[77];
        assert!(matches!(
            read_client_msg(&mut unknown),
            Err(ProtoError::UnknownMessage(77))
        ));
        let mut short: &[u8] = &[3, 1, 0];
        assert!(matches!(read_client_msg(&mut short), Err(ProtoError::Io(_))));
        let mut bpp24: Vec<u8> = vec![0, 0, 0, 0];
        bpp24.extend_from_slice(&[24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        assert!(matches!(
            read_client_msg(&mut &bpp24[..]),
            Err(ProtoError::PixelFormat(PixelFormatError::BitsPerPixel(24)))
        ));
    }
}
