//! Just enough TCP (RFC 9293) for the probe to fetch one HTTP/1.0 answer over a lossless bridged path
//! and to answer connections with one fixed reply: segments built and parsed with their checksums, the
//! client's connection state ([`Conn`]) and a stateless responder ([`respond`]). Host-testable; the
//! loops that use this are in `get.rs` and `ping.rs`.
//!
//! Nothing here trusts the wire: a segment that is short, fragmented, badly checksummed or not for the
//! connection is ignored, never indexed past its end.

use crate::ipv4::ETHERTYPE_IPV4;
use crate::netframe::ETH_HLEN;

const IP_HLEN: usize = 20;
const TCP_HLEN: usize = 20;
const PROTO_TCP: u8 = 6;
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
/// The receive window the probe advertises (no window scaling).
const WINDOW: u16 = 8192;
/// Longest payload the probe sends in one segment (the default MSS: it sends no options).
pub const MAX_PAYLOAD: usize = 536;
/// Longest frame this module builds.
pub const MAX_FRAME: usize = ETH_HLEN + IP_HLEN + TCP_HLEN + MAX_PAYLOAD;

/// One end of a connection.
pub type Endpoint = ([u8; 4], u16);

/// A received TCP segment (addresses, ports, sequence numbers, flags and where its payload is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub src_mac: [u8; 6],
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// The payload's range in the frame.
    pub payload: (usize, usize),
}

impl Segment {
    pub fn len(&self) -> u32 {
        (self.payload.1 - self.payload.0) as u32
    }

    /// Sequence space the segment takes: its payload, plus one each for SYN and FIN.
    fn space(&self) -> u32 {
        self.len() + u32::from(self.flags & SYN != 0) + u32::from(self.flags & FIN != 0)
    }
}

/// The ones'-complement sum of `data` (as 16-bit big-endian words) added to `sum`, not yet folded.
fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    sum
}

/// The TCP checksum of `segment` (header and payload) between `src` and `dst`: over the pseudo-header
/// too (RFC 9293 section 3.1). Zero when `segment` carries a correct checksum.
fn tcp_checksum(src: [u8; 4], dst: [u8; 4], segment: &[u8]) -> u16 {
    let mut sum = add_words(0, &src);
    sum = add_words(sum, &dst);
    sum += u32::from(PROTO_TCP) + segment.len() as u32;
    sum = add_words(sum, segment);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Who sends a segment to whom: MACs, then (address, port) of each end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Endpoint,
    pub dst: Endpoint,
}

/// A TCP segment with `flags`, `seq`, `ack` and `payload` (at most [`MAX_PAYLOAD`] bytes) along `path`,
/// into `buf`; returns the frame's length.
pub fn build(
    buf: &mut [u8; MAX_FRAME],
    path: &Path,
    (seq, ack): (u32, u32),
    flags: u8,
    payload: &[u8],
) -> usize {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    buf[0..6].copy_from_slice(&path.dst_mac);
    buf[6..12].copy_from_slice(&path.src_mac);
    buf[12..14].copy_from_slice(&ETHERTYPE_IPV4);
    let total = IP_HLEN + TCP_HLEN + payload.len();
    let ip = &mut buf[ETH_HLEN..ETH_HLEN + IP_HLEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&[0x40, 0]); // don't fragment
    ip[8] = 64;
    ip[9] = PROTO_TCP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&path.src.0);
    ip[16..20].copy_from_slice(&path.dst.0);
    let sum = crate::ipv4::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let tcp = &mut buf[ETH_HLEN + IP_HLEN..ETH_HLEN + total];
    tcp[0..2].copy_from_slice(&path.src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&path.dst.1.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = ((TCP_HLEN / 4) as u8) << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    tcp[16..20].copy_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp[TCP_HLEN..].copy_from_slice(payload);
    let sum = tcp_checksum(path.src.0, path.dst.0, tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    ETH_HLEN + total
}

/// The TCP segment in `frame`, if it is an unfragmented IPv4 packet with correct IP and TCP checksums.
pub fn parse(frame: &[u8]) -> Option<Segment> {
    let (hlen, total) = crate::ipv4::packet(frame, PROTO_TCP, TCP_HLEN)?;
    let (header, tcp) = frame[ETH_HLEN..ETH_HLEN + total].split_at(hlen);
    let src = [header[12], header[13], header[14], header[15]];
    let dst = [header[16], header[17], header[18], header[19]];
    if tcp_checksum(src, dst, tcp) != 0 {
        return None;
    }
    let off = usize::from(tcp[12] >> 4) * 4;
    if off < TCP_HLEN || off > tcp.len() {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Some(Segment {
        src: (src, u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: (dst, u16::from_be_bytes([tcp[2], tcp[3]])),
        src_mac,
        seq: word(4),
        ack: word(8),
        flags: tcp[13],
        payload: (ETH_HLEN + hlen + off, ETH_HLEN + total),
    })
}

/// `a` comes before `b` in sequence space (RFC 9293 section 3.4, modulo 2³²).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Where a client connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    SynSent,
    Established,
    /// The peer's FIN arrived (in order) and ours went back with its ACK: everything the peer sent has
    /// been received; the ACK of our FIN is awaited (RFC 9293 LAST-ACK).
    LastAck,
    /// Our FIN was acknowledged: nothing of this connection is left in flight.
    Closed,
    /// The peer reset the connection.
    Reset,
}

/// What the client sends after a segment arrived (or a retransmission is due).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    Nothing,
    /// The initial SYN.
    Syn,
    /// The ACK of the peer's SYN with the request.
    Request,
    /// An ACK of everything received so far.
    Ack,
    /// FIN with the ACK of the peer's FIN.
    Fin,
}

/// One client connection that sends a request of `request_len` bytes and reads the answer until the
/// peer's FIN. Data arriving out of order is not acknowledged (the sender retransmits it).
pub struct Conn {
    pub local: Endpoint,
    pub remote: Endpoint,
    iss: u32,
    request_len: u32,
    rcv_nxt: u32,
    pub state: State,
}

impl Conn {
    pub fn new(local: Endpoint, remote: Endpoint, iss: u32, request_len: usize) -> Conn {
        Conn {
            local,
            remote,
            iss,
            request_len: request_len.min(MAX_PAYLOAD) as u32,
            rcv_nxt: 0,
            state: State::SynSent,
        }
    }

    /// Whether `seg` belongs to this connection.
    pub fn owns(&self, seg: &Segment) -> bool {
        seg.src == self.remote && seg.dst == self.local
    }

    /// Handles `seg` (one of [`Conn::owns`]); in-order payload goes to `data`. Returns what to send.
    pub fn on_segment(&mut self, seg: &Segment, frame: &[u8], data: &mut dyn FnMut(&[u8])) -> Send {
        let acks_syn = seg.flags & ACK != 0 && seg.ack == self.iss.wrapping_add(1);
        match self.state {
            State::SynSent if seg.flags & RST != 0 && acks_syn => {
                self.state = State::Reset;
                Send::Nothing
            }
            State::SynSent if seg.flags & (SYN | ACK) == SYN | ACK && acks_syn => {
                self.rcv_nxt = seg.seq.wrapping_add(1);
                self.state = State::Established;
                Send::Request
            }
            State::Established if seg.flags & RST != 0 => {
                self.state = State::Reset;
                Send::Nothing
            }
            // Our ACK (with the request) was lost: the peer repeats its SYN-ACK.
            State::Established if seg.flags & SYN != 0 => {
                if acks_syn && seg.seq.wrapping_add(1) == self.rcv_nxt {
                    Send::Request
                } else {
                    Send::Nothing
                }
            }
            State::Established if seg.seq == self.rcv_nxt => {
                let Some(payload) = frame.get(seg.payload.0..seg.payload.1) else {
                    return Send::Nothing;
                };
                data(payload);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.space());
                if seg.flags & FIN != 0 {
                    self.state = State::LastAck;
                    Send::Fin
                } else if seg.space() > 0 {
                    Send::Ack
                } else {
                    Send::Nothing
                }
            }
            // A repeat of what was received already: our ACK was lost, say it again.
            State::Established if seg.space() > 0 && before(seg.seq, self.rcv_nxt) => Send::Ack,
            State::LastAck if seg.flags & ACK != 0 && seg.ack == self.fin_seq().wrapping_add(1) => {
                self.state = State::Closed;
                Send::Nothing
            }
            // The peer's FIN again: our FIN (with its ACK) was lost.
            State::LastAck if seg.flags & FIN != 0 && seg.seq.wrapping_add(seg.space()) == self.rcv_nxt => {
                Send::Fin
            }
            State::LastAck if seg.flags & RST != 0 => {
                self.state = State::Closed;
                Send::Nothing
            }
            _ => Send::Nothing,
        }
    }

    /// Our sequence number after the request: that of our FIN.
    fn fin_seq(&self) -> u32 {
        self.iss.wrapping_add(1).wrapping_add(self.request_len)
    }

    /// The (seq, ack, flags) of a segment of kind `send` (the request's bytes follow a [`Send::Request`]).
    pub fn header(&self, send: Send) -> (u32, u32, u8) {
        let after_request = self.fin_seq();
        match send {
            Send::Syn | Send::Nothing => (self.iss, 0, SYN),
            Send::Request => (self.iss.wrapping_add(1), self.rcv_nxt, ACK | PSH),
            Send::Ack => (after_request, self.rcv_nxt, ACK),
            Send::Fin => (after_request, self.rcv_nxt, FIN | ACK),
        }
    }
}

/// The initial sequence number the stateless responder uses towards `peer` on its `port`: the same for
/// every segment of one connection, so nothing needs to be remembered between them.
fn responder_iss(peer: Endpoint, port: u16) -> u32 {
    let mut h = 0x7072_6f62u32;
    for b in peer
        .0
        .iter()
        .chain(&peer.1.to_be_bytes())
        .chain(&port.to_be_bytes())
    {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// What [`respond`] answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// A connection request: SYN-ACK.
    Syn,
    /// The connection's ACK: the reply and FIN.
    Reply,
    /// The peer's FIN after the reply: its ACK.
    Close,
    /// A segment to `addr` that is none of the above (a SYN-ACK nobody asked for, say): ignored.
    Stray,
}

/// Answers a TCP segment to `addr` (any port) on behalf of a server that sends `reply` to whoever
/// connects and then closes, without keeping state: the SYN gets a SYN-ACK, the ACK of that (with or
/// without the peer's data, which is acknowledged) gets `reply` with FIN, the peer's FIN after it gets
/// an ACK. The answer to send is built into `out` (its length returned); `None` for anything else.
pub fn respond(
    frame: &[u8],
    mac: &[u8; 6],
    addr: [u8; 4],
    reply: &[u8],
    out: &mut [u8; MAX_FRAME],
) -> Option<(Answered, usize)> {
    let seg = parse(frame).filter(|s| s.dst.0 == addr)?;
    let iss = responder_iss(seg.src, seg.dst.1);
    let reply = &reply[..reply.len().min(MAX_PAYLOAD)];
    let path = Path {
        src_mac: *mac,
        dst_mac: seg.src_mac,
        src: seg.dst,
        dst: seg.src,
    };
    let after_reply = iss.wrapping_add(1).wrapping_add(reply.len() as u32);
    let peer_next = seg.seq.wrapping_add(seg.space());
    if seg.flags & RST != 0 {
        return Some((Answered::Stray, 0));
    }
    let (answered, n) = if seg.flags & (SYN | ACK) == SYN {
        let n = build(out, &path, (iss, peer_next), SYN | ACK, &[]);
        (Answered::Syn, n)
    } else if seg.flags & (SYN | ACK) == ACK && seg.ack == iss.wrapping_add(1) {
        let n = build(
            out,
            &path,
            (iss.wrapping_add(1), peer_next),
            FIN | ACK | PSH,
            reply,
        );
        (Answered::Reply, n)
    } else if seg.flags & (SYN | ACK | FIN) == ACK | FIN && seg.ack == after_reply.wrapping_add(1) {
        let n = build(out, &path, (after_reply.wrapping_add(1), peer_next), ACK, &[]);
        (Answered::Close, n)
    } else if seg.flags & (SYN | ACK) == ACK && seg.ack == after_reply.wrapping_add(1) {
        // The ACK of the reply and FIN: nothing to answer.
        return Some((Answered::Close, 0));
    } else {
        return Some((Answered::Stray, 0));
    };
    Some((answered, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0b];
    const VM: Endpoint = ([10, 0, 5, 10], 49152);
    const SERVER: Endpoint = ([169, 254, 169, 254], 80);
    /// The checksum of the request segment in the first test, computed with Python's `struct` and the
    /// RFC 1071 sum over the pseudo-header.
    const CHECKSUM_OF_THE_REQUEST: [u8; 2] = [0x8d, 0xb3];

    fn to_vm() -> Path {
        Path {
            src_mac: B,
            dst_mac: A,
            src: SERVER,
            dst: VM,
        }
    }

    fn segment(path: &Path, seq_ack: (u32, u32), flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME];
        let n = build(&mut buf, path, seq_ack, flags, payload);
        buf[..n].to_vec()
    }

    #[test]
    fn built_segments_parse_back_with_their_checksums() {
        let path = Path {
            src_mac: A,
            dst_mac: B,
            src: VM,
            dst: SERVER,
        };
        let mut frame = segment(&path, (7, 9), ACK | PSH, b"GET / HTTP/1.0\r\n\r\n");
        let seg = parse(&frame).unwrap();
        assert_eq!((seg.src, seg.dst, seg.src_mac), (VM, SERVER, A));
        assert_eq!((seg.seq, seg.ack, seg.flags, seg.len()), (7, 9, ACK | PSH, 18));
        assert_eq!(&frame[seg.payload.0..seg.payload.1], b"GET / HTTP/1.0\r\n\r\n");
        let tcp = &frame[ETH_HLEN + IP_HLEN..];
        assert_eq!(tcp_checksum(VM.0, SERVER.0, tcp), 0);
        // The checksum field itself, as computed independently (Python, RFC 1071 over the pseudo-header).
        assert_eq!(&tcp[16..18], &CHECKSUM_OF_THE_REQUEST);
        // Ethernet padding after the IP packet is not payload.
        frame.extend_from_slice(&[0; 6]);
        assert_eq!(parse(&frame).unwrap().len(), 18);
    }

    #[test]
    fn malformed_segments_are_ignored() {
        let good = segment(&to_vm(), (1, 2), ACK, b"hello");
        for cut in 0..good.len() {
            assert_eq!(parse(&good[..cut]), None, "cut at {cut}");
        }
        for i in ETH_HLEN..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            // A flipped bit fails a checksum, or (length, header length, version, fragment bits) a check.
            if let Some(seg) = parse(&bad) {
                panic!("byte {i} flipped still parses: {seg:?}");
            }
        }
        let mut bad = good.clone();
        bad[ETH_HLEN + IP_HLEN + 12] = 0xf0; // data offset 60 > the segment
        assert_eq!(parse(&bad), None);
    }

    #[test]
    fn a_client_connects_receives_in_order_and_closes() {
        let mut conn = Conn::new(VM, SERVER, 1000, 18);
        assert_eq!(conn.header(Send::Syn), (1000, 0, SYN));
        let mut got = Vec::new();
        let mut feed = |conn: &mut Conn, f: &[u8]| {
            let seg = parse(f).unwrap();
            assert!(conn.owns(&seg));
            conn.on_segment(&seg, f, &mut |d| got.extend_from_slice(d))
        };
        // A SYN-ACK for another SYN is ignored; the right one is answered with the request.
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5000, 999), SYN | ACK, &[])),
            Send::Nothing
        );
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5000, 1001), SYN | ACK, &[])),
            Send::Request
        );
        assert_eq!(conn.header(Send::Request), (1001, 5001, ACK | PSH));
        // Repeated SYN-ACK: the request again.
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5000, 1001), SYN | ACK, &[])),
            Send::Request
        );
        // The answer in two segments, the second first: it waits for the retransmission.
        let second = segment(&to_vm(), (5006, 1019), ACK, b" world");
        assert_eq!(feed(&mut conn, &second), Send::Nothing);
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5001, 1019), ACK, b"hello")),
            Send::Ack
        );
        assert_eq!(conn.header(Send::Ack), (1019, 5006, ACK));
        // A repeat of the first is acknowledged again, not taken twice.
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5001, 1019), ACK, b"hello")),
            Send::Ack
        );
        assert_eq!(feed(&mut conn, &second), Send::Ack);
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5012, 1019), FIN | ACK, &[])),
            Send::Fin
        );
        assert_eq!(conn.header(Send::Fin), (1019, 5013, FIN | ACK));
        assert_eq!(conn.state, State::LastAck);
        // The peer's FIN again (ours was lost): ours again. Then the ACK of ours closes.
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5012, 1019), FIN | ACK, &[])),
            Send::Fin
        );
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5013, 1019), ACK, &[])),
            Send::Nothing
        );
        assert_eq!(conn.state, State::LastAck, "not the ACK of our FIN");
        assert_eq!(
            feed(&mut conn, &segment(&to_vm(), (5013, 1020), ACK, &[])),
            Send::Nothing
        );
        assert_eq!(conn.state, State::Closed);
        assert_eq!(got, b"hello world");
    }

    #[test]
    fn a_reset_ends_the_client_and_strangers_are_not_its_own() {
        let mut conn = Conn::new(VM, SERVER, 1000, 0);
        let rst = segment(&to_vm(), (0, 1001), RST | ACK, &[]);
        let seg = parse(&rst).unwrap();
        assert_eq!(conn.on_segment(&seg, &rst, &mut |_| {}), Send::Nothing);
        assert_eq!(conn.state, State::Reset);
        let other = Path {
            src: ([10, 0, 5, 11], 80),
            ..to_vm()
        };
        let stranger = segment(&other, (0, 1001), SYN | ACK, &[]);
        assert!(!conn.owns(&parse(&stranger).unwrap()));
    }

    #[test]
    fn the_responder_answers_a_whole_connection_without_state() {
        let me = [10, 0, 5, 11];
        let client = Path {
            src_mac: A,
            dst_mac: B,
            src: ([100, 64, 0, 1], 40000),
            dst: (me, 2222),
        };
        let mut out = [0u8; MAX_FRAME];
        let syn = segment(&client, (77, 0), SYN, &[]);
        let (what, n) = respond(&syn, &B, me, b"probe\n", &mut out).unwrap();
        assert_eq!(what, Answered::Syn);
        let synack = parse(&out[..n]).unwrap();
        assert_eq!(
            (synack.flags, synack.ack, synack.dst, synack.src),
            (SYN | ACK, 78, client.src, client.dst)
        );
        assert_eq!(&out[0..6], &A);
        let ack = segment(&client, (78, synack.seq + 1), ACK, &[]);
        let (what, n) = respond(&ack, &B, me, b"probe\n", &mut out).unwrap();
        assert_eq!(what, Answered::Reply);
        let reply = parse(&out[..n]).unwrap();
        assert_eq!(
            (reply.seq, reply.ack, reply.flags),
            (synack.seq + 1, 78, FIN | ACK | PSH)
        );
        assert_eq!(&out[reply.payload.0..reply.payload.1], b"probe\n");
        let fin = segment(&client, (78, reply.seq + 7), FIN | ACK, &[]);
        let (what, n) = respond(&fin, &B, me, b"probe\n", &mut out).unwrap();
        assert_eq!(what, Answered::Close);
        let last = parse(&out[..n]).unwrap();
        assert_eq!((last.seq, last.ack, last.flags), (reply.seq + 7, 79, ACK));
        // Not to this address: not answered; an unasked-for SYN-ACK: stray.
        assert_eq!(respond(&syn, &B, [10, 0, 5, 12], b"x", &mut out), None);
        let synack_in = segment(&client, (5, 6), SYN | ACK, &[]);
        assert_eq!(
            respond(&synack_in, &B, me, b"x", &mut out),
            Some((Answered::Stray, 0))
        );
    }

    #[test]
    fn the_responder_takes_the_client_s_data_before_its_reply() {
        let me = [10, 0, 5, 11];
        let client = Path {
            src_mac: A,
            dst_mac: B,
            src: VM,
            dst: (me, 80),
        };
        let mut out = [0u8; MAX_FRAME];
        let (_, n) = respond(&segment(&client, (10, 0), SYN, &[]), &B, me, b"r", &mut out).unwrap();
        let iss = parse(&out[..n]).unwrap().seq;
        let request = segment(&client, (11, iss + 1), ACK | PSH, b"GET / HTTP/1.0\r\n\r\n");
        let (what, n) = respond(&request, &B, me, b"r", &mut out).unwrap();
        assert_eq!(what, Answered::Reply);
        assert_eq!(parse(&out[..n]).unwrap().ack, 11 + 18);
    }
}
