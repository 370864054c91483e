//! The floors the proxies are compared with: two relays that do the least a WebSocket proxy can do per
//! chunk of VMM output (see `serve_floor`). Used by `throughput.rs` through the re-executed bench binary.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The floor: the least work a WebSocket proxy can do per chunk, with no runtime and no framing code —
/// one blocking thread per connection, `read` from the unix socket and one `writev` of a frame header and
/// the data. VMM → browser only; the handshake is answered without checks. What this costs is the
/// kernel's share, which every proxy pays on this machine.
/// With `zero_copy`, the data goes unix socket → pipe → TCP by `splice(2)` and never enters user space
/// (the header is sent with MSG_MORE): the least any proxy could cost.
pub fn serve_floor(socket: PathBuf, zero_copy: bool) -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("ws://{}/ws", listener.local_addr()?);
    for tcp in listener.incoming() {
        let (tcp, socket) = (tcp?, socket.clone());
        std::thread::spawn(move || floor_session(tcp, &socket, zero_copy));
    }
    Ok(())
}

/// A binary frame's header for `n` bytes of payload, and its length.
fn frame_head(n: usize) -> ([u8; 10], usize) {
    let mut frame = [0x82u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let len = if n < 126 {
        frame[1] = n as u8;
        2
    } else if n < 65536 {
        frame[1] = 126;
        frame[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        4
    } else {
        frame[1] = 127;
        frame[2..10].copy_from_slice(&(n as u64).to_be_bytes());
        10
    };
    (frame, len)
}

fn floor_session(mut tcp: std::net::TcpStream, socket: &Path, zero_copy: bool) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut head = vec![];
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")?;
    let unix = std::os::unix::net::UnixStream::connect(socket)?;
    if zero_copy {
        splice_relay(&unix, &tcp)
    } else {
        copy_relay(unix, tcp)
    }
}

fn splice_relay(unix: &std::os::unix::net::UnixStream, tcp: &std::net::TcpStream) -> std::io::Result<()> {
    use rustix::net::SendFlags;
    use rustix::pipe::{fcntl_setpipe_size, pipe, splice, SpliceFlags};
    let (pipe_out, pipe_in) = pipe()?;
    let capacity = fcntl_setpipe_size(&pipe_in, 1 << 20)?;
    loop {
        let n = splice(unix, None, &pipe_in, None, capacity, SpliceFlags::MOVE)?;
        if n == 0 {
            return Ok(());
        }
        let (frame, len) = frame_head(n);
        let mut h = &frame[..len];
        while !h.is_empty() {
            h = &h[rustix::net::send(tcp, h, SendFlags::MORE)?..];
        }
        let mut left = n;
        while left > 0 {
            left -= splice(&pipe_out, None, tcp, None, left, SpliceFlags::MOVE)?;
        }
    }
}

fn copy_relay(mut unix: std::os::unix::net::UnixStream, mut tcp: std::net::TcpStream) -> std::io::Result<()> {
    use std::io::{IoSlice, Read, Write};
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = unix.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let (frame, head) = frame_head(n);
        let (mut h, mut d) = (&frame[..head], &buf[..n]);
        while !h.is_empty() || !d.is_empty() {
            let mut w = tcp.write_vectored(&[IoSlice::new(h), IoSlice::new(d)])?;
            let from_head = w.min(h.len());
            h = &h[from_head..];
            w -= from_head;
            d = &d[w..];
        }
    }
}
