//! The serial command language: parsing a line into a [`Command`] (execution is in commands.rs).

use crate::parse::{next_word, parse_rgb, parse_u64, trim_end};

/// Longest `blk-write` text (one sector).
pub const MAX_TEXT: usize = 512;
/// Most bytes `rng` returns.
pub const MAX_RNG: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Echo(&'a [u8]),
    BlkWrite {
        sector: u64,
        text: &'a [u8],
    },
    BlkRead(u64),
    BlkFlush,
    BlkId,
    BlkSize,
    Rng(usize),
    FbFill {
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        rgb: u32,
    },
    Reboot,
    Poweroff,
    /// Diagnostics beyond the protocol: idle-timer ticks so far.
    Ticks,
    /// Test hooks beyond the protocol: a CPU exception (`fault`), a Rust panic (`panic`) and a triple
    /// fault (`triple-fault`), to exercise how the VMM reports a crashing guest.
    Fault,
    Panic,
    TripleFault,
    /// `int3` with a #BP handler that returns: reports where the handler saw the trap, which must be
    /// the instruction after the `int3` (software emulators of x86 may not execute it; the VMM injects
    /// #BP then).
    Int3,
    /// `outs <text>`: the text sent to COM1 with one `rep outsb` (string port I/O: one exit for all
    /// bytes), then a normal result line.
    Outs(&'a [u8]),
    /// `net mac`: the NIC's MAC address.
    NetMac,
    /// `net echo <count>`: receive `count` frames and send each back with the Ethernet addresses
    /// swapped (source := own MAC), in order.
    NetEcho(u64),
    /// `net stats`: the driver's frame and byte counters.
    NetStats,
    /// `net ip`: the card's address from the command line's `ip=`.
    NetIp,
    /// `net serve`: answer ARP and echo requests for the card's address until serial input arrives,
    /// then say how many were answered.
    NetServe,
    /// `net ping <dst> [from <src>]`: one echo request to `dst` (from the card's address, or `src`), and
    /// wait for the reply until it comes or serial input arrives.
    NetPing {
        dst: [u8; 4],
        src: Option<[u8; 4]>,
    },
    /// `net get <a.b.c.d> <port> <path> [from <a.b.c.d>]`: one HTTP/1.0 GET over TCP (from the card's
    /// address, or `src`), printing the status and body; waits until the answer, a failure or serial
    /// input.
    NetGet {
        dst: [u8; 4],
        port: u16,
        path: &'a [u8],
        src: Option<[u8; 4]>,
    },
    /// `xsave`: XSETBV/XGETBV and XRSTOR/XSAVE/XSAVEOPT/XSAVEC round trips of AVX and AVX-512 state,
    /// and the faults they raise (software emulators behind /dev/kvm may not execute them; the VMM
    /// completes them then). See xstate.rs.
    Xsave,
}

/// Parses one line (without its line ending). `Err` is the message printed after `ERR `.
pub fn parse(line: &[u8]) -> Result<Command<'_>, &'static str> {
    let (verb, rest) = next_word(line);
    let args = trim_end(rest);
    let no_args = |cmd: Command<'static>| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err("unexpected argument")
        }
    };
    match verb {
        b"echo" => Ok(Command::Echo(rest)),
        b"blk-write" => {
            let (sector, text) = next_word(rest);
            let sector = parse_u64(sector).ok_or("usage: blk-write <sector> <text>")?;
            if text.len() > MAX_TEXT {
                return Err("text longer than one sector");
            }
            Ok(Command::BlkWrite { sector, text })
        }
        b"blk-read" => Ok(Command::BlkRead(
            one_number(args).ok_or("usage: blk-read <sector>")?,
        )),
        b"blk-flush" => no_args(Command::BlkFlush),
        b"blk-id" => no_args(Command::BlkId),
        b"blk-size" => no_args(Command::BlkSize),
        b"rng" => match one_number(args) {
            Some(n) if (1..=MAX_RNG as u64).contains(&n) => Ok(Command::Rng(n as usize)),
            _ => Err("usage: rng <n> (1..64)"),
        },
        b"fb-fill" => parse_fill(args).ok_or("usage: fb-fill <x> <y> <w> <h> <rrggbb>"),
        b"reboot" => no_args(Command::Reboot),
        b"poweroff" => no_args(Command::Poweroff),
        b"ticks" => no_args(Command::Ticks),
        b"fault" => no_args(Command::Fault),
        b"panic" => no_args(Command::Panic),
        b"triple-fault" => no_args(Command::TripleFault),
        b"int3" => no_args(Command::Int3),
        b"outs" => Ok(Command::Outs(rest)),
        b"xsave" => no_args(Command::Xsave),
        b"net" => parse_net(args),
        _ => Err("unknown command"),
    }
}

/// Most frames one `net echo` handles (the count is printed back, and a test never needs more).
pub const MAX_ECHO: u64 = u32::MAX as u64;

const NET_USAGE: &str = "usage: net mac | net echo <count> | net stats | net ip | net serve \
     | net ping <a.b.c.d> [from <a.b.c.d>] | net get <a.b.c.d> <port> <path> [from <a.b.c.d>]";

/// `[from <a.b.c.d>]` at the end of a `net` command.
fn parse_from(rest: &[u8]) -> Result<Option<[u8; 4]>, &'static str> {
    match next_word(rest) {
        ([], []) => Ok(None),
        (b"from", src) => Ok(Some(crate::ipv4::parse_addr(trim_end(src)).ok_or(NET_USAGE)?)),
        _ => Err(NET_USAGE),
    }
}

fn parse_net(args: &[u8]) -> Result<Command<'_>, &'static str> {
    const USAGE: &str = NET_USAGE;
    let (sub, rest) = next_word(args);
    match (sub, rest) {
        (b"mac", []) => Ok(Command::NetMac),
        (b"stats", []) => Ok(Command::NetStats),
        (b"ip", []) => Ok(Command::NetIp),
        (b"serve", []) => Ok(Command::NetServe),
        (b"ping", rest) => {
            let (dst, rest) = next_word(rest);
            let dst = crate::ipv4::parse_addr(dst).ok_or(USAGE)?;
            let src = parse_from(rest)?;
            Ok(Command::NetPing { dst, src })
        }
        (b"get", rest) => {
            let (dst, rest) = next_word(rest);
            let dst = crate::ipv4::parse_addr(dst).ok_or(USAGE)?;
            let (port, rest) = next_word(rest);
            let port = parse_u64(port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
                .ok_or(USAGE)?;
            let (path, rest) = next_word(rest);
            if path.first() != Some(&b'/') || path.len() > crate::http::MAX_PATH {
                return Err(USAGE);
            }
            let src = parse_from(rest)?;
            Ok(Command::NetGet { dst, port, path, src })
        }
        (b"echo", n) => match one_number(n) {
            Some(n) if n <= MAX_ECHO => Ok(Command::NetEcho(n)),
            _ => Err(USAGE),
        },
        _ => Err(USAGE),
    }
}

fn one_number(args: &[u8]) -> Option<u64> {
    let (n, rest) = next_word(args);
    if rest.is_empty() {
        parse_u64(n)
    } else {
        None
    }
}

fn parse_fill(args: &[u8]) -> Option<Command<'static>> {
    let mut rest = args;
    let mut dims = [0u32; 4];
    for d in dims.iter_mut() {
        let (word, tail) = next_word(rest);
        *d = u32::try_from(parse_u64(word)?).ok()?;
        rest = tail;
    }
    let (colour, tail) = next_word(rest);
    if !tail.is_empty() {
        return None;
    }
    let rgb = parse_rgb(colour)?;
    let [x, y, w, h] = dims;
    Some(Command::FbFill { x, y, w, h, rgb })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_of_the_protocol() {
        assert_eq!(parse(b"echo hello  world"), Ok(Command::Echo(b"hello  world")));
        assert_eq!(
            parse(b"blk-write 7 some text"),
            Ok(Command::BlkWrite {
                sector: 7,
                text: b"some text"
            })
        );
        assert_eq!(parse(b"blk-read 0x10"), Ok(Command::BlkRead(16)));
        assert_eq!(parse(b"blk-flush"), Ok(Command::BlkFlush));
        assert_eq!(parse(b"blk-id"), Ok(Command::BlkId));
        assert_eq!(parse(b"blk-size "), Ok(Command::BlkSize));
        assert_eq!(parse(b"rng 16"), Ok(Command::Rng(16)));
        assert_eq!(
            parse(b"fb-fill 10 20 30 40 ff0080"),
            Ok(Command::FbFill {
                x: 10,
                y: 20,
                w: 30,
                h: 40,
                rgb: 0xff0080
            })
        );
        assert_eq!(parse(b"reboot"), Ok(Command::Reboot));
        assert_eq!(parse(b"poweroff"), Ok(Command::Poweroff));
        assert_eq!(parse(b"int3"), Ok(Command::Int3));
        assert_eq!(parse(b"outs a b"), Ok(Command::Outs(b"a b")));
        assert_eq!(parse(b"xsave"), Ok(Command::Xsave));
        assert_eq!(parse(b"xsave now"), Err("unexpected argument"));
        assert_eq!(parse(b"net mac"), Ok(Command::NetMac));
        assert_eq!(parse(b"net echo 10000"), Ok(Command::NetEcho(10000)));
        assert_eq!(parse(b"net echo 0"), Ok(Command::NetEcho(0)));
        assert_eq!(parse(b"net stats "), Ok(Command::NetStats));
    }

    #[test]
    fn net_commands_want_their_arguments() {
        let usage = Err(NET_USAGE);
        assert_eq!(parse(b"net ip"), Ok(Command::NetIp));
        assert_eq!(parse(b"net serve"), Ok(Command::NetServe));
        assert_eq!(
            parse(b"net ping 10.0.5.2"),
            Ok(Command::NetPing {
                dst: [10, 0, 5, 2],
                src: None
            })
        );
        assert_eq!(
            parse(b"net ping 10.0.5.2 from 10.0.5.9"),
            Ok(Command::NetPing {
                dst: [10, 0, 5, 2],
                src: Some([10, 0, 5, 9])
            })
        );
        assert_eq!(
            parse(b"net get 169.254.169.254 80 /latest/meta-data/instance-id"),
            Ok(Command::NetGet {
                dst: [169, 254, 169, 254],
                port: 80,
                path: b"/latest/meta-data/instance-id",
                src: None
            })
        );
        assert_eq!(
            parse(b"net get 10.0.5.2 8080 / from 10.0.5.9 "),
            Ok(Command::NetGet {
                dst: [10, 0, 5, 2],
                port: 8080,
                path: b"/",
                src: Some([10, 0, 5, 9])
            })
        );
        assert_eq!(parse(b"net get 10.0.5.2 80"), usage);
        assert_eq!(parse(b"net get 10.0.5.2 0 /"), usage);
        assert_eq!(parse(b"net get 10.0.5.2 65536 /"), usage);
        assert_eq!(parse(b"net get 10.0.5.2 80 latest"), usage);
        assert_eq!(parse(b"net get 10.0.5.2 80 / to 10.0.5.9"), usage);
        assert_eq!(parse(b"net ping 10.0.5"), usage);
        assert_eq!(parse(b"net ping 10.0.5.2 to 10.0.5.9"), usage);
        assert_eq!(parse(b"net"), usage);
        assert_eq!(parse(b"net echo"), usage);
        assert_eq!(parse(b"net echo x"), usage);
        assert_eq!(parse(b"net echo 1 2"), usage);
        assert_eq!(parse(b"net echo 4294967296"), usage);
        assert_eq!(parse(b"net mac now"), usage);
        assert_eq!(parse(b"net frob"), usage);
    }

    #[test]
    fn bad_input_gets_an_error_message() {
        assert_eq!(parse(b"frobnicate"), Err("unknown command"));
        assert_eq!(parse(b"rng 65"), Err("usage: rng <n> (1..64)"));
        assert_eq!(parse(b"rng 0"), Err("usage: rng <n> (1..64)"));
        assert!(parse(b"blk-read").is_err());
        assert!(parse(b"blk-read 1 2").is_err());
        assert!(parse(b"blk-write x text").is_err());
        assert!(parse(b"fb-fill 1 2 3 4").is_err());
        assert!(parse(b"fb-fill 1 2 3 4 12345g").is_err());
        assert!(parse(b"poweroff now").is_err());
        let long = [b'a'; 600];
        let mut line = b"blk-write 1 ".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(parse(&line), Err("text longer than one sector"));
    }

    #[test]
    fn blk_write_with_empty_text_writes_zeros() {
        assert_eq!(
            parse(b"blk-write 3"),
            Ok(Command::BlkWrite { sector: 3, text: b"" })
        );
    }
}
