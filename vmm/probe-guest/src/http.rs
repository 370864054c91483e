//! The HTTP/1.0 of `net get`: the request line the probe sends and the status and body it reads back
//! (RFC 1945). Host-testable; the connection is in `get.rs`.

/// Longest path `net get` accepts (the request must fit in one segment with its headers).
pub const MAX_PATH: usize = 256;
/// Longest request: the fixed parts, the path and the host.
pub const MAX_REQUEST: usize = 64 + MAX_PATH;

/// `GET <path> HTTP/1.0` with a Host header into `buf`; returns its length (`None` if `path` is longer
/// than [`MAX_PATH`] or is not a printable path starting with `/`).
pub fn request(buf: &mut [u8; MAX_REQUEST], path: &[u8], host: &[u8]) -> Option<usize> {
    let printable = path.iter().all(|&c| (0x21..0x7f).contains(&c));
    if path.len() > MAX_PATH || path.first() != Some(&b'/') || !printable || host.len() > 15 {
        return None;
    }
    let mut n = 0;
    for part in [
        b"GET ".as_slice(),
        path,
        b" HTTP/1.0\r\nHost: ",
        host,
        b"\r\n\r\n",
    ] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    Some(n)
}

/// The status code and body of a response (`HTTP/1.x <3 digits> ...`, headers, empty line, body).
pub fn response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let rest = raw.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((status, &raw[end + 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_one_get_with_a_host() {
        let mut buf = [0u8; MAX_REQUEST];
        let n = request(&mut buf, b"/latest/meta-data/instance-id", b"169.254.169.254").unwrap();
        assert_eq!(
            &buf[..n],
            b"GET /latest/meta-data/instance-id HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n"
        );
        assert_eq!(request(&mut buf, b"latest", b"h"), None, "not a path");
        assert_eq!(
            request(&mut buf, b"/a b", b"h"),
            None,
            "a space would end the request line"
        );
        assert_eq!(request(&mut buf, &[b'/'; MAX_PATH + 1], b"h"), None);
        assert!(request(&mut buf, &[b'/'; MAX_PATH], b"255.255.255.255").is_some());
    }

    #[test]
    fn status_and_body_are_found() {
        let raw = b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nvm-1";
        assert_eq!(response(raw), Some((200, &b"vm-1"[..])));
        assert_eq!(response(b"HTTP/1.1 403 Forbidden\r\n\r\n"), Some((403, &b""[..])));
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n"), None, "headers not finished");
        assert_eq!(response(b"HTTP/1.1 2x0 OK\r\n\r\n"), None);
        assert_eq!(response(b"SSH-2.0\r\n\r\n"), None);
        assert_eq!(response(b"HTTP/1."), None);
    }
}
