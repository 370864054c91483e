//! One connected viewer: handshake, then a reader (messages → input, settings, update requests) and a
//! writer (damage + request → one encoded FramebufferUpdate at a time).
//!
//! The two threads share [`ClientState`] under one mutex; the dirty tracker only ORs damage into it.
//! Keys and buttons a viewer still holds when it disconnects are released, so a closed browser tab
//! cannot leave Ctrl stuck in the guest.

use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::damage::{Rect, TileMap};
use super::encode::{Encoder, Encoding};
use super::keymap::{keysym_to_linux, xt_to_linux, KEY_LEFTSHIFT, KEY_RIGHTSHIFT};
use super::pixel::PixelFormat;
use super::proto::{
    self, ClientMsg, ProtoError, PSEUDO_COMPRESS_LEVEL_0, PSEUDO_DESKTOP_SIZE, PSEUDO_EXTENDED_DESKTOP_SIZE,
    PSEUDO_QEMU_EXTENDED_KEY,
};
use super::server::Inner;
use crate::lock;
use crate::runner::error_chain;
use crate::threads::{self, ThreadKind};

/// A client must finish the handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that does not take an update within this time is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// zlib level when the client does not ask for one (noVNC asks for 2).
const DEFAULT_LEVEL: u32 = 6;

/// Settings and pending work of one client.
struct ClientState {
    pf: PixelFormat,
    encoding: Encoding,
    level: u32,
    desktop_size: bool,
    ext_desktop_size: bool,
    ext_key: bool,
    /// Send the -258 acknowledgement (unsolicited, as QEMU does).
    ext_key_ack: bool,
    /// ExtendedDesktopSize to send with the next update: (reason, status).
    ext_desktop_reply: Option<(u16, u16)>,
    requested: bool,
    damage: TileMap,
    /// The framebuffer size the client was last told.
    known_size: (u32, u32),
    closed: bool,
}

/// What the writer sends next.
struct Job {
    pf: PixelFormat,
    encoding: Encoding,
    level: u32,
    pseudo: Vec<Pseudo>,
    rects: Vec<Rect>,
}

enum Pseudo {
    ExtKeyAck,
    DesktopSize(u16, u16),
    ExtDesktopSize {
        reason: u16,
        status: u16,
        w: u16,
        h: u16,
    },
}

/// A connected client as the server and the tracker see it.
pub(super) struct Client {
    pub id: u64,
    stream: UnixStream,
    state: Mutex<ClientState>,
    cv: Condvar,
    pub bytes_sent: AtomicU64,
}

impl Client {
    /// Adds damage found by the tracker and wakes the writer.
    pub fn add_damage(&self, changed: &TileMap) {
        lock(&self.state).damage.merge(changed);
        self.cv.notify_all();
    }

    /// The screen changed size: everything is damaged at the new size.
    pub fn resized(&self, width: u32, height: u32) {
        lock(&self.state).damage = TileMap::full(width, height);
        self.cv.notify_all();
    }

    /// Ends the connection (both threads notice).
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_all();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Waits until there is something to send; `None` once the client or server is closing.
    fn next_job(&self, inner: &Inner) -> Option<Job> {
        let mut st = lock(&self.state);
        loop {
            if st.closed || inner.stopping() {
                return None;
            }
            let mut pseudo = Vec::new();
            if std::mem::take(&mut st.ext_key_ack) {
                pseudo.push(Pseudo::ExtKeyAck);
            }
            let mut rects = Vec::new();
            if st.requested {
                let (w, h) = inner.frame.size();
                let fits = w > 0 && h > 0 && w <= 0xffff && h <= 0xffff;
                if (w, h) != st.known_size && fits && (st.ext_desktop_size || st.desktop_size) {
                    pseudo.push(if st.ext_desktop_size {
                        Pseudo::ExtDesktopSize {
                            reason: 0,
                            status: 0,
                            w: w as u16,
                            h: h as u16,
                        }
                    } else {
                        Pseudo::DesktopSize(w as u16, h as u16)
                    });
                    st.known_size = (w, h);
                    st.damage = TileMap::full(w, h);
                    st.ext_desktop_reply = None;
                }
                if let Some((reason, status)) = st.ext_desktop_reply.take() {
                    let (kw, kh) = st.known_size;
                    pseudo.push(Pseudo::ExtDesktopSize {
                        reason,
                        status,
                        w: kw as u16,
                        h: kh as u16,
                    });
                }
                let (cw, ch) = (st.known_size.0.min(w), st.known_size.1.min(h));
                rects = st
                    .damage
                    .rects()
                    .into_iter()
                    .filter_map(|r| clip(r, cw, ch))
                    .collect();
                let ack_only = matches!(pseudo.as_slice(), [Pseudo::ExtKeyAck]);
                if !rects.is_empty() || (!pseudo.is_empty() && !ack_only) {
                    st.requested = false;
                    st.damage.clear();
                }
            }
            if !pseudo.is_empty() || !rects.is_empty() {
                return Some(Job {
                    pf: st.pf,
                    encoding: st.encoding,
                    level: st.level,
                    pseudo,
                    rects,
                });
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Applies one client message.
    fn handle(&self, inner: &Inner, msg: ClientMsg, keys: &mut HeldInput) {
        match msg {
            ClientMsg::SetPixelFormat(pf) => lock(&self.state).pf = pf,
            ClientMsg::SetEncodings(list) => {
                let mut st = lock(&self.state);
                st.encoding = list
                    .iter()
                    .find_map(|&e| Encoding::from_code(e))
                    .unwrap_or(Encoding::Raw);
                st.level = list
                    .iter()
                    .find(|&&e| (PSEUDO_COMPRESS_LEVEL_0..PSEUDO_COMPRESS_LEVEL_0 + 10).contains(&e))
                    .map_or(DEFAULT_LEVEL, |&e| (e - PSEUDO_COMPRESS_LEVEL_0) as u32);
                st.desktop_size = list.contains(&PSEUDO_DESKTOP_SIZE);
                let ext_desktop = list.contains(&PSEUDO_EXTENDED_DESKTOP_SIZE);
                if ext_desktop && !st.ext_desktop_size {
                    // Announces the extension, telling the client it may send SetDesktopSize.
                    st.ext_desktop_reply = Some((0, 0));
                }
                st.ext_desktop_size = ext_desktop;
                let ext_key = list.contains(&PSEUDO_QEMU_EXTENDED_KEY);
                if ext_key && !st.ext_key {
                    st.ext_key_ack = true;
                }
                st.ext_key = ext_key;
                tracing::debug!(client = self.id, encoding = ?st.encoding, level = st.level, "encodings set");
                drop(st);
                self.cv.notify_all();
            }
            ClientMsg::UpdateRequest {
                incremental,
                x,
                y,
                w,
                h,
            } => {
                let mut st = lock(&self.state);
                if !incremental {
                    st.damage.mark_rect(x.into(), y.into(), w.into(), h.into());
                }
                st.requested = true;
                drop(st);
                self.cv.notify_all();
            }
            ClientMsg::Key { down, keysym } => match keysym_to_linux(keysym) {
                Some((code, needs_shift)) => keys.key(inner, code, down, needs_shift),
                None => crate::log_once!(debug, keysym, "VNC keysym without a key on a US layout"),
            },
            ClientMsg::ExtendedKey {
                down,
                keysym,
                scancode,
            } => match xt_to_linux(scancode) {
                Some(code) => keys.key(inner, code, down, false),
                None => match keysym_to_linux(keysym) {
                    Some((code, needs_shift)) => keys.key(inner, code, down, needs_shift),
                    None => crate::log_once!(debug, scancode, keysym, "VNC key without a mapping"),
                },
            },
            ClientMsg::Pointer { buttons, x, y } => {
                let (w, h) = lock(&self.state).known_size;
                let x = u32::from(x).min(w.saturating_sub(1));
                let y = u32::from(y).min(h.saturating_sub(1));
                keys.pointer = (x, y, buttons);
                inner.input.pointer(x, y, buttons);
            }
            ClientMsg::CutText => {}
            ClientMsg::SetDesktopSize => {
                // reason 1 (this client asked), status 1 (resize prohibited): the guest owns the mode.
                lock(&self.state).ext_desktop_reply = Some((1, 1));
                self.cv.notify_all();
            }
        }
    }
}

/// Keys and buttons a client holds, to release them when it goes away.
#[derive(Default)]
struct HeldInput {
    keys: Vec<u16>,
    pointer: (u32, u32, u8),
}

impl HeldInput {
    fn key(&mut self, inner: &Inner, code: u16, down: bool, needs_shift: bool) {
        let shift_held = self
            .keys
            .iter()
            .any(|&k| k == KEY_LEFTSHIFT || k == KEY_RIGHTSHIFT);
        if down {
            // A shifted symbol typed without Shift (e.g. from an on-screen keyboard): add Shift.
            let add_shift = needs_shift && !shift_held;
            if add_shift {
                inner.input.key(KEY_LEFTSHIFT, true);
            }
            inner.input.key(code, true);
            if add_shift {
                inner.input.key(KEY_LEFTSHIFT, false);
            }
            if !self.keys.contains(&code) && self.keys.len() < 64 {
                self.keys.push(code);
            }
        } else {
            inner.input.key(code, false);
            self.keys.retain(|&k| k != code);
        }
    }

    fn release_all(&mut self, inner: &Inner) {
        for code in self.keys.drain(..) {
            inner.input.key(code, false);
        }
        let (x, y, buttons) = self.pointer;
        if buttons != 0 {
            inner.input.pointer(x, y, 0);
        }
    }
}

/// Clips a damage rectangle to the client's screen.
fn clip(r: Rect, w: u32, h: u32) -> Option<Rect> {
    let x1 = (r.x + r.w).min(w);
    let y1 = (r.y + r.h).min(h);
    (r.x < x1 && r.y < y1).then(|| Rect {
        x: r.x,
        y: r.y,
        w: x1 - r.x,
        h: y1 - r.y,
    })
}

/// Serves one connection until it closes. Runs on the connection's own thread.
pub(super) fn run(inner: Arc<Inner>, stream: UnixStream, id: u64) {
    let span = tracing::info_span!("vnc", client = id);
    let _enter = span.enter();
    match session(&inner, stream, id) {
        Ok(()) => tracing::info!("VNC client disconnected"),
        Err(e) => tracing::info!(reason = %error_chain(&e), "VNC client disconnected"),
    }
}

fn session(inner: &Arc<Inner>, mut stream: UnixStream, id: u64) -> Result<(), ProtoError> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (w, h) = inner.frame.size();
    let size = (w.min(0xffff), h.min(0xffff));
    let version = proto::handshake(&mut stream, size.0 as u16, size.1 as u16, &inner.name)?;
    stream.set_read_timeout(None)?;
    tracing::info!(?version, "VNC client connected");

    let client = Arc::new(Client {
        id,
        stream: stream.try_clone()?,
        state: Mutex::new(ClientState {
            pf: PixelFormat::NATIVE,
            encoding: Encoding::Raw,
            level: DEFAULT_LEVEL,
            desktop_size: false,
            ext_desktop_size: false,
            ext_key: false,
            ext_key_ack: false,
            ext_desktop_reply: None,
            requested: false,
            damage: TileMap::full(size.0, size.1),
            known_size: size,
            closed: false,
        }),
        cv: Condvar::new(),
        bytes_sent: AtomicU64::new(0),
    });
    inner.register(client.clone());

    let writer_stream = stream.try_clone()?;
    let (wi, wc) = (inner.clone(), client.clone());
    let writer = threads::spawn(ThreadKind::Vnc, "vnc-writer", move || {
        if let Err(e) = write_loop(&wi, &wc, writer_stream) {
            tracing::info!(client = wc.id, reason = %error_chain(&e), "VNC client write failed");
        }
        wc.close();
    });

    let mut held = HeldInput::default();
    let result = match writer {
        Ok(_) => {
            let mut reader = BufReader::with_capacity(16 * 1024, stream);
            loop {
                match proto::read_client_msg(&mut reader) {
                    Ok(msg) => client.handle(inner, msg, &mut held),
                    Err(ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "VNC client not served");
            Err(ProtoError::Io(std::io::Error::other(e)))
        }
    };
    held.release_all(inner);
    client.close();
    inner.unregister(id);
    result
}

fn write_loop(inner: &Inner, client: &Client, mut out: UnixStream) -> Result<(), ProtoError> {
    let mut encoder = Encoder::new(DEFAULT_LEVEL);
    let mut level_set = false;
    let mut buf = Vec::new();
    let mut rows = Vec::new();
    let mut px = Vec::new();
    while let Some(job) = client.next_job(inner) {
        if !level_set && job.encoding != Encoding::Raw {
            encoder.set_level(job.level);
            level_set = true;
        }
        buf.clear();
        let count = job.pseudo.len() + job.rects.len();
        proto::update_header(u16::try_from(count).unwrap_or(u16::MAX), &mut buf);
        for p in &job.pseudo {
            match *p {
                Pseudo::ExtKeyAck => proto::rect_header(0, 0, 0, 0, PSEUDO_QEMU_EXTENDED_KEY, &mut buf),
                Pseudo::DesktopSize(w, h) => proto::rect_header(0, 0, w, h, PSEUDO_DESKTOP_SIZE, &mut buf),
                Pseudo::ExtDesktopSize { reason, status, w, h } => {
                    proto::extended_desktop_size(reason, status, w, h, &mut buf)
                }
            }
        }
        for r in job.rects.iter().take(usize::from(u16::MAX) - job.pseudo.len()) {
            read_rect(inner, *r, &mut rows, &mut px);
            proto::rect_header(
                r.x as u16,
                r.y as u16,
                r.w as u16,
                r.h as u16,
                job.encoding.code(),
                &mut buf,
            );
            encoder
                .encode(job.encoding, &job.pf, &px, r.w as usize, &mut buf)
                .map_err(|e| ProtoError::Io(std::io::Error::other(e)))?;
        }
        out.write_all(&buf)?;
        client.bytes_sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
        inner.bytes_sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads one rectangle's pixels as native `0x00RRGGBB` values.
fn read_rect(inner: &Inner, r: Rect, rows: &mut Vec<u8>, px: &mut Vec<u32>) {
    let stride = inner.frame.stride().max(r.x as usize * 4 + r.w as usize * 4);
    rows.clear();
    rows.resize(stride * r.h as usize, 0);
    inner.frame.read_rows(r.y, r.h, rows);
    px.clear();
    for row in rows.chunks_exact(stride) {
        let line = &row[r.x as usize * 4..(r.x + r.w) as usize * 4];
        px.extend(
            line.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0])),
        );
    }
}
