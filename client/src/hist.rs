//! `tapflow hist FIELD [--log] [--bins N] [--range A:B]` (argus `rahisto`): the distribution of
//! a numeric field.
//!
//! # Semantics
//!
//! FIELD is any numeric `tapflow read` field (`dur`, `pkts`, `bytes`, `spkts`, `sbytes`,
//! `tcprtt`, `synack`, `sjit`, `sintpkt`, `sttl`, `sretrans`, `dport`, …) in the units `read`
//! prints it (seconds for durations, milliseconds for jitter and inter-packet times), or one of
//! the derived fields `rate`/`srate`/`drate` (packets per second), `load`/`sload`/`dload` (bits
//! per second) and `smeansz`/`dmeansz` (mean packet size, bytes). Records where the field has
//! no value (a blank column in `read`, a rate of a zero-duration record) are counted apart as
//! `no value`; probe- and merge-status records are skipped.
//!
//! Bins: `N` (default 10) equal-width bins over `[A, B]`, or with `--log` bins of equal width
//! in `log10` (A must then be > 0). The last bin includes B. Values below A (and, with `--log`,
//! values ≤ 0) are counted as `under`, values above B as `over`; `fraction` and `cumulative`
//! are shares of every record with a value, under and over included, so the cumulative column
//! ends at 1. Without `--range`, A and B are the smallest and largest values seen (the
//! smallest positive one with `--log`), which needs the values held in memory (8 bytes per
//! record); with `--range` it streams in O(N).
//!
//! # CLI mapping (`tapflow hist -r FILE FIELD [options]`)
//!
//! | flag | [`HistOptions`] field |
//! |---|---|
//! | `FIELD` ([`extractor`] validates it) | `field` |
//! | `--log` | `log` |
//! | `--bins N` (10, at most 100 000) | `bins` |
//! | `--range A:B` ([`parse_range`]) | `range` |
//! | `--csv` / `--json` | `format` ([`HistFormat`]) |
//!
//! Entry point: [`run`] (an unknown or non-numeric field is an `InvalidInput` error);
//! [`build`] returns the [`Histogram`].

use std::io::{self, Write};

use serde::Serialize;
use tapflow_record::FlowRecord;

use crate::fields::{value, Field, Value};

/// Bins allowed at most (memory and output size).
pub const MAX_BINS: usize = 100_000;

/// How a field's number is taken from a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extractor {
    Field(Field),
    /// Packets per second: total, src, dst.
    Rate(u8),
    /// Bits per second: total, src, dst.
    Load(u8),
    /// Mean packet size, src or dst.
    MeanSize(u8),
}

/// Fields whose values are not numbers (addresses, names, flag strings).
fn is_numeric(f: Field) -> bool {
    !matches!(
        f,
        Field::Flgs
            | Field::Proto
            | Field::Saddr
            | Field::Daddr
            | Field::Dir
            | Field::State
            | Field::Cause
            | Field::Observed
            | Field::Smac
            | Field::Dmac
            | Field::Sflags
            | Field::Dflags
            | Field::Encap
            | Field::Osaddr
            | Field::Odaddr
    )
}

/// Resolves a field name, or says why it cannot be histogrammed.
pub fn extractor(name: &str) -> Result<Extractor, String> {
    if let Some(f) = Field::by_name(name) {
        return if is_numeric(f) {
            Ok(Extractor::Field(f))
        } else {
            Err(format!("field '{name}' is not numeric"))
        };
    }
    Ok(match name.to_ascii_lowercase().as_str() {
        "rate" => Extractor::Rate(0),
        "srate" => Extractor::Rate(1),
        "drate" => Extractor::Rate(2),
        "load" => Extractor::Load(0),
        "sload" => Extractor::Load(1),
        "dload" => Extractor::Load(2),
        "smeansz" => Extractor::MeanSize(1),
        "dmeansz" => Extractor::MeanSize(2),
        _ => {
            return Err(format!(
                "unknown field '{name}'; numeric fields: {}, rate, srate, drate, load, sload, dload, smeansz, dmeansz",
                crate::fields::FIELDS
                    .iter()
                    .filter(|(f, _)| is_numeric(*f))
                    .map(|(_, i)| i.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    })
}

impl Extractor {
    /// The field's value as a number, `None` when the record has none.
    pub fn get(&self, r: &FlowRecord) -> Option<f64> {
        let pick = |which: u8, s: u64, d: u64| match which {
            1 => s,
            2 => d,
            _ => s.saturating_add(d),
        };
        let secs = r.dur_ns() as f64 / 1e9;
        let v = match *self {
            Extractor::Field(f) => match value(f, r) {
                Value::U64(n) => n as f64,
                Value::Time(ns) | Value::Secs(ns) => ns as f64 / 1e9,
                Value::Millis(ns) => ns / 1e6,
                Value::Port(p) | Value::Hex16(p) => f64::from(p),
                _ => return None,
            },
            Extractor::Rate(w) if secs > 0.0 => pick(w, r.src.pkts, r.dst.pkts) as f64 / secs,
            Extractor::Load(w) if secs > 0.0 => {
                pick(w, r.src.bytes, r.dst.bytes) as f64 * 8.0 / secs
            }
            Extractor::MeanSize(w) => {
                let (p, b) = match w {
                    1 => (r.src.pkts, r.src.bytes),
                    _ => (r.dst.pkts, r.dst.bytes),
                };
                if p == 0 {
                    return None;
                }
                b as f64 / p as f64
            }
            _ => return None,
        };
        v.is_finite().then_some(v)
    }
}

/// Parses `A:B` (A < B, both finite).
pub fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': a range is LOW:HIGH"))?;
    let a: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("'{a}' is not a number"))?;
    let b: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("'{b}' is not a number"))?;
    if !(a.is_finite() && b.is_finite() && a < b) {
        return Err(format!("'{s}': the range needs LOW < HIGH"));
    }
    Ok((a, b))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HistFormat {
    #[default]
    Text,
    Csv,
    Json,
}

/// See the module doc for the flags.
#[derive(Clone, Debug)]
pub struct HistOptions {
    pub field: String,
    pub log: bool,
    pub bins: usize,
    pub range: Option<(f64, f64)>,
    pub format: HistFormat,
}

impl Default for HistOptions {
    fn default() -> Self {
        HistOptions {
            field: "dur".into(),
            log: false,
            bins: 10,
            range: None,
            format: HistFormat::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bin {
    pub low: f64,
    pub high: f64,
    pub count: u64,
    pub fraction: f64,
    pub cumulative: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub field: String,
    pub log: bool,
    /// Records with a value (binned, under and over).
    pub values: u64,
    /// Records without a value.
    pub no_value: u64,
    pub under: u64,
    pub over: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub bins: Vec<Bin>,
}

/// Edges and counts, filled one value at a time.
struct Binning {
    lo: f64,
    hi: f64,
    log: bool,
    counts: Vec<u64>,
    under: u64,
    over: u64,
}

impl Binning {
    fn new(lo: f64, hi: f64, log: bool, n: usize) -> Binning {
        Binning {
            lo,
            hi,
            log,
            counts: vec![0; n],
            under: 0,
            over: 0,
        }
    }

    fn add(&mut self, v: f64) {
        let n = self.counts.len();
        if v < self.lo || (self.log && v <= 0.0) {
            self.under += 1;
            return;
        }
        if v > self.hi {
            self.over += 1;
            return;
        }
        // Multiply before dividing so that values on exact edges (decades, whole widths) land
        // in the bin they start.
        let pos = if self.log {
            (v / self.lo).log10() * n as f64 / (self.hi / self.lo).log10()
        } else {
            (v - self.lo) * n as f64 / (self.hi - self.lo)
        };
        // The last bin is closed on the right; rounding can never step outside the table.
        let i = (pos.floor() as usize).min(n - 1);
        self.counts[i] += 1;
    }

    fn edge(&self, i: usize) -> f64 {
        let n = self.counts.len() as f64;
        if i == self.counts.len() {
            self.hi
        } else if self.log {
            self.lo * 10f64.powf((self.hi / self.lo).log10() * i as f64 / n)
        } else {
            self.lo + (self.hi - self.lo) * i as f64 / n
        }
    }
}

/// Builds the histogram of `opts.field` over `records`.
pub fn build(
    records: &mut dyn Iterator<Item = FlowRecord>,
    opts: &HistOptions,
) -> Result<Histogram, String> {
    let ex = extractor(&opts.field)?;
    let n = opts.bins.clamp(1, MAX_BINS);
    if let Some((a, b)) = opts.range {
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err("the range needs LOW < HIGH".into());
        }
        if opts.log && a <= 0.0 {
            return Err("a --log histogram needs a range above 0".into());
        }
    }
    let (mut no_value, mut count, mut sum) = (0u64, 0u64, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut held = Vec::new();
    let mut binning = opts.range.map(|(a, b)| Binning::new(a, b, opts.log, n));
    for r in records {
        if r.is_meta() {
            continue;
        }
        let Some(v) = ex.get(&r) else {
            no_value += 1;
            continue;
        };
        count += 1;
        sum += v;
        min = min.min(v);
        max = max.max(v);
        match &mut binning {
            Some(b) => b.add(v),
            None => held.push(v),
        }
    }
    let mut binning = match binning {
        Some(b) => b,
        None => {
            let (lo, hi) = if opts.log {
                let lo = held
                    .iter()
                    .copied()
                    .filter(|v| *v > 0.0)
                    .fold(f64::INFINITY, f64::min);
                if lo.is_finite() {
                    (lo, max)
                } else {
                    (1.0, 10.0)
                }
            } else if count > 0 {
                (min, max)
            } else {
                (0.0, 1.0)
            };
            // All values equal: give the single value a bin of its own rather than a zero width.
            let hi = if hi > lo {
                hi
            } else if opts.log {
                lo * 10.0
            } else {
                lo + 1.0
            };
            let mut b = Binning::new(lo, hi, opts.log, n);
            held.iter().for_each(|&v| b.add(v));
            b
        }
    };
    let total = count.max(1) as f64;
    let mut cum = binning.under;
    let mut bins = Vec::with_capacity(n);
    for i in 0..n {
        let c = binning.counts[i];
        cum += c;
        bins.push(Bin {
            low: binning.edge(i),
            high: binning.edge(i + 1),
            count: c,
            fraction: c as f64 / total,
            cumulative: cum as f64 / total,
        });
    }
    let (under, over) = (binning.under, binning.over);
    binning.counts.clear();
    Ok(Histogram {
        field: opts.field.clone(),
        log: opts.log,
        values: count,
        no_value,
        under,
        over,
        min: (count > 0).then_some(min),
        max: (count > 0).then_some(max),
        mean: (count > 0).then(|| sum / count as f64),
        bins,
    })
}

/// A number in at most 6 significant digits, integers without a fraction.
pub fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..15).contains(&mag) {
        return format!("{v:.5e}");
    }
    let prec = (5 - mag).clamp(0, 9) as usize;
    let s = format!("{v:.prec$}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

const BAR_WIDTH: f64 = 50.0;

pub fn write(h: &Histogram, format: HistFormat, out: &mut dyn Write) -> io::Result<()> {
    let total = h.values.max(1) as f64;
    let lo = h.bins.first().map_or(0.0, |b| b.low);
    let hi = h.bins.last().map_or(0.0, |b| b.high);
    match format {
        HistFormat::Json => {
            serde_json::to_writer(&mut *out, h).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
        HistFormat::Csv => {
            writeln!(out, "bin,low,high,count,fraction,cumulative")?;
            if h.under > 0 {
                writeln!(
                    out,
                    "under,,{},{},{},{}",
                    lo,
                    h.under,
                    h.under as f64 / total,
                    h.under as f64 / total
                )?;
            }
            for (i, b) in h.bins.iter().enumerate() {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    i + 1,
                    b.low,
                    b.high,
                    b.count,
                    b.fraction,
                    b.cumulative
                )?;
            }
            if h.over > 0 {
                writeln!(out, "over,{},,{},{},1", hi, h.over, h.over as f64 / total)?;
            }
            Ok(())
        }
        HistFormat::Text => {
            let stat = |v: Option<f64>| v.map_or("-".to_string(), num);
            writeln!(
                out,
                "{}{}: {} records with a value, {} without; min {} max {} mean {}",
                h.field,
                if h.log { " (log bins)" } else { "" },
                h.values,
                h.no_value,
                stat(h.min),
                stat(h.max),
                stat(h.mean)
            )?;
            let peak = h
                .bins
                .iter()
                .map(|b| b.count)
                .chain([h.under, h.over])
                .max()
                .unwrap_or(0)
                .max(1) as f64;
            let mut rows: Vec<[String; 7]> =
                vec![["Bin", "Low", "High", "Count", "Frac", "Cum", ""].map(String::from)];
            let bar = |c: u64| "*".repeat((c as f64 / peak * BAR_WIDTH).round() as usize);
            let mut cum = 0u64;
            if h.under > 0 {
                cum += h.under;
                rows.push([
                    "under".into(),
                    String::new(),
                    num(lo),
                    h.under.to_string(),
                    format!("{:.4}", h.under as f64 / total),
                    format!("{:.4}", cum as f64 / total),
                    bar(h.under),
                ]);
            }
            for (i, b) in h.bins.iter().enumerate() {
                cum += b.count;
                rows.push([
                    (i + 1).to_string(),
                    num(b.low),
                    num(b.high),
                    b.count.to_string(),
                    format!("{:.4}", b.fraction),
                    format!("{:.4}", cum as f64 / total),
                    bar(b.count),
                ]);
            }
            if h.over > 0 {
                cum += h.over;
                rows.push([
                    "over".into(),
                    num(hi),
                    String::new(),
                    h.over.to_string(),
                    format!("{:.4}", h.over as f64 / total),
                    format!("{:.4}", cum as f64 / total),
                    bar(h.over),
                ]);
            }
            let mut w = [0usize; 7];
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.len());
                }
            }
            for r in &rows {
                let mut line = String::new();
                for (i, c) in r.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    if i == 6 {
                        line.push_str(c);
                    } else {
                        line.push_str(&" ".repeat(w[i] - c.len()));
                        line.push_str(c);
                    }
                }
                writeln!(out, "{}", line.trim_end())?;
            }
            Ok(())
        }
    }
}

/// `tapflow hist`: builds the histogram and writes it. A bad field or range is an
/// `InvalidInput` error with the message to show.
pub fn run(
    records: &mut dyn Iterator<Item = FlowRecord>,
    opts: &HistOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let h = build(records, opts).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write(&h, opts.format, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Addr, AddrKind, ProbeStatus};

    const NS: u64 = 1_000_000_000;

    fn rec(dur_ms: u64, pkts: u64, bytes: u64) -> FlowRecord {
        let mut r = FlowRecord {
            addr_kind: AddrKind::Ipv4,
            proto: 17,
            saddr: Addr::from_v4([10, 0, 0, 1]),
            daddr: Addr::from_v4([10, 0, 0, 2]),
            stime_ns: 1_795_478_400 * NS,
            ..FlowRecord::default()
        };
        r.ltime_ns = r.stime_ns + dur_ms * 1_000_000;
        r.src.pkts = pkts;
        r.src.bytes = bytes;
        r
    }

    fn hist(recs: Vec<FlowRecord>, o: &HistOptions) -> Histogram {
        build(&mut recs.into_iter(), o).unwrap()
    }

    #[test]
    fn linear_bins_hand_checked() {
        // pkts 1..=10 in 5 bins over the auto range [1, 10]: width 1.8.
        let recs: Vec<_> = (1..=10).map(|p| rec(0, p, 100)).collect();
        let o = HistOptions {
            field: "pkts".into(),
            bins: 5,
            ..HistOptions::default()
        };
        let h = hist(recs, &o);
        let counts: Vec<u64> = h.bins.iter().map(|b| b.count).collect();
        // [1,2.8) 1 2 | [2.8,4.6) 3 4 | [4.6,6.4) 5 6 | [6.4,8.2) 7 8 | [8.2,10] 9 10
        assert_eq!(counts, vec![2, 2, 2, 2, 2]);
        assert_eq!((h.min, h.max, h.mean), (Some(1.0), Some(10.0), Some(5.5)));
        assert!((h.bins[1].low - 2.8).abs() < 1e-9);
        assert_eq!(h.bins[4].high, 10.0);
        assert_eq!(h.bins[4].cumulative, 1.0);
        assert_eq!(h.bins[0].fraction, 0.2);
    }

    #[test]
    fn explicit_range_under_over_and_counts_sum() {
        let mut recs: Vec<_> = (0..100).map(|i| rec(0, 1, i)).collect(); // bytes 0..=99
        recs.push(FlowRecord {
            status: Some(Box::new(ProbeStatus::default())),
            ..FlowRecord::default()
        });
        let o = HistOptions {
            field: "sbytes".into(),
            bins: 4,
            range: Some(parse_range("10:50").unwrap()),
            ..HistOptions::default()
        };
        let h = hist(recs, &o);
        assert_eq!(h.under, 10); // 0 ..= 9
        assert_eq!(h.over, 49); // 51 ..= 99
        let counts: Vec<u64> = h.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![10, 10, 10, 11]); // 50 lands in the closed last bin
        assert_eq!(h.under + h.over + counts.iter().sum::<u64>(), 100);
        assert_eq!(h.values, 100, "the status record is not counted");
        assert!((h.bins[3].cumulative - 0.51).abs() < 1e-12);
    }

    #[test]
    fn log_bins() {
        // bytes 1, 10, 100, … 10^6 in 6 decades: one value a bin, the last holding two.
        let recs: Vec<_> = (0..=6).map(|e| rec(0, 1, 10u64.pow(e))).collect();
        let mut recs = recs;
        recs.push(rec(0, 0, 0)); // zero: no place on a log scale
        let o = HistOptions {
            field: "bytes".into(),
            log: true,
            bins: 6,
            ..HistOptions::default()
        };
        let h = hist(recs, &o);
        let counts: Vec<u64> = h.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![1, 1, 1, 1, 1, 2]);
        assert_eq!(h.under, 1);
        assert!((h.bins[2].low - 100.0).abs() < 1e-6);
        assert_eq!(h.values, 8);
    }

    #[test]
    fn counts_sum_to_records_on_random_input() {
        let mut x = 77u64;
        let mut recs = Vec::new();
        for _ in 0..5000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            recs.push(rec(x >> 50, (x >> 40) & 0xff, x >> 33));
        }
        for field in [
            "dur", "pkts", "sbytes", "rate", "smeansz", "tcprtt", "dport", "sjit",
        ] {
            for log in [false, true] {
                for range in [None, Some((1.0, 1000.0))] {
                    let o = HistOptions {
                        field: field.into(),
                        log,
                        bins: 17,
                        range,
                        ..HistOptions::default()
                    };
                    let h = hist(recs.clone(), &o);
                    let binned: u64 = h.bins.iter().map(|b| b.count).sum();
                    assert_eq!(
                        binned + h.under + h.over,
                        h.values,
                        "{field} {log} {range:?}"
                    );
                    assert_eq!(h.values + h.no_value, 5000, "{field}");
                    assert_eq!(h.bins.len(), 17);
                }
            }
        }
    }

    #[test]
    fn derived_fields_and_missing_values() {
        let r = rec(2000, 10, 5000); // 2 s, 10 pkts, 5000 bytes from src
        assert_eq!(extractor("rate").unwrap().get(&r), Some(5.0));
        assert_eq!(extractor("sload").unwrap().get(&r), Some(20_000.0));
        assert_eq!(extractor("smeansz").unwrap().get(&r), Some(500.0));
        assert_eq!(
            extractor("dmeansz").unwrap().get(&r),
            None,
            "no dst packets"
        );
        assert_eq!(extractor("dur").unwrap().get(&r), Some(2.0));
        assert_eq!(extractor("rate").unwrap().get(&rec(0, 1, 1)), None);
        assert_eq!(extractor("vlan").unwrap().get(&r), None, "blank in read");
        assert!(extractor("saddr").unwrap_err().contains("not numeric"));
        assert!(extractor("nosuch").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn single_value_and_empty_input() {
        let o = HistOptions {
            field: "pkts".into(),
            bins: 3,
            ..HistOptions::default()
        };
        let h = hist(vec![rec(0, 7, 1), rec(0, 7, 1)], &o);
        assert_eq!(h.bins[0].count, 2);
        assert_eq!(h.bins[0].low, 7.0);
        let h = hist(Vec::new(), &o);
        assert_eq!((h.values, h.min), (0, None));
        assert!(h.bins.iter().all(|b| b.count == 0));
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("0:10"), Ok((0.0, 10.0)));
        assert_eq!(parse_range("-1.5:2e3"), Ok((-1.5, 2000.0)));
        for bad in ["5", "3:1", "a:b", "1:inf", "2:2"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        let o = HistOptions {
            field: "dur".into(),
            log: true,
            range: Some((0.0, 1.0)),
            ..HistOptions::default()
        };
        let err = run(&mut Vec::new().into_iter(), &o, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn text_csv_json_output() {
        let recs: Vec<_> = (1..=10).map(|p| rec(0, p, 100)).collect();
        let mut o = HistOptions {
            field: "pkts".into(),
            bins: 5,
            range: Some((2.0, 9.0)),
            ..HistOptions::default()
        };
        let mut out = Vec::new();
        run(&mut recs.clone().into_iter(), &o, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "pkts: 10 records with a value, 0 without; min 1 max 10 mean 5.5"
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["Bin", "Low", "High", "Count", "Frac", "Cum"]
        );
        let under: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(under[..5], ["under", "2", "1", "0.1000", "0.1000"]);
        let first: Vec<&str> = lines[3].split_whitespace().collect();
        // [2, 3.4): 2 and 3, the tallest bin: a full bar.
        assert_eq!(
            first,
            ["1", "2", "3.4", "2", "0.2000", "0.3000", &"*".repeat(50)]
        );
        assert!(lines.last().unwrap().trim_start().starts_with("over"));
        assert_eq!(lines.len(), 2 + 1 + 5 + 1);

        o.format = HistFormat::Csv;
        let mut out = Vec::new();
        run(&mut recs.clone().into_iter(), &o, &mut out).unwrap();
        let csv = String::from_utf8(out).unwrap();
        assert!(csv.starts_with("bin,low,high,count,fraction,cumulative\nunder,,2,1,0.1,0.1\n1,2,"));
        assert!(csv.ends_with("over,9,,1,0.1,1\n"), "{csv}");

        o.format = HistFormat::Json;
        let mut out = Vec::new();
        run(&mut recs.into_iter(), &o, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["values"], 10);
        assert_eq!(v["bins"][0]["count"], 2);
        assert_eq!(v["under"], 1);
    }

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(num(2.0), "2");
        assert_eq!(num(3.4), "3.4");
        assert_eq!(num(0.000123456), "0.000123456");
        assert_eq!(num(1234.5678), "1234.57");
        assert_eq!(num(1e20), "1.00000e20");
        assert_eq!(num(1.5e-7), "1.50000e-7");
    }
}
