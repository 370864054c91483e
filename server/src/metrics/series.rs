//! Stored counters → the points a graph draws: rates over each interval between neighbouring samples.
//! An interval longer than three steps (the VM was stopped or the portal down) or with a counter that went
//! back (a new VMM process) gives no point, so graphs show a gap instead of a spike.

use app::model::MetricPoint;

use crate::db::metrics::SampleRow;

/// Points from samples sorted by time. `vcpus` scales CPU time to a percentage of the VM's vCPUs;
/// `step_secs` is the expected distance between samples.
pub fn points(rows: &[SampleRow], vcpus: i64, step_secs: i64) -> Vec<MetricPoint> {
    let vcpus = vcpus.max(1) as f64;
    rows.windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0], w[1]);
            let dt = b.at - a.at;
            let cpu = b.cpu_ms - a.cpu_ms;
            let read = b.disk_read_bytes - a.disk_read_bytes;
            let write = b.disk_write_bytes - a.disk_write_bytes;
            if dt <= 0 || dt > 3 * step_secs.max(1) || cpu < 0 || read < 0 || write < 0 {
                return None;
            }
            let secs = dt as f64;
            Some(MetricPoint {
                at: b.at,
                cpu_percent: (cpu as f64 / (secs * 1000.0 * vcpus) * 100.0).clamp(0.0, 100.0),
                memory_bytes: b.rss_bytes.max(0) as u64,
                disk_read_bps: read as f64 / secs,
                disk_write_bps: write as f64 / secs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, cpu_ms: i64, read: i64) -> SampleRow {
        SampleRow {
            at,
            cpu_ms,
            rss_bytes: 64 << 20,
            disk_read_bytes: read,
            disk_write_bytes: 0,
        }
    }

    #[test]
    fn rates_come_from_neighbouring_samples() {
        let p = points(
            &[row(0, 0, 0), row(10, 5000, 10_240), row(20, 5000, 10_240)],
            1,
            10,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].at, 10);
        assert!((p[0].cpu_percent - 50.0).abs() < 1e-9, "{p:?}");
        assert!((p[0].disk_read_bps - 1024.0).abs() < 1e-9);
        assert_eq!(p[0].memory_bytes, 64 << 20);
        assert_eq!(p[1].cpu_percent, 0.0);
    }

    #[test]
    fn cpu_is_a_share_of_all_vcpus_and_never_above_100() {
        let p = points(&[row(0, 0, 0), row(10, 10_000, 0)], 2, 10);
        assert!((p[0].cpu_percent - 50.0).abs() < 1e-9);
        let p = points(&[row(0, 0, 0), row(10, 50_000, 0)], 1, 10);
        assert_eq!(p[0].cpu_percent, 100.0);
    }

    #[test]
    fn gaps_and_restarted_counters_give_no_point() {
        // Stopped for a minute at a 10 s step; then a new VMM counting from 0.
        let p = points(
            &[
                row(0, 0, 0),
                row(10, 100, 0),
                row(70, 200, 0),
                row(80, 20, 0),
                row(90, 40, 0),
            ],
            1,
            10,
        );
        let at: Vec<i64> = p.iter().map(|p| p.at).collect();
        assert_eq!(at, vec![10, 90]);
    }
}
