//! The `report`, `anon`, `bins` and `hist` subcommands: command-line glue between the shared
//! sources ([`open_sources`]) and the library modules that do the work.

use std::io::{self, BufWriter, Write};

use crate::anon::{AnonKey, AnonOptions, MacMode, PortMode, TimeMode};
use crate::bins::{BinsFormat, BinsOptions, SplitMode};
use crate::cli::{AnonArgs, BinsArgs, HistArgs, MacArg, OutputArgs, PortsArg, RankBy, ReportArgs};
use crate::hist::{HistFormat, HistOptions};
use crate::read::{open_sources, parse_filter, Output};
use crate::report::{Rank, ReportFormat, ReportOptions};
use crate::source::{Meta, Records};
use crate::{agg, anon, bins, hist, report, Failure};

/// The environment variable `tapflow anon` takes a passphrase from.
pub const ANON_KEY_ENV: &str = "TAPFLOW_ANON_KEY";

const NS: u64 = 1_000_000_000;

/// Writes a table-like result to stdout once the input is read; then the exit status: a
/// closed stdout is fine, the sources' errors (already reported) decide.
fn print(
    records: &Records,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Failure> {
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    // As ra: nothing at all when no source could be read.
    let res = if records.opened_any() {
        write(&mut out).and_then(|_| out.flush())
    } else {
        Ok(())
    };
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::io(format!("writing output: {e}")))
        }
        _ => match records.failed() {
            Some(code) => Err(Failure {
                code,
                msg: String::new(),
            }),
            None => Ok(()),
        },
    }
}

/// A duration flag (`30s`, `10m`, `1h`, `1d`: `tapflow agg`'s bin sizes); `0` when `zero`.
fn duration(flag: &str, s: &str, zero: bool) -> Result<u64, Failure> {
    if zero && s.trim() == "0" {
        return Ok(0);
    }
    agg::bin_ns(s.trim()).map_err(|e| Failure::bad(format!("{flag} {s}: {e}")))
}

/// `tapflow bins`.
pub fn run_bins(args: &BinsArgs, dashdash: bool) -> Result<(), Failure> {
    let (bin_ns, keys) = bins::parse_keys(&args.key, args.bin.as_deref()).map_err(Failure::bad)?;
    let opts = BinsOptions {
        bin_ns,
        keys,
        split: if args.start_bin {
            SplitMode::Start
        } else {
            SplitMode::Proportional
        },
        format: match (args.format.csv, args.format.json) {
            (true, _) => BinsFormat::Csv,
            (_, true) => BinsFormat::Json,
            _ => BinsFormat::Text,
        },
        epoch: args.epoch,
        ..BinsOptions::default()
    };
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Skip)?;
    let mut b = bins::Binner::new(&opts);
    while let Some(r) = records.next() {
        // The range is known once the first record anchors a time of day.
        if let Some(t) = records.range() {
            b.clip(t.start_ns, t.end_ns);
        }
        b.add(&r);
    }
    print(&records, |out| b.write(out))
}

/// `tapflow hist`.
pub fn run_hist(args: &HistArgs, dashdash: bool) -> Result<(), Failure> {
    if args.field == "-" || args.field == "--" {
        return Err(Failure::bad(
            "hist needs a FIELD before the filter: tapflow hist -r FILE dur - tcp",
        ));
    }
    // Checked before reading: a bad field or range is a usage error.
    hist::extractor(&args.field).map_err(Failure::bad)?;
    let range = match &args.range {
        Some(r) => Some(hist::parse_range(r).map_err(|e| Failure::bad(format!("--range {e}")))?),
        None => None,
    };
    if let (true, Some((low, _))) = (args.log, range) {
        if low <= 0.0 {
            return Err(Failure::bad(
                "--log needs a range above 0 (--range LOW:HIGH with LOW > 0)",
            ));
        }
    }
    let opts = HistOptions {
        field: args.field.clone(),
        log: args.log,
        bins: args.bins as usize,
        range,
        format: match (args.format.csv, args.format.json) {
            (true, _) => HistFormat::Csv,
            (_, true) => HistFormat::Json,
            _ => HistFormat::Text,
        },
    };
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Skip)?;
    let h = hist::build(&mut records, &opts).map_err(Failure::bad)?;
    print(&records, |out| hist::write(&h, opts.format, out))
}

/// `tapflow report`.
pub fn run_report(args: &ReportArgs, dashdash: bool) -> Result<(), Failure> {
    let mut local = Vec::new();
    for l in &args.local {
        local.extend(
            report::parse_local_nets(l).map_err(|e| Failure::bad(format!("--local: {e}")))?,
        );
    }
    if local.is_empty() {
        return Err(Failure::bad(
            "--local needs at least one network (10.0.0.0/8,192.168.0.0/16)",
        ));
    }
    let fanout_ports = report::parse_ports(&args.fanout_ports)
        .map_err(|e| Failure::bad(format!("--fanout-ports: {e}")))?;
    if fanout_ports.is_empty() {
        return Err(Failure::bad("--fanout-ports needs at least one port"));
    }
    let window = duration("--fanout-window", &args.fanout_window, false)?;
    let hop = match &args.fanout_hop {
        Some(h) => duration("--fanout-hop", h, false)?,
        None => window / 6,
    };
    if hop > window {
        return Err(Failure::bad(format!(
            "--fanout-hop {} is longer than the window ({})",
            args.fanout_hop.as_deref().unwrap_or_default(),
            args.fanout_window
        )));
    }
    let lateness = match &args.fanout_lateness {
        Some(l) => duration("--fanout-lateness", l, true)?,
        None => hop,
    };
    let opts = ReportOptions {
        local,
        top: args.top,
        top_peers: args.top_peers,
        top_ports: args.top_ports,
        rank: match args.by {
            RankBy::Bytes => Rank::Bytes,
            RankBy::Pkts => Rank::Pkts,
        },
        fanout_ports,
        fanout_k: args.fanout_k,
        fanout_window_ns: window,
        fanout_hop_ns: hop.max(1),
        fanout_lateness_ns: lateness,
        scan_min_targets: args.scan_targets,
        scan_max_pkts: args.scan_pkts,
        talker_capacity: args.track_hosts,
        peer_capacity: args.track_peers,
        fanout_capacity: args.track_fanout,
        scan_capacity: args.track_scans,
        max_alerts: args.max_alerts,
        format: if args.json {
            ReportFormat::Json
        } else {
            ReportFormat::Text
        },
    };
    let filter = parse_filter(&args.filter, dashdash)?;
    // Status records come through so that the report can count them.
    let mut records = open_sources(&args.source, filter, Meta::Keep)?;
    let r = report::build(&mut records, &opts);
    print(&records, |out| match opts.format {
        ReportFormat::Text => report::write_text(&r, out),
        ReportFormat::Json => report::write_json(&r, out),
    })
}

/// The anonymisation key: `--key-file`, `--passphrase` (with a warning: it shows in `ps`) or
/// the passphrase in `TAPFLOW_ANON_KEY`, in that order.
fn anon_key(args: &AnonArgs) -> Result<AnonKey, Failure> {
    if let Some(f) = &args.key_file {
        return AnonKey::from_file(f).map_err(|e| Failure::bad(format!("--key-file {e}")));
    }
    let (pass, from) = match (&args.passphrase, std::env::var(ANON_KEY_ENV)) {
        (Some(p), _) => {
            crate::report(format_args!(
                "warning: a passphrase on the command line can be seen by other users (ps) \
                 and stays in shell history; prefer --key-file FILE or {ANON_KEY_ENV}"
            ));
            (p.clone(), "--passphrase")
        }
        (None, Ok(p)) => (p, ANON_KEY_ENV),
        (None, Err(std::env::VarError::NotUnicode(_))) => {
            return Err(Failure::bad(format!("{ANON_KEY_ENV} is not valid UTF-8")))
        }
        (None, Err(std::env::VarError::NotPresent)) => {
            return Err(Failure::bad(format!(
                "anon needs a key: --key-file FILE (64 hex digits or 32 raw bytes), or a \
                 passphrase in the {ANON_KEY_ENV} environment variable"
            )))
        }
    };
    if pass.is_empty() {
        return Err(Failure::bad(format!("the passphrase ({from}) is empty")));
    }
    Ok(AnonKey::from_passphrase(&pass))
}

/// `--time-shift`: signed seconds, or a signed duration (`-1d`, `+90m`).
fn time_shift(s: &str) -> Result<i64, Failure> {
    let t = s.trim();
    let (neg, mag) = match t.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let ns = if mag == "0" {
        0
    } else {
        agg::bin_ns(mag).map_err(|e| Failure::bad(format!("--time-shift {s}: {e}")))?
    };
    let ns =
        i64::try_from(ns).map_err(|_| Failure::bad(format!("--time-shift {s}: out of range")))?;
    Ok(if neg { -ns } else { ns })
}

/// `tapflow anon`.
pub fn run_anon(args: &AnonArgs, dashdash: bool) -> Result<(), Failure> {
    let key = anon_key(args)?;
    let time = match (&args.time_shift, args.time_relative) {
        (Some(s), _) => TimeMode::Shift(time_shift(s)?),
        (None, Some(0)) => {
            return Err(Failure::bad(
                "--time-relative=BASE needs BASE > 0 (a zero time means \"not seen\")",
            ))
        }
        (None, Some(base)) => TimeMode::Relative {
            base_ns: base
                .checked_mul(NS)
                .ok_or_else(|| Failure::bad("--time-relative: BASE out of range"))?,
        },
        (None, None) => TimeMode::Keep,
    };
    let opts = AnonOptions {
        addrs: !args.keep_addrs,
        mac: match args.mac {
            MacArg::Hash => MacMode::Hash,
            MacArg::KeepOui => MacMode::KeepOui,
            MacArg::Keep => MacMode::Keep,
        },
        ports: match args.ports {
            PortsArg::Permute => PortMode::Permute,
            PortsArg::Keep => PortMode::Keep,
        },
        time,
        strip_payload: !args.keep_payload,
        ..AnonOptions::new(key)
    };
    crate::read::refuse_output_over_input(&args.source.files, Some(&args.write))?;
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Keep)?;
    let out_args = OutputArgs {
        fields: Vec::new(),
        numeric: false,
        epoch: false,
        csv: false,
        json: false,
        sep: None,
        write: Some(args.write.clone()),
    };
    let mut output = Output::new(&out_args, Vec::new())?;
    let res = anon::run(&mut records, &opts, &mut |r| output.record(&r));
    output.finish(res, records.failed())
}
