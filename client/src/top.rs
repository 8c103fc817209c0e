//! `tapflow top -S HOST:PORT` (argus `ratop`): a live terminal view of the records a probe
//! streams, aggregated by a key (the flow by default), sorted by any column and refreshed.
//!
//! # Model
//!
//! Rows are `tapflow agg` aggregates ([`agg`]'s key, sums and mixed-field rules), kept while
//! they are active: a row whose latest packet (`ltime`) is more than `--hold` behind the
//! newest record seen is dropped, and past `--max-rows` the longest idle rows go first (so a
//! scan cannot grow the view without bound). The clock is the records' own (the newest
//! `ltime`), so a replayed file and a live stream behave alike.
//!
//! `Rate` and `PRate` are bits and packets per second over the last `--window` of record
//! time: each row keeps 8 buckets of `window/8`, and a record counts in the bucket of its
//! `ltime` (a status record's whole interval lands at its end, as ratop does).
//!
//! # Keys (interactive)
//!
//! `q`/Esc quit, `s`/→ next sort column, `S`/← previous, `r` reverse, `p`/space pause,
//! ↑ ↓ PgUp PgDn Home scroll. `--batch` prints frames as text instead (one at the end of
//! file input, or one per `--refresh` from a stream, `--iterations` of them at most).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style as TuiStyle};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row as TuiRow, Table, Widget};
use tapflow_record::FlowRecord;

use crate::agg::{self, Acc, Aggregator, Key, KeyPart};
use crate::cli::TopArgs;
use crate::fields::{value, Field};
use crate::format::{push_text, Style};
use crate::read::{field_help_fields, open_sources, parse_filter};
use crate::source::Meta;
use crate::Failure;

const NS: u64 = 1_000_000_000;
const BUCKETS: usize = 8;

/// A column of the view: a record field, or a rate over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Field(Field),
    /// Bits per second over the window.
    Rate,
    /// Packets per second over the window.
    PktRate,
}

impl Column {
    pub fn title(self) -> &'static str {
        match self {
            Column::Field(f) => f.info().title,
            Column::Rate => "Rate",
            Column::PktRate => "PRate",
        }
    }
    fn right(self) -> bool {
        match self {
            Column::Field(f) => f.info().align == crate::fields::Align::Right,
            Column::Rate | Column::PktRate => true,
        }
    }
    fn width(self, style: Style) -> u16 {
        match self {
            Column::Field(Field::Stime | Field::Ltime) if style.epoch => 17,
            Column::Field(f) => f.info().width as u16,
            Column::Rate | Column::PktRate => 7,
        }
    }
    /// `rate`, `prate` or a field name.
    pub fn by_name(name: &str) -> Option<Column> {
        match name {
            "rate" => Some(Column::Rate),
            "prate" => Some(Column::PktRate),
            n => Field::by_name(n).map(Column::Field),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TopOptions {
    pub key: Vec<KeyPart>,
    pub columns: Vec<Column>,
    pub window_ns: u64,
    pub hold_ns: u64,
    pub max_rows: usize,
    pub style: Style,
}

/// The default columns for a key: the key fields, then counters, rates, state and last time.
pub fn default_columns(key: &[KeyPart]) -> Vec<Column> {
    let mut c = Vec::new();
    let flow = key.len() == 5;
    for k in key {
        let f = Column::Field(k.field());
        if !c.contains(&f) {
            c.push(f);
        }
    }
    if flow {
        // A flow view reads like ra: proto saddr sport dir daddr dport.
        c.insert(3, Column::Field(Field::Dir));
    } else {
        c.push(Column::Field(Field::Trans));
    }
    c.extend([
        Column::Field(Field::Pkts),
        Column::Field(Field::Bytes),
        Column::Rate,
        Column::PktRate,
    ]);
    if flow {
        c.push(Column::Field(Field::State));
    }
    c.push(Column::Field(Field::Ltime));
    c
}

struct Row {
    acc: Acc,
    last_ns: u64,
    /// (bucket number, bytes, packets): record time in buckets of `window / BUCKETS`.
    buckets: [(u64, u64, u64); BUCKETS],
}

/// One visible line: the finished aggregate and its rates.
pub struct ViewLine {
    pub rec: FlowRecord,
    pub bps: f64,
    pub pps: f64,
}

/// The rows of the view; see the module doc.
pub struct TopModel {
    agg: Aggregator,
    opts: TopOptions,
    rows: HashMap<Key, Row>,
    /// The newest `ltime` seen: the view's clock.
    pub now_ns: u64,
    pub records_in: u64,
    /// Rows dropped to stay within `max_rows`.
    pub rows_evicted: u64,
}

impl TopModel {
    pub fn new(opts: TopOptions) -> TopModel {
        TopModel {
            agg: Aggregator::new(opts.key.clone()),
            opts,
            rows: HashMap::new(),
            now_ns: 0,
            records_in: 0,
            rows_evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn columns(&self) -> &[Column] {
        &self.opts.columns
    }

    fn bucket_ns(&self) -> u64 {
        (self.opts.window_ns / BUCKETS as u64).max(1)
    }

    /// Adds a flow record (meta records are ignored).
    pub fn add(&mut self, r: FlowRecord) {
        if r.is_meta() {
            return;
        }
        self.records_in += 1;
        self.now_ns = self.now_ns.max(r.ltime_ns);
        let b = r.ltime_ns / self.bucket_ns();
        let (bytes, pkts) = (r.bytes(), r.pkts());
        let last = r.ltime_ns;
        let k = self.agg.key_of(&r);
        let row = match self.rows.get_mut(&k) {
            Some(row) => {
                agg::merge(&mut row.acc, &r, self.agg.check);
                row.last_ns = row.last_ns.max(last);
                row
            }
            None => self.rows.entry(k).or_insert(Row {
                acc: agg::start(r, &self.agg.key),
                last_ns: last,
                buckets: [(u64::MAX, 0, 0); BUCKETS],
            }),
        };
        let slot = &mut row.buckets[(b % BUCKETS as u64) as usize];
        if slot.0 != b {
            // An older record than the bucket holds is outside the window: not counted.
            if slot.0 != u64::MAX && slot.0 > b {
                return;
            }
            *slot = (b, 0, 0);
        }
        slot.1 = slot.1.saturating_add(bytes);
        slot.2 = slot.2.saturating_add(pkts);
    }

    /// Drops rows idle for longer than the hold time, then the longest idle rows beyond
    /// `max_rows`. Call before drawing.
    pub fn expire(&mut self) {
        let cutoff = self.now_ns.saturating_sub(self.opts.hold_ns);
        self.rows.retain(|_, r| r.last_ns >= cutoff);
        let excess = self.rows.len().saturating_sub(self.opts.max_rows.max(1));
        if excess > 0 {
            let mut idle: Vec<(u64, Key)> =
                self.rows.iter().map(|(k, r)| (r.last_ns, *k)).collect();
            idle.select_nth_unstable_by_key(excess - 1, |e| e.0);
            for (_, k) in &idle[..excess] {
                self.rows.remove(k);
            }
            self.rows_evicted += excess as u64;
        }
    }

    /// Bits and packets per second of a row over the window ending at the clock.
    fn rates(&self, row: &Row) -> (f64, f64) {
        let now_b = self.now_ns / self.bucket_ns();
        let (mut bytes, mut pkts) = (0u64, 0u64);
        for &(b, by, p) in &row.buckets {
            if b != u64::MAX && b + (BUCKETS as u64) > now_b && b <= now_b {
                bytes = bytes.saturating_add(by);
                pkts = pkts.saturating_add(p);
            }
        }
        let secs = (self.bucket_ns() * BUCKETS as u64) as f64 / 1e9;
        (bytes as f64 * 8.0 / secs, pkts as f64 / secs)
    }

    /// The rows sorted by column `col` (largest first when `desc`), ties by latest activity,
    /// then key, so the order is stable between frames; `n` lines from `offset`.
    pub fn view(&self, col: usize, desc: bool, offset: usize, n: usize) -> Vec<ViewLine> {
        let column = self.opts.columns.get(col).copied().unwrap_or(Column::Rate);
        let mut v: Vec<(&Key, &Row, (f64, f64))> = self
            .rows
            .iter()
            .map(|(k, r)| (k, r, self.rates(r)))
            .collect();
        v.sort_by(|a, b| {
            let o = match column {
                Column::Rate => a.2 .0.total_cmp(&b.2 .0),
                Column::PktRate => a.2 .1.total_cmp(&b.2 .1),
                Column::Field(f) => crate::sort::compare_field(f, &a.1.acc.rec, &b.1.acc.rec),
            };
            let o = if desc { o.reverse() } else { o };
            o.then(b.1.last_ns.cmp(&a.1.last_ns))
                .then_with(|| key_order(a.0, b.0))
        });
        v.into_iter()
            .skip(offset)
            .take(n)
            .map(|(_, r, (bps, pps))| ViewLine {
                rec: agg::finish(r.acc.clone()),
                bps,
                pps,
            })
            .collect()
    }
}

fn key_order(a: &Key, b: &Key) -> Ordering {
    a.cmp(b)
}

/// `12.3M` style, for rates.
fn human_rate(x: f64) -> String {
    if !x.is_finite() || x < 0.05 {
        return "0".into();
    }
    if x < 10.0 {
        return format!("{x:.1}");
    }
    crate::report::human(x.round() as u64)
}

fn cell_text(c: Column, l: &ViewLine, style: Style, buf: &mut String) {
    buf.clear();
    match c {
        Column::Field(f) => push_text(buf, &value(f, &l.rec), style),
        Column::Rate => buf.push_str(&human_rate(l.bps)),
        Column::PktRate => buf.push_str(&human_rate(l.pps)),
    }
}

fn aligned(s: String, right: bool) -> Line<'static> {
    let l = Line::from(s);
    if right {
        l.right_aligned()
    } else {
        l
    }
}

/// What the frame says besides the rows.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub source: String,
    pub records_per_s: f64,
    pub ended: bool,
    pub paused: bool,
    pub filter: Option<String>,
    /// Bytes of messages held until exit (interactive view).
    pub messages: u64,
}

/// Standard error redirected to an unlinked temporary file while the view runs.
struct HeldStderr {
    file: std::fs::File,
    saved: libc::c_int,
}

impl HeldStderr {
    fn start() -> Option<HeldStderr> {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("tapflow-top-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        let _ = std::fs::remove_file(&path);
        // SAFETY: plain descriptor calls on descriptors this process owns.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return None;
        }
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            unsafe { libc::close(saved) };
            return None;
        }
        Some(HeldStderr { file, saved })
    }

    fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }
}

/// Puts stderr back and prints what was held — also when a panic unwinds through the view,
/// so its message (written while held) is not lost.
impl Drop for HeldStderr {
    fn drop(&mut self) {
        use std::io::{Read, Seek};
        // SAFETY: restores the descriptor saved in `start`.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        let mut text = Vec::new();
        if self.file.rewind().is_ok() && self.file.read_to_end(&mut text).is_ok() {
            let _ = io::stderr().write_all(&text);
        }
    }
}

/// The interactive state: sort column and direction, scroll position.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub sort: usize,
    pub desc: bool,
    pub offset: usize,
}

/// Draws one frame into `buf` over `area`: a status line, a help line, then the table.
pub fn render(model: &TopModel, ui: &Ui, st: &Status, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 10 {
        return;
    }
    let cols = model.columns();
    let sort_title = cols.get(ui.sort).map_or("", |c| c.title());
    let mut line = format!(
        "tapflow top  {}  {} rows  {:.0} records/s  sorted by {} {}  window {}s",
        st.source,
        model.len(),
        st.records_per_s,
        sort_title,
        if ui.desc { "↓" } else { "↑" },
        model.opts.window_ns / NS,
    );
    if let Some(f) = &st.filter {
        line.push_str("  filter: ");
        line.push_str(f);
    }
    if st.paused {
        line.push_str("  [paused]");
    }
    if st.ended {
        line.push_str("  [input ended]");
    }
    if st.messages > 0 {
        line.push_str("  [messages: shown on exit]");
    }
    if model.rows_evicted > 0 {
        line.push_str(&format!(
            "  {} idle rows dropped (--max-rows)",
            model.rows_evicted
        ));
    }
    Paragraph::new(Line::from(line)).render(Rect { height: 1, ..area }, buf);
    Paragraph::new(Line::from(
        "q quit  s/S sort column  r reverse  p pause  ↑↓ PgUp PgDn Home scroll",
    ))
    .style(TuiStyle::default().add_modifier(Modifier::DIM))
    .render(
        Rect {
            y: area.y + 1,
            height: 1,
            ..area
        },
        buf,
    );
    let table_area = Rect {
        y: area.y + 2,
        height: area.height - 2,
        ..area
    };
    let n = usize::from(table_area.height.saturating_sub(1));
    let lines = model.view(ui.sort, ui.desc, ui.offset, n);
    let style = model.opts.style;
    let header = TuiRow::new(cols.iter().enumerate().map(|(i, c)| {
        let t = c.title();
        let text = if i == ui.sort {
            format!("{t}{}", if ui.desc { "↓" } else { "↑" })
        } else {
            t.to_string()
        };
        let cell = Cell::from(aligned(text, c.right()));
        if i == ui.sort {
            cell.style(TuiStyle::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
        } else {
            cell.style(TuiStyle::default().add_modifier(Modifier::BOLD))
        }
    }));
    let mut s = String::new();
    let rows: Vec<TuiRow> = lines
        .iter()
        .map(|l| {
            TuiRow::new(cols.iter().map(|&c| {
                cell_text(c, l, style, &mut s);
                Cell::from(aligned(s.clone(), c.right()))
            }))
        })
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| Constraint::Length(c.width(style)))
        .collect();
    Widget::render(
        Table::new(rows, widths).header(header).column_spacing(1),
        table_area,
        buf,
    );
}

/// The frame as text lines (trailing blanks trimmed), for `--batch` and tests.
pub fn frame_text(model: &TopModel, ui: &Ui, st: &Status, width: u16, rows: u16) -> String {
    let area = Rect::new(0, 0, width, rows.saturating_add(3));
    let mut buf = Buffer::empty(area);
    render(model, ui, st, area, &mut buf);
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        let t = line.trim_end();
        if t.is_empty() && y >= 3 {
            break;
        }
        out.push_str(t);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The command

// Records move through the channel by value: boxing them would allocate per record.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Rec(FlowRecord),
    End(Option<i32>),
}

fn secs_arg(flag: &str, v: f64) -> Result<Duration, Failure> {
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(Failure::bad(format!(
            "{flag} {v}: must be a positive number of seconds"
        )))
    }
}

/// `tapflow top`.
pub fn run(args: &TopArgs, dashdash: bool) -> Result<(), Failure> {
    if let Some(r) = field_help_fields(&args.fields) {
        return r;
    }
    let key = if args.key.is_empty() {
        agg::parse_key(&["proto,saddr,sport,daddr,dport".into()], None)
    } else {
        agg::parse_key(&args.key, None)
    }
    .map_err(Failure::bad)?;
    if key.iter().any(|k| matches!(k, KeyPart::Stime(_))) {
        return Err(Failure::bad(
            "top keeps no time bins in its key; use tapflow bins",
        ));
    }
    let columns = parse_columns(&args.fields, &key).map_err(Failure::bad)?;
    let sort = match &args.sort {
        None => columns.iter().position(|c| *c == Column::Rate).unwrap_or(0),
        Some(name) => {
            let c = Column::by_name(name.trim_start_matches(['-', '+']))
                .ok_or_else(|| Failure::bad(format!("unknown column '{name}' in --sort")))?;
            columns.iter().position(|x| *x == c).ok_or_else(|| {
                Failure::bad(format!("--sort {name}: not among the columns shown (-s)"))
            })?
        }
    };
    let refresh = secs_arg("--refresh", args.refresh)?;
    let window = secs_arg("--window", args.window)?;
    let hold = secs_arg("--hold", args.hold)?;
    let opts = TopOptions {
        key,
        columns,
        window_ns: window.as_nanos() as u64,
        hold_ns: hold.as_nanos() as u64,
        max_rows: args.max_rows.max(1),
        style: Style {
            epoch: args.epoch,
            numeric: args.numeric,
        },
    };
    let filter_text = if args.filter.is_empty() {
        None
    } else {
        Some(
            args.filter
                .iter()
                .filter(|w| *w != "-")
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let filter = parse_filter(&args.filter, dashdash)?;
    // Keys are read from the terminal itself (crossterm opens /dev/tty when stdin is not
    // one), so `tapflow-probe … -w - | tapflow top -r -` works.
    if !args.batch && !io::stdout().is_terminal() {
        return Err(Failure::bad(
            "top needs a terminal; use --batch to print frames as text",
        ));
    }
    let records = open_sources(&args.source, filter, Meta::Skip)?;
    let source = match (&args.source.stream, args.source.files.as_slice()) {
        (Some(s), _) => s.clone(),
        (None, [one]) => one.display().to_string(),
        (None, many) => format!("{} inputs", many.len()),
    };
    // Messages about the input (a damaged file, a lost stream) would be drawn over by the
    // view and vanish with it: they are held in a file and shown once the terminal is back.
    // Held before the reader starts, so none escapes to the screen first.
    let held = if args.batch {
        None
    } else {
        HeldStderr::start()
    };
    // The reader runs on its own thread: a stream blocks on the network, the view must not.
    let (tx, rx) = mpsc::sync_channel::<Msg>(16_384);
    std::thread::spawn(move || {
        let mut records = records;
        for r in records.by_ref() {
            if tx.send(Msg::Rec(r)).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::End(records.failed()));
    });
    let ui = Ui {
        sort,
        desc: !args.sort.as_deref().is_some_and(|s| s.starts_with('+')),
        offset: 0,
    };
    let status = Status {
        source,
        filter: filter_text,
        ..Status::default()
    };
    let model = TopModel::new(opts);
    if args.batch {
        batch(model, ui, status, rx, args, refresh)
    } else {
        interactive(model, ui, status, rx, refresh, held)
    }
}

fn parse_columns(sel: &[String], key: &[KeyPart]) -> Result<Vec<Column>, String> {
    let defaults = default_columns(key);
    let words: Vec<&str> = sel
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect();
    if words.is_empty() {
        return Ok(defaults);
    }
    let relative = words.iter().all(|w| w.starts_with(['+', '-']));
    let mut out = if relative { defaults } else { Vec::new() };
    for w in words {
        let (op, name) = match w.as_bytes()[0] {
            b'+' | b'-' => (Some(w.as_bytes()[0]), &w[1..]),
            _ => (None, w),
        };
        let c = Column::by_name(name).ok_or_else(|| {
            format!(
                "unknown field '{name}' in -s; valid: rate prate {}",
                Field::all_names()
            )
        })?;
        match op {
            Some(b'-') => out.retain(|x| *x != c),
            _ if !out.contains(&c) => out.push(c),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err("-s leaves no column to show".into());
    }
    Ok(out)
}

/// Takes what the reader sent; false once the input has ended.
fn drain(
    model: &mut TopModel,
    rx: &mpsc::Receiver<Msg>,
    ended: &mut Option<Option<i32>>,
    max: usize,
) {
    for _ in 0..max {
        match rx.try_recv() {
            Ok(Msg::Rec(r)) => model.add(r),
            Ok(Msg::End(code)) => {
                *ended = Some(code);
                return;
            }
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                ended.get_or_insert(None);
                return;
            }
        }
    }
}

fn exit_status(ended: Option<Option<i32>>) -> Result<(), Failure> {
    match ended.flatten() {
        Some(code) => Err(Failure {
            code,
            msg: String::new(),
        }),
        None => Ok(()),
    }
}

fn batch(
    mut model: TopModel,
    ui: Ui,
    mut st: Status,
    rx: mpsc::Receiver<Msg>,
    args: &TopArgs,
    refresh: Duration,
) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let mut ended = None;
    let mut frames = 0u64;
    let started = Instant::now();
    let mut next = started + refresh;
    let stream = args.source.stream.is_some();
    loop {
        // Blocks for the next record or the next frame, whichever comes first.
        let wait = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Rec(r)) => {
                model.add(r);
                drain(&mut model, &rx, &mut ended, 1 << 16);
            }
            Ok(Msg::End(code)) => ended = Some(code),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                ended.get_or_insert(None);
            }
        }
        let due = Instant::now() >= next;
        // File input: one frame, at the end. A stream: a frame per refresh, and at the end.
        if ended.is_some() || (stream && due) {
            model.expire();
            st.ended = ended.is_some();
            st.records_per_s = model.records_in as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let text = frame_text(&model, &ui, &st, args.width, args.rows);
            let res = writeln!(out, "{text}").and_then(|_| out.flush());
            if let Err(e) = res {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(Failure::io(format!("writing output: {e}")));
            }
            frames += 1;
            next = Instant::now() + refresh;
            if ended.is_some() || args.iterations.is_some_and(|n| frames >= n) {
                return exit_status(ended);
            }
        }
    }
}

fn interactive(
    mut model: TopModel,
    mut ui: Ui,
    mut st: Status,
    rx: mpsc::Receiver<Msg>,
    refresh: Duration,
    held: Option<HeldStderr>,
) -> Result<(), Failure> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let mut term = ratatui::init();
    let mut ended = None;
    let started = Instant::now();
    let (mut last_count, mut last_at) = (0u64, started);
    let result = (|| -> io::Result<()> {
        loop {
            if !st.paused {
                drain(&mut model, &rx, &mut ended, 1 << 20);
                model.expire();
            }
            let el = last_at.elapsed().as_secs_f64();
            if el >= 1.0 {
                st.records_per_s = (model.records_in - last_count) as f64 / el;
                (last_count, last_at) = (model.records_in, Instant::now());
            }
            st.ended = ended.is_some();
            st.messages = held.as_ref().map_or(0, HeldStderr::len);
            term.draw(|f| render(&model, &ui, &st, f.area(), f.buffer_mut()))?;
            let page = usize::from(term.size()?.height.saturating_sub(4)).max(1);
            let until = Instant::now() + refresh;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                let Event::Key(k) = event::read()? else {
                    continue;
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                let ncols = model.columns().len();
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('s') | KeyCode::Right => ui.sort = (ui.sort + 1) % ncols,
                    KeyCode::Char('S') | KeyCode::Left => ui.sort = (ui.sort + ncols - 1) % ncols,
                    KeyCode::Char('r') => ui.desc = !ui.desc,
                    KeyCode::Char('p') | KeyCode::Char(' ') => st.paused = !st.paused,
                    KeyCode::Down => ui.offset = (ui.offset + 1).min(model.len().saturating_sub(1)),
                    KeyCode::Up => ui.offset = ui.offset.saturating_sub(1),
                    KeyCode::PageDown => {
                        ui.offset = (ui.offset + page).min(model.len().saturating_sub(1))
                    }
                    KeyCode::PageUp => ui.offset = ui.offset.saturating_sub(page),
                    KeyCode::Home => ui.offset = 0,
                    _ => continue,
                }
                break;
            }
        }
    })();
    ratatui::restore();
    drop(held);
    result.map_err(|e| Failure::io(format!("terminal: {e}")))?;
    exit_status(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Addr, AddrKind, DirStats};

    const T0: u64 = 1_795_514_400 * NS; // 2026-11-24 10:00:00 UTC

    fn rec(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, bytes: u64, ltime_s: u64) -> FlowRecord {
        FlowRecord {
            probe_id: 1,
            addr_kind: AddrKind::Ipv4,
            proto: 6,
            ethertype: 0x0800,
            saddr: Addr::from_v4(s),
            daddr: Addr::from_v4(d),
            sport: sp,
            dport: dp,
            stime_ns: T0 + (ltime_s.saturating_sub(5)) * NS,
            ltime_ns: T0 + ltime_s * NS,
            src: DirStats {
                pkts: bytes / 100,
                bytes,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn opts(key: &str) -> TopOptions {
        let key = agg::parse_key(&[key.into()], None).unwrap();
        TopOptions {
            columns: default_columns(&key),
            key,
            window_ns: 8 * NS,
            hold_ns: 60 * NS,
            max_rows: 1000,
            style: Style {
                epoch: false,
                numeric: true,
            },
        }
    }

    #[test]
    fn rows_aggregate_by_key_and_rates_cover_the_window() {
        let mut m = TopModel::new(opts("saddr"));
        // 10.0.0.1: 8000 bytes at t=100 and 8000 at t=104, both within the 8 s window at 104.
        m.add(rec([10, 0, 0, 1], 1, [10, 9, 9, 9], 80, 8000, 100));
        m.add(rec([10, 0, 0, 1], 2, [10, 9, 9, 8], 443, 8000, 104));
        // 10.0.0.2: 80000 bytes long ago (t=50): bigger total, no current rate.
        m.add(rec([10, 0, 0, 2], 3, [10, 9, 9, 9], 80, 80000, 50));
        assert_eq!(m.len(), 2);
        let rate_col = m.columns().iter().position(|c| *c == Column::Rate).unwrap();
        let v = m.view(rate_col, true, 0, 10);
        assert_eq!(v[0].rec.saddr, Addr::from_v4([10, 0, 0, 1]));
        // 16000 bytes * 8 bits over 8 s.
        assert!((v[0].bps - 16_000.0).abs() < 1e-6, "{}", v[0].bps);
        assert_eq!(v[1].bps, 0.0);
        assert_eq!(crate::fields::trans(&v[0].rec), 2);
        // Sorted by bytes instead, the old heavy host comes first.
        let bytes_col = m
            .columns()
            .iter()
            .position(|c| *c == Column::Field(Field::Bytes))
            .unwrap();
        let v = m.view(bytes_col, true, 0, 10);
        assert_eq!(v[0].rec.saddr, Addr::from_v4([10, 0, 0, 2]));
        assert_eq!(v[0].rec.bytes(), 80000);
        // Ascending, and scrolled by one.
        let v = m.view(bytes_col, false, 1, 10);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rec.bytes(), 80000);
    }

    #[test]
    fn idle_rows_expire_and_max_rows_drops_the_longest_idle() {
        let mut o = opts("saddr");
        o.hold_ns = 30 * NS;
        o.max_rows = 3;
        let mut m = TopModel::new(o);
        for i in 0..5u8 {
            m.add(rec(
                [10, 0, 0, i],
                1,
                [10, 9, 9, 9],
                80,
                100,
                100 + u64::from(i),
            ));
        }
        m.expire();
        assert_eq!(m.len(), 3);
        assert_eq!(m.rows_evicted, 2);
        let v = m.view(0, false, 0, 10);
        let kept: Vec<u8> = v.iter().map(|l| l.rec.saddr.0[3]).collect();
        assert_eq!(kept, vec![2, 3, 4], "the most recently active stay");
        // 40 s later only the new host is within the hold time.
        m.add(rec([10, 0, 0, 9], 1, [10, 9, 9, 9], 80, 100, 145));
        m.expire();
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn frame_shows_titles_sort_mark_and_rows() {
        let mut m = TopModel::new(opts("proto,saddr,sport,daddr,dport"));
        m.add(rec([10, 0, 0, 1], 1234, [192, 0, 2, 7], 80, 5000, 100));
        m.add(rec([10, 0, 0, 2], 999, [192, 0, 2, 8], 25, 100, 100));
        let cols = m.columns().to_vec();
        assert_eq!(
            cols[3],
            Column::Field(Field::Dir),
            "flow view reads like ra"
        );
        let sort = cols.iter().position(|c| *c == Column::Rate).unwrap();
        let ui = Ui {
            sort,
            desc: true,
            offset: 0,
        };
        let st = Status {
            source: "test".into(),
            ..Status::default()
        };
        let text = frame_text(&m, &ui, &st, 200, 10);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("2 rows") && lines[0].contains("sorted by Rate ↓"));
        assert!(
            lines[2].contains("SrcAddr") && lines[2].contains("Rate↓"),
            "{text}"
        );
        assert!(
            lines[3].contains("10.0.0.1") && lines[3].contains("192.0.2.7"),
            "{text}"
        );
        assert!(lines[4].contains("10.0.0.2"), "{text}");
        assert_eq!(lines.len(), 5, "{text}");
        // 5000 bytes over 8 s = 5000 bit/s.
        assert!(lines[3].contains("5.00K"), "{text}");
    }

    #[test]
    fn columns_parse() {
        let key = agg::parse_key(&["saddr".into()], None).unwrap();
        let c = parse_columns(&["saddr,bytes,rate".into()], &key).unwrap();
        assert_eq!(
            c,
            vec![
                Column::Field(Field::Saddr),
                Column::Field(Field::Bytes),
                Column::Rate
            ]
        );
        let c = parse_columns(&["-prate,+dur".into()], &key).unwrap();
        assert!(!c.contains(&Column::PktRate) && c.contains(&Column::Field(Field::Dur)));
        assert!(parse_columns(&["bogus".into()], &key).is_err());
    }
}
