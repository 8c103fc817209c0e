//! `tapflow bins -B 1m [-M KEY,…]` (argus `rabins`): time series of the records' counters, per
//! key.
//!
//! # Semantics
//!
//! Bins are `-B` long and aligned to multiples of it since the epoch (UTC), so `-M 1h` bins
//! start on the hour. A record covers the half-open interval `[stime, ltime)`:
//!
//! * **Proportional** (default, as rabins does): the record's packets and bytes of each
//!   direction are divided among the bins the interval overlaps, in proportion to the time of
//!   the overlap. The division is done on cumulative shares (bin `i` gets
//!   `⌊C·t_i/dur⌋ − ⌊C·t_{i−1}/dur⌋`, `t_i` the time covered up to the end of bin `i`), so the
//!   integer parts always add up to exactly the record's counters. A record of zero duration
//!   (or with `ltime < stime`) goes whole into the bin holding `stime`. A record that would
//!   span more than `max_bins_per_record` bins (10,000 by default: a long aggregate binned by the
//!   second, or a corrupt time) also goes whole into its start bin, rather than making
//!   millions of rows.
//! * **Start bin** (`--start-bin`): every record goes whole into the bin holding its `stime`.
//!
//! `count` is the number of records (or record pieces, when split) in the row, like the
//! `trans` column of argus. Probe- and merge-status records are skipped.
//!
//! Keys are `tapflow agg`'s ([`agg::parse_key`]): `saddr`, `daddr` (optionally `saddr/24`,
//! `daddr/64`, `saddr/24/48`: the address with the host bits cleared), `proto`, `sport`,
//! `dport`, `smac`, `dmac`, `vlan`, `ivlan`, `probe`. No key gives one series.
//! Output: one row per (bin, key) in time order then key order, with `count`, `spkts`,
//! `dpkts`, `sbytes`, `dbytes`. Rows are held until the end (memory grows with bins × keys).
//!
//! # CLI mapping (`tapflow bins -r FILE -B DUR [-M KEY,…]`)
//!
//! | flag | [`BinsOptions`] field |
//! |---|---|
//! | `-B DUR` (`30s`, `1m`, `1h`, `1d`; or `-M stime/DUR`, or a bare `-M 1m`) | `bin_ns` ([`parse_keys`]) |
//! | `-M KEY,…` (comma or space separated, repeatable; [`parse_keys`]) | `keys` |
//! | `--start-bin` | `split = SplitMode::Start` |
//! | `--csv` / `--json` | `format` ([`BinsFormat`]) |
//! | `-u` | `epoch` (text times as epoch seconds) |
//!
//! Entry point: [`run`]; [`Binner`] for record-at-a-time use.

use std::collections::BTreeMap;
use std::io::{self, Write};

use tapflow_record::{proto_name, time, Addr, AddrKind, FlowRecord};

use crate::agg::{self, KeyPart};

const NS: u64 = 1_000_000_000;

/// A key component: `tapflow agg`'s key parts (without `stime`, which is the bin here).
pub type BinKey = KeyPart;

/// Parses `-M` arguments (comma or space separated, as `tapflow agg` takes them) and `-B BIN`
/// into (bin size ns, keys), with [`agg::parse_key`] and its bin sizes ([`agg::bin_ns`]). The
/// bin is `-B`, a `stime/BIN` key, or — rabins style, `-M 1m saddr` — a bare size among the
/// `-M` words; exactly one is needed. No other key gives one series.
pub fn parse_keys(args: &[String], bin: Option<&str>) -> Result<(u64, Vec<BinKey>), String> {
    let mut words = Vec::new();
    let mut bare = None;
    for w in args
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|w| !w.is_empty())
    {
        // No key name starts with a digit: this is a bin size.
        if w.starts_with(|c: char| c.is_ascii_digit()) {
            if bare.is_some() {
                return Err(format!("-M {w}: a second bin size"));
            }
            bare = Some(agg::bin_ns(w).map_err(|e| format!("-M {w}: {e}"))?);
        } else {
            words.push(w.to_string());
        }
    }
    let mut keys = if words.is_empty() {
        // agg::parse_key would give its default (flow) key: here none is one series.
        match bin {
            Some(b) => vec![KeyPart::Stime(
                agg::bin_ns(b).map_err(|e| format!("-B {b}: {e}"))?,
            )],
            None => Vec::new(),
        }
    } else {
        agg::parse_key(&words, bin)?
    };
    let mut bin_ns = bare;
    let mut i = 0;
    while i < keys.len() {
        if let KeyPart::Stime(ns) = keys[i] {
            if bin_ns.is_some() {
                return Err("two bin sizes: give one with -B (or -M stime/BIN)".into());
            }
            bin_ns = Some(ns);
            keys.remove(i);
        } else {
            i += 1;
        }
    }
    let bin_ns = bin_ns.ok_or("bins needs a bin size: -B 1m (or -M 1m, or -M stime/1m)")?;
    Ok((bin_ns, keys))
}

/// A key's column name: `saddr`, `saddr/24`, `daddr/24/64`, `dport` ….
fn key_name(k: &BinKey) -> String {
    let addr = |name: &str, v4: u8, v6: u8| match (v4, v6) {
        (32, 128) => name.to_string(),
        (a, b) if a == b => format!("{name}/{a}"),
        (32, b) => format!("{name}/{b}"),
        (a, b) => format!("{name}/{a}/{b}"),
    };
    match *k {
        KeyPart::Saddr { v4, v6 } => addr("saddr", v4, v6),
        KeyPart::Daddr { v4, v6 } => addr("daddr", v4, v6),
        k => k.field().name().to_string(),
    }
}

/// A key component's value; ordered so that rows sort sensibly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyVal {
    Addr(AddrKind, Addr, Option<u8>),
    Proto(AddrKind, u8, u16),
    Num(u64),
    Mac([u8; 6]),
}

impl KeyVal {
    pub(crate) fn text(&self) -> String {
        match *self {
            KeyVal::Addr(k, a, None) => a.display(k).to_string(),
            KeyVal::Addr(k, a, Some(p)) => format!("{}/{p}", a.display(k)),
            KeyVal::Proto(k, p, e) => proto_name(k, p, e),
            KeyVal::Num(n) => n.to_string(),
            KeyVal::Mac(m) => Addr::from_mac(m).display(AddrKind::L2).to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            KeyVal::Num(n) => serde_json::Value::from(*n),
            v => serde_json::Value::from(v.text()),
        }
    }
}

/// The address with the host bits below the key's prefix (`v4` or `v6` bits) cleared; the
/// prefix is shown unless it keeps the whole address.
fn masked(kind: AddrKind, a: Addr, v4: u8, v6: u8) -> KeyVal {
    let (p, bits) = match kind {
        AddrKind::Ipv4 => (v4, 32),
        AddrKind::Ipv6 => (v6, 128),
        AddrKind::L2 => return KeyVal::Addr(kind, a, None),
    };
    if p >= bits {
        return KeyVal::Addr(kind, a, None);
    }
    let mut out = a;
    for (i, b) in out.0.iter_mut().enumerate() {
        let lo = (i * 8) as u8;
        if lo >= p {
            *b = 0;
        } else if lo + 8 > p {
            *b &= 0xffu8 << (8 - (p - lo));
        }
    }
    KeyVal::Addr(kind, out, Some(p))
}

fn key_of(keys: &[BinKey], r: &FlowRecord) -> Vec<KeyVal> {
    keys.iter()
        .map(|k| match *k {
            KeyPart::Saddr { v4, v6 } => masked(r.addr_kind, r.saddr, v4, v6),
            KeyPart::Daddr { v4, v6 } => masked(r.addr_kind, r.daddr, v4, v6),
            KeyPart::Proto => KeyVal::Proto(r.addr_kind, r.proto, r.ethertype),
            KeyPart::Sport => KeyVal::Num(r.sport.into()),
            KeyPart::Dport => KeyVal::Num(r.dport.into()),
            KeyPart::Smac => KeyVal::Mac(r.smac),
            KeyPart::Dmac => KeyVal::Mac(r.dmac),
            KeyPart::Vlan => KeyVal::Num(r.vlan[0].into()),
            KeyPart::Ivlan => KeyVal::Num(r.vlan[1].into()),
            KeyPart::Probe => KeyVal::Num(r.probe_id.into()),
            // parse_keys takes stime out as the bin; a caller's stime key is one value.
            KeyPart::Stime(_) => KeyVal::Num(0),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitMode {
    #[default]
    Proportional,
    Start,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BinsFormat {
    #[default]
    Text,
    Csv,
    Json,
}

/// See the module doc for the flags.
#[derive(Clone, Debug)]
pub struct BinsOptions {
    pub bin_ns: u64,
    pub keys: Vec<BinKey>,
    pub split: SplitMode,
    pub format: BinsFormat,
    pub epoch: bool,
    pub max_bins_per_record: u64,
}

impl Default for BinsOptions {
    fn default() -> Self {
        BinsOptions {
            bin_ns: 60 * NS,
            keys: Vec::new(),
            split: SplitMode::Proportional,
            format: BinsFormat::Text,
            epoch: false,
            // Bounds the rows one record can make (a record of days binned by the second).
            max_bins_per_record: 10_000,
        }
    }
}

/// One row's sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinAcc {
    pub count: u64,
    pub spkts: u64,
    pub dpkts: u64,
    pub sbytes: u64,
    pub dbytes: u64,
}

/// `⌊c·num/den⌋` without overflow (num ≤ den).
fn share(c: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return c;
    }
    (u128::from(c) * u128::from(num) / u128::from(den)) as u64
}

/// Accumulates records into (bin, key) rows.
pub struct Binner {
    opts: BinsOptions,
    bin: u64,
    rows: BTreeMap<(u64, Vec<KeyVal>), BinAcc>,
    clip: Option<(u64, u64)>,
}

impl Binner {
    pub fn new(opts: &BinsOptions) -> Binner {
        Binner {
            opts: opts.clone(),
            bin: opts.bin_ns.max(1),
            rows: BTreeMap::new(),
            clip: None,
        }
    }

    /// Clips what is binned to `[start_ns, end_ns)`, the `-t` range: pieces of records outside
    /// it are dropped (a record of start-bin mode goes whole to the range's first bin when it
    /// began earlier), so no row lies outside the range asked for.
    pub fn clip(&mut self, start_ns: u64, end_ns: u64) {
        self.clip = Some((start_ns, end_ns.max(start_ns)));
    }

    pub fn add(&mut self, r: &FlowRecord) {
        if r.is_meta() {
            return;
        }
        let key = key_of(&self.opts.keys, r);
        let bin = self.bin;
        let (s, l) = (r.stime_ns, r.ltime_ns.max(r.stime_ns));
        let dur = l - s;
        // The covered part of [s, l), as offsets from s.
        let (lo, hi) = match self.clip {
            Some((c0, c1)) => (c0.clamp(s, l) - s, c1.clamp(s, l) - s),
            None => (0, dur),
        };
        let first = (s + lo) / bin;
        let last = if hi == 0 { first } else { (s + hi - 1) / bin };
        let whole = self.opts.split == SplitMode::Start
            || dur == 0
            || lo >= hi
            || last - first >= self.opts.max_bins_per_record.max(1);
        if whole {
            let at = match self.clip {
                Some((c0, c1)) => s.clamp(c0, c1.saturating_sub(1).max(c0)),
                None => s,
            };
            let acc = self.rows.entry((at / bin * bin, key)).or_default();
            acc.count += 1;
            acc.spkts = acc.spkts.saturating_add(r.src.pkts);
            acc.dpkts = acc.dpkts.saturating_add(r.dst.pkts);
            acc.sbytes = acc.sbytes.saturating_add(r.src.bytes);
            acc.dbytes = acc.dbytes.saturating_add(r.dst.bytes);
            return;
        }
        let counters = [r.src.pkts, r.dst.pkts, r.src.bytes, r.dst.bytes];
        let mut prev_cover = lo;
        for b in first..=last {
            // Time of the record covered up to the end of bin b (the last bin ends at hi).
            let end = if b == last { hi } else { (b + 1) * bin - s };
            let part = counters.map(|c| share(c, end, dur) - share(c, prev_cover, dur));
            prev_cover = end;
            let acc = self.rows.entry((b * bin, key.clone())).or_default();
            acc.count += 1;
            acc.spkts = acc.spkts.saturating_add(part[0]);
            acc.dpkts = acc.dpkts.saturating_add(part[1]);
            acc.sbytes = acc.sbytes.saturating_add(part[2]);
            acc.dbytes = acc.dbytes.saturating_add(part[3]);
        }
    }

    /// The rows: (bin start ns, key, sums), in time then key order.
    pub fn rows(&self) -> impl Iterator<Item = (u64, &[KeyVal], &BinAcc)> {
        self.rows.iter().map(|((t, k), a)| (*t, k.as_slice(), a))
    }

    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let names: Vec<String> = self.opts.keys.iter().map(key_name).collect();
        match self.opts.format {
            BinsFormat::Json => {
                for (t, k, a) in self.rows() {
                    let mut m = serde_json::Map::new();
                    m.insert("stime".into(), serde_json::Value::from(t as f64 / 1e9));
                    for (n, v) in names.iter().zip(k) {
                        m.insert(n.clone(), v.json());
                    }
                    for (n, v) in [
                        ("count", a.count),
                        ("spkts", a.spkts),
                        ("dpkts", a.dpkts),
                        ("sbytes", a.sbytes),
                        ("dbytes", a.dbytes),
                    ] {
                        m.insert(n.into(), serde_json::Value::from(v));
                    }
                    serde_json::to_writer(&mut *out, &m).map_err(io::Error::other)?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            }
            BinsFormat::Csv => {
                let mut head = vec!["stime".to_string()];
                head.extend(names.iter().cloned());
                head.extend(["count", "spkts", "dpkts", "sbytes", "dbytes"].map(String::from));
                writeln!(out, "{}", head.join(","))?;
                for (t, k, a) in self.rows() {
                    let mut line = epoch_secs(t);
                    for v in k {
                        line.push(',');
                        line.push_str(&csv_field(&v.text()));
                    }
                    for v in [a.count, a.spkts, a.dpkts, a.sbytes, a.dbytes] {
                        line.push(',');
                        line.push_str(&v.to_string());
                    }
                    writeln!(out, "{line}")?;
                }
                Ok(())
            }
            BinsFormat::Text => {
                let mut rows = vec![{
                    let mut h = vec!["StartTime".to_string()];
                    h.extend(names.iter().cloned());
                    h.extend(
                        ["Count", "SrcPkts", "DstPkts", "SrcBytes", "DstBytes"].map(String::from),
                    );
                    h
                }];
                for (t, k, a) in self.rows() {
                    let mut row = vec![if self.opts.epoch {
                        epoch_secs(t)
                    } else {
                        utc(t)
                    }];
                    row.extend(k.iter().map(KeyVal::text));
                    row.extend(
                        [a.count, a.spkts, a.dpkts, a.sbytes, a.dbytes].map(|v| v.to_string()),
                    );
                    rows.push(row);
                }
                let ncols = rows[0].len();
                let mut w = vec![0; ncols];
                for r in &rows {
                    for (i, c) in r.iter().enumerate() {
                        w[i] = w[i].max(c.len());
                    }
                }
                let nkeys = names.len();
                for r in &rows {
                    let mut line = String::new();
                    for (i, c) in r.iter().enumerate() {
                        if i > 0 {
                            line.push(' ');
                        }
                        let pad = " ".repeat(w[i] - c.len());
                        // Time and keys left-aligned, numbers right-aligned.
                        if i <= nkeys {
                            line.push_str(c);
                            line.push_str(&pad);
                        } else {
                            line.push_str(&pad);
                            line.push_str(c);
                        }
                    }
                    writeln!(out, "{}", line.trim_end())?;
                }
                Ok(())
            }
        }
    }
}

fn utc(ns: u64) -> String {
    let (y, mo, d, h, mi, s) = time::utc(ns / NS);
    let frac = ns % NS;
    if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:06}",
            frac / 1000
        )
    }
}

fn epoch_secs(ns: u64) -> String {
    let frac = ns % NS;
    if frac == 0 {
        (ns / NS).to_string()
    } else {
        format!("{}.{:06}", ns / NS, frac / 1000)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `tapflow bins`: bins every record and writes the rows.
pub fn run(
    records: &mut dyn Iterator<Item = FlowRecord>,
    opts: &BinsOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut b = Binner::new(opts);
    for r in records {
        b.add(&r);
    }
    b.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::ProbeStatus;

    const T0: u64 = (1_795_478_400 + 10 * 3600) * NS; // 2026-11-24 10:00:00

    fn rec(src: [u8; 4], dport: u16, s: u64, l: u64, c: [u64; 4]) -> FlowRecord {
        let mut r = FlowRecord {
            addr_kind: AddrKind::Ipv4,
            proto: 6,
            saddr: Addr::from_v4(src),
            daddr: Addr::from_v4([192, 0, 2, 1]),
            dport,
            stime_ns: s,
            ltime_ns: l,
            ..FlowRecord::default()
        };
        r.src.pkts = c[0];
        r.dst.pkts = c[1];
        r.src.bytes = c[2];
        r.dst.bytes = c[3];
        r
    }

    fn collect(b: &Binner) -> Vec<(u64, Vec<String>, BinAcc)> {
        b.rows()
            .map(|(t, k, a)| (t, k.iter().map(KeyVal::text).collect(), *a))
            .collect()
    }

    #[test]
    fn keys_parse() {
        let k = |m: &[&str], b: Option<&str>| {
            parse_keys(&m.iter().map(|s| s.to_string()).collect::<Vec<_>>(), b)
        };
        let (bin, keys) = k(&["saddr/24,dport", "proto"], Some("5m")).unwrap();
        assert_eq!(bin, 300 * NS);
        assert_eq!(
            keys,
            vec![
                KeyPart::Saddr { v4: 24, v6: 24 },
                KeyPart::Dport,
                KeyPart::Proto
            ]
        );
        // rabins style: the bin among the -M words; stime/BIN as in agg.
        assert_eq!(k(&["1m", "saddr"], None).unwrap().0, 60 * NS);
        assert_eq!(
            k(&["stime/1h,dport"], None).unwrap(),
            (3600 * NS, vec![KeyPart::Dport])
        );
        assert_eq!(k(&[], Some("30s")).unwrap(), (30 * NS, vec![]));
        assert!(k(&["saddr"], None).unwrap_err().contains("bin size"));
        assert!(k(&["1m"], Some("1m"))
            .unwrap_err()
            .contains("two bin sizes"));
        assert!(k(&["bogus"], Some("1m"))
            .unwrap_err()
            .contains("unknown key 'bogus'"));
        assert!(k(&["dport/8"], Some("1m")).is_err());
        assert!(k(&["saddr/200"], Some("1m")).is_err());
        assert!(k(&["5x"], None).unwrap_err().contains("unit"));
        assert!(k(&["saddr/24,saddr/64"], Some("1m"))
            .unwrap_err()
            .contains("twice"));
        let (_, ks) = k(&["saddr/24,daddr/24/64,probe"], Some("1m")).unwrap();
        let names: Vec<String> = ks.iter().map(key_name).collect();
        assert_eq!(names, ["saddr/24", "daddr/24/64", "probe"]);
        let (_, ks) = k(&["daddr/64"], Some("1m")).unwrap();
        assert_eq!(key_name(&ks[0]), "daddr/64");
    }

    #[test]
    fn clipped_to_the_time_range() {
        // 10:00:30 → 10:02:30 (120 s, 120 packets), -t 10:01:15-10:02:00, 1m bins: only
        // 10:01:15-10:01:59.999 is kept, 45 s → 45 packets, all in the 10:01 bin.
        let r = rec(
            [10, 0, 0, 1],
            80,
            T0 + 30 * NS,
            T0 + 150 * NS,
            [120, 0, 0, 0],
        );
        let mut b = Binner::new(&BinsOptions::default());
        b.clip(T0 + 75 * NS, T0 + 120 * NS);
        b.add(&r);
        let rows = collect(&b);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].0, rows[0].2.spkts), (T0 + 60 * NS, 45));
        // A range cutting across bins: 10:00:45-10:01:30 → 15 s in 10:00, 30 s in 10:01.
        let mut b = Binner::new(&BinsOptions::default());
        b.clip(T0 + 45 * NS, T0 + 90 * NS);
        b.add(&r);
        let got: Vec<(u64, u64)> = b.rows().map(|(t, _, a)| (t, a.spkts)).collect();
        assert_eq!(got, vec![(T0, 15), (T0 + 60 * NS, 30)]);
        // Start-bin mode: a record begun before the range counts in the range's first bin.
        let mut b = Binner::new(&BinsOptions {
            split: SplitMode::Start,
            ..BinsOptions::default()
        });
        b.clip(T0 + 75 * NS, T0 + 120 * NS);
        b.add(&r);
        let got: Vec<(u64, u64)> = b.rows().map(|(t, _, a)| (t, a.spkts)).collect();
        assert_eq!(got, vec![(T0 + 60 * NS, 120)]);
    }

    #[test]
    fn proportional_split_hand_checked() {
        // 10:00:30 → 10:02:30 with 1m bins: 30 s in 10:00, 60 s in 10:01, 30 s in 10:02.
        let r = rec(
            [10, 0, 0, 1],
            80,
            T0 + 30 * NS,
            T0 + 150 * NS,
            [8, 4, 1200, 400],
        );
        let mut b = Binner::new(&BinsOptions::default());
        b.add(&r);
        let rows = collect(&b);
        let accs: Vec<(u64, BinAcc)> = rows.iter().map(|(t, _, a)| (*t, *a)).collect();
        let acc = |count, spkts, dpkts, sbytes, dbytes| BinAcc {
            count,
            spkts,
            dpkts,
            sbytes,
            dbytes,
        };
        assert_eq!(
            accs,
            vec![
                (T0, acc(1, 2, 1, 300, 100)),
                (T0 + 60 * NS, acc(1, 4, 2, 600, 200)),
                (T0 + 120 * NS, acc(1, 2, 1, 300, 100)),
            ]
        );
    }

    #[test]
    fn start_bin_mode_and_edges() {
        let mut o = BinsOptions {
            split: SplitMode::Start,
            ..BinsOptions::default()
        };
        let r = rec(
            [10, 0, 0, 1],
            80,
            T0 + 30 * NS,
            T0 + 150 * NS,
            [8, 4, 1200, 400],
        );
        let mut b = Binner::new(&o);
        b.add(&r);
        let rows = collect(&b);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].0, rows[0].2.spkts, rows[0].2.sbytes),
            (T0, 8, 1200)
        );

        // Ending exactly on a boundary does not touch the next bin ([stime, ltime) intervals);
        // zero-duration and backwards records stay whole in their start bin.
        o.split = SplitMode::Proportional;
        let mut b = Binner::new(&o);
        b.add(&rec([10, 0, 0, 1], 80, T0, T0 + 60 * NS, [3, 3, 3, 3]));
        b.add(&rec(
            [10, 0, 0, 1],
            80,
            T0 + 5 * NS,
            T0 + 5 * NS,
            [1, 0, 10, 0],
        ));
        b.add(&rec([10, 0, 0, 1], 80, T0 + 7 * NS, T0, [1, 0, 10, 0]));
        let rows = collect(&b);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].2.count, 3);
        assert_eq!(rows[0].2.spkts, 5);
    }

    #[test]
    fn split_sums_equal_input_totals() {
        // Awkward durations and prime counters: the integer shares must still add up exactly.
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let o = BinsOptions {
            bin_ns: 7 * NS,
            keys: vec![KeyPart::Dport],
            ..BinsOptions::default()
        };
        let mut b = Binner::new(&o);
        let mut want = [0u64; 4];
        let mut records = 0;
        for _ in 0..3000 {
            let s = T0 + next() % (3600 * NS);
            let l = s + next() % (600 * NS);
            let c = [
                next() % 1000,
                next() % 1000,
                next() % 10_000_019,
                next() % 10_000_019,
            ];
            for (w, v) in want.iter_mut().zip(c) {
                *w += v;
            }
            records += 1;
            b.add(&rec([10, 0, 0, 1], (next() % 4) as u16, s, l, c));
        }
        b.add(&FlowRecord {
            status: Some(Box::new(ProbeStatus::default())),
            ..FlowRecord::default()
        });
        let mut got = [0u64; 4];
        let mut pieces = 0;
        for (_, _, a) in b.rows() {
            got[0] += a.spkts;
            got[1] += a.dpkts;
            got[2] += a.sbytes;
            got[3] += a.dbytes;
            pieces += a.count;
        }
        assert_eq!(got, want);
        assert!(
            pieces > records,
            "long records were split ({pieces} pieces)"
        );
    }

    #[test]
    fn keys_and_outputs() {
        let o = BinsOptions {
            keys: parse_keys(&["saddr/24".into(), "dport".into()], Some("1m"))
                .unwrap()
                .1,
            split: SplitMode::Start,
            ..BinsOptions::default()
        };
        let recs = vec![
            rec([10, 0, 0, 1], 80, T0, T0 + NS, [1, 1, 100, 200]),
            rec([10, 0, 0, 2], 80, T0 + NS, T0 + 2 * NS, [2, 2, 100, 200]),
            rec([10, 0, 1, 1], 80, T0, T0, [1, 1, 10, 20]),
            rec(
                [10, 0, 0, 1],
                443,
                T0 + 61 * NS,
                T0 + 62 * NS,
                [1, 0, 60, 0],
            ),
        ];
        let mut text = Vec::new();
        run(&mut recs.clone().into_iter(), &o, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[0]),
            [
                "StartTime",
                "saddr/24",
                "dport",
                "Count",
                "SrcPkts",
                "DstPkts",
                "SrcBytes",
                "DstBytes"
            ]
        );
        assert_eq!(
            cols(lines[1]),
            [
                "2026-11-24",
                "10:00:00",
                "10.0.0.0/24",
                "80",
                "2",
                "3",
                "3",
                "200",
                "400"
            ]
        );
        assert_eq!(
            cols(lines[2]),
            [
                "2026-11-24",
                "10:00:00",
                "10.0.1.0/24",
                "80",
                "1",
                "1",
                "1",
                "10",
                "20"
            ]
        );
        assert_eq!(
            cols(lines[3]),
            [
                "2026-11-24",
                "10:01:00",
                "10.0.0.0/24",
                "443",
                "1",
                "1",
                "0",
                "60",
                "0"
            ]
        );

        let mut o = o;
        o.format = BinsFormat::Csv;
        let mut csv = Vec::new();
        run(&mut recs.clone().into_iter(), &o, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(
            csv.lines().take(2).collect::<Vec<_>>(),
            [
                "stime,saddr/24,dport,count,spkts,dpkts,sbytes,dbytes",
                "1795514400,10.0.0.0/24,80,2,3,3,200,400"
            ]
        );

        o.format = BinsFormat::Json;
        let mut js = Vec::new();
        run(&mut recs.into_iter(), &o, &mut js).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(js).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["saddr/24"], "10.0.0.0/24");
        assert_eq!(first["dport"], 80);
        assert_eq!(first["sbytes"], 200);
        assert_eq!(first["stime"], 1_795_514_400.0);
    }

    #[test]
    fn corrupt_times_do_not_explode() {
        let o = BinsOptions {
            bin_ns: 1,
            ..BinsOptions::default()
        };
        let mut b = Binner::new(&o);
        b.add(&rec(
            [10, 0, 0, 1],
            80,
            1,
            u64::MAX,
            [u64::MAX, 1, u64::MAX, 1],
        ));
        b.add(&rec(
            [10, 0, 0, 1],
            80,
            u64::MAX - 3,
            u64::MAX,
            [7, 1, 7, 1],
        ));
        let rows = collect(&b);
        // The first went whole into its start bin; the second split over 3 one-ns bins.
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].2.spkts, u64::MAX);
        assert_eq!(rows[1..].iter().map(|r| r.2.spkts).sum::<u64>(), 7);
    }
}
