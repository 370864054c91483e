//! The one way the VMM starts a thread: named (visible in `/proc/<pid>/task/*/comm` and `top -H`),
//! running inside the caller's tracing span (so every log line keeps the `vm_id`), with its
//! [`ThreadKind`] recorded on the thread.
//!
//! The kind is the seam for per-thread seccomp (ARCHITECTURE.md, "The jail"): a vCPU thread, a socket
//! server and the signal thread need different system calls, and the filter for a kind will be
//! installed right here, before the thread runs any of the caller's code.

use std::cell::Cell;
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
}

thread_local! {
    static KIND: Cell<Option<ThreadKind>> = const { Cell::new(None) };
}

/// The kind of the current thread, if [`spawn`] started it.
pub fn current_kind() -> Option<ThreadKind> {
    KIND.with(Cell::get)
}

/// Starts `f` on a new thread called `name`, in the current tracing span.
pub fn spawn<F, T>(kind: ThreadKind, name: impl Into<String>, f: F) -> Result<JoinHandle<T>, ThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = name.into();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            KIND.with(|k| k.set(Some(kind)));
            let _entered = span.enter();
            f()
        })
        .map_err(|source| ThreadError::Spawn { name, source })
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
