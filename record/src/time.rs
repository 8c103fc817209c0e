//! Calendar arithmetic for UTC timestamps (record printing, archive file names).

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the epoch to UTC (year, month, day, hour, minute, second).
pub fn utc(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_calendar() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 (a leap day in a century leap year).
        assert_eq!(utc(951_827_696), (2000, 2, 29, 12, 34, 56));
        // 2026-11-24 00:00:00
        assert_eq!(utc(1_795_478_400), (2026, 11, 24, 0, 0, 0));
        // 2100-03-01 (2100 is not a leap year)
        assert_eq!(utc(4_107_542_400), (2100, 3, 1, 0, 0, 0));
    }
}
