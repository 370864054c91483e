//! virtio-net benchmark with the probe guest echoing (`cargo bench -p vmm --bench net`): frames/s and
//! MiB/s through one card for 64-byte, 1514-byte (MTU 1500) and 64 KiB (65,535-byte) frames, the VMM's
//! CPU time per frame, and the round trip of one small frame; medians of several runs.
//!
//! The host side is an `AF_PACKET` socket on the TAP, in a network namespace the benchmark owns
//! (`common::netns`), keeping a window of frames in flight. 64 KiB frames go two ways: as plain
//! Ethernet frames on a TAP and card with MTU 65521 — the largest a TAP takes (65535 minus its Ethernet
//! header), which makes 65,535 bytes the largest frame an `AF_PACKET` socket may send on it — and as
//! 65,535-byte TCP frames with a GSO header (TSO, MTU 1500, `probe.net=offload`, a `PACKET_VNET_HDR`
//! socket; 65,535 is also the largest GSO frame the kernel passes to a TAP unsegmented). In both the
//! probe posts 65600-byte receive buffers and echoes each frame whole.
//!
//! Two bounds are told apart: the probe's echo loop busy-polls its rings, so its vCPU thread is always
//! fully busy and runs at whatever speed this host executes guest code (thousands of times slower than
//! hardware on emulated KVM hosts) — that bounds frames/s. The card's own thread (`net-<tap>`) is our
//! code: its CPU time per frame, and how busy it is, say what the device costs. CPU times are taken
//! before and after each run: the VMM's utime+stime through its process CPU clock
//! (`clock_getcpuclockid`, the /proc/<pid>/stat figure at nanosecond resolution) and each thread's from
//! /proc/<pid>/task/<tid>/schedstat (time on a CPU and time waiting for one). On a small host the
//! benchmark's own process competes with the vCPU for CPUs; its share is printed too.
#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::frames::{check_echo, frame, seq_of};
use common::gso::{same_offload, tcp4_frame, tcp_seq, VnetHdr, VnetSocket, GSO_MAX_FRAME};
use common::netns::{NetNs, PacketSocket, TestTap};
use common::{SerialClient, TestVm, VmOpts, TIMEOUT};
use serde_json::json;

const RUNS: usize = 5;
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x05, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x05, 0x01];
const RTT_FRAMES: u32 = 200;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU time in ms: the VMM process, its vCPU threads (and how long they waited for a CPU), its network
/// threads, and this benchmark process (the host side: sending, receiving, checking).
#[derive(Clone, Copy, Default)]
struct Cpu {
    process: f64,
    vcpu: f64,
    vcpu_wait: f64,
    net: f64,
    bench: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, b: Cpu) -> Cpu {
        Cpu {
            process: self.process - b.process,
            vcpu: self.vcpu - b.vcpu,
            vcpu_wait: self.vcpu_wait - b.vcpu_wait,
            net: self.net - b.net,
            bench: self.bench - b.bench,
        }
    }
}

/// A CPU-time clock in ms.
fn clock_ms(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// The process's CPU time (utime + stime, what /proc/<pid>/stat shows in clock ticks) with nanosecond
/// resolution: 10 ms ticks are too coarse for the network thread's share of a short run.
fn process_cpu_ms(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes one clockid_t we own.
    assert_eq!(unsafe { libc::clock_getcpuclockid(pid as i32, &mut clock) }, 0);
    clock_ms(clock)
}

fn cpu_of(pid: u32) -> Cpu {
    let mut cpu = Cpu {
        process: process_cpu_ms(pid),
        bench: clock_ms(libc::CLOCK_PROCESS_CPUTIME_ID),
        ..Cpu::default()
    };
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        // schedstat: ns on a CPU, ns waiting on a run queue, time slices.
        let (Ok(comm), Ok(sched)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let f: Vec<f64> = sched
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap() / 1e6)
            .collect();
        if comm.starts_with("vcpu") {
            cpu.vcpu += f[0];
            cpu.vcpu_wait += f[1];
        } else if comm.starts_with("net") {
            cpu.net += f[0];
        }
    }
    cpu
}

/// The largest MTU a TAP accepts (the kernel's 65535 less the Ethernet header).
const TAP_MAX_MTU: u16 = 65_521;
/// The largest frame an AF_PACKET socket sends on it: MTU plus the Ethernet header.
const BIG_FRAME: usize = TAP_MAX_MTU as usize + 14;

/// One frame as the benchmark sends it: with a virtio-net header on the offload socket.
struct Sent {
    hdr: Option<VnetHdr>,
    frame: Vec<u8>,
}

/// The host end: the harness's plain packet socket, or one exchanging virtio-net headers (offloads).
enum HostSocket {
    Plain(PacketSocket),
    Vnet(VnetSocket),
}

/// A probe VM with one card on a TAP of the given MTU; with `offload` the guest negotiates the checksum
/// and TSO offloads (`probe.net=offload`) and the host sends with virtio-net headers.
struct NetVm {
    _ns: NetNs,
    host: HostSocket,
    vm: TestVm,
    serial: SerialClient,
    pid: u32,
}

impl NetVm {
    fn start(name: &'static str, tap: &str, mtu: u16, offload: bool) -> NetVm {
        let mut net = TestTap::new(tap, "10.0.5.1/24", mtu).unwrap();
        let mac = GUEST_MAC.map(|b| format!("{b:02x}")).join(":");
        let vm = TestVm::start(VmOpts {
            disk_mib: None,
            framebuffer: false,
            cmdline: if offload {
                "probe.net=offload".into()
            } else {
                String::new()
            },
            nics: vec![(mac, mtu, net.take_fd().unwrap())],
            ..VmOpts::probe(name)
        });
        let serial = vm.serial();
        serial.wait_for("PROBE-GUEST READY", TIMEOUT);
        let pid = vm.control(json!({"cmd": "status"}))["pid"].as_u64().unwrap() as u32;
        let TestTap { ns, packet, .. } = net;
        // Only one socket on the TAP: a second one would get a copy of every frame.
        let host = if offload {
            drop(packet);
            HostSocket::Vnet(VnetSocket::bind(&ns, tap).unwrap())
        } else {
            HostSocket::Plain(packet)
        };
        NetVm {
            _ns: ns,
            host,
            vm,
            serial,
            pid,
        }
    }

    fn send(&self, s: &Sent) {
        match (&self.host, &s.hdr) {
            (HostSocket::Plain(p), None) => p.send(&s.frame).unwrap(),
            (HostSocket::Vnet(v), Some(h)) => v.send(h, &s.frame).unwrap(),
            _ => panic!("frame and socket disagree about the virtio-net header"),
        }
    }

    /// The next echo, checked against `s`.
    fn recv_echo_of(&self, s: &Sent) {
        let none = || -> ! { panic!("no echo within {TIMEOUT:?}; stderr:\n{}", self.vm.stderr()) };
        let f = match &self.host {
            HostSocket::Plain(p) => p.recv(TIMEOUT).unwrap().unwrap_or_else(|| none()),
            HostSocket::Vnet(v) => {
                let (hdr, f) = v.recv(TIMEOUT).unwrap().unwrap_or_else(|| none());
                let sent = s.hdr.as_ref().unwrap();
                assert!(same_offload(sent, &hdr), "sent with {sent:?}, back with {hdr:?}");
                assert_eq!(tcp_seq(&f), tcp_seq(&s.frame), "echo out of order");
                f
            }
        };
        if s.hdr.is_none() {
            assert_eq!(seq_of(&f), seq_of(&s.frame), "echo out of order");
        }
        check_echo(&s.frame, &f, GUEST_MAC, HOST_MAC).unwrap();
    }

    /// Types `net echo <n>` and waits until the guest has read the whole line (its echo ends with the
    /// line break printed before the command runs), so the command's own serial traffic is not timed.
    /// Returns the mark for the command's answer.
    fn start_echo(&mut self, n: usize) -> usize {
        let mark = self.serial.mark();
        let line = format!("net echo {n}");
        self.serial.send_line(&line);
        let typed = format!("{line}\r\n");
        let deadline = Instant::now() + TIMEOUT;
        while !self.serial.text()[mark..].contains(&typed) {
            assert!(Instant::now() < deadline, "the guest did not read {line:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
        mark
    }

    /// `net echo <n>` with `frames` sent `window` at a time; returns the time from the first send to
    /// the last echo and the VMM's CPU time meanwhile. Every echo is checked.
    fn echo_run(&mut self, frames: &[Sent], window: usize) -> (Duration, Cpu) {
        let mark = self.start_echo(frames.len());
        let before = cpu_of(self.pid);
        let t0 = Instant::now();
        let mut in_flight = VecDeque::new();
        let (mut sent, mut got) = (0, 0);
        while got < frames.len() {
            while sent < frames.len() && in_flight.len() < window {
                self.send(&frames[sent]);
                in_flight.push_back(sent);
                sent += 1;
            }
            let i = in_flight.pop_front().unwrap();
            self.recv_echo_of(&frames[i]);
            got += 1;
        }
        let elapsed = t0.elapsed();
        let after = cpu_of(self.pid);
        let answer = self.serial.result_since(mark, &["OK net echoed", "ERR"], TIMEOUT);
        assert_eq!(answer, format!("OK net echoed {}", frames.len()));
        (elapsed, after - before)
    }

    /// Round trips of single 64-byte frames, one at a time, in µs.
    fn round_trips(&mut self, n: u32) -> Vec<f64> {
        let mark = self.start_echo(n as usize);
        let mut rtts = Vec::new();
        for seq in 0..n {
            let s = Sent {
                hdr: None,
                frame: frame(GUEST_MAC, HOST_MAC, seq, 64),
            };
            let t0 = Instant::now();
            self.send(&s);
            self.recv_echo_of(&s);
            rtts.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        let answer = self.serial.result_since(mark, &["OK net echoed", "ERR"], TIMEOUT);
        assert_eq!(answer, format!("OK net echoed {n}"));
        rtts
    }

    fn stop(mut self) {
        self.vm.control(json!({"cmd": "stop"}));
        self.vm.wait_exit(TIMEOUT);
    }
}

/// The medians of one frame size.
struct Result {
    label: &'static str,
    frames: usize,
    window: usize,
    frames_per_s: f64,
    mib_per_s: f64,
    /// CPU per frame in µs.
    vmm_us: f64,
    vcpu_us: f64,
    net_us: f64,
    /// Shares of the run's wall time, in %.
    vcpu_busy: f64,
    vcpu_waiting: f64,
    net_busy: f64,
    bench_busy: f64,
}

fn measure(nv: &mut NetVm, label: &'static str, len: usize, n: usize, window: usize) -> Result {
    let frames: Vec<Sent> = (0..n as u32)
        .map(|seq| match nv.host {
            HostSocket::Plain(_) => Sent {
                hdr: None,
                frame: frame(GUEST_MAC, HOST_MAC, seq, len),
            },
            HostSocket::Vnet(_) => {
                let (hdr, frame) = tcp4_frame(GUEST_MAC, HOST_MAC, seq, len);
                Sent {
                    hdr: Some(hdr),
                    frame,
                }
            }
        })
        .collect();
    let mut r: [Vec<f64>; 9] = Default::default();
    for _ in 0..RUNS {
        let (t, cpu) = nv.echo_run(&frames, window);
        let ms = t.as_secs_f64() * 1000.0;
        let per_frame = |cpu_ms: f64| cpu_ms * 1000.0 / n as f64;
        let share = |cpu_ms: f64| cpu_ms / ms * 100.0;
        let figures = [
            n as f64 / ms * 1000.0,
            (n * len) as f64 / ms * 1000.0 / 1048576.0,
            per_frame(cpu.process),
            per_frame(cpu.vcpu),
            per_frame(cpu.net),
            share(cpu.vcpu),
            share(cpu.vcpu_wait),
            share(cpu.net),
            share(cpu.bench),
        ];
        for (v, f) in r.iter_mut().zip(figures) {
            v.push(f);
        }
    }
    let [frames_per_s, mib_per_s, vmm_us, vcpu_us, net_us, vcpu_busy, vcpu_waiting, net_busy, bench_busy] =
        r.map(median);
    Result {
        label,
        frames: n,
        window,
        frames_per_s,
        mib_per_s,
        vmm_us,
        vcpu_us,
        net_us,
        vcpu_busy,
        vcpu_waiting,
        net_busy,
        bench_busy,
    }
}

fn main() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP: net bench: /dev/kvm is absent");
        return;
    }
    let mut results = vec![];
    let mut small = NetVm::start("bench-net", "tapbench0", 1500, false);
    results.push(measure(&mut small, "64 B", 64, 5000, 128));
    results.push(measure(&mut small, "1514 B (MTU 1500)", 1514, 5000, 128));
    let rtt = median(small.round_trips(RTT_FRAMES));
    small.stop();
    let mut big = NetVm::start("bench-net-64k", "tapbench1", TAP_MAX_MTU, false);
    results.push(measure(&mut big, "65535 B (MTU 65521)", BIG_FRAME, 1000, 32));
    big.stop();
    let mut tso = NetVm::start("bench-net-tso", "tapbench2", 1500, true);
    results.push(measure(&mut tso, "65535 B TCP, TSO", GSO_MAX_FRAME, 1000, 32));
    tso.stop();

    let emulated = if common::emulated_kvm_host() {
        ", emulated KVM host"
    } else {
        ""
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "virtio-net: the probe guest echoes through one card ({cpus} host CPUs{emulated}); medians of {RUNS} runs"
    );
    println!(
        "  {:<20} {:>9} {:>9} | {:>10} {:>10} {:>10}",
        "frames", "frames/s", "MiB/s", "VMM CPU", "vCPU", "net thread"
    );
    for r in &results {
        println!(
            "  {:<20} {:>9.0} {:>9.2} | {:>7.1} µs {:>7.1} µs {:>7.1} µs   per frame",
            r.label, r.frames_per_s, r.mib_per_s, r.vmm_us, r.vcpu_us, r.net_us
        );
    }
    println!("  share of the run's wall time:");
    for r in &results {
        println!(
            "  {:<20} vCPU on a CPU {:>3.0}%, waiting for one {:>3.0}%; net thread {:>3.0}%; benchmark process {:>3.0}%",
            r.label, r.vcpu_busy, r.vcpu_waiting, r.net_busy, r.bench_busy
        );
    }
    for r in &results {
        println!(
            "  ({}: {} frames per run, {} in flight; MiB/s counts one direction)",
            r.label, r.frames, r.window
        );
    }
    println!("  round trip of one 64-byte frame (median of {RTT_FRAMES}):   {rtt:.0} µs");
    println!("Guest-instruction-bound: frames/s and the round trip. The probe busy-polls, so its vCPU never");
    println!("  idles: it is on a CPU or waiting for one, and its CPU per frame is the echo loop at this");
    println!("  host's guest speed (plus the notify exits).");
    println!("VMM-bound (our code): the net thread's CPU per frame — TAP read and copy into guest memory,");
    println!("  TX writev, ring handling, interrupts. While it is far from 100% busy it is not the limit.");
}
