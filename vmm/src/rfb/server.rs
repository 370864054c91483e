//! The server: accept loop, client registry, and the dirty tracker that fans damage out to clients.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use super::client::{self, Client};
use super::damage::Shadow;
use super::{FrameSource, InputSink, RfbError};
use crate::lock;
use crate::threads::{self, ThreadKind};

/// How often the tracker asks for dirty rows while clients are connected (25 Hz).
pub const DEFAULT_POLL: Duration = Duration::from_millis(40);

/// State shared by the server handle, the tracker and the client threads.
pub(super) struct Inner {
    pub frame: Arc<dyn FrameSource>,
    pub input: Arc<dyn InputSink>,
    pub name: String,
    pub bytes_sent: AtomicU64,
    stop: AtomicBool,
    stop_evt: EventFd,
    clients: Mutex<Vec<Arc<Client>>>,
    next_id: AtomicU64,
    /// `true` once the tracker thread runs; its condvar wakes it for stop or a first client.
    tracker: Mutex<bool>,
    tracker_cv: Condvar,
    poll: Mutex<Duration>,
}

impl Inner {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn register(&self, client: Arc<Client>) {
        lock(&self.clients).push(client);
        // Under the tracker's lock, so a tracker about to sleep for lack of clients cannot miss it.
        let _tracker = lock(&self.tracker);
        self.tracker_cv.notify_all();
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.clients).retain(|c| c.id != id);
    }

    fn clients(&self) -> Vec<Arc<Client>> {
        lock(&self.clients).clone()
    }
}

/// An RFB server for one screen and one set of input devices. Cloning gives another handle to the
/// same server.
#[derive(Clone)]
pub struct RfbServer {
    inner: Arc<Inner>,
}

impl RfbServer {
    /// A server for `frame`, sending input to `input`; `name` is the desktop name viewers show.
    pub fn new(frame: Arc<dyn FrameSource>, input: Arc<dyn InputSink>, name: &str) -> Result<Self, RfbError> {
        Ok(RfbServer {
            inner: Arc::new(Inner {
                frame,
                input,
                name: name.to_owned(),
                bytes_sent: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                stop_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(RfbError::StopEvent)?,
                clients: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                tracker: Mutex::new(false),
                tracker_cv: Condvar::new(),
                poll: Mutex::new(DEFAULT_POLL),
            }),
        })
    }

    /// Changes how often dirty rows are polled (default [`DEFAULT_POLL`]).
    pub fn set_poll_interval(&self, every: Duration) {
        *lock(&self.inner.poll) = every.max(Duration::from_millis(1));
    }

    /// Binds `path` (replacing a stale socket, mode 0600), for [`RfbServer::serve`].
    pub fn bind(path: &Path) -> Result<UnixListener, RfbError> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| RfbError::Bind(path.into(), e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| RfbError::Bind(path.into(), e))?;
        Ok(listener)
    }

    /// Accepts connections until [`RfbServer::stop`]; each client runs on its own threads.
    pub fn serve(&self, listener: UnixListener) -> Result<(), RfbError> {
        listener.set_nonblocking(true).map_err(RfbError::Accept)?;
        while !self.inner.stopping() {
            let mut fds = [
                libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.inner.stop_evt.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a live array of two initialised pollfd structs whose length we pass;
            // poll only writes their `revents` fields.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RfbError::Accept(e));
            }
            if self.inner.stopping() {
                break;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = self.handle_connection(stream) {
                        tracing::warn!(error = %e, "VNC connection not served");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "VNC accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Ok(())
    }

    /// Runs [`RfbServer::serve`] on a thread named `vnc`.
    pub fn spawn(&self, listener: UnixListener) -> Result<std::thread::JoinHandle<()>, RfbError> {
        let server = self.clone();
        threads::spawn(ThreadKind::Vnc, "vnc", move || {
            if let Err(e) = server.serve(listener) {
                tracing::error!(error = %e, "VNC server stopped");
            }
        })
        .map_err(RfbError::Spawn)
    }

    /// Serves one already-connected stream (a socket pair in tests) on new threads.
    pub fn handle_connection(&self, stream: UnixStream) -> Result<(), RfbError> {
        if self.inner.stopping() {
            return Ok(());
        }
        self.ensure_tracker()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        threads::spawn(ThreadKind::Vnc, "vnc-client", move || {
            client::run(inner, stream, id)
        })
        .map(|_| ())
        .map_err(RfbError::Spawn)
    }

    /// Stops accepting, disconnects every client and ends the tracker.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        let _ = self.inner.stop_evt.write(1);
        {
            let _started = lock(&self.inner.tracker);
            self.inner.tracker_cv.notify_all();
        }
        for c in self.inner.clients() {
            c.close();
        }
    }

    /// Clients currently connected (past the handshake).
    pub fn client_count(&self) -> usize {
        lock(&self.inner.clients).len()
    }

    /// Bytes of FramebufferUpdate messages written to all clients so far.
    pub fn bytes_sent(&self) -> u64 {
        self.inner.bytes_sent.load(Ordering::Relaxed)
    }

    fn ensure_tracker(&self) -> Result<(), RfbError> {
        let mut started = lock(&self.inner.tracker);
        if *started {
            return Ok(());
        }
        // The first copy is taken before any client can read the screen, so every later change
        // shows up as damage against it.
        let _ = self.inner.frame.take_dirty_rows();
        let shadow = Shadow::new(&*self.inner.frame);
        let inner = self.inner.clone();
        threads::spawn(ThreadKind::Vnc, "vnc-dirty", move || track(&inner, shadow))
            .map_err(RfbError::Spawn)?;
        *started = true;
        Ok(())
    }
}

/// The dirty tracker: polls dirty rows while clients are connected and gives every client the tiles
/// that really changed.
fn track(inner: &Inner, mut shadow: Shadow) {
    loop {
        let every = *lock(&inner.poll);
        {
            let mut guard = lock(&inner.tracker);
            // Nobody watches: sleep until a client comes, leaving the dirty log to accumulate.
            while !inner.stopping() && lock(&inner.clients).is_empty() {
                guard = inner.tracker_cv.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            let _unused = inner
                .tracker_cv
                .wait_timeout(guard, every)
                .unwrap_or_else(|e| e.into_inner());
        }
        if inner.stopping() {
            return;
        }
        let clients = inner.clients();
        if clients.is_empty() {
            continue;
        }
        let size = inner.frame.size();
        if shadow.size() != size {
            tracing::info!(width = size.0, height = size.1, "screen size changed");
            let _ = inner.frame.take_dirty_rows();
            shadow = Shadow::new(&*inner.frame);
            for c in &clients {
                c.resized(size.0, size.1);
            }
            continue;
        }
        let dirty = inner.frame.take_dirty_rows();
        if dirty.is_empty() {
            continue;
        }
        let changed = shadow.update(&*inner.frame, &dirty);
        if !changed.is_empty() {
            for c in &clients {
                c.add_damage(&changed);
            }
        }
    }
}
