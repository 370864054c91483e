//! virtio-input driver (virtio 1.2 section 5.8) and what the probe does with the events: keys are printed
//! as `KEY <char>` and drawn on the framebuffer, tablet button changes are printed as `POINTER x y buttons`,
//! Ctrl+Alt+Delete powers off.

use crate::arena;
use crate::fb::Framebuffer;
use crate::keymap::{self, Modifiers};
use crate::power;
use crate::serial;
use crate::virtio::{Error, Queue, Transport, DESC_F_WRITE};

// Config space (struct virtio_input_config).
const CFG_SELECT: usize = 0;
const CFG_SUBSEL: usize = 1;
const CFG_SIZE: usize = 2;
const CFG_DATA: usize = 8;
const CFG_ID_NAME: u8 = 0x01;
const CFG_EV_BITS: u8 = 0x11;

const EV_SYN: u16 = 0;
const EV_KEY: u16 = 1;
const EV_ABS: u16 = 3;
const SYN_REPORT: u16 = 0;
const ABS_X: u16 = 0;
const ABS_Y: u16 = 1;
const BTN_MISC: u16 = 0x100;
const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_MIDDLE: u16 = 0x112;
const BTN_TOUCH: u16 = 0x14a;

const EVENT_BYTES: usize = 8;
const NAME_MAX: usize = 40;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Keyboard,
    Tablet,
    Other,
}

pub struct InputDevice {
    /// Kept for the device's lifetime (the queues point into its registers).
    _transport: Transport,
    events: Queue,
    /// The status queue is set up (drivers normally do) but never used.
    _status: Option<Queue>,
    bufs: *mut u8,
    kind: Kind,
    name: [u8; NAME_MAX],
    name_len: usize,
}

impl InputDevice {
    pub fn init(transport: Transport) -> Result<Self, Error> {
        transport.negotiate(0)?;
        let mut name = [0u8; NAME_MAX];
        let name_len = read_config(&transport, CFG_ID_NAME, 0, &mut name);
        let has_keys = read_config(&transport, CFG_EV_BITS, EV_KEY as u8, &mut []) > 0;
        let has_abs = read_config(&transport, CFG_EV_BITS, EV_ABS as u8, &mut []) > 0;
        let lower_name_has = |word: &[u8]| {
            name[..name_len]
                .windows(word.len())
                .any(|w| w.eq_ignore_ascii_case(word))
        };
        let kind = if has_abs || lower_name_has(b"tablet") {
            Kind::Tablet
        } else if has_keys || lower_name_has(b"keyboard") {
            Kind::Keyboard
        } else {
            Kind::Other
        };
        let mut events = transport.setup_queue(0)?;
        let status = transport.setup_queue(1).ok();
        let n = events.size() as usize;
        let bufs = arena::alloc(n * EVENT_BYTES, 8).ok_or(Error::OutOfMemory)?;
        transport.driver_ok();
        for i in 0..n as u16 {
            events.set_desc(
                i,
                bufs as u64 + i as u64 * EVENT_BYTES as u64,
                EVENT_BYTES as u32,
                DESC_F_WRITE,
                0,
            );
            events.push(i);
        }
        events.notify();
        Ok(Self {
            _transport: transport,
            events,
            _status: status,
            bufs,
            kind,
            name,
            name_len,
        })
    }

    pub fn report(&self) {
        serial::puts("probe:   input: \"");
        serial::write_bytes(&self.name[..self.name_len]);
        serial::puts(match self.kind {
            Kind::Keyboard => "\" keyboard\r\n",
            Kind::Tablet => "\" tablet\r\n",
            Kind::Other => "\" other\r\n",
        });
    }

    /// Handles every event the device has returned and re-posts the buffers. True if there was any.
    pub fn poll(&mut self, state: &mut InputState, fb: &mut Option<Framebuffer>) -> bool {
        let mut returned = false;
        while let Some((id, len)) = self.events.pop_used() {
            let id = id % self.events.size();
            if len as usize >= EVENT_BYTES {
                // SAFETY: buffer `id` (8 bytes) lies in `bufs`; the device has handed it back.
                let raw = unsafe {
                    core::ptr::read_volatile(self.bufs.add(id as usize * EVENT_BYTES) as *const [u8; 8])
                };
                let ty = u16::from_le_bytes([raw[0], raw[1]]);
                let code = u16::from_le_bytes([raw[2], raw[3]]);
                let value = i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
                state.handle(ty, code, value, fb);
            }
            self.events.push(id);
            returned = true;
        }
        if returned {
            self.events.notify();
        }
        returned
    }
}

/// Reads config selector `select`/`subsel` into `out`; returns the size the device reports.
fn read_config(t: &Transport, select: u8, subsel: u8, out: &mut [u8]) -> usize {
    t.write_config8(CFG_SELECT, select);
    t.write_config8(CFG_SUBSEL, subsel);
    let size = t.config8(CFG_SIZE) as usize;
    let n = size.min(out.len());
    for (i, b) in out[..n].iter_mut().enumerate() {
        *b = t.config8(CFG_DATA + i);
    }
    // Names are printed: keep them printable.
    for b in out[..n].iter_mut() {
        if !(0x20..0x7f).contains(b) {
            *b = b'?';
        }
    }
    if out.is_empty() {
        size
    } else {
        n
    }
}

/// Keyboard modifiers and tablet position/buttons, shared by all input devices.
pub struct InputState {
    mods: Modifiers,
    x: i32,
    y: i32,
    buttons: u32,
    buttons_changed: bool,
}

impl InputState {
    pub fn new() -> Self {
        Self {
            mods: Modifiers::default(),
            x: 0,
            y: 0,
            buttons: 0,
            buttons_changed: false,
        }
    }

    fn handle(&mut self, ty: u16, code: u16, value: i32, fb: &mut Option<Framebuffer>) {
        match ty {
            EV_KEY if code >= BTN_MISC => self.button(code, value != 0),
            EV_KEY => self.key(code, value, fb),
            EV_ABS if code == ABS_X => self.x = value,
            EV_ABS if code == ABS_Y => self.y = value,
            EV_SYN if code == SYN_REPORT && self.buttons_changed => {
                self.buttons_changed = false;
                serial::puts("POINTER ");
                put_signed(self.x);
                serial::puts(" ");
                put_signed(self.y);
                serial::puts(" ");
                serial::put_dec(self.buttons as u64);
                serial::puts("\r\n");
            }
            _ => {}
        }
    }

    fn button(&mut self, code: u16, pressed: bool) {
        let bit = match code {
            BTN_LEFT | BTN_TOUCH => 1,
            BTN_RIGHT => 2,
            BTN_MIDDLE => 4,
            _ => return,
        };
        let before = self.buttons;
        if pressed {
            self.buttons |= bit;
        } else {
            self.buttons &= !bit;
        }
        self.buttons_changed |= before != self.buttons;
    }

    /// `value`: 0 release, 1 press, 2 autorepeat.
    fn key(&mut self, code: u16, value: i32, fb: &mut Option<Framebuffer>) {
        let is_modifier = self.mods.update(code, value != 0);
        if value == 0 || (is_modifier && value == 2) {
            return;
        }
        if self.mods.is_ctrl_alt_del(code) {
            serial::puts("CTRL-ALT-DEL\r\n");
            power::poweroff();
            serial::puts("ERR poweroff failed\r\n");
            return;
        }
        serial::puts("KEY ");
        match keymap::translate(code, &self.mods) {
            Some(c) if (0x20..0x7f).contains(&c) => {
                serial::write_bytes(&[c]);
                if let Some(f) = fb.as_mut() {
                    f.put_char(c);
                }
            }
            Some(c) => {
                serial::put_dec(code as u64);
                if let Some(f) = fb.as_mut() {
                    match c {
                        b'\n' => f.newline(),
                        0x08 => f.backspace(),
                        _ => {}
                    }
                }
            }
            None => serial::put_dec(code as u64),
        }
        serial::puts("\r\n");
    }
}

fn put_signed(v: i32) {
    if v < 0 {
        serial::puts("-");
    }
    serial::put_dec(v.unsigned_abs() as u64);
}
