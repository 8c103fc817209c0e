//! `tapflow plot` (argus `ragraph`): time series charts of the records, to SVG or PNG.
//!
//! The series are `tapflow bins` rows ([`Binner`], proportional split by default): one line
//! per key value, the `--top N` keys by total of the metric drawn and the rest summed into
//! `other`; bins without traffic are drawn as zero, not bridged. Metrics: `bps` and `pps`
//! (per second, the default `bps`), or per-bin sums `bytes`, `pkts`, `sbytes`, `dbytes`,
//! `spkts`, `dpkts`, `count` (records). `--stack` stacks the series as areas.
//!
//! Text needs a TrueType font: SVG and PNG alike (plotters measures labels with it). It is
//! taken from `--font`, `$TAPFLOW_FONT`, or the usual system places (DejaVu, Liberation,
//! FreeFont …; Debian: `fonts-dejavu-core`). `--table` prints the plotted series as CSV
//! instead of drawing, for checking or another plotting tool.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::bins::{self, BinAcc, Binner, BinsOptions, KeyVal, SplitMode};
use crate::cli::PlotArgs;
use crate::read::{open_sources, parse_filter};
use crate::source::Meta;
use crate::Failure;

const NS: u64 = 1_000_000_000;
/// Bins drawn at most: beyond this a chart is unreadable and the series arrays get large.
const MAX_POINTS: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Bps,
    Pps,
    Bytes,
    Pkts,
    Sbytes,
    Dbytes,
    Spkts,
    Dpkts,
    Count,
}

impl Metric {
    pub const NAMES: &'static str = "bps pps bytes pkts sbytes dbytes spkts dpkts count";

    pub fn parse(s: &str) -> Result<Metric, String> {
        Ok(match s {
            "bps" => Metric::Bps,
            "pps" => Metric::Pps,
            "bytes" => Metric::Bytes,
            "pkts" => Metric::Pkts,
            "sbytes" => Metric::Sbytes,
            "dbytes" => Metric::Dbytes,
            "spkts" => Metric::Spkts,
            "dpkts" => Metric::Dpkts,
            "count" => Metric::Count,
            _ => return Err(format!("unknown metric '{s}'; one of: {}", Metric::NAMES)),
        })
    }

    fn label(self) -> &'static str {
        match self {
            Metric::Bps => "bits/s",
            Metric::Pps => "packets/s",
            Metric::Bytes => "bytes per bin",
            Metric::Pkts => "packets per bin",
            Metric::Sbytes => "src bytes per bin",
            Metric::Dbytes => "dst bytes per bin",
            Metric::Spkts => "src packets per bin",
            Metric::Dpkts => "dst packets per bin",
            Metric::Count => "records per bin",
        }
    }

    /// The value of one (bin, key) row.
    pub fn of(self, a: &BinAcc, bin_ns: u64) -> f64 {
        let secs = bin_ns as f64 / 1e9;
        let bytes = a.sbytes.saturating_add(a.dbytes) as f64;
        let pkts = a.spkts.saturating_add(a.dpkts) as f64;
        match self {
            Metric::Bps => bytes * 8.0 / secs,
            Metric::Pps => pkts / secs,
            Metric::Bytes => bytes,
            Metric::Pkts => pkts,
            Metric::Sbytes => a.sbytes as f64,
            Metric::Dbytes => a.dbytes as f64,
            Metric::Spkts => a.spkts as f64,
            Metric::Dpkts => a.dpkts as f64,
            Metric::Count => a.count as f64,
        }
    }
}

/// Named series over a common time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Bin start times, ns, every bin from the first to the last.
    pub times: Vec<u64>,
    /// (name, value per bin), largest total first; `other` last.
    pub lines: Vec<(String, Vec<f64>)>,
}

/// Builds the series from binned rows: the `top` keys by total, the rest summed as `other`.
pub fn series(b: &Binner, bin_ns: u64, metric: Metric, top: usize) -> Result<Series, String> {
    // By label: key values that print alike (tcp over IPv4 and over IPv6 with -M proto) are
    // one line, not two lines of the same name.
    let mut per_key: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for (t, k, a) in b.rows() {
        lo = lo.min(t);
        hi = hi.max(t);
        *per_key
            .entry(key_label(k))
            .or_default()
            .entry(t)
            .or_default() += metric.of(a, bin_ns);
    }
    if per_key.is_empty() {
        return Ok(Series {
            times: Vec::new(),
            lines: Vec::new(),
        });
    }
    let n = (hi - lo) / bin_ns + 1;
    if n > MAX_POINTS {
        return Err(format!(
            "{n} bins from the first record to the last: more than {MAX_POINTS}; use a larger \
             -B or a -t range"
        ));
    }
    let times: Vec<u64> = (0..n).map(|i| lo + i * bin_ns).collect();
    let dense = |m: &BTreeMap<u64, f64>| {
        let mut v = vec![0.0; n as usize];
        for (t, x) in m {
            v[((t - lo) / bin_ns) as usize] += x;
        }
        v
    };
    let mut keyed: Vec<(String, f64, Vec<f64>)> = per_key
        .iter()
        .map(|(k, m)| {
            let v = dense(m);
            (k.clone(), v.iter().sum(), v)
        })
        .collect();
    // Largest total first; ties by key so the colours are stable between runs.
    keyed.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top = top.max(1);
    let mut lines = Vec::new();
    let mut other: Option<Vec<f64>> = None;
    for (i, (k, _, v)) in keyed.into_iter().enumerate() {
        if i < top {
            lines.push((k, v));
        } else {
            let o = other.get_or_insert_with(|| vec![0.0; n as usize]);
            for (a, b) in o.iter_mut().zip(&v) {
                *a += b;
            }
        }
    }
    if let Some(o) = other {
        lines.push(("other".into(), o));
    }
    Ok(Series { times, lines })
}

fn key_label(k: &[KeyVal]) -> String {
    if k.is_empty() {
        return "all".into();
    }
    k.iter().map(KeyVal::text).collect::<Vec<_>>().join(" ")
}

/// `1234567` → `1.23M` (SI), for the y axis.
fn si(x: f64) -> String {
    let a = x.abs();
    for (div, u) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")] {
        if a >= div {
            return trim_num(x / div) + u;
        }
    }
    trim_num(x)
}

fn trim_num(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// x-axis labels: the time of day, with the date when the chart spans days.
fn time_label(ns: u64, span_ns: u64) -> String {
    let mut s = String::with_capacity(26);
    crate::format::push_time(&mut s, ns, false);
    // "YYYY-MM-DD HH:MM:SS.ffffff"
    if span_ns >= 86_400 * NS {
        s[..16].to_string()
    } else if span_ns >= 600 * NS {
        s[11..16].to_string()
    } else {
        s[11..19].to_string()
    }
}

/// `60 s` → `1m`: the bin as `-B` spells it.
fn duration_name(ns: u64) -> String {
    let s = ns / NS;
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// Where the TrueType font is, in the order `plot` looks.
pub fn find_font(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--font {}: no such file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("TAPFLOW_FONT") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("TAPFLOW_FONT={}: no such file", p.display()))
        };
    }
    const KNOWN: &[&str] = &[
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/local/share/fonts/DejaVuSans.ttf",
    ];
    for k in KNOWN {
        if Path::new(k).is_file() {
            return Ok(PathBuf::from(k));
        }
    }
    // Any TrueType font at all, searched a few levels deep.
    fn scan(dir: &Path, depth: u32) -> Option<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in &entries {
            let p = e.path();
            if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
                return Some(p);
            }
        }
        if depth == 0 {
            return None;
        }
        entries
            .iter()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .find_map(|e| scan(&e.path(), depth - 1))
    }
    scan(Path::new("/usr/share/fonts"), 3).ok_or_else(|| {
        "no TrueType font found for the chart's text: install one (Debian: apt install \
         fonts-dejavu-core), or give --font FILE.ttf or TAPFLOW_FONT"
            .to_string()
    })
}

fn load_font(path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("font {}: {e}", path.display()))?;
    // plotters keeps registered fonts for the life of the process.
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, data).map_err(|_| {
        format!(
            "font {}: not a TrueType font plotters can read",
            path.display()
        )
    })
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub width: u32,
    pub height: u32,
    pub stack: bool,
}

/// Draws the series on any plotters backend.
pub fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    s: &Series,
    c: &Chart,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("drawing the chart: {e}");
    root.fill(&WHITE).map_err(e)?;
    let (x0, x1) = match (s.times.first(), s.times.last()) {
        (Some(&a), Some(&b)) => (a, b.max(a + 1)),
        _ => {
            root.draw(&Text::new(
                "no records",
                (c.width as i32 / 2 - 40, c.height as i32 / 2),
                ("sans-serif", 20),
            ))
            .map_err(e)?;
            return root.present().map_err(e);
        }
    };
    let n = s.times.len();
    // Stacked: each line is drawn at the running sum, largest at the bottom.
    let mut drawn: Vec<(String, Vec<f64>)> = Vec::with_capacity(s.lines.len());
    let mut base = vec![0.0; n];
    for (name, v) in &s.lines {
        let vals = if c.stack {
            for (b, x) in base.iter_mut().zip(v) {
                *b += x;
            }
            base.clone()
        } else {
            v.clone()
        };
        drawn.push((name.clone(), vals));
    }
    let ymax = drawn
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let span = x1 - x0;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0f64..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|t| time_label(*t, span))
        .y_label_formatter(&|y| si(*y))
        .x_desc("time (UTC)")
        .y_desc(c.y_label.as_str())
        .draw()
        .map_err(e)?;
    let color = |i: usize| Palette99::pick(i).to_rgba();
    // Stacked areas are drawn tallest first so each smaller one lies on top; lines in rank order.
    let order: Vec<usize> = if c.stack {
        (0..drawn.len()).rev().collect()
    } else {
        (0..drawn.len()).collect()
    };
    for i in order {
        let (name, vals) = &drawn[i];
        let pts: Vec<(u64, f64)> = s.times.iter().copied().zip(vals.iter().copied()).collect();
        let col = color(i);
        if c.stack {
            chart
                .draw_series(AreaSeries::new(pts, 0.0, col.filled()).border_style(BLACK.mix(0.5)))
                .map_err(e)?
        } else {
            chart
                .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                .map_err(e)?
        }
        .label(name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], col.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

/// Output kind, from `--format` or the file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

fn format_of(args: &PlotArgs) -> Result<Format, Failure> {
    if let Some(f) = &args.format {
        return match f.as_str() {
            "svg" => Ok(Format::Svg),
            "png" => Ok(Format::Png),
            _ => Err(Failure::bad(format!("--format {f}: svg or png"))),
        };
    }
    let out = args.output.as_deref().unwrap_or(Path::new("-"));
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "png" => Ok(Format::Png),
        Some(e) if e == "svg" => Ok(Format::Svg),
        _ if out.as_os_str() == "-" => Ok(Format::Svg),
        _ => Err(Failure::bad(format!(
            "-o {}: name it .svg or .png, or give --format",
            out.display()
        ))),
    }
}

/// `tapflow plot`.
pub fn run(args: &PlotArgs, dashdash: bool) -> Result<(), Failure> {
    let (bin_ns, keys) = bins::parse_keys(&args.key, args.bin.as_deref()).map_err(Failure::bad)?;
    let metric = Metric::parse(&args.metric).map_err(Failure::bad)?;
    let format = format_of(args)?;
    if !(64..=20_000).contains(&args.width) || !(64..=20_000).contains(&args.height) {
        return Err(Failure::bad(
            "--width and --height must be 64 to 20000 pixels",
        ));
    }
    if args.table && args.output.is_some() {
        return Err(Failure::bad("--table prints the series on stdout; drop -o"));
    }
    let out_path = args.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    if format == Format::Png && out_path.as_os_str() == "-" && !args.table {
        return Err(Failure::bad("a PNG needs a file: -o chart.png"));
    }
    // Fail on the font before reading a day of records.
    let font = if args.table {
        None
    } else {
        let font = find_font(args.font.as_deref()).map_err(Failure::bad)?;
        load_font(&font).map_err(Failure::bad)?;
        Some(font)
    };
    crate::read::refuse_output_over_input(&args.source.files, args.output.as_deref())?;
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Skip)?;
    let mut b = Binner::new(&BinsOptions {
        bin_ns,
        keys,
        split: if args.start_bin {
            SplitMode::Start
        } else {
            SplitMode::Proportional
        },
        ..BinsOptions::default()
    });
    while let Some(r) = records.next() {
        if let Some(t) = records.range() {
            b.clip(t.start_ns, t.end_ns);
        }
        b.add(&r);
    }
    let s = series(&b, bin_ns, metric, args.top).map_err(Failure::bad)?;
    let fail = |code: Option<i32>| match code {
        Some(code) => Err(Failure {
            code,
            msg: String::new(),
        }),
        None => Ok(()),
    };
    if args.table {
        let mut out = io::BufWriter::new(io::stdout().lock());
        let res = write_table(&s, &mut out).and_then(|_| out.flush());
        return match res {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(Failure::io(format!("writing output: {e}")))
            }
            _ => fail(records.failed()),
        };
    }
    let key_names = if args.key.is_empty() {
        String::new()
    } else {
        format!(" by {}", args.key.join(","))
    };
    let chart = Chart {
        title: args.title.clone().unwrap_or_else(|| {
            format!(
                "{} per {}{key_names}",
                metric.label(),
                duration_name(bin_ns)
            )
        }),
        y_label: metric.label().to_string(),
        width: args.width,
        height: args.height,
        stack: args.stack,
    };
    let size = (args.width, args.height);
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        &s,
        &chart,
    )
    .map_err(Failure::io)?;
    match (format, font) {
        (Format::Png, Some(font)) => {
            let png = svg_to_png(&svg, &font, size).map_err(Failure::io)?;
            write_out(&out_path, &png)?;
        }
        _ => write_out(&out_path, svg.as_bytes())?,
    }
    fail(records.failed())
}

/// Rasterises the chart's SVG, its text set in `font` (whatever family the SVG names).
pub fn svg_to_png(svg: &str, font: &Path, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut db = usvg::fontdb::Database::new();
    let data = std::fs::read(font).map_err(|e| format!("font {}: {e}", font.display()))?;
    db.load_font_data(data);
    let family = db
        .faces()
        .next()
        .and_then(|f| f.families.first().map(|x| x.0.clone()))
        .ok_or_else(|| format!("font {}: no usable face", font.display()))?;
    db.set_sans_serif_family(family.clone());
    db.set_serif_family(family.clone());
    db.set_monospace_family(family);
    let opts = usvg::Options {
        fontdb: std::sync::Arc::new(db),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opts).map_err(|e| format!("chart SVG: {e}"))?;
    let mut pixmap =
        tiny_skia::Pixmap::new(w, h).ok_or_else(|| format!("cannot make a {w}x{h} image"))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| format!("encoding the PNG: {e}"))
}

/// Writes the chart whole: to a temporary name first, so a failure leaves no half chart.
fn write_out(path: &Path, data: &[u8]) -> Result<(), Failure> {
    if path.as_os_str() == "-" {
        let mut o = io::stdout().lock();
        return match o.write_all(data).and_then(|_| o.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(Failure::io(format!("writing output: {e}")))
            }
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Failure::io(format!("writing {}: {e}", path.display()))
        })
}

/// `--table`: `time,series,value` rows, times as epoch seconds.
pub fn write_table(s: &Series, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "time,series,value")?;
    for (i, t) in s.times.iter().enumerate() {
        for (name, v) in &s.lines {
            let name = if name.contains([',', '"']) {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.clone()
            };
            writeln!(out, "{},{name},{}", t / NS, trim_num(v[i]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Addr, AddrKind, FlowRecord};

    const T0: u64 = 1_795_514_400 * NS; // 2026-11-24 10:00:00 UTC

    fn rec(src: u8, s: u64, l: u64, bytes: u64) -> FlowRecord {
        let mut r = FlowRecord {
            addr_kind: AddrKind::Ipv4,
            proto: 6,
            saddr: Addr::from_v4([10, 0, 0, src]),
            daddr: Addr::from_v4([192, 0, 2, 1]),
            stime_ns: s,
            ltime_ns: l,
            ..FlowRecord::default()
        };
        r.src.bytes = bytes;
        r.src.pkts = bytes / 100;
        r
    }

    fn binner(key: &str, recs: &[FlowRecord]) -> (Binner, u64) {
        let (bin, keys) = bins::parse_keys(&[key.to_string()], Some("1m")).unwrap();
        let mut b = Binner::new(&BinsOptions {
            bin_ns: bin,
            keys,
            ..BinsOptions::default()
        });
        for r in recs {
            b.add(r);
        }
        (b, bin)
    }

    #[test]
    fn series_fill_gaps_rank_keys_and_sum_the_rest() {
        let recs = [
            rec(1, T0, T0, 6000),                       // 10:00
            rec(1, T0 + 180 * NS, T0 + 180 * NS, 6000), // 10:03
            rec(2, T0 + 60 * NS, T0 + 60 * NS, 30000),  // 10:01
            rec(3, T0 + 60 * NS, T0 + 60 * NS, 600),    // 10:01
            rec(4, T0 + 120 * NS, T0 + 120 * NS, 1200), // 10:02
        ];
        let (b, bin) = binner("saddr", &recs);
        let s = series(&b, bin, Metric::Bytes, 2).unwrap();
        assert_eq!(
            s.times,
            (0..4).map(|i| T0 + i * 60 * NS).collect::<Vec<_>>()
        );
        let names: Vec<&str> = s.lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["10.0.0.2", "10.0.0.1", "other"]);
        assert_eq!(s.lines[0].1, vec![0.0, 30000.0, 0.0, 0.0]);
        // No traffic at 10:01 and 10:02: zero, not a line drawn across.
        assert_eq!(s.lines[1].1, vec![6000.0, 0.0, 0.0, 6000.0]);
        assert_eq!(s.lines[2].1, vec![0.0, 600.0, 1200.0, 0.0]);
        // Per second: 30000 bytes in a minute = 4000 bit/s.
        let s = series(&b, bin, Metric::Bps, 8).unwrap();
        assert_eq!(s.lines[0].1[1], 4000.0);
        assert_eq!(s.lines.len(), 4);
        let mut t = Vec::new();
        write_table(&s, &mut t).unwrap();
        let t = String::from_utf8(t).unwrap();
        assert!(
            t.starts_with("time,series,value\n1795514400,10.0.0.2,0\n"),
            "{t}"
        );
        assert!(t.contains("\n1795514460,10.0.0.2,4000\n"), "{t}");
    }

    #[test]
    fn too_many_bins_is_an_error_not_a_huge_chart() {
        let recs = [
            rec(1, T0, T0, 1),
            rec(1, T0 + 200_000 * 60 * NS, T0 + 200_000 * 60 * NS, 1),
        ];
        let (b, bin) = binner("saddr", &recs);
        assert!(series(&b, bin, Metric::Bytes, 8)
            .unwrap_err()
            .contains("larger -B"));
    }

    #[test]
    fn labels() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(0.5), "0.5");
        assert_eq!(time_label(T0 + 90 * NS, 3600 * NS), "10:01");
        assert_eq!(time_label(T0 + 90 * NS, 60 * NS), "10:01:30");
        assert_eq!(time_label(T0, 2 * 86_400 * NS), "2026-11-24 10:00");
    }

    #[test]
    fn svg_has_title_legend_and_one_line_per_series() {
        let Ok(font) = find_font(None) else {
            panic!("no TrueType font on this machine: scripts/test.sh installs fonts-dejavu-core");
        };
        load_font(&font).unwrap();
        let recs = [
            rec(1, T0, T0 + 150 * NS, 60000),
            rec(2, T0 + 30 * NS, T0 + 200 * NS, 9000),
        ];
        let (b, bin) = binner("saddr", &recs);
        let s = series(&b, bin, Metric::Bps, 8).unwrap();
        let chart = Chart {
            title: "test chart".into(),
            y_label: "bits/s".into(),
            width: 800,
            height: 400,
            stack: false,
        };
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, (800, 400)).into_drawing_area(),
            &s,
            &chart,
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("test chart") && svg.contains("10.0.0.1") && svg.contains("10.0.0.2"));
        // Thin black polylines are the axes and grid; the series are 2 px wide.
        let series_lines = svg
            .match_indices("<polyline")
            .filter(|(i, _)| {
                svg[*i..]
                    .split('>')
                    .next()
                    .unwrap()
                    .contains("stroke-width=\"2\"")
            })
            .count();
        assert_eq!(series_lines, 2, "one line per series");
        // Stacked: areas instead of lines.
        let mut svg2 = String::new();
        let stacked = Chart {
            stack: true,
            ..chart
        };
        draw(
            SVGBackend::with_string(&mut svg2, (800, 400)).into_drawing_area(),
            &s,
            &stacked,
        )
        .unwrap();
        assert!(svg2.matches("<polygon").count() >= 2, "areas drawn");
    }
}
