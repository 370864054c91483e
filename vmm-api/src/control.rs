//! The protocol of a VMM's `control.sock`: JSON lines, one request object per line (tagged by `"cmd"`),
//! one answer object per line. The VMM parses each line into a [`Request`] and writes back a
//! [`Response`]; everything else speaks it through the one client in [`client`] (feature `client`).
//!
//! | request | answer |
//! |---|---|
//! | `{"cmd":"status"}` | `{"ok":true, "vm_id":…, "state":…, …}` ([`Status`]) |
//! | `pause`, `resume`, `shutdown` (Ctrl-Alt-Del; the guest's init powers off), `stop` (forced) | `{"ok":true,"state":…}` |
//! | `send-keys` (`"keys":[30,48]` press+release each, or `"events":[{"code":29,"pressed":true}]`) | `{"ok":true}` |
//! | `pointer` (`"x"`, `"y"`, `"buttons"` bit 0 left, 1 right, 2 middle, optional `"wheel"`) | `{"ok":true}` |
//! | `screendump` (`"path"`: binary PPM written by the VMM) | `{"ok":true,"width":…,"height":…}` |
//! | `console-log` | `{"ok":true,"data":…}` (the last 64 KiB of serial output) |
//!
//! A request the VMM cannot parse or carry out is answered `{"ok":false,"error":"…"}`.

#[cfg(feature = "client")]
pub mod client;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Longest request line the VMM reads.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest answer line a client reads (a `console-log` answer is 64 KiB of output, JSON-escaped).
pub const MAX_RESPONSE_LINE: usize = 1024 * 1024;

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Pause,
    Resume,
    /// Ctrl-Alt-Del on the virtio keyboard: the guest's init powers off.
    Shutdown,
    /// Forced stop: the VMM exits (code 0) right after answering.
    Stop,
    /// `keys` are pressed and released one after another, then `events` are sent as they are.
    SendKeys {
        #[serde(default)]
        keys: Vec<u16>,
        #[serde(default)]
        events: Vec<KeyEvent>,
    },
    /// Absolute pointer position in framebuffer pixels, buttons bit 0 left, 1 right, 2 middle.
    Pointer {
        x: u32,
        y: u32,
        #[serde(default)]
        buttons: u32,
        #[serde(default)]
        wheel: i32,
    },
    /// Writes the framebuffer as a binary PPM to `path` (a path the VMM can write).
    Screendump {
        path: PathBuf,
    },
    ConsoleLog,
    /// Test builds only (feature `debug-requests`): the connection's thread calls `execve`, which every
    /// seccomp filter refuses, so tests can watch a violation end the VMM and reach the portal.
    #[cfg(feature = "debug-requests")]
    DebugForbiddenSyscall,
}

/// One key transition (Linux input keycode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    pub code: u16,
    pub pressed: bool,
}

/// The VMM's run state, as `status` and the state-changing requests report it.
///
/// The discriminants are stable: the VMM keeps the state in an atomic byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum RunState {
    Starting = 0,
    Running = 1,
    Paused = 2,
    Rebooting = 3,
    Stopping = 4,
    Stopped = 5,
    Crashed = 6,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Rebooting => "rebooting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Crashed => "crashed",
        }
    }
}

/// `true` on the wire, and nothing else: the `"ok"` of an answer to a request the VMM carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct True;

/// `false` on the wire, and nothing else: the `"ok"` of a refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct False;

impl TryFrom<bool> for True {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b {
            Ok(True)
        } else {
            Err("expected true")
        }
    }
}

impl From<True> for bool {
    fn from(_: True) -> bool {
        true
    }
}

impl TryFrom<bool> for False {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b {
            Err("expected false")
        } else {
            Ok(False)
        }
    }
}

impl From<False> for bool {
    fn from(_: False) -> bool {
        false
    }
}

/// One answer line. The variants are told apart by their fields (the answer does not repeat the
/// request), most specific first, so the order of the variants is part of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// The request could not be parsed or carried out.
    Error { ok: False, error: String },
    /// Answer to `status`.
    Status {
        ok: True,
        #[serde(flatten)]
        status: Box<Status>,
    },
    /// Answer to `screendump`: the size of the image written.
    Screendump { ok: True, width: u32, height: u32 },
    /// Answer to `console-log`: the last 64 KiB of serial output (lossy UTF-8).
    ConsoleLog { ok: True, data: String },
    /// Answer to `pause`, `resume`, `shutdown` and `stop`: the state the request leads to.
    State { ok: True, state: RunState },
    /// Answer to `send-keys` and `pointer`.
    Done { ok: True },
}

impl Response {
    pub fn error(message: impl std::fmt::Display) -> Self {
        Self::Error {
            ok: False,
            error: message.to_string(),
        }
    }

    pub fn status(status: Status) -> Self {
        Self::Status {
            ok: True,
            status: Box::new(status),
        }
    }

    pub fn state(state: RunState) -> Self {
        Self::State { ok: True, state }
    }

    pub fn done() -> Self {
        Self::Done { ok: True }
    }

    /// The answer, or the VMM's reason for refusing the request.
    pub fn accepted(self) -> Result<Self, String> {
        match self {
            Self::Error { error, .. } => Err(error),
            other => Ok(other),
        }
    }

    /// The answer's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Error { .. } => "error",
            Self::Status { .. } => "status",
            Self::Screendump { .. } => "screendump",
            Self::ConsoleLog { .. } => "console-log",
            Self::State { .. } => "state",
            Self::Done { .. } => "done",
        }
    }
}

/// What `status` reports. Times in milliseconds; `None` (JSON `null`) for what has not happened yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub vm_id: String,
    pub state: RunState,
    /// The VMM's process id.
    pub pid: u32,
    /// Guest resets since the VMM started (each one a fresh boot in the same process).
    pub reboots: u32,
    pub started_unix_ms: u64,
    pub uptime_ms: u64,
    /// The current boot, from the VMM's start.
    pub boot: BootTimes,
    /// The first boot's progress markers, kept across reboots (for the start-up benchmark).
    pub first_boot: FirstBootTimes,
    pub memory_mib: u64,
    /// Resident memory of the whole VMM process.
    pub rss_bytes: u64,
    /// Resident guest RAM and framebuffer (pages the guest touched), to tell the VMM's overhead apart.
    pub guest_resident_bytes: u64,
    /// CPU time of the vCPU threads, this boot and earlier ones.
    pub vcpu_time_ms: u64,
    pub process_cpu_ms: u64,
    /// One entry per network card, in config order.
    #[serde(default)]
    pub nics: Vec<NicStatus>,
    /// One entry per disk, in config order (absent from VMMs that predate it).
    #[serde(default)]
    pub disks: Vec<DiskStatus>,
}

/// A disk's guest I/O since the VMM started (counted across guest reboots): completed virtio-blk read
/// and write requests and their data bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// The disk's serial (virtio-blk ID) as configured.
    pub serial: String,
    pub read_requests: u64,
    pub read_bytes: u64,
    pub write_requests: u64,
    pub write_bytes: u64,
}

/// A network card's traffic since the VMM started (counted across guest reboots). `rx` is host → guest
/// (frames read from the TAP and delivered), `tx` is guest → host (frames written to the TAP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicStatus {
    pub mac: crate::config::MacAddr,
    /// The TAP's interface name.
    pub tap: String,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub drops: NicDrops,
}

/// Frames a card dropped, by reason. Bytes count Ethernet frames without the vnet header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDrops {
    /// Guest frames whose source MAC is not the card's.
    pub tx_spoofed_source: u64,
    /// Guest chains that are not a frame: too short or long, device-writable parts, addresses outside
    /// memory, an offload the driver did not negotiate.
    pub tx_malformed: u64,
    /// Frames the TAP refused (interface down, a header the kernel rejected).
    pub tx_tap_error: u64,
    /// Host frames larger than the guest's buffer.
    pub rx_too_big: u64,
    /// Guest receive chains that cannot take a frame (read-only parts, outside memory), returned empty.
    pub rx_bad_chain: u64,
}

/// The current boot: when it started, the guest's boot-progress markers (`layout::BOOT_MARKER_PORT`:
/// 1 = first instruction, 2 = banner) and when the event that ended it was raised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootTimes {
    pub started_ms: f64,
    pub first_exit_ms: Option<f64>,
    pub banner_ms: Option<f64>,
    pub ended_ms: Option<f64>,
}

/// The first boot's markers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirstBootTimes {
    pub first_exit_ms: Option<f64>,
    pub banner_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status() -> Status {
        Status {
            vm_id: "vm1".into(),
            state: RunState::Running,
            pid: 42,
            reboots: 1,
            started_unix_ms: 1_700_000_000_000,
            uptime_ms: 1500,
            boot: BootTimes {
                started_ms: 0.5,
                first_exit_ms: Some(12.25),
                banner_ms: None,
                ended_ms: None,
            },
            first_boot: FirstBootTimes {
                first_exit_ms: Some(3.0),
                banner_ms: Some(9.5),
            },
            memory_mib: 128,
            rss_bytes: 1 << 20,
            guest_resident_bytes: 4096,
            vcpu_time_ms: 7,
            process_cpu_ms: 9,
            nics: vec![NicStatus {
                mac: crate::config::MacAddr([0x52, 0x54, 0, 0, 0, 1]),
                tap: "tap0".into(),
                rx_frames: 3,
                ..NicStatus::default()
            }],
            disks: vec![DiskStatus {
                serial: "vm1-root".into(),
                read_bytes: 4096,
                read_requests: 1,
                ..DiskStatus::default()
            }],
        }
    }

    #[test]
    fn requests_are_the_json_lines_the_vmm_has_always_read() {
        let wire = [
            (json!({"cmd": "status"}), Request::Status),
            (json!({"cmd": "pause"}), Request::Pause),
            (json!({"cmd": "resume"}), Request::Resume),
            (json!({"cmd": "shutdown"}), Request::Shutdown),
            (json!({"cmd": "stop"}), Request::Stop),
            (json!({"cmd": "console-log"}), Request::ConsoleLog),
            (
                json!({"cmd": "screendump", "path": "/tmp/s.ppm"}),
                Request::Screendump {
                    path: "/tmp/s.ppm".into(),
                },
            ),
            (
                json!({"cmd": "send-keys", "keys": [30, 48]}),
                Request::SendKeys {
                    keys: vec![30, 48],
                    events: vec![],
                },
            ),
            (
                json!({"cmd": "send-keys", "events": [{"code": 29, "pressed": true}]}),
                Request::SendKeys {
                    keys: vec![],
                    events: vec![KeyEvent {
                        code: 29,
                        pressed: true,
                    }],
                },
            ),
            (
                json!({"cmd": "pointer", "x": 100, "y": 50, "buttons": 1}),
                Request::Pointer {
                    x: 100,
                    y: 50,
                    buttons: 1,
                    wheel: 0,
                },
            ),
        ];
        for (json, req) in wire {
            assert_eq!(
                serde_json::from_value::<Request>(json.clone()).unwrap(),
                req,
                "{json}"
            );
            // What a client writes reads back as the same request.
            let written = serde_json::to_value(&req).unwrap();
            assert_eq!(serde_json::from_value::<Request>(written).unwrap(), req);
        }
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        assert!(serde_json::from_value::<Request>(json!({"cmd": "reboot-the-host"})).is_err());
        assert!(serde_json::from_value::<Request>(json!({"cmd": "pointer", "x": 1})).is_err());
    }

    #[test]
    fn answers_read_back_as_the_variant_that_wrote_them() {
        let answers = [
            Response::error("no framebuffer"),
            Response::status(status()),
            Response::Screendump {
                ok: True,
                width: 640,
                height: 480,
            },
            Response::ConsoleLog {
                ok: True,
                data: "Hi\n".into(),
            },
            Response::state(RunState::Paused),
            Response::done(),
        ];
        for answer in answers {
            let line = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), answer, "{line}");
        }
    }

    #[test]
    fn answers_are_the_json_the_vmm_has_always_written() {
        assert_eq!(
            serde_json::to_value(Response::error("bad request")).unwrap(),
            json!({"ok": false, "error": "bad request"})
        );
        assert_eq!(
            serde_json::to_value(Response::state(RunState::Stopping)).unwrap(),
            json!({"ok": true, "state": "stopping"})
        );
        assert_eq!(
            serde_json::to_value(Response::done()).unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            serde_json::to_value(Response::status(status())).unwrap(),
            json!({
                "ok": true, "vm_id": "vm1", "state": "running", "pid": 42, "reboots": 1,
                "started_unix_ms": 1_700_000_000_000u64, "uptime_ms": 1500,
                "boot": {"started_ms": 0.5, "first_exit_ms": 12.25, "banner_ms": null, "ended_ms": null},
                "first_boot": {"first_exit_ms": 3.0, "banner_ms": 9.5},
                "memory_mib": 128, "rss_bytes": 1048576, "guest_resident_bytes": 4096,
                "vcpu_time_ms": 7, "process_cpu_ms": 9,
                "nics": [{
                    "mac": "52:54:00:00:00:01", "tap": "tap0",
                    "rx_frames": 3, "rx_bytes": 0, "tx_frames": 0, "tx_bytes": 0,
                    "drops": {"tx_spoofed_source": 0, "tx_malformed": 0, "tx_tap_error": 0,
                              "rx_too_big": 0, "rx_bad_chain": 0},
                }],
                "disks": [{"serial": "vm1-root", "read_requests": 1, "read_bytes": 4096,
                           "write_requests": 0, "write_bytes": 0}],
            })
        );
        // `ok` decides between an answer and a refusal, whatever else the line holds.
        let refused: Response =
            serde_json::from_value(json!({"ok": false, "error": "x", "state": "running"})).unwrap();
        assert_eq!(refused.accepted(), Err("x".to_string()));
        assert!(serde_json::from_value::<Response>(json!({"ok": false})).is_err());
        assert!(serde_json::from_value::<Response>(json!({"state": "running"})).is_err());
    }

    #[test]
    fn run_states_keep_their_names_and_bytes() {
        for (state, name, byte) in [
            (RunState::Starting, "starting", 0),
            (RunState::Running, "running", 1),
            (RunState::Crashed, "crashed", 6),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(state as u8, byte);
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        }
    }
}
