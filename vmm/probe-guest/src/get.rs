//! `net get`: one HTTP/1.0 GET over one TCP connection, for tests that ask the metadata service (or
//! another probe) something through the real VMM, TAP, bridge and firewall. The next hop is resolved
//! like a ping's; the connection's rules are in `tcp.rs`, the request and answer in `http.rs`. While it
//! waits it answers ARP and echo requests for the card's address, like the other loops in `ping.rs`.
//!
//! It returns once its FIN is acknowledged, so that nothing of the connection arrives after it (a
//! `net serve` afterwards would count it as stray). What it sends last is sent again every [`ping::CHECKS_PER_ARP_RETRY`] serial checks without an
//! answer, at most [`MAX_RETRIES`] times in a row; serial input ends the wait at any time.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU16, Ordering};

use crate::http;
use crate::ipv4::{fmt_addr, Config};
use crate::net::Net;
use crate::ping::{self, PingError, Served};
use crate::tcp::{self, Conn, Path, Send, State};

/// Bytes of an answer kept (headers and body); the rest is counted, not kept.
pub const MAX_RESPONSE: usize = 4096;
/// Retransmissions in a row without an answer before `net get` gives up.
const MAX_RETRIES: u32 = 8;
/// Local ports: a new one for every connection (from the dynamic range), so none meets an old one's
/// state in the server or in conntrack.
const FIRST_PORT: u16 = 49152;
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// How a `net get` failed.
pub enum GetError {
    /// No route, no ARP answer, or the device failed (as for a ping).
    Ping(PingError),
    /// The path is not one `http::request` can send.
    BadPath,
    /// Serial input arrived, or the retransmissions ran out, before the answer was complete.
    NoAnswer,
    /// The server reset the connection.
    Reset,
}

impl From<PingError> for GetError {
    fn from(e: PingError) -> Self {
        match e {
            PingError::GaveUp | PingError::NoReply => GetError::NoAnswer,
            e => GetError::Ping(e),
        }
    }
}

/// The answer as received: its first [`MAX_RESPONSE`] bytes and how many there were in all.
pub struct Response {
    pub raw: [u8; MAX_RESPONSE],
    pub kept: usize,
    pub total: usize,
}

impl Response {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_RESPONSE - self.kept;
        let n = data.len().min(room);
        self.raw[self.kept..self.kept + n].copy_from_slice(&data[..n]);
        self.kept += n;
        self.total += data.len();
    }
}

/// The connection and what the retransmission timer needs, shared by the receive and check hooks.
struct Client {
    conn: Conn,
    path: Path,
    request: [u8; http::MAX_REQUEST],
    request_len: usize,
    /// What was sent last: sent again when nothing comes.
    last: Send,
    checks: u32,
    retries: u32,
}

impl Client {
    fn frame(&self, send: Send, out: &mut [u8; tcp::MAX_FRAME]) -> usize {
        let (seq, ack, flags) = self.conn.header(send);
        let payload = if send == Send::Request {
            &self.request[..self.request_len]
        } else {
            &[]
        };
        tcp::build(out, &self.path, (seq, ack), flags, payload)
    }
}

/// GETs `path` from `dst`:`port` with source address `src` (the card's own, or another to test
/// anti-spoofing); `sent` runs once the SYN is on its way.
pub fn get(
    net: &mut Net,
    cfg: &Config,
    (dst, port): ([u8; 4], u16),
    path: &[u8],
    src: [u8; 4],
    sent: &mut dyn FnMut(),
) -> Result<Response, GetError> {
    let mac = net.mac();
    let hop = cfg.next_hop(dst).ok_or(PingError::NoRoute)?;
    let hop_mac = ping::resolve(net, cfg, hop)?;
    let mut request = [0u8; http::MAX_REQUEST];
    let mut host = [0u8; 15];
    let request_len = http::request(&mut request, path, fmt_addr(dst, &mut host)).ok_or(GetError::BadPath)?;
    let local_port = FIRST_PORT.wrapping_add(NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 16384);
    let iss = (u32::from(local_port) << 16) ^ 0x7072_6f62;
    let conn = Conn::new((src, local_port), (dst, port), iss, request_len);
    let client = RefCell::new(Client {
        path: Path {
            src_mac: mac,
            dst_mac: hop_mac,
            src: conn.local,
            dst: conn.remote,
        },
        conn,
        request,
        request_len,
        last: Send::Syn,
        checks: 0,
        retries: 0,
    });
    let mut frame = [0u8; tcp::MAX_FRAME];
    let n = client.borrow().frame(Send::Syn, &mut frame);
    if !net.send(&frame[..n]) {
        return Err(PingError::Device.into());
    }
    sent();
    let mut response = Response {
        raw: [0; MAX_RESPONSE],
        kept: 0,
        total: 0,
    };
    let mut served = Served::default();
    let ended = ping::until(
        net,
        &mut |f, out| {
            let mut c = client.borrow_mut();
            let Some(seg) = tcp::parse(f).filter(|s| c.conn.owns(s)) else {
                return (false, ping::answer(f, &mac, cfg, &mut served));
            };
            c.checks = 0;
            c.retries = 0;
            let send = c.conn.on_segment(&seg, f, &mut |d| response.push(d));
            if send != Send::Nothing {
                out.len = c.frame(send, &mut out.buf);
                c.last = send;
            }
            (matches!(c.conn.state, State::Closed | State::Reset), None)
        },
        &mut |net| {
            let mut c = client.borrow_mut();
            c.checks += 1;
            if !c.checks.is_multiple_of(ping::CHECKS_PER_ARP_RETRY) {
                return Ok(());
            }
            c.retries += 1;
            if c.retries > MAX_RETRIES {
                return Err(PingError::GaveUp);
            }
            let n = c.frame(c.last, &mut frame);
            if net.send(&frame[..n]) {
                Ok(())
            } else {
                Err(PingError::Device)
            }
        },
    );
    let state = client.borrow().conn.state;
    match (state, ended) {
        // The whole answer is in: a lost last ACK (or a test that stopped waiting for it) changes nothing.
        (State::Closed, _) | (State::LastAck, Ok(_) | Err(PingError::GaveUp)) => Ok(response),
        (_, Err(e)) => Err(e.into()),
        (State::Reset, _) => Err(GetError::Reset),
        _ => Err(GetError::NoAnswer),
    }
}
