//! `tapflow agg` (argus `racluster`): records merged by a key, each aggregate itself a
//! [`FlowRecord`] so that every field, printer and `-w` works on it.
//!
//! Records are deltas (a flow's status records sum to the flow, see the record model), so an
//! aggregate sums the counters of every record of its key once. What an aggregate holds:
//!
//! * the key fields (addresses masked to the key's prefix). A time bin groups records by the
//!   bin their `stime` falls in, without splitting them: the aggregate's `stime`, `ltime` and
//!   `dur` are its records' real first and last packets, so `stime` names the bin and `ltime`
//!   may pass its end (`tapflow bins` cuts records at bin edges instead);
//! * sums: packets, bytes (wire, IP, payload), retransmissions, out-of-order, zero windows,
//!   loss, fragments, per direction; `trans` = the number of records (an aggregate counts as
//!   the records it holds, so aggregates can be aggregated again);
//! * earliest `stime`, latest `ltime`; OR of flags, TCP flags, TCP options, observed
//!   directions; TTL min/max; pooled inter-packet mean and deviation (jitter); the mean of the
//!   non-zero handshake times; state, cause, TOS, window and last sequence numbers of the
//!   latest record;
//! * every other field (an address, port, MAC, VLAN … that is not in the key) if all records
//!   agree, else zero. Payload bytes and handshake evidence are dropped.
//!
//! Probe- and merge-status records are never aggregated. Memory: one hash map entry per
//! distinct key (the key, about 80 bytes, and the aggregate record with its accumulators,
//! about 600 bytes); the input is streamed. Output is in order of each key's first record.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use tapflow_record::{Addr, AddrKind, DirStats, FlowRecord};

use crate::cli::AggArgs;
use crate::fields::{parse_selection_from, trans, Field, AGGREGATED};
use crate::read::{field_help, open_sources, parse_filter, Output};
use crate::source::Meta;
use crate::Failure;

const NS: u64 = 1_000_000_000;

/// `tapflow agg`: read, filter, aggregate, then print or write the aggregates.
pub fn run(args: &AggArgs, dashdash: bool) -> Result<(), Failure> {
    if let Some(r) = field_help(&args.output) {
        return r;
    }
    let key = parse_key(&args.key, args.bin.as_deref()).map_err(Failure::bad)?;
    let fields =
        parse_selection_from(&args.output.fields, &default_fields(&key)).map_err(Failure::bad)?;
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Skip)?;
    crate::read::refuse_output_over_input(&args.source.files, args.output.write.as_deref())?;
    let mut output = Output::new(&args.output, fields)?;
    let mut agg = Aggregator::new(key);
    // Nothing is printed while reading, so messages need no flush first.
    for rec in records.by_ref() {
        agg.add(rec);
    }
    let limit = args.limit.unwrap_or(u64::MAX);
    let res = (|| -> std::io::Result<()> {
        output.header(records.opened_any())?;
        for r in agg
            .finish()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            output.record(&r)?;
        }
        Ok(())
    })();
    output.finish(res, records.failed())
}

/// One part of the aggregation key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// Source / destination address, kept to a prefix of `v4` bits (IPv4) and `v6` bits
    /// (IPv6); MAC addresses of non-IP flows are kept whole.
    Saddr {
        v4: u8,
        v6: u8,
    },
    Daddr {
        v4: u8,
        v6: u8,
    },
    Proto,
    Sport,
    Dport,
    Smac,
    Dmac,
    Vlan,
    Ivlan,
    Probe,
    /// `stime/BIN`: time bins of this many ns.
    Stime(u64),
}

impl KeyPart {
    /// The field that shows this part.
    pub fn field(self) -> Field {
        match self {
            KeyPart::Saddr { .. } => Field::Saddr,
            KeyPart::Daddr { .. } => Field::Daddr,
            KeyPart::Proto => Field::Proto,
            KeyPart::Sport => Field::Sport,
            KeyPart::Dport => Field::Dport,
            KeyPart::Smac => Field::Smac,
            KeyPart::Dmac => Field::Dmac,
            KeyPart::Vlan => Field::Vlan,
            KeyPart::Ivlan => Field::Ivlan,
            KeyPart::Probe => Field::Probe,
            KeyPart::Stime(_) => Field::Stime,
        }
    }
}

/// racluster's default: the flow key.
pub const DEFAULT_KEY: &str = "proto,saddr,sport,daddr,dport";

pub const KEY_NAMES: &str = "saddr[/N[/M]] daddr[/N[/M]] proto sport dport smac dmac vlan \
                             ivlan probe stime/BIN";

/// Parses `-M` arguments (comma or space separated) and `-B BIN`.
pub fn parse_key(args: &[String], bin: Option<&str>) -> Result<Vec<KeyPart>, String> {
    let mut items: Vec<&str> = args
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        items = DEFAULT_KEY.split(',').collect();
    }
    let mut key = Vec::new();
    for item in items {
        let (name, arg) = match item.split_once('/') {
            Some((n, a)) => (n, Some(a)),
            None => (item, None),
        };
        let part = match (name.to_ascii_lowercase().as_str(), arg) {
            ("saddr" | "src", a) => {
                let (v4, v6) = prefixes(item, a)?;
                KeyPart::Saddr { v4, v6 }
            }
            ("daddr" | "dst", a) => {
                let (v4, v6) = prefixes(item, a)?;
                KeyPart::Daddr { v4, v6 }
            }
            ("stime", Some(a)) => KeyPart::Stime(bin_ns(a).map_err(|e| format!("-M {item}: {e}"))?),
            ("stime", None) => {
                return Err("-M stime needs a bin size: stime/1m (or -B 1m)".into());
            }
            (_, Some(_)) => return Err(format!("-M {item}: only saddr, daddr and stime take '/'")),
            ("proto", None) => KeyPart::Proto,
            ("sport", None) => KeyPart::Sport,
            ("dport", None) => KeyPart::Dport,
            ("smac", None) => KeyPart::Smac,
            ("dmac", None) => KeyPart::Dmac,
            ("vlan", None) => KeyPart::Vlan,
            ("ivlan", None) => KeyPart::Ivlan,
            ("probe", None) => KeyPart::Probe,
            (_, None) => return Err(format!("unknown key '{item}' in -M; keys: {KEY_NAMES}")),
        };
        if key.iter().any(|k: &KeyPart| k.field() == part.field()) {
            return Err(format!("-M names {} twice", part.field().name()));
        }
        key.push(part);
    }
    if let Some(b) = bin {
        let ns = bin_ns(b).map_err(|e| format!("-B {b}: {e}"))?;
        if key.iter().any(|k| matches!(k, KeyPart::Stime(_))) {
            return Err("-B and -M stime/BIN both give a time bin; use one".into());
        }
        key.insert(0, KeyPart::Stime(ns));
    }
    Ok(key)
}

/// `/24` → (24, 24); `/24/64` → (24, 64); `/64` → (32, 64): a length past 32 keeps IPv4 whole.
fn prefixes(item: &str, arg: Option<&str>) -> Result<(u8, u8), String> {
    let Some(arg) = arg else {
        return Ok((32, 128));
    };
    let bits = |s: &str, max: u8| -> Result<u8, String> {
        match s.parse::<u8>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!(
                "-M {item}: expected a prefix length 0-{max} after '/', not '{s}'"
            )),
        }
    };
    match arg.split_once('/') {
        Some((a, b)) => Ok((bits(a, 32)?, bits(b, 128)?)),
        None => {
            let n = bits(arg, 128)?;
            Ok((n.min(32), n))
        }
    }
}

/// A bin size: `30s`, `1m`, `5m`, `1h`, `1d` (a number without a unit is seconds).
pub fn bin_ns(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a bin size like 30s, 1m, 1h or 1d, not '{s}'"))?;
    let mult = match unit {
        "" | "s" => NS,
        "m" => 60 * NS,
        "h" => 3600 * NS,
        "d" => 86_400 * NS,
        _ => return Err(format!("unknown unit '{unit}' (s, m, h or d)")),
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("bin size '{s}' out of range")),
    }
}

/// The default output columns for a key: when, the key, how much.
pub fn default_fields(key: &[KeyPart]) -> Vec<Field> {
    let mut f = vec![Field::Stime, Field::Dur];
    for k in key {
        if !f.contains(&k.field()) {
            f.push(k.field());
        }
    }
    f.extend([
        Field::Trans,
        Field::Spkts,
        Field::Dpkts,
        Field::Sbytes,
        Field::Dbytes,
    ]);
    f
}

/// The hash key: every part the spec does not use stays zero. Fixed size, so building it
/// allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub(crate) struct Key {
    /// Address family (when an address or the protocol is in the key).
    kind: u8,
    proto: u8,
    ethertype: u16,
    sport: u16,
    dport: u16,
    vlan: u16,
    ivlan: u16,
    probe: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
    saddr: [u8; 16],
    daddr: [u8; 16],
    bin: u64,
}

fn mask(a: &Addr, kind: AddrKind, v4: u8, v6: u8) -> Addr {
    let bits = match kind {
        AddrKind::Ipv4 => v4,
        AddrKind::Ipv6 => v6,
        AddrKind::L2 => return *a,
    };
    let mut out = [0u8; 16];
    let len = match kind {
        AddrKind::Ipv4 => 4,
        _ => 16,
    };
    let bits = usize::from(bits);
    for (i, o) in out.iter_mut().enumerate().take(len) {
        let keep = bits.saturating_sub(i * 8).min(8);
        *o = if keep == 0 {
            0
        } else {
            a.0[i] & (0xffu8 << (8 - keep))
        };
    }
    Addr(out)
}

/// `Acc::mixed` uses the bits the finished aggregate carries in `flags`.
use crate::fields::mixed;

/// One aggregate being built.
#[derive(Clone)]
pub(crate) struct Acc {
    pub(crate) rec: FlowRecord,
    count: u64,
    /// `mixed::*` bits; fields of the key are never marked.
    mixed: u32,
    /// `ltime` of the record the "latest" values (state, cause …) come from.
    latest_ns: u64,
    /// Handshake times: sums and counts of the non-zero ones.
    synack: (u128, u64),
    ackdat: (u128, u64),
    /// Sum of squared deviations of the inter-packet times, per direction (for pooling).
    m2: [f64; 2],
}

/// The aggregation: feed records with [`add`](Self::add), take the aggregates with
/// [`finish`](Self::finish).
pub struct Aggregator {
    pub(crate) key: Vec<KeyPart>,
    /// Non-key fields checked for agreement (`mixed::*` bits of the fields not in the key).
    pub(crate) check: u32,
    index: HashMap<Key, usize>,
    accs: Vec<Acc>,
}

impl Aggregator {
    pub fn new(key: Vec<KeyPart>) -> Aggregator {
        let mut check = u32::MAX;
        for k in &key {
            check &= !match k {
                KeyPart::Saddr { v4: 32, v6: 128 } => mixed::SADDR,
                KeyPart::Daddr { v4: 32, v6: 128 } => mixed::DADDR,
                // A masked address is set from the key, not checked.
                KeyPart::Saddr { .. } => mixed::SADDR,
                KeyPart::Daddr { .. } => mixed::DADDR,
                KeyPart::Proto => mixed::PROTO,
                KeyPart::Sport => mixed::SPORT,
                KeyPart::Dport => mixed::DPORT,
                KeyPart::Smac => mixed::SMAC,
                KeyPart::Dmac => mixed::DMAC,
                KeyPart::Vlan => mixed::VLAN,
                KeyPart::Ivlan => mixed::IVLAN,
                KeyPart::Probe => mixed::PROBE,
                KeyPart::Stime(_) => 0,
            };
        }
        let keys_kind = key.iter().any(|k| {
            matches!(
                k,
                KeyPart::Saddr { .. } | KeyPart::Daddr { .. } | KeyPart::Proto
            )
        });
        if keys_kind {
            check &= !mixed::KIND;
        }
        Aggregator {
            key,
            check,
            index: HashMap::new(),
            accs: Vec::new(),
        }
    }

    /// Distinct keys so far.
    pub fn len(&self) -> usize {
        self.accs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accs.is_empty()
    }

    pub(crate) fn key_of(&self, r: &FlowRecord) -> Key {
        let mut k = Key::default();
        for part in &self.key {
            match *part {
                KeyPart::Saddr { v4, v6 } => {
                    k.kind = r.addr_kind as u8;
                    k.saddr = mask(&r.saddr, r.addr_kind, v4, v6).0;
                }
                KeyPart::Daddr { v4, v6 } => {
                    k.kind = r.addr_kind as u8;
                    k.daddr = mask(&r.daddr, r.addr_kind, v4, v6).0;
                }
                KeyPart::Proto => {
                    k.kind = r.addr_kind as u8;
                    k.proto = r.proto;
                    // Non-IP flows are told apart by their ethertype.
                    if r.addr_kind == AddrKind::L2 {
                        k.ethertype = r.ethertype;
                    }
                }
                KeyPart::Sport => k.sport = r.sport,
                KeyPart::Dport => k.dport = r.dport,
                KeyPart::Smac => k.smac = r.smac,
                KeyPart::Dmac => k.dmac = r.dmac,
                KeyPart::Vlan => k.vlan = r.vlan[0],
                KeyPart::Ivlan => k.ivlan = r.vlan[1],
                KeyPart::Probe => k.probe = r.probe_id,
                KeyPart::Stime(bin) => k.bin = r.stime_ns / bin,
            }
        }
        k
    }

    /// Adds one flow record (meta records are the caller's to skip).
    pub fn add(&mut self, r: FlowRecord) {
        let k = self.key_of(&r);
        match self.index.entry(k) {
            Entry::Occupied(e) => {
                let i = *e.get();
                merge(&mut self.accs[i], &r, self.check);
            }
            Entry::Vacant(e) => {
                e.insert(self.accs.len());
                self.accs.push(start(r, &self.key));
            }
        }
    }

    /// The aggregates, in order of each key's first record.
    pub fn finish(self) -> impl Iterator<Item = FlowRecord> {
        self.accs.into_iter().map(finish)
    }
}

pub(crate) fn start(mut r: FlowRecord, key: &[KeyPart]) -> Acc {
    let count = trans(&r);
    for part in key {
        match *part {
            KeyPart::Saddr { v4, v6 } => r.saddr = mask(&r.saddr, r.addr_kind, v4, v6),
            KeyPart::Daddr { v4, v6 } => r.daddr = mask(&r.daddr, r.addr_kind, v4, v6),
            _ => {}
        }
    }
    let sum2 = |d: &DirStats| {
        let (n, s) = (d.ipt_n as f64, d.ipt_std_ns);
        if s.is_finite() {
            s * s * n
        } else {
            0.0
        }
    };
    let nz = |v: u64, n: u64| (u128::from(v) * u128::from(n), if v > 0 { n } else { 0 });
    let acc = Acc {
        count,
        mixed: 0,
        latest_ns: r.ltime_ns,
        // An aggregate's handshake times are means over `count` records already.
        synack: nz(r.synack_ns, count),
        ackdat: nz(r.ackdat_ns, count),
        m2: [sum2(&r.src), sum2(&r.dst)],
        rec: r,
    };
    // Neither payload bytes nor handshake evidence mean anything for an aggregate.
    let mut acc = acc;
    acc.rec.src_payload = Vec::new();
    acc.rec.dst_payload = Vec::new();
    acc.rec.hs = Default::default();
    acc
}

pub(crate) fn merge(a: &mut Acc, r: &FlowRecord, check: u32) {
    a.count = a.count.saturating_add(trans(r));
    let t = &mut a.rec;
    let mut differ = 0;
    if t.probe_id != r.probe_id {
        differ |= mixed::PROBE;
    }
    if t.addr_kind != r.addr_kind {
        differ |= mixed::KIND | mixed::SADDR | mixed::DADDR;
    }
    if t.saddr != r.saddr {
        differ |= mixed::SADDR;
    }
    if t.daddr != r.daddr {
        differ |= mixed::DADDR;
    }
    if (t.proto, t.ethertype) != (r.proto, r.ethertype) {
        differ |= mixed::PROTO;
    }
    if t.sport != r.sport {
        differ |= mixed::SPORT;
    }
    if t.dport != r.dport {
        differ |= mixed::DPORT;
    }
    if t.smac != r.smac {
        differ |= mixed::SMAC;
    }
    if t.dmac != r.dmac {
        differ |= mixed::DMAC;
    }
    if t.vlan[0] != r.vlan[0] {
        differ |= mixed::VLAN;
    }
    if t.vlan[1] != r.vlan[1] {
        differ |= mixed::IVLAN;
    }
    if t.mpls != r.mpls {
        differ |= mixed::MPLS;
    }
    if t.encap != r.encap {
        differ |= mixed::ENCAP;
    }
    a.mixed |= differ & check;

    t.stime_ns = t.stime_ns.min(r.stime_ns);
    t.ltime_ns = t.ltime_ns.max(r.ltime_ns);
    t.flags |= r.flags;
    t.tcp_opts |= r.tcp_opts;
    t.observed |= r.observed;
    let latest = r.ltime_ns >= a.latest_ns;
    if latest {
        a.latest_ns = r.ltime_ns;
        t.state = r.state;
        t.cause = r.cause;
    }
    let n = trans(r);
    if r.synack_ns > 0 {
        a.synack.0 += u128::from(r.synack_ns) * u128::from(n);
        a.synack.1 += n;
    }
    if r.ackdat_ns > 0 {
        a.ackdat.0 += u128::from(r.ackdat_ns) * u128::from(n);
        a.ackdat.1 += n;
    }
    merge_dir(&mut t.src, &r.src, &mut a.m2[0], latest);
    merge_dir(&mut t.dst, &r.dst, &mut a.m2[1], latest);
}

/// Adds one direction's counters of a record to the aggregate's.
fn merge_dir(t: &mut DirStats, r: &DirStats, m2: &mut f64, latest: bool) {
    if r.pkts == 0 {
        // Nothing sent this way in that record: only zeros to add.
        return;
    }
    let had = t.pkts > 0;
    t.pkts = t.pkts.saturating_add(r.pkts);
    t.bytes = t.bytes.saturating_add(r.bytes);
    t.ip_bytes = t.ip_bytes.saturating_add(r.ip_bytes);
    t.app_bytes = t.app_bytes.saturating_add(r.app_bytes);
    t.retrans = t.retrans.saturating_add(r.retrans);
    t.out_of_order = t.out_of_order.saturating_add(r.out_of_order);
    t.zero_win = t.zero_win.saturating_add(r.zero_win);
    t.loss_pkts = t.loss_pkts.saturating_add(r.loss_pkts);
    t.loss_bytes = t.loss_bytes.saturating_add(r.loss_bytes);
    t.frags = t.frags.saturating_add(r.frags);
    t.tcp_flags |= r.tcp_flags;
    if !had {
        // The first record with traffic this way sets what only it can say.
        t.first_ns = r.first_ns;
        t.last_ns = r.last_ns;
        t.ttl_min = r.ttl_min;
        t.ttl_max = r.ttl_max;
        t.tos = r.tos;
        t.window = r.window;
        t.isn = r.isn;
        t.first_seq = r.first_seq;
        t.last_seq = r.last_seq;
        t.last_ack = r.last_ack;
        t.ipt_n = r.ipt_n;
        t.ipt_mean_ns = r.ipt_mean_ns;
        t.ipt_std_ns = r.ipt_std_ns;
        *m2 = r.ipt_std_ns * r.ipt_std_ns * f64::from(r.ipt_n);
        return;
    }
    if r.first_ns != 0 && (t.first_ns == 0 || r.first_ns < t.first_ns) {
        t.first_ns = r.first_ns;
    }
    t.last_ns = t.last_ns.max(r.last_ns);
    t.ttl_min = t.ttl_min.min(r.ttl_min);
    t.ttl_max = t.ttl_max.max(r.ttl_max);
    if latest {
        t.tos = r.tos;
        t.window = r.window;
        t.last_seq = r.last_seq;
        t.last_ack = r.last_ack;
    }
    // Pooled mean and variance of the inter-packet times (Chan et al.).
    let (n1, n2) = (f64::from(t.ipt_n), f64::from(r.ipt_n));
    if r.ipt_n > 0 && r.ipt_mean_ns.is_finite() && r.ipt_std_ns.is_finite() {
        let n = n1 + n2;
        let delta = r.ipt_mean_ns - t.ipt_mean_ns;
        let mean = t.ipt_mean_ns + delta * n2 / n;
        *m2 += r.ipt_std_ns * r.ipt_std_ns * n2 + delta * delta * n1 * n2 / n;
        t.ipt_n = t.ipt_n.saturating_add(r.ipt_n);
        t.ipt_mean_ns = mean;
        t.ipt_std_ns = (*m2 / n).sqrt();
    }
}

pub(crate) fn finish(a: Acc) -> FlowRecord {
    let mut r = a.rec;
    let m = a.mixed;
    if m & mixed::PROBE != 0 {
        r.probe_id = 0;
    }
    if m & mixed::SADDR != 0 {
        r.saddr = Addr::default();
    }
    if m & mixed::DADDR != 0 {
        r.daddr = Addr::default();
    }
    if m & mixed::PROTO != 0 {
        r.proto = 0;
        r.ethertype = 0;
    }
    if m & mixed::SPORT != 0 {
        r.sport = 0;
    }
    if m & mixed::DPORT != 0 {
        r.dport = 0;
    }
    if m & mixed::SMAC != 0 {
        r.smac = [0; 6];
    }
    if m & mixed::DMAC != 0 {
        r.dmac = [0; 6];
    }
    if m & mixed::VLAN != 0 {
        r.vlan[0] = 0;
    }
    if m & mixed::IVLAN != 0 {
        r.vlan[1] = 0;
    }
    if m & mixed::MPLS != 0 {
        r.mpls = [0; 2];
    }
    if m & mixed::ENCAP != 0 {
        r.encap = Default::default();
    }
    let mean = |(sum, n): (u128, u64)| {
        if n == 0 {
            0
        } else {
            u64::try_from(sum / u128::from(n)).unwrap_or(u64::MAX)
        }
    };
    r.synack_ns = mean(a.synack);
    r.ackdat_ns = mean(a.ackdat);
    r.seq = a.count;
    // An aggregate of aggregates keeps what its inputs already marked as mixed.
    r.flags |= AGGREGATED | m;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Cause, FlowState};

    const T0: u64 = 1_700_000_000 * NS;

    fn rec(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, sp_pkts: u64, dp_pkts: u64) -> FlowRecord {
        FlowRecord {
            probe_id: 1,
            addr_kind: AddrKind::Ipv4,
            proto: 6,
            ethertype: 0x0800,
            saddr: Addr::from_v4(s),
            daddr: Addr::from_v4(d),
            sport: sp,
            dport: dp,
            stime_ns: T0,
            ltime_ns: T0 + NS,
            src: DirStats {
                pkts: sp_pkts,
                bytes: sp_pkts * 100,
                ttl_min: 64,
                ttl_max: 64,
                ..Default::default()
            },
            dst: DirStats {
                pkts: dp_pkts,
                bytes: dp_pkts * 1000,
                ttl_min: 50,
                ttl_max: 60,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn agg(key: &str, recs: Vec<FlowRecord>) -> Vec<FlowRecord> {
        let mut a = Aggregator::new(parse_key(&[key.to_string()], None).unwrap());
        for r in recs {
            a.add(r);
        }
        a.finish().collect()
    }

    #[test]
    fn key_parsing() {
        let k = |s: &str| parse_key(&[s.to_string()], None);
        assert_eq!(
            k("").unwrap(),
            [
                KeyPart::Proto,
                KeyPart::Saddr { v4: 32, v6: 128 },
                KeyPart::Sport,
                KeyPart::Daddr { v4: 32, v6: 128 },
                KeyPart::Dport
            ]
        );
        assert_eq!(k("saddr/24").unwrap(), [KeyPart::Saddr { v4: 24, v6: 24 }]);
        assert_eq!(k("daddr/64").unwrap(), [KeyPart::Daddr { v4: 32, v6: 64 }]);
        assert_eq!(
            k("saddr/16/48").unwrap(),
            [KeyPart::Saddr { v4: 16, v6: 48 }]
        );
        assert_eq!(k("stime/5m,saddr").unwrap()[0], KeyPart::Stime(300 * NS));
        assert_eq!(
            parse_key(&["saddr".into()], Some("1h")).unwrap(),
            [
                KeyPart::Stime(3600 * NS),
                KeyPart::Saddr { v4: 32, v6: 128 }
            ]
        );
        assert!(k("saddr/33/129").unwrap_err().contains("0-32"));
        assert!(k("bogus").unwrap_err().contains("unknown key 'bogus'"));
        assert!(k("stime").unwrap_err().contains("bin size"));
        assert!(k("stime/0m").is_err());
        assert!(k("stime/5x").unwrap_err().contains("unit"));
        assert!(k("sport/3").is_err());
        assert!(k("saddr,saddr/24").unwrap_err().contains("twice"));
        assert!(parse_key(&["stime/1m".into()], Some("1m")).is_err());
    }

    #[test]
    fn prefix_masks() {
        let a = Addr::from_v4([10, 1, 2, 3]);
        assert_eq!(
            mask(&a, AddrKind::Ipv4, 24, 24),
            Addr::from_v4([10, 1, 2, 0])
        );
        assert_eq!(
            mask(&a, AddrKind::Ipv4, 12, 12),
            Addr::from_v4([10, 0, 0, 0])
        );
        assert_eq!(mask(&a, AddrKind::Ipv4, 0, 0), Addr::from_v4([0, 0, 0, 0]));
        assert_eq!(mask(&a, AddrKind::Ipv4, 32, 128), a);
        let v6 = Addr(
            "2001:db8:aaaa:bbbb::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let want = Addr(
            "2001:db8:aaaa::"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(mask(&v6, AddrKind::Ipv6, 32, 48), want);
        let mac = Addr::from_mac([1, 2, 3, 4, 5, 6]);
        assert_eq!(mask(&mac, AddrKind::L2, 8, 8), mac);
    }

    #[test]
    fn status_records_of_one_flow_sum_once_each() {
        // One flow in three status records (deltas) and a close record: 4+3+2+1 packets.
        let mut recs = Vec::new();
        for (i, (s, d)) in [(4, 0), (3, 2), (2, 2), (1, 1)].into_iter().enumerate() {
            let mut r = rec([10, 0, 0, 1], 40000, [10, 0, 0, 2], 22, s, d);
            r.stime_ns = T0 + i as u64 * 5 * NS;
            r.ltime_ns = r.stime_ns + 4 * NS;
            r.cause = if i == 3 { Cause::Close } else { Cause::Status };
            r.state = if i == 3 {
                FlowState::Fin
            } else {
                FlowState::Con
            };
            r.src.tcp_flags = [0x02, 0x10, 0x18, 0x01][i];
            if i == 0 {
                r.synack_ns = 2_000;
                r.ackdat_ns = 1_000;
            }
            recs.push(r);
        }
        let out = agg("", recs);
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!((a.src.pkts, a.dst.pkts), (10, 5));
        assert_eq!((a.src.bytes, a.dst.bytes), (1000, 5000));
        assert_eq!(trans(a), 4);
        assert_eq!(a.stime_ns, T0);
        assert_eq!(a.ltime_ns, T0 + 19 * NS);
        assert_eq!(a.src.tcp_flags, 0x1b);
        assert_eq!((a.cause, a.state), (Cause::Close, FlowState::Fin));
        assert_eq!((a.synack_ns, a.ackdat_ns), (2_000, 1_000));
        assert_eq!(a.saddr, Addr::from_v4([10, 0, 0, 1]));
        assert_eq!(a.dport, 22);
        assert!(a.flags & AGGREGATED != 0);
        // The dst side sent nothing in the first record: its TTLs come from the others.
        assert_eq!((a.dst.ttl_min, a.dst.ttl_max), (50, 60));
    }

    #[test]
    fn by_source_prefix_zeroes_what_differs() {
        let recs = vec![
            rec([10, 0, 0, 1], 1000, [192, 168, 0, 1], 80, 1, 1),
            rec([10, 0, 0, 2], 1001, [192, 168, 0, 1], 80, 2, 2),
            rec([10, 0, 1, 3], 1002, [192, 168, 0, 2], 443, 4, 4),
        ];
        let out = agg("saddr/24", recs);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].saddr, Addr::from_v4([10, 0, 0, 0]));
        assert_eq!((out[0].src.pkts, trans(&out[0])), (3, 2));
        // Both went to 192.168.0.1 port 80: kept; the source ports differ: zeroed.
        assert_eq!(out[0].daddr, Addr::from_v4([192, 168, 0, 1]));
        assert_eq!((out[0].sport, out[0].dport), (0, 80));
        assert_eq!(out[1].saddr, Addr::from_v4([10, 0, 1, 0]));
        assert_eq!((out[1].src.pkts, out[1].sport), (4, 1002));
    }

    #[test]
    fn time_bins_and_reaggregation() {
        let mut recs = Vec::new();
        let m0 = 1_700_000_040 * NS; // a whole minute
        for i in 0..6u64 {
            let mut r = rec([10, 0, 0, 1], 1000, [10, 0, 0, 9], 53, 1, 1);
            r.stime_ns = m0 + 20 * NS * i + 7 * NS; // 7s, 27s, 47s, 67s, 87s, 107s
            r.ltime_ns = r.stime_ns + NS;
            recs.push(r);
        }
        let out = agg("stime/1m,saddr", recs);
        // Bins [0,60) and [60,120).
        assert_eq!(out.len(), 2);
        // The real first and last packets, so dur is the activity, not time since the bin began.
        assert_eq!(out[0].stime_ns, m0 + 7 * NS);
        assert_eq!(out[0].dur_ns(), 41 * NS);
        assert_eq!(out[1].stime_ns, m0 + 67 * NS);
        assert_eq!(out[1].ltime_ns, m0 + 108 * NS);
        assert_eq!((trans(&out[0]), trans(&out[1])), (3, 3));
        // Aggregates of aggregates count the records inside.
        let again = agg("saddr", out);
        assert_eq!(trans(&again[0]), 6);
        assert_eq!(again[0].src.pkts, 6);
    }

    #[test]
    fn pooled_jitter() {
        let mut a = rec([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 3, 0);
        a.src.ipt_n = 2;
        a.src.ipt_mean_ns = 10.0;
        a.src.ipt_std_ns = 0.0;
        let mut b = a.clone();
        b.src.ipt_mean_ns = 20.0;
        let out = agg("saddr", vec![a, b]);
        assert_eq!(out[0].src.ipt_n, 4);
        assert!((out[0].src.ipt_mean_ns - 15.0).abs() < 1e-9);
        // Values 10,10,20,20: population deviation 5.
        assert!((out[0].src.ipt_std_ns - 5.0).abs() < 1e-9);
    }

    #[test]
    fn l2_and_mixed_families() {
        let arp = FlowRecord {
            addr_kind: AddrKind::L2,
            ethertype: 0x0806,
            saddr: Addr::from_mac([0, 1, 2, 3, 4, 5]),
            src: DirStats {
                pkts: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let out = agg(
            "proto",
            vec![
                arp.clone(),
                rec([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, 1, 0),
                arp,
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].ethertype, trans(&out[0])), (0x0806, 2));
    }

    #[test]
    fn mixed_fields_print_blank() {
        use crate::fields::{value, Value};
        let out = agg(
            "saddr",
            vec![
                rec([1, 1, 1, 1], 1000, [2, 2, 2, 2], 53, 1, 0),
                rec([1, 1, 1, 1], 1001, [2, 2, 2, 2], 53, 1, 0),
            ],
        );
        let a = &out[0];
        // sport differed: blank, not 0; dport and daddr agreed: kept.
        assert_eq!(value(Field::Sport, a), Value::Empty);
        assert!(matches!(value(Field::Dport, a), Value::Port(53)));
        assert!(matches!(value(Field::Daddr, a), Value::Addr(..)));
        // Re-aggregating keeps the mark even where the inputs now agree.
        let again = agg("saddr", out.clone());
        assert_eq!(value(Field::Sport, &again[0]), Value::Empty);
        let by_daddr = agg("daddr", vec![a.clone()]);
        assert_eq!(value(Field::Sport, &by_daddr[0]), Value::Empty);
        // A source address that differed is blank, not 0.0.0.0.
        let d = agg(
            "dport",
            vec![
                rec([1, 1, 1, 1], 1000, [2, 2, 2, 2], 53, 1, 0),
                rec([1, 1, 1, 3], 1000, [2, 2, 2, 2], 53, 1, 0),
            ],
        );
        assert_eq!(value(Field::Saddr, &d[0]), Value::Empty);
        assert!(matches!(value(Field::Sport, &d[0]), Value::Port(1000)));
    }
}
