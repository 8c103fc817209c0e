//! Rendering records as aligned text, delimited text/CSV, or JSON lines.

use std::fmt::Write as _;
use std::io::{self, Write};

use tapflow_record::{encap, proto_name, proto_name_static, AddrKind, FlowRecord};

use crate::fields::{value, Align, Field, Value};
use crate::services::port_name;

/// How values are spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// Times as epoch seconds (`-u`) instead of UTC calendar time.
    pub epoch: bool,
    /// No port names (`-n`).
    pub numeric: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Padded columns separated by a space (`ra` default).
    Columns,
    /// Unpadded values separated by a character (`-c`), no quoting, titles as header.
    Delimited(char),
    /// CSV: field names as header, RFC 4180 quoting, ports numeric.
    Csv(char),
    /// One JSON object per line, keys = field names.
    Json,
}

pub struct Printer {
    fields: Vec<Field>,
    widths: Vec<usize>,
    mode: Mode,
    style: Style,
    line: String,
    cell: String,
}

impl Printer {
    pub fn new(fields: Vec<Field>, mode: Mode, mut style: Style) -> Printer {
        if matches!(mode, Mode::Csv(_) | Mode::Json) {
            style.numeric = true;
        }
        let widths = fields
            .iter()
            .map(|&f| match f {
                Field::Stime | Field::Ltime if style.epoch => 17,
                f => f.info().width,
            })
            .collect();
        Printer {
            fields,
            widths,
            mode,
            style,
            line: String::with_capacity(256),
            cell: String::with_capacity(64),
        }
    }

    /// Writes the header line, if the mode has one.
    pub fn header(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.line.clear();
        for (i, &f) in self.fields.iter().enumerate() {
            let info = f.info();
            match self.mode {
                Mode::Json => return Ok(()),
                Mode::Columns => {
                    if i > 0 {
                        self.line.push(' ');
                    }
                    pad(&mut self.line, info.title, self.widths[i], info.align);
                }
                Mode::Delimited(sep) => {
                    if i > 0 {
                        self.line.push(sep);
                    }
                    self.line.push_str(info.title);
                }
                Mode::Csv(sep) => {
                    if i > 0 {
                        self.line.push(sep);
                    }
                    self.line.push_str(info.name);
                }
            }
        }
        self.finish_line(out)
    }

    pub fn record(&mut self, r: &FlowRecord, out: &mut impl Write) -> io::Result<()> {
        self.line.clear();
        if self.mode == Mode::Json {
            self.line.push('{');
        }
        for (i, &f) in self.fields.iter().enumerate() {
            let v = match value(f, r) {
                // " ->" is padding for aligned columns; unpadded modes get "->".
                Value::Str(s) if f == Field::Dir && self.mode != Mode::Columns => {
                    Value::Str(s.trim())
                }
                v => v,
            };
            match self.mode {
                Mode::Columns => {
                    if i > 0 {
                        self.line.push(' ');
                    }
                    self.cell.clear();
                    push_text(&mut self.cell, &v, self.style);
                    pad(&mut self.line, &self.cell, self.widths[i], f.info().align);
                }
                Mode::Delimited(sep) => {
                    if i > 0 {
                        self.line.push(sep);
                    }
                    self.cell.clear();
                    push_text(&mut self.cell, &v, self.style);
                    self.line.push_str(&self.cell);
                }
                Mode::Csv(sep) => {
                    if i > 0 {
                        self.line.push(sep);
                    }
                    self.cell.clear();
                    push_text(&mut self.cell, &v, self.style);
                    push_csv_cell(&mut self.line, &self.cell, sep);
                }
                Mode::Json => {
                    if i > 0 {
                        self.line.push(',');
                    }
                    push_json_str(&mut self.line, f.name());
                    self.line.push(':');
                    push_json(&mut self.line, &v);
                }
            }
        }
        if self.mode == Mode::Json {
            self.line.push('}');
        }
        self.finish_line(out)
    }

    fn finish_line(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.mode == Mode::Columns {
            let n = self.line.trim_end_matches(' ').len();
            self.line.truncate(n);
        }
        self.line.push('\n');
        out.write_all(self.line.as_bytes())
    }
}

fn pad(line: &mut String, s: &str, width: usize, align: Align) {
    let n = width.saturating_sub(s.len());
    if align == Align::Right {
        push_n(line, ' ', n);
    }
    line.push_str(s);
    if align == Align::Left {
        push_n(line, ' ', n);
    }
}

fn push_csv_cell(line: &mut String, s: &str, sep: char) {
    if s.contains([sep, '"', '\n', '\r']) {
        line.push('"');
        for c in s.chars() {
            if c == '"' {
                line.push('"');
            }
            line.push(c);
        }
        line.push('"');
    } else {
        line.push_str(s);
    }
}

fn push_n(out: &mut String, c: char, n: usize) {
    for _ in 0..n {
        out.push(c);
    }
}

fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `v` zero-padded to `digits` digits.
fn push_padded(out: &mut String, v: u64, digits: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(v);
    push_n(out, '0', digits.saturating_sub(s.len()));
    out.push_str(s);
}

/// Seconds with 6 decimals, truncated (as argus does): `1.500000`.
pub fn push_secs(out: &mut String, ns: u64) {
    push_u64(out, ns / 1_000_000_000);
    out.push('.');
    push_padded(out, ns % 1_000_000_000 / 1000, 6);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, or epoch seconds with 6 decimals.
pub fn push_time(out: &mut String, ns: u64, epoch: bool) {
    if epoch {
        return push_secs(out, ns);
    }
    let (y, mo, d, h, mi, s) = tapflow_record::time::utc(ns / 1_000_000_000);
    push_padded(out, y, 4);
    for (sep, v) in [('-', mo), ('-', d), (' ', h), (':', mi), (':', s)] {
        out.push(sep);
        push_padded(out, v, 2);
    }
    out.push('.');
    push_padded(out, ns % 1_000_000_000 / 1000, 6);
}

fn push_millis(out: &mut String, ns: f64) {
    let _ = write!(out, "{:.3}", ns / 1e6);
}

/// The value as text: columns, `-c` and CSV (CSV forces `numeric`).
pub fn push_text(out: &mut String, v: &Value, style: Style) {
    match *v {
        Value::Empty => {}
        Value::U64(n) => push_u64(out, n),
        Value::Time(ns) => push_time(out, ns, style.epoch),
        Value::Secs(ns) => push_secs(out, ns),
        Value::Millis(ns) if ns.is_finite() => push_millis(out, ns),
        Value::Millis(_) => {}
        Value::Str(s) => out.push_str(s),
        Value::Addr(a, k) => {
            let _ = write!(out, "{}", a.display(k));
        }
        Value::Mac(m) => {
            let _ = write!(
                out,
                "{}",
                tapflow_record::Addr::from_mac(m).display(AddrKind::L2)
            );
        }
        Value::Port(p) => match port_name(p) {
            Some(name) if !style.numeric => out.push_str(name),
            _ => push_u64(out, p as u64),
        },
        Value::Hex16(n) => {
            let _ = write!(out, "0x{n:04x}");
        }
        Value::Proto(AddrKind::L2, p, et) => out.push_str(&proto_name(AddrKind::L2, p, et)),
        Value::Proto(_, p, _) => match proto_name_static(p) {
            Some(n) => out.push_str(n),
            None => push_u64(out, p as u64),
        },
        Value::Flgs(f) => out.extend(f.iter().map(|&b| b as char)),
        Value::TcpFlags(bits) => {
            for (i, c) in "CEUAPRSF".chars().enumerate() {
                out.push(if bits & (0x80 >> i) != 0 { c } else { '.' });
            }
        }
        Value::Encap(kinds) => {
            let mut first = true;
            for (bit, name) in encap::NAMES {
                if kinds & bit != 0 {
                    if !first {
                        out.push('+');
                    }
                    first = false;
                    out.push_str(name);
                }
            }
        }
        Value::IbOps(words) => {
            // SVC_NAME per opcode (RC_SEND_ONLY, UD_SEND_ONLY, CNP), 0xNN when reserved.
            let mut first = true;
            for op in 0..=255u8 {
                if words[usize::from(op >> 6)] & (1u64 << (op & 63)) == 0 {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                match tapflow_record::ib_opcode_name(op) {
                    Some("CNP") => out.push_str("CNP"),
                    Some(n) => {
                        out.push_str(tapflow_record::IB_SERVICES[usize::from(op >> 5)]);
                        out.push('_');
                        out.push_str(n);
                    }
                    None => {
                        let _ = write!(out, "0x{op:02x}");
                    }
                }
            }
        }
        Value::IbSvc(bits) => {
            let mut first = true;
            for (i, name) in tapflow_record::IB_SERVICES.iter().enumerate() {
                if bits & (1 << i) != 0 {
                    if !first {
                        out.push('+');
                    }
                    first = false;
                    out.push_str(name);
                }
            }
        }
    }
}

pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The value as a JSON token: numbers stay numbers (times as epoch seconds), N/A is `null`.
pub fn push_json(out: &mut String, v: &Value) {
    match *v {
        Value::Empty => out.push_str("null"),
        Value::U64(n) => push_u64(out, n),
        Value::Port(n) | Value::Hex16(n) => push_u64(out, n as u64),
        Value::Time(ns) | Value::Secs(ns) => push_secs(out, ns),
        Value::Millis(ns) if ns.is_finite() => push_millis(out, ns),
        Value::Millis(_) => out.push_str("null"),
        Value::Str(s) => push_json_str(out, s),
        _ => {
            // Everything else is plain ASCII text without quotes or backslashes.
            out.push('"');
            push_text(
                out,
                v,
                Style {
                    epoch: true,
                    numeric: true,
                },
            );
            out.push('"');
        }
    }
}

#[cfg(test)]
mod tests;
