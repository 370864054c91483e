//! The VMM's side of `control.sock` and `serial.sock`.
//!
//! `control.sock` speaks the protocol of `vmm_api::control` (JSON lines: each line parsed into a `Request`,
//! answered with one `Response` line). `serial.sock` carries raw bytes both ways for any number of
//! clients: every client sees all output, input from any client goes to the UART.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vmm_api::control::{BootTimes, FirstBootTimes, Request, Response, Status, True, MAX_REQUEST_LINE};

use crate::builder::RuntimeHandles;
use crate::devices::serial::SerialHub;
use crate::lock;
use crate::runner::error_chain;
use crate::state::{RunState, Shared, VmEvent};
use crate::threads::{self, ThreadError, ThreadKind};
use crate::virtio::input::{
    InputEvent, ABS_X, ABS_Y, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV_ABS, EV_KEY, EV_REL, REL_WHEEL,
};

/// Errors while setting up the sockets.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("Failed to bind {0}")]
    Bind(PathBuf, #[source] std::io::Error),
    #[error("Failed to spawn a socket thread")]
    Spawn(#[source] ThreadError),
}

/// Linux keycodes for the graceful shutdown chord.
const KEY_LEFTCTRL: u16 = 29;
const KEY_LEFTALT: u16 = 56;
const KEY_DELETE: u16 = 111;

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

/// Starts a per-connection thread; a failure drops that connection only, and is logged.
fn spawn_for_connection<F: FnOnce() + Send + 'static>(kind: ThreadKind, name: &str, f: F) {
    if let Err(e) = threads::spawn(kind, name, f) {
        tracing::error!(error = %error_chain(&e), "connection not served");
    }
}

/// Binds both sockets and serves them on background threads.
pub fn start(ctx: &Arc<ControlCtx>, control: &Path, serial: &Path) -> Result<Sockets, ControlError> {
    let cl = bind(control)?;
    let sl = bind(serial)?;
    let c = ctx.clone();
    threads::spawn(ThreadKind::Control, "control", move || {
        for stream in cl.incoming().flatten() {
            let c = c.clone();
            spawn_for_connection(ThreadKind::Control, "control-conn", move || {
                serve_control(&c, stream)
            });
        }
    })
    .map_err(ControlError::Spawn)?;
    let hub = ctx.hub.clone();
    threads::spawn(ThreadKind::Serial, "serial", move || {
        for stream in sl.incoming().flatten() {
            let hub = hub.clone();
            spawn_for_connection(ThreadKind::Serial, "serial-conn", move || {
                serve_serial(&hub, stream)
            });
        }
    })
    .map_err(ControlError::Spawn)?;
    Ok(Sockets {
        paths: vec![control.into(), serial.into()],
    })
}

fn serve_serial(hub: &Arc<SerialHub>, stream: UnixStream) {
    let rx = hub.subscribe();
    let Ok(mut out) = stream.try_clone() else { return };
    spawn_for_connection(ThreadKind::Serial, "serial-out", move || {
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
        match reader.by_ref().take(MAX_REQUEST_LINE as u64).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let (resp, after) = handle(ctx, line.trim());
        // Nothing in an answer fails to serialise (no maps with non-string keys, no paths); a fallback
        // all the same, so a client always gets its line.
        let mut text = serde_json::to_string(&resp).unwrap_or_else(|e| {
            serde_json::json!({"ok": false, "error": format!("unencodable answer: {e}")}).to_string()
        });
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

/// Handles one request; returns the answer and an event to raise after the answer is sent.
pub fn handle(ctx: &ControlCtx, line: &str) -> (Response, Option<VmEvent>) {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return (Response::error(format!("bad request: {e}")), None),
    };
    let runtime = lock(&ctx.runtime).clone();
    match req {
        Request::Status => (Response::status(status(ctx)), None),
        Request::Pause => {
            if ctx.shared.pause(Duration::from_secs(5)) {
                (Response::state(RunState::Paused), None)
            } else {
                (Response::error("vCPUs did not stop within 5 s"), None)
            }
        }
        Request::Resume => {
            ctx.shared.resume();
            (Response::state(ctx.shared.state()), None)
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
                (Response::state(RunState::Stopping), None)
            }
            None => (Response::error("no keyboard (VM not running)"), None),
        },
        Request::Stop => (Response::state(RunState::Stopped), Some(VmEvent::ForceStop)),
        Request::SendKeys { keys, events } => match runtime.keyboard {
            Some(kbd) => {
                for k in keys {
                    kbd.send_key(k, true);
                    kbd.send_key(k, false);
                }
                for e in events {
                    kbd.send_key(e.code, e.pressed);
                }
                (Response::done(), None)
            }
            None => (Response::error("no keyboard (VM not running)"), None),
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
                (Response::done(), None)
            }
            None => (
                Response::error("no pointer device (no framebuffer or VM not running)"),
                None,
            ),
        },
        Request::Screendump { path } => match runtime.framebuffer {
            Some(fb) => match fb.write_ppm(&path) {
                Ok(()) => (
                    Response::Screendump {
                        ok: True,
                        width: fb.width(),
                        height: fb.height(),
                    },
                    None,
                ),
                Err(e) => (Response::error(crate::runner::error_chain(&e)), None),
            },
            None => (Response::error("no framebuffer"), None),
        },
        Request::ConsoleLog => {
            let data = String::from_utf8_lossy(&ctx.hub.console_log()).into_owned();
            (Response::ConsoleLog { ok: True, data }, None)
        }
        #[cfg(feature = "debug-requests")]
        Request::DebugForbiddenSyscall => (forbidden_syscall(), None),
    }
}

/// Test builds: calls `execve`, which no filter allows; in `kill` mode the VMM ends here.
#[cfg(feature = "debug-requests")]
fn forbidden_syscall() -> Response {
    let path = c"/nonexistent-seccomp-probe";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    tracing::warn!(
        mode = crate::seccomp::mode().as_str(),
        "debug request: calling execve"
    );
    // SAFETY: a NUL-terminated path and NULL-terminated argument and environment arrays that outlive the
    // call; the path does not exist, so without a filter the call fails with ENOENT and returns.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Response::error(format!(
        "execve was not refused: {}",
        std::io::Error::last_os_error()
    ))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
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

fn status(ctx: &ControlCtx) -> Status {
    let s = &ctx.shared;
    let (boot_us, m1, m2) = s.boot_times_us();
    let (f1, f2) = s.first_boot_markers_us();
    let runtime = lock(&ctx.runtime).clone();
    Status {
        vm_id: s.vm_id.clone(),
        state: s.state(),
        pid: std::process::id(),
        reboots: s.reboots(),
        started_unix_ms: s.started_unix_ms,
        uptime_ms: s.started.elapsed().as_millis() as u64,
        boot: BootTimes {
            started_ms: ms(boot_us),
            first_exit_ms: m1.map(ms),
            banner_ms: m2.map(ms),
            ended_ms: s.ended_us().map(ms),
        },
        first_boot: FirstBootTimes {
            first_exit_ms: f1.map(ms),
            banner_ms: f2.map(ms),
        },
        memory_mib: ctx.memory_mib,
        rss_bytes: crate::stats::rss_bytes(),
        guest_resident_bytes: guest_resident_bytes(&runtime),
        vcpu_time_ms: s.vcpu_cpu_ms(),
        process_cpu_ms: crate::stats::process_cpu_ms(),
        nics: runtime.nics.iter().map(|c| c.snapshot()).collect(),
        disks: runtime.disks.iter().map(|c| c.snapshot()).collect(),
    }
}
