//! The time of a klog line. A klog header (`Lmmdd hh:mm:ss.uuuuuu pid file:line]`) carries the month and the day
//! but no year, so a line is placed on the date its header names, in the year that puts it nearest a reference time
//! (the run's start): a run that crosses midnight, or New Year, reads its lines in order, and a line an earlier run
//! logged yesterday stays yesterday's. (Reading the clock on the reference's own day instead put a line logged
//! before midnight 24 h into a run that started after it: CI once judged a scenario on a previous run's decisions.)

use std::time::{Duration, SystemTime};

const SECONDS_PER_DAY: i64 = 86_400;

/// The time of a klog line, or `None` when the line has no klog header. Times are UTC, as the harness runs every
/// component.
pub fn klog_time(line: &str, reference: SystemTime) -> Option<SystemTime> {
    let mut fields = line.split_whitespace();
    let level_date = fields.next()?;
    let clock = fields.next()?;
    let date = level_date.get(1..)?;
    if date.len() != 4 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = date[..2].parse().ok()?;
    let day: u32 = date[2..].parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut parts = clock.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    if h > 23 || m > 59 || !(0.0..61.0).contains(&s) {
        return None;
    }
    let reference_s = reference
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let (year, _, _) = civil_from_days(reference_s.div_euclid(SECONDS_PER_DAY as f64) as i64);
    let time_of_day = f64::from(h * 3600 + m * 60) + s;
    let nearest = [year - 1, year, year + 1]
        .into_iter()
        .map(|y| (days_from_civil(y, month, day) * SECONDS_PER_DAY) as f64 + time_of_day)
        .min_by(|a, b| (a - reference_s).abs().total_cmp(&(b - reference_s).abs()))?;
    if nearest < 0.0 {
        return None;
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs_f64(nearest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `(year, month, day)` of a count of days since 1970-01-01 (the inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `year-month-day hh:mm:ss` UTC as a `SystemTime`.
    pub(crate) fn utc(year: i64, month: u32, day: u32, h: u64, m: u64, s: u64) -> SystemTime {
        let days = u64::try_from(days_from_civil(year, month, day)).expect("after 1970");
        SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s)
    }

    fn seconds_between(a: SystemTime, b: SystemTime) -> f64 {
        match a.duration_since(b) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    #[test]
    fn dates_round_trip_and_known_dates_match() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 10, 4), 20_000);
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        for days in [
            0, 59, 60, 365, 10_956, 11_016, 11_017, 19_782, 20_795, 20_796,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
    }

    #[test]
    fn a_line_is_read_on_the_date_of_its_header() {
        let reference = utc(2026, 12, 7, 1, 0, 0);
        let at = klog_time(
            "I1127 20:19:37.500000   17531 util.go:101] hello",
            reference,
        )
        .expect("parsed");
        let expected = utc(2026, 11, 27, 20, 19, 37);
        assert!((seconds_between(at, expected) - 0.5).abs() < 1e-3);
        assert!(klog_time("not a klog line", reference).is_none());
        assert!(klog_time("I1340 20:19:37.5 1 a.go:1] month 13", reference).is_none());
        assert!(klog_time("I1207 25:19:37.5 1 a.go:1] hour 25", reference).is_none());
    }

    #[test]
    fn a_run_across_midnight_reads_yesterdays_lines_as_yesterdays() {
        // The run starts just after midnight; the same log holds an earlier run's line from before midnight and
        // this run's line from after it.
        let start = utc(2026, 12, 8, 0, 5, 0);
        let before =
            klog_time("I1207 23:49:42.400000 1 a.go:1] earlier run", start).expect("parsed");
        let after = klog_time("I1208 00:06:30.000000 1 a.go:1] this run", start).expect("parsed");
        assert!((seconds_between(before, start) + 15.0 * 60.0 + 17.6).abs() < 1e-3);
        assert!((seconds_between(after, start) - 90.0).abs() < 1e-3);
        // A run that starts before midnight and ends after it.
        let start = utc(2026, 12, 7, 23, 58, 0);
        let late = klog_time("I1208 00:01:00.000000 1 a.go:1] later", start).expect("parsed");
        assert!((seconds_between(late, start) - 180.0).abs() < 1e-3);
    }

    #[test]
    fn a_run_across_new_year_keeps_the_order_of_its_lines() {
        let start = utc(2026, 12, 31, 23, 59, 0);
        let next_year = klog_time("I0101 00:00:30.000000 1 a.go:1] x", start).expect("parsed");
        assert!((seconds_between(next_year, start) - 90.0).abs() < 1e-3);
        let start = utc(2027, 1, 1, 0, 1, 0);
        let last_year = klog_time("I1231 23:59:00.000000 1 a.go:1] x", start).expect("parsed");
        assert!((seconds_between(last_year, start) + 120.0).abs() < 1e-3);
    }
}
