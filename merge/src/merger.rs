//! The merge core: joins the one-way half-records of two (or more) probes into the
//! bidirectional records one probe seeing both directions would have written.
//!
//! How (docs/merge.md has the full story):
//!
//! * One-way probes report every status interval in which a flow had packets, so every
//!   half-record's packets lie in one interval: the one that ends at the first boundary after
//!   its `ltime`. The merger buffers each input's records in arrival order and merges an
//!   interval once every input's stream has passed it (its *watermark*: the boundary below the
//!   largest `ltime` seen, since a probe writes an interval's records when it crosses its end).
//! * Within an interval, halves are joined on the canonical flow key into a merged flow. The
//!   merged flow then lives by the probe's own rules: idle timeout on the joined last-packet
//!   time, close linger once both FINs or a RST were seen, port reuse, status records for flows
//!   that lived a whole interval. So records come out as one probe would have written them.
//! * Each direction of a split-tap flow is seen by exactly one probe, so its counters are that
//!   probe's; times are moved onto the reference clock (input 0) with the online offset
//!   estimate ([`crate::clock`]) when the merged record is written.
//! * Sequence numbers drop duplicates (spool replays) and count gaps, per probe worker.

use std::collections::{HashMap, VecDeque};

use bincode::Options as _;
use serde::{Deserialize, Serialize};

use crate::clock::{Offset, OffsetEstimator};
use tapflow_probe::key::FlowKey;
use tapflow_probe::EngineConfig;
use tapflow_record::{
    flags, merge_flags, observed, tcp_opts, Addr, AddrKind, Cause, DirStats, Encap, FlowRecord,
    FlowState, MergeStatus,
};

/// Merge settings.
#[derive(Clone, Debug)]
pub struct MergeConfig {
    /// Probe id written into merged records.
    pub probe_id: u32,
    /// The probes' flow rules (timeouts, close linger, status interval, timer tick): the
    /// merged flow lives by them, so they must match the probes' (the defaults do).
    pub flow: EngineConfig,
    /// Merged flows held at most; beyond, the longest-idle are written out as `evicted`.
    pub max_flows: usize,
    /// Half-records buffered at most, all inputs together; beyond, intervals are merged
    /// without waiting for the slowest input (its late records are then applied late).
    pub max_buffered: usize,
    /// |offset| beyond this raises the skew alarm.
    pub skew_limit_ns: u64,
    /// Interval of merge-status records (0 = only the final one).
    pub stats_interval_ns: u64,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            probe_id: 0,
            flow: EngineConfig::default(),
            max_flows: 1 << 21,
            max_buffered: 8 << 20,
            skew_limit_ns: 100_000_000,
            stats_interval_ns: 60_000_000_000,
        }
    }
}

/// Receives merged records (and passed-through probe-status records).
pub trait MergeSink {
    fn record(&mut self, rec: &FlowRecord);
}

impl<F: FnMut(&FlowRecord)> MergeSink for F {
    fn record(&mut self, rec: &FlowRecord) {
        self(rec)
    }
}

/// The probe's canonical flow key, hashed once with its own hash (the default SipHash costs
/// more than the rest of a merge step). Serde: a newtype encodes as its key, so the snapshot's
/// flow table is plain (FlowKey, Flow) pairs. Ord: see `run_timers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Key(FlowKey);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.0.hash());
    }
}

/// Passes [`Key`]'s hash through.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, _: &[u8]) {
        unreachable!("Key hashes as one u64");
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The record's key, as the probe keys the flow, and whether its `src` is endpoint `a`.
fn key_of(r: &FlowRecord) -> (Key, bool) {
    let (k, swapped) = FlowKey::of_record(r).canonical();
    (Key(k), !swapped)
}

const T_SYN: u8 = 0x01;
const T_SYNACK: u8 = 0x02;
const T_FIN_A: u8 = 0x08;
const T_FIN_B: u8 = 0x10;
const T_RST: u8 = 0x20;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_FIN: u8 = 0x01;
const TCP_ACK: u8 = 0x10;

/// What the first (earliest) half says about the flow as a whole.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Face {
    init_is_a: bool,
    dir_guessed: bool,
    /// MACs of endpoint a and b.
    mac_a: [u8; 6],
    mac_b: [u8; 6],
    vlan: [u16; 2],
    mpls: [u32; 2],
    encap: Encap,
}

/// Handshake evidence: raw times on the clock of the input that saw each packet.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Hs {
    syn: u64,
    syn_in: u8,
    synack: u64,
    synack_in: u8,
    synack_ack: u32,
    ack: u64,
    ack_in: u8,
    ack_ack: u32,
    /// Bounds already taken from this flow (SYN→SYN-ACK, SYN-ACK→ACK).
    used: u8,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Flow {
    face: Face,
    /// Corrected time of the earliest half's first packet (decides `face`), u64::MAX if none.
    face_time: u64,
    /// `face` may no longer change (a record went out).
    frozen: bool,
    /// Input that reported each direction (u8::MAX: none yet).
    dir_in: [u8; 2],
    /// Raw first/last packet time per direction over the flow's life.
    first_raw: [u64; 2],
    last_raw: [u64; 2],
    /// First packet of the whole flow, corrected (for the status rule).
    first_ns: u64,
    /// Deltas since the last merged record, per direction (raw times).
    pend: [DirStats; 2],
    payload: [Vec<u8>; 2],
    /// Everything else accumulated since the last record.
    flags: u32,
    tcp_opts: u8,
    synack_no_wscale: bool,
    tcp: u8,
    /// Corrected close time (0 = not closing).
    close_at: u64,
    isn: [u32; 2],
    hs: Hs,
    /// Bit per input that contributed.
    inputs: u32,
    /// An ACK was sent by endpoint a / b.
    acked: [bool; 2],
}

impl Default for Flow {
    fn default() -> Flow {
        Flow {
            face: Face::default(),
            face_time: u64::MAX,
            frozen: false,
            dir_in: [u8::MAX; 2],
            first_raw: [0; 2],
            last_raw: [0; 2],
            first_ns: u64::MAX,
            pend: [DirStats::default(); 2],
            payload: [Vec::new(), Vec::new()],
            flags: 0,
            tcp_opts: 0,
            synack_no_wscale: false,
            tcp: 0,
            close_at: 0,
            isn: [0; 2],
            hs: Hs::default(),
            inputs: 0,
            acked: [false; 2],
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Input {
    probe_id: Option<u32>,
    queue: VecDeque<FlowRecord>,
    /// Smallest ltime in `queue` (raw).
    min_ltime: u64,
    /// Largest ltime per (probe run, worker), raw; the watermark is the minimum over the
    /// workers of the newest run.
    worker_ltime: HashMap<(u64, u16), u64>,
    /// Next expected seq per (probe run, worker): a restarted probe counts from 0 again.
    next_seq: HashMap<(u64, u16), u64>,
    /// Newest probe run seen (live transport; 0 for files).
    run: u64,
    done: bool,
    /// Silent or disconnected beyond the hold time: merging no longer waits for it.
    stalled: bool,
    /// Connected to the daemon (always true for files).
    disconnected: bool,
    stats: MergeStatus,
    last_stats: MergeStatus,
}

/// Merge counters (cumulative).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeStats {
    pub records_in: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub late: u64,
    pub passed_through: u64,
    pub joined: u64,
    pub one_sided: u64,
    pub records_out: u64,
    pub evictions: u64,
    /// Half-records whose direction was already reported by another probe (both legs saw it:
    /// not a split tap for that flow).
    pub overlaps: u64,
    pub peak_flows: u64,
}

pub struct Merger {
    cfg: MergeConfig,
    inputs: Vec<Input>,
    clocks: Vec<OffsetEstimator>,
    flows: KeyMap<Flow>,
    /// End of the last merged interval (reference clock), 0 before the first.
    merged_to: u64,
    /// Last boundary whose timers ran.
    timers_to: u64,
    buffered: usize,
    seq: u64,
    stats: MergeStats,
    last_global: MergeStats,
    next_stats_ns: u64,
    /// Largest corrected packet time seen (the "now" of the final flush).
    max_ns: u64,
    rec: FlowRecord,
    scratch: Vec<(u64, u8, FlowRecord)>,
    order: Vec<(u64, u32)>,
}

impl Merger {
    pub fn new(cfg: MergeConfig, inputs: usize) -> Merger {
        Merger {
            inputs: vec![Input::default(); inputs.max(1)],
            clocks: vec![OffsetEstimator::default(); inputs.max(1)],
            flows: KeyMap::default(),
            merged_to: 0,
            timers_to: 0,
            buffered: 0,
            seq: 0,
            stats: MergeStats::default(),
            last_global: MergeStats::default(),
            next_stats_ns: 0,
            max_ns: 0,
            rec: FlowRecord::default(),
            scratch: Vec::new(),
            order: Vec::new(),
            cfg,
        }
    }

    pub fn stats(&self) -> MergeStats {
        let mut s = self.stats.clone();
        s.peak_flows = s.peak_flows.max(self.flows.len() as u64);
        s
    }

    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    /// The current clock-offset estimate of `input` (input 0 is the reference).
    pub fn offset(&self, input: usize) -> Offset {
        self.clocks[input].estimate()
    }

    fn interval(&self) -> u64 {
        self.cfg.flow.status_interval_ns.max(1_000_000)
    }

    /// The interval a record's packets lie in: the first boundary after its ltime.
    fn window_of(&self, ltime: u64) -> u64 {
        let i = self.interval();
        (ltime / i + 1) * i
    }

    /// The offset estimate of `input` (none for the reference).
    fn offset_est(&self, input: usize) -> Offset {
        if input == 0 || input >= self.clocks.len() {
            Offset::default()
        } else {
            self.clocks[input].estimate()
        }
    }

    fn theta(&self, input: u8) -> i64 {
        self.offset_est(input as usize).offset_ns
    }

    fn correct(&self, input: u8, t: u64) -> u64 {
        if t == 0 {
            0
        } else {
            t.saturating_add_signed(-self.theta(input))
        }
    }

    /// Takes one record from `input`. Probe-status and two-way records pass straight through;
    /// one-way half-records are buffered until their interval can be merged.
    pub fn push(&mut self, input: usize, rec: FlowRecord, sink: &mut impl MergeSink) {
        self.push_run(input, 0, rec, sink)
    }

    /// [`Merger::push`] for a record of probe run `run` (the live transport names the run, so
    /// a restarted probe's sequence numbers, which start again at 0, are not duplicates).
    pub fn push_run(&mut self, input: usize, run: u64, rec: FlowRecord, sink: &mut impl MergeSink) {
        let late = rec.ltime_ns != 0
            && self.merged_to != 0
            && rec.src.pkts + rec.dst.pkts > 0
            && self.window_of(self.correct(input as u8, rec.ltime_ns)) <= self.merged_to;
        let inp = &mut self.inputs[input];
        inp.stats.records_in += 1;
        self.stats.records_in += 1;
        if rec.merge.is_none() {
            inp.probe_id.get_or_insert(rec.probe_id);
        }
        if run > inp.run {
            // The probe restarted: its old run's workers no longer hold the watermark back.
            inp.run = run;
            inp.worker_ltime.retain(|&(r, _), _| r >= run);
        }
        // Duplicates and gaps, per probe run and worker (seq high bits).
        let worker = (rec.seq >> 48) as u16;
        let next = inp
            .next_seq
            .entry((run, worker))
            .or_insert(rec.seq & !((1 << 48) - 1));
        if rec.seq < *next {
            inp.stats.duplicates += 1;
            self.stats.duplicates += 1;
            return;
        }
        if rec.seq > *next {
            inp.stats.gaps += rec.seq - *next;
            self.stats.gaps += rec.seq - *next;
        }
        *next = rec.seq + 1;
        if rec.ltime_ns != 0 && run == inp.run {
            let w = inp.worker_ltime.entry((run, worker)).or_insert(0);
            *w = (*w).max(rec.ltime_ns);
        }
        if rec.is_meta()
            || rec.observed == observed::SRC_TO_DST | observed::DST_TO_SRC
            || rec.is_ib()
        {
            // Probe accounting, or a flow this probe saw both ways: nothing to join.
            // InfiniBand flows pass as the probe wrote them: there is no IB join (an RC
            // connection is two one-way flows already; docs/erf-infiniband.md).
            self.stats.passed_through += 1;
            sink.record(&rec);
            return;
        }
        if late {
            inp.stats.late += 1;
            self.stats.late += 1;
        }
        if inp.queue.is_empty() {
            inp.min_ltime = u64::MAX;
        }
        inp.min_ltime = inp.min_ltime.min(rec.ltime_ns);
        inp.queue.push_back(rec);
        self.buffered += 1;
    }

    /// `input` has ended (end of file, or a live probe that said goodbye): its watermark is
    /// infinite from now on.
    pub fn finish_input(&mut self, input: usize) {
        self.inputs[input].done = true;
    }

    /// Live daemon: `input` is disconnected (`connected` false) and/or has been silent beyond
    /// the hold time (`stalled`): while stalled, intervals are merged without waiting for it,
    /// and what it sends later is applied late. Both show in its merge-status records.
    pub fn set_input_state(&mut self, input: usize, connected: bool, stalled: bool) {
        let inp = &mut self.inputs[input];
        inp.disconnected = !connected;
        inp.stalled = stalled;
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Raw watermark of `input` (u64::MAX once it ended): how far its stream has got.
    pub fn watermark_of(&self, input: usize) -> u64 {
        self.watermark(input)
    }

    /// Raw watermark of an input: every record whose own interval ends at or before it has
    /// arrived.
    fn watermark(&self, input: usize) -> u64 {
        let inp = &self.inputs[input];
        if inp.done || inp.stalled {
            return u64::MAX;
        }
        let i = self.interval();
        inp.worker_ltime
            .values()
            .map(|&l| l / i * i)
            .min()
            .unwrap_or(0)
    }

    /// True when interval `t` (reference clock) can be merged: every input's stream has passed
    /// the interval its records for `t` would be in on its own clock.
    fn ready(&self, t: u64) -> bool {
        let i = self.interval();
        (0..self.inputs.len()).all(|p| {
            let wm = self.watermark(p);
            if wm == u64::MAX {
                return true;
            }
            let o = self.offset_est(p);
            // The estimate may be off by its uncertainty: wait that much longer (plus 1 ms).
            let slack = o.err_ns.unwrap_or(0).min(i) as i64 + 1_000_000;
            let own = t.saturating_add_signed(o.offset_ns + slack);
            let need = (own.saturating_sub(1) / i + 1) * i;
            wm >= need
        })
    }

    /// The earliest interval with buffered records (reference clock).
    fn next_window(&self) -> Option<u64> {
        self.inputs
            .iter()
            .enumerate()
            .filter(|(_, inp)| !inp.queue.is_empty())
            .map(|(p, inp)| self.window_of(self.correct(p as u8, inp.min_ltime)))
            .min()
    }

    /// Merges every interval that is ready.
    pub fn advance(&mut self, sink: &mut impl MergeSink) {
        while let Some(mut t) = self.next_window() {
            // Intervals are merged in order; a late record joins the next one.
            if self.merged_to != 0 {
                t = t.max(self.merged_to + self.interval());
            }
            if !self.ready(t) && self.buffered <= self.cfg.max_buffered {
                // Nothing buffered can be merged yet; timers of earlier intervals still run.
                break;
            }
            self.merge_window(t, sink);
        }
        // A quiet link (live): no halves, but the probes' status records move time on, and a
        // probe's timers would run. Run the merged flows' timers at every boundary all inputs
        // have passed, exactly as merging an empty interval would.
        if self.timers_to == 0 || self.inputs.iter().all(|inp| inp.done || inp.stalled) {
            return;
        }
        let i = self.interval();
        loop {
            let b = self.timers_to + i;
            if !self.ready(b + i) || self.next_window().is_some_and(|w| w <= b + i) {
                break;
            }
            self.run_timers(b, sink);
            self.timers_to = b;
            self.merged_to = self.merged_to.max(b);
            self.maybe_stats(b, false, sink);
        }
    }

    /// Merges interval `t`: joins its half-records, then runs the flows' timers at `t`.
    fn merge_window(&mut self, t: u64, sink: &mut impl MergeSink) {
        let i = self.interval();
        if (1..self.clocks.len()).any(|p| self.clocks[p].estimate().pairs == 0) {
            self.prescan_clock();
        }
        let mut halves = std::mem::take(&mut self.scratch);
        let mut taken = 0;
        for p in 0..self.inputs.len() {
            // Records of an interval mostly arrive together, but a flow that ended (or was
            // evicted) writes its last one later: take every buffered record of `t` or earlier.
            let mut q = std::mem::take(&mut self.inputs[p].queue);
            let mut keep = VecDeque::with_capacity(q.len());
            let mut min_ltime = u64::MAX;
            for h in q.drain(..) {
                if self.window_of(self.correct(p as u8, h.ltime_ns)) > t {
                    min_ltime = min_ltime.min(h.ltime_ns);
                    keep.push_back(h);
                } else {
                    let st = self.correct(p as u8, h.stime_ns);
                    halves.push((st, p as u8, h));
                }
            }
            self.buffered -= halves.len() - taken;
            taken = halves.len();
            self.inputs[p].queue = keep;
            self.inputs[p].min_ltime = min_ltime;
        }
        // Sort indices, not the (large) records.
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(halves.iter().enumerate().map(|(i, h)| (h.0, i as u32)));
        order.sort_unstable();
        // As in a probe, the timers of a boundary run when time passes it: those up to this
        // interval's start run before its halves are applied; this interval's end waits for
        // the next interval (a capture that ends first never reaches it).
        let mut b = if self.timers_to == 0 {
            t - i
        } else {
            self.timers_to + i
        };
        while b + i <= t {
            self.run_timers(b, sink);
            self.timers_to = b;
            b += i;
        }
        for &(_, i) in &order {
            let (_, p, rec) = &halves[i as usize];
            self.apply(*p, rec, sink);
        }
        halves.clear();
        self.scratch = halves;
        self.order = order;
        self.merged_to = t;
        self.maybe_stats(t, false, sink);
    }

    fn idle_ns(&self, k: &Key) -> u64 {
        self.cfg.flow.idle_ns(&k.0)
    }

    fn last_ns(&self, f: &Flow) -> u64 {
        (0..2)
            .filter(|&d| f.dir_in[d] != u8::MAX)
            .map(|d| self.correct(f.dir_in[d], f.last_raw[d]))
            .max()
            .unwrap_or(0)
    }

    /// Joins one half-record (`st`: its corrected start) into its merged flow.
    fn apply(&mut self, p: u8, r: &FlowRecord, sink: &mut impl MergeSink) {
        // Corrected with the estimate as it is now (earlier halves may have just refined it).
        let st = self.correct(p, r.stime_ns);
        if r.src.pkts + r.dst.pkts == 0 {
            // A half's final record after its packets went out in status records: the merged
            // flow ends by its own timers.
            return;
        }
        let (key, src_is_a) = key_of(r);
        // Does the half continue the merged flow, or would one probe have started a new one?
        if let Some(f) = self.flows.get(&key) {
            let last = self.last_ns(f);
            let ended = f.tcp & (T_RST | T_FIN_A | T_FIN_B) != 0;
            // As in the probe: a SYN with another ISN from an endpoint already heard from,
            // after the flow ended, starts a new connection (a SYN from a side not yet heard
            // from is its first packet).
            let reused = key.0.proto == 6
                && ended
                && [(0usize, &r.src), (1, &r.dst)]
                    .into_iter()
                    .any(|(d_rec, ds)| {
                        let d = if (d_rec == 0) == src_is_a { 0 } else { 1 };
                        ds.tcp_flags & TCP_SYN != 0
                            && ds.isn != 0
                            && f.dir_in[d] != u8::MAX
                            && f.isn[d] != ds.isn
                    });
            // The probe runs timers on ticks: a flow ends at the first tick at or after its
            // idle (or linger) time, so a packet before that tick still joins it.
            let tick = self.cfg.flow.tick_ns.max(1);
            let on_tick = |t: u64| t.div_ceil(tick) * tick;
            let cause = if reused || (f.close_at != 0 && st >= on_tick(f.close_at)) {
                Some(Cause::Close)
            } else if st >= on_tick(last + self.idle_ns(&key)) && last != 0 {
                Some(Cause::Idle)
            } else {
                None
            };
            if let Some(c) = cause {
                let f = self.flows.remove(&key).expect("present");
                self.emit(&key, f, c, sink);
            }
        }
        if !self.flows.contains_key(&key) && self.flows.len() >= self.cfg.max_flows {
            self.evict(sink);
        }
        self.flows.entry(key).or_default();
        let n = self.flows.len() as u64;
        if n > self.stats.peak_flows {
            self.stats.peak_flows = n;
        }
        let theta = self.theta(p);
        let f = self.flows.get_mut(&key).expect("inserted");
        f.inputs |= 1 << p.min(31);
        // The earliest half decides orientation, addresses and encapsulation, as the first
        // packet does in a probe.
        if !f.frozen && st < f.face_time {
            f.face_time = st;
            let (ms, md) = (r.smac, r.dmac);
            let init_is_a = src_is_a;
            f.face = Face {
                init_is_a,
                dir_guessed: r.flags & flags::DIR_GUESSED != 0,
                mac_a: if init_is_a { ms } else { md },
                mac_b: if init_is_a { md } else { ms },
                vlan: r.vlan,
                mpls: r.mpls,
                encap: r.encap,
            };
        }
        f.first_ns = f.first_ns.min(st);
        for (d_rec, ds) in [(0usize, &r.src), (1, &r.dst)] {
            if ds.pkts == 0 && ds.isn == 0 {
                continue;
            }
            let d = if (d_rec == 0) == src_is_a { 0 } else { 1 };
            if ds.isn != 0 {
                f.isn[d] = ds.isn;
            }
            if ds.pkts == 0 {
                continue;
            }
            if f.dir_in[d] == u8::MAX {
                f.dir_in[d] = p;
                f.first_raw[d] = ds.first_ns;
            } else if f.dir_in[d] != p {
                // Both legs saw this direction: not a split tap for this flow. Keep the first
                // leg's counters (adding would double them).
                self.stats.overlaps += 1;
                continue;
            }
            f.last_raw[d] = f.last_raw[d].max(ds.last_ns);
            add_dir(&mut f.pend[d], ds);
            let pay = if d_rec == 0 {
                &r.src_payload
            } else {
                &r.dst_payload
            };
            f.payload[d].extend_from_slice(pay);
            // TCP state bits, named by canonical endpoint.
            let fl = ds.tcp_flags;
            if fl & TCP_FIN != 0 {
                f.tcp |= if d == 0 { T_FIN_A } else { T_FIN_B };
            }
            if fl & TCP_RST != 0 {
                f.tcp |= T_RST;
            }
            let from_init = (d == 0) == f.face.init_is_a;
            if fl & TCP_ACK != 0 {
                f.acked[d] = true;
            }
            if fl & TCP_SYN != 0 {
                f.tcp |= if from_init { T_SYN } else { T_SYNACK };
                if !from_init && r.tcp_opts & tcp_opts::WSCALE == 0 {
                    f.synack_no_wscale = true;
                }
            }
            let ended_now = f.tcp & T_RST != 0 || f.tcp & (T_FIN_A | T_FIN_B) == T_FIN_A | T_FIN_B;
            if ended_now && f.close_at == 0 {
                let t = ds.last_ns.saturating_add_signed(-theta);
                f.close_at = t + self.cfg.flow.close_linger_ns;
            }
        }
        f.flags |= r.flags & !(flags::ONE_WAY | flags::DIR_GUESSED | flags::ONE_SIDED);
        f.tcp_opts |= r.tcp_opts;
        // Handshake evidence, raw, with the input that saw it.
        let h = &r.hs;
        if h.syn_ns != 0 {
            f.hs.syn = h.syn_ns;
            f.hs.syn_in = p;
        }
        if h.synack_ns != 0 && f.hs.synack == 0 {
            f.hs.synack = h.synack_ns;
            f.hs.synack_in = p;
            f.hs.synack_ack = h.synack_ack;
        }
        if h.ack_ns != 0 && f.hs.ack == 0 {
            f.hs.ack = h.ack_ns;
            f.hs.ack_in = p;
            f.hs.ack_ack = h.ack_ack;
        }
        let (ki, kr) = if f.face.init_is_a { (0, 1) } else { (1, 0) };
        let (isn_i, isn_r) = (f.isn[ki], f.isn[kr]);
        let hs = f.hs;
        let mut used = hs.used;
        // SYN → SYN-ACK (the SYN-ACK acknowledges the SYN's sequence number).
        if used & 1 == 0
            && hs.syn != 0
            && hs.synack != 0
            && hs.syn_in != hs.synack_in
            && hs.synack_ack == isn_i.wrapping_add(1)
        {
            used |= 1;
            self.bound(hs.syn_in, hs.syn, hs.synack_in, hs.synack);
        }
        // SYN-ACK → ACK.
        if used & 2 == 0
            && hs.synack != 0
            && hs.ack != 0
            && hs.synack_in != hs.ack_in
            && hs.ack_ack == isn_r.wrapping_add(1)
        {
            used |= 2;
            self.bound(hs.synack_in, hs.synack, hs.ack_in, hs.ack);
        }
        if let Some(f) = self.flows.get_mut(&key) {
            f.hs.used = used;
        }
    }

    /// Offset evidence straight from the buffered halves, before any is merged: without it the
    /// first intervals would be lined up on uncorrected clocks. Runs until every probe has
    /// evidence.
    fn prescan_clock(&mut self) {
        let mut by_key: KeyMap<Vec<(u8, usize)>> = KeyMap::default();
        for (p, inp) in self.inputs.iter().enumerate() {
            for (i, r) in inp.queue.iter().enumerate() {
                if !r.hs.is_empty() {
                    by_key.entry(key_of(r).0).or_default().push((p as u8, i));
                }
            }
        }
        let mut bounds = Vec::new();
        for v in by_key.values() {
            for &(pi, ii) in v {
                for &(pj, ij) in v {
                    if pi == pj {
                        continue;
                    }
                    let x = &self.inputs[pi as usize].queue[ii];
                    let y = &self.inputs[pj as usize].queue[ij];
                    // x saw the SYN, y the SYN-ACK (each probe orients its record from the
                    // handshake packet it saw, so `src` is the initiator in both).
                    if x.hs.syn_ns != 0
                        && y.hs.synack_ns != 0
                        && y.hs.synack_ack == x.src.isn.wrapping_add(1)
                    {
                        bounds.push((pi, x.hs.syn_ns, pj, y.hs.synack_ns));
                        if x.hs.ack_ns != 0 && x.hs.ack_ack == y.dst.isn.wrapping_add(1) {
                            bounds.push((pj, y.hs.synack_ns, pi, x.hs.ack_ns));
                        }
                    }
                }
            }
        }
        for (i, ti, j, tj) in bounds {
            self.bound(i, ti, j, tj);
        }
    }

    /// A request seen by input `i` at raw `ti` preceded its reply seen by `j` at raw `tj`.
    fn bound(&mut self, i: u8, ti: u64, j: u8, tj: u64) {
        match (i, j) {
            (0, j) if (j as usize) < self.clocks.len() => {
                self.clocks[j as usize].reply_seen_here(ti, tj)
            }
            (i, 0) if (i as usize) < self.clocks.len() => {
                self.clocks[i as usize].request_seen_here(ti, tj)
            }
            // Between two non-reference probes: no direct use (two probes per link).
            _ => {}
        }
    }

    /// Runs the flows' timers at interval boundary `t`: ends idle and closed flows, writes
    /// status records for flows that lived through a whole interval.
    fn run_timers(&mut self, t: u64, sink: &mut impl MergeSink) {
        let i = self.interval();
        let mut ended: Vec<(Key, Cause)> = Vec::new();
        let mut status: Vec<Key> = Vec::new();
        for (k, f) in &self.flows {
            let last = self.last_ns(f);
            if f.close_at != 0 && t >= f.close_at {
                ended.push((*k, Cause::Close));
            } else if f.close_at == 0 && last != 0 && t >= last + self.idle_ns(k) {
                ended.push((*k, Cause::Idle));
            } else if f.close_at == 0 && f.pend[0].pkts + f.pend[1].pkts > 0 && f.first_ns + i <= t
            {
                // (A closing flow writes no status record, as in the probe.)
                status.push(*k);
            }
        }
        // Records go out (and take their seq) in key order, not the table's: a table rebuilt
        // from a snapshot iterates in another order, and a restored merger must write exactly
        // the records the original would have.
        ended.sort_unstable_by_key(|e| e.0);
        status.sort_unstable();
        for (k, c) in ended {
            if let Some(f) = self.flows.remove(&k) {
                self.emit(&k, f, c, sink);
            }
        }
        for k in status {
            if let Some(mut f) = self.flows.remove(&k) {
                self.write(&k, &mut f, Cause::Status, sink);
                self.flows.insert(k, f);
            }
        }
    }

    fn evict(&mut self, sink: &mut impl MergeSink) {
        // The longest-idle of a small sample (the map's iteration order is arbitrary).
        let victim = self
            .flows
            .iter()
            .take(16)
            .min_by_key(|(_, f)| self.last_ns(f))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            let f = self.flows.remove(&k).expect("present");
            self.stats.evictions += 1;
            self.emit(&k, f, Cause::Evicted, sink);
        }
    }

    /// Writes a flow's final record.
    fn emit(&mut self, k: &Key, mut f: Flow, cause: Cause, sink: &mut impl MergeSink) {
        if f.inputs.count_ones() > 1 {
            self.stats.joined += 1;
        } else {
            self.stats.one_sided += 1;
        }
        self.write(k, &mut f, cause, sink);
    }

    /// Builds the merged record of `f` (deltas since its last record) and resets the deltas.
    fn write(&mut self, k: &Key, f: &mut Flow, cause: Cause, sink: &mut impl MergeSink) {
        let th = [
            self.theta(f.dir_in[0].min(254)),
            self.theta(f.dir_in[1].min(254)),
        ];
        let mut dirs = f.pend;
        for (d, ds) in dirs.iter_mut().enumerate() {
            for t in [&mut ds.first_ns, &mut ds.last_ns] {
                if *t != 0 {
                    *t = t.saturating_add_signed(-th[d]);
                }
            }
            self.max_ns = self.max_ns.max(ds.last_ns);
        }
        let last_all = self.last_ns_corr(f, &th);
        let hs = f.hs;
        let (syn, synack, ack) = (
            self.correct(hs.syn_in, hs.syn),
            self.correct(hs.synack_in, hs.synack),
            self.correct(hs.ack_in, hs.ack),
        );
        let face = f.face;
        let (si, di) = if face.init_is_a { (0, 1) } else { (1, 0) };
        let k = &k.0;
        let kind = k.addr_kind();
        let sym = k.ports_symmetric();
        let r = &mut self.rec;
        r.probe_id = self.cfg.probe_id;
        r.seq = self.seq;
        r.cause = cause;
        r.addr_kind = kind;
        r.proto = k.proto;
        r.ethertype = k.record_ethertype();
        let (sa, da, sp, dp) = if face.init_is_a {
            (k.a, k.b, k.port_a, k.port_b)
        } else {
            (k.b, k.a, k.port_b, k.port_a)
        };
        r.saddr = Addr(sa);
        r.daddr = Addr(da);
        if sym {
            r.sport = k.port_a;
            r.dport = k.port_b;
        } else {
            r.sport = sp;
            r.dport = dp;
        }
        r.src = dirs[si];
        r.dst = dirs[di];
        // DirStats keep the flow's ISN in every record, as the probe does.
        r.src.isn = f.isn[si];
        r.dst.isn = f.isn[di];
        r.observed = (if r.src.pkts > 0 {
            observed::SRC_TO_DST
        } else {
            0
        }) | (if r.dst.pkts > 0 {
            observed::DST_TO_SRC
        } else {
            0
        });
        r.stime_ns = [r.src.first_ns, r.dst.first_ns]
            .into_iter()
            .filter(|&t| t != 0)
            .min()
            .unwrap_or(last_all);
        r.ltime_ns = r.src.last_ns.max(r.dst.last_ns).max(r.stime_ns);
        // TCP state and handshake times as one probe would compute them.
        let is_tcp = k.proto == 6 && kind != AddrKind::L2;
        r.synack_ns = 0;
        r.ackdat_ns = 0;
        let mut est = false;
        if is_tcp {
            if syn != 0 && synack != 0 && synack >= syn {
                r.synack_ns = synack - syn;
            }
            if f.tcp & T_SYNACK != 0 {
                if ack != 0 && synack != 0 && ack >= synack {
                    r.ackdat_ns = ack - synack;
                    est = true;
                } else if ack == 0 {
                    // Halves written before their probe recognised its link carry no
                    // handshake times: an ACK from the initiator establishes the flow.
                    est = f.acked[si];
                }
            }
        }
        let t = f.tcp;
        r.state = if !is_tcp {
            FlowState::None
        } else if t & T_RST != 0 {
            FlowState::Rst
        } else if t & (T_FIN_A | T_FIN_B) != 0 {
            FlowState::Fin
        } else if est {
            FlowState::Con
        } else if t & T_SYNACK != 0 {
            FlowState::Acc
        } else if t & T_SYN != 0 {
            FlowState::Req
        } else {
            FlowState::None
        };
        let mut fl = f.flags;
        fl |= if f.inputs.count_ones() > 1 {
            flags::MERGED
        } else {
            flags::ONE_SIDED
        };
        if face.dir_guessed {
            fl |= flags::DIR_GUESSED;
        }
        r.flags = fl;
        r.tcp_opts = if f.synack_no_wscale {
            f.tcp_opts & !tcp_opts::WSCALE
        } else {
            f.tcp_opts
        };
        r.smac = if face.init_is_a {
            face.mac_a
        } else {
            face.mac_b
        };
        r.dmac = if face.init_is_a {
            face.mac_b
        } else {
            face.mac_a
        };
        r.vlan = face.vlan;
        r.mpls = face.mpls;
        r.encap = face.encap;
        r.src_payload.clear();
        r.dst_payload.clear();
        r.src_payload.extend_from_slice(&f.payload[si]);
        r.dst_payload.extend_from_slice(&f.payload[di]);
        r.status = None;
        r.merge = None;
        r.hs = Default::default();
        // Reset the deltas.
        for d in 0..2 {
            f.pend[d] = DirStats::default();
            f.payload[d].clear();
        }
        f.flags &= !flags::PAYLOAD;
        f.frozen = true;
        self.seq += 1;
        self.stats.records_out += 1;
        sink.record(&self.rec);
    }

    fn last_ns_corr(&self, f: &Flow, th: &[i64; 2]) -> u64 {
        (0..2)
            .filter(|&d| f.dir_in[d] != u8::MAX)
            .map(|d| f.last_raw[d].saturating_add_signed(-th[d]))
            .max()
            .unwrap_or(f.first_ns)
    }

    /// Writes merge-status records when a stats boundary has passed (or `last`).
    fn maybe_stats(&mut self, t: u64, last: bool, sink: &mut impl MergeSink) {
        let iv = self.cfg.stats_interval_ns;
        if !last {
            if iv == 0 {
                return;
            }
            if self.next_stats_ns == 0 {
                self.next_stats_ns = (t / iv + 1) * iv;
                return;
            }
            if t < self.next_stats_ns {
                return;
            }
        }
        let start = self.next_stats_ns.saturating_sub(iv.max(1));
        let end = if last { t.max(start) } else { t };
        self.next_stats_ns = t.checked_div(iv).map_or(0, |q| (q + 1) * iv);
        let g = self.stats.clone();
        let lg = std::mem::replace(&mut self.last_global, g.clone());
        for p in 0..self.inputs.len() {
            let o = self.offset_est(p);
            let inp = &mut self.inputs[p];
            let mut fl = 0;
            if p == 0 {
                fl |= merge_flags::REFERENCE;
            } else if o.pairs == 0 {
                fl |= merge_flags::NO_OFFSET;
            }
            if o.offset_ns.unsigned_abs() > self.cfg.skew_limit_ns {
                fl |= merge_flags::SKEW_ALARM;
            }
            if last {
                fl |= merge_flags::FINAL;
            }
            if inp.stalled {
                fl |= merge_flags::STALLED;
            }
            if inp.disconnected {
                fl |= merge_flags::DISCONNECTED;
            }
            let cur = inp.stats;
            let prev = inp.last_stats;
            inp.last_stats = cur;
            let m = MergeStatus {
                probe: inp.probe_id.unwrap_or(0),
                flags: fl,
                records_in: cur.records_in - prev.records_in,
                duplicates: cur.duplicates - prev.duplicates,
                gaps: cur.gaps - prev.gaps,
                late: cur.late - prev.late,
                offset_ns: o.offset_ns,
                offset_err_ns: o.err_ns.unwrap_or(0),
                offset_pairs: o.pairs,
                joined: g.joined - lg.joined,
                one_sided: g.one_sided - lg.one_sided,
                records_out: g.records_out - lg.records_out,
                evictions: g.evictions - lg.evictions,
                active_flows: self.flows.len() as u64,
            };
            let rec = FlowRecord {
                probe_id: self.cfg.probe_id,
                seq: self.seq,
                cause: if last { Cause::Shutdown } else { Cause::Status },
                stime_ns: start,
                ltime_ns: end,
                merge: Some(Box::new(m)),
                ..FlowRecord::default()
            };
            self.seq += 1;
            sink.record(&rec);
        }
    }

    /// Ends the merge: merges everything buffered, ends every flow as a probe does at the end
    /// of its input (close, idle or shutdown), and writes the final merge-status records.
    pub fn finish(&mut self, sink: &mut impl MergeSink) {
        for p in 0..self.inputs.len() {
            self.inputs[p].done = true;
        }
        self.advance(sink);
        let now = self
            .flows
            .values()
            .map(|f| self.last_ns(f))
            .max()
            .unwrap_or(0)
            .max(self.max_ns);
        let mut keys: Vec<Key> = self.flows.keys().copied().collect();
        keys.sort_unstable(); // as in `run_timers`
        for k in keys {
            let f = self.flows.remove(&k).expect("present");
            let cause = if f.close_at != 0 {
                Cause::Close
            } else if now >= self.last_ns(&f) + self.idle_ns(&k) {
                Cause::Idle
            } else {
                Cause::Shutdown
            };
            self.emit(&k, f, cause, sink);
        }
        let t = self.merged_to.max(now);
        self.maybe_stats(t, true, sink);
    }
}

/// Snapshot magic; its last byte is the format version (bump it when [`SnapBody`] or any type
/// in it changes: bincode is positional, an old snapshot would not decode as the new layout).
/// Version 3: `FlowRecord` gained `ib` (record format 1.3).
const SNAP_MAGIC: &[u8; 8] = b"TFMSNAP3";

/// What a snapshot carries: every field of [`Merger`] but the config and the scratch buffers.
/// Generic so that one field list serves both ways: borrowed to write, owned to read (bincode
/// encodes `&T` as `T`).
#[derive(Serialize, Deserialize)]
struct SnapBody<In, Cl, Fl, St> {
    inputs: In,
    clocks: Cl,
    flows: Fl,
    merged_to: u64,
    timers_to: u64,
    buffered: usize,
    seq: u64,
    stats: St,
    last_global: St,
    next_stats_ns: u64,
    max_ns: u64,
}

/// Passes writes through, keeping the CRC-32C of what went by.
struct CrcWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: std::io::Write> std::io::Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Passes reads through, keeping the CRC-32C of what went by.
struct CrcReader<R> {
    inner: R,
    crc: u32,
}

impl<R: std::io::Read> std::io::Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

fn snap_err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

impl Merger {
    /// Writes the merger's whole state (all but `cfg`) so that [`Merger::restore`] can carry
    /// on exactly where it stood: a daemon that snapshots, say, after each merged interval and
    /// restores after a crash neither loses nor repeats records (the probes' spools replay
    /// what came after the snapshot; its duplicates are dropped by sequence number).
    ///
    /// Layout: magic `TFMSNAP3`, input count (u32 LE), bincode body (varint), CRC-32C (u32 LE) of all
    /// that precedes it. Buffered internally; `w` is flushed at the end.
    pub fn snapshot(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let n = u32::try_from(self.inputs.len()).map_err(|_| snap_err("too many inputs"))?;
        let mut cw = CrcWriter {
            inner: std::io::BufWriter::new(&mut *w),
            crc: 0,
        };
        cw.write_all(SNAP_MAGIC)?;
        cw.write_all(&n.to_le_bytes())?;
        let body = SnapBody {
            inputs: &self.inputs,
            clocks: &self.clocks,
            flows: &self.flows,
            merged_to: self.merged_to,
            timers_to: self.timers_to,
            buffered: self.buffered,
            seq: self.seq,
            stats: &self.stats,
            last_global: &self.last_global,
            next_stats_ns: self.next_stats_ns,
            max_ns: self.max_ns,
        };
        snap_options()
            .serialize_into(&mut cw, &body)
            .map_err(|e| bincode_to_io(*e))?;
        let crc = cw.crc;
        cw.inner.write_all(&crc.to_le_bytes())?;
        cw.inner.flush()?;
        Ok(())
    }

    /// Rebuilds a merger from [`Merger::snapshot`] output, with `cfg` (which should be the
    /// config the snapshot was taken under: the flows' timers follow it). Fails, without
    /// panicking, on a snapshot that is truncated, corrupt (checksum), of another format
    /// version, or of another number of inputs than `inputs`. Reads exactly the snapshot's
    /// bytes and no further, so `r` should be buffered (e.g. a `BufReader`).
    pub fn restore(
        cfg: MergeConfig,
        inputs: usize,
        r: &mut impl std::io::Read,
    ) -> std::io::Result<Merger> {
        use std::io::Read;
        let want = inputs.max(1); // as `new`
        let mut cr = CrcReader {
            inner: &mut *r,
            crc: 0,
        };
        let mut head = [0u8; 12];
        cr.read_exact(&mut head)?;
        if &head[..8] != SNAP_MAGIC {
            // Written by another release: its layout cannot be trusted, so say which.
            return Err(snap_err(if head[..7] == SNAP_MAGIC[..7] {
                format!(
                    "a merger snapshot of format version {}, this release reads version {} \
                     (written by another tapflow-merge release)",
                    head[7] as char, SNAP_MAGIC[7] as char
                )
            } else {
                "not a merger snapshot".to_string()
            }));
        }
        let n = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
        if n != want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("snapshot has {n} inputs, the merger {want}"),
            ));
        }
        let body: SnapBody<Vec<Input>, Vec<OffsetEstimator>, KeyMap<Flow>, MergeStats> =
            snap_options()
                .deserialize_from(&mut cr)
                .map_err(|e| bincode_to_io(*e))?;
        let crc = cr.crc;
        let mut tail = [0u8; 4];
        r.read_exact(&mut tail)?;
        if u32::from_le_bytes(tail) != crc {
            return Err(snap_err("snapshot checksum mismatch"));
        }
        // Invariants the merge relies on (indexing by input, the buffered count).
        if body.inputs.len() != n || body.clocks.len() != n {
            return Err(snap_err("snapshot input tables disagree with its header"));
        }
        let queued: usize = body.inputs.iter().map(|i| i.queue.len()).sum();
        if queued != body.buffered {
            return Err(snap_err(format!(
                "snapshot buffers {queued} records but counts {}",
                body.buffered
            )));
        }
        Ok(Merger {
            cfg,
            inputs: body.inputs,
            clocks: body.clocks,
            flows: body.flows,
            merged_to: body.merged_to,
            timers_to: body.timers_to,
            buffered: body.buffered,
            seq: body.seq,
            stats: body.stats,
            last_global: body.last_global,
            next_stats_ns: body.next_stats_ns,
            max_ns: body.max_ns,
            // Scratch: rebuilt on use.
            rec: FlowRecord::default(),
            scratch: Vec::new(),
            order: Vec::new(),
        })
    }
}

/// bincode's I/O errors (a truncated snapshot: unexpected EOF) stay as they are; anything
/// else is a corrupt snapshot.
/// Varint integers: most counters and times are small or share their high bytes, which halves
/// the state a commit writes.
fn snap_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .allow_trailing_bytes()
}

fn bincode_to_io(e: bincode::ErrorKind) -> std::io::Error {
    match e {
        bincode::ErrorKind::Io(io) => io,
        other => snap_err(format!("corrupt snapshot: {other}")),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod snapshot_tests;

/// Adds one half-record's direction to the pending deltas of that direction.
fn add_dir(acc: &mut DirStats, x: &DirStats) {
    if acc.pkts == 0 {
        *acc = *x;
        return;
    }
    let (n1, n2) = (acc.ipt_n as f64, x.ipt_n as f64);
    let n = n1 + n2;
    if n > 0.0 {
        // Parallel mean/variance combination (Chan et al.).
        let delta = x.ipt_mean_ns - acc.ipt_mean_ns;
        let mean = acc.ipt_mean_ns + delta * n2 / n;
        let m2 =
            acc.ipt_std_ns.powi(2) * n1 + x.ipt_std_ns.powi(2) * n2 + delta * delta * n1 * n2 / n;
        acc.ipt_mean_ns = mean;
        acc.ipt_std_ns = (m2 / n).max(0.0).sqrt();
    }
    acc.ipt_n += x.ipt_n;
    acc.pkts += x.pkts;
    acc.bytes += x.bytes;
    acc.ip_bytes += x.ip_bytes;
    acc.app_bytes += x.app_bytes;
    if x.first_ns != 0 && (acc.first_ns == 0 || x.first_ns < acc.first_ns) {
        acc.first_ns = x.first_ns;
        acc.first_seq = x.first_seq;
    }
    if x.last_ns >= acc.last_ns {
        acc.last_ns = x.last_ns;
        acc.last_seq = x.last_seq;
        acc.last_ack = x.last_ack;
        acc.tos = x.tos;
        acc.window = x.window;
    }
    acc.ttl_min = acc.ttl_min.min(x.ttl_min);
    acc.ttl_max = acc.ttl_max.max(x.ttl_max);
    acc.tcp_flags |= x.tcp_flags;
    acc.retrans += x.retrans;
    acc.out_of_order += x.out_of_order;
    acc.zero_win += x.zero_win;
    acc.loss_pkts += x.loss_pkts;
    acc.loss_bytes += x.loss_bytes;
    acc.frags += x.frags;
    if x.isn != 0 {
        acc.isn = x.isn;
    }
}
