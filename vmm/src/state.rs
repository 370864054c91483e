//! State shared between the vCPU threads, the devices, the control socket and the main thread.
//!
//! Devices report power events here; the main thread waits for them and decides (stop, reboot,
//! crash). Pause/resume parks the vCPU threads on a condition variable after kicking them out of
//! KVM_RUN with a signal.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lock;
use crate::runner::error_chain;
use crate::threads::{self, ThreadKind};

/// Externally visible VM state: part of the control protocol.
pub use vmm_api::control::RunState;

/// The inverse of `RunState as u8`, for the atomic that holds the state.
fn run_state_from_u8(v: u8) -> RunState {
    match v {
        0 => RunState::Starting,
        1 => RunState::Running,
        2 => RunState::Paused,
        3 => RunState::Rebooting,
        4 => RunState::Stopping,
        5 => RunState::Stopped,
        _ => RunState::Crashed,
    }
}

/// Why the current run of the guest ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    /// Guest powered off (ACPI S5) or a forced stop was requested.
    Poweroff,
    ForceStop,
    /// Guest asked for a reset (i8042, ACPI reset register, KVM system event).
    Reboot,
    /// Unrecoverable: the process exits with `code` (see `exit_codes`).
    Crash {
        code: i32,
        reason: String,
    },
}

/// Never-set marker for timestamps.
const UNSET: u64 = u64::MAX;

pub struct Shared {
    pub vm_id: String,
    pub started: Instant,
    pub started_unix_ms: u64,
    state: AtomicU8,
    reboots: AtomicU32,
    /// Microseconds since `started`: start of the current boot, first marker 1 and 2 writes.
    boot_started_us: AtomicU64,
    marker_us: [AtomicU64; 2],
    /// When the event ending the current boot was raised.
    ended_us: AtomicU64,
    /// First boot's markers (kept across reboots for the start-up benchmark).
    first_marker_us: [AtomicU64; 2],
    event: Mutex<Option<VmEvent>>,
    event_cv: Condvar,
    /// Set when vCPUs must leave KVM_RUN (pause, stop); checked once per exit.
    kick: AtomicBool,
    pause: Mutex<PauseState>,
    pause_cv: Condvar,
    vcpu_threads: Mutex<Vec<(libc::pthread_t, i32)>>,
    /// CPU time of vCPU threads of earlier boots, in ms.
    exited_vcpu_ms: AtomicU64,
    sample_registers: AtomicBool,
}

#[derive(Default)]
struct PauseState {
    paused: bool,
    stop: bool,
    parked: usize,
}

impl Shared {
    pub fn new(vm_id: &str, started: Instant) -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let unix = unix.saturating_sub(started.elapsed().as_millis() as u64);
        Shared {
            vm_id: vm_id.to_owned(),
            started,
            started_unix_ms: unix,
            state: AtomicU8::new(RunState::Starting as u8),
            reboots: AtomicU32::new(0),
            boot_started_us: AtomicU64::new(0),
            marker_us: [AtomicU64::new(UNSET), AtomicU64::new(UNSET)],
            ended_us: AtomicU64::new(UNSET),
            first_marker_us: [AtomicU64::new(UNSET), AtomicU64::new(UNSET)],
            event: Mutex::new(None),
            event_cv: Condvar::new(),
            kick: AtomicBool::new(false),
            pause: Mutex::new(PauseState::default()),
            pause_cv: Condvar::new(),
            vcpu_threads: Mutex::new(Vec::new()),
            exited_vcpu_ms: AtomicU64::new(0),
            sample_registers: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn state(&self) -> RunState {
        run_state_from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: RunState) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub fn reboots(&self) -> u32 {
        self.reboots.load(Ordering::Relaxed)
    }

    /// Called by the main thread before (re)starting the guest.
    pub fn begin_boot(&self, reboot: bool) {
        if reboot {
            self.reboots.fetch_add(1, Ordering::Relaxed);
        }
        self.boot_started_us.store(self.now_us(), Ordering::Relaxed);
        for m in self.marker_us.iter().chain([&self.ended_us]) {
            m.store(UNSET, Ordering::Relaxed);
        }
        *lock(&self.event) = None;
        // A pause requested before or during a reboot holds: the new vCPUs park at their first
        // checkpoint (kick stays set) until `resume`.
        let mut p = lock(&self.pause);
        p.stop = false;
        self.kick.store(p.paused, Ordering::Release);
        drop(p);
    }

    /// Boot marker write from the guest (1 = first instruction, 2 = banner).
    pub fn boot_marker(&self, value: u8) {
        let idx = match value {
            1 => 0,
            2 => 1,
            _ => return,
        };
        let now = self.now_us();
        let _ = self.marker_us[idx].compare_exchange(UNSET, now, Ordering::Relaxed, Ordering::Relaxed);
        let _ = self.first_marker_us[idx].compare_exchange(UNSET, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// (boot start, marker 1, marker 2) of the current boot in µs since process start.
    pub fn boot_times_us(&self) -> (u64, Option<u64>, Option<u64>) {
        let get = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != UNSET);
        (
            self.boot_started_us.load(Ordering::Relaxed),
            get(&self.marker_us[0]),
            get(&self.marker_us[1]),
        )
    }

    /// When the current boot ended (power event, crash, stop), in µs since process start.
    pub fn ended_us(&self) -> Option<u64> {
        Some(self.ended_us.load(Ordering::Relaxed)).filter(|v| *v != UNSET)
    }

    /// Markers 1 and 2 of the very first boot, in µs since process start.
    pub fn first_boot_markers_us(&self) -> (Option<u64>, Option<u64>) {
        let get = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != UNSET);
        (get(&self.first_marker_us[0]), get(&self.first_marker_us[1]))
    }

    /// Reports an event that ends the current run; the first one wins.
    pub fn request(&self, ev: VmEvent) {
        let mut slot = lock(&self.event);
        if slot.is_none() {
            let _ =
                self.ended_us
                    .compare_exchange(UNSET, self.now_us(), Ordering::Relaxed, Ordering::Relaxed);
            *slot = Some(ev);
            self.event_cv.notify_all();
        }
        drop(slot);
        self.kick.store(true, Ordering::Release);
    }

    /// Waits (main thread) for the event ending this run.
    pub fn wait_event(&self) -> VmEvent {
        let mut slot = lock(&self.event);
        loop {
            if let Some(ev) = slot.take() {
                return ev;
            }
            slot = self.event_cv.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Debug aid: whether vCPUs log their registers when kicked (`VMM_DEBUG_SAMPLE_SECS` set).
    pub fn sample_registers(&self) -> bool {
        self.sample_registers.load(Ordering::Relaxed)
    }

    /// Starts kicking the vCPUs every `every` so each logs where it is (for guests that hang silently).
    pub fn start_register_sampling(self: &std::sync::Arc<Self>, every: Duration) {
        self.sample_registers.store(true, Ordering::Relaxed);
        let shared = self.clone();
        let sampler = threads::spawn(ThreadKind::Sampler, "sampler", move || loop {
            std::thread::sleep(every);
            shared.kick_vcpus();
        });
        if let Err(e) = sampler {
            tracing::error!(error = %error_chain(&e), "register sampling not started");
        }
    }

    /// Whether a vCPU must stop running guest code (cheap: one atomic load).
    #[inline]
    pub fn kicked(&self) -> bool {
        self.kick.load(Ordering::Acquire)
    }

    pub fn event_pending(&self) -> bool {
        lock(&self.event).is_some()
    }

    /// vCPU thread: called when `kicked()`; parks while paused. Returns false if the thread must exit.
    pub fn vcpu_checkpoint(&self) -> bool {
        let mut p = lock(&self.pause);
        if p.stop || self.event_pending() {
            return false;
        }
        if p.paused {
            p.parked += 1;
            self.pause_cv.notify_all();
            while p.paused && !p.stop {
                p = self.pause_cv.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.parked -= 1;
        }
        !p.stop
    }

    pub fn register_vcpu_thread(&self) {
        // SAFETY: pthread_self and gettid have no preconditions.
        let (pt, tid) = unsafe { (libc::pthread_self(), libc::gettid()) };
        lock(&self.vcpu_threads).push((pt, tid));
    }

    pub fn unregister_vcpu_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.exited_vcpu_ms
            .fetch_add(crate::stats::this_thread_cpu_ms(), Ordering::Relaxed);
        // SAFETY: pthread_equal only compares two thread ids.
        lock(&self.vcpu_threads).retain(|(pt, _)| unsafe { libc::pthread_equal(*pt, me) } == 0);
    }

    /// CPU time of all vCPU threads since the process started (earlier boots included), in ms.
    pub fn vcpu_cpu_ms(&self) -> u64 {
        let tids: Vec<i32> = lock(&self.vcpu_threads).iter().map(|(_, t)| *t).collect();
        self.exited_vcpu_ms.load(Ordering::Relaxed) + crate::stats::threads_cpu_ms(&tids)
    }

    /// Sends the kick signal to every running vCPU thread so KVM_RUN returns.
    pub fn kick_vcpus(&self) {
        let threads = lock(&self.vcpu_threads);
        for (pt, _) in threads.iter() {
            // SAFETY: the thread is registered, so it has not exited yet (it unregisters under this
            // lock before returning); the signal has a handler installed by `vstate::vcpu`.
            unsafe { libc::pthread_kill(*pt, crate::vstate::vcpu::kick_signal()) };
        }
    }

    fn running_vcpus(&self) -> usize {
        lock(&self.vcpu_threads).len()
    }

    /// Parks all vCPUs; returns once every running vCPU is parked (or after `timeout`).
    pub fn pause(&self, timeout: Duration) -> bool {
        lock(&self.pause).paused = true;
        self.kick.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        loop {
            self.kick_vcpus();
            let parked = lock(&self.pause).parked;
            if parked >= self.running_vcpus() {
                self.set_state(RunState::Paused);
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn resume(&self) {
        let mut p = lock(&self.pause);
        p.paused = false;
        if !p.stop && !self.event_pending() {
            self.kick.store(false, Ordering::Release);
        }
        self.pause_cv.notify_all();
        drop(p);
        if self.state() == RunState::Paused {
            self.set_state(RunState::Running);
        }
    }

    /// Makes every vCPU thread leave its loop; the caller then joins them.
    pub fn stop_vcpus(&self) {
        let mut p = lock(&self.pause);
        p.stop = true;
        self.pause_cv.notify_all();
        drop(p);
        self.kick.store(true, Ordering::Release);
        self.kick_vcpus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_wins_and_markers_are_kept_once() {
        let s = Shared::new("t", Instant::now());
        s.begin_boot(false);
        s.boot_marker(1);
        let (_, m1, m2) = s.boot_times_us();
        assert!(m1.is_some() && m2.is_none());
        s.request(VmEvent::Reboot);
        s.request(VmEvent::Poweroff);
        assert!(s.kicked());
        assert_eq!(s.wait_event(), VmEvent::Reboot);
        s.begin_boot(true);
        assert_eq!(s.reboots(), 1);
        assert!(!s.kicked());
        assert!(s.boot_times_us().1.is_none());
        assert!(s.first_boot_markers_us().0.is_some());
    }

    #[test]
    fn a_pause_during_reboot_holds_for_the_next_boot() {
        let s = Shared::new("t", Instant::now());
        s.begin_boot(false);
        // No vCPU thread is running (between boots): the pause takes effect at once.
        assert!(s.pause(Duration::from_millis(100)));
        s.begin_boot(true);
        assert!(s.kicked(), "new vCPUs must stop at their first checkpoint");
        assert_eq!(s.state(), RunState::Paused);
        s.resume();
        assert!(!s.kicked());
        assert_eq!(s.state(), RunState::Running);
    }

    #[test]
    fn resume_releases_a_parked_vcpu() {
        let s = std::sync::Arc::new(Shared::new("t", Instant::now()));
        s.begin_boot(false);
        lock(&s.pause).paused = true;
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.vcpu_checkpoint());
        while lock(&s.pause).parked == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.resume();
        assert!(t.join().unwrap());
    }
}
