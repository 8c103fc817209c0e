//! `tapflow read`: print the records of one or more sources, filtered, in the chosen format;
//! and the pieces every subcommand shares: the filter words, the sources, the output.

use std::fs::File;
use std::io::{self, BufWriter, StdoutLock, Write};

use tapflow_record::{
    merge_flags, status_flags, FileHeader, FlowRecord, MergeStatus, ProbeStatus, RecordWriter,
    WriterOptions,
};

use crate::cli::{OutputArgs, ReadArgs, SourceArgs};
use crate::fields::{parse_selection, Field, FIELDS};
use crate::filter::Filter;
use crate::format::{Mode, Printer, Style};
use crate::source::{io_msg, Meta, Records, SourceOptions};
use crate::timerange::TimeSpec;
use crate::Failure;

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

/// The compiled filter of a subcommand's trailing words, if any.
pub(crate) fn parse_filter(words: &[String], dashdash: bool) -> Result<Option<Filter>, Failure> {
    match filter_text(words, dashdash)? {
        Some(text) => Filter::parse(&text)
            .map(Some)
            .map_err(|e| Failure::bad(format!("bad filter: {e}"))),
        None => Ok(None),
    }
}

/// Opens the sources of `-r`/`-S`/`-t` with the filter applied to what comes out.
pub(crate) fn open_sources(
    a: &SourceArgs,
    filter: Option<Filter>,
    meta: Meta,
) -> Result<Records, Failure> {
    let time = match &a.time {
        Some(t) => Some(
            TimeSpec::parse(t).map_err(|e| Failure::bad(format!("bad time range (-t): {e}")))?,
        ),
        None => None,
    };
    let mut o = SourceOptions::new(a.files.clone(), a.stream.clone());
    o.partial = a.partial;
    o.no_prune = a.no_prune;
    o.verbose = a.verbose;
    o.time = time;
    o.filter = filter;
    o.meta = meta;
    Records::open(o)
}

fn print_field_help(out: &mut impl Write) -> io::Result<()> {
    for (_, f) in FIELDS {
        writeln!(out, "{:<10} {}", f.name, f.help)?;
    }
    Ok(())
}

/// `-s help`: lists the fields on stdout. `None` when not asked.
pub(crate) fn field_help(a: &OutputArgs) -> Option<Result<(), Failure>> {
    field_help_fields(&a.fields)
}

/// `-s help` among `fields`: lists the fields on stdout. `None` when not asked.
pub(crate) fn field_help_fields(fields: &[String]) -> Option<Result<(), Failure>> {
    if !fields.iter().any(|s| s == "help") {
        return None;
    }
    let mut out = BufWriter::new(io::stdout().lock());
    Some(match print_field_help(&mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::io(e.to_string())),
        _ => Ok(()),
    })
}

/// Where records go: text on stdout, or native records (`-w`).
pub(crate) struct Output {
    out: BufWriter<StdoutLock<'static>>,
    sink: Sink,
}

enum Sink {
    Text { printer: Printer, header_done: bool },
    Native(RecordWriter<Box<dyn Write>>),
}

/// Creating `-w` truncates it: refuse when it is one of the inputs (or inside an input
/// directory), so `sort -r x.tfr -w x.tfr` cannot destroy its own input.
pub(crate) fn refuse_output_over_input(
    inputs: &[std::path::PathBuf],
    write: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let Some(out) = write.filter(|w| w.as_os_str() != "-") else {
        return Ok(());
    };
    let Ok(o) = std::fs::canonicalize(out) else {
        return Ok(());
    };
    for f in inputs {
        if let Ok(i) = std::fs::canonicalize(f) {
            if o.starts_with(&i) {
                return Err(Failure::bad(format!(
                    "-w {} is also an input (-r {}): write elsewhere",
                    out.display(),
                    f.display()
                )));
            }
        }
    }
    Ok(())
}

impl Output {
    /// Text with `fields` in the format `a` asks for, or the `-w` file (created now).
    pub(crate) fn new(a: &OutputArgs, fields: Vec<Field>) -> Result<Output, Failure> {
        let out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        let sink = match &a.write {
            Some(path) => {
                let w: Box<dyn Write> = if path.as_os_str() == "-" {
                    Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
                } else {
                    match File::create(path) {
                        Ok(f) => Box::new(BufWriter::with_capacity(1 << 16, f)),
                        Err(e) => {
                            return Err(Failure::io(format!(
                                "cannot create {}: {}",
                                path.display(),
                                io_msg(&e)
                            )))
                        }
                    }
                };
                let header = FileHeader {
                    created_ns: crate::timerange::now_ns(),
                    ..FileHeader::default()
                };
                let w = RecordWriter::new(w, &header, WriterOptions::default())
                    .map_err(|e| Failure::io(format!("writing output: {e}")))?;
                Sink::Native(w)
            }
            None => {
                let mode = match (a.json, a.csv, a.sep) {
                    (true, _, _) => Mode::Json,
                    (_, true, sep) => Mode::Csv(sep.unwrap_or(',')),
                    (_, _, Some(sep)) => Mode::Delimited(sep),
                    _ => Mode::Columns,
                };
                let style = Style {
                    epoch: a.epoch,
                    numeric: a.numeric,
                };
                Sink::Text {
                    printer: Printer::new(fields, mode, style),
                    header_done: false,
                }
            }
        };
        Ok(Output { out, sink })
    }

    /// What to flush before a message goes to stderr.
    pub(crate) fn flusher(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    pub(crate) fn is_native(&self) -> bool {
        matches!(self.sink, Sink::Native(_))
    }

    /// The column header, once, when `opened` (a source could be read: as ra, no header
    /// when nothing could be).
    pub(crate) fn header(&mut self, opened: bool) -> io::Result<()> {
        if let Sink::Text {
            printer,
            header_done,
        } = &mut self.sink
        {
            if opened && !*header_done {
                *header_done = true;
                printer.header(&mut self.out)?;
            }
        }
        Ok(())
    }

    pub(crate) fn record(&mut self, r: &FlowRecord) -> io::Result<()> {
        match &mut self.sink {
            Sink::Text { printer, .. } => printer.record(r, &mut self.out),
            Sink::Native(w) => w.write(r),
        }
    }

    /// Flushes everything; then the exit: a closed stdout (`| head`) is fine, other write
    /// errors fail, and `failed` (errors already reported) gives the status.
    pub(crate) fn finish(self, res: io::Result<()>, failed: Option<i32>) -> Result<(), Failure> {
        let Output { mut out, sink } = self;
        let res = res.and_then(|_| match sink {
            Sink::Native(w) => w.finish().and_then(|mut w| w.flush()),
            Sink::Text { .. } => Ok(()),
        });
        let res = res.and_then(|_| out.flush());
        match res {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(Failure::io(format!("writing output: {e}")))
            }
            _ => {}
        }
        match failed {
            // Each error was reported where it happened; only the status is left.
            Some(code) => Err(Failure {
                code,
                msg: String::new(),
            }),
            None => Ok(()),
        }
    }
}

pub fn run(args: &ReadArgs, dashdash: bool) -> Result<(), Failure> {
    if let Some(r) = field_help(&args.output) {
        return r;
    }
    let fields = parse_selection(&args.output.fields).map_err(Failure::bad)?;
    let filter = parse_filter(&args.filter, dashdash)?;
    let meta = if args.status { Meta::Only } else { Meta::Skip };
    let mut records = open_sources(&args.source, filter, meta)?;
    crate::read::refuse_output_over_input(&args.source.files, args.output.write.as_deref())?;
    let mut output = Output::new(&args.output, fields)?;
    let status = (args.status && !output.is_native()).then_some(StatusStyle {
        json: args.output.json,
        epoch: args.output.epoch,
    });
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    // One record decoded into over and over: nothing built or moved per record.
    let mut rec = FlowRecord::default();
    let res = (|| -> io::Result<()> {
        while printed < limit {
            let more = records.next_into(output.flusher(), &mut rec)?;
            if status.is_none() {
                output.header(records.opened_any())?;
            }
            if !more {
                break;
            }
            match (&status, &rec.status, &rec.merge) {
                (Some(st), Some(s), _) => print_status(&rec, s, st, output.flusher())?,
                (Some(st), None, Some(m)) => print_merge_status(&rec, m, st, output.flusher())?,
                _ => output.record(&rec)?,
            }
            printed += 1;
        }
        Ok(())
    })();
    output.finish(res, records.failed())
}

struct StatusStyle {
    json: bool,
    epoch: bool,
}

/// One probe-status record: a line (or a JSON object) with every counter, named.
fn print_status(
    rec: &FlowRecord,
    s: &ProbeStatus,
    st: &StatusStyle,
    out: &mut dyn Write,
) -> io::Result<()> {
    let fields: [(&str, i128); 14] = [
        ("seen", s.seen.into()),
        ("delivered", s.delivered.into()),
        ("ring_drops", s.ring_drops.into()),
        ("filtered", s.filtered.into()),
        ("passed", s.passed.into()),
        ("invalid", s.invalid.into()),
        ("decoded", s.decoded.into()),
        ("malformed", s.malformed.into()),
        ("flows_admitted", s.flows_admitted.into()),
        ("evictions", s.evictions.into()),
        ("records_queued", s.records_queued.into()),
        ("records_dropped", s.records_dropped.into()),
        ("active_flows", s.active_flows.into()),
        ("flags", s.flags.into()),
    ];
    let who = [("probe", rec.probe_id), ("worker", s.worker)];
    let words = [(status_flags::FINAL, "final")];
    print_meta(rec, &who, &fields, &words, s.flags, st, out)
}

/// One merge-status record (tapflow-merge's counters for one input).
fn print_merge_status(
    rec: &FlowRecord,
    m: &MergeStatus,
    st: &StatusStyle,
    out: &mut dyn Write,
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
    let who = [("merger", rec.probe_id), ("input probe", m.probe)];
    let words = [
        (merge_flags::REFERENCE, "reference"),
        (merge_flags::SKEW_ALARM, "skew-alarm"),
        (merge_flags::NO_OFFSET, "no-offset"),
        (merge_flags::STALLED, "stalled"),
        (merge_flags::FINAL, "final"),
        (merge_flags::DISCONNECTED, "disconnected"),
    ];
    print_meta(rec, &who, &fields, &words, m.flags, st, out)
}

/// A status record as a line or a JSON object: who wrote it (`who`: probe and worker, or
/// merger and input), its interval, every counter named, and in text the flags set by name.
fn print_meta(
    rec: &FlowRecord,
    who: &[(&str, u32)],
    fields: &[(&str, i128)],
    words: &[(u32, &str)],
    flags: u32,
    st: &StatusStyle,
    out: &mut dyn Write,
) -> io::Result<()> {
    let secs = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000);
    if st.json {
        write!(out, "{{")?;
        for (k, v) in who {
            write!(out, "\"{}\":{v},", k.replace(' ', "_"))?;
        }
        write!(
            out,
            "\"stime\":{},\"ltime\":{}",
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
    write!(out, "{t}")?;
    for (k, v) in who {
        write!(out, " {k} {v}")?;
    }
    write!(
        out,
        " interval {:.3}s",
        rec.ltime_ns.saturating_sub(rec.stime_ns) as f64 / 1e9
    )?;
    for (k, v) in fields {
        write!(out, " {k} {v}")?;
    }
    for (bit, name) in words {
        if flags & bit != 0 {
            write!(out, " {name}")?;
        }
    }
    writeln!(out)
}
