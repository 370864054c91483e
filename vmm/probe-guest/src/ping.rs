//! `net serve` and `net ping`: the probe as a host on its network, for tests that need VMs to reach
//! each other (or not) through the real VMM, TAP, bridge and firewall. Both loops answer ARP and echo
//! requests for the card's address while they run, as a host's stack would, and both end when serial
//! input arrives: the test decides how long to wait, never this code.

use core::sync::atomic::{AtomicU16, Ordering};

use crate::ipv4::{self, Answer, Config, MAX_FRAME};
use crate::net::{EchoError, Net, Received};
use crate::serial;

/// Idle turns between two looks at the serial port (each look is a VM exit).
const IDLE_TURNS_PER_SERIAL_CHECK: u32 = 4096;
/// Serial checks between two ARP requests while no reply came (ARP may be asked again; echo requests
/// are sent once, so a test can count what arrived).
const CHECKS_PER_ARP_RETRY: u32 = 64;
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
}

impl From<EchoError> for PingError {
    fn from(_: EchoError) -> Self {
        PingError::Device
    }
}

/// Answers for `cfg.addr`, counting into `served`; the reply length if `frame` became one.
fn answer(frame: &mut [u8], mac: &[u8; 6], cfg: &Config, served: &mut Served) -> Option<usize> {
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

/// A received frame's handling: whether the wait is over, and the reply it was rewritten into.
type Step<'a> = &'a mut dyn FnMut(&mut [u8]) -> (bool, Option<usize>);

/// Runs `step` on every received frame until it returns true (`Ok(true)`) or serial input arrives
/// (`Ok(false)`); `on_check` runs at every look at the serial port.
fn until(
    net: &mut Net,
    step: Step<'_>,
    on_check: &mut dyn FnMut(&mut Net) -> bool,
) -> Result<bool, PingError> {
    let mut idle = 0u32;
    loop {
        let mut done = false;
        let got = net.receive(&mut |f| {
            let (d, reply) = step(f);
            done |= d;
            reply
        })?;
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
                if !on_check(net) {
                    return Err(PingError::Device);
                }
            }
            core::hint::spin_loop();
        } else {
            idle = 0;
        }
    }
}

/// Answers ARP and echo requests for `cfg.addr` until serial input arrives.
pub fn serve(net: &mut Net, cfg: &Config) -> Result<Served, PingError> {
    let mac = net.mac();
    let mut served = Served::default();
    until(
        net,
        &mut |f| (false, answer(f, &mac, cfg, &mut served)),
        &mut |_| true,
    )?;
    Ok(served)
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
        &mut |f| match ipv4::arp_reply_from(f, hop) {
            Some(m) => {
                hop_mac = Some(m);
                (true, None)
            }
            None => (false, answer(f, &mac, cfg, &mut served)),
        },
        &mut |net| {
            checks += 1;
            !checks.is_multiple_of(CHECKS_PER_ARP_RETRY) || net.send(&arp[..n])
        },
    )?;
    let Some(hop_mac) = hop_mac.filter(|_| resolved) else {
        return Err(PingError::NoArp(hop));
    };
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
        &mut |f| {
            if ipv4::is_echo_reply(f, dst, (id, seq)) {
                (true, None)
            } else {
                (false, answer(f, &mac, cfg, &mut served))
            }
        },
        &mut |_| true,
    )?;
    if replied {
        Ok(())
    } else {
        Err(PingError::NoReply)
    }
}
