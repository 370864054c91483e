//! `net serve` and `net ping`: the probe as a host on its network, for tests that need VMs to reach
//! each other (or not) through the real VMM, TAP, bridge and firewall. Both loops answer ARP and echo
//! requests for the card's address while they run, as a host's stack would, and both end when serial
//! input arrives: the test decides how long to wait, never this code. `net serve` also answers TCP
//! connections on any port with one line (`tcp::respond`), so port forwards can be checked from outside.

use core::sync::atomic::{AtomicU16, Ordering};

use crate::ipv4::{self, Answer, Config, MAX_FRAME};
use crate::net::{EchoError, Net, Received};
use crate::serial;
use crate::tcp::{self, Answered};

/// Idle turns between two looks at the serial port (each look is a VM exit).
const IDLE_TURNS_PER_SERIAL_CHECK: u32 = 4096;
/// Serial checks between two ARP requests while no reply came (ARP may be asked again; echo requests
/// are sent once, so a test can count what arrived).
pub const CHECKS_PER_ARP_RETRY: u32 = 64;
/// The ICMP identifiers of the probe's echo requests start here; every ping has its own (with its own
/// sequence number), so each is a new flow to conntrack and no ping passes a firewall as the reply-side
/// of an earlier one.
const PING_ID: u16 = 0x7072;

static SEQ: AtomicU16 = AtomicU16::new(1);

/// What `net serve` answered.
#[derive(Default)]
pub struct Served {
    pub echoes: u64,
    pub arps: u64,
    /// TCP connections accepted (SYNs answered; each then gets the reply, as often as the peer's
    /// segments ask for it).
    pub tcp: u64,
    /// TCP segments to the card's address that belong to no connection it answers (a SYN-ACK nobody
    /// asked for, say).
    pub stray: u64,
}

/// How a ping failed.
pub enum PingError {
    /// The destination is off the card's subnet and there is no gateway.
    NoRoute,
    /// Serial input arrived before the next hop answered ARP.
    NoArp([u8; 4]),
    /// Serial input arrived before the echo reply.
    NoReply,
    /// The device failed, or did not take a frame.
    Device,
    /// Retransmissions ran out without an answer (`net get`).
    GaveUp,
}

impl From<EchoError> for PingError {
    fn from(_: EchoError) -> Self {
        PingError::Device
    }
}

/// A frame to send once the received one is handled: a reply that does not fit in the received
/// buffer (which [`Net::receive`] rewrites in place).
pub struct Outbox {
    pub buf: [u8; tcp::MAX_FRAME],
    pub len: usize,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            buf: [0; tcp::MAX_FRAME],
            len: 0,
        }
    }
}

/// Answers for `cfg.addr`, counting into `served`; the reply length if `frame` became one.
pub fn answer(frame: &mut [u8], mac: &[u8; 6], cfg: &Config, served: &mut Served) -> Option<usize> {
    match ipv4::answer(frame, mac, cfg) {
        Answer::None => None,
        Answer::Arp(n) => {
            served.arps += 1;
            Some(n)
        }
        Answer::Echo(n) => {
            served.echoes += 1;
            Some(n)
        }
    }
}

/// A received frame's handling: whether the wait is over, and the reply it was rewritten into (a
/// longer answer goes into the outbox).
pub type Step<'a> = &'a mut dyn FnMut(&mut [u8], &mut Outbox) -> (bool, Option<usize>);

/// Runs `step` on every received frame until it returns true (`Ok(true)`) or serial input arrives
/// (`Ok(false)`); `on_check` runs at every look at the serial port and may end the wait with an error.
pub fn until(
    net: &mut Net,
    step: Step<'_>,
    on_check: &mut dyn FnMut(&mut Net) -> Result<(), PingError>,
) -> Result<bool, PingError> {
    let mut idle = 0u32;
    let mut outbox = Outbox::new();
    loop {
        let mut done = false;
        let got = net.receive(&mut |f| {
            let (d, reply) = step(f, &mut outbox);
            done |= d;
            reply
        })?;
        if outbox.len > 0 {
            let n = core::mem::replace(&mut outbox.len, 0);
            if !net.send(&outbox.buf[..n]) {
                return Err(PingError::Device);
            }
        }
        if done {
            return Ok(true);
        }
        if let Received::Nothing = got {
            idle += 1;
            if idle >= IDLE_TURNS_PER_SERIAL_CHECK {
                idle = 0;
                if serial::try_read().is_some() {
                    return Ok(false);
                }
                on_check(net)?;
            }
            core::hint::spin_loop();
        } else {
            idle = 0;
        }
    }
}

/// Answers ARP and echo requests for `cfg.addr`, and TCP connections to it with `reply`, until serial
/// input arrives.
pub fn serve(net: &mut Net, cfg: &Config, reply: &[u8]) -> Result<Served, PingError> {
    let mac = net.mac();
    let mut served = Served::default();
    until(
        net,
        &mut |f, out| match tcp::respond(f, &mac, cfg.addr, reply, &mut out.buf) {
            Some((what, n)) => {
                match what {
                    Answered::Syn => served.tcp += 1,
                    Answered::Stray => served.stray += 1,
                    Answered::Reply | Answered::Close => {}
                }
                out.len = n;
                (false, None)
            }
            None => (false, answer(f, &mac, cfg, &mut served)),
        },
        &mut |_| Ok(()),
    )?;
    Ok(served)
}

/// Asks who has `hop` (again every [`CHECKS_PER_ARP_RETRY`] serial checks) until the answer or serial
/// input; answers ARP and echo requests for `cfg.addr` meanwhile.
pub fn resolve(net: &mut Net, cfg: &Config, hop: [u8; 4]) -> Result<[u8; 6], PingError> {
    let mac = net.mac();
    let mut served = Served::default();
    let mut arp = [0u8; MAX_FRAME];
    let n = ipv4::arp_request(&mut arp, &mac, cfg.addr, hop);
    if !net.send(&arp[..n]) {
        return Err(PingError::Device);
    }
    let mut hop_mac = None;
    let mut checks = 0u32;
    let resolved = until(
        net,
        &mut |f, _| match ipv4::arp_reply_from(f, hop) {
            Some(m) => {
                hop_mac = Some(m);
                (true, None)
            }
            None => (false, answer(f, &mac, cfg, &mut served)),
        },
        &mut |net| {
            checks += 1;
            if checks.is_multiple_of(CHECKS_PER_ARP_RETRY) && !net.send(&arp[..n]) {
                return Err(PingError::Device);
            }
            Ok(())
        },
    )?;
    hop_mac.filter(|_| resolved).ok_or(PingError::NoArp(hop))
}

/// Sends one echo request to `dst` with source address `src` (the card's own, or another to test
/// anti-spoofing) and waits for the reply; `sent` runs once the request is on its way.
pub fn ping(
    net: &mut Net,
    cfg: &Config,
    dst: [u8; 4],
    src: [u8; 4],
    sent: &mut dyn FnMut(),
) -> Result<(), PingError> {
    let mac = net.mac();
    let hop = cfg.next_hop(dst).ok_or(PingError::NoRoute)?;
    let hop_mac = resolve(net, cfg, hop)?;
    let mut served = Served::default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut req = [0u8; MAX_FRAME];
    let id = PING_ID.wrapping_add(seq);
    let n = ipv4::echo_request(&mut req, (&mac, &hop_mac), (src, dst), (id, seq));
    if !net.send(&req[..n]) {
        return Err(PingError::Device);
    }
    sent();
    let replied = until(
        net,
        &mut |f, _| {
            if ipv4::is_echo_reply(f, dst, (id, seq)) {
                (true, None)
            } else {
                (false, answer(f, &mac, cfg, &mut served))
            }
        },
        &mut |_| Ok(()),
    )?;
    if replied {
        Ok(())
    } else {
        Err(PingError::NoReply)
    }
}
