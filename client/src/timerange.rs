//! `-t` time ranges, argus style: absolute (`2024-03-01T10:50-11:00`), time of day
//! (`10:50-11:00`), relative to now (`-1h`), a whole unit (`2024-03-01`, `10:50`) or a start
//! and a length (`10:50+10m`). Every time is UTC.
//!
//! A range is half-open, `[start, end)`. A record is selected when its own span
//! `[stime, ltime]` overlaps the range (argus semantics): `stime < end && ltime >= start`. So
//! a record that ends exactly at the start is in, one that begins exactly at the end is out.
//!
//! A time of day without a date (`10:50-11:00`) takes the date (UTC) of the first record read
//! (the first record of the first input, before any pruning): archives are usually queried
//! after the fact, and "today" would be wrong for yesterday's files.

use std::fmt;

const NS: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * NS;

/// A `-t` syntax error at byte offset `pos` of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeError {
    pub text: String,
    pub msg: String,
    pub pos: usize,
}

impl fmt::Display for TimeError {
    /// The message, the text and a caret under the offending position (as the filter does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self
            .text
            .get(..self.pos)
            .map_or(self.text.chars().count(), |s| s.chars().count());
        write!(f, "{}\n  {}\n  {:col$}^", self.msg, self.text, "")
    }
}

/// A resolved range, `[start_ns, end_ns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl TimeRange {
    /// True when `[stime, ltime]` overlaps the range.
    #[inline]
    pub fn selects(&self, stime_ns: u64, ltime_ns: u64) -> bool {
        stime_ns < self.end_ns && ltime_ns >= self.start_ns
    }
}

/// A point in time as written: with a date, a time of day only, or an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    /// ns since the epoch; `unit` is the precision written (a day, a minute …).
    Abs { ns: u64, unit: u64 },
    /// ns since midnight on the data's date.
    TimeOfDay { ns: u64, unit: u64 },
}

/// What the text says, before the date of the data or the clock is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `-D1[+D2]`: from now - D1 to now, or for D2.
    Relative { back: u64, len: Option<u64> },
    /// `P`, `P-P` or `P+D`.
    Points {
        start: Point,
        end: End,
        /// Byte offset of the end, for errors found when resolving.
        end_pos: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The precision unit of the start (`2024-03-01` is that day).
    Unit,
    Point(Point),
    Len(u64),
}

/// A parsed `-t` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeSpec {
    text: String,
    spec: Spec,
}

impl TimeSpec {
    pub fn parse(text: &str) -> Result<TimeSpec, TimeError> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            text,
        };
        let spec = p.spec()?;
        // Whether the end comes after the start does not depend on the date of the data.
        if let Spec::Points {
            start,
            end: End::Point(end),
            end_pos,
        } = spec
        {
            let (s, e) = match (start, end) {
                (Point::Abs { ns: s, .. }, Point::Abs { ns: e, .. }) => (s, e),
                (Point::Abs { ns: s, .. }, Point::TimeOfDay { ns: e, .. }) => (s % DAY, e),
                (Point::TimeOfDay { ns: s, .. }, Point::TimeOfDay { ns: e, .. }) => (s, e),
                (Point::TimeOfDay { .. }, Point::Abs { .. }) => (0, 1),
            };
            if e <= s {
                return p.err(
                    "the end of the range is not after its start (times are UTC; give the \
                     end's date, or a length: +2h)",
                    end_pos,
                );
            }
        }
        Ok(TimeSpec {
            text: text.to_string(),
            spec,
        })
    }

    /// True when the range depends on the date of the data (a time of day without a date).
    pub fn needs_anchor(&self) -> bool {
        matches!(
            self.spec,
            Spec::Points {
                start: Point::TimeOfDay { .. },
                ..
            }
        )
    }

    /// The range, given the current time and the `stime` of the first record read (only used
    /// by [`needs_anchor`](Self::needs_anchor) ranges).
    pub fn resolve(&self, now_ns: u64, anchor_ns: u64) -> TimeRange {
        match self.spec {
            Spec::Relative { back, len } => {
                let start = now_ns.saturating_sub(back);
                let end = match len {
                    Some(l) => start.saturating_add(l),
                    None => now_ns,
                };
                TimeRange {
                    start_ns: start,
                    end_ns: end,
                }
            }
            Spec::Points { start, end, .. } => {
                let midnight = anchor_ns - anchor_ns % DAY;
                let (s, unit) = match start {
                    Point::Abs { ns, unit } => (ns, unit),
                    Point::TimeOfDay { ns, unit } => (midnight.saturating_add(ns), unit),
                };
                let e = match end {
                    End::Unit => s.saturating_add(unit),
                    End::Len(l) => s.saturating_add(l),
                    End::Point(Point::Abs { ns, .. }) => ns,
                    // A time of day as the end is on the start's date.
                    End::Point(Point::TimeOfDay { ns, .. }) => (s - s % DAY).saturating_add(ns),
                };
                // Checked by `parse`; an empty range is what is left to say if it were not.
                TimeRange {
                    start_ns: s,
                    end_ns: e.max(s),
                }
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl Into<String>, pos: usize) -> Result<T, TimeError> {
        Err(TimeError {
            text: self.text.to_string(),
            msg: msg.into(),
            pos,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn spec(&mut self) -> Result<Spec, TimeError> {
        if self.at_end() {
            return self.err(
                "empty time range: expected a date (2024-03-01), a time (10:50) or -DURATION (-1h)",
                0,
            );
        }
        if self.peek() == Some(b'-') {
            self.i += 1;
            let back = self.duration()?;
            let len = if self.peek() == Some(b'+') {
                self.i += 1;
                Some(self.duration()?)
            } else {
                None
            };
            self.finish()?;
            return Ok(Spec::Relative { back, len });
        }
        let start = self.point()?;
        let end_pos;
        let end = match self.peek() {
            None => {
                end_pos = self.i;
                End::Unit
            }
            Some(b'-') => {
                self.i += 1;
                end_pos = self.i;
                let p = self.point()?;
                if matches!((start, p), (Point::TimeOfDay { .. }, Point::Abs { .. })) {
                    return self.err(
                        "a range that starts with a time of day must end with one (or give \
                         the start's date too)",
                        end_pos,
                    );
                }
                End::Point(p)
            }
            Some(b'+') => {
                self.i += 1;
                end_pos = self.i;
                End::Len(self.duration()?)
            }
            Some(_) => {
                return self.err(
                    "expected '-' and the end of the range, or '+' and a length (+10m)",
                    self.i,
                )
            }
        };
        self.finish()?;
        Ok(Spec::Points {
            start,
            end,
            end_pos,
        })
    }

    fn finish(&self) -> Result<(), TimeError> {
        if self.at_end() {
            Ok(())
        } else {
            self.err("unexpected text after the time range", self.i)
        }
    }

    /// Digits as a number (at most 18 of them); `None` if there are none.
    fn digits(&mut self) -> Option<(u64, usize)> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start >= 18 {
                break;
            }
            v = v * 10 + u64::from(c - b'0');
            self.i += 1;
        }
        (self.i > start).then_some((v, self.i - start))
    }

    /// `.ffff` after seconds: (ns, unit ns). The unit is the precision written.
    fn fraction(&mut self) -> Result<(u64, u64), TimeError> {
        let pos = self.i;
        let Some((v, n)) = self.digits() else {
            return self.err("expected digits after '.'", pos);
        };
        if n > 9 {
            return self.err("more than 9 decimals (nanoseconds)", pos);
        }
        let unit = 10u64.pow(9 - n as u32);
        Ok((v * unit, unit))
    }

    fn point(&mut self) -> Result<Point, TimeError> {
        let pos = self.i;
        if self.peek() == Some(b'@') {
            self.i += 1;
            let p = self.i;
            let Some((secs, _)) = self.digits() else {
                return self.err("expected epoch seconds after '@'", p);
            };
            let (frac, unit) = if self.peek() == Some(b'.') {
                self.i += 1;
                self.fraction()?
            } else {
                (0, NS)
            };
            let Some(ns) = secs.checked_mul(NS).and_then(|n| n.checked_add(frac)) else {
                return self.err("epoch seconds out of range", p);
            };
            return Ok(Point::Abs { ns, unit });
        }
        let Some((first, n)) = self.digits() else {
            return self.err(
                "expected a date (2024-03-01), a time (10:50), @EPOCH or -DURATION (-1h)",
                pos,
            );
        };
        match self.peek() {
            Some(sep @ (b'-' | b'/')) if n == 4 => {
                // A date: YYYY-MM-DD or YYYY/MM/DD.
                self.i += 1;
                let month = self.number(1, 12, "month (1-12)")?;
                if self.peek() != Some(sep) {
                    return self.err(format!("expected '{}' and the day", sep as char), self.i);
                }
                self.i += 1;
                let dpos = self.i;
                let day = self.number(1, 31, "day of the month")?;
                if day > days_in_month(first, month) {
                    return self.err(format!("{first:04}-{month:02} has no day {day}"), dpos);
                }
                // u64 nanoseconds reach the year 2554.
                let date_ns = (first >= 1970)
                    .then(|| days_from_civil(first, month, day).checked_mul(DAY))
                    .flatten();
                let Some(date_ns) = date_ns else {
                    return self.err("date out of range (1970 to 2500)", pos);
                };
                // Time of day after 'T', '.' (argus) or a space, if a digit follows.
                let has_time = matches!(self.peek(), Some(b'T' | b't' | b'.' | b' '))
                    && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9'));
                if !has_time {
                    self.zone();
                    return Ok(Point::Abs {
                        ns: date_ns,
                        unit: DAY,
                    });
                }
                self.i += 1;
                let tpos = self.i;
                let Some((h, _)) = self.digits() else {
                    return self.err("expected the hour", tpos);
                };
                let (tod, unit) = self.time_of_day(h, tpos)?;
                self.zone();
                match date_ns.checked_add(tod) {
                    Some(ns) => Ok(Point::Abs { ns, unit }),
                    None => self.err("date out of range (1970 to 2500)", pos),
                }
            }
            Some(b':') if n <= 2 => {
                let (ns, unit) = self.time_of_day(first, pos)?;
                self.zone();
                Ok(Point::TimeOfDay { ns, unit })
            }
            _ => self.err(
                "expected a date (YYYY-MM-DD) or a time (HH:MM[:SS]); durations need a sign: \
                 -1h, 10:50+10m",
                pos,
            ),
        }
    }

    /// A trailing `Z` (UTC, the only zone) is allowed.
    fn zone(&mut self) {
        if matches!(self.peek(), Some(b'Z' | b'z')) {
            self.i += 1;
        }
    }

    /// `HH:MM[:SS[.fff]]` after its hour was read: (ns since midnight, precision unit).
    fn time_of_day(&mut self, hour: u64, hpos: usize) -> Result<(u64, u64), TimeError> {
        if hour > 24 {
            return self.err("hour out of range (0-23)", hpos);
        }
        if self.peek() != Some(b':') {
            return self.err("expected ':' and the minutes (HH:MM)", self.i);
        }
        self.i += 1;
        let min = self.number(0, 59, "minutes (00-59)")?;
        let mut ns = (hour * 3600 + min * 60) * NS;
        let mut unit = 60 * NS;
        if self.peek() == Some(b':') {
            self.i += 1;
            let sec = self.number(0, 60, "seconds (00-59)")?;
            ns += sec * NS;
            unit = NS;
            if self.peek() == Some(b'.') {
                self.i += 1;
                let (f, u) = self.fraction()?;
                ns += f;
                unit = u;
            }
        }
        if ns > DAY {
            return self.err("time of day past 24:00", hpos);
        }
        Ok((ns, unit))
    }

    /// One to two… digits in `lo..=hi`.
    fn number(&mut self, lo: u64, hi: u64, what: &str) -> Result<u64, TimeError> {
        let pos = self.i;
        match self.digits() {
            Some((v, n)) if n <= 2 && (lo..=hi).contains(&v) => Ok(v),
            Some(_) => self.err(format!("{what} out of range"), pos),
            None => self.err(format!("expected the {what}"), pos),
        }
    }

    /// `1h`, `90s`, `1h30m`, `1.5d`: units s, m, h, d, w.
    fn duration(&mut self) -> Result<u64, TimeError> {
        let pos = self.i;
        let mut total: u64 = 0;
        let mut any = false;
        while let Some(b'0'..=b'9') = self.peek() {
            let npos = self.i;
            let (int, _) = self.digits().unwrap_or((0, 0));
            let mut frac = 0.0;
            if self.peek() == Some(b'.') {
                self.i += 1;
                let fpos = self.i;
                match self.digits() {
                    Some((v, n)) => frac = v as f64 / 10f64.powi(n as i32),
                    None => return self.err("expected digits after '.'", fpos),
                }
            }
            let unit = match self.peek() {
                Some(b's') => NS,
                Some(b'm') => 60 * NS,
                Some(b'h') => 3600 * NS,
                Some(b'd') => DAY,
                Some(b'w') => 7 * DAY,
                _ => {
                    return self.err(
                        "expected a unit after the number: s, m, h, d or w (10m, 1h30m)",
                        self.i,
                    )
                }
            };
            self.i += 1;
            let part = int
                .checked_mul(unit)
                .and_then(|v| v.checked_add((frac * unit as f64) as u64))
                .and_then(|v| total.checked_add(v));
            match part {
                Some(t) => total = t,
                None => return self.err("duration too long", npos),
            }
            any = true;
        }
        if !any {
            return self.err(
                "expected a duration: a number and a unit (30s, 10m, 1h, 2d)",
                pos,
            );
        }
        if total == 0 {
            return self.err("the duration is zero", pos);
        }
        Ok(total)
    }
}

fn is_leap(y: u64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm; `y >= 1970`).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// The current time, ns since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-01 00:00:00 UTC.
    const D: u64 = 1_709_251_200 * NS;
    const H: u64 = 3600 * NS;
    const M: u64 = 60 * NS;

    fn r(text: &str, now: u64, anchor: u64) -> (u64, u64) {
        let t = TimeSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let r = t.resolve(now, anchor);
        (r.start_ns, r.end_ns)
    }

    fn err(text: &str) -> TimeError {
        TimeSpec::parse(text).expect_err(text)
    }

    #[test]
    fn calendar_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 3, 1) * 86_400, 1_709_251_200);
        for days in [0u64, 59, 60, 365, 11_016, 19_782, 47_540] {
            let (y, m, d) = tapflow_record::time::civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn absolute_forms() {
        let anchor = D + 5 * H;
        assert_eq!(
            r("2024-03-01T10:50:00-2024-03-01T11:00", 0, anchor),
            (D + 10 * H + 50 * M, D + 11 * H)
        );
        // The end's date can be left out; '/' and '.' separators as argus writes them.
        assert_eq!(
            r("2024/03/01.10:50-11:00", 0, anchor),
            (D + 10 * H + 50 * M, D + 11 * H)
        );
        // A date alone is that day; a time alone that minute.
        assert_eq!(r("2024-03-01", 0, 0), (D, D + 24 * H));
        assert_eq!(
            r("2024-03-01T10:50", 0, 0),
            (D + 10 * H + 50 * M, D + 10 * H + 51 * M)
        );
        assert_eq!(
            r("2024-03-01T10:50:30Z", 0, 0).1 - r("2024-03-01T10:50:30", 0, 0).0,
            NS
        );
        assert_eq!(r("2024-03-01-2024-03-03", 0, 0), (D, D + 48 * H));
        assert_eq!(r("@1709251200+1h", 0, 0), (D, D + H));
        assert_eq!(r("@1709251200.5", 0, 0), (D + NS / 2, D + NS / 2 + NS / 10));
    }

    #[test]
    fn time_of_day_takes_the_date_of_the_data() {
        let anchor = D + 23 * H; // data from 2024-03-01 23:00
        assert_eq!(
            r("10:50-11:00", 0, anchor),
            (D + 10 * H + 50 * M, D + 11 * H)
        );
        assert_eq!(r("10:50+10m", 0, anchor), (D + 10 * H + 50 * M, D + 11 * H));
        assert_eq!(
            r("10:50", 0, anchor),
            (D + 10 * H + 50 * M, D + 10 * H + 51 * M)
        );
        assert_eq!(r("23:00-24:00", 0, anchor), (D + 23 * H, D + 24 * H));
        assert_eq!(
            r("10:50:00.25+1s", 0, anchor).0,
            D + 10 * H + 50 * M + NS / 4
        );
        assert!(TimeSpec::parse("10:50-11:00").unwrap().needs_anchor());
        assert!(!TimeSpec::parse("-1h").unwrap().needs_anchor());
        assert!(!TimeSpec::parse("2024-03-01").unwrap().needs_anchor());
    }

    #[test]
    fn relative_to_now() {
        let now = D + 12 * H;
        assert_eq!(r("-1h", now, 0), (now - H, now));
        assert_eq!(r("-1h30m", now, 0), (now - H - 30 * M, now));
        assert_eq!(r("-2h+30m", now, 0), (now - 2 * H, now - 90 * M));
        assert_eq!(r("-1.5d", now, 0), (now - 36 * H, now));
        assert_eq!(r("-1w", now, 0).0, now - 7 * 24 * H);
    }

    #[test]
    fn overlap_semantics_at_the_boundaries() {
        let tr = TimeRange {
            start_ns: 100,
            end_ns: 200,
        };
        assert!(tr.selects(50, 100), "ends exactly at the start: in");
        assert!(!tr.selects(50, 99), "ends just before the start: out");
        assert!(tr.selects(199, 300), "starts just before the end: in");
        assert!(!tr.selects(200, 300), "starts exactly at the end: out");
        assert!(tr.selects(0, 1000), "spans the whole range: in");
        assert!(tr.selects(150, 150));
    }

    #[test]
    fn errors_have_a_caret() {
        let e = err("10:5x-11:00");
        assert_eq!(e.pos, 4);
        assert_eq!(
            e.to_string(),
            "expected '-' and the end of the range, or '+' and a length (+10m)\n  10:5x-11:00\n      ^"
        );
        assert_eq!(err("2024-13-01").pos, 5);
        assert!(err("2024-13-01").msg.contains("month"));
        assert_eq!(err("2023-02-29").pos, 8);
        assert_eq!(err("10:50+10").pos, 8);
        assert!(err("10:50+10").msg.contains("unit"));
        assert_eq!(err("-").pos, 1);
        assert_eq!(err("").pos, 0);
        assert_eq!(err("1h").pos, 0);
        assert_eq!(err("25:00").pos, 0);
        assert_eq!(err("10:60").pos, 3);
        assert_eq!(err("10:50-2024-03-01T11:00").pos, 6);
        assert_eq!(err("10:50 x").pos, 5);
        assert_eq!(err("-0h").pos, 1);
        assert_eq!(err("@").pos, 1);
        assert_eq!(err("99999999999999999999:00").pos, 0);
        // The end before the start.
        let e = err("11:00-10:50");
        assert_eq!(e.pos, 6);
        assert_eq!(err("2024-03-01T11:00-2024-03-01T10:00").pos, 17);
        assert_eq!(err("2024-03-01T11:00-11:00").pos, 17);
        assert!(e.to_string().ends_with("\n  11:00-10:50\n        ^"), "{e}");
    }

    #[test]
    fn never_panics_on_junk() {
        for s in [
            "-",
            "+",
            "@",
            "@.",
            "2024-",
            "2024-03",
            "2024-03-",
            "2024/03-01",
            "10:",
            "10:50:",
            "10:50:00.",
            "10:50:00.1234567890",
            "-1",
            "-1.",
            "-1.h",
            "-h",
            "10:50+",
            "10:50-",
            "1970-01-01T00:00-",
            "9999-12-31T23:59:59.999999999+1w",
            "0000-01-01",
            "::",
            "é",
            "2024-02-30",
            "24:01",
            "-99999999999999999w",
        ] {
            if let Ok(t) = TimeSpec::parse(s) {
                let _ = t.resolve(u64::MAX, u64::MAX);
                let _ = t.resolve(0, 0);
            }
        }
    }
}
