//! The host's capacity: what this machine has (CPUs and memory from `/proc`, the data directory's
//! filesystem by `statvfs`), what VMs may commit of it (`admission.*` settings: overcommit ratios, a
//! reserve for the host, overrides for tests), and what its VMs really use (`usage`). Admission control
//! itself is SQL in the quota check's transaction (`db::admission`); this module measures and computes.

pub mod usage;

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("Cannot read {0}")]
    Read(&'static str, #[source] std::io::Error),
    #[error("Cannot measure the filesystem of {0}")]
    Statvfs(String, #[source] rustix::io::Errno),
    #[error("No MemTotal in /proc/meminfo")]
    NoMemTotal,
    #[error("Cannot record the host's capacity")]
    Db(#[from] sqlx::Error),
}

/// Measures this machine and records what VMs may commit of it (at start, before any launch).
pub async fn record(
    pool: &sqlx::SqlitePool,
    data_dir: &Path,
    settings: &AdmissionSettings,
) -> Result<Capacity, CapacityError> {
    let capacity = Capacity::compute(Physical::measure(data_dir)?, settings);
    crate::db::admission::store(pool, crate::db::admission::LOCAL, &capacity, crate::db::now()).await?;
    tracing::info!(
        memory_mib = capacity.memory_mib,
        memory_overcommit = capacity.memory_overcommit,
        disk_mib = capacity.disk_mib,
        disk_overcommit = capacity.disk_overcommit,
        "host capacity for admission control"
    );
    Ok(capacity)
}

/// `admission.*`: how much of the host VMs may commit (README, "Admission control").
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdmissionSettings {
    /// Guest memory committed may reach physical memory x this (guest RAM is allocated lazily, so more
    /// than 1.0 bets that guests do not touch all of theirs).
    pub memory_overcommit: f64,
    /// Disk committed (flavor sizes) may reach the data directory's filesystem size x this (disks are
    /// sparse, so more than 1.0 bets that guests do not fill theirs).
    pub disk_overcommit: f64,
    /// Memory kept for the host itself (portal, VMM overhead, page cache), taken off before VMs count.
    pub memory_reserve_mib: u64,
    /// Disk kept for the host itself.
    pub disk_reserve_gib: u64,
    /// Pretend the host has this much memory (MiB) instead of `/proc/meminfo`'s (tests, or to keep part of
    /// a machine out of the cloud). The reserve is not taken off an override.
    pub memory_mib: Option<u64>,
    /// Pretend the data directory's filesystem has this many GiB (reserve not taken off either).
    pub disk_gib: Option<u64>,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            memory_overcommit: 1.0,
            disk_overcommit: 1.0,
            memory_reserve_mib: 1024,
            disk_reserve_gib: 0,
            memory_mib: None,
            disk_gib: None,
        }
    }
}

impl AdmissionSettings {
    /// Refuses ratios that are not positive numbers (at most 100).
    pub fn validate(&self) -> Result<(), String> {
        for (key, ratio) in [
            ("memory_overcommit", self.memory_overcommit),
            ("disk_overcommit", self.disk_overcommit),
        ] {
            if !(ratio.is_finite() && ratio > 0.0 && ratio <= 100.0) {
                return Err(format!(
                    "admission.{key} must be a number above 0 and at most 100"
                ));
            }
        }
        Ok(())
    }
}

/// What the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Physical {
    pub cpus: u64,
    pub memory_mib: u64,
    /// Size of the filesystem holding the data directory (VM disks live there).
    pub disk_mib: u64,
    /// Free space on it, for non-root users (`f_bavail`).
    pub disk_free_mib: u64,
}

impl Physical {
    /// Measures this machine: online CPUs, `MemTotal`, and `statvfs` of `data_dir`.
    pub fn measure(data_dir: &Path) -> Result<Self, CapacityError> {
        let meminfo =
            std::fs::read_to_string("/proc/meminfo").map_err(|e| CapacityError::Read("/proc/meminfo", e))?;
        let memory_kib = meminfo_kib(&meminfo, "MemTotal").ok_or(CapacityError::NoMemTotal)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let fs = rustix::fs::statvfs(data_dir)
            .map_err(|e| CapacityError::Statvfs(data_dir.display().to_string(), e))?;
        let mib = |blocks: u64| blocks.saturating_mul(fs.f_frsize) / (1024 * 1024);
        Ok(Self {
            cpus,
            memory_mib: memory_kib / 1024,
            disk_mib: mib(fs.f_blocks),
            disk_free_mib: mib(fs.f_bavail),
        })
    }
}

/// A `Key:   N kB` field of `/proc/meminfo` (or `/proc/<pid>/status`), in KiB.
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What VMs may commit on a host: the admission limits, with the facts they came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub cpus: u64,
    pub memory_physical_mib: u64,
    pub memory_mib: u64,
    pub memory_overcommit: f64,
    pub disk_physical_mib: u64,
    pub disk_mib: u64,
    pub disk_overcommit: f64,
}

impl Capacity {
    /// Physical x overcommit - reserve, or the override as it is.
    pub fn compute(physical: Physical, s: &AdmissionSettings) -> Self {
        let scaled = |mib: u64, ratio: f64| (mib as f64 * ratio).floor() as u64;
        let memory_physical_mib = s.memory_mib.unwrap_or(physical.memory_mib);
        let memory_mib = match s.memory_mib {
            Some(m) => scaled(m, s.memory_overcommit),
            None => scaled(physical.memory_mib, s.memory_overcommit).saturating_sub(s.memory_reserve_mib),
        };
        let disk_physical_mib = s.disk_gib.map_or(physical.disk_mib, |g| g.saturating_mul(1024));
        let disk_mib = match s.disk_gib {
            Some(g) => scaled(g.saturating_mul(1024), s.disk_overcommit),
            None => scaled(physical.disk_mib, s.disk_overcommit)
                .saturating_sub(s.disk_reserve_gib.saturating_mul(1024)),
        };
        Self {
            cpus: physical.cpus,
            memory_physical_mib,
            memory_mib,
            memory_overcommit: s.memory_overcommit,
            disk_physical_mib,
            disk_mib,
            disk_overcommit: s.disk_overcommit,
        }
    }
}

/// "512 MiB", "23.4 GiB": MiB below 1 GiB, else GiB with one decimal.
pub fn fmt_mib(mib: i64) -> String {
    if mib.abs() < 1024 {
        format!("{mib} MiB")
    } else {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOX: Physical = Physical {
        cpus: 2,
        memory_mib: 24_000,
        disk_mib: 100 * 1024,
        disk_free_mib: 50 * 1024,
    };

    #[test]
    fn capacity_is_physical_times_overcommit_minus_the_reserve() {
        let c = Capacity::compute(BOX, &AdmissionSettings::default());
        assert_eq!(c.memory_mib, 24_000 - 1024);
        assert_eq!(c.disk_mib, 100 * 1024);
        let s = AdmissionSettings {
            memory_overcommit: 1.5,
            disk_overcommit: 2.0,
            disk_reserve_gib: 10,
            ..AdmissionSettings::default()
        };
        let c = Capacity::compute(BOX, &s);
        assert_eq!(c.memory_mib, 36_000 - 1024);
        assert_eq!(c.disk_mib, 190 * 1024);
    }

    #[test]
    fn an_override_replaces_the_machine_and_has_no_reserve() {
        let s = AdmissionSettings {
            memory_mib: Some(512),
            disk_gib: Some(3),
            ..AdmissionSettings::default()
        };
        let c = Capacity::compute(BOX, &s);
        assert_eq!((c.memory_physical_mib, c.memory_mib), (512, 512));
        assert_eq!((c.disk_physical_mib, c.disk_mib), (3072, 3072));
    }

    #[test]
    fn bad_ratios_are_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 101.0] {
            let s = AdmissionSettings {
                memory_overcommit: bad,
                ..AdmissionSettings::default()
            };
            assert!(s.validate().is_err(), "{bad}");
        }
        assert!(AdmissionSettings::default().validate().is_ok());
    }

    #[test]
    fn meminfo_fields_are_read_in_kib() {
        let text = "MemTotal:       24684288 kB\nMemFree:          394000 kB\nVmRSS:\t  6656 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal"), Some(24_684_288));
        assert_eq!(meminfo_kib(text, "VmRSS"), Some(6656));
        assert_eq!(meminfo_kib(text, "Mem"), None);
        assert!(Physical::measure(Path::new("/")).is_ok_and(|p| p.memory_mib > 0 && p.cpus > 0));
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(fmt_mib(300), "300 MiB");
        assert_eq!(fmt_mib(23_962), "23.4 GiB");
    }
}
