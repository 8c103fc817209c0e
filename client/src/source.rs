//! Record sources shared by every subcommand: files, `-` (stdin), archive directories and a
//! probe's live stream, with the `-t` time range, the filter and the skipping of meta records
//! applied as records come out.
//!
//! * A directory is walked recursively. Its files are read in the order of the time they cover
//!   (the `stime` of each file's first record; files without records last, by path), because
//!   archive names are a user-chosen template and need not sort by time. Hidden files are
//!   skipped: `.NAME.part` files (an archive file still being written, or left by a crash) with
//!   a note unless `--partial` asks for them, others silently; files that are not record files
//!   are skipped with a note.
//! * Damage is reported as it is met (file and offset, by [`RecordReader`]'s warnings) and every
//!   good record is still returned; the exit status owed is in [`Records::failed`]: 1 for
//!   damaged or unreadable data, 2 for inputs that cannot be opened or are not record files.
//! * With a time range, whole archive files are skipped when they cannot hold a selected record
//!   (see [`PRUNE_SLACK_NS`]).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tapflow_record::{FlowRecord, RecordError, RecordReader};

use crate::filter::Filter;
use crate::timerange::{now_ns, TimeRange, TimeSpec};
use crate::{report, Failure};

/// The first bytes of every record file (`TAPFLOW\0`, docs/record-format.md).
const MAGIC: &[u8; 8] = b"TAPFLOW\0";

/// How late after its `stime` a record may be written to an archive file, at most. The probe
/// writes a flow's record at the latest one status interval (5 s) plus one idle timeout
/// (≤ 60 s by default) after its first packet, tapflow-merge within its hold time (30 s)
/// more; 15 minutes leaves a wide margin. Pruning trusts it: an archive file written by one
/// probe run holds only records with `stime >= first_stime - SLACK`, and — since the next file
/// of the same run was started after this one was complete — `ltime <= next_first_stime +
/// SLACK`. `--no-prune` reads every file for archives made with unusual settings.
pub const PRUNE_SLACK_NS: u64 = 15 * 60 * 1_000_000_000;

/// Which records come out: flow records, only probe/merge status records, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    /// Flow records; probe- and merge-status records are skipped (they describe no flow).
    Skip,
    /// Only probe- and merge-status records (`tapflow read --status`); the filter is not used.
    Only,
    /// Flow records (filtered) and status records (not filtered: they describe the capture,
    /// not a flow), e.g. for `tapflow anon`, whose output keeps the probe's counters.
    Keep,
}

/// What to read and which records to let through.
pub struct SourceOptions {
    /// `-r`: files, directories and `-` (stdin), in order.
    pub inputs: Vec<PathBuf>,
    /// `-S host:port`: a probe's live stream (instead of `inputs`).
    pub stream: Option<String>,
    /// `--partial`: also read `.NAME.part` files found in directories.
    pub partial: bool,
    /// `--no-prune`: never skip whole files by time.
    pub no_prune: bool,
    /// `-v`: say which files are read and which are skipped by the time range.
    pub verbose: bool,
    pub time: Option<TimeSpec>,
    pub filter: Option<Filter>,
    pub meta: Meta,
}

impl SourceOptions {
    pub fn new(inputs: Vec<PathBuf>, stream: Option<String>) -> SourceOptions {
        SourceOptions {
            inputs,
            stream,
            partial: false,
            no_prune: false,
            verbose: false,
            time: None,
            filter: None,
            meta: Meta::Skip,
        }
    }
}

#[derive(Debug)]
enum Input {
    Stdin,
    File(PathBuf),
    Stream(String),
}

/// What a quick look at a record file found.
#[derive(Clone, Copy, Debug, Default)]
struct Peek {
    /// `stime` of the first record.
    start_ns: Option<u64>,
    /// The header's (probe_id, created_ns): the files of one probe run share it.
    run: Option<(u32, u64)>,
}

#[derive(Debug)]
struct Planned {
    input: Input,
    peek: Peek,
    /// Bounds every record of the file lies in (from its run's neighbours), if known.
    lower_ns: Option<u64>,
    upper_ns: Option<u64>,
}

/// The records of every input, one after the other; see the module doc.
pub struct Records {
    plan: std::vec::IntoIter<Planned>,
    // Native records or an Argus file (crate::foreign).
    cur: Option<crate::foreign::AnyReader>,
    filter: Option<Filter>,
    meta: Meta,
    time: Option<TimeSpec>,
    range: Option<TimeRange>,
    now_ns: u64,
    no_prune: bool,
    verbose: bool,
    opened: bool,
    failed: Option<i32>,
}

impl Records {
    /// Plans the inputs: expands directories (reporting the files it skips), looks at the
    /// first record of each archive file for ordering and pruning. Fails only on usage errors.
    pub fn open(opts: SourceOptions) -> Result<Records, Failure> {
        if opts.inputs.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
            return Err(Failure::bad(
                "standard input ('-r -') can be read only once",
            ));
        }
        let mut failed = None;
        let mut plan = Vec::new();
        if let Some(addr) = opts.stream {
            plan.push(planned(Input::Stream(addr), Peek::default()));
        }
        // Explicit files are looked at only when pruning could skip them (several files of
        // one probe run, given by a shell glob).
        let look = opts.time.is_some()
            && !opts.no_prune
            && opts.inputs.iter().filter(|p| p.as_os_str() != "-").count() > 1;
        for path in opts.inputs {
            if path.as_os_str() == "-" {
                plan.push(planned(Input::Stdin, Peek::default()));
            } else if path.is_dir() {
                let mut files = Vec::new();
                let mut seen = HashSet::new();
                walk(&path, opts.partial, &mut files, &mut seen, &mut failed);
                let mut found: Vec<(PathBuf, Peek)> = Vec::with_capacity(files.len());
                for f in files {
                    match peek(&f) {
                        Ok(p) => found.push((f, p)),
                        Err(NotRead::Foreign(why)) => {
                            report(format_args!("note: skipped {}: {why}", f.display()))
                        }
                        // An archive file that cannot be read is an error, not a skip.
                        Err(NotRead::Error(why)) => {
                            report(format_args!("{}: {why}", f.display()));
                            failed = Some(failed.map_or(2, |c: i32| c.max(2)));
                        }
                    }
                }
                if found.is_empty() {
                    // A script must tell "no archive here" (a typo, an empty mount) from "no
                    // traffic": that is exit status 1, not 0.
                    report(format_args!("no record files in {}", path.display()));
                    failed = Some(failed.map_or(1, |c: i32| c.max(1)));
                }
                // By the time covered; files without a record (nothing to read) last.
                found.sort_by(|a, b| {
                    (a.1.start_ns.is_none(), a.1.start_ns, &a.0).cmp(&(
                        b.1.start_ns.is_none(),
                        b.1.start_ns,
                        &b.0,
                    ))
                });
                plan.extend(found.into_iter().map(|(f, p)| planned(Input::File(f), p)));
            } else {
                let p = if look {
                    peek(&path).unwrap_or_default()
                } else {
                    Peek::default()
                };
                plan.push(planned(Input::File(path), p));
            }
        }
        bound_runs(&mut plan);
        let now = now_ns();
        let range = opts
            .time
            .as_ref()
            .filter(|t| !t.needs_anchor())
            .map(|t| t.resolve(now, 0));
        Ok(Records {
            plan: plan.into_iter(),
            cur: None,
            filter: opts.filter,
            meta: opts.meta,
            time: opts.time,
            range,
            now_ns: now,
            no_prune: opts.no_prune,
            verbose: opts.verbose,
            opened: false,
            failed,
        })
    }

    /// True once an input could be opened and had a valid header (a text header is owed).
    /// The `-t` range, once resolved (a time of day is anchored on the first record read).
    pub fn range(&self) -> Option<TimeRange> {
        self.range
    }

    pub fn opened_any(&self) -> bool {
        self.opened
    }

    /// The exit status owed for the errors and damage reported so far (`None`: all good).
    pub fn failed(&self) -> Option<i32> {
        self.failed
    }

    fn fail(&mut self, code: i32) {
        self.failed = Some(self.failed.map_or(code, |c| c.max(code)));
    }

    /// The next selected record. `out` is flushed before anything is reported on stderr, so
    /// that messages land after the records printed before them; a flush error is returned.
    pub fn next_flushing(&mut self, out: &mut dyn Write) -> io::Result<Option<FlowRecord>> {
        let mut rec = FlowRecord::default();
        Ok(self.next_into(out, &mut rec)?.then_some(rec))
    }

    /// As [`next_flushing`](Self::next_flushing), decoding into `rec` (reused: no record is
    /// built or moved per record read). `Ok(false)` at the end of every input.
    pub fn next_into(&mut self, out: &mut dyn Write, rec: &mut FlowRecord) -> io::Result<bool> {
        loop {
            if self.cur.is_none() {
                if !self.open_next(out)? {
                    return Ok(false);
                }
                continue;
            }
            // A filter that needs no per-direction statistics sees a partial decode first
            // (without a filter nearly every record is kept: a first look would only add work).
            let skim = self.filter.as_ref().is_some_and(|f| !f.needs_dirs());
            let mut sel = Selection {
                time: &self.time,
                range: &mut self.range,
                now_ns: self.now_ns,
                verbose: self.verbose,
                meta: self.meta,
                filter: self.filter.as_ref(),
            };
            let rd = self.cur.as_mut().expect("checked above");
            let next = rd.next_matching(rec, skim, &mut |r| sel.wanted(r));
            // Cheap when there is none: an empty Vec is moved, nothing allocated.
            let warnings = rd.take_warnings();
            if !warnings.is_empty() {
                out.flush()?;
                for w in warnings {
                    report(format_args!("warning: {w}"));
                }
                // Damaged data: every good record is kept, the exit status says it.
                self.fail(1);
            }
            match next {
                Ok(true) => return Ok(true),
                Ok(false) => {
                    self.cur = None;
                }
                Err(e) => {
                    out.flush()?;
                    let f = record_failure(e);
                    report(&f);
                    self.fail(f.code);
                    self.cur = None;
                }
            }
        }
    }

    /// Opens the next input that is not pruned. `Ok(false)` when there is none left.
    fn open_next(&mut self, out: &mut dyn Write) -> io::Result<bool> {
        while let Some(p) = self.plan.next() {
            if let (Some(t), None) = (&self.time, self.range) {
                if let Some(s) = p.peek.start_ns {
                    // This file's first record is the first record read.
                    out.flush()?;
                    self.range = Some(resolve_noting(t, self.now_ns, s, self.verbose));
                }
            }
            if let (Some(r), false) = (self.range, self.no_prune) {
                let before = p.upper_ns.is_some_and(|u| u < r.start_ns);
                let after = p.lower_ns.is_some_and(|l| l >= r.end_ns);
                if before || after {
                    if self.verbose {
                        out.flush()?;
                        if let Input::File(f) = &p.input {
                            let why = if before { "end before" } else { "start after" };
                            report(format_args!(
                                "note: skipped {}: its records {why} the time range",
                                f.display()
                            ));
                        }
                    }
                    continue;
                }
            }
            let opened: Result<(Box<dyn Read + Send>, String), Failure> = match p.input {
                Input::Stdin => Ok((Box::new(io::stdin()), "(stdin)".to_string())),
                Input::File(path) => match File::open(&path) {
                    Ok(f) => Ok((Box::new(f), path.display().to_string())),
                    Err(e) => Err(Failure::bad(format!(
                        "cannot open {}: {}",
                        path.display(),
                        io_msg(&e)
                    ))),
                },
                Input::Stream(addr) => match std::net::TcpStream::connect(&addr) {
                    Ok(s) => Ok((Box::new(s), addr)),
                    Err(e) => Err(Failure::io(format!(
                        "cannot connect to {addr}: {}",
                        io_msg(&e)
                    ))),
                },
            };
            let res = opened.and_then(|(r, name)| {
                if self.verbose {
                    report(format_args!("note: reading {name}"));
                }
                crate::foreign::open_reader(r, &name).map_err(record_failure)
            });
            match res {
                Ok(rd) => {
                    self.cur = Some(rd);
                    self.opened = true;
                    return Ok(true);
                }
                Err(f) => {
                    out.flush()?;
                    report(&f);
                    self.fail(f.code);
                }
            }
        }
        Ok(false)
    }
}

/// What selects a record: the time range (resolved on the first record read), the meta
/// policy and the filter. Borrowed from [`Records`] beside its reader.
struct Selection<'a> {
    time: &'a Option<TimeSpec>,
    range: &'a mut Option<TimeRange>,
    now_ns: u64,
    verbose: bool,
    meta: Meta,
    filter: Option<&'a Filter>,
}

impl Selection<'_> {
    #[inline]
    fn wanted(&mut self, rec: &FlowRecord) -> bool {
        if let Some(t) = self.time {
            // A time of day is on the date of the first record read.
            let range = match *self.range {
                Some(r) => r,
                None => {
                    let r = resolve_noting(t, self.now_ns, rec.stime_ns, self.verbose);
                    *self.range = Some(r);
                    r
                }
            };
            if !range.selects(rec.stime_ns, rec.ltime_ns) {
                return false;
            }
        }
        match self.meta {
            Meta::Skip => !rec.is_meta() && self.filter.map_or(true, |f| f.matches(rec)),
            Meta::Only => rec.is_meta(),
            Meta::Keep => rec.is_meta() || self.filter.map_or(true, |f| f.matches(rec)),
        }
    }
}

impl Iterator for Records {
    type Item = FlowRecord;

    /// The next selected record; messages go to stderr directly (nothing to flush).
    fn next(&mut self) -> Option<FlowRecord> {
        self.next_flushing(&mut io::sink()).ok().flatten()
    }
}

fn planned(input: Input, peek: Peek) -> Planned {
    Planned {
        input,
        peek,
        lower_ns: None,
        upper_ns: None,
    }
}

/// Sets pruning bounds on files that belong to a run of several files (same probe id and
/// header creation time: the rotated archive files of one probe run, written one after the
/// other). A lone file gets none: a file written by `tapflow sort -w` or a capture converted
/// offline need not be in time order, so nothing is assumed about it.
fn bound_runs(plan: &mut [Planned]) {
    let mut idx: Vec<usize> = (0..plan.len())
        .filter(|&i| plan[i].peek.run.is_some() && plan[i].peek.start_ns.is_some())
        .collect();
    idx.sort_by_key(|&i| (plan[i].peek.run, plan[i].peek.start_ns, i));
    let runs: Vec<&[usize]> = idx
        .chunk_by(|&a, &b| plan[a].peek.run == plan[b].peek.run)
        .collect();
    let mut bounds = Vec::new();
    for w in runs.into_iter().filter(|w| w.len() >= 2) {
        for (k, &i) in w.iter().enumerate() {
            let start = plan[i].peek.start_ns.unwrap_or(0);
            let upper = w.get(k + 1).map(|&next| {
                let ns = plan[next].peek.start_ns.unwrap_or(u64::MAX);
                ns.saturating_add(PRUNE_SLACK_NS)
            });
            bounds.push((i, start.saturating_sub(PRUNE_SLACK_NS), upper));
        }
    }
    for (i, lower, upper) in bounds {
        plan[i].lower_ns = Some(lower);
        plan[i].upper_ns = upper;
    }
}

/// Collects the files under `dir` (recursively, sorted by name within a directory).
fn walk(
    dir: &Path,
    partial: bool,
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    failed: &mut Option<i32>,
) {
    // A symlink loop would walk forever: each real directory is entered once.
    if let Ok(real) = fs::canonicalize(dir) {
        if !seen.insert(real) {
            return;
        }
    }
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            report(format_args!(
                "cannot read {}: {}",
                dir.display(),
                io_msg(&e)
            ));
            *failed = Some(failed.map_or(2, |c| c.max(2)));
            return;
        }
    };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let is_dir = p.is_dir();
        if name.starts_with('.') {
            if !is_dir && name.ends_with(".part") {
                if partial {
                    out.push(p);
                } else {
                    report(format_args!(
                        "note: skipped {}: an archive file still being written (or left by a \
                         crash); --partial reads it",
                        p.display()
                    ));
                }
            }
            continue;
        }
        if is_dir {
            walk(&p, partial, out, seen, failed);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// Why a file found in a directory is not read.
enum NotRead {
    /// Not a record file (or empty): skipped with a note.
    Foreign(String),
    /// It cannot be read: reported as an error.
    Error(String),
}

/// A quick look at a file: is it a record file, which run wrote it, when does it start.
fn peek(path: &Path) -> Result<Peek, NotRead> {
    let mut head = [0u8; 8];
    let mut n = 0;
    let mut f =
        File::open(path).map_err(|e| NotRead::Error(format!("cannot open: {}", io_msg(&e))))?;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NotRead::Error(format!("cannot read: {}", io_msg(&e)))),
        }
    }
    if n == 0 {
        return Err(NotRead::Foreign("empty file".into()));
    }
    if n < head.len() || &head != MAGIC {
        // Argus files are read too; they carry no run to prune by.
        if let Some(start_ns) = crate::foreign::peek_argus(path) {
            return Ok(Peek {
                start_ns,
                run: None,
            });
        }
        return Err(NotRead::Foreign("not a tapflow record file".into()));
    }
    // Damage is reported when the file is read for real; here only the start matters.
    let Ok(file) = File::open(path) else {
        return Ok(Peek::default());
    };
    let Ok(mut rd) = RecordReader::new(file, "") else {
        return Ok(Peek::default());
    };
    let h = rd.header();
    let run = Some((h.probe_id, h.created_ns));
    let start_ns = rd.next_record().ok().flatten().map(|r| r.stime_ns);
    Ok(Peek { start_ns, run })
}

/// A record error as a failure: I/O errors exit 1, bad data 2.
pub(crate) fn record_failure(e: RecordError) -> Failure {
    match e {
        RecordError::Io { .. } => Failure::io(e.to_string()),
        _ => Failure::bad(e.to_string()),
    }
}

/// `io::Error` text without the "(os error 2)" suffix.
pub(crate) fn io_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Resolves `-t`; a time of day is put on the date of the data: that of the first record
/// read, moved on by [`PRUNE_SLACK_NS`] because a file rotated at midnight starts with
/// records of flows that began just before it. With `-v` the date chosen is said.
fn resolve_noting(
    t: &crate::timerange::TimeSpec,
    now_ns: u64,
    first_stime: u64,
    verbose: bool,
) -> TimeRange {
    let anchor = first_stime.saturating_add(PRUNE_SLACK_NS);
    let r = t.resolve(now_ns, anchor);
    if verbose && t.needs_anchor() {
        let (y, m, d, ..) = tapflow_record::time::utc(anchor / 1_000_000_000);
        report(format_args!(
            "note: -t time of day taken on {y:04}-{m:02}-{d:02} (the date of the data); give a date to choose another"
        ));
    }
    r
}
