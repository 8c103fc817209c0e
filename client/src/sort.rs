//! `tapflow sort` (argus `rasort`): records ordered by one or more fields.
//!
//! Numbers (counters, times, durations, ports, TCP flag bits) compare as numbers, addresses
//! by family (MAC, IPv4, IPv6) then value, words (`state`, `dir` …) as text; a field a record
//! does not have (blank in the output) comes before every value. The sort is stable: records
//! that compare equal keep their input order.
//!
//! Memory: without `-N` every record is kept, in its compact native encoding (tens of bytes,
//! not the in-memory record's hundreds) plus its sort keys; with `-N n` only the best `n`, in a
//! bounded heap, whatever the input size.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tapflow_record::{decode_record, encode_record, AddrKind, FlowRecord};

use crate::cli::SortArgs;
use crate::fields::{parse_selection, value, Field, Value};
use crate::read::{field_help, open_sources, parse_filter, Output};
use crate::source::Meta;
use crate::Failure;

/// `tapflow sort`: read, filter, sort (or keep the top N), then print or write.
pub fn run(args: &SortArgs, dashdash: bool) -> Result<(), Failure> {
    if let Some(r) = field_help(&args.output) {
        return r;
    }
    let keys = parse_keys(&args.by, args.desc).map_err(Failure::bad)?;
    let fields = parse_selection(&args.output.fields).map_err(Failure::bad)?;
    let filter = parse_filter(&args.filter, dashdash)?;
    let mut records = open_sources(&args.source, filter, Meta::Skip)?;
    crate::read::refuse_output_over_input(&args.source.files, args.output.write.as_deref())?;
    let mut output = Output::new(&args.output, fields)?;
    let mut sorter = Sorter::new(keys, args.top);
    for rec in records.by_ref() {
        sorter.add(&rec);
    }
    let res = (|| -> std::io::Result<()> {
        output.header(records.opened_any())?;
        for r in sorter.finish() {
            output.record(&r)?;
        }
        Ok(())
    })();
    output.finish(res, records.failed())
}

/// One sort field and its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub field: Field,
    pub desc: bool,
}

/// Parses `-m` arguments: fields, comma or space separated, `-field` for descending;
/// `--desc` reverses every field. No field: `stime`.
pub fn parse_keys(args: &[String], desc_all: bool) -> Result<Vec<SortKey>, String> {
    let mut keys = Vec::new();
    for item in args
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
    {
        let (desc, name) = match item.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, item.strip_prefix('+').unwrap_or(item)),
        };
        let field = Field::by_name(name).ok_or_else(|| {
            format!(
                "unknown field '{name}' in -m; valid fields: {}",
                Field::all_names()
            )
        })?;
        keys.push(SortKey {
            field,
            desc: desc != desc_all,
        });
    }
    if keys.is_empty() {
        keys.push(SortKey {
            field: Field::Stime,
            desc: desc_all,
        });
    }
    Ok(keys)
}

/// A field's value reduced to something totally ordered.
#[derive(Clone, Copy, Debug, PartialEq)]
enum K {
    Empty,
    Num(u64),
    Float(f64),
    Addr(u8, [u8; 16]),
    Text(&'static str),
    Bytes([u8; 9]),
}

impl K {
    fn rank(&self) -> u8 {
        match self {
            K::Empty => 0,
            K::Num(_) => 1,
            K::Float(_) => 2,
            K::Addr(..) => 3,
            K::Text(_) => 4,
            K::Bytes(_) => 5,
        }
    }

    fn cmp(&self, o: &K) -> Ordering {
        match (self, o) {
            (K::Num(a), K::Num(b)) => a.cmp(b),
            (K::Float(a), K::Float(b)) => a.total_cmp(b),
            (K::Addr(ka, a), K::Addr(kb, b)) => (ka, a).cmp(&(kb, b)),
            (K::Text(a), K::Text(b)) => a.cmp(b),
            (K::Bytes(a), K::Bytes(b)) => a.cmp(b),
            _ => self.rank().cmp(&o.rank()),
        }
    }
}

fn family(k: AddrKind) -> u8 {
    match k {
        AddrKind::L2 => 0,
        AddrKind::Ipv4 => 1,
        AddrKind::Ipv6 => 2,
    }
}

fn key_of(f: Field, r: &FlowRecord) -> K {
    match value(f, r) {
        Value::Empty => K::Empty,
        Value::U64(n) | Value::Time(n) | Value::Secs(n) => K::Num(n),
        Value::Port(p) | Value::Hex16(p) => K::Num(p.into()),
        Value::TcpFlags(b) => K::Num(b.into()),
        Value::Encap(e) => K::Num(e.into()),
        // Protocol numbers; non-IP flows after every IP protocol, by ethertype.
        Value::Proto(AddrKind::L2, _, et) => K::Num(0x100 + u64::from(et)),
        Value::Proto(_, p, _) => K::Num(p.into()),
        Value::Millis(x) if x.is_finite() => K::Float(x),
        // Printed blank.
        Value::Millis(_) => K::Empty,
        Value::Str(s) => K::Text(s.trim()),
        Value::Addr(a, k) => K::Addr(family(k), a.0),
        Value::Mac(m) => {
            let mut a = [0u8; 16];
            a[..6].copy_from_slice(&m);
            K::Addr(0, a)
        }
        Value::Flgs(b) => K::Bytes(b),
        // By services, then the RC/UC opcode bits.
        Value::IbOps(w) => K::Num(w[0]),
        Value::IbSvc(b) => K::Num(b.into()),
    }
}

/// Orders two records by one field, as `tapflow sort` does (blank first, numbers as numbers).
pub(crate) fn compare_field(f: Field, a: &FlowRecord, b: &FlowRecord) -> Ordering {
    key_of(f, a).cmp(&key_of(f, b))
}

fn cmp_keys(a: &[K], b: &[K], keys: &[SortKey]) -> Ordering {
    for ((x, y), k) in a.iter().zip(b).zip(keys) {
        let o = x.cmp(y);
        let o = if k.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Collects records and gives them back sorted.
pub enum Sorter {
    All(All),
    Top(Top),
}

impl Sorter {
    pub fn new(keys: Vec<SortKey>, top: Option<u64>) -> Sorter {
        match top {
            Some(n) => Sorter::Top(Top {
                keys,
                n: usize::try_from(n).unwrap_or(usize::MAX),
                heap: BinaryHeap::new(),
                scratch: Vec::new(),
                seen: 0,
            }),
            None => Sorter::All(All {
                keys,
                arena: Vec::new(),
                offsets: Vec::new(),
                values: Vec::new(),
            }),
        }
    }

    pub fn add(&mut self, r: &FlowRecord) {
        match self {
            Sorter::All(a) => a.add(r),
            Sorter::Top(t) => t.add(r),
        }
    }

    /// The records in order.
    pub fn finish(self) -> Box<dyn Iterator<Item = FlowRecord>> {
        match self {
            Sorter::All(a) => Box::new(a.finish()),
            Sorter::Top(t) => Box::new(t.finish()),
        }
    }
}

/// Every record, encoded into one arena; keys in a flat array (`keys.len()` per record).
pub struct All {
    keys: Vec<SortKey>,
    arena: Vec<u8>,
    offsets: Vec<usize>,
    values: Vec<K>,
}

impl All {
    fn add(&mut self, r: &FlowRecord) {
        self.offsets.push(self.arena.len());
        encode_record(r, &mut self.arena);
        for k in &self.keys {
            self.values.push(key_of(k.field, r));
        }
    }

    fn finish(self) -> impl Iterator<Item = FlowRecord> {
        let n = self.keys.len();
        let mut order: Vec<usize> = (0..self.offsets.len()).collect();
        // `sort_by` is stable: equal records keep their input order.
        order.sort_by(|&a, &b| {
            cmp_keys(
                &self.values[a * n..a * n + n],
                &self.values[b * n..b * n + n],
                &self.keys,
            )
        });
        let arena = self.arena;
        let offsets = self.offsets;
        // Each record was encoded by us a moment ago, so it decodes.
        order
            .into_iter()
            .filter_map(move |i| decode_record(&arena[offsets[i]..]).ok().map(|(r, _)| r))
    }
}

/// The best `n` records seen, in a max-heap whose top is the worst of them.
pub struct Top {
    keys: Vec<SortKey>,
    n: usize,
    heap: BinaryHeap<Entry>,
    scratch: Vec<K>,
    seen: u64,
}

struct Entry {
    values: Vec<K>,
    /// Input position: ties go to the earlier record (stability).
    seq: u64,
    rec: FlowRecord,
    /// Shared by every entry (the heap's `Ord` needs it).
    keys: std::rc::Rc<[SortKey]>,
}

impl Entry {
    fn order(&self, o: &Entry) -> Ordering {
        cmp_keys(&self.values, &o.values, &self.keys).then(self.seq.cmp(&o.seq))
    }
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.order(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.order(o)
    }
}

impl Top {
    fn add(&mut self, r: &FlowRecord) {
        let seq = self.seen;
        self.seen += 1;
        if self.n == 0 {
            return;
        }
        self.scratch.clear();
        for k in &self.keys {
            self.scratch.push(key_of(k.field, r));
        }
        if self.heap.len() == self.n {
            // A later record that only ties with the worst kept one loses (stability), so
            // most records are turned away here without a copy.
            let worst = self.heap.peek().map(|e| &e.values[..]).unwrap_or(&[]);
            if cmp_keys(&self.scratch, worst, &self.keys) != Ordering::Less {
                return;
            }
            if let Some(mut e) = self.heap.pop() {
                // Reuse the evicted entry's key buffer.
                std::mem::swap(&mut e.values, &mut self.scratch);
                e.seq = seq;
                e.rec = r.clone();
                self.heap.push(e);
            }
            return;
        }
        let keys: std::rc::Rc<[SortKey]> = match self.heap.peek() {
            Some(e) => e.keys.clone(),
            None => self.keys.clone().into(),
        };
        self.heap.push(Entry {
            values: std::mem::take(&mut self.scratch),
            seq,
            rec: r.clone(),
            keys,
        });
    }

    fn finish(self) -> impl Iterator<Item = FlowRecord> {
        self.heap.into_sorted_vec().into_iter().map(|e| e.rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Addr, DirStats};

    fn rec(i: u64, bytes: u64, saddr: [u8; 4]) -> FlowRecord {
        FlowRecord {
            seq: i,
            addr_kind: AddrKind::Ipv4,
            proto: 17,
            saddr: Addr::from_v4(saddr),
            sport: 1000,
            dport: 53,
            stime_ns: 1_700_000_000_000_000_000 + i,
            src: DirStats {
                pkts: 1,
                bytes,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn run(keys: &str, desc: bool, top: Option<u64>, recs: &[FlowRecord]) -> Vec<u64> {
        let mut s = Sorter::new(parse_keys(&[keys.to_string()], desc).unwrap(), top);
        for r in recs {
            s.add(r);
        }
        s.finish().map(|r| r.seq).collect()
    }

    fn sample() -> Vec<FlowRecord> {
        vec![
            rec(0, 300, [10, 0, 0, 2]),
            rec(1, 100, [10, 0, 0, 10]),
            rec(2, 300, [9, 0, 0, 1]),
            rec(3, 200, [10, 0, 0, 2]),
            rec(4, 100, [10, 0, 0, 1]),
        ]
    }

    #[test]
    fn ascending_descending_and_stable() {
        let s = sample();
        assert_eq!(run("bytes", false, None, &s), [1, 4, 3, 0, 2]);
        assert_eq!(run("-bytes", false, None, &s), [0, 2, 3, 1, 4]);
        assert_eq!(run("bytes", true, None, &s), [0, 2, 3, 1, 4]);
        // --desc flips a descending field back.
        assert_eq!(run("-bytes", true, None, &s), [1, 4, 3, 0, 2]);
        // Addresses as numbers, not text: 9.x < 10.0.0.1 < 10.0.0.2 < 10.0.0.10.
        assert_eq!(run("saddr", false, None, &s), [2, 4, 0, 3, 1]);
        assert_eq!(run("saddr,-bytes", false, None, &s), [2, 4, 0, 3, 1]);
        assert_eq!(run("-bytes,saddr", false, None, &s), [2, 0, 3, 4, 1]);
    }

    #[test]
    fn top_n_matches_the_full_sort() {
        let recs: Vec<FlowRecord> = (0..500u64)
            .map(|i| rec(i, (i * 7919) % 97, [10, 0, (i % 3) as u8, 1]))
            .collect();
        for keys in ["bytes", "-bytes", "saddr,-bytes", "-saddr,bytes,-stime"] {
            let full = run(keys, false, None, &recs);
            for n in [0u64, 1, 5, 96, 500, 1000] {
                let top = run(keys, false, Some(n), &recs);
                let want = &full[..full.len().min(n as usize)];
                assert_eq!(top, want, "{keys} top {n}");
            }
        }
    }

    #[test]
    fn blanks_first_and_floats() {
        let mut a = rec(0, 1, [1, 1, 1, 1]);
        a.vlan = [0, 0];
        let mut b = rec(1, 1, [1, 1, 1, 1]);
        b.vlan = [5, 0];
        let mut c = rec(2, 1, [1, 1, 1, 1]);
        c.vlan = [3, 0];
        assert_eq!(
            run("vlan", false, None, &[a.clone(), b.clone(), c.clone()]),
            [0, 2, 1]
        );
        assert_eq!(run("-vlan", false, None, &[a, b, c]), [1, 2, 0]);
        let mut j = Vec::new();
        for (i, v) in [3.5, f64::NAN, 1.25].into_iter().enumerate() {
            let mut r = rec(i as u64, 1, [1, 1, 1, 1]);
            r.src.ipt_std_ns = v;
            j.push(r);
        }
        // NaN prints blank, so it sorts first.
        assert_eq!(run("sjit", false, None, &j), [1, 2, 0]);
    }

    #[test]
    fn bad_field() {
        assert!(parse_keys(&["bogus".into()], false)
            .unwrap_err()
            .contains("unknown field 'bogus' in -m"));
        assert_eq!(
            parse_keys(&[], true).unwrap(),
            [SortKey {
                field: Field::Stime,
                desc: true
            }]
        );
    }
}
