//! `tapflow report --local NETS` — the daily operator report, in bounded memory.
//!
//! # Sections
//!
//! * **Totals**: the period covered, records read (probe/merge status records are skipped and
//!   counted), bytes and packets leaving the local networks (`out`), entering them (`in`),
//!   between two local hosts (`internal`) and between two non-local hosts (`transit`), and
//!   estimates of the distinct local and remote hosts seen.
//! * **Top local hosts** by bytes (or packets, `--by pkts`), each with what it sent (`out`)
//!   and received (`in`): a record counts for its initiator with `src` as sent and `dst` as
//!   received, and for its responder the other way round, so both record directions add up
//!   correctly whether the local host is the record's src or dst. A record between two local
//!   hosts counts for both. Under each host: its top peers and its top service ports. The
//!   service port of a record is its responder's port (`dport`) with the protocol; it is
//!   marked `(served)` when the local host is the responder, i.e. the port is the host's own
//!   service. Protocols without ports (ICMP, …) appear as the protocol name.
//! * **Fan-out**: local hosts that initiated flows to more than `K` distinct *remote* hosts on
//!   the fan-out ports (default 25, SMTP: a spamming host) within one window (default 1 h).
//!   Windows are *hopping*: a window of length `W` starts at every multiple of the hop `H`
//!   (default `W/6` = 10 min, UTC-aligned), so any burst confined to `W - H` (50 min) lies
//!   entirely inside one evaluated window and no count covers more than `W`. Setting the hop
//!   equal to the window gives per-clock-hour windows. A contact is timed by its record's
//!   `stime`. Records may arrive out of time order by up to the lateness allowance (default one
//!   hop); an even later record counts in the oldest window still open for that host.
//! * **Scans**: sources (local or not) that sent *probes* to at least `--scan-targets`
//!   (default 100) distinct (destination, protocol, port) targets over the whole input. A probe
//!   is a record whose initiator sent at most `--scan-pkts` (default 3) packets and whose
//!   responder sent no payload (for ICMP, whatever the reply): SYN scans, UDP probes and ping
//!   sweeps qualify, a resolver's answered DNS queries do not. Each scanner is classified `horizontal` (≤ 2 ports: one
//!   service across many hosts), `vertical` (≤ 2 hosts: many ports of one host) or `mixed`.
//!
//! # Memory bounds
//!
//! Nothing grows with the number of distinct addresses in the input:
//!
//! * Top hosts: a Space-Saving table of at most `talker_capacity` (default 1024) local hosts,
//!   each with Space-Saving tables of at most `peer_capacity` (default 32) peers and ports and
//!   one distinct-peer counter. Every host whose volume exceeds `total / talker_capacity` is
//!   guaranteed to be in the table; a host's figures are exact when its `error` is 0, and
//!   otherwise count only what it did since it was (re)admitted, `error` bounding what they
//!   may understate. Hosts are ranked by those counted figures (the guaranteed lower bound).
//! * Distinct counters: an exact set of up to 128 64-bit hashes (1 KiB) that turns into a
//!   HyperLogLog of 1024 one-byte registers (1 KiB, ≈3 % standard error) beyond that.
//! * Fan-out: at most `fanout_capacity` (default 1024) hosts tracked (Space-Saving by contact
//!   count, a host's pending windows are evaluated before it is evicted), each with at most
//!   `W/H + lateness + 1` per-hop distinct counters; at most `max_alerts` (default 1000) alerts
//!   kept (the largest).
//! * Scans: at most `scan_capacity` (default 2048) sources (Space-Saving by probe count), each
//!   with three distinct counters and an 8-entry port table. A source whose probes exceed
//!   `probes / scan_capacity` is guaranteed to stay tracked.
//!
//! With the defaults that is under 40 MiB whatever the input ([`memory_bound`] computes it
//! for any options; the tests feed a million distinct random sources and check it). A flood of
//! random sources costs precision, never memory: a host below the guarantees above can be
//! evicted and start again from zero.
//!
//! # CLI mapping (`tapflow report -r FILE --local NETS [options]`)
//!
//! | flag | [`ReportOptions`] field |
//! |---|---|
//! | `--local CIDR[,CIDR…]` | `local` ([`parse_local_nets`]; empty: every IP address is local) |
//! | `-N`, `--top N` (10) | `top` |
//! | `--top-peers N` (5) | `top_peers` |
//! | `--top-ports N` (5) | `top_ports` |
//! | `--by bytes\|pkts` | `rank` ([`Rank`]) |
//! | `--fanout-ports P[,P…]` (25) | `fanout_ports` ([`parse_ports`]) |
//! | `--fanout-k K` (100) | `fanout_k` (alert when distinct remotes > K) |
//! | `--fanout-window DUR` (1h) | `fanout_window_ns` ([`crate::agg::bin_ns`]) |
//! | `--fanout-hop DUR` (10m; = window for clock hours) | `fanout_hop_ns` (the same parser) |
//! | `--fanout-lateness DUR` (one hop; `0`: none) | `fanout_lateness_ns` |
//! | `--scan-targets N` (100) | `scan_min_targets` |
//! | `--scan-pkts N` (3) | `scan_max_pkts` |
//! | `--track-hosts N`, `--track-peers N`, `--track-fanout N`, `--track-scans N`, `--max-alerts N` | `talker_capacity`, `peer_capacity`, `fanout_capacity`, `scan_capacity`, `max_alerts` |
//! | `--json` | `format = ReportFormat::Json` |
//!
//! Entry points: [`run`] (records in, report out), or [`Reporter`] (`add` each record, then
//! `finish` into a [`Report`], printed by [`write_text`] / [`write_json`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::Hash;
use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;
use tapflow_record::{proto_name_static, time, Addr, AddrKind, DirStats, FlowRecord};

// ---------------------------------------------------------------------------------------------
// Sketches

/// The splitmix64 finaliser: a fast, well-mixing 64-bit hash step. Deterministic (no random
/// seed) so that reports are reproducible.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Exact elements kept before a [`Distinct`] turns into a HyperLogLog (same 1 KiB either way).
pub const DISTINCT_EXACT_CAP: usize = 128;
/// HyperLogLog precision: 2^10 registers, standard error 1.04/√1024 ≈ 3.3 %.
pub const HLL_P: u32 = 10;
const HLL_M: usize = 1 << HLL_P;

/// A bounded-memory distinct counter over 64-bit hashes: exact up to
/// [`DISTINCT_EXACT_CAP`] elements, a HyperLogLog beyond. At most ~1 KiB of heap.
#[derive(Clone, Debug)]
pub enum Distinct {
    Exact(Vec<u64>),
    Hll(Box<[u8; HLL_M]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

impl Distinct {
    pub fn insert(&mut self, h: u64) {
        match self {
            Distinct::Exact(v) => {
                if v.contains(&h) {
                    return;
                }
                if v.len() < DISTINCT_EXACT_CAP {
                    v.push(h);
                    return;
                }
                let mut regs = Box::new([0u8; HLL_M]);
                for &x in v.iter() {
                    hll_add(&mut regs, x);
                }
                hll_add(&mut regs, h);
                *self = Distinct::Hll(regs);
            }
            Distinct::Hll(regs) => hll_add(regs, h),
        }
    }

    /// Adds every element of `other` (a set union).
    pub fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Exact(v) => v.iter().for_each(|&h| self.insert(h)),
            Distinct::Hll(o) => {
                if let Distinct::Exact(v) = self {
                    let mut regs = Box::new([0u8; HLL_M]);
                    v.iter().for_each(|&x| hll_add(&mut regs, x));
                    *self = Distinct::Hll(regs);
                }
                if let Distinct::Hll(r) = self {
                    for (a, b) in r.iter_mut().zip(o.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    pub fn estimate(&self) -> u64 {
        match self {
            Distinct::Exact(v) => v.len() as u64,
            Distinct::Hll(r) => hll_estimate(&r[..]).round() as u64,
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self, Distinct::Exact(_))
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Distinct::Exact(v) => v.capacity() * 8,
            Distinct::Hll(_) => HLL_M,
        }
    }
}

fn hll_add(regs: &mut [u8; HLL_M], h: u64) {
    let idx = (h >> (64 - HLL_P)) as usize;
    let rest = h << HLL_P;
    // Rank of the first 1 bit in the remaining 54 bits (55 when they are all 0).
    let rank = (rest.leading_zeros() + 1).min(64 - HLL_P + 1) as u8;
    if regs[idx] < rank {
        regs[idx] = rank;
    }
}

fn hll_estimate(regs: &[u8]) -> f64 {
    let m = regs.len() as f64;
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in regs {
        sum += 2f64.powi(-i32::from(r));
        zeros += usize::from(r == 0);
    }
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / sum;
    // Small range: linear counting on the empty registers is far more accurate there.
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

/// One entry of a [`SpaceSaving`] table: `count` overestimates the key's true weight by at
/// most `err` (the minimum it inherited when admitted).
#[derive(Clone, Debug)]
pub struct Slot<K, V> {
    pub key: K,
    pub count: u64,
    pub err: u64,
    pub val: V,
}

/// Space-Saving top-K (Metwally, Agrawal, El Abbadi) over weighted updates, at most `cap`
/// entries. A new key arriving at a full table replaces the entry with the smallest count,
/// inherits that count as its error, and gets a fresh `V`.
///
/// Entries stay where they are in `slots`; a separate min-heap of slot numbers orders them by
/// count, so an update or an eviction costs O(log cap) with one hash lookup (heap moves touch
/// only the two small index vectors).
pub struct SpaceSaving<K, V> {
    cap: usize,
    slots: Vec<Slot<K, V>>,
    /// Slot numbers, a min-heap on the slots' counts.
    heap: Vec<u32>,
    /// `at[slot]` = the slot's position in `heap`.
    at: Vec<u32>,
    index: HashMap<K, u32>,
}

impl<K: Copy + Eq + Hash, V: Default> SpaceSaving<K, V> {
    pub fn new(cap: usize) -> Self {
        SpaceSaving {
            // Slot numbers are u32.
            cap: cap.clamp(1, u32::MAX as usize),
            slots: Vec::new(),
            heap: Vec::new(),
            at: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, key: &K) -> Option<&Slot<K, V>> {
        self.index.get(key).map(|&i| &self.slots[i as usize])
    }

    /// Adds `w` to `key`, admitting it if needed. Returns its slot and the evicted entry, if
    /// admitting it pushed one out.
    pub fn add(&mut self, key: K, w: u64) -> (&mut Slot<K, V>, Option<Slot<K, V>>) {
        if let Some(&i) = self.index.get(&key) {
            let i = i as usize;
            self.slots[i].count = self.slots[i].count.saturating_add(w);
            self.sift_down(self.at[i] as usize);
            return (&mut self.slots[i], None);
        }
        if self.slots.len() < self.cap {
            let i = self.slots.len();
            self.slots.push(Slot {
                key,
                count: w,
                err: 0,
                val: V::default(),
            });
            self.heap.push(i as u32);
            self.at.push(i as u32);
            self.index.insert(key, i as u32);
            self.sift_up(i);
            return (&mut self.slots[i], None);
        }
        let i = self.heap[0] as usize;
        let min = self.slots[i].count;
        let new = Slot {
            key,
            count: min.saturating_add(w),
            err: min,
            val: V::default(),
        };
        let old = std::mem::replace(&mut self.slots[i], new);
        self.index.remove(&old.key);
        self.index.insert(key, i as u32);
        self.sift_down(0);
        (&mut self.slots[i], Some(old))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot<K, V>> {
        self.slots.iter()
    }

    /// Heap bytes of the table itself (not of what `V` owns).
    pub fn table_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K, V>>()
            + (self.heap.capacity() + self.at.capacity()) * 4
            + self.index.capacity() * (std::mem::size_of::<(K, u32)>() + 1)
    }

    fn count_at(&self, h: usize) -> u64 {
        self.slots[self.heap[h] as usize].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.at[self.heap[a] as usize] = a as u32;
        self.at[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut h: usize) {
        while h > 0 {
            let p = (h - 1) / 2;
            if self.count_at(p) <= self.count_at(h) {
                break;
            }
            self.swap(h, p);
            h = p;
        }
    }

    fn sift_down(&mut self, mut h: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * h + 1, 2 * h + 2);
            let mut m = h;
            if l < n && self.count_at(l) < self.count_at(m) {
                m = l;
            }
            if r < n && self.count_at(r) < self.count_at(m) {
                m = r;
            }
            if m == h {
                return;
            }
            self.swap(h, m);
            h = m;
        }
    }
}

impl<K: Copy + Eq + Hash + Ord, V: Default> SpaceSaving<K, V> {
    /// Entries by guaranteed count (`count - err`, what the entry is known to have done and
    /// what the report prints), largest first; ties by count, then key (deterministic output).
    /// Ranking by `count` would put a host admitted late with a large inherited error above
    /// hosts whose larger figures are exact.
    pub fn sorted(&self) -> Vec<&Slot<K, V>> {
        let mut v: Vec<_> = self.slots.iter().collect();
        v.sort_by(|a, b| {
            (b.count.saturating_sub(b.err))
                .cmp(&a.count.saturating_sub(a.err))
                .then(b.count.cmp(&a.count))
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Options

/// A local network (`--local`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalNet {
    pub kind: AddrKind,
    pub addr: [u8; 16],
    pub prefix: u8,
}

impl LocalNet {
    pub fn contains(&self, kind: AddrKind, a: &Addr) -> bool {
        if kind != self.kind {
            return false;
        }
        // The fields are public: a hand-made net with a prefix past 128 must not index out.
        let prefix = self.prefix.min(128);
        let full = usize::from(prefix / 8);
        let rem = prefix % 8;
        if a.0[..full] != self.addr[..full] {
            return false;
        }
        rem == 0 || {
            let mask = 0xffu8 << (8 - rem);
            a.0[full] & mask == self.addr[full] & mask
        }
    }
}

impl std::fmt::Display for LocalNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Addr(self.addr).display(self.kind), self.prefix)
    }
}

/// Parses `10.0.0.0/8,192.168.0.0/16,2001:db8::/32` (a bare address is a /32 or /128).
/// Host bits below the prefix are cleared.
pub fn parse_local_nets(s: &str) -> Result<Vec<LocalNet>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (a, p) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        // tcpdump's short IPv4 networks too: `10/8`, `172.16/12`, a bare `10` is 10.0.0.0/8.
        let (kind, mut addr, max, implied) = match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(v)) => (AddrKind::Ipv4, Addr::from_v4(v.octets()).0, 32u8, 32),
            Ok(IpAddr::V6(v)) => (AddrKind::Ipv6, v.octets(), 128u8, 128),
            Err(_) => match crate::filter::short_v4(a) {
                Some((v4, implied)) => (AddrKind::Ipv4, Addr::from_v4(v4).0, 32, implied),
                None => {
                    return Err(format!(
                        "'{item}' is not a network (CIDR like 10.0.0.0/8 or 10/8)"
                    ))
                }
            },
        };
        let prefix = match p {
            None => implied,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{item}': prefix length must be 0..={max}")),
            },
        };
        for (i, b) in addr.iter_mut().enumerate() {
            let bits = (i * 8) as u32;
            if bits >= u32::from(prefix) {
                *b = 0;
            } else if bits + 8 > u32::from(prefix) {
                *b &= 0xffu8 << (8 - (u32::from(prefix) - bits));
            }
        }
        out.push(LocalNet { kind, addr, prefix });
    }
    Ok(out)
}

/// Parses a port list `25,465,587` (service names from the built-in table work too).
pub fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .or_else(|| crate::services::port_by_name(p))
                .ok_or_else(|| format!("'{p}' is not a port"))
        })
        .collect()
}

/// What ranks the top hosts, peers and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rank {
    #[default]
    Bytes,
    Pkts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Text,
    Json,
}

/// Everything `tapflow report` can be told; see the module doc for the flags and defaults.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub local: Vec<LocalNet>,
    pub top: usize,
    pub top_peers: usize,
    pub top_ports: usize,
    pub rank: Rank,
    pub fanout_ports: Vec<u16>,
    pub fanout_k: u64,
    pub fanout_window_ns: u64,
    pub fanout_hop_ns: u64,
    pub fanout_lateness_ns: u64,
    pub scan_min_targets: u64,
    pub scan_max_pkts: u64,
    pub talker_capacity: usize,
    pub peer_capacity: usize,
    pub fanout_capacity: usize,
    pub scan_capacity: usize,
    pub max_alerts: usize,
    pub format: ReportFormat,
}

const NS: u64 = 1_000_000_000;

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            local: Vec::new(),
            top: 10,
            top_peers: 5,
            top_ports: 5,
            rank: Rank::Bytes,
            fanout_ports: vec![25],
            fanout_k: 100,
            fanout_window_ns: 3600 * NS,
            fanout_hop_ns: 600 * NS,
            fanout_lateness_ns: 600 * NS,
            scan_min_targets: 100,
            scan_max_pkts: 3,
            talker_capacity: 1024,
            peer_capacity: 32,
            fanout_capacity: 1024,
            scan_capacity: 2048,
            max_alerts: 1000,
            format: ReportFormat::Text,
        }
    }
}

/// Window geometry in hops: (hop ns, hops per window, hops of lateness). Zero or odd values
/// are clamped to something usable rather than rejected.
fn geometry(o: &ReportOptions) -> (u64, u64, u64) {
    let window = if o.fanout_window_ns == 0 {
        3600 * NS
    } else {
        o.fanout_window_ns
    };
    let hop = match o.fanout_hop_ns {
        0 => window / 6,
        h => h,
    };
    // Windows are whole hops, at most 1024 of them: that bounds the per-host state.
    let hop = hop.max(window.div_ceil(1024)).clamp(1, window);
    let per_window = window.div_ceil(hop).clamp(1, 1024);
    let late = o.fanout_lateness_ns.div_ceil(hop).min(1024);
    (hop, per_window, late)
}

/// Upper bound on the report's heap use for `o`, bytes (see the module doc). Generous: it
/// counts hash-table slack and the largest form of every counter.
pub fn memory_bound(o: &ReportOptions) -> usize {
    let (_, per_window, late) = geometry(o);
    // A distinct counter owns at most 128 hashes or 1024 registers.
    let distinct = DISTINCT_EXACT_CAP * 8;
    // A table of n entries: its Vec and hash index each hold at most ~2n slots.
    fn table<K, V>(n: usize) -> usize {
        2 * n * (std::mem::size_of::<Slot<K, V>>() + 8)
            + 2 * n * (std::mem::size_of::<(K, u32)>() + 1)
    }
    let peer = o.peer_capacity.max(1);
    let talker = distinct
        + std::mem::size_of::<Nested>()
        + table::<Host, Traffic>(peer)
        + table::<Service, Traffic>(peer);
    let talkers =
        table::<Host, HostAcc>(o.talker_capacity.max(1)) + o.talker_capacity.max(1) * talker;
    let buckets = (per_window + late + 1) as usize;
    let fan = 2 * buckets * std::mem::size_of::<(u64, Distinct)>() + buckets * distinct;
    // Plus the union of one window being evaluated.
    let fans = table::<Host, FanHost>(o.fanout_capacity.max(1))
        + o.fanout_capacity.max(1) * fan
        + distinct;
    let scan = 3 * distinct
        + std::mem::size_of::<SpaceSaving<Service, ()>>()
        + table::<Service, ()>(SCAN_PORTS_CAP);
    let scans = table::<Host, ScanAcc>(o.scan_capacity.max(1)) + o.scan_capacity.max(1) * scan;
    let alerts = 2 * o.max_alerts.max(1) * (std::mem::size_of::<(Host, AlertAcc)>() + 1);
    talkers + fans + scans + alerts + 2 * distinct
}

// ---------------------------------------------------------------------------------------------
// Accumulators

/// An endpoint address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host {
    pub kind: AddrKind,
    pub addr: Addr,
}

impl Host {
    fn hash64(&self) -> u64 {
        let a = &self.addr.0;
        let lo = u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
        let hi = u64::from_le_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
        mix64(mix64(lo ^ self.kind as u64) ^ hi)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr.display(self.kind))
    }
}

/// A service: protocol, responder port (0 without ports) and whether the local host served it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    pub proto: u8,
    pub port: u16,
    pub served: bool,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match proto_name_static(self.proto) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "proto{}", self.proto)?,
        }
        if has_ports(self.proto) {
            write!(f, "/{}", self.port)?;
        }
        if self.served {
            f.write_str(" (served)")?;
        }
        Ok(())
    }
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// Bytes, packets and records from one local host's point of view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub out_bytes: u64,
    pub in_bytes: u64,
    pub out_pkts: u64,
    pub in_pkts: u64,
    pub records: u64,
}

impl Traffic {
    fn add(&mut self, sent: &DirStats, recv: &DirStats) {
        self.out_bytes = self.out_bytes.saturating_add(sent.bytes);
        self.in_bytes = self.in_bytes.saturating_add(recv.bytes);
        self.out_pkts = self.out_pkts.saturating_add(sent.pkts);
        self.in_pkts = self.in_pkts.saturating_add(recv.pkts);
        self.records += 1;
    }
    pub fn bytes(&self) -> u64 {
        self.out_bytes.saturating_add(self.in_bytes)
    }
    pub fn pkts(&self) -> u64 {
        self.out_pkts.saturating_add(self.in_pkts)
    }
}

struct Nested {
    peers: SpaceSaving<Host, Traffic>,
    ports: SpaceSaving<Service, Traffic>,
}

#[derive(Default)]
struct HostAcc {
    traffic: Traffic,
    peer_count: Distinct,
    /// Boxed and created on first use: keeps heap swaps cheap.
    nested: Option<Box<Nested>>,
}

#[derive(Default)]
struct FanHost {
    /// (hop index, distinct remotes contacted in that hop), ascending, at most
    /// hops-per-window + lateness + 1 of them.
    buckets: VecDeque<(u64, Distinct)>,
    contacts: u64,
    first_ns: u64,
    last_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct AlertAcc {
    peak: u64,
    exact: bool,
    window_start_ns: u64,
    contacts: u64,
    first_ns: u64,
    last_ns: u64,
}

/// Ports kept per scanning source (to name what it scans).
const SCAN_PORTS_CAP: usize = 8;

#[derive(Default)]
struct ScanAcc {
    targets: Distinct,
    hosts: Distinct,
    ports: Distinct,
    probes: u64,
    first_ns: u64,
    last_ns: u64,
    top_ports: Option<Box<SpaceSaving<Service, ()>>>,
}

fn span(first: &mut u64, last: &mut u64, t: u64) {
    if *first == 0 || t < *first {
        *first = t;
    }
    *last = (*last).max(t);
}

#[derive(Default)]
struct TotalsAcc {
    records: u64,
    meta: u64,
    non_ip: u64,
    first_ns: u64,
    last_ns: u64,
    out: Traffic,
    inside: Traffic,
    transit: Traffic,
}

/// Sizes of the bounded structures, for checking the memory claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SketchStats {
    pub talkers: usize,
    pub talker_capacity: usize,
    pub max_peers_per_talker: usize,
    pub fanout_hosts: usize,
    pub fanout_capacity: usize,
    pub max_buckets_per_fanout_host: usize,
    pub scan_sources: usize,
    pub scan_capacity: usize,
    pub alerts: usize,
    pub approx_heap_bytes: usize,
}

/// The report builder: feed it records with [`add`](Reporter::add), then
/// [`finish`](Reporter::finish).
pub struct Reporter {
    opts: ReportOptions,
    hop_ns: u64,
    hops_per_window: u64,
    late_hops: u64,
    totals: TotalsAcc,
    local_hosts: Distinct,
    remote_hosts: Distinct,
    talkers: SpaceSaving<Host, HostAcc>,
    talker_evictions: u64,
    fan: SpaceSaving<Host, FanHost>,
    fan_evictions: u64,
    alerts: HashMap<Host, AlertAcc>,
    alerts_dropped: u64,
    scans: SpaceSaving<Host, ScanAcc>,
    scan_evictions: u64,
}

impl Reporter {
    pub fn new(opts: &ReportOptions) -> Reporter {
        let (hop_ns, hops_per_window, late_hops) = geometry(opts);
        Reporter {
            opts: opts.clone(),
            hop_ns,
            hops_per_window,
            late_hops,
            totals: TotalsAcc::default(),
            local_hosts: Distinct::default(),
            remote_hosts: Distinct::default(),
            talkers: SpaceSaving::new(opts.talker_capacity),
            talker_evictions: 0,
            fan: SpaceSaving::new(opts.fanout_capacity),
            fan_evictions: 0,
            alerts: HashMap::new(),
            alerts_dropped: 0,
            scans: SpaceSaving::new(opts.scan_capacity),
            scan_evictions: 0,
        }
    }

    fn is_local(&self, h: &Host) -> bool {
        self.opts.local.is_empty() || self.opts.local.iter().any(|n| n.contains(h.kind, &h.addr))
    }

    pub fn add(&mut self, r: &FlowRecord) {
        if r.is_meta() {
            self.totals.meta += 1;
            return;
        }
        if r.addr_kind == AddrKind::L2 {
            self.totals.non_ip += 1;
            return;
        }
        let t = &mut self.totals;
        t.records += 1;
        span(&mut t.first_ns, &mut t.last_ns, r.stime_ns);
        t.last_ns = t.last_ns.max(r.ltime_ns);

        let s = Host {
            kind: r.addr_kind,
            addr: r.saddr,
        };
        let d = Host {
            kind: r.addr_kind,
            addr: r.daddr,
        };
        let (sl, dl) = (self.is_local(&s), self.is_local(&d));
        let ports = has_ports(r.proto);
        let svc = |served| Service {
            proto: r.proto,
            port: if ports { r.dport } else { 0 },
            served: served && ports,
        };
        if sl {
            self.talk(s, d, svc(false), &r.src, &r.dst);
            self.local_hosts.insert(s.hash64());
        } else {
            self.remote_hosts.insert(s.hash64());
        }
        if dl {
            self.talk(d, s, svc(true), &r.dst, &r.src);
            self.local_hosts.insert(d.hash64());
        } else {
            self.remote_hosts.insert(d.hash64());
        }
        let t = &mut self.totals;
        match (sl, dl) {
            (true, true) => t.inside.add(&r.src, &r.dst),
            (true, false) => t.out.add(&r.src, &r.dst),
            (false, true) => t.out.add(&r.dst, &r.src),
            (false, false) => t.transit.add(&r.src, &r.dst),
        }
        // `out` above holds what local hosts sent in its out_* and what they received in in_*.

        let remote_dst = !dl || self.opts.local.is_empty();
        if sl && remote_dst && ports && self.opts.fanout_ports.contains(&r.dport) {
            self.fanout(s, d, r.stime_ns);
        }
        if is_probe(r, self.opts.scan_max_pkts) {
            self.scan(s, d, r);
        }
    }

    fn talk(&mut self, local: Host, peer: Host, svc: Service, sent: &DirStats, recv: &DirStats) {
        let w = match self.opts.rank {
            Rank::Bytes => sent.bytes.saturating_add(recv.bytes),
            Rank::Pkts => sent.pkts.saturating_add(recv.pkts),
        };
        // Nothing to rank: do not push a real host out for it.
        if w == 0 && !self.talkers.contains(&local) {
            return;
        }
        let cap = self.opts.peer_capacity;
        let (slot, evicted) = self.talkers.add(local, w);
        self.talker_evictions += u64::from(evicted.is_some());
        let acc = &mut slot.val;
        acc.traffic.add(sent, recv);
        acc.peer_count.insert(peer.hash64());
        let n = acc.nested.get_or_insert_with(|| {
            Box::new(Nested {
                peers: SpaceSaving::new(cap),
                ports: SpaceSaving::new(cap),
            })
        });
        n.peers.add(peer, w).0.val.add(sent, recv);
        n.ports.add(svc, w).0.val.add(sent, recv);
    }

    fn fanout(&mut self, local: Host, remote: Host, t: u64) {
        let (hop, per_window, late) = (self.hop_ns, self.hops_per_window, self.late_hops);
        let k = self.opts.fanout_k;
        let (slot, evicted) = self.fan.add(local, 1);
        let fh = &mut slot.val;
        fh.contacts += 1;
        span(&mut fh.first_ns, &mut fh.last_ns, t);
        let idx = t / hop;
        let h = remote.hash64();
        let mut due = Vec::new();
        match fh.buckets.back() {
            None => fh.buckets.push_back((idx, Distinct::default())),
            Some(&(newest, _)) if idx > newest => {
                fh.buckets.push_back((idx, Distinct::default()));
                // Buckets too old to take late records close: the window starting at each is
                // final, evaluate it before dropping the bucket.
                while let Some(&(oldest, _)) = fh.buckets.front() {
                    if oldest.saturating_add(per_window - 1 + late) >= idx {
                        break;
                    }
                    due.push(window_count(&fh.buckets, oldest, per_window));
                    fh.buckets.pop_front();
                }
            }
            Some(_) => {}
        }
        // Find (or make) the bucket for idx. A record later than the lateness allowance counts
        // in the oldest bucket still allowed (older ones may already have been evaluated).
        let newest = fh.buckets.back().map_or(idx, |b| b.0);
        let idx = idx.max(newest.saturating_sub(per_window - 1 + late));
        let pos = match fh.buckets.binary_search_by_key(&idx, |b| b.0) {
            Ok(p) => p,
            Err(p) => {
                fh.buckets.insert(p, (idx, Distinct::default()));
                p
            }
        };
        fh.buckets[pos].1.insert(h);
        let state = (fh.contacts, fh.first_ns, fh.last_ns);
        for (start, count, exact) in due {
            self.raise(local, start * hop, count, exact, state, k);
        }
        if let Some(old) = evicted {
            self.fan_evictions += 1;
            self.flush_fan(old.key, &old.val);
        }
    }

    /// Evaluates every window still pending for an evicted or final host.
    fn flush_fan(&mut self, host: Host, fh: &FanHost) {
        let state = (fh.contacts, fh.first_ns, fh.last_ns);
        for &(start, _) in &fh.buckets {
            let (s, count, exact) = window_count(&fh.buckets, start, self.hops_per_window);
            self.raise(
                host,
                s * self.hop_ns,
                count,
                exact,
                state,
                self.opts.fanout_k,
            );
        }
    }

    /// Records an alert when `count > k`, keeping the host's largest window.
    fn raise(
        &mut self,
        host: Host,
        start_ns: u64,
        count: u64,
        exact: bool,
        (contacts, first_ns, last_ns): (u64, u64, u64),
        k: u64,
    ) {
        if count <= k {
            return;
        }
        let new = AlertAcc {
            peak: count,
            exact,
            window_start_ns: start_ns,
            contacts,
            first_ns,
            last_ns,
        };
        if let Some(a) = self.alerts.get_mut(&host) {
            // The same host again (or readmitted after eviction): keep its worst window.
            let (peak, exact, start) = if count > a.peak {
                (count, exact, start_ns)
            } else {
                (a.peak, a.exact, a.window_start_ns)
            };
            *a = AlertAcc {
                peak,
                exact,
                window_start_ns: start,
                contacts: contacts.max(a.contacts),
                first_ns: a.first_ns.min(first_ns),
                last_ns: a.last_ns.max(last_ns),
            };
            return;
        }
        if self.alerts.len() >= self.opts.max_alerts.max(1) {
            // Full: keep the largest alerts. Rare (each alert takes > k contacts), so the scan
            // for the smallest is affordable.
            self.alerts_dropped += 1;
            let min = self
                .alerts
                .iter()
                .min_by_key(|(_, a)| a.peak)
                .map(|(h, a)| (*h, a.peak));
            match min {
                Some((h, p)) if p < count => {
                    self.alerts.remove(&h);
                }
                _ => return,
            }
        }
        self.alerts.insert(host, new);
    }

    fn scan(&mut self, src: Host, dst: Host, r: &FlowRecord) {
        let ports = has_ports(r.proto);
        let port = if ports { r.dport } else { 0 };
        let target = mix64(dst.hash64() ^ mix64((u64::from(r.proto) << 16 | u64::from(port)) + 1));
        let (slot, evicted) = self.scans.add(src, 1);
        self.scan_evictions += u64::from(evicted.is_some());
        let a = &mut slot.val;
        a.probes += 1;
        span(&mut a.first_ns, &mut a.last_ns, r.stime_ns);
        a.targets.insert(target);
        a.hosts.insert(dst.hash64());
        if ports {
            a.ports
                .insert(mix64(u64::from(r.proto) << 16 | u64::from(port)));
        }
        let svc = Service {
            proto: r.proto,
            port,
            served: false,
        };
        a.top_ports
            .get_or_insert_with(|| Box::new(SpaceSaving::new(SCAN_PORTS_CAP)))
            .add(svc, 1);
    }

    /// Current sizes of the bounded structures.
    pub fn stats(&self) -> SketchStats {
        let mut heap = self.talkers.table_bytes()
            + self.fan.table_bytes()
            + self.scans.table_bytes()
            + self.alerts.capacity() * (std::mem::size_of::<(Host, AlertAcc)>() + 1)
            + self.local_hosts.heap_bytes()
            + self.remote_hosts.heap_bytes();
        let mut max_peers = 0;
        for s in self.talkers.iter() {
            heap += s.val.peer_count.heap_bytes();
            if let Some(n) = &s.val.nested {
                heap +=
                    std::mem::size_of::<Nested>() + n.peers.table_bytes() + n.ports.table_bytes();
                max_peers = max_peers.max(n.peers.len()).max(n.ports.len());
            }
        }
        let mut max_buckets = 0;
        for s in self.fan.iter() {
            max_buckets = max_buckets.max(s.val.buckets.len());
            heap += s.val.buckets.capacity() * std::mem::size_of::<(u64, Distinct)>();
            heap += s
                .val
                .buckets
                .iter()
                .map(|b| b.1.heap_bytes())
                .sum::<usize>();
        }
        for s in self.scans.iter() {
            let a = &s.val;
            heap += a.targets.heap_bytes() + a.hosts.heap_bytes() + a.ports.heap_bytes();
            if let Some(p) = &a.top_ports {
                heap += std::mem::size_of::<SpaceSaving<Service, ()>>() + p.table_bytes();
            }
        }
        SketchStats {
            talkers: self.talkers.len(),
            talker_capacity: self.talkers.capacity(),
            max_peers_per_talker: max_peers,
            fanout_hosts: self.fan.len(),
            fanout_capacity: self.fan.capacity(),
            max_buckets_per_fanout_host: max_buckets,
            scan_sources: self.scans.len(),
            scan_capacity: self.scans.capacity(),
            alerts: self.alerts.len(),
            approx_heap_bytes: heap,
        }
    }

    /// Closes every pending window and builds the report.
    pub fn finish(mut self) -> Report {
        let fan = std::mem::replace(&mut self.fan, SpaceSaving::new(1));
        for s in fan.iter() {
            self.flush_fan(s.key, &s.val);
        }
        let o = &self.opts;
        let t = &self.totals;
        let secs = |ns: u64| ns as f64 / 1e9;

        let mut top_hosts = Vec::new();
        for s in self.talkers.sorted().into_iter().take(o.top) {
            let a = &s.val;
            let (peers, ports) = match &a.nested {
                Some(n) => (
                    n.peers
                        .sorted()
                        .into_iter()
                        .take(o.top_peers)
                        .map(|p| PeerReport {
                            name: p.key.to_string(),
                            traffic: p.val,
                            error: p.err,
                        })
                        .collect(),
                    n.ports
                        .sorted()
                        .into_iter()
                        .take(o.top_ports)
                        .map(|p| PeerReport {
                            name: p.key.to_string(),
                            traffic: p.val,
                            error: p.err,
                        })
                        .collect(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            top_hosts.push(HostReport {
                host: s.key.to_string(),
                traffic: a.traffic,
                error: s.err,
                peers_distinct: a.peer_count.estimate(),
                peers_exact: a.peer_count.is_exact(),
                peers,
                ports,
            });
        }

        let mut alerts: Vec<(Host, AlertAcc)> = self.alerts.iter().map(|(h, a)| (*h, *a)).collect();
        alerts.sort_by(|a, b| b.1.peak.cmp(&a.1.peak).then(a.0.cmp(&b.0)));
        let window = self.hop_ns * self.hops_per_window;
        let fanout_alerts = alerts
            .into_iter()
            .map(|(h, a)| FanoutAlert {
                host: h.to_string(),
                remotes: a.peak,
                exact: a.exact,
                window_start: secs(a.window_start_ns),
                window_end: secs(a.window_start_ns.saturating_add(window)),
                contacts: a.contacts,
                first_seen: secs(a.first_ns),
                last_seen: secs(a.last_ns),
            })
            .collect();

        let mut scanners: Vec<(Host, Scanner)> = Vec::new();
        for s in self.scans.iter() {
            let a = &s.val;
            let targets = a.targets.estimate();
            if targets < o.scan_min_targets.max(1) {
                continue;
            }
            let (hosts, ports) = (a.hosts.estimate(), a.ports.estimate());
            let kind = if ports <= 2 && hosts > 2 {
                "horizontal"
            } else if hosts <= 2 {
                "vertical"
            } else {
                "mixed"
            };
            let top_ports = a
                .top_ports
                .as_ref()
                .map(|p| {
                    p.sorted()
                        .into_iter()
                        .take(3)
                        .map(|x| x.key.to_string())
                        .collect()
                })
                .unwrap_or_default();
            scanners.push((
                s.key,
                Scanner {
                    source: s.key.to_string(),
                    targets,
                    hosts,
                    ports,
                    targets_exact: a.targets.is_exact(),
                    hosts_exact: a.hosts.is_exact(),
                    ports_exact: a.ports.is_exact(),
                    probes: a.probes,
                    error: s.err,
                    kind,
                    top_ports,
                    first_seen: secs(a.first_ns),
                    last_seen: secs(a.last_ns),
                },
            ));
        }
        scanners.sort_by(|a, b| b.1.targets.cmp(&a.1.targets).then(a.0.cmp(&b.0)));

        Report {
            first_seen: secs(t.first_ns),
            last_seen: secs(t.last_ns),
            local_networks: o.local.iter().map(|n| n.to_string()).collect(),
            rank: match o.rank {
                Rank::Bytes => "bytes",
                Rank::Pkts => "pkts",
            },
            totals: Totals {
                records: t.records,
                meta_records_skipped: t.meta,
                non_ip_records: t.non_ip,
                outbound: t.out,
                internal: t.inside,
                transit: t.transit,
                local_hosts: self.local_hosts.estimate(),
                remote_hosts: self.remote_hosts.estimate(),
                local_hosts_exact: self.local_hosts.is_exact(),
                remote_hosts_exact: self.remote_hosts.is_exact(),
            },
            top_hosts,
            fanout: FanoutReport {
                ports: o.fanout_ports.clone(),
                threshold: o.fanout_k,
                window_secs: secs(window),
                hop_secs: secs(self.hop_ns),
                alerts: fanout_alerts,
                alerts_dropped: self.alerts_dropped,
            },
            scans: ScanReport {
                min_targets: o.scan_min_targets,
                max_pkts: o.scan_max_pkts,
                scanners: scanners.into_iter().map(|s| s.1).collect(),
            },
            limits: Limits {
                talker_capacity: self.talkers.capacity(),
                talker_evictions: self.talker_evictions,
                fanout_capacity: self.opts.fanout_capacity.max(1),
                fanout_evictions: self.fan_evictions,
                scan_capacity: self.scans.capacity(),
                scan_evictions: self.scan_evictions,
            },
        }
    }
}

/// Distinct remotes in the window of `per_window` hops starting at hop `start`:
/// (start, count, exact).
fn window_count(
    buckets: &VecDeque<(u64, Distinct)>,
    start: u64,
    per_window: u64,
) -> (u64, u64, bool) {
    let end = start.saturating_add(per_window);
    let mut u = Distinct::default();
    for (i, d) in buckets {
        if *i >= start && *i < end {
            u.merge(d);
        }
    }
    (start, u.estimate(), u.is_exact())
}

// ---------------------------------------------------------------------------------------------
// The report

/// A peer or port under a top host.
#[derive(Clone, Debug, Serialize)]
pub struct PeerReport {
    pub name: String,
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Space-Saving error bound of its rank (0: exact).
    pub error: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    pub host: String,
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Space-Saving error bound (0: figures exact).
    pub error: u64,
    pub peers_distinct: u64,
    pub peers_exact: bool,
    pub peers: Vec<PeerReport>,
    pub ports: Vec<PeerReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Flow records counted (IP records; status records and non-IP records are not).
    pub records: u64,
    pub meta_records_skipped: u64,
    pub non_ip_records: u64,
    /// Between a local and a remote host: `out_*` sent by the local side, `in_*` received.
    pub outbound: Traffic,
    /// Between two local hosts (`out` = sent by the initiator).
    pub internal: Traffic,
    /// Between two non-local hosts.
    pub transit: Traffic,
    pub local_hosts: u64,
    pub local_hosts_exact: bool,
    pub remote_hosts: u64,
    pub remote_hosts_exact: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutAlert {
    pub host: String,
    /// Distinct remote hosts in the host's worst window.
    pub remotes: u64,
    pub exact: bool,
    pub window_start: f64,
    pub window_end: f64,
    /// Records to the fan-out ports since the host was tracked.
    pub contacts: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    pub ports: Vec<u16>,
    pub threshold: u64,
    pub window_secs: f64,
    pub hop_secs: f64,
    pub alerts: Vec<FanoutAlert>,
    /// Alerts not kept because `max_alerts` were already held.
    pub alerts_dropped: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scanner {
    pub source: String,
    /// Distinct (destination, protocol, port) targets probed.
    pub targets: u64,
    pub targets_exact: bool,
    pub hosts: u64,
    pub hosts_exact: bool,
    pub ports: u64,
    pub ports_exact: bool,
    pub probes: u64,
    /// Space-Saving error bound of `probes` (0: tracked from its first probe).
    pub error: u64,
    pub kind: &'static str,
    pub top_ports: Vec<String>,
    pub first_seen: f64,
    pub last_seen: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    pub min_targets: u64,
    pub max_pkts: u64,
    pub scanners: Vec<Scanner>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub talker_capacity: usize,
    pub talker_evictions: u64,
    pub fanout_capacity: usize,
    pub fanout_evictions: u64,
    pub scan_capacity: usize,
    pub scan_evictions: u64,
}

/// The finished report. Times are epoch seconds (as `tapflow read --json` prints them).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub first_seen: f64,
    pub last_seen: f64,
    pub local_networks: Vec<String>,
    pub rank: &'static str,
    pub totals: Totals,
    pub top_hosts: Vec<HostReport>,
    pub fanout: FanoutReport,
    pub scans: ScanReport,
    pub limits: Limits,
}

/// Builds the report from `records`.
pub fn build(records: &mut dyn Iterator<Item = FlowRecord>, opts: &ReportOptions) -> Report {
    let mut rep = Reporter::new(opts);
    for r in records {
        rep.add(&r);
    }
    rep.finish()
}

/// `tapflow report`: reads every record, writes the report in the chosen format.
pub fn run(
    records: &mut dyn Iterator<Item = FlowRecord>,
    opts: &ReportOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let report = build(records, opts);
    match opts.format {
        ReportFormat::Text => write_text(&report, out),
        ReportFormat::Json => write_json(&report, out),
    }
}

pub fn write_json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// 1234 → "1.2K", SI (powers of 1000), three significant digits at most.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1000 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut u = 0;
    v /= 1000.0;
    while v >= 999.95 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if v < 9.995 {
        format!("{v:.2}{}", UNITS[u])
    } else if v < 99.95 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

fn utc(secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    let (y, mo, d, h, mi, s) = time::utc(secs as u64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn approx(n: u64, exact: bool) -> String {
    if exact {
        n.to_string()
    } else {
        format!("~{}", human(n))
    }
}

/// Aligned columns; the first row is the header, `right[i]` right-aligns column i.
fn write_table(out: &mut dyn Write, rows: &[Vec<String>], right: &[bool]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut w = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut line = String::new();
    for r in rows {
        line.clear();
        line.push_str("  ");
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w[i] - c.chars().count();
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn traffic_cells(label: String, t: &Traffic, extra: String) -> Vec<String> {
    vec![
        label,
        human(t.bytes()),
        human(t.out_bytes),
        human(t.in_bytes),
        human(t.out_pkts),
        human(t.in_pkts),
        t.records.to_string(),
        extra,
    ]
}

pub fn write_text(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let t = &r.totals;
    writeln!(out, "tapflow report")?;
    writeln!(
        out,
        "  period   {} .. {} UTC",
        utc(r.first_seen),
        utc(r.last_seen)
    )?;
    writeln!(
        out,
        "  records  {} flow records ({} status records skipped, {} non-IP)",
        t.records, t.meta_records_skipped, t.non_ip_records
    )?;
    let nets = if r.local_networks.is_empty() {
        "(none given: every address is local)".to_string()
    } else {
        r.local_networks.join(", ")
    };
    writeln!(out, "  local    {nets}")?;
    writeln!(
        out,
        "  traffic  out {}B/{} pkts, in {}B/{} pkts, internal {}B, transit {}B",
        human(t.outbound.out_bytes),
        human(t.outbound.out_pkts),
        human(t.outbound.in_bytes),
        human(t.outbound.in_pkts),
        human(t.internal.bytes()),
        human(t.transit.bytes()),
    )?;
    writeln!(
        out,
        "  hosts    {} local, {} remote",
        approx(t.local_hosts, t.local_hosts_exact),
        approx(t.remote_hosts, t.remote_hosts_exact)
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "Top {} local hosts by {} (out = sent by the local host, in = received; ~ = estimate)",
        r.top_hosts.len(),
        r.rank
    )?;
    if r.top_hosts.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let mut rows = vec![[
            "Host / peer / port",
            "Bytes",
            "OutBytes",
            "InBytes",
            "OutPkts",
            "InPkts",
            "Recs",
            "Peers",
        ]
        .map(String::from)
        .to_vec()];
        for (i, h) in r.top_hosts.iter().enumerate() {
            let mark = if h.error > 0 { "~" } else { "" };
            rows.push(traffic_cells(
                format!("{:>2} {mark}{}", i + 1, h.host),
                &h.traffic,
                approx(h.peers_distinct, h.peers_exact),
            ));
            for p in &h.peers {
                rows.push(traffic_cells(
                    format!("     peer {}", p.name),
                    &p.traffic,
                    String::new(),
                ));
            }
            for p in &h.ports {
                rows.push(traffic_cells(
                    format!("     port {}", p.name),
                    &p.traffic,
                    String::new(),
                ));
            }
        }
        write_table(
            out,
            &rows,
            &[false, true, true, true, true, true, true, true],
        )?;
    }

    let f = &r.fanout;
    writeln!(out)?;
    let ports: Vec<String> = f.ports.iter().map(u16::to_string).collect();
    writeln!(
        out,
        "Fan-out: local hosts contacting more than {} remote hosts on port {} within {} (windows every {})",
        f.threshold,
        ports.join(","),
        dur_text(f.window_secs),
        dur_text(f.hop_secs)
    )?;
    if f.alerts.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let mut rows = vec![[
            "Host",
            "Remotes",
            "Window (UTC)",
            "Contacts",
            "First",
            "Last",
        ]
        .map(String::from)
        .to_vec()];
        for a in &f.alerts {
            rows.push(vec![
                a.host.clone(),
                approx(a.remotes, a.exact),
                format!(
                    "{} +{}",
                    utc(a.window_start),
                    dur_text(a.window_end - a.window_start)
                ),
                a.contacts.to_string(),
                utc(a.first_seen),
                utc(a.last_seen),
            ]);
        }
        write_table(out, &rows, &[false, true, false, true, false, false])?;
        if f.alerts_dropped > 0 {
            writeln!(out, "  ({} more alerts not kept)", f.alerts_dropped)?;
        }
    }

    let s = &r.scans;
    writeln!(out)?;
    writeln!(
        out,
        "Scans: sources probing at least {} targets (host, port) with at most {} packets and no reply payload each",
        s.min_targets, s.max_pkts
    )?;
    if s.scanners.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let mut rows = vec![[
            "Source", "Targets", "Hosts", "Ports", "Probes", "Kind", "TopPorts", "First", "Last",
        ]
        .map(String::from)
        .to_vec()];
        for c in &s.scanners {
            rows.push(vec![
                c.source.clone(),
                approx(c.targets, c.targets_exact),
                approx(c.hosts, c.hosts_exact),
                approx(c.ports, c.ports_exact),
                c.probes.to_string(),
                c.kind.to_string(),
                c.top_ports.join(","),
                utc(c.first_seen),
                utc(c.last_seen),
            ]);
        }
        write_table(
            out,
            &rows,
            &[false, true, true, true, true, false, false, false, false],
        )?;
    }

    let l = &r.limits;
    writeln!(out)?;
    let mut note = String::new();
    let _ = write!(
        note,
        "Bounded memory: {} local hosts tracked at most ({} evictions), {} fan-out hosts ({}), {} scan sources ({})",
        l.talker_capacity,
        l.talker_evictions,
        l.fanout_capacity,
        l.fanout_evictions,
        l.scan_capacity,
        l.scan_evictions
    );
    writeln!(out, "{note}")
}

fn dur_text(secs: f64) -> String {
    let s = secs.round() as u64;
    if s > 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;

/// A record that looks like a scan probe: few packets from the initiator and no real answer.
/// Judged per record, so continuation records of ordinary flows must not qualify: a TCP probe
/// carries the initiator's SYN and no SYN-ACK came back; an ICMP probe is a request (echo,
/// timestamp, address mask; ICMPv6 echo), not an error message or a reply, which routers
/// send to many hosts.
fn is_probe(r: &FlowRecord, max_pkts: u64) -> bool {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    if r.src.pkts == 0 || r.src.pkts > max_pkts {
        return false;
    }
    if r.is_icmp() {
        let ty = (r.sport >> 8) as u8;
        return match r.addr_kind {
            tapflow_record::AddrKind::Ipv4 => matches!(ty, 8 | 13 | 15 | 17),
            _ => ty == 128,
        };
    }
    if r.proto == 6 {
        let synack = r.dst.tcp_flags & (SYN | ACK) == SYN | ACK;
        return r.src.tcp_flags & SYN != 0 && !synack && r.dst.app_bytes == 0;
    }
    r.dst.app_bytes == 0
}
