//! Linux input keycodes (include/uapi/linux/input-event-codes.h) → US-layout ASCII, shift aware.

#[cfg(test)]
const KEY_ENTER: u16 = 28;
pub const KEY_LEFTCTRL: u16 = 29;
pub const KEY_LEFTSHIFT: u16 = 42;
pub const KEY_RIGHTSHIFT: u16 = 54;
pub const KEY_LEFTALT: u16 = 56;
pub const KEY_CAPSLOCK: u16 = 58;
pub const KEY_KPDOT: u16 = 83;
pub const KEY_KPENTER: u16 = 96;
pub const KEY_RIGHTCTRL: u16 = 97;
pub const KEY_RIGHTALT: u16 = 100;
pub const KEY_DELETE: u16 = 111;

/// Keycodes 0..=57 (the main block): unshifted and shifted characters, 0 for none.
const MAIN_PLAIN: &[u8; 58] = b"\0\x1b1234567890-=\x08\tqwertyuiop[]\n\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
const MAIN_SHIFT: &[u8; 58] = b"\0\x1b!@#$%^&*()_+\x08\tQWERTYUIOP{}\n\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";
/// Keypad keycodes 71..=83 with Num Lock on.
const KEYPAD: &[u8; 13] = b"789-456+1230.";
const KEY_KP7: u16 = 71;
const KEY_KPSLASH: u16 = 98;

/// Modifier state tracked from key presses and releases.
#[derive(Default, Clone, Copy)]
pub struct Modifiers {
    pub left_shift: bool,
    pub right_shift: bool,
    pub left_ctrl: bool,
    pub right_ctrl: bool,
    pub left_alt: bool,
    pub right_alt: bool,
    pub caps_lock: bool,
}

impl Modifiers {
    /// Updates the state for a modifier key; returns true if `code` was a modifier.
    pub fn update(&mut self, code: u16, pressed: bool) -> bool {
        match code {
            KEY_LEFTSHIFT => self.left_shift = pressed,
            KEY_RIGHTSHIFT => self.right_shift = pressed,
            KEY_LEFTCTRL => self.left_ctrl = pressed,
            KEY_RIGHTCTRL => self.right_ctrl = pressed,
            KEY_LEFTALT => self.left_alt = pressed,
            KEY_RIGHTALT => self.right_alt = pressed,
            KEY_CAPSLOCK => {
                if pressed {
                    self.caps_lock = !self.caps_lock;
                }
            }
            _ => return false,
        }
        true
    }

    pub fn shift(&self) -> bool {
        self.left_shift || self.right_shift
    }

    pub fn ctrl(&self) -> bool {
        self.left_ctrl || self.right_ctrl
    }

    pub fn alt(&self) -> bool {
        self.left_alt || self.right_alt
    }

    /// Ctrl+Alt+Delete (either Delete key, as in Linux's default keymap).
    pub fn is_ctrl_alt_del(&self, code: u16) -> bool {
        self.ctrl() && self.alt() && (code == KEY_DELETE || code == KEY_KPDOT)
    }
}

/// The ASCII byte a key press produces (control characters included: Enter is `\n`, Backspace `\x08`),
/// or `None` for keys without one.
pub fn translate(code: u16, mods: &Modifiers) -> Option<u8> {
    let c = match code {
        0..=57 => {
            let plain = MAIN_PLAIN[code as usize];
            let shifted = MAIN_SHIFT[code as usize];
            let shift = if plain.is_ascii_lowercase() {
                mods.shift() != mods.caps_lock
            } else {
                mods.shift()
            };
            if shift {
                shifted
            } else {
                plain
            }
        }
        KEY_KP7..=KEY_KPDOT => KEYPAD[(code - KEY_KP7) as usize],
        KEY_KPENTER => b'\n',
        KEY_KPSLASH => b'/',
        _ => 0,
    };
    (c != 0).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_follow_shift_and_caps_lock() {
        let mut m = Modifiers::default();
        assert_eq!(translate(30, &m), Some(b'a'));
        m.update(KEY_LEFTSHIFT, true);
        assert_eq!(translate(30, &m), Some(b'A'));
        assert_eq!(translate(2, &m), Some(b'!'));
        m.update(KEY_LEFTSHIFT, false);
        m.update(KEY_CAPSLOCK, true);
        m.update(KEY_CAPSLOCK, false);
        assert_eq!(translate(16, &m), Some(b'Q'), "caps lock capitalises letters");
        assert_eq!(translate(2, &m), Some(b'1'), "but not digits");
    }

    #[test]
    fn us_layout_punctuation_and_specials() {
        let m = Modifiers::default();
        assert_eq!(translate(57, &m), Some(b' '));
        assert_eq!(translate(KEY_ENTER, &m), Some(b'\n'));
        assert_eq!(translate(43, &m), Some(b'\\'));
        assert_eq!(translate(40, &m), Some(b'\''));
        assert_eq!(translate(53, &m), Some(b'/'));
        assert_eq!(translate(KEY_LEFTSHIFT, &m), None);
        assert_eq!(translate(79, &m), Some(b'1'));
        assert_eq!(translate(200, &m), None);
        let mut s = Modifiers::default();
        s.update(KEY_RIGHTSHIFT, true);
        assert_eq!(translate(40, &s), Some(b'"'));
        assert_eq!(translate(41, &s), Some(b'~'));
        assert_eq!(translate(12, &s), Some(b'_'));
    }

    #[test]
    fn ctrl_alt_del_needs_both_modifiers() {
        let mut m = Modifiers::default();
        m.update(KEY_LEFTCTRL, true);
        assert!(!m.is_ctrl_alt_del(KEY_DELETE));
        m.update(KEY_RIGHTALT, true);
        assert!(m.is_ctrl_alt_del(KEY_DELETE));
        assert!(m.is_ctrl_alt_del(KEY_KPDOT));
        assert!(!m.is_ctrl_alt_del(30));
    }
}
