//! The one sampler task: every `interval_secs` it lists the running VMs, asks each VMM for its `status`
//! (concurrently, each exchange bounded by a short timeout, so a stuck VMM costs one missed sample) and
//! records all samples, the 5-minute roll-up and the pruning in one transaction (`db::metrics::record_pass`).
//! Per sample that is one JSON line over a unix socket and one row; per pass one transaction.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::join_all;
use sqlx::SqlitePool;
use tokio::task::JoinHandle;
use vmm_api::control::client::Client;
use vmm_api::control::Status;
use vmm_api::run_dir::RunDir;

use super::MetricsSettings;
use crate::db::metrics::{self as store, SampleRow};

/// A VMM answers `status` from its own control thread in microseconds; more means it is stuck.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the sampler; `None` when sampling is off (`interval_secs = 0`).
pub fn spawn(pool: SqlitePool, vms_dir: PathBuf, settings: MetricsSettings) -> Option<JoinHandle<()>> {
    if settings.interval_secs == 0 {
        tracing::info!("VM metrics sampling is off");
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(settings.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = pass(&pool, &vms_dir, &settings).await {
                tracing::warn!(error = %e, "VM metrics pass failed");
            }
        }
    }))
}

/// The counters of one `status` answer as a stored sample.
pub fn sample_of(status: &Status, at: i64) -> SampleRow {
    let sum = |f: fn(&vmm_api::control::DiskStatus) -> u64| status.disks.iter().map(f).sum::<u64>();
    SampleRow {
        at,
        cpu_ms: clamp(status.vcpu_time_ms),
        rss_bytes: clamp(status.rss_bytes),
        disk_read_bytes: clamp(sum(|d| d.read_bytes)),
        disk_write_bytes: clamp(sum(|d| d.write_bytes)),
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn pass(
    pool: &SqlitePool,
    vms_dir: &std::path::Path,
    settings: &MetricsSettings,
) -> Result<(), sqlx::Error> {
    let vms = store::running_vms(pool).await?;
    let at = now_unix();
    let answers = join_all(vms.iter().map(|(id, _)| async move {
        let client = Client::of(&RunDir::new(vms_dir.join(id))).with_timeout(STATUS_TIMEOUT);
        match client.status().await {
            Ok(status) => Some((id.clone(), sample_of(&status, at))),
            Err(e) => {
                // A VM that just stopped has no socket any more; the next pass will not list it.
                tracing::debug!(vm_id = %id, error = %e, "no metrics sample");
                None
            }
        }
    }))
    .await;
    let samples: Vec<_> = answers.into_iter().flatten().collect();
    let out = store::record_pass(pool, &samples, at, settings.retention()).await?;
    tracing::debug!(vms = vms.len(), ?out, "VM metrics pass");
    Ok(())
}
