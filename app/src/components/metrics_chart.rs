//! The geometry of a metrics graph, kept apart from the view so it can be unit-tested: points → SVG path
//! data in a fixed viewBox, the line broken where samples are missing, and a "nice" top of the y axis.
//! Rendered as plain SVG by `components/metrics.rs`: no chart library, nothing from a CDN.

/// The viewBox every graph draws in; the SVG scales to its container's width.
pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 120.0;

/// SVG path data for `(time, value)` points between `from` and `to` (unix seconds) with values scaled to
/// `0..=y_max`: `M` starts a segment, `L` continues it; a gap longer than three `step` seconds starts a new
/// segment, so a stopped VM shows as a break, not a line across.
pub fn path(points: &[(i64, f64)], from: i64, to: i64, step: i64, y_max: f64) -> String {
    let span = (to - from).max(1) as f64;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut prev: Option<i64> = None;
    for &(t, v) in points {
        let x = ((t - from) as f64 / span * WIDTH).clamp(0.0, WIDTH);
        let y = HEIGHT - (v / y_max).clamp(0.0, 1.0) * HEIGHT;
        match segments.last_mut() {
            Some(seg) if prev.is_some_and(|p| t - p <= 3 * step.max(1)) => seg.push((x, y)),
            _ => segments.push(vec![(x, y)]),
        }
        prev = Some(t);
    }
    let mut d = Vec::new();
    for seg in segments {
        // A lone point is drawn as a zero-length line: with round caps it shows as a dot.
        let lone = seg.len() == 1;
        for (i, (x, y)) in seg.iter().enumerate() {
            d.push(format!("{}{x:.1} {y:.1}", if i == 0 { 'M' } else { 'L' }));
        }
        if lone {
            d.push(format!("L{:.1} {:.1}", seg[0].0, seg[0].1));
        }
    }
    d.join(" ")
}

/// The smallest of 1, 2 or 5 × 10ⁿ (or × 1024ⁿ for bytes) at or above `max`: a y-axis top that reads well.
pub fn nice_max(max: f64, binary: bool) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let base: f64 = if binary { 1024.0 } else { 10.0 };
    let mut unit = 1.0;
    while unit * base <= max {
        unit *= base;
    }
    let steps: &[f64] = if binary {
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]
    } else {
        &[1.0, 2.0, 5.0, 10.0]
    };
    steps
        .iter()
        .map(|s| s * unit)
        .find(|v| *v >= max)
        .unwrap_or(unit * base)
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `128 MiB`.
pub fn fmt_bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v.max(0.0);
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_span_the_box_and_gaps_break_the_line() {
        let pts = [(0, 0.0), (10, 50.0), (20, 100.0), (100, 50.0)];
        let d = path(&pts, 0, 100, 10, 100.0);
        assert_eq!(d, "M0.0 120.0 L60.0 60.0 L120.0 0.0 M600.0 60.0 L600.0 60.0");
    }

    #[test]
    fn values_above_the_top_are_clipped_and_empty_series_draw_nothing() {
        assert_eq!(path(&[(5, 300.0)], 0, 10, 1, 100.0), "M300.0 0.0 L300.0 0.0");
        assert_eq!(path(&[], 0, 10, 1, 100.0), "");
    }

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_max(0.0, false), 1.0);
        assert_eq!(nice_max(3.2, false), 5.0);
        assert_eq!(nice_max(47.0, false), 50.0);
        assert_eq!(nice_max(100.0, false), 100.0);
        assert_eq!(nice_max(70.0 * 1048576.0, true), 128.0 * 1048576.0);
        assert_eq!(nice_max(1000.0, true), 1024.0);
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(1536.0), "1.5 KiB");
        assert_eq!(fmt_bytes(128.0 * 1048576.0), "128 MiB");
    }
}
