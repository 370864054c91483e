//! The one way the VMM starts a thread: named (visible in `/proc/<pid>/task/*/comm` and `top -H`),
//! running inside the caller's tracing span (so every log line keeps the `vm_id`), with its
//! [`ThreadKind`] recorded on the thread.
//!
//! The kind is the seam for per-thread seccomp (ARCHITECTURE.md, "The jail"): a vCPU thread, a socket
//! server and the signal thread need different system calls, and the filter for a kind is installed
//! right here (`seccomp::apply`), before the thread runs any of the caller's code.
//!
//! A new thread inherits its creator's filter, and stacked filters allow only what all of them allow. So
//! that each thread runs under exactly its own kind's list, whoever asks for it, threads are created by
//! one **spawner** thread (started by `main` with [`start_spawner`] before any other), whose list is the
//! union of the others'; without a spawner (unit tests, a library user) `spawn` creates the thread
//! itself.

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;

/// What a thread does, coarse enough to share one system-call allow-list per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// Runs one vCPU: KVM_RUN and the device emulation its exits trigger.
    Vcpu,
    /// Waits for SIGTERM/SIGINT.
    Signals,
    /// Debug aid that kicks the vCPUs periodically (`VMM_DEBUG_SAMPLE_SECS`).
    Sampler,
    /// `control.sock`: the listener and one thread per connection.
    Control,
    /// `serial.sock`: the listener and the reader and writer of each connection.
    Serial,
    /// `vnc.sock`: the listener, the dirty tracker and the reader and writer of each client.
    Vnc,
    /// A network card's event loop: TAP reads and writes, queue kicks, guest memory.
    Net,
    /// The main thread once the VM is set up: builds each boot's machine, waits for the run to end.
    Main,
    /// Creates every other thread (see the module header).
    Spawner,
}

impl ThreadKind {
    /// Every kind.
    pub const ALL: [ThreadKind; 9] = [
        Self::Vcpu,
        Self::Signals,
        Self::Sampler,
        Self::Control,
        Self::Serial,
        Self::Vnc,
        Self::Net,
        Self::Main,
        Self::Spawner,
    ];

    /// The kinds the spawner starts.
    pub const SPAWNED: [ThreadKind; 7] = [
        Self::Vcpu,
        Self::Signals,
        Self::Sampler,
        Self::Control,
        Self::Serial,
        Self::Vnc,
        Self::Net,
    ];

    /// Lower-case name, for logs and the seccomp violation record.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vcpu => "vcpu",
            Self::Signals => "signals",
            Self::Sampler => "sampler",
            Self::Control => "control",
            Self::Serial => "serial",
            Self::Vnc => "vnc",
            Self::Net => "net",
            Self::Main => "main",
            Self::Spawner => "spawner",
        }
    }
}

/// Errors starting a thread.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error("Failed to spawn thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to install the {0} thread's seccomp filter")]
    Seccomp(&'static str, #[source] crate::seccomp::SeccompError),
}

/// A thread to create, run by the spawner.
type Job = Box<dyn FnOnce() + Send>;

static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

thread_local! {
    static KIND: Cell<Option<ThreadKind>> = const { Cell::new(None) };
}

/// The kind of the current thread, if [`spawn`] started it.
pub fn current_kind() -> Option<ThreadKind> {
    KIND.with(Cell::get)
}

/// Records the calling thread's kind and installs its filter (`main` for itself; threads from [`spawn`]).
pub fn enter_kind(kind: ThreadKind) -> Result<(), ThreadError> {
    KIND.with(|k| k.set(Some(kind)));
    crate::seccomp::apply(kind).map_err(|e| ThreadError::Seccomp(kind.name(), e))
}

/// Installs the filter of `kind` or ends the process: a thread must never run unfiltered by mistake.
fn enter_or_exit(kind: ThreadKind) {
    if let Err(e) = enter_kind(kind) {
        tracing::error!(error = %crate::runner::error_chain(&e), "cannot filter a thread's system calls");
        std::process::exit(crate::exit_codes::EXIT_VMM_ERROR);
    }
}

/// Starts the spawner thread (under its own filter) that creates every later thread. Call once, before
/// any other thread is spawned and after `seccomp::init`.
pub fn start_spawner() -> Result<(), ThreadError> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("spawner".into())
        .spawn(move || {
            // Process-directed signals (SIGTERM) must go to the threads that expect them, never here.
            SignalMask::all_but_sigsys().apply();
            enter_or_exit(ThreadKind::Spawner);
            for job in rx {
                job();
            }
        })
        .map_err(|source| ThreadError::Spawn {
            name: "spawner".into(),
            source,
        })?;
    let _ = SPAWNER.set(tx);
    Ok(())
}

/// A thread's blocked-signal set, carried from the caller of [`spawn`] to the new thread.
struct SignalMask(libc::sigset_t);

// SAFETY: a sigset_t is plain data (a bit array), valid in any thread.
unsafe impl Send for SignalMask {}

impl SignalMask {
    fn of_caller() -> Self {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid; with a null new set, pthread_sigmask only reads the current mask into it.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        }
        Self(set)
    }

    fn all_but_sigsys() -> Self {
        // SAFETY: sigset_t is plain data; sigfillset initialises it and sigdelset edits it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t and SIGSYS a valid signal number.
        unsafe {
            libc::sigfillset(&mut set);
            libc::sigdelset(&mut set, libc::SIGSYS);
        }
        Self(set)
    }

    fn apply(&self) {
        // SAFETY: sets this thread's mask to an initialised set; the old mask is not wanted.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Starts `f` on a new thread called `name`, in the current tracing span, under the seccomp filter of
/// `kind`.
pub fn spawn<F, T>(kind: ThreadKind, name: impl Into<String>, f: F) -> Result<JoinHandle<T>, ThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = name.into();
    let span = tracing::Span::current();
    let builder = std::thread::Builder::new().name(name.clone());
    // The new thread starts with the caller's signal mask, as if the caller had created it (the runner
    // blocks SIGTERM/SIGINT everywhere but in the signal thread), not with the spawner's.
    let mask = SignalMask::of_caller();
    let body = move || {
        mask.apply();
        enter_or_exit(kind);
        let _entered = span.enter();
        f()
    };
    let spawned = match SPAWNER.get() {
        None => builder.spawn(body),
        Some(spawner) => {
            let (reply, answer) = mpsc::sync_channel(1);
            let job: Job = Box::new(move || {
                let _ = reply.send(builder.spawn(body));
            });
            spawner
                .send(job)
                .map_err(|_| std::io::Error::other("the spawner thread has ended"))
                .and_then(|()| {
                    answer
                        .recv()
                        .map_err(|_| std::io::Error::other("the spawner thread has ended"))?
                })
        }
    };
    spawned.map_err(|source| ThreadError::Spawn { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_named_and_know_their_kind() {
        let t = spawn(ThreadKind::Control, "control-test", || {
            (std::thread::current().name().map(String::from), current_kind())
        })
        .unwrap();
        let (name, kind) = t.join().unwrap();
        assert_eq!(name.as_deref(), Some("control-test"));
        assert_eq!(kind, Some(ThreadKind::Control));
        assert_eq!(current_kind(), None, "a thread not started by spawn has no kind");
    }
}
