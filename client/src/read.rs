//! `tapflow read`: print the records of one or more files, filtered, in the chosen format.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use tapflow_record::{
    merge_flags, status_flags, FlowRecord, MergeStatus, ProbeStatus, RecordError, RecordReader,
};

use crate::cli::ReadArgs;
use crate::fields::{parse_selection, FIELDS};
use crate::filter::Filter;
use crate::format::{Mode, Printer, Style};
use crate::{report, Failure};

/// What stopped the output early.
enum Stop {
    /// The reader of stdout went away (`| head`): not an error.
    BrokenPipe,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop::BrokenPipe
        } else {
            Stop::Io(e)
        }
    }
}

/// The filter words, from after a lone `-` (ra style) or after `--`.
fn filter_text(words: &[String], dashdash: bool) -> Result<Option<String>, Failure> {
    let words = match words.split_first() {
        None => return Ok(None),
        Some((first, rest)) if first == "-" => rest,
        Some((first, _)) if !dashdash => {
            return Err(Failure::bad(format!(
                "unexpected argument '{first}': give each file with -r, and put a filter \
                 expression after a lone '-'"
            )))
        }
        Some(_) => words,
    };
    Ok(Some(words.join(" ")))
}

fn print_field_help(out: &mut impl Write) -> io::Result<()> {
    for (_, f) in FIELDS {
        writeln!(out, "{:<10} {}", f.name, f.help)?;
    }
    Ok(())
}

pub fn run(args: &ReadArgs, dashdash: bool) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    if args.fields.iter().any(|s| s == "help") {
        return match print_field_help(&mut out).and_then(|_| out.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::io(e.to_string())),
            _ => Ok(()),
        };
    }
    let fields = parse_selection(&args.fields).map_err(Failure::bad)?;
    let filter = match filter_text(&args.filter, dashdash)? {
        Some(text) => {
            Some(Filter::parse(&text).map_err(|e| Failure::bad(format!("bad filter: {e}")))?)
        }
        None => None,
    };
    if args.files.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Failure::bad(
            "standard input ('-r -') can be read only once",
        ));
    }
    let mode = match (args.json, args.csv, args.sep) {
        (true, _, _) => Mode::Json,
        (_, true, sep) => Mode::Csv(sep.unwrap_or(',')),
        (_, _, Some(sep)) => Mode::Delimited(sep),
        _ => Mode::Columns,
    };
    let style = Style {
        epoch: args.epoch,
        numeric: args.numeric,
    };
    let mut job = Job {
        status: args.status.then_some(StatusStyle {
            json: args.json,
            epoch: args.epoch,
        }),
        printer: Printer::new(fields, mode, style),
        filter,
        limit: args.limit.unwrap_or(u64::MAX),
        printed: 0,
        header_done: false,
        failed: None,
    };
    let res = match &args.stream {
        Some(addr) => job.stream(addr, &mut out),
        None => job.all_files(&args.files, &mut out),
    };
    let res = res.and_then(|_| out.flush().map_err(Stop::from));
    match res {
        Ok(()) | Err(Stop::BrokenPipe) => {}
        Err(Stop::Io(e)) => return Err(Failure::io(format!("writing output: {e}"))),
    }
    match job.failed {
        // Each error was reported where it happened; only the status is left.
        Some(code) => Err(Failure {
            code,
            msg: String::new(),
        }),
        None => Ok(()),
    }
}

struct StatusStyle {
    json: bool,
    epoch: bool,
}

struct Job {
    /// Print probe- and merge-status records (and only those).
    status: Option<StatusStyle>,
    printer: Printer,
    filter: Option<Filter>,
    limit: u64,
    printed: u64,
    header_done: bool,
    /// Exit status owed for errors already reported (bad files); reading goes on.
    failed: Option<i32>,
}

impl Job {
    /// Reads a probe's live stream (`tapflow-probe --listen`).
    fn stream(&mut self, addr: &str, out: &mut impl Write) -> Result<(), Stop> {
        let res = match std::net::TcpStream::connect(addr) {
            Ok(sock) => self.one_source(sock, addr, out),
            Err(e) => Err(Failure::io(format!(
                "cannot connect to {addr}: {}",
                io_msg(&e)
            ))),
        };
        match res {
            Ok(r) => r,
            Err(f) => {
                out.flush()?;
                report(&f);
                self.failed = Some(f.code);
                Ok(())
            }
        }
    }

    fn all_files(
        &mut self,
        files: &[std::path::PathBuf],
        out: &mut impl Write,
    ) -> Result<(), Stop> {
        for path in files {
            if self.printed >= self.limit {
                break;
            }
            let res = if path.as_os_str() == "-" {
                self.one_source(io::stdin().lock(), "(stdin)", out)
            } else {
                match File::open(path) {
                    // RecordReader buffers its input itself.
                    Ok(f) => self.one_source(f, &display(path), out),
                    Err(e) => Err(Failure::bad(format!(
                        "cannot open {}: {}",
                        display(path),
                        io_msg(&e)
                    ))),
                }
            };
            match res {
                Ok(r) => r?,
                Err(f) => {
                    out.flush()?;
                    report(&f);
                    self.failed = Some(self.failed.map_or(f.code, |c| c.max(f.code)));
                }
            }
        }
        Ok(())
    }

    /// Reads one input. The outer error is about the input (reported, then the next file is
    /// read); the inner one is about the output (stops everything).
    fn one_source<R: Read>(
        &mut self,
        input: R,
        name: &str,
        out: &mut impl Write,
    ) -> Result<Result<(), Stop>, Failure> {
        let mut reader = RecordReader::new(input, name).map_err(record_failure)?;
        if !self.header_done && self.status.is_none() {
            self.header_done = true;
            if let Err(e) = self.printer.header(out) {
                return Ok(Err(e.into()));
            }
        }
        while self.printed < self.limit {
            let next = reader.next_record();
            for w in reader.take_warnings() {
                if let Err(e) = out.flush() {
                    return Ok(Err(e.into()));
                }
                report(format_args!("warning: {w}"));
            }
            let rec = match next.map_err(record_failure)? {
                Some(r) => r,
                None => break,
            };
            if let Some(st) = &self.status {
                let r = if let Some(s) = &rec.status {
                    Some(print_status(&rec, s, st, out))
                } else {
                    rec.merge
                        .as_ref()
                        .map(|m| print_merge_status(&rec, m, st, out))
                };
                match r {
                    Some(Err(e)) => return Ok(Err(e.into())),
                    Some(Ok(())) => self.printed += 1,
                    None => {}
                }
                continue;
            }
            // Probe- and merge-status records describe the probe, not a flow.
            if rec.is_meta() {
                continue;
            }
            if self.filter.as_ref().is_some_and(|f| !f.matches(&rec)) {
                continue;
            }
            if let Err(e) = self.printer.record(&rec, out) {
                return Ok(Err(e.into()));
            }
            self.printed += 1;
        }
        Ok(Ok(()))
    }
}

/// One probe-status record: a line (or a JSON object) with every counter, named.
fn print_status(
    rec: &FlowRecord,
    s: &ProbeStatus,
    st: &StatusStyle,
    out: &mut impl Write,
) -> io::Result<()> {
    let fields: [(&str, u64); 14] = [
        ("seen", s.seen),
        ("delivered", s.delivered),
        ("ring_drops", s.ring_drops),
        ("filtered", s.filtered),
        ("passed", s.passed),
        ("invalid", s.invalid),
        ("decoded", s.decoded),
        ("malformed", s.malformed),
        ("flows_admitted", s.flows_admitted),
        ("evictions", s.evictions),
        ("records_queued", s.records_queued),
        ("records_dropped", s.records_dropped),
        ("active_flows", s.active_flows),
        ("flags", s.flags.into()),
    ];
    let secs = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000);
    if st.json {
        write!(
            out,
            "{{\"probe\":{},\"worker\":{},\"stime\":{},\"ltime\":{}",
            rec.probe_id,
            s.worker,
            secs(rec.stime_ns),
            secs(rec.ltime_ns)
        )?;
        for (k, v) in fields {
            write!(out, ",\"{k}\":{v}")?;
        }
        return writeln!(out, "}}");
    }
    let mut t = String::new();
    crate::format::push_time(&mut t, rec.ltime_ns, st.epoch);
    write!(
        out,
        "{t} probe {} worker {} interval {:.3}s",
        rec.probe_id,
        s.worker,
        rec.ltime_ns.saturating_sub(rec.stime_ns) as f64 / 1e9
    )?;
    for (k, v) in fields {
        write!(out, " {k} {v}")?;
    }
    if s.flags & status_flags::FINAL != 0 {
        write!(out, " final")?;
    }
    writeln!(out)
}

/// One merge-status record (tapflow-merge's counters for one input).
fn print_merge_status(
    rec: &FlowRecord,
    m: &MergeStatus,
    st: &StatusStyle,
    out: &mut impl Write,
) -> io::Result<()> {
    let fields: [(&str, i128); 13] = [
        ("records_in", m.records_in.into()),
        ("duplicates", m.duplicates.into()),
        ("gaps", m.gaps.into()),
        ("late", m.late.into()),
        ("offset_ns", m.offset_ns.into()),
        ("offset_err_ns", m.offset_err_ns.into()),
        ("offset_pairs", m.offset_pairs.into()),
        ("joined", m.joined.into()),
        ("one_sided", m.one_sided.into()),
        ("records_out", m.records_out.into()),
        ("evictions", m.evictions.into()),
        ("active_flows", m.active_flows.into()),
        ("flags", m.flags.into()),
    ];
    let names = [
        (merge_flags::REFERENCE, "reference"),
        (merge_flags::SKEW_ALARM, "skew-alarm"),
        (merge_flags::NO_OFFSET, "no-offset"),
        (merge_flags::STALLED, "stalled"),
        (merge_flags::FINAL, "final"),
        (merge_flags::DISCONNECTED, "disconnected"),
    ];
    let secs = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000);
    if st.json {
        write!(
            out,
            "{{\"merger\":{},\"input_probe\":{},\"stime\":{},\"ltime\":{}",
            rec.probe_id,
            m.probe,
            secs(rec.stime_ns),
            secs(rec.ltime_ns)
        )?;
        for (k, v) in fields {
            write!(out, ",\"{k}\":{v}")?;
        }
        return writeln!(out, "}}");
    }
    let mut t = String::new();
    crate::format::push_time(&mut t, rec.ltime_ns, st.epoch);
    write!(
        out,
        "{t} merger {} input probe {} interval {:.3}s",
        rec.probe_id,
        m.probe,
        rec.ltime_ns.saturating_sub(rec.stime_ns) as f64 / 1e9
    )?;
    for (k, v) in fields {
        write!(out, " {k} {v}")?;
    }
    for (bit, name) in names {
        if m.flags & bit != 0 {
            write!(out, " {name}")?;
        }
    }
    writeln!(out)
}

fn record_failure(e: RecordError) -> Failure {
    match e {
        RecordError::Io { .. } => Failure::io(e.to_string()),
        _ => Failure::bad(e.to_string()),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// `io::Error` text without the "(os error 2)" suffix.
fn io_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
