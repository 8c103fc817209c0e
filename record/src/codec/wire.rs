//! The per-record encoding: a varint length prefix, then protobuf-like fields
//! (`varint(tag << 3 | wire_type)` + value). Fields equal to their default are left out;
//! unknown tags are skipped by wire type. See `docs/record-format.md` for the tag table.

use std::fmt;

use super::RecordError;
use crate::model::{
    AddrKind, Cause, DirStats, Encap, FlowRecord, FlowState, Handshake, IbInfo, MergeStatus,
    ProbeStatus,
};

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
/// Not used by format 1.0, but readers skip it so that a later minor may.
const WT_FIXED32: u8 = 5;

// Record tags.
const R_PROBE_ID: u32 = 1;
const R_SEQ: u32 = 2;
const R_CAUSE: u32 = 3;
const R_OBSERVED: u32 = 4;
const R_ADDR_KIND: u32 = 5;
const R_PROTO: u32 = 6;
const R_ETHERTYPE: u32 = 7;
const R_SADDR: u32 = 8;
const R_DADDR: u32 = 9;
const R_SPORT: u32 = 10;
const R_DPORT: u32 = 11;
const R_STIME: u32 = 12;
const R_LTIME: u32 = 13;
const R_SRC: u32 = 14;
const R_DST: u32 = 15;
const R_STATE: u32 = 16;
const R_FLAGS: u32 = 17;
const R_TCP_OPTS: u32 = 18;
const R_SYNACK: u32 = 19;
const R_ACKDAT: u32 = 20;
const R_SMAC: u32 = 21;
const R_DMAC: u32 = 22;
const R_VLAN0: u32 = 23;
const R_VLAN1: u32 = 24;
const R_MPLS0: u32 = 25;
const R_MPLS1: u32 = 26;
const R_ENCAP: u32 = 27;
const R_SRC_PAYLOAD: u32 = 28;
const R_DST_PAYLOAD: u32 = 29;
const R_STATUS: u32 = 30;
const R_HS: u32 = 31;
const R_MERGE: u32 = 32;
const R_IB: u32 = 33;

const RECORD_NAMES: [&str; 34] = [
    "",
    "probe_id",
    "seq",
    "cause",
    "observed",
    "addr_kind",
    "proto",
    "ethertype",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "stime_ns",
    "ltime_ns",
    "src",
    "dst",
    "state",
    "flags",
    "tcp_opts",
    "synack_ns",
    "ackdat_ns",
    "smac",
    "dmac",
    "vlan[0]",
    "vlan[1]",
    "mpls[0]",
    "mpls[1]",
    "encap",
    "src_payload",
    "dst_payload",
    "status",
    "hs",
    "merge",
    "ib",
];

// DirStats tags. What a TCP record usually carries gets 1-byte keys (tags 1..=15); the
// f64 pair and the usually-zero counters come after.
const D_PKTS: u32 = 1;
const D_BYTES: u32 = 2;
const D_IP_BYTES: u32 = 3;
const D_APP_BYTES: u32 = 4;
const D_FIRST: u32 = 5;
const D_LAST: u32 = 6;
const D_TTL_MIN: u32 = 7;
const D_TTL_MAX: u32 = 8;
const D_TCP_FLAGS: u32 = 9;
const D_WINDOW: u32 = 10;
const D_ISN: u32 = 11;
const D_FIRST_SEQ: u32 = 12;
const D_LAST_SEQ: u32 = 13;
const D_LAST_ACK: u32 = 14;
const D_IPT_N: u32 = 15;
const D_IPT_MEAN: u32 = 16;
const D_IPT_STD: u32 = 17;
const D_TOS: u32 = 18;
const D_RETRANS: u32 = 19;
const D_OOO: u32 = 20;
const D_ZERO_WIN: u32 = 21;
const D_LOSS_PKTS: u32 = 22;
const D_LOSS_BYTES: u32 = 23;
const D_FRAGS: u32 = 24;

const DIR_NAMES: [&str; 25] = [
    "",
    "pkts",
    "bytes",
    "ip_bytes",
    "app_bytes",
    "first_ns",
    "last_ns",
    "ttl_min",
    "ttl_max",
    "tcp_flags",
    "window",
    "isn",
    "first_seq",
    "last_seq",
    "last_ack",
    "ipt_n",
    "ipt_mean_ns",
    "ipt_std_ns",
    "tos",
    "retrans",
    "out_of_order",
    "zero_win",
    "loss_pkts",
    "loss_bytes",
    "frags",
];

// ProbeStatus tags.
const S_WORKER: u32 = 1;
const S_FLAGS: u32 = 2;
const S_SEEN: u32 = 3;
const S_DELIVERED: u32 = 4;
const S_RING_DROPS: u32 = 5;
const S_FILTERED: u32 = 6;
const S_PASSED: u32 = 7;
const S_INVALID: u32 = 8;
const S_DECODED: u32 = 9;
const S_MALFORMED: u32 = 10;
const S_FLOWS: u32 = 11;
const S_EVICTIONS: u32 = 12;
const S_QUEUED: u32 = 13;
const S_QDROPPED: u32 = 14;
const S_ACTIVE: u32 = 15;

const STATUS_NAMES: [&str; 16] = [
    "",
    "worker",
    "flags",
    "seen",
    "delivered",
    "ring_drops",
    "filtered",
    "passed",
    "invalid",
    "decoded",
    "malformed",
    "flows_admitted",
    "evictions",
    "records_queued",
    "records_dropped",
    "active_flows",
];

// Handshake tags.
const H_SYN: u32 = 1;
const H_SYNACK: u32 = 2;
const H_ACK: u32 = 3;
const H_SYNACK_ACK: u32 = 4;
const H_ACK_ACK: u32 = 5;

const HS_NAMES: [&str; 6] = ["", "syn_ns", "synack_ns", "ack_ns", "synack_ack", "ack_ack"];

// MergeStatus tags.
const M_PROBE: u32 = 1;
const M_FLAGS: u32 = 2;
const M_IN: u32 = 3;
const M_DUPS: u32 = 4;
const M_GAPS: u32 = 5;
const M_LATE: u32 = 6;
const M_OFFSET: u32 = 7;
const M_OFFSET_ERR: u32 = 8;
const M_PAIRS: u32 = 9;
const M_JOINED: u32 = 10;
const M_ONE_SIDED: u32 = 11;
const M_OUT: u32 = 12;
const M_EVICTIONS: u32 = 13;
const M_ACTIVE: u32 = 14;

const MERGE_NAMES: [&str; 15] = [
    "",
    "probe",
    "flags",
    "records_in",
    "duplicates",
    "gaps",
    "late",
    "offset_ns",
    "offset_err_ns",
    "offset_pairs",
    "joined",
    "one_sided",
    "records_out",
    "evictions",
    "active_flows",
];

// IbInfo tags (format 1.3).
const I_SLID: u32 = 1;
const I_DLID: u32 = 2;
const I_SQP: u32 = 3;
const I_DQP: u32 = 4;
const I_PKEY: u32 = 5;
const I_FLAGS: u32 = 6;
const I_OPCODES: u32 = 7;
const I_NAKS: u32 = 8;
const I_RNR: u32 = 9;

const IB_NAMES: [&str; 10] = [
    "", "slid", "dlid", "sqp", "dqp", "pkey", "flags", "opcodes", "naks", "rnr_naks",
];

// Encap tags.
const E_KINDS: u32 = 1;
const E_TUNNEL_ID: u32 = 2;
const E_OUTER_KIND: u32 = 3;
const E_OUTER_SRC: u32 = 4;
const E_OUTER_DST: u32 = 5;

const ENCAP_NAMES: [&str; 6] = [
    "",
    "kinds",
    "tunnel_id",
    "outer_kind",
    "outer_src",
    "outer_dst",
];

/// Upper bound of an encoded record without its payload fields: 27 fields of at most
/// 2 (key) + 10 (varint) bytes or 2 + 1 + 16 (address), two `DirStats` of 24 fields each
/// and an `Encap` of 5, with their keys and length prefixes, stay well under this.
const FIXED_MAX: usize = 1152;

// ---------------------------------------------------------------------------------------
// Encoding

/// Encoder of the fixed-size part of a record into a stack buffer (no per-byte capacity
/// checks on a `Vec`). Never overflows: see [`FIXED_MAX`].
struct Enc<const N: usize = FIXED_MAX> {
    b: [u8; N],
    n: usize,
}

/// Upper bound of the trailing sub-messages (`status`, `hs`, `merge`, `ib`): at most
/// 15 + 5 + 14 + 8 varint fields of at most 11 bytes, a 34-byte opcode set, plus their keys
/// and lengths.
const STATUS_MAX: usize = 640;

impl<const N: usize> Enc<N> {
    #[inline(always)]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.b[self.n] = v as u8 | 0x80;
            self.n += 1;
            v >>= 7;
        }
        self.b[self.n] = v as u8;
        self.n += 1;
    }

    #[inline(always)]
    fn key(&mut self, tag: u32, wt: u8) {
        self.varint((u64::from(tag) << 3) | u64::from(wt));
    }

    #[inline(always)]
    fn uint(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.key(tag, WT_VARINT);
            self.varint(v);
        }
    }

    #[inline(always)]
    fn fixed64(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.key(tag, WT_FIXED64);
            self.b[self.n..self.n + 8].copy_from_slice(&v.to_le_bytes());
            self.n += 8;
        }
    }

    /// A timestamp as `varint(v - base)` (wrapping), left out when `v` is 0.
    #[inline(always)]
    fn delta(&mut self, tag: u32, v: u64, base: u64) {
        if v != 0 {
            self.key(tag, WT_VARINT);
            self.varint(v.wrapping_sub(base));
        }
    }

    /// A fixed-size byte array (at most 16 bytes) with its trailing zero bytes left out.
    #[inline(always)]
    fn trimmed(&mut self, tag: u32, b: &[u8]) {
        let n = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
        if n > 0 {
            self.key(tag, WT_LEN);
            self.b[self.n] = n as u8;
            self.b[self.n + 1..self.n + 1 + n].copy_from_slice(&b[..n]);
            self.n += 1 + n;
        }
    }

    /// A length-delimited sub-message, left out entirely when its body is empty.
    #[inline(always)]
    fn message(&mut self, tag: u32, body: impl FnOnce(&mut Enc<N>)) {
        self.message_or_empty(tag, false, body)
    }

    /// A sub-message whose presence means something (a status record with every counter
    /// zero is still a status record): with `keep_empty` it is written even when its body is.
    #[inline(always)]
    fn message_or_empty(&mut self, tag: u32, keep_empty: bool, body: impl FnOnce(&mut Enc<N>)) {
        let key_at = self.n;
        self.key(tag, WT_LEN);
        let len_at = self.n;
        self.n += 1;
        body(self);
        let len = self.n - len_at - 1;
        if len == 0 && !keep_empty {
            self.n = key_at;
        } else if len < 0x80 {
            self.b[len_at] = len as u8;
        } else {
            // At most FIXED_MAX: a 2-byte length. Move the body up one byte.
            self.b.copy_within(len_at + 1..self.n, len_at + 2);
            self.b[len_at] = len as u8 | 0x80;
            self.b[len_at + 1] = (len >> 7) as u8;
            self.n += 1;
        }
    }

    fn status(&mut self, s: &ProbeStatus) {
        self.uint(S_WORKER, s.worker.into());
        self.uint(S_FLAGS, s.flags.into());
        self.uint(S_SEEN, s.seen);
        self.uint(S_DELIVERED, s.delivered);
        self.uint(S_RING_DROPS, s.ring_drops);
        self.uint(S_FILTERED, s.filtered);
        self.uint(S_PASSED, s.passed);
        self.uint(S_INVALID, s.invalid);
        self.uint(S_DECODED, s.decoded);
        self.uint(S_MALFORMED, s.malformed);
        self.uint(S_FLOWS, s.flows_admitted);
        self.uint(S_EVICTIONS, s.evictions);
        self.uint(S_QUEUED, s.records_queued);
        self.uint(S_QDROPPED, s.records_dropped);
        self.uint(S_ACTIVE, s.active_flows);
    }

    fn hs(&mut self, h: &Handshake) {
        self.uint(H_SYN, h.syn_ns);
        self.uint(H_SYNACK, h.synack_ns);
        self.uint(H_ACK, h.ack_ns);
        self.uint(H_SYNACK_ACK, h.synack_ack.into());
        self.uint(H_ACK_ACK, h.ack_ack.into());
    }

    fn merge(&mut self, m: &MergeStatus) {
        self.uint(M_PROBE, m.probe.into());
        self.uint(M_FLAGS, m.flags.into());
        self.uint(M_IN, m.records_in);
        self.uint(M_DUPS, m.duplicates);
        self.uint(M_GAPS, m.gaps);
        self.uint(M_LATE, m.late);
        // Zigzag, as protobuf's sint64.
        self.uint(M_OFFSET, ((m.offset_ns << 1) ^ (m.offset_ns >> 63)) as u64);
        self.uint(M_OFFSET_ERR, m.offset_err_ns);
        self.uint(M_PAIRS, m.offset_pairs);
        self.uint(M_JOINED, m.joined);
        self.uint(M_ONE_SIDED, m.one_sided);
        self.uint(M_OUT, m.records_out);
        self.uint(M_EVICTIONS, m.evictions);
        self.uint(M_ACTIVE, m.active_flows);
    }

    fn ib(&mut self, x: &IbInfo) {
        self.uint(I_SLID, x.slid.into());
        self.uint(I_DLID, x.dlid.into());
        self.uint(I_SQP, x.sqp.into());
        self.uint(I_DQP, x.dqp.into());
        self.uint(I_PKEY, x.pkey.into());
        self.uint(I_FLAGS, x.flags.into());
        let ops = x.opcode_bytes();
        let n = ops.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if n > 0 {
            self.key(I_OPCODES, WT_LEN);
            self.b[self.n] = n as u8;
            self.b[self.n + 1..self.n + 1 + n].copy_from_slice(&ops[..n]);
            self.n += 1 + n;
        }
        self.uint(I_NAKS, x.naks.into());
        self.uint(I_RNR, x.rnr_naks.into());
    }

    fn dir(&mut self, d: &DirStats, base: u64) {
        self.uint(D_PKTS, d.pkts);
        self.uint(D_BYTES, d.bytes);
        self.uint(D_IP_BYTES, d.ip_bytes);
        self.uint(D_APP_BYTES, d.app_bytes);
        self.delta(D_FIRST, d.first_ns, base);
        self.delta(D_LAST, d.last_ns, base);
        self.uint(D_TTL_MIN, d.ttl_min.into());
        self.uint(D_TTL_MAX, d.ttl_max.into());
        self.uint(D_TCP_FLAGS, d.tcp_flags.into());
        self.uint(D_WINDOW, d.window.into());
        self.uint(D_ISN, d.isn.into());
        self.uint(D_FIRST_SEQ, d.first_seq.into());
        self.uint(D_LAST_SEQ, d.last_seq.into());
        self.uint(D_LAST_ACK, d.last_ack.into());
        self.uint(D_IPT_N, d.ipt_n.into());
        self.fixed64(D_IPT_MEAN, d.ipt_mean_ns.to_bits());
        self.fixed64(D_IPT_STD, d.ipt_std_ns.to_bits());
        self.uint(D_TOS, d.tos.into());
        self.uint(D_RETRANS, d.retrans.into());
        self.uint(D_OOO, d.out_of_order.into());
        self.uint(D_ZERO_WIN, d.zero_win.into());
        self.uint(D_LOSS_PKTS, d.loss_pkts.into());
        self.uint(D_LOSS_BYTES, d.loss_bytes);
        self.uint(D_FRAGS, d.frags.into());
    }
}

#[inline(always)]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline(always)]
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Encoded size of a length-delimited field (0 when empty, i.e. left out).
#[inline(always)]
fn bytes_field_len(tag: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        varint_len(u64::from(tag) << 3) + varint_len(b.len() as u64) + b.len()
    }
}

#[inline(always)]
fn put_bytes_field(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    if !b.is_empty() {
        put_varint(out, (u64::from(tag) << 3) | u64::from(WT_LEN));
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// Appends the encoding of `rec` (length prefix included) to `out`.
///
/// Allocates nothing beyond growing `out` (at most once per call).
pub fn encode_record(rec: &FlowRecord, out: &mut Vec<u8>) {
    let mut e = Enc {
        b: [0; FIXED_MAX],
        n: 0,
    };
    e.uint(R_PROBE_ID, rec.probe_id.into());
    e.uint(R_SEQ, rec.seq);
    if rec.cause != Cause::default() {
        e.key(R_CAUSE, WT_VARINT);
        e.varint(rec.cause as u64);
    }
    e.uint(R_OBSERVED, rec.observed.into());
    e.uint(R_ADDR_KIND, rec.addr_kind as u64);
    e.uint(R_PROTO, rec.proto.into());
    e.uint(R_ETHERTYPE, rec.ethertype.into());
    e.trimmed(R_SADDR, &rec.saddr.0);
    e.trimmed(R_DADDR, &rec.daddr.0);
    e.uint(R_SPORT, rec.sport.into());
    e.uint(R_DPORT, rec.dport.into());
    let base = rec.stime_ns;
    e.fixed64(R_STIME, base);
    e.delta(R_LTIME, rec.ltime_ns, base);
    e.message(R_SRC, |e| e.dir(&rec.src, base));
    e.message(R_DST, |e| e.dir(&rec.dst, base));
    e.uint(R_STATE, rec.state as u64);
    e.uint(R_FLAGS, rec.flags.into());
    e.uint(R_TCP_OPTS, rec.tcp_opts.into());
    e.uint(R_SYNACK, rec.synack_ns);
    e.uint(R_ACKDAT, rec.ackdat_ns);
    e.trimmed(R_SMAC, &rec.smac);
    e.trimmed(R_DMAC, &rec.dmac);
    e.uint(R_VLAN0, rec.vlan[0].into());
    e.uint(R_VLAN1, rec.vlan[1].into());
    e.uint(R_MPLS0, rec.mpls[0].into());
    e.uint(R_MPLS1, rec.mpls[1].into());
    let x = &rec.encap;
    e.message(R_ENCAP, |e| {
        e.uint(E_KINDS, x.kinds.into());
        e.uint(E_TUNNEL_ID, x.tunnel_id.into());
        e.uint(E_OUTER_KIND, x.outer_kind as u64);
        e.trimmed(E_OUTER_SRC, &x.outer_src.0);
        e.trimmed(E_OUTER_DST, &x.outer_dst.0);
    });

    // The status sub-message (probe-status records only) comes last, after the payloads,
    // to keep ascending tag order.
    let mut st = Enc {
        b: [0; STATUS_MAX],
        n: 0,
    };
    if let Some(x) = &rec.status {
        st.message_or_empty(R_STATUS, true, |e| e.status(x));
    }
    if !rec.hs.is_empty() {
        st.message(R_HS, |e| e.hs(&rec.hs));
    }
    if let Some(x) = &rec.merge {
        st.message_or_empty(R_MERGE, true, |e| e.merge(x));
    }
    if !rec.ib.is_empty() {
        st.message(R_IB, |e| e.ib(&rec.ib));
    }
    let body = e.n
        + bytes_field_len(R_SRC_PAYLOAD, &rec.src_payload)
        + bytes_field_len(R_DST_PAYLOAD, &rec.dst_payload)
        + st.n;
    out.reserve(varint_len(body as u64) + body);
    put_varint(out, body as u64);
    out.extend_from_slice(&e.b[..e.n]);
    put_bytes_field(out, R_SRC_PAYLOAD, &rec.src_payload);
    put_bytes_field(out, R_DST_PAYLOAD, &rec.dst_payload);
    out.extend_from_slice(&st.b[..st.n]);
}

// ---------------------------------------------------------------------------------------
// Decoding

/// Where a decoding error was found: the record itself or one of its sub-messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Msg {
    Record,
    Src,
    Dst,
    Encap,
    Status,
    Hs,
    Merge,
    Ib,
}

impl Msg {
    fn field_name(self, tag: u32) -> String {
        let (prefix, names): (&str, &[&str]) = match self {
            Msg::Record => ("", &RECORD_NAMES),
            Msg::Src => ("src.", &DIR_NAMES),
            Msg::Dst => ("dst.", &DIR_NAMES),
            Msg::Encap => ("encap.", &ENCAP_NAMES),
            Msg::Status => ("status.", &STATUS_NAMES),
            Msg::Hs => ("hs.", &HS_NAMES),
            Msg::Merge => ("merge.", &MERGE_NAMES),
            Msg::Ib => ("ib.", &IB_NAMES),
        };
        match names.get(tag as usize) {
            Some(n) if !n.is_empty() => format!("field {prefix}{n} (tag {tag})"),
            _ => format!("field {prefix}tag {tag}"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum ErrKind {
    Truncated,
    VarintOverflow,
    RecordLength(u64, usize),
    FieldLength(u32, u64),
    ZeroTag,
    BadWireType(u32, u8),
    WireTypeMismatch(u32, u8),
    OutOfRange(u32, u64),
    TooLong(u32, usize, usize),
}

/// A record that could not be decoded: what and where (byte offset in the decoded buffer).
#[derive(Clone, Debug)]
pub(crate) struct DecodeError {
    pub at: usize,
    msg: Msg,
    kind: ErrKind,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |t: u32| self.msg.field_name(t);
        match &self.kind {
            ErrKind::Truncated => write!(f, "record data ends inside a field"),
            ErrKind::VarintOverflow => write!(f, "varint longer than 64 bits"),
            ErrKind::RecordLength(len, avail) => write!(
                f,
                "record length {len} exceeds the {avail} bytes of data that follow"
            ),
            ErrKind::FieldLength(tag, len) => {
                write!(
                    f,
                    "{} has length {len}, past the end of its message",
                    field(*tag)
                )
            }
            ErrKind::ZeroTag => write!(f, "field tag 0"),
            ErrKind::BadWireType(tag, wt) => {
                write!(f, "{} has unsupported wire type {wt}", field(*tag))
            }
            ErrKind::WireTypeMismatch(tag, wt) => {
                write!(f, "{} has wrong wire type {wt}", field(*tag))
            }
            ErrKind::OutOfRange(tag, v) => write!(f, "{} value {v} out of range", field(*tag)),
            ErrKind::TooLong(tag, len, max) => {
                write!(
                    f,
                    "{} is {len} bytes long, at most {max} allowed",
                    field(*tag)
                )
            }
        }
    }
}

/// Decoding result; the error is boxed so that results stay two words (in registers).
type DResult<T> = Result<T, Box<DecodeError>>;

/// A cursor over `b[p..]`; positions stay relative to the start of the record buffer so
/// errors carry useful offsets. `b` ends where the current message ends.
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
    msg: Msg,
}

impl<'a> Cur<'a> {
    #[cold]
    #[inline(never)]
    fn err(&self, at: usize, kind: ErrKind) -> Box<DecodeError> {
        Box::new(DecodeError {
            at,
            msg: self.msg,
            kind,
        })
    }

    #[inline(always)]
    fn varint(&mut self) -> DResult<u64> {
        let b = self.b;
        let p = self.p;
        if let Some(&c) = b.get(p) {
            if c < 0x80 {
                self.p = p + 1;
                return Ok(u64::from(c));
            }
        }
        // Fast path: 10 bytes available, no bounds checks per byte.
        if let Some(s) = b.get(p..p + 10) {
            if let Ok(s) = <&[u8; 10]>::try_from(s) {
                let mut v = u64::from(s[0] & 0x7f);
                for (i, &c) in s.iter().enumerate().skip(1) {
                    v |= u64::from(c & 0x7f) << (7 * i);
                    if c < 0x80 {
                        if i == 9 && c > 1 {
                            break;
                        }
                        self.p = p + i + 1;
                        return Ok(v);
                    }
                }
                return Err(self.err(p, ErrKind::VarintOverflow));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> DResult<u64> {
        let b = self.b;
        let start = self.p;
        let mut p = start;
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&c) = b.get(p) else {
                return Err(self.err(start, ErrKind::Truncated));
            };
            p += 1;
            if shift == 63 && c > 1 {
                return Err(self.err(start, ErrKind::VarintOverflow));
            }
            v |= u64::from(c & 0x7f) << shift;
            if c < 0x80 {
                self.p = p;
                return Ok(v);
            }
            shift += 7;
        }
    }

    #[inline(always)]
    fn fixed64(&mut self) -> DResult<u64> {
        let p = self.p;
        match self
            .b
            .get(p..p + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        {
            Some(a) => {
                self.p = p + 8;
                Ok(u64::from_le_bytes(a))
            }
            None => Err(self.err(p, ErrKind::Truncated)),
        }
    }

    /// A length prefix and the bytes it covers.
    #[inline(always)]
    fn bytes(&mut self, tag: u32) -> DResult<&'a [u8]> {
        let at = self.p;
        let len = self.varint()?;
        let rest = &self.b[self.p..];
        if len > rest.len() as u64 {
            return Err(self.err(at, ErrKind::FieldLength(tag, len)));
        }
        self.p += len as usize;
        Ok(&rest[..len as usize])
    }

    /// A varint that must fit in `max`.
    #[inline(always)]
    fn uint(&mut self, tag: u32, max: u64) -> DResult<u64> {
        let at = self.p;
        let v = self.varint()?;
        if v > max {
            return Err(self.err(at, ErrKind::OutOfRange(tag, v)));
        }
        Ok(v)
    }

    #[inline(always)]
    fn u8(&mut self, tag: u32) -> DResult<u8> {
        self.uint(tag, u8::MAX.into()).map(|v| v as u8)
    }
    #[inline(always)]
    fn u16(&mut self, tag: u32) -> DResult<u16> {
        self.uint(tag, u16::MAX.into()).map(|v| v as u16)
    }
    #[inline(always)]
    fn u32(&mut self, tag: u32) -> DResult<u32> {
        self.uint(tag, u32::MAX.into()).map(|v| v as u32)
    }

    /// An enum value: `None` when it is not one this reader knows (the field then keeps
    /// its previous value).
    #[inline(always)]
    fn enum_u8(&mut self) -> DResult<Option<u8>> {
        let v = self.varint()?;
        Ok(u8::try_from(v).ok())
    }

    /// A fixed-size byte array sent with its trailing zeros left out, written straight into
    /// its destination (no temporary: the variable-length copy would stall store forwarding).
    #[inline(always)]
    fn trimmed_into<const N: usize>(&mut self, tag: u32, dst: &mut [u8; N]) -> DResult<()> {
        let at = self.p;
        let s = self.bytes(tag)?;
        if s.len() > N {
            return Err(self.err(at, ErrKind::TooLong(tag, s.len(), N)));
        }
        dst.fill(0);
        dst[..s.len()].copy_from_slice(s);
        Ok(())
    }

    /// Skips the value of an unknown field.
    #[inline(never)]
    fn skip(&mut self, tag: u32, wt: u8, key_at: usize) -> DResult<()> {
        match wt {
            WT_VARINT => self.varint().map(|_| ()),
            WT_FIXED64 => self.fixed64().map(|_| ()),
            WT_LEN => self.bytes(tag).map(|_| ()),
            WT_FIXED32 => {
                if self.b.len() - self.p < 4 {
                    return Err(self.err(self.p, ErrKind::Truncated));
                }
                self.p += 4;
                Ok(())
            }
            _ => Err(self.err(key_at, ErrKind::BadWireType(tag, wt))),
        }
    }

    /// Reads a key: (tag, wire type, offset of the key).
    #[inline(always)]
    fn key(&mut self) -> DResult<(u32, u8, usize)> {
        let at = self.p;
        let k = self.varint()?;
        let tag = k >> 3;
        if tag == 0 {
            return Err(self.err(at, ErrKind::ZeroTag));
        }
        // Tags beyond u32 are unknown by definition; clamp so they stay unknown.
        Ok((u32::try_from(tag).unwrap_or(u32::MAX), (k & 7) as u8, at))
    }

    /// Consumes the key of field `tag` with wire type `wt` if it comes next (the decoders'
    /// fast path: fields in the order the encoder writes them).
    #[inline(always)]
    fn take(&mut self, tag: u32, wt: u8) -> bool {
        let key = (tag << 3) | u32::from(wt);
        debug_assert!(key < 1 << 14);
        if key < 0x80 {
            if self.b.get(self.p) == Some(&(key as u8)) {
                self.p += 1;
                return true;
            }
        } else if self.b.get(self.p..self.p + 2) == Some(&[key as u8 | 0x80, (key >> 7) as u8]) {
            self.p += 2;
            return true;
        }
        false
    }

    /// Checks the wire type of a known field.
    #[inline(always)]
    fn want(&self, wt: u8, expected: u8, tag: u32, key_at: usize) -> DResult<()> {
        if wt != expected {
            return Err(self.err(key_at, ErrKind::WireTypeMismatch(tag, wt)));
        }
        Ok(())
    }

    /// A sub-message: a cursor over its bytes (this cursor moves past them).
    #[inline(always)]
    fn sub(&mut self, tag: u32, msg: Msg) -> DResult<Cur<'a>> {
        let at = self.p;
        let len = self.varint()?;
        let avail = self.b.len() - self.p;
        if len > avail as u64 {
            return Err(self.err(at, ErrKind::FieldLength(tag, len)));
        }
        let start = self.p;
        self.p += len as usize;
        Ok(Cur {
            b: &self.b[..self.p],
            p: start,
            msg,
        })
    }
}

// Presence bits of the delta-encoded timestamps, resolved once the record's stime is known.
const P_LTIME: u8 = 1;
const P_SRC_FIRST: u8 = 2;
const P_SRC_LAST: u8 = 4;
const P_DST_FIRST: u8 = 8;
const P_DST_LAST: u8 = 16;

#[inline(always)]
fn decode_dir(
    mut c: Cur<'_>,
    d: &mut DirStats,
    present: &mut u8,
    p_first: u8,
    p_last: u8,
) -> DResult<()> {
    // Fast path: the fields in encoder order, each one predictable branch.
    if c.take(D_PKTS, WT_VARINT) {
        d.pkts = c.varint()?;
    }
    if c.take(D_BYTES, WT_VARINT) {
        d.bytes = c.varint()?;
    }
    if c.take(D_IP_BYTES, WT_VARINT) {
        d.ip_bytes = c.varint()?;
    }
    if c.take(D_APP_BYTES, WT_VARINT) {
        d.app_bytes = c.varint()?;
    }
    if c.take(D_FIRST, WT_VARINT) {
        d.first_ns = c.varint()?;
        *present |= p_first;
    }
    if c.take(D_LAST, WT_VARINT) {
        d.last_ns = c.varint()?;
        *present |= p_last;
    }
    if c.take(D_TTL_MIN, WT_VARINT) {
        d.ttl_min = c.u8(D_TTL_MIN)?;
    }
    if c.take(D_TTL_MAX, WT_VARINT) {
        d.ttl_max = c.u8(D_TTL_MAX)?;
    }
    if c.take(D_TCP_FLAGS, WT_VARINT) {
        d.tcp_flags = c.u8(D_TCP_FLAGS)?;
    }
    if c.take(D_WINDOW, WT_VARINT) {
        d.window = c.u32(D_WINDOW)?;
    }
    if c.take(D_ISN, WT_VARINT) {
        d.isn = c.u32(D_ISN)?;
    }
    if c.take(D_FIRST_SEQ, WT_VARINT) {
        d.first_seq = c.u32(D_FIRST_SEQ)?;
    }
    if c.take(D_LAST_SEQ, WT_VARINT) {
        d.last_seq = c.u32(D_LAST_SEQ)?;
    }
    if c.take(D_LAST_ACK, WT_VARINT) {
        d.last_ack = c.u32(D_LAST_ACK)?;
    }
    if c.take(D_IPT_N, WT_VARINT) {
        d.ipt_n = c.u32(D_IPT_N)?;
    }
    if c.take(D_IPT_MEAN, WT_FIXED64) {
        d.ipt_mean_ns = f64::from_bits(c.fixed64()?);
    }
    if c.take(D_IPT_STD, WT_FIXED64) {
        d.ipt_std_ns = f64::from_bits(c.fixed64()?);
    }
    if c.take(D_TOS, WT_VARINT) {
        d.tos = c.u8(D_TOS)?;
    }
    if c.take(D_RETRANS, WT_VARINT) {
        d.retrans = c.u32(D_RETRANS)?;
    }
    if c.take(D_OOO, WT_VARINT) {
        d.out_of_order = c.u32(D_OOO)?;
    }
    if c.take(D_ZERO_WIN, WT_VARINT) {
        d.zero_win = c.u32(D_ZERO_WIN)?;
    }
    if c.take(D_LOSS_PKTS, WT_VARINT) {
        d.loss_pkts = c.u32(D_LOSS_PKTS)?;
    }
    if c.take(D_LOSS_BYTES, WT_VARINT) {
        d.loss_bytes = c.varint()?;
    }
    if c.take(D_FRAGS, WT_VARINT) {
        d.frags = c.u32(D_FRAGS)?;
    }
    if c.p == c.b.len() {
        return Ok(());
    }
    decode_dir_general(c, d, present, p_first, p_last)
}

/// Any field order, unknown fields: the general loop.
#[inline(never)]
fn decode_dir_general(
    mut c: Cur<'_>,
    d: &mut DirStats,
    present: &mut u8,
    p_first: u8,
    p_last: u8,
) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        let expect = match tag {
            D_IPT_MEAN | D_IPT_STD => WT_FIXED64,
            1..=24 => WT_VARINT,
            _ => {
                c.skip(tag, wt, key_at)?;
                continue;
            }
        };
        c.want(wt, expect, tag, key_at)?;
        match tag {
            D_PKTS => d.pkts = c.varint()?,
            D_BYTES => d.bytes = c.varint()?,
            D_IP_BYTES => d.ip_bytes = c.varint()?,
            D_APP_BYTES => d.app_bytes = c.varint()?,
            D_FIRST => {
                d.first_ns = c.varint()?;
                *present |= p_first;
            }
            D_LAST => {
                d.last_ns = c.varint()?;
                *present |= p_last;
            }
            D_TTL_MIN => d.ttl_min = c.u8(tag)?,
            D_TTL_MAX => d.ttl_max = c.u8(tag)?,
            D_TOS => d.tos = c.u8(tag)?,
            D_TCP_FLAGS => d.tcp_flags = c.u8(tag)?,
            D_RETRANS => d.retrans = c.u32(tag)?,
            D_OOO => d.out_of_order = c.u32(tag)?,
            D_ZERO_WIN => d.zero_win = c.u32(tag)?,
            D_LOSS_PKTS => d.loss_pkts = c.u32(tag)?,
            D_LOSS_BYTES => d.loss_bytes = c.varint()?,
            D_WINDOW => d.window = c.u32(tag)?,
            D_ISN => d.isn = c.u32(tag)?,
            D_FIRST_SEQ => d.first_seq = c.u32(tag)?,
            D_LAST_SEQ => d.last_seq = c.u32(tag)?,
            D_LAST_ACK => d.last_ack = c.u32(tag)?,
            D_IPT_N => d.ipt_n = c.u32(tag)?,
            D_IPT_MEAN => d.ipt_mean_ns = f64::from_bits(c.fixed64()?),
            D_IPT_STD => d.ipt_std_ns = f64::from_bits(c.fixed64()?),
            _ => d.frags = c.u32(tag)?, // D_FRAGS, the only tag left in 1..=24
        }
    }
    Ok(())
}

fn decode_encap(mut c: Cur<'_>, e: &mut Encap) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        match tag {
            E_KINDS => {
                c.want(wt, WT_VARINT, tag, key_at)?;
                e.kinds = c.u16(tag)?;
            }
            E_TUNNEL_ID => {
                c.want(wt, WT_VARINT, tag, key_at)?;
                e.tunnel_id = c.u32(tag)?;
            }
            E_OUTER_KIND => {
                c.want(wt, WT_VARINT, tag, key_at)?;
                if let Some(k) = c.enum_u8()?.and_then(AddrKind::from_u8) {
                    e.outer_kind = k;
                }
            }
            E_OUTER_SRC => {
                c.want(wt, WT_LEN, tag, key_at)?;
                c.trimmed_into(tag, &mut e.outer_src.0)?;
            }
            E_OUTER_DST => {
                c.want(wt, WT_LEN, tag, key_at)?;
                c.trimmed_into(tag, &mut e.outer_dst.0)?;
            }
            _ => c.skip(tag, wt, key_at)?,
        }
    }
    Ok(())
}

fn decode_status(mut c: Cur<'_>, s: &mut ProbeStatus) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        if !(S_WORKER..=S_ACTIVE).contains(&tag) {
            c.skip(tag, wt, key_at)?;
            continue;
        }
        c.want(wt, WT_VARINT, tag, key_at)?;
        match tag {
            S_WORKER => s.worker = c.u32(tag)?,
            S_FLAGS => s.flags = c.u32(tag)?,
            S_SEEN => s.seen = c.varint()?,
            S_DELIVERED => s.delivered = c.varint()?,
            S_RING_DROPS => s.ring_drops = c.varint()?,
            S_FILTERED => s.filtered = c.varint()?,
            S_PASSED => s.passed = c.varint()?,
            S_INVALID => s.invalid = c.varint()?,
            S_DECODED => s.decoded = c.varint()?,
            S_MALFORMED => s.malformed = c.varint()?,
            S_FLOWS => s.flows_admitted = c.varint()?,
            S_EVICTIONS => s.evictions = c.varint()?,
            S_QUEUED => s.records_queued = c.varint()?,
            S_QDROPPED => s.records_dropped = c.varint()?,
            _ => s.active_flows = c.varint()?, // S_ACTIVE
        }
    }
    Ok(())
}

fn decode_hs(mut c: Cur<'_>, h: &mut Handshake) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        if !(H_SYN..=H_ACK_ACK).contains(&tag) {
            c.skip(tag, wt, key_at)?;
            continue;
        }
        c.want(wt, WT_VARINT, tag, key_at)?;
        match tag {
            H_SYN => h.syn_ns = c.varint()?,
            H_SYNACK => h.synack_ns = c.varint()?,
            H_ACK => h.ack_ns = c.varint()?,
            H_SYNACK_ACK => h.synack_ack = c.u32(tag)?,
            _ => h.ack_ack = c.u32(tag)?, // H_ACK_ACK
        }
    }
    Ok(())
}

fn decode_merge(mut c: Cur<'_>, m: &mut MergeStatus) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        if !(M_PROBE..=M_ACTIVE).contains(&tag) {
            c.skip(tag, wt, key_at)?;
            continue;
        }
        c.want(wt, WT_VARINT, tag, key_at)?;
        match tag {
            M_PROBE => m.probe = c.u32(tag)?,
            M_FLAGS => m.flags = c.u32(tag)?,
            M_IN => m.records_in = c.varint()?,
            M_DUPS => m.duplicates = c.varint()?,
            M_GAPS => m.gaps = c.varint()?,
            M_LATE => m.late = c.varint()?,
            M_OFFSET => {
                let z = c.varint()?;
                m.offset_ns = ((z >> 1) as i64) ^ -((z & 1) as i64);
            }
            M_OFFSET_ERR => m.offset_err_ns = c.varint()?,
            M_PAIRS => m.offset_pairs = c.varint()?,
            M_JOINED => m.joined = c.varint()?,
            M_ONE_SIDED => m.one_sided = c.varint()?,
            M_OUT => m.records_out = c.varint()?,
            M_EVICTIONS => m.evictions = c.varint()?,
            _ => m.active_flows = c.varint()?, // M_ACTIVE
        }
    }
    Ok(())
}

fn decode_ib(mut c: Cur<'_>, x: &mut IbInfo) -> DResult<()> {
    while c.p < c.b.len() {
        let (tag, wt, key_at) = c.key()?;
        if !(I_SLID..=I_RNR).contains(&tag) {
            c.skip(tag, wt, key_at)?;
            continue;
        }
        if tag == I_OPCODES {
            c.want(wt, WT_LEN, tag, key_at)?;
            let mut b = [0u8; 32];
            c.trimmed_into(tag, &mut b)?;
            x.set_opcode_bytes(&b);
            continue;
        }
        c.want(wt, WT_VARINT, tag, key_at)?;
        match tag {
            I_SLID => x.slid = c.u16(tag)?,
            I_DLID => x.dlid = c.u16(tag)?,
            I_SQP => x.sqp = c.u32(tag)?,
            I_DQP => x.dqp = c.u32(tag)?,
            I_PKEY => x.pkey = c.u16(tag)?,
            I_FLAGS => x.flags = c.u8(tag)?,
            I_NAKS => x.naks = c.u32(tag)?,
            _ => x.rnr_naks = c.u32(tag)?, // I_RNR
        }
    }
    Ok(())
}

/// Wire type of each known record tag (index = tag).
const RECORD_WIRE: [u8; 34] = {
    let mut w = [WT_VARINT; 34];
    w[R_SADDR as usize] = WT_LEN;
    w[R_DADDR as usize] = WT_LEN;
    w[R_STIME as usize] = WT_FIXED64;
    w[R_SRC as usize] = WT_LEN;
    w[R_DST as usize] = WT_LEN;
    w[R_SMAC as usize] = WT_LEN;
    w[R_DMAC as usize] = WT_LEN;
    w[R_ENCAP as usize] = WT_LEN;
    w[R_SRC_PAYLOAD as usize] = WT_LEN;
    w[R_DST_PAYLOAD as usize] = WT_LEN;
    w[R_STATUS as usize] = WT_LEN;
    w[R_HS as usize] = WT_LEN;
    w[R_MERGE as usize] = WT_LEN;
    w[R_IB as usize] = WT_LEN;
    w
};

/// Any field order, unknown fields, encap and payloads: the general loop.
#[inline(never)]
fn decode_record_general(mut c: Cur<'_>, rec: &mut FlowRecord, present: &mut u8) -> DResult<()> {
    let end = c.b.len();
    while c.p < end {
        let (tag, wt, key_at) = c.key()?;
        match RECORD_WIRE.get(tag as usize) {
            Some(&expect) if tag != 0 => c.want(wt, expect, tag, key_at)?,
            _ => {
                c.skip(tag, wt, key_at)?;
                continue;
            }
        }
        match tag {
            R_PROBE_ID => rec.probe_id = c.u32(tag)?,
            R_SEQ => rec.seq = c.varint()?,
            R_CAUSE => {
                if let Some(v) = c.enum_u8()?.and_then(Cause::from_u8) {
                    rec.cause = v;
                }
            }
            R_OBSERVED => rec.observed = c.u8(tag)?,
            R_ADDR_KIND => {
                if let Some(v) = c.enum_u8()?.and_then(AddrKind::from_u8) {
                    rec.addr_kind = v;
                }
            }
            R_PROTO => rec.proto = c.u8(tag)?,
            R_ETHERTYPE => rec.ethertype = c.u16(tag)?,
            R_SADDR => c.trimmed_into(tag, &mut rec.saddr.0)?,
            R_DADDR => c.trimmed_into(tag, &mut rec.daddr.0)?,
            R_SPORT => rec.sport = c.u16(tag)?,
            R_DPORT => rec.dport = c.u16(tag)?,
            R_STIME => rec.stime_ns = c.fixed64()?,
            R_LTIME => {
                rec.ltime_ns = c.varint()?;
                *present |= P_LTIME;
            }
            R_SRC => {
                let sub = c.sub(tag, Msg::Src)?;
                decode_dir(sub, &mut rec.src, present, P_SRC_FIRST, P_SRC_LAST)?;
            }
            R_DST => {
                let sub = c.sub(tag, Msg::Dst)?;
                decode_dir(sub, &mut rec.dst, present, P_DST_FIRST, P_DST_LAST)?;
            }
            R_STATE => {
                if let Some(v) = c.enum_u8()?.and_then(FlowState::from_u8) {
                    rec.state = v;
                }
            }
            R_FLAGS => rec.flags = c.u32(tag)?,
            R_TCP_OPTS => rec.tcp_opts = c.u8(tag)?,
            R_SYNACK => rec.synack_ns = c.varint()?,
            R_ACKDAT => rec.ackdat_ns = c.varint()?,
            R_SMAC => c.trimmed_into(tag, &mut rec.smac)?,
            R_DMAC => c.trimmed_into(tag, &mut rec.dmac)?,
            R_VLAN0 => rec.vlan[0] = c.u16(tag)?,
            R_VLAN1 => rec.vlan[1] = c.u16(tag)?,
            R_MPLS0 => rec.mpls[0] = c.u32(tag)?,
            R_MPLS1 => rec.mpls[1] = c.u32(tag)?,
            R_ENCAP => {
                let sub = c.sub(tag, Msg::Encap)?;
                decode_encap(sub, &mut rec.encap)?;
            }
            R_SRC_PAYLOAD => {
                let s = c.bytes(tag)?;
                rec.src_payload.clear();
                rec.src_payload.extend_from_slice(s);
            }
            R_STATUS => {
                let sub = c.sub(tag, Msg::Status)?;
                let st = rec.status.get_or_insert_with(Default::default);
                decode_status(sub, st)?;
            }
            R_HS => {
                let sub = c.sub(tag, Msg::Hs)?;
                decode_hs(sub, &mut rec.hs)?;
            }
            R_MERGE => {
                let sub = c.sub(tag, Msg::Merge)?;
                let m = rec.merge.get_or_insert_with(Default::default);
                decode_merge(sub, m)?;
            }
            R_IB => {
                let sub = c.sub(tag, Msg::Ib)?;
                decode_ib(sub, &mut rec.ib)?;
            }
            _ => {
                // R_DST_PAYLOAD, the only tag left in 1..=33
                let s = c.bytes(tag)?;
                rec.dst_payload.clear();
                rec.dst_payload.extend_from_slice(s);
            }
        }
    }

    Ok(())
}

/// Decodes one record (length prefix included) from the start of `buf`.
pub(crate) fn decode_raw(buf: &[u8]) -> DResult<(FlowRecord, usize)> {
    let mut rec = FlowRecord::default();
    let n = decode_raw_into(buf, &mut rec, false)?;
    Ok((rec, n))
}

/// Decodes one record into `rec` (reset to the default first: its allocations are reused)
/// and returns the bytes it took. `skim` leaves the per-direction statistics (`src`, `dst`:
/// most of a record's bytes) at their defaults, for a first look by a filter that does not
/// need them.
pub(crate) fn decode_raw_into(buf: &[u8], rec: &mut FlowRecord, skim: bool) -> DResult<usize> {
    rec.reset();
    let mut c = Cur {
        b: buf,
        p: 0,
        msg: Msg::Record,
    };
    let len = c.varint()?;
    let avail = buf.len() - c.p;
    if len > avail as u64 {
        return Err(c.err(0, ErrKind::RecordLength(len, avail)));
    }
    let end = c.p + len as usize;
    c.b = &buf[..end];

    let mut present = 0u8;
    // Fast path: the fields in encoder order, each one predictable branch.
    if c.take(R_PROBE_ID, WT_VARINT) {
        rec.probe_id = c.u32(R_PROBE_ID)?;
    }
    if c.take(R_SEQ, WT_VARINT) {
        rec.seq = c.varint()?;
    }
    if c.take(R_CAUSE, WT_VARINT) {
        if let Some(v) = c.enum_u8()?.and_then(Cause::from_u8) {
            rec.cause = v;
        }
    }
    if c.take(R_OBSERVED, WT_VARINT) {
        rec.observed = c.u8(R_OBSERVED)?;
    }
    if c.take(R_ADDR_KIND, WT_VARINT) {
        if let Some(v) = c.enum_u8()?.and_then(AddrKind::from_u8) {
            rec.addr_kind = v;
        }
    }
    if c.take(R_PROTO, WT_VARINT) {
        rec.proto = c.u8(R_PROTO)?;
    }
    if c.take(R_ETHERTYPE, WT_VARINT) {
        rec.ethertype = c.u16(R_ETHERTYPE)?;
    }
    if c.take(R_SADDR, WT_LEN) {
        c.trimmed_into(R_SADDR, &mut rec.saddr.0)?;
    }
    if c.take(R_DADDR, WT_LEN) {
        c.trimmed_into(R_DADDR, &mut rec.daddr.0)?;
    }
    if c.take(R_SPORT, WT_VARINT) {
        rec.sport = c.u16(R_SPORT)?;
    }
    if c.take(R_DPORT, WT_VARINT) {
        rec.dport = c.u16(R_DPORT)?;
    }
    if c.take(R_STIME, WT_FIXED64) {
        rec.stime_ns = c.fixed64()?;
    }
    if c.take(R_LTIME, WT_VARINT) {
        rec.ltime_ns = c.varint()?;
        present |= P_LTIME;
    }
    if c.take(R_SRC, WT_LEN) {
        let sub = c.sub(R_SRC, Msg::Src)?;
        if !skim {
            decode_dir(sub, &mut rec.src, &mut present, P_SRC_FIRST, P_SRC_LAST)?;
        }
    }
    if c.take(R_DST, WT_LEN) {
        let sub = c.sub(R_DST, Msg::Dst)?;
        if !skim {
            decode_dir(sub, &mut rec.dst, &mut present, P_DST_FIRST, P_DST_LAST)?;
        }
    }
    if c.take(R_STATE, WT_VARINT) {
        if let Some(v) = c.enum_u8()?.and_then(FlowState::from_u8) {
            rec.state = v;
        }
    }
    if c.take(R_FLAGS, WT_VARINT) {
        rec.flags = c.u32(R_FLAGS)?;
    }
    if c.take(R_TCP_OPTS, WT_VARINT) {
        rec.tcp_opts = c.u8(R_TCP_OPTS)?;
    }
    if c.take(R_SYNACK, WT_VARINT) {
        rec.synack_ns = c.varint()?;
    }
    if c.take(R_ACKDAT, WT_VARINT) {
        rec.ackdat_ns = c.varint()?;
    }
    if c.take(R_SMAC, WT_LEN) {
        c.trimmed_into(R_SMAC, &mut rec.smac)?;
    }
    if c.take(R_DMAC, WT_LEN) {
        c.trimmed_into(R_DMAC, &mut rec.dmac)?;
    }
    if c.take(R_VLAN0, WT_VARINT) {
        rec.vlan[0] = c.u16(R_VLAN0)?;
    }
    if c.take(R_VLAN1, WT_VARINT) {
        rec.vlan[1] = c.u16(R_VLAN1)?;
    }
    if c.take(R_MPLS0, WT_VARINT) {
        rec.mpls[0] = c.u32(R_MPLS0)?;
    }
    if c.take(R_MPLS1, WT_VARINT) {
        rec.mpls[1] = c.u32(R_MPLS1)?;
    }
    if c.p < end {
        decode_record_general(c, rec, &mut present)?;
    }

    if present != 0 {
        let base = rec.stime_ns;
        let fix = |v: &mut u64, bit: u8| {
            if present & bit != 0 {
                *v = base.wrapping_add(*v);
            }
        };
        fix(&mut rec.ltime_ns, P_LTIME);
        fix(&mut rec.src.first_ns, P_SRC_FIRST);
        fix(&mut rec.src.last_ns, P_SRC_LAST);
        fix(&mut rec.dst.first_ns, P_DST_FIRST);
        fix(&mut rec.dst.last_ns, P_DST_LAST);
    }
    Ok(end)
}

/// Length (prefix included) of the record at the start of `buf` if its length prefix is
/// readable and within `buf`: lets a reader skip one undecodable record.
pub(crate) fn record_extent(buf: &[u8]) -> Option<usize> {
    let mut c = Cur {
        b: buf,
        p: 0,
        msg: Msg::Record,
    };
    let len = c.varint().ok()?;
    if len > (buf.len() - c.p) as u64 {
        return None;
    }
    Some(c.p + len as usize)
}

/// Decodes one record (length prefix included) from the start of `buf`; returns it and the
/// number of bytes it took. Unknown fields are skipped, unknown enum values leave the field
/// at its default. Errors carry the byte offset in `buf` and an empty source name.
pub fn decode_record(buf: &[u8]) -> Result<(FlowRecord, usize), RecordError> {
    decode_raw(buf).map_err(|e| RecordError::Format {
        source: String::new(),
        offset: e.at as u64,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_encoding() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn long_sub_message_gets_a_two_byte_length() {
        let d = DirStats {
            pkts: u64::MAX,
            bytes: u64::MAX,
            ip_bytes: u64::MAX,
            app_bytes: u64::MAX,
            first_ns: u64::MAX,
            last_ns: 1,
            ttl_min: 255,
            ttl_max: 255,
            tos: 255,
            tcp_flags: 255,
            retrans: u32::MAX,
            out_of_order: u32::MAX,
            zero_win: u32::MAX,
            loss_pkts: u32::MAX,
            loss_bytes: u64::MAX,
            window: u32::MAX,
            isn: u32::MAX,
            first_seq: u32::MAX,
            last_seq: u32::MAX,
            last_ack: u32::MAX,
            ipt_n: u32::MAX,
            ipt_mean_ns: f64::MAX,
            ipt_std_ns: f64::MIN,
            frags: u32::MAX,
        };
        let r = FlowRecord {
            src: d,
            dst: d,
            ..FlowRecord::default()
        };
        let mut out = Vec::new();
        encode_record(&r, &mut out);
        // Record length (2 bytes), then the src key and a 2-byte length.
        assert_eq!(out[2], ((R_SRC << 3) | u32::from(WT_LEN)) as u8);
        assert!(out[3] & 0x80 != 0 && out[4] < 0x80, "{:?}", &out[..6]);
        let (back, n) = decode_raw(&out).unwrap();
        assert_eq!(n, out.len());
        assert_eq!(back, r);
        assert!(out.len() < FIXED_MAX);
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [0xffu8; 11];
        let mut c = Cur {
            b: &buf,
            p: 0,
            msg: Msg::Record,
        };
        let e = c.varint().unwrap_err();
        assert!(matches!(e.kind, ErrKind::VarintOverflow));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        for len in [10, 11, 20] {
            let mut b = max.to_vec();
            b.resize(len, 0);
            let mut c = Cur {
                b: &b,
                p: 0,
                msg: Msg::Record,
            };
            assert_eq!(c.varint().unwrap(), u64::MAX);
            assert_eq!(c.p, 10);
        }
        // Every length in both paths (with and without 10 bytes available).
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            1 << 20,
            1 << 35,
            1 << 56,
            1 << 63,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let n = b.len();
            for pad in [0usize, 10] {
                let mut bb = b.clone();
                bb.resize(n + pad, 0x80);
                let mut c = Cur {
                    b: &bb,
                    p: 0,
                    msg: Msg::Record,
                };
                assert_eq!(c.varint().unwrap(), v);
                assert_eq!(c.p, n);
            }
        }
        // The 10th byte may only be 0 or 1, in both paths.
        let mut bad = max;
        bad[9] = 2;
        for pad in [0usize, 5] {
            let mut b = bad.to_vec();
            b.resize(10 + pad, 0);
            let mut c = Cur {
                b: &b,
                p: 0,
                msg: Msg::Record,
            };
            assert!(matches!(
                c.varint().unwrap_err().kind,
                ErrKind::VarintOverflow
            ));
        }
    }
}
