//! Proxy throughput: one synthetic RFB source (a unix socket streaming update-sized chunks) read by a
//! WebSocket client through our proxy (`server::console::proxy`) and through `websockify` (the proxy
//! OpenStack uses; `~/.cache/cloud-portal/websockify-venv`, see scripts/install-deps.sh), in one run.
//!
//! Both proxies run as their own processes (ours: this binary re-executed with `CONSOLE_BENCH_PROXY`), so
//! each one's CPU time can be read from /proc — websockify forks a process per connection, so its whole
//! process tree is counted. The source and the client live in this process and are the same for both.
//! Two figures per proxy: wall-clock MiB/s (bounded by whichever of source, proxy and client is slowest
//! on this 2-core machine) and MiB per CPU-second of the proxy itself — what bounds how many busy consoles
//! one host serves.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use fastwebsockets::{OpCode, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use server::console::proxy;

use super::median;

/// Bytes streamed per run, and runs per proxy.
const STREAM_BYTES: usize = 256 * 1024 * 1024;
const RUNS: usize = 5;
/// Set in the re-executed bench binary: serve our proxy for this unix socket.
pub const PROXY_ENV: &str = "CONSOLE_BENCH_PROXY";
/// Set in the re-executed bench binary: serve the bare relay (the floor) for this unix socket.
pub const FLOOR_ENV: &str = "CONSOLE_BENCH_FLOOR";
/// Set in the re-executed bench binary: serve the zero-copy relay (splice) for this unix socket.
pub const SPLICE_ENV: &str = "CONSOLE_BENCH_SPLICE";

/// Serves every connection on `path` with `STREAM_BYTES` of update-like data in `chunk`-byte writes (a
/// large update, or one glyph-sized update each), then closes.
fn synthetic_source(path: &Path, chunk: usize) -> Result<()> {
    let listener = UnixListener::bind(path)?;
    tokio::spawn(async move {
        let chunk: Vec<u8> = (0..chunk).map(|i| (i * 31 % 251) as u8).collect();
        while let Ok((mut s, _)) = listener.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < STREAM_BYTES {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += chunk.len();
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(())
}

/// The re-executed binary: our proxy alone (no token or VM) on a free port for the unix socket `socket`;
/// prints its URL and serves until killed. Same upgrade and `proxy::run` as `/console/{vm}/ws`.
pub fn serve_our_proxy(socket: PathBuf) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let app = axum::Router::new().route(
            "/ws",
            get(move |mut req: Request| {
                let socket = socket.clone();
                async move {
                    let Ok((response, upgraded)) = fastwebsockets::upgrade::upgrade(&mut req) else {
                        return http::StatusCode::BAD_REQUEST.into_response();
                    };
                    tokio::spawn(async move {
                        let (Ok(ws), Ok(vmm)) = (upgraded.await, UnixStream::connect(&socket).await) else {
                            return;
                        };
                        let (_tx, rx) = tokio::sync::broadcast::channel(1);
                        proxy::run(ws, vmm, "bench", rx, proxy::Limits::default()).await;
                    });
                    response.map(axum::body::Body::new).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("ws://{}/ws", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// A proxy process and the URL it serves.
struct Proxy {
    child: Child,
    url: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ours(socket: &Path) -> Result<Proxy> {
    reexec(socket, PROXY_ENV)
}

fn floor(socket: &Path) -> Result<Proxy> {
    reexec(socket, FLOOR_ENV)
}

fn zero_copy(socket: &Path) -> Result<Proxy> {
    reexec(socket, SPLICE_ENV)
}

/// This bench binary again, serving `socket` in the mode `env` names; its first line is its URL.
fn reexec(socket: &Path, env: &str) -> Result<Proxy> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(env, socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("proxy stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line.trim().to_string();
    if !url.starts_with("ws://") {
        bail!("{env} did not start: {line:?}");
    }
    Ok(Proxy { child, url })
}

fn websockify(socket: &Path) -> Result<Proxy> {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let bin = home.join(".cache/cloud-portal/websockify-venv/bin/websockify");
    if !bin.exists() {
        bail!(
            "{} is missing (scripts/install-deps.sh installs it)",
            bin.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("--unix-target={}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proxy = Proxy {
        child,
        url: format!("ws://127.0.0.1:{port}/"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("websockify did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(proxy)
}

/// One process's /proc/<pid>/stat: (parent pid, CPU ticks of itself and of its reaped children).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ppid = u32::try_from(num(1)?).ok()?;
    // utime, stime, cutime, cstime: fields 14–17 of proc(5), 11–14 here.
    Some((ppid, num(11)? + num(12)? + num(13)? + num(14)?))
}

/// CPU time of the process tree under `root` (live members, zombies, and children already reaped), and
/// how many processes it has.
fn tree_cpu(root: u32) -> (Duration, usize) {
    let mut all = vec![];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, ticks)) = stat(pid) {
                all.push((pid, ppid, ticks));
            }
        }
    }
    let mut members = vec![root];
    let mut i = 0;
    while let Some(&pid) = members.get(i) {
        members.extend(all.iter().filter(|p| p.1 == pid).map(|p| p.0));
        i += 1;
    }
    let ticks: u64 = all.iter().filter(|p| members.contains(&p.0)).map(|p| p.2).sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (Duration::from_micros(ticks * 1_000_000 / hz), members.len())
}

/// A minimal WebSocket client: the handshake by hand (byte by byte, so no frame is read past), then
/// fastwebsockets, which reads frames without copying their payloads.
async fn connect(url: &str) -> Result<WebSocket<TcpStream>> {
    let rest = url.strip_prefix("ws://").context("ws:// URL")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut tcp = TcpStream::connect(host).await?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut head = vec![];
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await?);
        if head.len() > 4096 {
            bail!("handshake answer too long");
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("handshake refused: {}", String::from_utf8_lossy(&head));
    }
    Ok(WebSocket::after_handshake(tcp, Role::Client))
}

/// One full stream through `proxy`: (wall-clock MiB/s, MiB per CPU-second of the proxy's processes).
async fn stream_rate(proxy: &Proxy) -> Result<(f64, f64)> {
    let pid = proxy.child.id();
    let (cpu_before, procs_before) = tree_cpu(pid);
    let mut ws = connect(&proxy.url).await?;
    let start = Instant::now();
    let mut got = 0usize;
    while got < STREAM_BYTES {
        let frame = tokio::time::timeout(Duration::from_secs(60), ws.read_frame()).await??;
        match frame.opcode {
            OpCode::Binary | OpCode::Continuation => got += frame.payload.len(),
            OpCode::Close => break,
            _ => {}
        }
    }
    let wall = start.elapsed();
    if got < STREAM_BYTES {
        bail!("stream ended after {got} bytes");
    }
    drop(ws);
    // Let a per-connection process (websockify) exit and be reaped, so its time is in its parent's.
    let settle = Instant::now() + Duration::from_secs(5);
    let mut after = tree_cpu(pid);
    while after.1 > procs_before && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = tree_cpu(pid);
    }
    let mib = got as f64 / (1024.0 * 1024.0);
    let cpu = after.0.saturating_sub(cpu_before).as_secs_f64().max(0.001);
    Ok((mib / wall.as_secs_f64(), mib / cpu))
}

/// Streams `RUNS` times through each proxy, alternating, and prints medians and ratios.
pub async fn run(chunk: usize) -> Result<()> {
    println!(
        "-- synthetic RFB stream in {chunk}-byte writes ({RUNS} x {} MiB per proxy)",
        STREAM_BYTES >> 20
    );
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("rfb.sock");
    synthetic_source(&socket, chunk)?;
    let ours = ours(&socket)?;
    let floor = floor(&socket)?;
    let zero_copy = zero_copy(&socket)?;
    let theirs = websockify(&socket);
    let (mut our_runs, mut floor_runs, mut zc_runs, mut their_runs) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        our_runs.push(stream_rate(&ours).await?);
        floor_runs.push(stream_rate(&floor).await?);
        zc_runs.push(stream_rate(&zero_copy).await?);
        if let Ok(theirs) = &theirs {
            their_runs.push(stream_rate(theirs).await?);
        }
    }
    let (our_wall, our_cpu) = medians(&our_runs);
    let (floor_wall, floor_cpu) = medians(&floor_runs);
    let (zc_wall, zc_cpu) = medians(&zc_runs);
    println!("ours:       {our_wall:>8.1} MiB/s wall clock, {our_cpu:>8.1} MiB per proxy CPU-second");
    println!("bare relay: {floor_wall:>8.1} MiB/s wall clock, {floor_cpu:>8.1} MiB per proxy CPU-second (the floor)");
    println!("splice:     {zc_wall:>8.1} MiB/s wall clock, {zc_cpu:>8.1} MiB per proxy CPU-second (zero-copy floor)");
    match theirs {
        Ok(_) => {
            let (their_wall, their_cpu) = medians(&their_runs);
            println!(
                "websockify: {their_wall:>8.1} MiB/s wall clock, {their_cpu:>8.1} MiB per proxy CPU-second"
            );
            println!(
                "proxy throughput ratio: {:.1}x per CPU-second (goal >= 5x), {:.1}x wall clock; \
                 the bare relay's: {:.1}x, splice's: {:.1}x per CPU-second",
                our_cpu / their_cpu,
                our_wall / their_wall,
                floor_cpu / their_cpu,
                zc_cpu / their_cpu
            );
        }
        Err(e) => println!("!!!!!!!! SKIP websockify comparison: {e:#} !!!!!!!!"),
    }
    Ok(())
}

fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

// -------------------------------------------------------------------------------------------------------
// Paced like RFB: the client asks (FramebufferUpdateRequest), the server answers with one update.

/// How long each paced run lasts.
const PACED_RUN: Duration = Duration::from_secs(2);

/// Serves every connection on `path` as an RFB server would once set up: each 10-byte
/// FramebufferUpdateRequest is answered with one FramebufferUpdate of `update` bytes (one rectangle).
fn paced_source(path: &Path, update: usize) -> Result<()> {
    let listener = UnixListener::bind(path)?;
    let mut msg = vec![0u8, 0, 0, 1];
    // One rectangle header (x, y, w, h, encoding 16 = ZRLE) and its length-prefixed data.
    msg.extend_from_slice(&[0, 0, 0, 0, 4, 0, 3, 0, 0, 0, 0, 16]);
    let data = update.saturating_sub(msg.len() + 4);
    msg.extend_from_slice(&u32::try_from(data)?.to_be_bytes());
    msg.extend((0..data).map(|i| (i * 31 % 251) as u8));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let msg = msg.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let mut req = [0u8; 10];
                while r.read_exact(&mut req).await.is_ok() {
                    if w.write_all(&msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

/// Requests and reads updates of `update` bytes through `proxy` for `PACED_RUN`: (updates/s, MiB/s).
async fn paced_rate(proxy: &Proxy, update: usize) -> Result<(f64, f64)> {
    let mut ws = connect(&proxy.url).await?;
    let request = [3u8, 1, 0, 0, 0, 0, 4, 0, 3, 0];
    let start = Instant::now();
    let mut updates = 0u64;
    while start.elapsed() < PACED_RUN {
        ws.write_frame(fastwebsockets::Frame::binary(fastwebsockets::Payload::Borrowed(
            &request,
        )))
        .await?;
        let mut got = 0;
        while got < update {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.read_frame()).await??;
            match frame.opcode {
                OpCode::Binary | OpCode::Continuation => got += frame.payload.len(),
                OpCode::Close => bail!("closed after {updates} updates"),
                _ => {}
            }
        }
        updates += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        updates as f64 / secs,
        updates as f64 * update as f64 / (1024.0 * 1024.0) / secs,
    ))
}

/// Paced RFB updates of `update` bytes through each proxy, alternating; prints medians and the ratio.
pub async fn paced(update: usize) -> Result<()> {
    println!(
        "-- RFB updates of {update} bytes, each requested by the client ({RUNS} x {}s per proxy)",
        PACED_RUN.as_secs()
    );
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("rfb.sock");
    paced_source(&socket, update)?;
    let ours = ours(&socket)?;
    let theirs = websockify(&socket);
    let (mut our_runs, mut their_runs) = (vec![], vec![]);
    for _ in 0..RUNS {
        our_runs.push(paced_rate(&ours, update).await?);
        if let Ok(theirs) = &theirs {
            their_runs.push(paced_rate(theirs, update).await?);
        }
    }
    let (our_ups, our_mib) = medians(&our_runs);
    println!("ours:       {our_ups:>8.0} updates/s, {our_mib:>8.1} MiB/s");
    match theirs {
        Ok(_) => {
            let (their_ups, their_mib) = medians(&their_runs);
            println!("websockify: {their_ups:>8.0} updates/s, {their_mib:>8.1} MiB/s");
            println!("proxy throughput ratio: {:.1}x", our_mib / their_mib);
        }
        Err(e) => println!("!!!!!!!! SKIP websockify comparison: {e:#} !!!!!!!!"),
    }
    Ok(())
}
