//! `control.sock` (JSON lines: one request object per line, one response object per line) and
//! `serial.sock` (raw bytes both ways, any number of clients; every client sees all output, input from
//! any client goes to the UART).
//!
//! Requests: `{"cmd":"status"}`, `pause`, `resume`, `shutdown` (Ctrl-Alt-Del on the virtio keyboard;
//! the guest's init powers off), `stop` (forced), `send-keys` (`"keys":[30,48]` press+release each, or
//! `"events":[{"code":29,"pressed":true}]`), `pointer` (`"x","y","buttons"` bit 0 left, 1 right,
//! 2 middle, optional `"wheel"`), `screendump` (`"path"`: binary PPM), `console-log` (last 64 KiB of
//! serial output as `"data"`). Responses carry `"ok": true` or `"ok": false, "error": "..."`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::builder::RuntimeHandles;
use crate::devices::serial::SerialHub;
use crate::lock;
use crate::state::{RunState, Shared, VmEvent};
use crate::virtio::input::{
    InputEvent, ABS_X, ABS_Y, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV_ABS, EV_KEY, EV_REL, REL_WHEEL,
};

/// Errors while setting up the sockets.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("Failed to bind {0}")]
    Bind(PathBuf, #[source] std::io::Error),
    #[error("Failed to spawn a socket thread")]
    Spawn(#[source] std::io::Error),
}

/// Linux keycodes for the graceful shutdown chord.
const KEY_LEFTCTRL: u16 = 29;
const KEY_LEFTALT: u16 = 56;
const KEY_DELETE: u16 = 111;
/// Longest accepted request line.
const MAX_REQUEST: usize = 64 * 1024;

/// State the control socket works on.
pub struct ControlCtx {
    pub shared: Arc<Shared>,
    pub hub: Arc<SerialHub>,
    pub runtime: Arc<Mutex<RuntimeHandles>>,
    memory_mib: u64,
    buttons: Mutex<u32>,
}

impl ControlCtx {
    pub fn new(
        shared: Arc<Shared>,
        hub: Arc<SerialHub>,
        runtime: Arc<Mutex<RuntimeHandles>>,
        memory_mib: u64,
    ) -> Self {
        ControlCtx {
            shared,
            hub,
            runtime,
            memory_mib,
            buttons: Mutex::new(0),
        }
    }
}

/// Keeps the socket paths to remove at exit.
pub struct Sockets {
    paths: Vec<PathBuf>,
}

impl Sockets {
    pub fn remove(&self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(|e| ControlError::Bind(path.into(), e))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(l)
}

fn spawn<F: FnOnce() + Send + 'static>(name: &str, f: F) -> Result<(), ControlError> {
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _e = span.enter();
            f()
        })
        .map(|_| ())
        .map_err(ControlError::Spawn)
}

/// Binds both sockets and serves them on background threads.
pub fn start(ctx: &Arc<ControlCtx>, control: &Path, serial: &Path) -> Result<Sockets, ControlError> {
    let cl = bind(control)?;
    let sl = bind(serial)?;
    let c = ctx.clone();
    spawn("control", move || {
        for stream in cl.incoming().flatten() {
            let c = c.clone();
            let _ = spawn("control-conn", move || serve_control(&c, stream));
        }
    })?;
    let hub = ctx.hub.clone();
    spawn("serial", move || {
        for stream in sl.incoming().flatten() {
            let hub = hub.clone();
            let _ = spawn("serial-conn", move || serve_serial(&hub, stream));
        }
    })?;
    Ok(Sockets {
        paths: vec![control.into(), serial.into()],
    })
}

fn serve_serial(hub: &Arc<SerialHub>, stream: UnixStream) {
    let rx = hub.subscribe();
    let Ok(mut out) = stream.try_clone() else { return };
    let _ = spawn("serial-out", move || {
        for chunk in rx {
            if out.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = out.shutdown(std::net::Shutdown::Both);
    });
    let mut input = stream;
    let mut buf = [0u8; 1024];
    loop {
        match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => hub.input(&buf[..n]),
        }
    }
    let _ = input.shutdown(std::net::Shutdown::Both);
}

fn serve_control(ctx: &ControlCtx, stream: UnixStream) {
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.by_ref().take(MAX_REQUEST as u64).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let (resp, after) = handle(ctx, line.trim());
        let mut text = resp.to_string();
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
        let _ = out.flush();
        if let Some(ev) = after {
            ctx.shared.request(ev);
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
enum Request {
    Status,
    Pause,
    Resume,
    Shutdown,
    Stop,
    SendKeys {
        #[serde(default)]
        keys: Vec<u16>,
        #[serde(default)]
        events: Vec<KeyEvent>,
    },
    Pointer {
        x: u32,
        y: u32,
        #[serde(default)]
        buttons: u32,
        #[serde(default)]
        wheel: i32,
    },
    Screendump {
        path: PathBuf,
    },
    ConsoleLog,
}

#[derive(Deserialize)]
struct KeyEvent {
    code: u16,
    pressed: bool,
}

fn err(msg: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": msg.to_string()})
}

/// Handles one request; returns the response and an event to raise after the response is sent.
pub fn handle(ctx: &ControlCtx, line: &str) -> (Value, Option<VmEvent>) {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return (err(format!("bad request: {e}")), None),
    };
    let runtime = lock(&ctx.runtime).clone();
    match req {
        Request::Status => (status(ctx), None),
        Request::Pause => {
            if ctx.shared.pause(Duration::from_secs(5)) {
                (json!({"ok": true, "state": "paused"}), None)
            } else {
                (err("vCPUs did not stop within 5 s"), None)
            }
        }
        Request::Resume => {
            ctx.shared.resume();
            (json!({"ok": true, "state": ctx.shared.state().as_str()}), None)
        }
        Request::Shutdown => match runtime.keyboard {
            Some(kbd) => {
                for k in [KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE] {
                    kbd.send_key(k, true);
                }
                for k in [KEY_DELETE, KEY_LEFTALT, KEY_LEFTCTRL] {
                    kbd.send_key(k, false);
                }
                ctx.shared.set_state(RunState::Stopping);
                (json!({"ok": true, "state": "stopping"}), None)
            }
            None => (err("no keyboard (VM not running)"), None),
        },
        Request::Stop => (json!({"ok": true, "state": "stopped"}), Some(VmEvent::ForceStop)),
        Request::SendKeys { keys, events } => match runtime.keyboard {
            Some(kbd) => {
                for k in keys {
                    kbd.send_key(k, true);
                    kbd.send_key(k, false);
                }
                for e in events {
                    kbd.send_key(e.code, e.pressed);
                }
                (json!({"ok": true}), None)
            }
            None => (err("no keyboard (VM not running)"), None),
        },
        Request::Pointer { x, y, buttons, wheel } => match runtime.tablet {
            Some(tablet) => {
                let mut evs = vec![
                    InputEvent::new(EV_ABS, ABS_X, x),
                    InputEvent::new(EV_ABS, ABS_Y, y),
                ];
                let mut last = lock(&ctx.buttons);
                for (bit, code) in [(0, BTN_LEFT), (1, BTN_RIGHT), (2, BTN_MIDDLE)] {
                    let now = (buttons >> bit) & 1;
                    if now != (*last >> bit) & 1 {
                        evs.push(InputEvent::new(EV_KEY, code, now));
                    }
                }
                *last = buttons;
                if wheel != 0 {
                    evs.push(InputEvent::new(EV_REL, REL_WHEEL, wheel as u32));
                }
                evs.push(InputEvent::syn());
                tablet.send(&evs);
                (json!({"ok": true}), None)
            }
            None => (err("no pointer device (no framebuffer or VM not running)"), None),
        },
        Request::Screendump { path } => match runtime.framebuffer {
            Some(fb) => match fb.write_ppm(&path) {
                Ok(()) => (
                    json!({"ok": true, "width": fb.width(), "height": fb.height()}),
                    None,
                ),
                Err(e) => (err(crate::runner::error_chain(&e)), None),
            },
            None => (err("no framebuffer"), None),
        },
        Request::ConsoleLog => {
            let data = String::from_utf8_lossy(&ctx.hub.console_log()).into_owned();
            (json!({"ok": true, "data": data}), None)
        }
    }
}

fn ms(us: Option<u64>) -> Value {
    us.map(|v| json!(v as f64 / 1000.0)).unwrap_or(Value::Null)
}

/// Resident bytes of guest RAM and framebuffer (pages the guest touched), for VMM-overhead figures.
fn guest_resident_bytes(rt: &RuntimeHandles) -> u64 {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let ram: u64 = rt.guest_mem.as_ref().map_or(0, |m| {
        m.iter()
            .map(|r| crate::stats::resident_bytes(r.as_ptr(), r.len() as usize))
            .sum()
    });
    ram + rt.framebuffer.as_ref().map_or(0, |f| f.resident_bytes())
}

fn status(ctx: &ControlCtx) -> Value {
    let s = &ctx.shared;
    let (boot_us, m1, m2) = s.boot_times_us();
    let (f1, f2) = s.first_boot_markers_us();
    json!({
        "ok": true,
        "vm_id": s.vm_id,
        "state": s.state().as_str(),
        "pid": std::process::id(),
        "reboots": s.reboots(),
        "started_unix_ms": s.started_unix_ms,
        "uptime_ms": s.started.elapsed().as_millis() as u64,
        "boot": {
            "started_ms": ms(Some(boot_us)),
            "first_exit_ms": ms(m1),
            "banner_ms": ms(m2),
            "ended_ms": ms(s.ended_us()),
        },
        "first_boot": { "first_exit_ms": ms(f1), "banner_ms": ms(f2) },
        "memory_mib": ctx.memory_mib,
        "rss_bytes": crate::stats::rss_bytes(),
        "guest_resident_bytes": guest_resident_bytes(&lock(&ctx.runtime)),
        "vcpu_time_ms": s.vcpu_cpu_ms(),
        "process_cpu_ms": crate::stats::process_cpu_ms(),
    })
}
