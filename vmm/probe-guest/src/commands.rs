//! The serial command loop: line editing with echo, and running each line as a [`Command`].
//!
//! Every command prints exactly one result line (`reboot` and `poweroff` print one only if the VMM ignored
//! them).

use crate::block::{Block, ID_BYTES};
use crate::fb::Framebuffer;
use crate::input::InputDevice;
use crate::net::{EchoError, Net};
use crate::netframe;
use crate::parse::HEX;
use crate::request::{self, Command, MAX_RNG};
use crate::rng::Rng;
use crate::serial;
use crate::{apic, cpu, power, xstate};

pub const MAX_INPUTS: usize = 4;
const LINE_MAX: usize = 600;

#[derive(Default)]
pub struct Devices {
    pub block: Option<Block>,
    pub rng: Option<Rng>,
    pub net: Option<Net>,
    /// The card's address (`ip=` on the command line).
    pub ip: Option<crate::ipv4::Config>,
    pub inputs: [Option<InputDevice>; MAX_INPUTS],
}

pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    overflow: bool,
    after_cr: bool,
}

impl LineEditor {
    pub fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: false,
            after_cr: false,
        }
    }

    /// One received byte: echo it, edit the line, run it on CR or LF (CR LF counts once).
    pub fn feed(&mut self, byte: u8, devs: &mut Devices, fb: &mut Option<Framebuffer>) {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\n' && after_cr {
                    return;
                }
                self.after_cr = byte == b'\r';
                serial::puts("\r\n");
                if self.overflow {
                    err("line too long");
                } else if !self.buf[..self.len].iter().all(|&c| c == b' ') {
                    let mut line = [0u8; LINE_MAX];
                    line[..self.len].copy_from_slice(&self.buf[..self.len]);
                    run(&line[..self.len], devs, fb);
                }
                self.len = 0;
                self.overflow = false;
            }
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                serial::write_bytes(b"\x08 \x08");
            }
            b'\t' | 0x20..=0x7e => {
                let c = if byte == b'\t' { b' ' } else { byte };
                serial::write_bytes(&[c]);
                if self.len < LINE_MAX {
                    self.buf[self.len] = c;
                    self.len += 1;
                } else {
                    self.overflow = true;
                }
            }
            _ => {}
        }
    }
}

fn ok() {
    serial::puts("OK\r\n");
}

fn err(what: &str) {
    serial::puts("ERR ");
    serial::puts(what);
    serial::puts("\r\n");
}

fn run(line: &[u8], devs: &mut Devices, fb: &mut Option<Framebuffer>) {
    let cmd = match request::parse(line) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    match cmd {
        Command::Echo(text) => {
            serial::write_bytes(text);
            serial::puts("\r\n");
        }
        Command::Rng(n) => {
            let Some(rng) = devs.rng.as_mut() else {
                return err("no rng device");
            };
            let mut bytes = [0u8; MAX_RNG];
            match rng.fill(&mut bytes[..n]) {
                Ok(()) => {
                    let mut hex = [0u8; 2 * MAX_RNG];
                    for (i, b) in bytes[..n].iter().enumerate() {
                        hex[2 * i] = HEX[(b >> 4) as usize];
                        hex[2 * i + 1] = HEX[(b & 0xf) as usize];
                    }
                    serial::puts("RNG ");
                    serial::write_bytes(&hex[..2 * n]);
                    serial::puts("\r\n");
                }
                Err(e) => err(e.as_str()),
            }
        }
        Command::FbFill { x, y, w, h, rgb } => match fb.as_mut() {
            Some(f) => {
                f.fill(x, y, w, h, rgb);
                ok();
            }
            None => err("no framebuffer"),
        },
        Command::Reboot => {
            power::reboot();
            err("reboot failed");
        }
        Command::Poweroff => {
            power::poweroff();
            err("poweroff failed");
        }
        Command::Ticks => {
            serial::puts("TICKS ");
            serial::put_dec(apic::ticks());
            serial::puts(" irqs ");
            serial::put_dec(crate::ioapic::count());
            serial::puts("\r\n");
        }
        Command::Fault => cpu::raise_invalid_opcode(),
        Command::Panic => panic!("requested by the panic command"),
        Command::TripleFault => cpu::triple_fault(),
        Command::Outs(text) => {
            serial::rep_outs(text);
            serial::puts("\r\nOK outs\r\n");
        }
        Command::Xsave => xstate::run(),
        Command::Int3 => {
            let (after, seen, count) = cpu::breakpoint();
            if after == seen && count == 1 {
                serial::puts("OK int3 rip ");
                serial::put_hex(seen);
                serial::puts("\r\n");
            } else {
                serial::puts("ERR int3 handler saw rip ");
                serial::put_hex(seen);
                serial::puts(" expected ");
                serial::put_hex(after);
                serial::puts(" count ");
                serial::put_dec(count);
                serial::puts("\r\n");
            }
        }
        cmd @ (Command::NetIp | Command::NetServe | Command::NetPing { .. } | Command::NetGet { .. }) => {
            let Some(n) = devs.net.as_mut() else {
                return err("no net device");
            };
            let Some(ip) = devs.ip else {
                return err("no ip= on the command line");
            };
            run_ip(cmd, n, &ip);
        }
        cmd @ (Command::NetMac | Command::NetEcho(_) | Command::NetStats) => {
            let Some(n) = devs.net.as_mut() else {
                return err("no net device");
            };
            run_net(cmd, n);
        }
        blk => {
            let Some(b) = devs.block.as_mut() else {
                return err("no block device");
            };
            run_block(blk, b);
        }
    }
}

fn put_addr(a: [u8; 4]) {
    let mut out = [0u8; 15];
    serial::write_bytes(crate::ipv4::fmt_addr(a, &mut out));
}

fn run_ip(cmd: Command, n: &mut Net, ip: &crate::ipv4::Config) {
    use crate::ping::{self, PingError};
    match cmd {
        Command::NetIp => {
            serial::puts("OK net ip ");
            put_addr(ip.addr);
            serial::puts("\r\n");
        }
        Command::NetServe => {
            serial::puts("NET-SERVING ");
            put_addr(ip.addr);
            serial::puts("\r\n");
            // What a TCP connection to any port gets: an HTTP/1.0 answer naming the probe.
            let mut reply = [0u8; 64];
            let mut addr = [0u8; 15];
            let mut len = 0;
            for part in [
                b"HTTP/1.0 200 OK\r\n\r\nprobe ".as_slice(),
                crate::ipv4::fmt_addr(ip.addr, &mut addr),
                b"\n",
            ] {
                reply[len..len + part.len()].copy_from_slice(part);
                len += part.len();
            }
            match ping::serve(n, ip, &reply[..len]) {
                Ok(served) => {
                    serial::puts("OK net served ");
                    serial::put_dec(served.echoes);
                    serial::puts(" echo ");
                    serial::put_dec(served.arps);
                    serial::puts(" arp ");
                    serial::put_dec(served.tcp);
                    serial::puts(" tcp ");
                    serial::put_dec(served.stray);
                    serial::puts(" stray\r\n");
                }
                Err(_) => err("net device failed"),
            }
        }
        Command::NetPing { dst, src } => {
            let mut sent = || {
                serial::puts("NET-PING-SENT ");
                put_addr(dst);
                serial::puts("\r\n");
            };
            match ping::ping(n, ip, dst, src.unwrap_or(ip.addr), &mut sent) {
                Ok(()) => {
                    serial::puts("OK net ping reply from ");
                    put_addr(dst);
                    serial::puts("\r\n");
                }
                Err(PingError::NoRoute) => err("net ping: no route (no gateway)"),
                Err(PingError::NoArp(hop)) => {
                    serial::puts("ERR net ping: no arp reply from ");
                    put_addr(hop);
                    serial::puts("\r\n");
                }
                Err(PingError::NoReply) => {
                    serial::puts("ERR net ping: no reply from ");
                    put_addr(dst);
                    serial::puts("\r\n");
                }
                Err(PingError::Device) => err("net device failed"),
                Err(PingError::GaveUp) => err("net ping: gave up"),
            }
        }
        Command::NetGet { dst, port, path, src } => run_get(n, ip, (dst, port), path, src.unwrap_or(ip.addr)),
        _ => {}
    }
}

/// `net get`: `NET-GET-SENT <dst>` once the SYN is out, then `OK net get <status> <body bytes>`, the body
/// (line ends as CR LF, other control bytes as `.`) and `NET-GET-END`; or one `ERR net get: ...` line.
fn run_get(n: &mut Net, ip: &crate::ipv4::Config, to: ([u8; 4], u16), path: &[u8], src: [u8; 4]) {
    use crate::get::{self, GetError};
    use crate::ping::PingError;
    let mut sent = || {
        serial::puts("NET-GET-SENT ");
        put_addr(to.0);
        serial::puts("\r\n");
    };
    let response = match get::get(n, ip, to, path, src, &mut sent) {
        Ok(r) => r,
        Err(e) => {
            serial::puts("ERR net get: ");
            match e {
                GetError::Ping(PingError::NoRoute) => serial::puts("no route (no gateway)"),
                GetError::Ping(PingError::NoArp(hop)) => {
                    serial::puts("no arp reply from ");
                    put_addr(hop);
                }
                GetError::Ping(_) => serial::puts("net device failed"),
                GetError::BadPath => serial::puts("bad path"),
                GetError::NoAnswer => {
                    serial::puts("no answer from ");
                    put_addr(to.0);
                }
                GetError::Reset => {
                    serial::puts("reset by ");
                    put_addr(to.0);
                }
            }
            serial::puts("\r\n");
            return;
        }
    };
    let raw = &response.raw[..response.kept];
    let Some((status, body)) = crate::http::response(raw) else {
        serial::puts("ERR net get: not HTTP (");
        serial::put_dec(response.total as u64);
        serial::puts(" bytes)\r\n");
        return;
    };
    serial::puts("OK net get ");
    serial::put_dec(u64::from(status));
    serial::puts(" ");
    serial::put_dec((response.total - (raw.len() - body.len())) as u64);
    serial::puts("\r\n");
    for &c in body {
        match c {
            b'\n' => serial::puts("\r\n"),
            b'\r' => {}
            0x20..=0x7e => serial::write_bytes(&[c]),
            _ => serial::write_bytes(b"."),
        }
    }
    if body.last().is_some_and(|&c| c != b'\n') {
        serial::puts("\r\n");
    }
    serial::puts("NET-GET-END\r\n");
}

fn run_net(cmd: Command, n: &mut Net) {
    match cmd {
        Command::NetMac => {
            serial::puts("MAC ");
            serial::write_bytes(&netframe::fmt_mac(&n.mac()));
            serial::puts("\r\n");
        }
        Command::NetEcho(count) => match n.echo(count) {
            Ok(done) => {
                serial::puts("OK net echoed ");
                serial::put_dec(done);
                serial::puts("\r\n");
            }
            Err((e, done)) => {
                serial::puts(match e {
                    EchoError::Interrupted => "ERR net echo interrupted after ",
                    EchoError::Device => "ERR device failed after ",
                });
                serial::put_dec(done);
                serial::puts("\r\n");
            }
        },
        Command::NetStats => {
            let s = n.stats();
            serial::puts("NET-STATS rx ");
            serial::put_dec(s.rx_frames);
            serial::puts(" ");
            serial::put_dec(s.rx_bytes);
            serial::puts(" tx ");
            serial::put_dec(s.tx_frames);
            serial::puts(" ");
            serial::put_dec(s.tx_bytes);
            serial::puts(" bad ");
            serial::put_dec(s.bad);
            serial::puts("\r\n");
        }
        _ => err("unknown command"),
    }
}

fn run_block(cmd: Command, b: &mut Block) {
    match cmd {
        Command::BlkWrite { sector, text } => match b.write(sector, text) {
            Ok(()) => ok(),
            Err(e) => err(e.as_str()),
        },
        Command::BlkRead(sector) => match b.read(sector) {
            Ok(data) => {
                let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                serial::puts("DATA ");
                for &c in &data[..end] {
                    // Binary sector contents must not garble the line protocol.
                    serial::write_bytes(&[if (0x20..0x7f).contains(&c) { c } else { b'.' }]);
                }
                serial::puts("\r\n");
            }
            Err(e) => err(e.as_str()),
        },
        Command::BlkFlush => match b.flush() {
            Ok(()) => ok(),
            Err(e) => err(e.as_str()),
        },
        Command::BlkId => match b.id() {
            Ok(id) => {
                let end = id.iter().position(|&c| c == 0).unwrap_or(ID_BYTES);
                serial::puts("ID ");
                for &c in &id[..end] {
                    serial::write_bytes(&[if (0x20..0x7f).contains(&c) { c } else { b'.' }]);
                }
                serial::puts("\r\n");
            }
            Err(e) => err(e.as_str()),
        },
        Command::BlkSize => {
            serial::puts("SECTORS ");
            serial::put_dec(b.capacity());
            serial::puts("\r\n");
        }
        _ => err("unknown command"),
    }
}
