//! Just enough IPv4 for the probe to stand in for a VM in network tests: its address from the kernel
//! command line's `ip=` (which the portal writes for a VM's first card), ARP requests and replies, and
//! ICMP echo requests and replies, built and answered in place. Host-testable; the rings are in net.rs
//! and the loops that use this in `ping.rs`.
//!
//! Frames here are Ethernet frames without the virtio-net header.

use crate::netframe::ETH_HLEN;

pub const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ARP_LEN: usize = 28;
const ARP_REQUEST: u8 = 1;
const ARP_REPLY: u8 = 2;
const IP_HLEN: usize = 20;
const PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_HLEN: usize = 8;
/// Bytes of payload in the echo requests the probe sends.
const PING_PAYLOAD: &[u8] = b"cloud-portal probe ping";
/// Longest frame this module builds.
pub const MAX_FRAME: usize = ETH_HLEN + IP_HLEN + ICMP_HLEN + PING_PAYLOAD.len();

/// The card's IPv4 configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: [u8; 4],
    pub mask: [u8; 4],
    pub gateway: Option<[u8; 4]>,
}

impl Config {
    /// From `ip=<client>:<server>:<gateway>:<netmask>:...` (the kernel's `nfsroot.txt` form; the portal
    /// writes `ip=<addr>::<gw>:<mask>::eth0:off`).
    pub fn from_ip_param(value: &[u8]) -> Option<Config> {
        let mut fields = value.split(|&c| c == b':');
        let addr = parse_addr(fields.next()?)?;
        let _server = fields.next();
        let gateway = fields.next().and_then(parse_addr);
        let mask = fields.next().and_then(parse_addr).unwrap_or([255, 255, 255, 0]);
        Some(Config { addr, mask, gateway })
    }

    /// The address to ARP for to reach `dst`: itself on the card's subnet, else the gateway.
    pub fn next_hop(&self, dst: [u8; 4]) -> Option<[u8; 4]> {
        let same = (0..4).all(|i| dst[i] & self.mask[i] == self.addr[i] & self.mask[i]);
        if same {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// `a.b.c.d`.
pub fn parse_addr(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&c| c == b'.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = p.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(buf: &mut [u8], dst: &[u8; 6], src: &[u8; 6], ethertype: [u8; 2]) {
    buf[0..6].copy_from_slice(dst);
    buf[6..12].copy_from_slice(src);
    buf[12..14].copy_from_slice(&ethertype);
}

/// An ARP request for `target` from (`mac`, `ip`) into `buf`; returns its length.
pub fn arp_request(buf: &mut [u8; MAX_FRAME], mac: &[u8; 6], ip: [u8; 4], target: [u8; 4]) -> usize {
    ethernet(buf, &[0xff; 6], mac, ETHERTYPE_ARP);
    let arp = &mut buf[ETH_HLEN..ETH_HLEN + ARP_LEN];
    arp[0..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, ARP_REQUEST]);
    arp[8..14].copy_from_slice(mac);
    arp[14..18].copy_from_slice(&ip);
    arp[18..24].copy_from_slice(&[0; 6]);
    arp[24..28].copy_from_slice(&target);
    ETH_HLEN + ARP_LEN
}

/// The sender MAC of an ARP reply from `from`, if `frame` is one.
pub fn arp_reply_from(frame: &[u8], from: [u8; 4]) -> Option<[u8; 6]> {
    let arp = frame.get(ETH_HLEN..ETH_HLEN + ARP_LEN)?;
    if frame[12..14] != ETHERTYPE_ARP || arp[0..7] != [0, 1, 8, 0, 6, 4, 0] || arp[7] != ARP_REPLY {
        return None;
    }
    if arp[14..18] != from {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&arp[8..14]);
    Some(mac)
}

/// An ICMP echo request (`id`, `seq`) from `src` to `dst` into `buf`; returns its length.
pub fn echo_request(
    buf: &mut [u8; MAX_FRAME],
    (src_mac, dst_mac): (&[u8; 6], &[u8; 6]),
    (src, dst): ([u8; 4], [u8; 4]),
    (id, seq): (u16, u16),
) -> usize {
    ethernet(buf, dst_mac, src_mac, ETHERTYPE_IPV4);
    let total = IP_HLEN + ICMP_HLEN + PING_PAYLOAD.len();
    let ip = &mut buf[ETH_HLEN..ETH_HLEN + IP_HLEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip[6..8].copy_from_slice(&[0x40, 0]); // don't fragment
    ip[8] = 64;
    ip[9] = PROTO_ICMP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut buf[ETH_HLEN + IP_HLEN..ETH_HLEN + total];
    icmp[0] = ICMP_ECHO_REQUEST;
    icmp[1] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..6].copy_from_slice(&id.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp[ICMP_HLEN..].copy_from_slice(PING_PAYLOAD);
    let sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ETH_HLEN + total
}

/// The header length and total length of the IPv4 packet in `frame` if it is an unfragmented packet of
/// `proto` with a checksummed header and at least `min_payload` bytes after it; shared by ICMP and TCP.
pub fn packet(frame: &[u8], proto: u8, min_payload: usize) -> Option<(usize, usize)> {
    if frame.get(12..14)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..ETH_HLEN + IP_HLEN)?;
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = ip[6] & 0x3f != 0 || ip[7] != 0;
    if ip[0] >> 4 != 4 || hlen < IP_HLEN || total < hlen + min_payload || fragmented || ip[9] != proto {
        return None;
    }
    let packet = frame.get(ETH_HLEN..ETH_HLEN + total)?;
    (checksum(&packet[..hlen]) == 0).then_some((hlen, total))
}

/// The IPv4 header and ICMP message of `frame` if it is an unfragmented, checksummed ICMP packet to
/// `to` (`None` for any address).
fn icmp_to(frame: &[u8], to: Option<[u8; 4]>) -> Option<(usize, usize)> {
    let (hlen, total) = packet(frame, PROTO_ICMP, ICMP_HLEN)?;
    let packet = &frame[ETH_HLEN..ETH_HLEN + total];
    if checksum(&packet[hlen..]) != 0 || to.is_some_and(|a| packet[16..20] != a) {
        return None;
    }
    Some((hlen, total))
}

/// Whether `frame` is the echo reply from `from` to the request (`id`, `seq`).
pub fn is_echo_reply(frame: &[u8], from: [u8; 4], (id, seq): (u16, u16)) -> bool {
    let Some((hlen, _)) = icmp_to(frame, None) else {
        return false;
    };
    let ip = &frame[ETH_HLEN..];
    let icmp = &ip[hlen..];
    ip[12..16] == from
        && icmp[0] == ICMP_ECHO_REPLY
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

/// What [`answer`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not for us, or nothing to answer: the frame is left as it was.
    None,
    /// An ARP request for our address, rewritten into the reply (this many bytes).
    Arp(usize),
    /// An ICMP echo request to our address, rewritten into the reply (this many bytes).
    Echo(usize),
}

/// Rewrites `frame` in place into the answer to an ARP request for `cfg.addr` or an ICMP echo request
/// to it, as a host's stack would (`mac` is the card's).
pub fn answer(frame: &mut [u8], mac: &[u8; 6], cfg: &Config) -> Answer {
    if frame.get(12..14) == Some(&ETHERTYPE_ARP[..]) {
        let Some(arp) = frame.get(ETH_HLEN..ETH_HLEN + ARP_LEN) else {
            return Answer::None;
        };
        if arp[0..7] != [0, 1, 8, 0, 6, 4, 0] || arp[7] != ARP_REQUEST || arp[24..28] != cfg.addr {
            return Answer::None;
        }
        let mut asker = [0u8; 10];
        asker.copy_from_slice(&arp[8..18]);
        let mut requester_mac = [0u8; 6];
        requester_mac.copy_from_slice(&asker[..6]);
        ethernet(frame, &requester_mac, mac, ETHERTYPE_ARP);
        let arp = &mut frame[ETH_HLEN..ETH_HLEN + ARP_LEN];
        arp[7] = ARP_REPLY;
        arp[8..14].copy_from_slice(mac);
        arp[14..18].copy_from_slice(&cfg.addr);
        arp[18..28].copy_from_slice(&asker);
        return Answer::Arp(ETH_HLEN + ARP_LEN);
    }
    let Some((hlen, total)) = icmp_to(frame, Some(cfg.addr)) else {
        return Answer::None;
    };
    if frame[ETH_HLEN + hlen] != ICMP_ECHO_REQUEST {
        return Answer::None;
    }
    let mut peer = [0u8; 6];
    peer.copy_from_slice(&frame[6..12]);
    ethernet(frame, &peer, mac, ETHERTYPE_IPV4);
    let ip = &mut frame[ETH_HLEN..ETH_HLEN + total];
    let mut src = [0u8; 4];
    src.copy_from_slice(&ip[12..16]);
    ip[16..20].copy_from_slice(&src);
    ip[12..16].copy_from_slice(&cfg.addr);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&ip[..hlen]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut ip[hlen..];
    icmp[0] = ICMP_ECHO_REPLY;
    icmp[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Answer::Echo(ETH_HLEN + total)
}

/// `a.b.c.d` into `out`; returns the bytes written.
pub fn fmt_addr(a: [u8; 4], out: &mut [u8; 15]) -> &[u8] {
    let mut n = 0;
    for (i, o) in a.iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        let mut digits = [0u8; 20];
        for &d in crate::parse::fmt_dec(u64::from(*o), &mut digits) {
            out[n] = d;
            n += 1;
        }
    }
    &out[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0b];

    fn cfg(last: u8) -> Config {
        Config {
            addr: [10, 0, 5, last],
            mask: [255, 255, 255, 0],
            gateway: Some([10, 0, 5, 1]),
        }
    }

    #[test]
    fn the_portal_s_ip_parameter_parses() {
        assert_eq!(
            Config::from_ip_param(b"10.0.5.7::10.0.5.1:255.255.255.0::eth0:off"),
            Some(Config {
                addr: [10, 0, 5, 7],
                mask: [255, 255, 255, 0],
                gateway: Some([10, 0, 5, 1]),
            })
        );
        assert_eq!(
            Config::from_ip_param(b"10.0.5.7"),
            Some(Config {
                addr: [10, 0, 5, 7],
                mask: [255, 255, 255, 0],
                gateway: None
            })
        );
        assert_eq!(Config::from_ip_param(b"dhcp"), None);
        assert_eq!(parse_addr(b"10.0.5.256"), None);
        assert_eq!(parse_addr(b"10.0.5"), None);
        assert_eq!(parse_addr(b"10.0.5.1.2"), None);
        assert_eq!(cfg(7).next_hop([10, 0, 5, 9]), Some([10, 0, 5, 9]));
        assert_eq!(cfg(7).next_hop([10, 0, 6, 9]), Some([10, 0, 5, 1]));
    }

    #[test]
    fn arp_is_asked_and_answered() {
        let mut buf = [0u8; MAX_FRAME];
        let n = arp_request(&mut buf, &A, [10, 0, 5, 10], [10, 0, 5, 11]);
        let mut frame = buf[..n].to_vec();
        assert_eq!(answer(&mut frame, &B, &cfg(12)), Answer::None, "not our address");
        assert_eq!(answer(&mut frame, &B, &cfg(11)), Answer::Arp(n));
        assert_eq!(&frame[0..6], &A);
        assert_eq!(arp_reply_from(&frame, [10, 0, 5, 11]), Some(B));
        assert_eq!(arp_reply_from(&frame, [10, 0, 5, 12]), None);
    }

    #[test]
    fn echo_requests_are_answered_and_replies_recognised() {
        let mut buf = [0u8; MAX_FRAME];
        let n = echo_request(&mut buf, (&A, &B), ([10, 0, 5, 10], [10, 0, 5, 11]), (7, 1));
        let ip = &buf[ETH_HLEN..n];
        assert_eq!(checksum(&ip[..IP_HLEN]), 0);
        assert_eq!(checksum(&ip[IP_HLEN..]), 0);
        let mut frame = buf[..n].to_vec();
        assert_eq!(answer(&mut frame, &B, &cfg(12)), Answer::None, "not our address");
        assert_eq!(answer(&mut frame, &B, &cfg(11)), Answer::Echo(n));
        assert!(is_echo_reply(&frame, [10, 0, 5, 11], (7, 1)));
        assert!(!is_echo_reply(&frame, [10, 0, 5, 11], (7, 2)));
        assert!(!is_echo_reply(&frame, [10, 0, 5, 12], (7, 1)));
        assert_eq!(&frame[0..6], &A);
        // A reply is not answered; a corrupted request is not either.
        assert_eq!(answer(&mut frame.clone(), &B, &cfg(10)), Answer::None);
        let mut bad = buf[..n].to_vec();
        bad[n - 1] ^= 1;
        assert_eq!(answer(&mut bad, &B, &cfg(11)), Answer::None);
        assert_eq!(answer(&mut bad[..20].to_vec(), &B, &cfg(11)), Answer::None);
        let mut out = [0u8; 15];
        assert_eq!(fmt_addr([10, 0, 5, 255], &mut out), b"10.0.5.255");
    }
}
