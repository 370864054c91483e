//! When a booting guest counts as ready, decided from its serial output (pure, unit-tested; the task that
//! feeds it is `boot_watch`).
//!
//! The rule (README, "Boot progress"), first match wins:
//! - `marker`: a line containing `cloud-portal: ready` (the shipped images' `/init` prints it right before
//!   busybox init starts the console shells) or `PROBE-GUEST READY` (the probe guest's banner);
//! - `login`: a line, complete or still open, ending in `login:` (a getty prompt: images of their own);
//! - `none`: neither within `boot.ready_timeout_secs` of the VMM's start: the VM shows "running (no
//!   readiness signal)" and no ready time is recorded.
//!
//! Lines are shown to people: ANSI escape sequences and other control characters are removed (the page
//! escapes the text as HTML, like any other).

/// `boot.*` settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct BootSettings {
    /// A guest that has shown no readiness signal this long after its VMM started is shown as running
    /// without one (seconds).
    pub ready_timeout_secs: u64,
}

impl Default for BootSettings {
    fn default() -> Self {
        Self {
            ready_timeout_secs: 900,
        }
    }
}

/// Lines that announce readiness.
pub const READY_MARKERS: [&str; 2] = ["cloud-portal: ready", "PROBE-GUEST READY"];

/// The longest line kept (characters); the rest of a longer line is dropped.
const MAX_LINE: usize = 200;

/// Which rule saw the guest ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Marker,
    Login,
    /// No signal in time.
    NoSignal,
}

impl Ready {
    /// The name stored in `vms.guest_ready_rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ready::Marker => "marker",
            Ready::Login => "login",
            Ready::NoSignal => "none",
        }
    }
}

/// Reads serial output as it comes and keeps the last non-empty line.
#[derive(Debug, Default)]
pub struct LineTracker {
    /// The line being received (escape sequences already removed).
    open: String,
    /// The last complete non-empty line.
    last: String,
    escape: Escape,
    ready: Option<Ready>,
    /// The line that made the guest ready.
    ready_line: String,
}

/// Where in an ANSI escape sequence the tracker is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// In a CSI sequence (`ESC [` … final byte 0x40–0x7e).
    Csi,
    /// In an OSC/DCS string, until BEL or ESC \.
    Str,
}

impl LineTracker {
    /// Feeds received text; returns the rule that saw the guest ready, the first time one does.
    pub fn feed(&mut self, text: &str) -> Option<Ready> {
        let was_ready = self.ready.is_some();
        for c in text.chars() {
            self.push(c);
        }
        if self.ready.is_none() && self.open.trim_end().ends_with("login:") {
            self.ready = Some(Ready::Login);
            self.ready_line = self.open.trim().to_string();
        }
        match (was_ready, self.ready) {
            (false, Some(r)) => Some(r),
            _ => None,
        }
    }

    fn push(&mut self, c: char) {
        match self.escape {
            Escape::Start => {
                self.escape = match c {
                    '[' => Escape::Csi,
                    ']' | 'P' | '_' | '^' => Escape::Str,
                    _ => Escape::None,
                };
                return;
            }
            Escape::Csi => {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    self.escape = Escape::None;
                }
                return;
            }
            Escape::Str => {
                if c == '\u{7}' {
                    self.escape = Escape::None;
                } else if c == '\u{1b}' {
                    self.escape = Escape::Start;
                }
                return;
            }
            Escape::None => {}
        }
        match c {
            '\u{1b}' => self.escape = Escape::Start,
            '\n' => self.end_line(),
            '\r' => {}
            '\t' => self.keep(' '),
            c if c.is_control() => {}
            c => self.keep(c),
        }
    }

    fn keep(&mut self, c: char) {
        if self.open.chars().count() < MAX_LINE {
            self.open.push(c);
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.open);
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if self.ready.is_none() {
            if READY_MARKERS.iter().any(|m| line.contains(m)) {
                self.ready = Some(Ready::Marker);
            } else if line.ends_with("login:") {
                self.ready = Some(Ready::Login);
            }
            if self.ready.is_some() {
                self.ready_line = line.to_string();
            }
        }
        self.last = line.to_string();
    }

    /// The line that made the guest ready (output after it in the same piece does not replace it), else
    /// the last line.
    pub fn ready_line(&self) -> &str {
        if self.ready_line.is_empty() {
            self.last_line()
        } else {
            &self.ready_line
        }
    }

    /// The line to show: the last complete one, or the one being received if it is a prompt waiting for
    /// input (ends in `: `, `# `, `$ ` or `> `). Serial output arrives a byte at a time on emulated KVM,
    /// so any other open line is a line half printed.
    pub fn last_line(&self) -> &str {
        let open = self.open.trim();
        let prompt = self.open.ends_with(' ') && open.ends_with([':', '#', '$', '>']);
        if prompt || self.last.is_empty() && open.ends_with("login:") {
            open
        } else {
            &self.last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_images_marker_makes_the_guest_ready_once() {
        let mut t = LineTracker::default();
        assert_eq!(t.feed("[    0.000000] Linux version 6.1\r\n"), None);
        assert_eq!(t.last_line(), "[    0.000000] Linux version 6.1");
        assert_eq!(t.feed("cloud-portal: rea"), None, "half a line is not the marker");
        assert_eq!(t.feed("dy\r\n"), Some(Ready::Marker));
        assert_eq!(t.feed("cloud-portal: ready\r\n"), None, "reported once");
        assert_eq!(t.last_line(), "cloud-portal: ready");
    }

    #[test]
    fn the_probe_banner_and_a_login_prompt_count_too() {
        let mut t = LineTracker::default();
        assert_eq!(
            t.feed("PROBE-GUEST READY\r\nprobe: boot_params at 0x7000\r\n"),
            Some(Ready::Marker)
        );
        assert_eq!(t.ready_line(), "PROBE-GUEST READY");
        let mut t = LineTracker::default();
        assert_eq!(
            t.feed("Debian GNU/Linux 12 web ttyS0\n\nweb login: "),
            Some(Ready::Login)
        );
        assert_eq!(t.last_line(), "web login:");
    }

    #[test]
    fn escape_sequences_and_control_characters_are_removed() {
        let mut t = LineTracker::default();
        t.feed("\u{1b}[6n\u{1b}[1;32mOK\u{1b}[0m\tStarted \u{1b}]0;title\u{7}sshd\u{8}\r\n");
        assert_eq!(t.last_line(), "OK Started sshd");
        t.feed("\r\n\r\n");
        assert_eq!(t.last_line(), "OK Started sshd", "blank lines keep the last one");
        t.feed("~ # ");
        assert_eq!(t.last_line(), "~ #", "an open prompt shows");
        t.feed("\r\ncloud-portal gu");
        assert_eq!(t.last_line(), "~ #", "a line half printed does not");
    }

    #[test]
    fn long_lines_are_cut() {
        let mut t = LineTracker::default();
        t.feed(&"x".repeat(10_000));
        t.feed("\n");
        assert_eq!(t.last_line().len(), MAX_LINE);
    }
}
