//! Adapters from the VMM's per-boot devices to the RFB server: the KVM framebuffer as a
//! [`FrameSource`] and the virtio keyboard/tablet as an [`InputSink`].
//!
//! Both look the devices up in the shared [`RuntimeHandles`] on every call, because a guest reboot
//! builds new ones; the server itself lives as long as the VMM process. While no framebuffer exists
//! the screen keeps its last size and reads as black.

use std::sync::{Arc, Mutex};

use super::mem::row_ranges;
use super::{FrameSource, InputSink};
use crate::builder::RuntimeHandles;
use crate::framebuffer::Framebuffer;
use crate::lock;
use crate::virtio::input::{
    InputEvent, ABS_X, ABS_Y, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV_ABS, EV_KEY, EV_REL, REL_HWHEEL, REL_WHEEL,
};

/// The current boot's framebuffer.
pub struct RuntimeFrame {
    runtime: Arc<Mutex<RuntimeHandles>>,
    last: Mutex<Seen>,
}

/// The framebuffer seen last, to notice a new boot, and the size to report without one.
struct Seen {
    fb: Option<Arc<Framebuffer>>,
    size: (u32, u32),
}

impl RuntimeFrame {
    /// `size` is reported until the first framebuffer exists (use the configured mode).
    pub fn new(runtime: Arc<Mutex<RuntimeHandles>>, size: (u32, u32)) -> Self {
        RuntimeFrame {
            runtime,
            last: Mutex::new(Seen { fb: None, size }),
        }
    }

    fn current(&self) -> Option<Arc<Framebuffer>> {
        lock(&self.runtime).framebuffer.clone()
    }
}

impl FrameSource for RuntimeFrame {
    fn size(&self) -> (u32, u32) {
        match self.current() {
            Some(fb) => (fb.width(), fb.height()),
            None => lock(&self.last).size,
        }
    }

    fn stride(&self) -> usize {
        let (w, _) = self.size();
        w as usize * 4
    }

    fn read_rows(&self, y0: u32, rows: u32, out: &mut [u8]) {
        let Some(fb) = self.current() else {
            out.iter_mut().for_each(|b| *b = 0);
            return;
        };
        match fb.read_rows(y0, y0.saturating_add(rows)) {
            Ok(data) => {
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
            }
            Err(e) => crate::log_once!(warn, error = %e, "VNC could not read the framebuffer"),
        }
    }

    fn take_dirty_rows(&self) -> Vec<(u32, u32)> {
        let current = self.current();
        let mut last = lock(&self.last);
        let same = match (&last.fb, &current) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            // A new boot (or the framebuffer went away): everything may have changed.
            if let Some(fb) = &current {
                last.size = (fb.width(), fb.height());
            }
            last.fb = current;
            return vec![(0, last.size.1)];
        }
        drop(last);
        match current.map(|fb| fb.dirty_rows()) {
            Some(Ok(rows)) => row_ranges(&rows),
            Some(Err(e)) => {
                crate::log_once!(warn, error = %e, "VNC could not read the dirty log");
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

/// The current boot's virtio keyboard and tablet.
pub struct RuntimeInput {
    runtime: Arc<Mutex<RuntimeHandles>>,
    buttons: Mutex<u8>,
}

impl RuntimeInput {
    pub fn new(runtime: Arc<Mutex<RuntimeHandles>>) -> Self {
        RuntimeInput {
            runtime,
            buttons: Mutex::new(0),
        }
    }
}

impl InputSink for RuntimeInput {
    fn key(&self, linux_keycode: u16, down: bool) {
        let keyboard = lock(&self.runtime).keyboard.clone();
        if let Some(k) = keyboard {
            k.send_key(linux_keycode, down);
        }
    }

    fn pointer(&self, x: u32, y: u32, buttons: u8) {
        let tablet = lock(&self.runtime).tablet.clone();
        let mut last = lock(&self.buttons);
        let events = pointer_events(*last, x, y, buttons);
        *last = buttons;
        if let Some(t) = tablet {
            t.send(&events);
        }
    }
}

/// Linux input events for an RFB pointer event: absolute position, button edges (RFB mask bit 0 left,
/// 1 middle, 2 right), one wheel notch per newly set wheel bit (3 up, 4 down, 5 left, 6 right), SYN.
pub fn pointer_events(previous: u8, x: u32, y: u32, buttons: u8) -> Vec<InputEvent> {
    let mut ev = vec![
        InputEvent::new(EV_ABS, ABS_X, x),
        InputEvent::new(EV_ABS, ABS_Y, y),
    ];
    for (bit, code) in [(0, BTN_LEFT), (1, BTN_MIDDLE), (2, BTN_RIGHT)] {
        let (was, now) = ((previous >> bit) & 1, (buttons >> bit) & 1);
        if was != now {
            ev.push(InputEvent::new(EV_KEY, code, u32::from(now)));
        }
    }
    let pressed = buttons & !previous;
    for (bit, code, value) in [
        (3, REL_WHEEL, 1i32),
        (4, REL_WHEEL, -1),
        (5, REL_HWHEEL, -1),
        (6, REL_HWHEEL, 1),
    ] {
        if pressed & (1 << bit) != 0 {
            ev.push(InputEvent::new(EV_REL, code, value as u32));
        }
    }
    ev.push(InputEvent::syn());
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::input::{Input, InputKind};

    #[test]
    fn input_and_screen_follow_the_current_boots_devices() {
        let (_kbd_dev, kbd) = Input::new(InputKind::Keyboard, "kbd");
        let (_tab_dev, tab) = Input::new(
            InputKind::Tablet {
                width: 64,
                height: 48,
            },
            "tab",
        );
        let runtime = Arc::new(Mutex::new(RuntimeHandles {
            keyboard: None,
            tablet: None,
            framebuffer: None,
            guest_mem: None,
            nics: Vec::new(),
            disks: Vec::new(),
        }));
        let input = RuntimeInput::new(runtime.clone());
        // No devices yet (VM booting): input is dropped without harm.
        input.key(30, true);
        input.pointer(1, 2, 1);
        {
            let mut rt = lock(&runtime);
            rt.keyboard = Some(kbd.clone());
            rt.tablet = Some(tab.clone());
        }
        input.key(30, true);
        assert_eq!(kbd.pending(), 2); // KEY_A down + SYN
        input.pointer(5, 6, 0);
        assert_eq!(tab.pending(), 4); // X, Y, BTN_LEFT up (it was down before), SYN
                                      // Without a framebuffer the screen keeps the configured size and reads black.
        let frame = RuntimeFrame::new(runtime, (64, 48));
        assert_eq!(frame.size(), (64, 48));
        assert!(frame.take_dirty_rows().is_empty());
        let mut rows = vec![7u8; frame.stride() * 2];
        frame.read_rows(0, 2, &mut rows);
        assert!(rows.iter().all(|b| *b == 0));
    }

    #[test]
    fn pointer_events_report_edges_and_wheel_notches() {
        let ev = pointer_events(0, 10, 20, 0b1);
        assert_eq!(
            ev,
            vec![
                InputEvent::new(EV_ABS, ABS_X, 10),
                InputEvent::new(EV_ABS, ABS_Y, 20),
                InputEvent::new(EV_KEY, BTN_LEFT, 1),
                InputEvent::syn(),
            ]
        );
        // Holding left, pressing right (bit 2): only the right edge.
        let ev = pointer_events(0b1, 10, 20, 0b101);
        assert_eq!(ev[2], InputEvent::new(EV_KEY, BTN_RIGHT, 1));
        assert_eq!(ev.len(), 4);
        // Wheel down notch, then its release sends nothing extra.
        let ev = pointer_events(0, 0, 0, 1 << 4);
        assert_eq!(ev[2], InputEvent::new(EV_REL, REL_WHEEL, (-1i32) as u32));
        assert_eq!(pointer_events(1 << 4, 0, 0, 0).len(), 3);
    }
}
