//! Key translation: X keysyms (RFB KeyEvent) and XT scancodes (QEMU Extended Key Event) to Linux
//! keycodes (`linux/input-event-codes.h`).
//!
//! Keysyms name symbols, not keys, so mapping them needs a keyboard layout: we assume US QWERTY, and
//! report whether the symbol needs Shift there (so a client that sends `!` without Shift still gets it).
//! Scancodes name physical keys and need no layout: clients that send Extended Key Events (noVNC does
//! once we acknowledge pseudo-encoding -258) get exactly the key the user pressed.

/// Linux keycodes used by name below.
pub const KEY_ESC: u16 = 1;
pub const KEY_BACKSPACE: u16 = 14;
pub const KEY_TAB: u16 = 15;
pub const KEY_ENTER: u16 = 28;
pub const KEY_LEFTCTRL: u16 = 29;
pub const KEY_A: u16 = 30;
pub const KEY_LEFTSHIFT: u16 = 42;
pub const KEY_RIGHTSHIFT: u16 = 54;
pub const KEY_LEFTALT: u16 = 56;
pub const KEY_SPACE: u16 = 57;
pub const KEY_UP: u16 = 103;

/// Letters a..z in keycode order.
const LETTERS: [u16; 26] = [
    30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17, 45, 21, 44,
];

/// Printable ASCII on a US layout: (keysym, keycode, needs shift), letters and digits excluded.
const PUNCT: [(u8, u16, bool); 33] = [
    (b' ', 57, false),
    (b'!', 2, true),
    (b'"', 40, true),
    (b'#', 4, true),
    (b'$', 5, true),
    (b'%', 6, true),
    (b'&', 8, true),
    (b'\'', 40, false),
    (b'(', 10, true),
    (b')', 11, true),
    (b'*', 9, true),
    (b'+', 13, true),
    (b',', 51, false),
    (b'-', 12, false),
    (b'.', 52, false),
    (b'/', 53, false),
    (b':', 39, true),
    (b';', 39, false),
    (b'<', 51, true),
    (b'=', 13, false),
    (b'>', 52, true),
    (b'?', 53, true),
    (b'@', 3, true),
    (b'[', 26, false),
    (b'\\', 43, false),
    (b']', 27, false),
    (b'^', 7, true),
    (b'_', 12, true),
    (b'`', 41, false),
    (b'{', 26, true),
    (b'|', 43, true),
    (b'}', 27, true),
    (b'~', 41, true),
];

/// Function, editing, modifier and keypad keysyms (0xffxx, 0xfexx): (keysym, keycode).
const SPECIAL: [(u32, u16); 69] = [
    (0xff08, 14),      // BackSpace
    (0xff09, 15),      // Tab
    (0xfe20, 15),      // ISO_Left_Tab (Shift+Tab)
    (0xff0d, 28),      // Return
    (0xff13, 119),     // Pause
    (0xff14, 70),      // Scroll_Lock
    (0xff15, 99),      // Sys_Req
    (0xff1b, 1),       // Escape
    (0xff50, 102),     // Home
    (0xff51, 105),     // Left
    (0xff52, 103),     // Up
    (0xff53, 106),     // Right
    (0xff54, 108),     // Down
    (0xff55, 104),     // Prior
    (0xff56, 109),     // Next
    (0xff57, 107),     // End
    (0xff61, 99),      // Print
    (0xff63, 110),     // Insert
    (0xff67, 127),     // Menu
    (0xff6b, 119),     // Break
    (0xff7f, 69),      // Num_Lock
    (0xff8d, 96),      // KP_Enter
    (0xff95, 71),      // KP_Home
    (0xff96, 75),      // KP_Left
    (0xff97, 72),      // KP_Up
    (0xff98, 77),      // KP_Right
    (0xff99, 80),      // KP_Down
    (0xff9a, 73),      // KP_Prior
    (0xff9b, 81),      // KP_Next
    (0xff9c, 79),      // KP_End
    (0xff9d, 76),      // KP_Begin
    (0xff9e, 82),      // KP_Insert
    (0xff9f, 83),      // KP_Delete
    (0xffaa, 55),      // KP_Multiply
    (0xffab, 78),      // KP_Add
    (0xffac, 121),     // KP_Separator
    (0xffad, 74),      // KP_Subtract
    (0xffae, 83),      // KP_Decimal
    (0xffaf, 98),      // KP_Divide
    (0xffb0, 82),      // KP_0
    (0xffb1, 79),      // KP_1
    (0xffb2, 80),      // KP_2
    (0xffb3, 81),      // KP_3
    (0xffb4, 75),      // KP_4
    (0xffb5, 76),      // KP_5
    (0xffb6, 77),      // KP_6
    (0xffb7, 71),      // KP_7
    (0xffb8, 72),      // KP_8
    (0xffb9, 73),      // KP_9
    (0xffbd, 117),     // KP_Equal
    (0xffc8, 87),      // F11
    (0xffc9, 88),      // F12
    (0xffe1, 42),      // Shift_L
    (0xffe2, 54),      // Shift_R
    (0xffe3, 29),      // Control_L
    (0xffe4, 97),      // Control_R
    (0xffe5, 58),      // Caps_Lock
    (0xffe7, 125),     // Meta_L
    (0xffe8, 126),     // Meta_R
    (0xffe9, 56),      // Alt_L
    (0xffea, 100),     // Alt_R
    (0xffeb, 125),     // Super_L
    (0xffec, 126),     // Super_R
    (0xfe03, 100),     // ISO_Level3_Shift (AltGr)
    (0xffff, 111),     // Delete
    (0x1008ff11, 114), // XF86AudioLowerVolume
    (0x1008ff12, 113), // XF86AudioMute
    (0x1008ff13, 115), // XF86AudioRaiseVolume
    (0x1008ff2a, 116), // XF86PowerOff
];

/// A keysym's key on a US layout and whether that symbol needs Shift. `None`: no such key.
pub fn keysym_to_linux(keysym: u32) -> Option<(u16, bool)> {
    match keysym {
        0x61..=0x7a => Some((LETTERS[(keysym - 0x61) as usize], false)),
        0x41..=0x5a => Some((LETTERS[(keysym - 0x41) as usize], true)),
        0x31..=0x39 => Some((keysym as u16 - 0x31 + 2, false)),
        0x30 => Some((11, false)),
        0x20..=0x7e => PUNCT
            .iter()
            .find(|(sym, _, _)| u32::from(*sym) == keysym)
            .map(|&(_, code, shift)| (code, shift)),
        // F1..F10 are contiguous in both spaces.
        0xffbe..=0xffc7 => Some(((keysym - 0xffbe) as u16 + 59, false)),
        _ => SPECIAL
            .iter()
            .find(|(sym, _)| *sym == keysym)
            .map(|&(_, code)| (code, false)),
    }
}

/// Scancode-set-1 keys behind the 0xe0 prefix: (second byte, keycode).
const XT_EXTENDED: [(u8, u16); 25] = [
    (0x1c, 96),  // KP Enter
    (0x1d, 97),  // Right Ctrl
    (0x20, 113), // Mute
    (0x2e, 114), // Volume down
    (0x30, 115), // Volume up
    (0x35, 98),  // KP /
    (0x37, 99),  // Print Screen
    (0x38, 100), // Right Alt
    (0x46, 119), // Ctrl+Break
    (0x47, 102), // Home
    (0x48, 103), // Up
    (0x49, 104), // Page Up
    (0x4b, 105), // Left
    (0x4d, 106), // Right
    (0x4f, 107), // End
    (0x50, 108), // Down
    (0x51, 109), // Page Down
    (0x52, 110), // Insert
    (0x53, 111), // Delete
    (0x5b, 125), // Left Meta
    (0x5c, 126), // Right Meta
    (0x5d, 127), // Menu
    (0x5e, 116), // Power
    (0x5f, 142), // Sleep
    (0x63, 143), // Wake
];

/// An XT scancode as QEMU's Extended Key Event carries it to a Linux keycode. Prefixed keys arrive
/// either as `0xe0XX` or, as the extension specifies and noVNC sends, as `0x80 | XX`.
pub fn xt_to_linux(scancode: u32) -> Option<u16> {
    let (extended, code) = match scancode {
        0x01..=0x7f => (false, scancode as u8),
        0x80..=0xff => (true, (scancode & 0x7f) as u8),
        0xe000..=0xe07f => (true, (scancode & 0x7f) as u8),
        _ => return None,
    };
    if extended {
        return XT_EXTENDED.iter().find(|(c, _)| *c == code).map(|&(_, key)| key);
    }
    match code {
        // Set 1 matches Linux keycodes from Esc to F12, except Alt+SysRq and the unused 0x55.
        0x54 => Some(99),
        0x55 => None,
        0x01..=0x58 => Some(u16::from(code)),
        0x70 => Some(93),  // Katakana/Hiragana
        0x73 => Some(89),  // Ro
        0x79 => Some(92),  // Henkan
        0x7b => Some(94),  // Muhenkan
        0x7d => Some(124), // Yen
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_shifted_symbols_map_to_us_keys() {
        assert_eq!(keysym_to_linux(u32::from(b'a')), Some((KEY_A, false)));
        assert_eq!(keysym_to_linux(u32::from(b'A')), Some((KEY_A, true)));
        assert_eq!(keysym_to_linux(u32::from(b'z')), Some((44, false)));
        assert_eq!(keysym_to_linux(u32::from(b'q')), Some((16, false)));
        assert_eq!(keysym_to_linux(u32::from(b'1')), Some((2, false)));
        assert_eq!(keysym_to_linux(u32::from(b'0')), Some((11, false)));
        assert_eq!(keysym_to_linux(u32::from(b'!')), Some((2, true)));
        assert_eq!(keysym_to_linux(u32::from(b'|')), Some((43, true)));
        assert_eq!(keysym_to_linux(u32::from(b' ')), Some((KEY_SPACE, false)));
        // Every printable ASCII character has a key.
        assert!((0x20..0x7f).all(|k| keysym_to_linux(k).is_some()));
    }

    #[test]
    fn control_function_modifier_and_keypad_keys() {
        assert_eq!(keysym_to_linux(0xff0d), Some((KEY_ENTER, false)));
        assert_eq!(keysym_to_linux(0xffe1), Some((KEY_LEFTSHIFT, false)));
        assert_eq!(keysym_to_linux(0xffe2), Some((KEY_RIGHTSHIFT, false)));
        assert_eq!(keysym_to_linux(0xffe3), Some((KEY_LEFTCTRL, false)));
        assert_eq!(keysym_to_linux(0xff1b), Some((KEY_ESC, false)));
        assert_eq!(keysym_to_linux(0xff52), Some((KEY_UP, false)));
        assert_eq!(keysym_to_linux(0xffbe), Some((59, false))); // F1
        assert_eq!(keysym_to_linux(0xffc7), Some((68, false))); // F10
        assert_eq!(keysym_to_linux(0xffc9), Some((88, false))); // F12
        assert_eq!(keysym_to_linux(0xffb5), Some((76, false))); // KP_5
        assert_eq!(keysym_to_linux(0xff8d), Some((96, false))); // KP_Enter
        assert_eq!(keysym_to_linux(0xffff), Some((111, false))); // Delete
        assert_eq!(keysym_to_linux(0xa3), None);
        assert_eq!(keysym_to_linux(0x12345), None);
    }

    #[test]
    fn scancodes_map_to_physical_keys() {
        assert_eq!(xt_to_linux(0x1e), Some(KEY_A));
        assert_eq!(xt_to_linux(0x1c), Some(KEY_ENTER));
        assert_eq!(xt_to_linux(0x2a), Some(KEY_LEFTSHIFT));
        assert_eq!(xt_to_linux(0x58), Some(88));
        assert_eq!(xt_to_linux(0xe048), Some(KEY_UP));
        assert_eq!(xt_to_linux(0xc8), Some(KEY_UP));
        assert_eq!(xt_to_linux(0xe01d), Some(97));
        assert_eq!(xt_to_linux(0x9d), Some(97));
        assert_eq!(xt_to_linux(0xe05b), Some(125));
        assert_eq!(xt_to_linux(0), None);
        assert_eq!(xt_to_linux(0x55), None);
        assert_eq!(xt_to_linux(0xe0ff), None);
        assert_eq!(xt_to_linux(0xdead_beef), None);
    }
}
