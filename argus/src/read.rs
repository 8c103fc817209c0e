//! Argus 3 reader: flow records (FARs) into tapflow records; management records are skipped.

use std::fmt;
use std::io::{self, Read};

use tapflow_record::{flags, observed, Addr, AddrKind, DirStats, FlowRecord, RecordError};

use crate::*;

/// Why one FAR could not be decoded: `at` is the byte offset inside the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub at: usize,
    pub msg: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (record byte {})", self.msg, self.at)
    }
}

fn err(at: usize, msg: impl Into<String>) -> DecodeError {
    DecodeError {
        at,
        msg: msg.into(),
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    (u64::from(u32_at(b, i)) << 32) | u64::from(u32_at(b, i + 4))
}

/// (seconds, fraction) to ns; the fraction is µs unless `ns` (qualifier 0x19). Out-of-range
/// fractions are clamped as the clients do.
fn time_ns(b: &[u8], i: usize, ns: bool) -> u64 {
    let secs = u64::from(u32_at(b, i));
    let frac = u64::from(u32_at(b, i + 4));
    if ns {
        secs * 1_000_000_000 + frac.min(999_999_999)
    } else {
        secs * 1_000_000_000 + frac.min(999_999) * 1000
    }
}

/// True when `head` (the first bytes of an input, ≥ 16 for a sure answer) starts an Argus 3
/// file: a management record with the cookie at offset 8 (in either byte order, as ra
/// accepts it), or, for a file that lost its MAR, a plausible flow record.
pub fn is_argus(head: &[u8]) -> bool {
    if head.len() < 16 {
        return false;
    }
    let cookie = u32_at(head, 8);
    if head[0] & 0xf0 == TYPE_MAR && (cookie == COOKIE || cookie.swap_bytes() == COOKIE) {
        return true;
    }
    plausible_far(head)
}

/// A FAR header followed by a sound first DSR (transport, flow or time).
fn plausible_far(b: &[u8]) -> bool {
    if b.len() < 8 || b[0] & 0xf0 != TYPE_FAR {
        return false;
    }
    let cause = b[1] & 0xf0;
    let words = usize::from(u16_at(b, 2));
    if !(CAUSE_START..=CAUSE_CLOSED).contains(&cause) || words < 4 {
        return false;
    }
    let (ty, sub, len) = (b[4], b[5], usize::from(b[7]));
    matches!(ty, DSR_TRANSPORT | DSR_FLOW | DSR_TIME) && sub & 0x80 == 0 && len >= 1 && len < words
}

/// Decodes one FAR (`b` is the whole record, header included) into `rec` (reset first).
/// Unknown DSRs are skipped by their length; a DSR that is too short for what it says it
/// holds, has length 0 or runs past the record is an error.
pub fn decode_far(b: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
    rec.reset();
    if b.len() < 4 || b[0] & 0xf0 != TYPE_FAR {
        return Err(err(0, "not a flow record"));
    }
    let words = usize::from(u16_at(b, 2));
    if words * 4 != b.len() {
        return Err(err(2, "record length does not match"));
    }
    rec.cause = cause_of(b[1]);
    let mut key = false;
    // Times: [src start, src end, dst start, dst end] when per direction, or a range.
    let mut dir_times: [Option<u64>; 4] = [None; 4];
    let mut range: Option<(u64, u64)> = None;
    let mut tcp_status: Option<u32> = None;
    let mut i = 4;
    while i < b.len() {
        if i + 4 > b.len() {
            return Err(err(i, "DSR header runs past the record end"));
        }
        let (ty, sub, qual) = (b[i], b[i + 1], b[i + 2]);
        let len = if ty & 0x80 != 0 {
            // An immediate DSR: the header is the whole of it.
            1
        } else if sub & 0x80 != 0 {
            usize::from(u16_at(b, i + 2))
        } else {
            usize::from(b[i + 3])
        };
        if len == 0 {
            return Err(err(i, format!("DSR type 0x{ty:02x} has length 0")));
        }
        if i + len * 4 > b.len() {
            return Err(err(
                i,
                format!(
                    "DSR type 0x{ty:02x} ({} bytes) runs past the record end ({} bytes left)",
                    len * 4,
                    b.len() - i
                ),
            ));
        }
        let d = &b[i..i + len * 4];
        let short = |need: usize| {
            if d.len() < need {
                Err(err(
                    i,
                    format!(
                        "DSR type 0x{ty:02x} subtype 0x{sub:02x} too short ({} bytes, needs {need})",
                        d.len()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match ty {
            DSR_TRANSPORT => {
                if d.len() >= 12 {
                    rec.probe_id = u32_at(d, 4);
                    rec.seq = u64::from(u32_at(d, 8));
                } else if d.len() >= 8 {
                    if sub & 0x01 != 0 {
                        rec.probe_id = u32_at(d, 4);
                    } else {
                        rec.seq = u64::from(u32_at(d, 4));
                    }
                }
            }
            DSR_FLOW => {
                flow_key(d, sub, qual, rec).map_err(|m| err(i, m))?;
                key = true;
            }
            DSR_TIME => {
                let ns = qual & 0x1f == 0x19;
                let body = (d.len() - 4) / 4;
                let bits = sub & 0x78;
                if bits != 0 {
                    let mut slot_buf = [0usize; 4];
                    let mut np = 0;
                    for k in 0..4 {
                        if bits & (0x08 << k) != 0 {
                            slot_buf[np] = k;
                            np += 1;
                        }
                    }
                    let slots = &slot_buf[..np];
                    if body >= 2 * np {
                        for (n, &k) in slots.iter().enumerate() {
                            dir_times[k] = Some(time_ns(d, 4 + 8 * n, ns));
                        }
                    } else if body > np {
                        // The first value absolute, the others signed µs offsets from it.
                        let t0 = time_ns(d, 4, ns);
                        dir_times[slots[0]] = Some(t0);
                        for (n, &k) in slots.iter().enumerate().skip(1) {
                            let off = i64::from(u32_at(d, 8 + 4 * n) as i32) * 1000;
                            dir_times[k] = Some(t0.saturating_add_signed(off));
                        }
                    } else {
                        short(4 + 8 * np)?;
                    }
                } else if body >= 4 {
                    range = Some((time_ns(d, 4, ns), time_ns(d, 12, ns)));
                } else if body == 3 {
                    let t0 = time_ns(d, 4, ns);
                    let off = i64::from(u32_at(d, 12) as i32) * 1000;
                    range = Some((t0, t0.saturating_add_signed(off)));
                } else {
                    short(12)?;
                    let t0 = time_ns(d, 4, ns);
                    range = Some((t0, t0));
                }
            }
            DSR_METRIC => metric(d, sub, qual, rec),
            DSR_NETWORK => match sub {
                NET_TCP_PERF => {
                    short(120)?;
                    tcp_status = Some(u32_at(d, 4));
                    let o = u32_at(d, 12);
                    for (bit, abit) in TCP_OPTS {
                        if o & abit != 0 {
                            rec.tcp_opts |= bit;
                        }
                    }
                    rec.synack_ns = u64::from(u32_at(d, 16)) * 1000;
                    rec.ackdat_ns = u64::from(u32_at(d, 20)) * 1000;
                    tcp_dir(&d[24..72], &mut rec.src);
                    tcp_dir(&d[72..120], &mut rec.dst);
                }
                NET_TCP_INIT => {
                    short(20)?;
                    tcp_status = Some(u32_at(d, 4));
                    rec.src.isn = u32_at(d, 8);
                    rec.src.window = u32::from(u16_at(d, 16))
                        .checked_shl(u32::from(d[19]))
                        .unwrap_or(0);
                    rec.src.tcp_flags = d[18];
                }
                NET_TCP_STATUS => {
                    short(12)?;
                    tcp_status = Some(u32_at(d, 4));
                    rec.src.tcp_flags = d[8];
                    rec.dst.tcp_flags = d[9];
                }
                NET_FRAG => rec.flags |= flags::FRAGMENTS,
                _ => {}
            },
            DSR_IPATTR => {
                let mut at = 4;
                for (bit, dir) in [(0x01u8, 0usize), (0x04, 9), (0x02, 1), (0x08, 9)] {
                    if qual & bit == 0 {
                        continue;
                    }
                    short(at + 4)?;
                    match dir {
                        9 => {
                            if u32_at(d, at) != 0 {
                                rec.flags |= flags::IP_OPTIONS;
                            }
                        }
                        _ => {
                            let s = if dir == 0 { &mut rec.src } else { &mut rec.dst };
                            s.ttl_min = d[at];
                            s.ttl_max = d[at];
                            s.tos = d[at + 1];
                        }
                    }
                    at += 4;
                }
                if qual & 0x10 != 0 {
                    rec.src.frags = 1;
                }
                if qual & 0x20 != 0 {
                    rec.dst.frags = 1;
                }
            }
            DSR_ENCAPS => {
                short(12)?;
                let m = u32_at(d, 4) | u32_at(d, 8);
                for (k, bit) in ENCAPS {
                    if m & bit != 0 {
                        rec.encap.kinds |= k;
                    }
                }
                if m & ENCAPS_AH != 0 {
                    rec.flags |= flags::IPSEC_AH;
                }
            }
            DSR_MAC => {
                short(20)?;
                rec.dmac.copy_from_slice(&d[4..10]);
                rec.smac.copy_from_slice(&d[10..16]);
            }
            DSR_VLAN => {
                short(8)?;
                let tci = if qual & 0x01 != 0 || qual & 0x02 == 0 {
                    u16_at(d, 4)
                } else {
                    u16_at(d, 6)
                };
                rec.vlan[0] = tci & 0x0fff;
            }
            DSR_MPLS => {
                short(8)?;
                rec.mpls[0] = u32_at(d, 4) >> 12;
            }
            DSR_JITTER if sub == 0 => {
                let mut at = 4;
                let mut got = [false; 2];
                for (bit, dir) in [(0x01u8, 0usize), (0x02, 0), (0x04, 1), (0x08, 1)] {
                    if qual & bit == 0 {
                        continue;
                    }
                    short(at + 20)?;
                    // Active statistics first; idle ones only when a direction has no other.
                    if !got[dir] {
                        got[dir] = true;
                        let s = if dir == 0 { &mut rec.src } else { &mut rec.dst };
                        s.ipt_n = u32_at(d, at).min(i32::MAX as u32);
                        s.ipt_mean_ns = us_f32_to_ns(f32::from_bits(u32_at(d, at + 8)));
                        s.ipt_std_ns = us_f32_to_ns(f32::from_bits(u32_at(d, at + 12)));
                    }
                    at += 20;
                }
            }
            DSR_USER if sub & 0x08 == 0 => {
                short(8)?;
                let count = usize::from(u16_at(d, 6)).min(d.len() - 8);
                let data = &d[8..8 + count];
                if sub & 0x10 != 0 {
                    rec.src_payload.extend_from_slice(data);
                } else if sub & 0x20 != 0 {
                    rec.dst_payload.extend_from_slice(data);
                }
                if count > 0 {
                    rec.flags |= flags::PAYLOAD;
                }
            }
            _ => {}
        }
        i += len * 4;
    }
    if !key {
        return Err(err(4, "no flow key DSR"));
    }
    let has = [rec.src.pkts > 0, rec.dst.pkts > 0];
    rec.observed = (if has[0] { observed::SRC_TO_DST } else { 0 })
        | (if has[1] { observed::DST_TO_SRC } else { 0 });
    if let Some((s, e)) = range {
        // One range for the record: each direction with packets spans it (as ra mirrors).
        if has[0] || !has[1] {
            dir_times[0] = Some(s);
            dir_times[1] = Some(e);
        }
        if has[1] {
            dir_times[2] = Some(s);
            dir_times[3] = Some(e);
        }
    }
    rec.src.first_ns = dir_times[0].unwrap_or(0);
    rec.src.last_ns = dir_times[1].or(dir_times[0]).unwrap_or(0);
    rec.dst.first_ns = dir_times[2].unwrap_or(0);
    rec.dst.last_ns = dir_times[3].or(dir_times[2]).unwrap_or(0);
    let starts = [dir_times[0], dir_times[2]];
    let ends = [rec.src.last_ns, rec.dst.last_ns];
    rec.stime_ns = starts.iter().flatten().copied().min().unwrap_or(0);
    rec.ltime_ns = ends.iter().copied().max().unwrap_or(0).max(rec.stime_ns);
    if rec.proto == 6 && rec.addr_kind != AddrKind::L2 {
        if let Some(st) = tcp_status {
            use tcp_status::*;
            rec.state = state_of_status(st);
            if st & SYN_BITS == 0 {
                rec.flags |= flags::DIR_GUESSED;
            }
            if st & (SRC_ECN | DST_ECN) != 0 {
                rec.flags |= flags::ECN_CE;
            }
            let bits = [
                (SRC_RETRANS, SRC_WINDOW_SHUT, SRC_OUTOFORDER),
                (DST_RETRANS, DST_WINDOW_SHUT, DST_OUTOFORDER),
            ];
            for (s, (rt, ws, oo)) in [&mut rec.src, &mut rec.dst].into_iter().zip(bits) {
                if st & rt != 0 && s.retrans == 0 {
                    s.retrans = 1;
                }
                if st & ws != 0 {
                    s.zero_win = 1;
                }
                if st & oo != 0 {
                    s.out_of_order = 1;
                }
            }
        }
    } else {
        // TCP fields of a non-TCP record (a damaged or foreign writer) are not kept.
        for s in [&mut rec.src, &mut rec.dst] {
            s.tcp_flags = 0;
            s.window = 0;
            s.isn = 0;
            s.last_seq = 0;
            s.last_ack = 0;
            s.retrans = 0;
        }
        rec.tcp_opts = 0;
        rec.synack_ns = 0;
        rec.ackdat_ns = 0;
    }
    if rec.src.frags > 0 || rec.dst.frags > 0 {
        rec.flags |= flags::FRAGMENTS;
    }
    Ok(())
}

/// The flow key DSR.
fn flow_key(d: &[u8], sub: u8, qual: u8, rec: &mut FlowRecord) -> Result<(), String> {
    let reverse = sub & 0x40 != 0;
    let need = |n: usize| {
        if d.len() < n {
            Err(format!(
                "flow key DSR too short ({} bytes, needs {n})",
                d.len()
            ))
        } else {
            Ok(())
        }
    };
    if qual & 0x80 != 0 {
        rec.flags |= flags::FRAGMENTS;
    }
    match (sub & 0x3f, qual & 0x1f) {
        (0x01, 0x01) => {
            need(20)?;
            rec.addr_kind = AddrKind::Ipv4;
            rec.ethertype = 0x0800;
            rec.saddr = Addr::from_v4([d[4], d[5], d[6], d[7]]);
            rec.daddr = Addr::from_v4([d[8], d[9], d[10], d[11]]);
            rec.proto = d[12];
            rec.sport = u16_at(d, 14);
            rec.dport = u16_at(d, 16);
        }
        (0x01, 0x02) => {
            need(44)?;
            rec.addr_kind = AddrKind::Ipv6;
            rec.ethertype = 0x86dd;
            rec.saddr.0.copy_from_slice(&d[4..20]);
            rec.daddr.0.copy_from_slice(&d[20..36]);
            rec.proto = d[36];
            rec.sport = u16_at(d, 40);
            rec.dport = u16_at(d, 42);
        }
        (0x01, 0x03) => {
            need(18)?;
            // Ethernet: destination MAC first. ra does not apply REVERSE to it.
            rec.addr_kind = AddrKind::L2;
            rec.daddr = Addr::from_mac(d[4..10].try_into().expect("6 bytes"));
            rec.saddr = Addr::from_mac(d[10..16].try_into().expect("6 bytes"));
            rec.ethertype = u16_at(d, 16);
            return Ok(());
        }
        (0x06, q @ (0x04 | 0x05)) => {
            // ARP/RARP, keyed by argus on the IP addresses inside: tapflow keys non-IP flows
            // by MAC, so the sender's hardware address (when present) is what is kept.
            rec.addr_kind = AddrKind::L2;
            rec.ethertype = if q == 0x04 { 0x0806 } else { 0x8035 };
            if d.len() >= 26 {
                rec.saddr = Addr::from_mac(d[20..26].try_into().expect("6 bytes"));
            }
            return Ok(());
        }
        (s, q) => {
            return Err(format!(
                "flow key DSR of an unsupported kind (subtype 0x{s:02x}, qualifier 0x{q:02x})"
            ))
        }
    }
    if reverse {
        std::mem::swap(&mut rec.saddr, &mut rec.daddr);
        let icmp = matches!(
            (rec.addr_kind, rec.proto),
            (AddrKind::Ipv4, 1) | (AddrKind::Ipv6, 58)
        );
        if !icmp {
            std::mem::swap(&mut rec.sport, &mut rec.dport);
        }
    }
    Ok(())
}

/// The metric DSR: packets, bytes (and with subtype 0x04 application bytes) per direction,
/// in the width the qualifier says. Values a short DSR lacks read as 0 (argus 3.0.8 writes
/// its 64-bit forms without values).
fn metric(d: &[u8], sub: u8, qual: u8, rec: &mut FlowRecord) {
    let app = sub & 0x04 != 0;
    let per = if app { 3 } else { 2 };
    let (width, dirs): (usize, &[usize]) = match qual & 0x0f {
        0x01 => (1, &[0, 1]),
        0x02 => (2, &[0, 1]),
        0x03 => (4, &[0, 1]),
        0x04 => (8, &[0, 1]),
        0x05 => (1, &[0]),
        0x06 => (2, &[0]),
        0x07 => (4, &[0]),
        0x08 => (8, &[0]),
        0x09 => (1, &[1]),
        0x0a => (2, &[1]),
        0x0b => (4, &[1]),
        0x0c => (8, &[1]),
        _ => return,
    };
    let mut at = 4;
    for &dir in dirs {
        let mut v = [0u64; 3];
        for x in v.iter_mut().take(per) {
            if at + width <= d.len() {
                *x = match width {
                    1 => u64::from(d[at]),
                    2 => u64::from(u16_at(d, at)),
                    4 => u64::from(u32_at(d, at)),
                    _ => u64_at(d, at),
                };
            }
            at += width;
        }
        let s = if dir == 0 { &mut rec.src } else { &mut rec.dst };
        s.pkts = v[0];
        s.bytes = v[1];
        s.app_bytes = v[2];
    }
}

/// One direction block of TCP_PERF (48 bytes).
fn tcp_dir(b: &[u8], s: &mut DirStats) {
    s.isn = u32_at(b, 12);
    s.last_seq = u32_at(b, 16);
    s.last_ack = u32_at(b, 20);
    s.retrans = u32_at(b, 32);
    s.window = u32::from(u16_at(b, 44))
        .checked_shl(u32::from(b[47]))
        .unwrap_or(0);
    s.tcp_flags = b[46];
}

/// Most warnings kept between [`ArgusReader::take_warnings`] calls.
const MAX_WARNINGS: usize = 1000;

/// Reads an Argus 3 file or stream (any `Read`): its flow records as tapflow records.
///
/// Damage is reported as warnings naming the source and byte offset, and reading goes on:
/// a FAR that does not decode is skipped by its length; bytes that are not a record header
/// are skipped up to the next plausible flow record; a record cut short at the end of the
/// input is ignored. `Err` only for I/O errors and, from [`new`](Self::new), an input that
/// is not Argus data.
pub struct ArgusReader<R: Read> {
    inner: R,
    source: String,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Input offset of `buf[0]`.
    base: u64,
    eof: bool,
    done: bool,
    warnings: Vec<String>,
    suppressed: u64,
    suppressed_from: u64,
    srcid: Option<u32>,
}

impl<R: Read> ArgusReader<R> {
    /// Checks the leading management record. A file that starts with a flow record instead
    /// is read with a warning (its MAR was lost; the records are still good).
    pub fn new(inner: R, source: &str) -> Result<Self, RecordError> {
        let mut rd = ArgusReader {
            inner,
            source: source.to_string(),
            buf: vec![0; 256 * 1024],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            done: false,
            warnings: Vec::new(),
            suppressed: 0,
            suppressed_from: 0,
            srcid: None,
        };
        let n = rd.fill(MAR_LEN)?;
        let head = &rd.buf[..n];
        let format = |msg: String| RecordError::Format {
            source: source.to_string(),
            offset: 0,
            message: msg,
        };
        if n >= 16 && is_argus(head) && head[0] & 0xf0 == TYPE_MAR {
            if n < MAR_LEN {
                return Err(format(format!(
                    "Argus management record cut short ({n} of {MAR_LEN} bytes)"
                )));
            }
            rd.srcid = Some(u32_at(head, 120));
            rd.pos = MAR_LEN;
        } else if n >= 16 && plausible_far(head) {
            rd.warn(
                0,
                format_args!(
                    "no Argus management record (MAR) at the start; reading the flow records \
                     anyway"
                ),
            );
        } else {
            let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(format(format!(
                "not an Argus 3 file (starts {})",
                shown.join(" ")
            )));
        }
        Ok(rd)
    }

    /// The source id of the leading START MAR (`ra -s srcid`), if there was one.
    pub fn srcid(&self) -> Option<u32> {
        self.srcid
    }

    /// Warnings collected since the last call, one line each, naming source and offset.
    pub fn take_warnings(&mut self) -> Vec<String> {
        if self.suppressed > 0 {
            let n = std::mem::take(&mut self.suppressed);
            self.warnings.push(format!(
                "{}: offset {}: {n} more warnings suppressed",
                self.source, self.suppressed_from
            ));
        }
        std::mem::take(&mut self.warnings)
    }

    fn warn(&mut self, offset: u64, msg: fmt::Arguments<'_>) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings
                .push(format!("{}: offset {offset}: {msg}", self.source));
        } else {
            if self.suppressed == 0 {
                self.suppressed_from = offset;
            }
            self.suppressed += 1;
        }
    }

    /// Makes up to `n` bytes available at `pos` (fewer only at the end of the input);
    /// returns how many are.
    fn fill(&mut self, n: usize) -> Result<usize, RecordError> {
        if self.end - self.pos >= n {
            return Ok(n);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n && !self.eof {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(RecordError::Io {
                        source: self.source.clone(),
                        err: e,
                    })
                }
            }
        }
        Ok((self.end - self.pos).min(n))
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next flow record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<FlowRecord>, RecordError> {
        let mut rec = FlowRecord::default();
        Ok(self.next_matching(&mut rec, &mut |_| true)?.then_some(rec))
    }

    /// The next flow record that `keep` accepts, decoded into `rec`; `Ok(false)` at the end.
    pub fn next_matching(
        &mut self,
        rec: &mut FlowRecord,
        keep: &mut dyn FnMut(&FlowRecord) -> bool,
    ) -> Result<bool, RecordError> {
        while !self.done {
            let off = self.offset();
            let n = self.fill(4)?;
            if n == 0 {
                self.done = true;
                break;
            }
            if n < 4 {
                self.warn(
                    off,
                    format_args!("partial record header at end of input ({n} bytes), ignored"),
                );
                self.done = true;
                break;
            }
            let h = [
                self.buf[self.pos],
                self.buf[self.pos + 1],
                self.buf[self.pos + 2],
                self.buf[self.pos + 3],
            ];
            let words = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if words == 0 {
                // Zero words between records are padding.
                self.pos += 4;
                continue;
            }
            let kind = h[0] & 0xf0;
            if !matches!(kind, 0x10 | 0x20 | 0x30 | 0x40 | 0x50 | 0x60 | 0x80) {
                self.resync(off, &h)?;
                continue;
            }
            let len = words * 4;
            let got = self.fill(len)?;
            if got < len {
                self.warn(
                    off,
                    format_args!(
                        "record cut short at end of input (its header says {len} bytes, {got} \
                         left), ignored"
                    ),
                );
                self.done = true;
                break;
            }
            let start = self.pos;
            self.pos += len;
            if kind != TYPE_FAR {
                // Management and other record types describe no flow.
                continue;
            }
            match decode_far(&self.buf[start..start + len], rec) {
                Ok(()) => {
                    if keep(rec) {
                        return Ok(true);
                    }
                }
                Err(e) => self.warn(off, format_args!("flow record skipped: {e}")),
            }
        }
        Ok(false)
    }

    /// Bytes at `off` that are not a record header: skips ahead, a word at a time, to the
    /// next plausible flow record (or the end of the input).
    fn resync(&mut self, off: u64, h: &[u8; 4]) -> Result<(), RecordError> {
        let mut skipped = 0u64;
        loop {
            self.pos += 4;
            skipped += 4;
            let n = self.fill(16)?;
            if n < 16 {
                let rest = n as u64;
                self.pos += n;
                self.warn(
                    off,
                    format_args!(
                        "not a record header ({:02x} {:02x} {:02x} {:02x}); no further record \
                         found, skipped {} bytes to end of input",
                        h[0],
                        h[1],
                        h[2],
                        h[3],
                        skipped + rest
                    ),
                );
                self.done = true;
                return Ok(());
            }
            if plausible_far(&self.buf[self.pos..self.pos + 16]) {
                let at = self.offset();
                self.warn(
                    off,
                    format_args!(
                        "not a record header ({:02x} {:02x} {:02x} {:02x}); skipped {skipped} \
                         bytes to the next record at offset {at}",
                        h[0], h[1], h[2], h[3]
                    ),
                );
                return Ok(());
            }
        }
    }
}
