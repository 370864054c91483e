//! Invoice arithmetic, pure and clock-free: usage intervals in, a month's line items, totals and daily
//! costs out. Months and days are UTC calendar periods. Each interval carries the price it opened with, so
//! a later price change never alters past usage. Amounts are integers: seconds × hourly price is exact
//! (minor-unit-seconds); each line and each day is divided down once, rounded half up, both to minor units
//! and to hundredths of a minor unit (1/100 of a cent, so sub-cent usage shows), and the total is the exact
//! sum divided down once (not a sum of rounded lines). Lines are grouped by VM: one VM's rates sit together,
//! ordered by tenant, VM name and VM id, so two VMs of one name stay apart.

use std::collections::BTreeMap;

use app::model::{Invoice, InvoiceLine};
use time::{Date, Month, OffsetDateTime, Time};

use crate::db::usage::Interval;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillingError {
    #[error("Months are written YYYY-MM, e.g. 2026-11.")]
    BadMonth,
}

/// A calendar month: `[start, end)` in unix seconds, and its number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i32,
    pub month: Month,
    pub start: i64,
    pub end: i64,
    pub days: u8,
}

impl Period {
    pub fn of(year: i32, month: Month) -> Result<Self, BillingError> {
        let first = Date::from_calendar_date(year, month, 1).map_err(|_| BillingError::BadMonth)?;
        let (ny, nm) = if month == Month::December {
            (year + 1, Month::January)
        } else {
            (year, month.next())
        };
        let next = Date::from_calendar_date(ny, nm, 1).map_err(|_| BillingError::BadMonth)?;
        let at = |d: Date| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
        Ok(Self {
            year,
            month,
            start: at(first),
            end: at(next),
            days: time::util::days_in_month(month, year),
        })
    }

    /// `YYYY-MM`, or the month containing `now` when empty.
    pub fn parse(input: &str, now: i64) -> Result<Self, BillingError> {
        let input = input.trim();
        if input.is_empty() {
            let t = OffsetDateTime::from_unix_timestamp(now).map_err(|_| BillingError::BadMonth)?;
            return Self::of(t.year(), t.month());
        }
        let (y, m) = input.split_once('-').ok_or(BillingError::BadMonth)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(BillingError::BadMonth);
        }
        let year: i32 = y.parse().map_err(|_| BillingError::BadMonth)?;
        let month: u8 = m.parse().map_err(|_| BillingError::BadMonth)?;
        let month = Month::try_from(month).map_err(|_| BillingError::BadMonth)?;
        if !(2000..=9999).contains(&year) {
            return Err(BillingError::BadMonth);
        }
        Self::of(year, month)
    }

    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, u8::from(self.month))
    }
}

/// Seconds of `[a, b)` inside `[from, to)`.
fn overlap(a: i64, b: i64, from: i64, to: i64) -> i64 {
    (b.min(to) - a.max(from)).max(0)
}

/// Minor units for `seconds` at `hourly` minor units per hour, rounded half up.
pub fn amount(seconds: i64, hourly: i64) -> i64 {
    round_div(i128::from(seconds) * i128::from(hourly), 3600)
}

/// Hundredths of a minor unit for `seconds` at `hourly` minor units per hour, rounded half up.
pub fn amount_hundredths(seconds: i64, hourly: i64) -> i64 {
    round_div(i128::from(seconds) * i128::from(hourly), 36)
}

/// `n / d` rounded half up (n ≥ 0, d > 0).
fn round_div(n: i128, d: i128) -> i64 {
    ((n + d / 2).div_euclid(d)) as i64
}

/// The invoice for `period` from the intervals overlapping it; open intervals run until `now`.
/// `tenant_names` labels the lines (tenant id → name).
pub fn invoice(
    period: &Period,
    intervals: &[Interval],
    now: i64,
    tenant_names: &BTreeMap<String, String>,
) -> Invoice {
    let until = period.end.min(now);
    // One line per (tenant, VM, rate); BTreeMap keeps the order stable.
    let mut lines: BTreeMap<(String, String, i64), InvoiceLine> = BTreeMap::new();
    let mut daily_seconds_cost = vec![0i128; usize::from(period.days)];
    for iv in intervals {
        let end = iv.ended_at.unwrap_or(now);
        let secs = overlap(iv.started_at, end, period.start, until);
        if secs == 0 {
            continue;
        }
        let line = lines
            .entry((iv.tenant_id.clone(), iv.vm_id.clone(), iv.hourly_price_minor))
            .or_insert_with(|| InvoiceLine {
                tenant_id: iv.tenant_id.clone(),
                tenant_name: tenant_names.get(&iv.tenant_id).cloned().unwrap_or_default(),
                vm_id: iv.vm_id.clone(),
                vm_name: iv.vm_name.clone(),
                flavor_name: iv.flavor_name.clone(),
                seconds: 0,
                hourly_price_minor: iv.hourly_price_minor,
                amount_minor: 0,
                amount_hundredths: 0,
            });
        line.seconds += secs;
        for (day, cost) in daily_seconds_cost.iter_mut().enumerate() {
            let d0 = period.start + day as i64 * 86_400;
            let s = overlap(iv.started_at, end, d0, (d0 + 86_400).min(until));
            *cost += i128::from(s) * i128::from(iv.hourly_price_minor);
        }
    }
    let mut lines: Vec<InvoiceLine> = lines.into_values().collect();
    let mut exact: i128 = 0;
    for line in &mut lines {
        line.amount_minor = amount(line.seconds, line.hourly_price_minor);
        line.amount_hundredths = amount_hundredths(line.seconds, line.hourly_price_minor);
        exact += i128::from(line.seconds) * i128::from(line.hourly_price_minor);
    }
    lines.sort_by(|a, b| {
        (&a.tenant_name, &a.vm_name, &a.vm_id, a.hourly_price_minor).cmp(&(
            &b.tenant_name,
            &b.vm_name,
            &b.vm_id,
            b.hourly_price_minor,
        ))
    });
    Invoice {
        month: period.label(),
        total_minor: round_div(exact, 3600),
        total_hundredths: round_div(exact, 36),
        daily_minor: daily_seconds_cost.iter().map(|&c| round_div(c, 3600)).collect(),
        daily_hundredths: daily_seconds_cost.iter().map(|&c| round_div(c, 36)).collect(),
        partial: now < period.end,
        lines,
    }
}

/// The invoice as CSV (RFC 4180), one row per line plus a total row.
pub fn to_csv(inv: &Invoice) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::from(
        "month,tenant,vm_id,vm_name,flavor,seconds,hours,hourly_price_minor,amount_minor,amount_hundredths\r\n",
    );
    for l in &inv.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.4},{},{},{}\r\n",
            inv.month,
            field(&l.tenant_name),
            l.vm_id,
            field(&l.vm_name),
            field(&l.flavor_name),
            l.seconds,
            l.seconds as f64 / 3600.0,
            l.hourly_price_minor,
            l.amount_minor,
            l.amount_hundredths
        ));
    }
    out.push_str(&format!(
        "{},total,,,,,,,{},{}\r\n",
        inv.month, inv.total_minor, inv.total_hundredths
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(vm: &str, start: i64, end: Option<i64>, price: i64) -> Interval {
        Interval {
            vm_id: vm.into(),
            tenant_id: "t1".into(),
            vm_name: vm.into(),
            flavor_name: "m1.small".into(),
            vcpus: 1,
            memory_mib: 512,
            hourly_price_minor: price,
            started_at: start,
            ended_at: end,
        }
    }

    fn names() -> BTreeMap<String, String> {
        BTreeMap::from([("t1".to_string(), "acme".to_string())])
    }

    fn ts(y: i32, m: Month, d: u8, h: u8, min: u8, s: u8) -> i64 {
        Date::from_calendar_date(y, m, d)
            .unwrap()
            .with_hms(h, min, s)
            .unwrap()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn months_parse_and_know_their_length() {
        let nov = Period::parse("2026-11", 0).unwrap();
        assert_eq!(nov.days, 30);
        assert_eq!(nov.end - nov.start, 30 * 86_400);
        assert_eq!(Period::parse("2028-02", 0).unwrap().days, 29);
        let dec = Period::parse("2026-12", 0).unwrap();
        assert_eq!(dec.end, ts(2027, Month::January, 1, 0, 0, 0));
        for bad in ["2026-13", "26-11", "2026/11", "abcd-ef", "2026-1"] {
            assert_eq!(Period::parse(bad, 0), Err(BillingError::BadMonth), "{bad}");
        }
        assert_eq!(
            Period::parse("", ts(2026, Month::November, 24, 3, 0, 0))
                .unwrap()
                .label(),
            "2026-11"
        );
    }

    #[test]
    fn a_vm_running_across_midnight_of_the_last_day_is_split_between_months() {
        // 23:00 on 30 Nov to 01:30 on 1 Dec at 100 cents/hour.
        let start = ts(2026, Month::November, 30, 23, 0, 0);
        let end = ts(2026, Month::December, 1, 1, 30, 0);
        let ivs = [iv("web", start, Some(end), 100)];
        let far_future = ts(2027, Month::June, 1, 0, 0, 0);
        let nov = invoice(&Period::parse("2026-11", 0).unwrap(), &ivs, far_future, &names());
        let dec = invoice(&Period::parse("2026-12", 0).unwrap(), &ivs, far_future, &names());
        assert_eq!(nov.lines[0].seconds, 3600);
        assert_eq!(nov.total_minor, 100);
        assert_eq!(*nov.daily_minor.last().unwrap(), 100);
        assert_eq!(dec.lines[0].seconds, 5400);
        assert_eq!(dec.total_minor, 150);
        assert_eq!(dec.daily_minor[0], 150);
        assert!(!nov.partial && !dec.partial);
        assert_eq!(nov.lines[0].tenant_name, "acme");
    }

    #[test]
    fn price_changes_do_not_alter_past_intervals() {
        // Ran 2 h at 10, then (after a price change and a restart) 1 h at 30: two lines.
        let d = |h| ts(2026, Month::November, 10, h, 0, 0);
        let ivs = [iv("db", d(0), Some(d(2)), 10), iv("db", d(3), Some(d(4)), 30)];
        let inv = invoice(&Period::parse("2026-11", 0).unwrap(), &ivs, d(23), &names());
        assert_eq!(inv.lines.len(), 2);
        assert_eq!(
            (inv.lines[0].hourly_price_minor, inv.lines[0].amount_minor),
            (10, 20)
        );
        assert_eq!(
            (inv.lines[1].hourly_price_minor, inv.lines[1].amount_minor),
            (30, 30)
        );
        assert_eq!(inv.total_minor, 50);
    }

    #[test]
    fn open_intervals_run_until_now_and_seconds_are_exact() {
        let start = ts(2026, Month::November, 24, 1, 0, 0);
        let now = start + 4_321; // 1 h 12 min 1 s
        let inv = invoice(
            &Period::parse("2026-11", 0).unwrap(),
            &[iv("x", start, None, 7)],
            now,
            &names(),
        );
        assert!(inv.partial);
        assert_eq!(inv.lines[0].seconds, 4_321);
        // 4321 s × 7 / 3600 = 8.40 → 8
        assert_eq!(inv.lines[0].amount_minor, 8);
        assert_eq!(amount(1800, 1), 1, "half a cent rounds up");
        assert_eq!(amount(1799, 1), 0);
    }

    #[test]
    fn csv_has_a_header_lines_and_a_total_and_quotes_names() {
        let start = ts(2026, Month::November, 2, 0, 0, 0);
        let mut i = iv("a,b", start, Some(start + 3600), 100);
        i.vm_name = "web \"1\", eu".into();
        let inv = invoice(
            &Period::parse("2026-11", 0).unwrap(),
            &[i],
            start + 7200,
            &names(),
        );
        let csv = to_csv(&inv);
        let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[1].contains("\"web \"\"1\"\", eu\""));
        assert!(rows[2].ends_with(",100,10000"));
    }

    #[test]
    fn sub_cent_usage_shows_in_hundredths_and_the_total_is_rounded_once() {
        // Three VMs, 10 s each at 1 cent/hour: 0.00278 cents each, 0.0083 together.
        let start = ts(2026, Month::November, 5, 0, 0, 0);
        let ivs = [
            iv("a", start, Some(start + 10), 1),
            iv("b", start, Some(start + 10), 1),
            iv("c", start, Some(start + 10), 1),
        ];
        let inv = invoice(&Period::parse("2026-11", 0).unwrap(), &ivs, start + 60, &names());
        assert!(inv
            .lines
            .iter()
            .all(|l| l.amount_minor == 0 && l.amount_hundredths == 0));
        // 30 s × 1 / 36 = 0.83 → 1 hundredth: the sum of the exact amounts, rounded once.
        assert_eq!((inv.total_minor, inv.total_hundredths), (0, 1));
        assert_eq!(inv.daily_hundredths[4], 1);
        // 1 h 40 min at 7/h: 11.67 minor units = 1166.67 hundredths.
        let one = [iv("d", start, Some(start + 6000), 7)];
        let inv = invoice(
            &Period::parse("2026-11", 0).unwrap(),
            &one,
            start + 6000,
            &names(),
        );
        assert_eq!(
            (inv.lines[0].amount_minor, inv.lines[0].amount_hundredths),
            (12, 1167)
        );
    }

    #[test]
    fn two_vms_of_one_name_are_separate_lines_grouped_by_vm() {
        let d = |h| ts(2026, Month::November, 10, h, 0, 0);
        let mut ivs = vec![
            iv("id-2", d(0), Some(d(1)), 10),
            iv("id-1", d(0), Some(d(1)), 10),
            iv("id-2", d(2), Some(d(3)), 20),
        ];
        for i in &mut ivs {
            i.vm_name = "web".into();
        }
        let inv = invoice(&Period::parse("2026-11", 0).unwrap(), &ivs, d(23), &names());
        let order: Vec<(&str, i64)> = inv
            .lines
            .iter()
            .map(|l| (l.vm_id.as_str(), l.hourly_price_minor))
            .collect();
        assert_eq!(order, [("id-1", 10), ("id-2", 10), ("id-2", 20)]);
    }
}
