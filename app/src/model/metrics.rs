//! A VM's metrics as the VM page's graphs and `GET /api/v1/vms/{id}/metrics` show them: CPU, memory and
//! disk rates over the last hour, day or week.

use serde::{Deserialize, Serialize};

/// How far back a series reaches. The last hour comes from raw samples; a day or a week from 5-minute
/// roll-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum MetricsRange {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl MetricsRange {
    pub const ALL: [MetricsRange; 3] = [Self::Hour, Self::Day, Self::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "1d",
            Self::Week => "7d",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The range's length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Self::Hour => 3600,
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
        }
    }

    /// Words for a graph's caption.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hour => "last hour",
            Self::Day => "last day",
            Self::Week => "last 7 days",
        }
    }
}

/// One point of a VM's series: the rates over the interval that ends at `at`, and the memory then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricPoint {
    /// End of the interval, unix seconds.
    pub at: i64,
    /// Busy share of the VM's vCPUs over the interval (100 = every vCPU busy all the time).
    pub cpu_percent: f64,
    /// Resident memory of the VM's VMM process (guest pages it touched plus the VMM's own).
    pub memory_bytes: u64,
    /// Bytes per second the guest read from its disks.
    pub disk_read_bps: f64,
    /// Bytes per second the guest wrote to its disks.
    pub disk_write_bps: f64,
}

/// A VM's metrics over a range, oldest point first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VmMetrics {
    pub vm_id: String,
    pub range: MetricsRange,
    /// Seconds between samples at this range's resolution: a longer gap between two points means the
    /// VM was not running (graphs break the line there).
    pub step_secs: u32,
    /// Unix seconds the range starts and ends at.
    pub from: i64,
    pub to: i64,
    pub points: Vec<MetricPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_named_as_in_the_url() {
        for r in MetricsRange::ALL {
            assert_eq!(MetricsRange::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap_or_default(),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(MetricsRange::parse("2h"), None);
        assert_eq!(MetricsRange::parse(""), None);
    }
}
