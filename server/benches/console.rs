//! `cargo bench -p server --bench console`: the console path's figures (issue 4, item 7), as medians.
//!
//! 1. Proxy throughput (`console/throughput.rs`): the same synthetic RFB stream through our proxy and
//!    through `websockify`, in one run — streamed in bulk (wall-clock MiB/s and MiB per proxy CPU-second,
//!    next to two floors: a bare blocking relay and a zero-copy `splice` relay) and paced as RFB is, one
//!    update per client request (updates/s) — and the ratios.
//! 2. On a real probe-guest VM through the portal (console token, `/console/{vm}/ws`): bytes received
//!    over 10 s of an idle screen after the first frame, and bytes and milliseconds from one key event to
//!    the framebuffer update that draws its glyph. Needs /dev/kvm, the `vmm` binary and the probe image;
//!    skipped loudly otherwise.
#![allow(clippy::unwrap_used)]

#[path = "console/floor.rs"]
mod floor;
#[path = "console/throughput.rs"]
mod throughput;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use server::config::Settings;
use server::startup::Application;
use vmm_api::run_dir::RunDir;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const IDLE: Duration = Duration::from_secs(10);
const KEY_SAMPLES: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn connect(url: &str) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "binary".parse()?);
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

// ---------------------------------------------------------------------------------------------------------
// 2. A real probe VM through the portal.

struct Rfb {
    ws: Ws,
    buf: Vec<u8>,
    received: u64,
    bpp: usize,
    size: (u16, u16),
}

impl Rfb {
    async fn fill(&mut self, deadline: Instant) -> Result<bool> {
        match tokio::time::timeout_at(deadline.into(), self.ws.next()).await {
            Err(_) => Ok(false),
            Ok(Some(Ok(Message::Binary(b)))) => {
                self.received += b.len() as u64;
                self.buf.extend_from_slice(&b);
                Ok(true)
            }
            Ok(Some(Ok(Message::Close(f)))) => bail!("console closed: {f:?}"),
            Ok(Some(Ok(_))) => Ok(true),
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(None) => bail!("console closed"),
        }
    }

    async fn exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.buf.len() < n {
            if !self.fill(deadline).await? {
                bail!("timed out reading {n} bytes");
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn send(&mut self, b: &[u8]) -> Result<()> {
        Ok(self.ws.send(Message::Binary(b.to_vec().into())).await?)
    }

    async fn handshake(&mut self) -> Result<()> {
        self.exact(12).await?;
        self.send(b"RFB 003.008\n").await?;
        let n = self.exact(1).await?[0] as usize;
        self.exact(n).await?;
        self.send(&[1]).await?;
        self.exact(4).await?;
        self.send(&[1]).await?;
        let init = self.exact(24).await?;
        self.bpp = usize::from(init[4] / 8);
        self.size = (
            u16::from_be_bytes([init[0], init[1]]),
            u16::from_be_bytes([init[2], init[3]]),
        );
        let name = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
        self.exact(name).await?;
        // ZRLE and DesktopSize, like noVNC (which also offers more).
        let mut enc = vec![2, 0, 0, 2];
        enc.extend_from_slice(&16i32.to_be_bytes());
        enc.extend_from_slice(&(-223i32).to_be_bytes());
        self.send(&enc).await
    }

    async fn request(&mut self, incremental: bool) -> Result<()> {
        let [w0, w1] = self.size.0.to_be_bytes();
        let [h0, h1] = self.size.1.to_be_bytes();
        self.send(&[3, u8::from(incremental), 0, 0, 0, 0, w0, w1, h0, h1])
            .await
    }

    /// Reads one FramebufferUpdate; returns whether it carried pixels and whether a pixel rectangle
    /// covered the point `probe`.
    async fn update_at(&mut self, probe: (usize, usize)) -> Result<(bool, bool)> {
        let head = self.exact(4).await?;
        if head[0] != 0 {
            bail!("unexpected server message {}", head[0]);
        }
        let (mut pixels, mut covered) = (false, false);
        for _ in 0..u16::from_be_bytes([head[2], head[3]]) {
            let r = self.exact(12).await?;
            let at = |i: usize| usize::from(u16::from_be_bytes([r[i], r[i + 1]]));
            let (x, y, w, h) = (at(0), at(2), at(4), at(6));
            let hit = (x..x + w).contains(&probe.0) && (y..y + h).contains(&probe.1);
            match i32::from_be_bytes([r[8], r[9], r[10], r[11]]) {
                16 => {
                    let len = self.exact(4).await?;
                    self.exact(u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
                        .await?;
                    pixels = true;
                    covered |= hit;
                }
                0 => {
                    self.exact(w * h * self.bpp).await?;
                    pixels = true;
                    covered |= hit;
                }
                -223 => {}
                other => bail!("unexpected encoding {other}"),
            }
        }
        Ok((pixels, covered))
    }

    async fn update(&mut self) -> Result<bool> {
        Ok(self.update_at((usize::MAX, usize::MAX)).await?.0)
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn vmm_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PORTAL_VMM_BINARY") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    [profile_dir.join("vmm"), profile_dir.parent()?.join("debug/vmm")]
        .into_iter()
        .find(|p| p.exists())
}

struct Portal {
    base: String,
    client: reqwest::Client,
    token: String,
    data: tempfile::TempDir,
    _guest: tempfile::TempDir,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(format!("vmm --config {}", self.data.path().display()))
            .status();
    }
}

impl Portal {
    async fn start(vmm: PathBuf, probe: &Path) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let guest = tempfile::tempdir()?;
        std::fs::copy(probe, guest.path().join("probe-guest"))?;
        let mut settings = Settings::for_tests(std::fs::canonicalize(data.path())?);
        settings.guest_dir = guest.path().to_path_buf();
        settings.vmm_binary = Some(vmm);
        let app = Application::build(settings).await?;
        let base = format!("http://{}", app.addr());
        tokio::spawn(app.run_until_stopped());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, base.parse()?);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .build()?;
        let login = [("username", "admin"), ("password", "admin-password-for-tests")];
        let res = client
            .post(format!("{base}/api/fn/login"))
            .form(&login)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("sign-in failed: {}", res.text().await?);
        }
        let res = client
            .post(format!("{base}/api/fn/create_token"))
            .form(&[("name", "bench"), ("expires_in_days", "")])
            .send()
            .await?;
        let token = res.json::<Value>().await?["secret"]
            .as_str()
            .context("token")?
            .to_string();
        Ok(Self {
            base,
            client,
            token,
            data,
            _guest: guest,
        })
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(req.send().await?.json().await?)
    }

    async fn running_probe(&self) -> Result<String> {
        let images = self.api(reqwest::Method::GET, "/images", None).await?;
        let image = images
            .as_array()
            .and_then(|a| a.iter().find(|i| i["is_test"] == true))
            .context("probe image")?;
        let flavors = self.api(reqwest::Method::GET, "/flavors", None).await?;
        let flavor = flavors
            .as_array()
            .and_then(|a| a.iter().find(|f| f["name"] == "t1.micro"))
            .context("flavor")?;
        let body = json!({ "name": "bench", "image_id": image["id"], "flavor_id": flavor["id"] });
        let vm = self.api(reqwest::Method::POST, "/vms", Some(body)).await?;
        let id = vm["id"].as_str().context("vm id")?.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let vm = self
                .api(reqwest::Method::GET, &format!("/vms/{id}"), None)
                .await?;
            if vm["state"] == "running" {
                break;
            }
            if Instant::now() > deadline {
                bail!("VM not running: {vm}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let log = self
                .api(reqwest::Method::GET, &format!("/vms/{id}/console-log"), None)
                .await?;
            if log["text"]
                .as_str()
                .unwrap_or_default()
                .contains("PROBE-GUEST READY")
            {
                return Ok(id);
            }
            if Instant::now() > deadline {
                bail!("no probe banner: {log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn console(&self, vm: &str) -> Result<Rfb> {
        let t = self
            .api(
                reqwest::Method::POST,
                &format!("/vms/{vm}/console"),
                Some(json!({"kind": "vnc"})),
            )
            .await?;
        let path = t["ws_path"].as_str().context("ws_path")?;
        let ws = connect(&format!("{}{path}", self.base.replacen("http", "ws", 1))).await?;
        Ok(Rfb {
            ws,
            buf: vec![],
            received: 0,
            bpp: 4,
            size: (0, 0),
        })
    }
}

async fn vm_figures() -> Result<()> {
    let probe = repo().join("guest/out/probe-guest");
    let vmm = vmm_binary();
    let (Some(vmm), true, true) = (vmm, probe.exists(), kvm_usable()) else {
        println!(
            "\n!!!!!!!! SKIP idle and key-to-update figures: need /dev/kvm, the vmm binary (cargo build -p vmm, or \
             PORTAL_VMM_BINARY) and guest/out/probe-guest (scripts/build-probe.sh) !!!!!!!!\n"
        );
        return Ok(());
    };
    let portal = Portal::start(vmm, &probe).await?;
    let vm = portal.running_probe().await?;
    let result = measure_vm(&portal, &vm).await;
    if result.is_err() {
        let log = RunDir::new(portal.data.path().join("vms").join(&vm)).log();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        eprintln!(
            "VMM log tail ({}):\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    result
}

async fn measure_vm(portal: &Portal, vm: &str) -> Result<()> {
    let mut rfb = portal.console(vm).await?;
    rfb.handshake().await?;
    rfb.request(false).await?;
    while !rfb.update().await? {}
    let first = rfb.received;

    // Let the freshly booted probe finish drawing (title bar): settled once 2 s pass without an update.
    loop {
        rfb.request(true).await?;
        if !rfb.fill(Instant::now() + Duration::from_secs(2)).await? {
            break;
        }
        while !rfb.buf.is_empty() {
            rfb.update().await?;
        }
    }
    // Idle: an incremental request stays outstanding (as noVNC keeps one); count what arrives.
    let before = rfb.received;
    let end = Instant::now() + IDLE;
    while Instant::now() < end {
        if !rfb.fill(end).await? {
            break;
        }
    }
    let idle_bytes = rfb.received - before;
    let mut pending = rfb.buf.len();
    println!("first frame:                   {first:>9} bytes (through the proxy, incl. handshake)");
    println!(
        "idle screen, {}s:              {idle_bytes:>9} bytes (goal 0)",
        IDLE.as_secs()
    );
    // Drain whatever idle produced so key updates are measured alone.
    while pending > 0 {
        rfb.update().await?;
        rfb.request(true).await?;
        pending = rfb.buf.len();
    }

    let (mut bytes, mut ms) = (vec![], vec![]);
    // The probe draws typed glyphs in 8x16 cells from (0, 32), left to right.
    let cols = usize::from(rfb.size.0 / 8).max(1);
    for i in 0..KEY_SAMPLES {
        let cell = ((i % cols) * 8 + 4, 32 + (i / cols) * 16 + 8);
        let start_bytes = rfb.received;
        let start = Instant::now();
        rfb.send(&[4, 1, 0, 0, 0, 0, 0, b'x']).await?;
        rfb.send(&[4, 0, 0, 0, 0, 0, 0, b'x']).await?;
        loop {
            let (_, glyph) = rfb.update_at(cell).await?;
            rfb.request(true).await?;
            if glyph {
                break;
            }
        }
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        bytes.push((rfb.received - start_bytes) as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "key -> framebuffer update:     {:>9.0} bytes, {:.1} ms (median of {KEY_SAMPLES}; goal <= 2048 bytes, <= 30 ms)",
        median(bytes),
        median(ms)
    );
    Ok(())
}

fn main() -> Result<()> {
    if let Some(socket) = std::env::var_os(throughput::PROXY_ENV) {
        return throughput::serve_our_proxy(PathBuf::from(socket));
    }
    if let Some(socket) = std::env::var_os(throughput::FLOOR_ENV) {
        return floor::serve_floor(PathBuf::from(socket), false);
    }
    if let Some(socket) = std::env::var_os(throughput::SPLICE_ENV) {
        return floor::serve_floor(PathBuf::from(socket), true);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        println!("console path benchmark (issue 4, item 7)");
        throughput::run(64 * 1024).await?;
        throughput::run(1024).await?;
        for size in [2 * 1024, 64 * 1024, 1024 * 1024] {
            throughput::paced(size).await?;
        }
        vm_figures().await
    })
}
