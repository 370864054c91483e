//! VM metrics (README "VM metrics"): one sampler task asks every running VMM for its counters every
//! `interval_secs` and stores them in `vm_metrics` with bounded, downsampled retention (`sampler.rs`,
//! queries in `db::metrics`); `series.rs` turns stored counters into the rates graphs and the REST API show.

pub mod sampler;
pub mod series;

use serde::Deserialize;

pub use sampler::spawn;

/// `[metrics]` settings (`PORTAL_METRICS__INTERVAL_SECS`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Seconds between samples of every running VM; 0 turns sampling off.
    pub interval_secs: u64,
    /// How long raw samples are kept (the last-hour graph reads them).
    pub raw_retention_secs: u64,
    /// How long 5-minute roll-ups are kept (the day and week graphs read them).
    pub rollup_retention_secs: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            interval_secs: 10,
            raw_retention_secs: 3600,
            rollup_retention_secs: 7 * 86_400,
        }
    }
}

/// A `[metrics]` value out of range.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.interval_secs must be 0 (off) or 1..=300")]
    Interval,
    #[error("metrics.raw_retention_secs must be at least 3600 (the last-hour graph) and 1 day at most")]
    RawRetention,
    #[error("metrics.rollup_retention_secs must be between 1 and 90 days")]
    RollupRetention,
}

impl MetricsSettings {
    pub fn validate(&self) -> Result<(), MetricsError> {
        if self.interval_secs > 300 {
            return Err(MetricsError::Interval);
        }
        if !(3600..=86_400).contains(&self.raw_retention_secs) {
            return Err(MetricsError::RawRetention);
        }
        if !(86_400..=90 * 86_400).contains(&self.rollup_retention_secs) {
            return Err(MetricsError::RollupRetention);
        }
        Ok(())
    }

    pub fn retention(&self) -> crate::db::metrics::Retention {
        crate::db::metrics::Retention {
            raw_secs: self.raw_retention_secs as i64,
            rollup_secs: self.rollup_retention_secs as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_hold() {
        assert!(MetricsSettings::default().validate().is_ok());
        let off = MetricsSettings {
            interval_secs: 0,
            ..Default::default()
        };
        assert!(off.validate().is_ok());
        let slow = MetricsSettings {
            interval_secs: 301,
            ..Default::default()
        };
        assert!(matches!(slow.validate(), Err(MetricsError::Interval)));
        let short = MetricsSettings {
            raw_retention_secs: 600,
            ..Default::default()
        };
        assert!(matches!(short.validate(), Err(MetricsError::RawRetention)));
    }
}
