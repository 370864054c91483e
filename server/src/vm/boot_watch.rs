//! Boot progress: while a running VM's guest boots, a task follows its serial output (the VMM's
//! `serial.sock`, after catching up with the `console-log` the VMM kept), shows the last line (at most
//! once a second) and records when the guest is ready by `boot_rule`'s rule, with the time from the VMM's
//! start, in the VM's history. Each change is announced on the event stream like a state change, so lists
//! and pages refetch.
//!
//! "Booting" is a phase of a `running` VM, not a lifecycle state: the VMM runs and holds its resources
//! exactly as for any running VM, every action a running VM allows is allowed, and billing and quota are
//! unchanged; only what the guest has shown differs. So the lifecycle table stays as it is, and a guest
//! that never announces itself costs nothing but a label.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use vmm_api::control::client::Client;
use vmm_api::run_dir::RunDir;

use super::boot_rule::{LineTracker, Ready};
use super::supervisor::Supervisor;
use crate::db::{self, boot};

/// Serial output is read in pieces of this size.
const READ_BUF: usize = 16 * 1024;
/// The shown line changes at most this often.
const LINE_EVERY: Duration = Duration::from_secs(1);
/// How often a guest that prints nothing is checked (VM still running, timeout).
const TICK: Duration = Duration::from_secs(1);
/// How often the VMM's sockets are tried before they answer.
const CONNECT_RETRY: Duration = Duration::from_millis(200);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Supervisor {
    /// Follows the boot of a VM that just became (or was found) `running`, in the background.
    pub(super) fn watch_boot(&self, vm_id: &str) {
        let this = self.clone();
        let id = vm_id.to_string();
        tokio::spawn(async move { this.follow_boot(&id).await });
    }

    async fn follow_boot(&self, vm_id: &str) {
        let dir = RunDir::new(self.run_dir(vm_id));
        let Some((mut serial, started_ms)) = self.connect_serial(vm_id, &dir).await else {
            return;
        };
        let mut tracker = LineTracker::default();
        // What the guest printed before we connected (the VMM keeps the last 64 KiB); lines printed in
        // between come twice, which the rule does not mind.
        let mut ready = match Client::of(&dir).console_log().await {
            Ok(text) => tracker.feed(&text),
            Err(e) => {
                tracing::debug!(vm_id, error = %e, "no console log to catch up with");
                None
            }
        };
        let timeout = self.settings().boot_ready_timeout;
        let mut shown = String::new();
        let mut shown_at: Option<Instant> = None;
        let mut buf = vec![0u8; READ_BUF];
        loop {
            if let Some(rule) = ready {
                self.record_ready(vm_id, rule, &tracker, started_ms).await;
                return;
            }
            if !self.is_running_process(vm_id) {
                return;
            }
            let elapsed = Duration::from_millis(now_ms().saturating_sub(started_ms));
            if elapsed >= timeout {
                self.record_ready(vm_id, Ready::NoSignal, &tracker, started_ms)
                    .await;
                return;
            }
            let line = tracker.last_line();
            if line != shown && shown_at.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                shown = line.to_string();
                shown_at = Some(Instant::now());
                match boot::set_line(self.pool(), vm_id, &shown).await {
                    Ok(true) => self.announce_id(vm_id).await,
                    Ok(false) => return,
                    Err(e) => tracing::warn!(vm_id, error = %e, "cannot record the boot line"),
                }
            }
            match tokio::time::timeout(TICK, serial.read(&mut buf)).await {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => ready = tracker.feed(&String::from_utf8_lossy(&buf[..n])),
                Ok(Err(e)) => {
                    tracing::debug!(vm_id, error = %e, "serial socket closed");
                    return;
                }
                Err(_) => {}
            }
        }
    }

    /// The VMM's serial socket and its start time (unix ms), once both answer; `None` if the VMM ends or
    /// does not answer within the start timeout.
    async fn connect_serial(&self, vm_id: &str, dir: &RunDir) -> Option<(UnixStream, u64)> {
        let deadline = Instant::now() + self.settings().start_timeout;
        loop {
            if !self.is_running_process(vm_id) {
                return None;
            }
            let status = Client::of(dir).status().await;
            match (status, UnixStream::connect(dir.serial()).await) {
                (Ok(status), Ok(serial)) => return Some((serial, status.started_unix_ms)),
                (Err(e), _) if Instant::now() > deadline => {
                    tracing::warn!(vm_id, error = %e, "boot progress not followed: the VMM does not answer");
                    return None;
                }
                (_, Err(e)) if Instant::now() > deadline => {
                    tracing::warn!(vm_id, error = %e, "boot progress not followed: no serial socket");
                    return None;
                }
                _ => tokio::time::sleep(CONNECT_RETRY).await,
            }
        }
    }

    async fn record_ready(&self, vm_id: &str, rule: Ready, tracker: &LineTracker, started_ms: u64) {
        let after_ms = now_ms().saturating_sub(started_ms);
        let line = tracker.ready_line();
        let message = match rule {
            Ready::NoSignal => format!(
                "no readiness signal from the guest within {} s",
                self.settings().boot_ready_timeout.as_secs()
            ),
            _ => format!("guest ready after {:.1} s ({line})", after_ms as f64 / 1000.0),
        };
        let readiness = boot::Readiness {
            rule: rule.as_str(),
            after_ms: (rule != Ready::NoSignal).then(|| i64::try_from(after_ms).unwrap_or(i64::MAX)),
            line,
            message: &message,
        };
        match boot::set_ready(self.pool(), vm_id, &readiness, db::now()).await {
            Ok(true) => {
                tracing::info!(vm_id, rule = rule.as_str(), after_ms, "guest boot finished");
                self.announce_id(vm_id).await;
            }
            Ok(false) => {}
            Err(e) => tracing::error!(vm_id, error = %e, "cannot record the guest's readiness"),
        }
    }
}
