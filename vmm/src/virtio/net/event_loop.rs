//! The card's own thread: an epoll loop over the TAP (readable / writable), the two queue-notify
//! eventfds (registered with KVM as ioeventfds, so a guest kick wakes this thread without a trip through
//! the vCPU's exit handling) and a stop eventfd. Interrupts go out through the transport's irqfd.
//!
//! The loop watches the TAP for input only while the guest has receive buffers, and for output only
//! while a frame waits on `EAGAIN`; level-triggered, so no readiness is ever lost.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::engine::{Engine, Progress};
use crate::threads::{self, ThreadError, ThreadKind};

const TOKEN_RX_KICK: u64 = 0;
const TOKEN_TX_KICK: u64 = 1;
const TOKEN_TAP: u64 = 2;
const TOKEN_STOP: u64 = 3;

/// Errors starting the loop.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    #[error("Failed to set up epoll")]
    Epoll(#[source] std::io::Error),
    #[error("Failed to create the stop eventfd")]
    StopFd(#[source] std::io::Error),
    #[error("Failed to start the network thread")]
    Spawn(#[source] ThreadError),
}

/// A running loop; stopping it (or dropping it) joins the thread.
pub struct EventLoop {
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl EventLoop {
    /// Starts the loop for an activated card.
    pub fn start(engine: Engine, kicks: [Arc<EventFd>; 2]) -> Result<EventLoop, EventLoopError> {
        let stop = Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(EventLoopError::StopFd)?);
        let epoll = Epoll::new().map_err(EventLoopError::Epoll)?;
        let add = |fd: i32, events: EventSet, token: u64| {
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(events, token))
                .map_err(EventLoopError::Epoll)
        };
        add(kicks[0].as_raw_fd(), EventSet::IN, TOKEN_RX_KICK)?;
        add(kicks[1].as_raw_fd(), EventSet::IN, TOKEN_TX_KICK)?;
        add(stop.as_raw_fd(), EventSet::IN, TOKEN_STOP)?;
        add(engine.tap.as_raw_fd(), EventSet::empty(), TOKEN_TAP)?;
        let name = format!("net-{}", engine.tap.name());
        let thread = threads::spawn(ThreadKind::Net, name, move || run(engine, &epoll, &kicks))
            .map_err(EventLoopError::Spawn)?;
        Ok(EventLoop {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            if let Err(e) = self.stop.write(1) {
                tracing::error!(error = %e, "virtio-net: failed to signal the network thread to stop");
            }
            if t.join().is_err() {
                tracing::error!("virtio-net: the network thread panicked");
            }
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut engine: Engine, epoll: &Epoll, kicks: &[Arc<EventFd>; 2]) {
    let tap_fd = engine.tap.as_raw_fd();
    let mut watching = EventSet::empty();
    let mut events = vec![EpollEvent::default(); 8];
    loop {
        let (rx, tx) = engine.run();
        let mut want = EventSet::empty();
        if rx != Progress::WaitBuffers {
            want |= EventSet::IN;
        }
        if tx == Progress::WaitWritable {
            want |= EventSet::OUT;
        }
        if want != watching {
            if let Err(e) = epoll.ctl(ControlOperation::Modify, tap_fd, EpollEvent::new(want, TOKEN_TAP)) {
                tracing::error!(error = %e, "virtio-net: epoll modify failed; network thread stops");
                return;
            }
            watching = want;
        }
        let timeout = if rx == Progress::More || tx == Progress::More {
            0
        } else {
            -1
        };
        let n = match epoll.wait(timeout, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "virtio-net: epoll wait failed; network thread stops");
                return;
            }
        };
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_STOP => return,
                // Reading resets the counter; a failure (EAGAIN) only means it was already read.
                TOKEN_RX_KICK => {
                    let _ = kicks[0].read();
                }
                TOKEN_TX_KICK => {
                    let _ = kicks[1].read();
                }
                _ => {}
            }
        }
    }
}
