//! The per-worker flow engine: decode a batch, look each packet up in the worker's own table,
//! update per-direction counters and TCP state, and emit records on close, idle timeout,
//! eviction, status interval and shutdown.
//!
//! Engine time is packet time, so a file replay always gives the same records. Timers run when
//! a packet crosses a tick boundary, before that packet is applied, so a status record holds
//! exactly the packets before its (wall-clock aligned) boundary.

use crate::decode::{fragpos, ib, tcpf, Decoder, Malformed, PacketSummary, Role, TcpInfo};
use crate::key::{FlowKey, KIND_IB};
use crate::table::{Entry, Links, Lookup, Table, NIL};
use tapflow_capture::Batch;
use tapflow_record::{
    flags, ib_flags, observed, tcp_opts, Addr, AddrKind, Cause, DirStats, Encap, FlowRecord,
    FlowState, Handshake, IbInfo, IBA_TRANSPORT,
};

/// Receives the records the engine emits.
pub trait RecordSink {
    fn record(&mut self, rec: &FlowRecord);
}

impl<F: FnMut(&FlowRecord)> RecordSink for F {
    fn record(&mut self, rec: &FlowRecord) {
        self(rec)
    }
}

/// Which directions of the link the probe sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LinkDirection {
    /// Decide from the traffic: a probe on one leg of a split tap sees TCP connections whose
    /// acknowledgments answer packets it never sees (see `docs/merge.md`).
    #[default]
    Auto,
    /// Both directions (a full tap or SPAN port).
    Both,
    /// One direction only (one leg of a split tap).
    OneWay,
}

/// Engine settings. All times in ns.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub probe_id: u32,
    /// Flows the table holds at most; memory is reserved for this many.
    pub capacity: usize,
    pub tcp_idle_ns: u64,
    pub udp_idle_ns: u64,
    pub icmp_idle_ns: u64,
    pub other_idle_ns: u64,
    /// Status record interval (0 = no status records), aligned to multiples since the epoch.
    pub status_interval_ns: u64,
    /// How long a closed (FIN both ways, or RST) TCP flow lingers to catch stragglers.
    pub close_linger_ns: u64,
    /// First payload bytes kept per direction (0 = off).
    pub payload_bytes: usize,
    /// Entries of the IP fragment cache.
    pub frag_capacity: usize,
    /// Timer wheel resolution.
    pub tick_ns: u64,
    /// Sequence number of the first record. Live workers give each worker its own range
    /// (worker << 48) so that `seq` gaps still reveal lost records per worker.
    pub first_seq: u64,
    /// Whether the probe sees both directions of the link.
    pub direction: LinkDirection,
}

impl Default for EngineConfig {
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        EngineConfig {
            probe_id: 0,
            capacity: 1 << 20,
            tcp_idle_ns: 60 * S,
            udp_idle_ns: 30 * S,
            icmp_idle_ns: 5 * S,
            other_idle_ns: 30 * S,
            status_interval_ns: 5 * S,
            close_linger_ns: 2 * S,
            payload_bytes: 0,
            frag_capacity: 4096,
            tick_ns: S / 10,
            first_seq: 0,
            direction: LinkDirection::Auto,
        }
    }
}

impl EngineConfig {
    /// The idle timeout of a flow with key `k`.
    pub fn idle_ns(&self, k: &FlowKey) -> u64 {
        match (k.kind, k.proto) {
            (4 | 6, 6) => self.tcp_idle_ns,
            (4 | 6, 17) => self.udp_idle_ns,
            (4, 1) | (6, 58) => self.icmp_idle_ns,
            _ => self.other_idle_ns,
        }
    }
}

/// Engine counters (plain fields: one owner, read between batches).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub packets: u64,
    /// Bytes (Argus counting) of packets applied to flows.
    pub bytes: u64,
    pub flows_created: u64,
    pub records: u64,
    pub records_by_cause: [u64; 6],
    /// Flows pushed out of a full table (each produced an `evicted` record).
    pub evictions: u64,
    /// TCP flows ended early because a new SYN reused their ports.
    pub port_reuse: u64,
    pub active_flows: u64,
    pub peak_flows: u64,
    /// Link-direction evidence: TCP flows of 4+ packets seen both ways, and seen one way
    /// although they carry acknowledgments (decayed by halving, so recent traffic counts).
    pub twoway_evidence: u64,
    pub oneway_evidence: u64,
    /// The engine currently treats its link as one direction of a split tap.
    pub one_way: bool,
}

// TCP status bits kept per flow.
const T_SYN: u8 = 0x01;
const T_SYNACK: u8 = 0x02;
const T_EST: u8 = 0x04;
const T_FIN_A: u8 = 0x08; // FIN from endpoint a
const T_FIN_B: u8 = 0x10;
const T_RST: u8 = 0x20;

/// Sequence tracking for one sender.
#[derive(Clone, Copy, Debug, Default)]
struct SeqTrack {
    started: bool,
    isn_set: bool,
    hole: bool,
    wscale: u8,
    max_end: u32,
    hole_start: u32,
    hole_end: u32,
    /// Last packet time in this direction (kept across records, for inter-packet times).
    last_ns: u64,
    /// Payload bytes captured so far in this direction, and how many were reported already.
    payload_len: u16,
    payload_sent: u16,
    /// InfiniBand: the next request PSN may jump (an RDMA READ's responses used the PSNs).
    ib_resync: bool,
}

/// One flow's state. `dirs[0]` is what endpoint `a` of the canonical key sent.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    key: FlowKey,
    links: Links,
    /// The initiator is endpoint `a`.
    init_is_a: bool,
    dir_guessed: bool,
    tcp: u8,
    tcp_opts: u8,
    flags: u32,
    first_ns: u64,
    last_ns: u64,
    /// When the close linger ends (0 = not closing).
    close_at: u64,
    next_status_ns: u64,
    syn_ns: u64,
    synack_at: u64,
    synack_ns: u64,
    ackdat_ns: u64,
    /// Handshake evidence for the merge: the initiator's first ACK after its SYN (time and
    /// ack number), the first SYN-ACK's ack number; `hs_sent` once a one-way record carried it.
    est_at: u64,
    synack_ack: u32,
    est_ack: u32,
    hs_sent: bool,
    total_pkts: u64,
    smac: [u8; 6],
    dmac: [u8; 6],
    vlan: [u16; 2],
    mpls: [u32; 2],
    encap: Encap,
    dirs: [DirStats; 2],
    seq: [SeqTrack; 2],
    /// InfiniBand flows: LIDs (oriented as the record), P_Key, opcodes and NAKs since the last
    /// record.
    ib: IbInfo,
}

impl Entry for Flow {
    type Key = FlowKey;
    fn key(&self) -> &FlowKey {
        &self.key
    }
    fn links(&mut self) -> &mut Links {
        &mut self.links
    }
    fn links_ref(&self) -> &Links {
        &self.links
    }
}

/// Per-packet scratch: the decoded summary plus its canonical key and hash.
#[derive(Clone, Copy, Default)]
struct Slot {
    s: PacketSummary,
    key: FlowKey,
    hash: u64,
    /// Packet goes from canonical endpoint b to a.
    rev: bool,
    ok: bool,
}

pub struct Engine {
    cfg: EngineConfig,
    table: Table<Flow>,
    pub decoder: Decoder,
    stats: EngineStats,
    batch: Vec<Slot>,
    /// Start of the next tick whose timers have not run.
    next_tick_ns: u64,
    tick: u64,
    started: bool,
    seq: u64,
    rec: FlowRecord,
    payload: Vec<u8>,
    /// One-direction link mode (see [`LinkDirection`]).
    one_way: bool,
}

const BATCH: usize = 256;
/// Flows looked at when choosing an eviction victim.
const EVICT_SAMPLE: usize = 8;

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let tick_ns = cfg.tick_ns.max(1_000_000);
        let horizon = [
            cfg.tcp_idle_ns,
            cfg.udp_idle_ns,
            cfg.icmp_idle_ns,
            cfg.other_idle_ns,
            cfg.status_interval_ns,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        // Enough slots that most timers land within one turn of the wheel; later ones are
        // re-checked lazily when their slot comes round.
        let wheel = ((horizon / tick_ns) as usize + 2).clamp(64, 1 << 16);
        // Zeroed allocation: pages are only committed for flows that capture payload.
        let payload = vec![0u8; cfg.capacity * 2 * cfg.payload_bytes];
        let rec = FlowRecord {
            probe_id: cfg.probe_id,
            ..FlowRecord::default()
        };
        Engine {
            table: Table::new(cfg.capacity, wheel),
            decoder: Decoder::new(cfg.frag_capacity),
            stats: EngineStats::default(),
            batch: vec![Slot::default(); BATCH],
            next_tick_ns: 0,
            tick: 0,
            started: false,
            seq: cfg.first_seq,
            rec,
            payload,
            one_way: cfg.direction == LinkDirection::OneWay,
            cfg: EngineConfig { tick_ns, ..cfg },
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.active_flows = self.table.len() as u64;
        s.one_way = self.one_way;
        s
    }

    /// True while the engine treats its link as one direction of a split tap.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// Updates the link-direction decision with one TCP flow's evidence.
    #[cold]
    fn direction_evidence(&mut self, both: bool) {
        let st = &mut self.stats;
        if both {
            st.twoway_evidence += 1;
        } else {
            st.oneway_evidence += 1;
        }
        if st.twoway_evidence + st.oneway_evidence > 4096 {
            st.twoway_evidence /= 2;
            st.oneway_evidence /= 2;
        }
        self.one_way = match self.cfg.direction {
            LinkDirection::Both => false,
            LinkDirection::OneWay => true,
            // A full link shows one-way TCP flows with ACKs only for scans and asymmetric
            // routes; a tap leg shows almost nothing else.
            LinkDirection::Auto => st.oneway_evidence > 4 * st.twoway_evidence,
        };
    }

    /// Bytes of table memory per tracked flow (slab entry + two index buckets).
    pub fn bytes_per_flow() -> usize {
        Table::<Flow>::bytes_per_flow()
    }

    /// Processes one capture batch.
    pub fn process_batch(&mut self, batch: &Batch<'_>, sink: &mut impl RecordSink) {
        // The scratch buffer leaves `self` for the batch so packets are applied in place,
        // without copying each summary out (`Vec::new` does not allocate).
        let mut scratch = std::mem::take(&mut self.batch);
        let mut i = 0;
        while i < batch.len() {
            let n = (batch.len() - i).min(BATCH);
            // Stage 1: decode, canonicalise, hash, and prefetch the index bucket.
            for (j, slot) in scratch[..n].iter_mut().enumerate() {
                let p = batch.get(i + j);
                slot.ok = self
                    .decoder
                    .decode(p.data, p.wire_len, p.link, p.ts_ns, &mut slot.s)
                    .is_ok();
                if slot.ok {
                    let (k, rev) = slot.s.key.canonical();
                    slot.key = k;
                    slot.rev = rev;
                    slot.hash = k.hash();
                    self.table.prefetch_bucket(slot.hash);
                }
            }
            // Stage 2: prefetch the flow a few packets ahead, then apply each packet.
            const AHEAD: usize = 4;
            for slot in scratch[..n.min(AHEAD)].iter().filter(|s| s.ok) {
                self.table.prefetch_flow(slot.hash);
            }
            for j in 0..n {
                if j + AHEAD < n && scratch[j + AHEAD].ok {
                    self.table.prefetch_flow(scratch[j + AHEAD].hash);
                }
                if scratch[j].ok {
                    self.apply(&scratch[j], batch.data, sink);
                }
            }
            i += n;
        }
        self.batch = scratch;
    }

    /// Moves engine time on to `now_ns` without a packet, running the timers due by then. A
    /// live worker calls it when its sources are idle, so quiet flows still time out and status
    /// records still go out. Has no effect before the first packet or when `now_ns` is not
    /// past the current tick.
    pub fn advance(&mut self, now_ns: u64, sink: &mut impl RecordSink) {
        if self.started && now_ns >= self.next_tick_ns {
            self.run_timers(now_ns, sink);
        }
    }

    /// Takes the next record sequence number (for records the caller writes itself, such as
    /// probe-status records), keeping one gap-free sequence per engine.
    pub fn take_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Decodes and applies a single packet (tests and tools; the batch path is the fast one).
    pub fn process_packet(
        &mut self,
        data: &[u8],
        wire_len: u32,
        link: tapflow_capture::LinkType,
        ts_ns: u64,
        sink: &mut impl RecordSink,
    ) -> Result<(), Malformed> {
        let mut slot = Slot::default();
        self.decoder
            .decode(data, wire_len, link, ts_ns, &mut slot.s)?;
        let (k, rev) = slot.s.key.canonical();
        slot.key = k;
        slot.rev = rev;
        slot.hash = k.hash();
        slot.ok = true;
        self.apply(&slot, data, sink);
        Ok(())
    }

    fn idle_ns(&self, k: &FlowKey) -> u64 {
        self.cfg.idle_ns(k)
    }

    #[inline]
    fn tick_of(&self, ns: u64) -> u64 {
        ns.div_ceil(self.cfg.tick_ns)
    }

    #[inline]
    fn apply(&mut self, slot: &Slot, data: &[u8], sink: &mut impl RecordSink) {
        let ts = slot.s.ts_ns;
        if !self.started {
            self.started = true;
            self.tick = ts / self.cfg.tick_ns;
            self.next_tick_ns = (self.tick + 1) * self.cfg.tick_ns;
        } else if ts >= self.next_tick_ns {
            self.run_timers(ts, sink);
        }
        let s = &slot.s;
        let idx = loop {
            match self
                .table
                .lookup_or_insert(slot.hash, &slot.key, Flow::default)
            {
                Lookup::Found(f) => {
                    if self.port_reused(f, slot) {
                        self.stats.port_reuse += 1;
                        self.emit(f, Cause::Close, sink);
                        self.table.remove(f);
                        continue;
                    }
                    break f;
                }
                Lookup::Inserted(f) => {
                    self.init_flow(f, slot);
                    break f;
                }
                Lookup::Full => self.evict_one(slot.hash, sink),
            }
        };
        self.stats.packets += 1;
        self.stats.bytes += s.bytes as u64;
        let payload_bytes = self.cfg.payload_bytes;
        let linger = self.cfg.close_linger_ns;
        let f = self.table.get_mut(idx);
        let d = slot.rev as usize;
        f.last_ns = f.last_ns.max(ts);
        f.total_pkts += 1;
        f.flags |= s.flags;
        update_dir(&mut f.dirs[d], &mut f.seq[d], s);
        if f.key.kind == KIND_IB {
            ib_update(f, d, s);
        } else if f.key.proto == 6 && s.tcp.valid && (f.key.kind == 4 || f.key.kind == 6) {
            let was_closing = f.close_at != 0;
            tcp_update(f, d, &s.tcp, s.app_len, ts);
            let both = f.seq[0].last_ns != 0 && f.seq[1].last_ns != 0;
            let evidence =
                (f.total_pkts == 4 && (both || s.tcp.flags & tcpf::ACK != 0)).then_some(both);
            // One way, the other side's FIN is never seen: a FIN or RST either way ends the
            // half, and every later packet extends the linger (the peer may still be sending).
            let ended = f.tcp & T_RST != 0
                || f.tcp & (T_FIN_A | T_FIN_B) == T_FIN_A | T_FIN_B
                || (self.one_way && f.tcp & (T_FIN_A | T_FIN_B) != 0);
            if ended && !was_closing {
                f.close_at = ts + linger;
            } else if ended && self.one_way {
                f.close_at = f.close_at.max(ts + linger);
            }
            if let Some(both) = evidence {
                self.direction_evidence(both);
            }
            if ended && !was_closing {
                let t = self.tick_of(self.due_ns(idx)).max(self.tick + 1);
                self.table.schedule(idx, t);
            }
        }
        if payload_bytes > 0 && s.payload_cap > 0 {
            self.capture_payload(idx, d, s, data);
        }
    }

    /// A SYN for a TCP flow that already ended (FIN/RST) with a different ISN starts a new
    /// connection on the same ports.
    fn port_reused(&self, f: u32, slot: &Slot) -> bool {
        let t = &slot.s.tcp;
        if slot.key.proto != 6 || !t.valid || t.flags & tcpf::SYN == 0 {
            return false;
        }
        let fl = self.table.get(f);
        if self.one_way {
            // One way, the end of the old connection may have been on the other leg: a SYN or
            // SYN-ACK with another ISN from a side that already had one is a new connection.
            let d = slot.rev as usize;
            return fl.seq[d].isn_set && fl.dirs[d].isn != t.seq;
        }
        if t.flags & tcpf::ACK != 0 {
            return false;
        }
        let ended = fl.tcp & (T_RST | T_FIN_A | T_FIN_B) != 0;
        let d = slot.rev as usize;
        // A SYN from a side that has sent nothing in this flow is its late first packet (two
        // tap legs can deliver the reply direction first), not a new connection.
        ended && fl.seq[d].started && !(fl.seq[d].isn_set && fl.dirs[d].isn == t.seq)
    }

    fn init_flow(&mut self, idx: u32, slot: &Slot) {
        let s = &slot.s;
        let ts = s.ts_ns;
        let status = self.cfg.status_interval_ns;
        let next_status = ts.checked_div(status).map_or(0, |q| (q + 1) * status);
        let sender_is_a = !slot.rev;
        let init_is_a = match s.role {
            Role::Responder => !sender_is_a,
            _ => sender_is_a,
        };
        let is_tcp = slot.key.proto == 6 && matches!(slot.key.kind, 4 | 6);
        let dir_guessed = is_tcp && !(s.tcp.valid && s.tcp.flags & tcpf::SYN != 0);
        // MACs, VLANs and labels are oriented so `smac` is the initiator's.
        let (smac, dmac) = if init_is_a == sender_is_a {
            (s.smac, s.dmac)
        } else {
            (s.dmac, s.smac)
        };
        let f = self.table.get_mut(idx);
        f.key = slot.key;
        f.init_is_a = init_is_a;
        f.dir_guessed = dir_guessed;
        f.first_ns = ts;
        f.last_ns = ts;
        f.next_status_ns = next_status;
        f.smac = smac;
        f.dmac = dmac;
        f.vlan = s.vlan;
        f.mpls = s.mpls;
        f.encap = s.encap;
        if f.key.kind == AddrKind::L2 as u8 {
            f.dir_guessed = false;
        }
        if f.key.kind == KIND_IB {
            // LIDs of the initiator (the first packet's sender) and responder.
            let (slid, dlid) = if init_is_a == sender_is_a {
                (s.ib.slid, s.ib.dlid)
            } else {
                (s.ib.dlid, s.ib.slid)
            };
            f.ib = IbInfo {
                slid,
                dlid,
                ..IbInfo::default()
            };
        }
        self.stats.flows_created += 1;
        let n = self.table.len() as u64;
        if n > self.stats.peak_flows {
            self.stats.peak_flows = n;
        }
        let due = self.due_ns(idx);
        let t = self.tick_of(due).max(self.tick + 1);
        self.table.schedule(idx, t);
    }

    /// When the flow next needs attention (idle expiry, status boundary, or end of linger).
    fn due_ns(&self, idx: u32) -> u64 {
        let f = self.table.get(idx);
        if f.close_at != 0 {
            // A closing flow writes no status record, except one way: each half reports every
            // interval it had packets in, or the merge could not line the halves up.
            if self.one_way && f.next_status_ns != 0 {
                return f.close_at.min(f.next_status_ns);
            }
            return f.close_at;
        }
        let idle = f.last_ns + self.idle_ns(&f.key);
        if f.next_status_ns != 0 {
            idle.min(f.next_status_ns)
        } else {
            idle
        }
    }

    /// Makes room in a full table. Victim: among the flows indexed next to the new key's home
    /// bucket (cheap to reach), prefer single-packet flows (scans, floods), then the one idle
    /// longest. Established flows therefore survive a flood of one-packet flows.
    fn evict_one(&mut self, hash: u64, sink: &mut impl RecordSink) {
        let mut cand = [NIL; EVICT_SAMPLE];
        let n = self.table.neighbours(hash, &mut cand);
        let mut best = NIL;
        let mut best_score = (u64::MAX, u64::MAX);
        for &c in &cand[..n] {
            let f = self.table.get(c);
            let score = (f.total_pkts.min(2), f.last_ns);
            if score < best_score {
                best_score = score;
                best = c;
            }
        }
        if best != NIL {
            self.stats.evictions += 1;
            self.emit(best, Cause::Evicted, sink);
            self.table.remove(best);
        }
    }

    fn capture_payload(&mut self, idx: u32, d: usize, s: &PacketSummary, data: &[u8]) {
        let n = self.cfg.payload_bytes;
        let f = self.table.get_mut(idx);
        let have = f.seq[d].payload_len as usize;
        if have >= n {
            return;
        }
        let off = s.payload_off as usize;
        let cap = s.payload_cap as usize;
        let take = cap.min(n - have);
        if take == 0 || off + take > data.len() {
            return;
        }
        let base = (idx as usize * 2 + d) * n + have;
        self.payload[base..base + take].copy_from_slice(&data[off..off + take]);
        f.seq[d].payload_len += take as u16;
        f.flags |= flags::PAYLOAD;
    }

    /// Runs every timer due up to `now` (the time of the packet about to be applied).
    fn run_timers(&mut self, now: u64, sink: &mut impl RecordSink) {
        let target = now / self.cfg.tick_ns;
        let wheel = self.table.wheel_len() as u64;
        // After a long gap every slot is visited once; lazy re-checks do the rest.
        let from = if target - self.tick > wheel {
            target - wheel + 1
        } else {
            self.tick + 1
        };
        for t in from..=target {
            self.expire_tick(t, sink);
        }
        self.tick = target;
        self.next_tick_ns = (target + 1) * self.cfg.tick_ns;
    }

    fn expire_tick(&mut self, t: u64, sink: &mut impl RecordSink) {
        let now = t * self.cfg.tick_ns;
        let mut s = self.table.take_slot(t);
        while s != NIL {
            let next = self.table.detached_next(s);
            self.check_flow(s, now, sink);
            s = next;
        }
    }

    fn check_flow(&mut self, s: u32, now: u64, sink: &mut impl RecordSink) {
        let f = self.table.get(s);
        if f.close_at != 0 && now >= f.close_at {
            self.emit(s, Cause::Close, sink);
            self.table.remove(s);
            return;
        }
        let idle_at = f.last_ns + self.idle_ns(&f.key);
        if f.close_at == 0 && now >= idle_at {
            // After a long gap in packet time the wheel visits a flow late: write the status
            // record a boundary before its idle time would have had, so the records do not
            // depend on how the timers were visited (the merge daemon relies on that).
            let status = self.cfg.status_interval_ns;
            if status != 0 && f.next_status_ns != 0 && f.dirs[0].pkts + f.dirs[1].pkts > 0 {
                let due = if self.one_way {
                    f.next_status_ns
                } else {
                    f.next_status_ns
                        .max((f.first_ns + status).div_ceil(status) * status)
                };
                if due < idle_at {
                    self.emit(s, Cause::Status, sink);
                }
            }
            self.emit(s, Cause::Idle, sink);
            self.table.remove(s);
            return;
        }
        let status = self.cfg.status_interval_ns;
        if f.next_status_ns != 0 && now >= f.next_status_ns {
            // Only flows that lived through a whole interval get status records: a short flow
            // gets exactly one record, its final one.
            // One-way probes report every interval with packets, so that the merge daemon can
            // line up both halves per interval and apply this rule to the joined flow.
            if f.dirs[0].pkts + f.dirs[1].pkts > 0 && (self.one_way || f.first_ns + status <= now) {
                self.emit(s, Cause::Status, sink);
            }
            let f = self.table.get_mut(s);
            f.next_status_ns = (now / status + 1) * status;
        }
        let due = self.due_ns(s);
        let tick = self.tick_of(due).max(now / self.cfg.tick_ns + 1);
        self.table.schedule(s, tick);
    }

    /// Ends every flow (end of input or shutdown): closing flows as `close`, flows past their
    /// idle time as `idle`, the rest as `shutdown`.
    pub fn flush(&mut self, sink: &mut impl RecordSink) {
        let now = self.next_tick_ns.saturating_sub(self.cfg.tick_ns);
        for s in self.table.live_slots() {
            let f = self.table.get(s);
            let cause = if f.close_at != 0 {
                Cause::Close
            } else if now >= f.last_ns + self.idle_ns(&f.key) {
                Cause::Idle
            } else {
                Cause::Shutdown
            };
            self.emit(s, cause, sink);
            self.table.remove(s);
        }
    }

    /// Builds the record for flow `s` (deltas since its last record) and resets the deltas.
    fn emit(&mut self, s: u32, cause: Cause, sink: &mut impl RecordSink) {
        let n = self.cfg.payload_bytes;
        let f = self.table.get_mut(s);
        if f.dirs[0].pkts + f.dirs[1].pkts == 0 && !cause.is_final() {
            return;
        }
        // A final record is always written, so every flow ends with one (with zero counters
        // when all its packets went out in status records already).
        let (si, di) = if f.init_is_a { (0, 1) } else { (1, 0) };
        let r = &mut self.rec;
        r.seq = self.seq;
        r.cause = cause;
        r.addr_kind = f.key.addr_kind();
        r.proto = f.key.proto;
        r.ethertype = f.key.record_ethertype();
        let icmp = matches!((f.key.kind, f.key.proto), (4, 1) | (6, 58));
        let (sa, da, sp, dp) = if f.init_is_a {
            (f.key.a, f.key.b, f.key.port_a, f.key.port_b)
        } else {
            (f.key.b, f.key.a, f.key.port_b, f.key.port_a)
        };
        r.saddr.0 = sa;
        r.daddr.0 = da;
        if icmp || f.key.kind == AddrKind::L2 as u8 {
            r.sport = f.key.port_a;
            r.dport = f.key.port_b;
        } else {
            r.sport = sp;
            r.dport = dp;
        }
        r.ib = IbInfo::default();
        if f.key.kind == KIND_IB {
            ib_record(r, f);
        }
        let mut src = f.dirs[si];
        let mut dst = f.dirs[di];
        finish_ipt(&mut src);
        finish_ipt(&mut dst);
        r.observed = (if src.pkts > 0 {
            observed::SRC_TO_DST
        } else {
            0
        }) | (if dst.pkts > 0 {
            observed::DST_TO_SRC
        } else {
            0
        });
        let firsts = [src.first_ns, dst.first_ns];
        r.stime_ns = firsts
            .iter()
            .copied()
            .filter(|&t| t != 0)
            .min()
            .unwrap_or(f.last_ns);
        r.ltime_ns = src.last_ns.max(dst.last_ns).max(r.stime_ns);
        r.src = src;
        r.dst = dst;
        r.state = tcp_state(f);
        r.flags = f.flags
            | if f.dir_guessed { flags::DIR_GUESSED } else { 0 }
            | if self.one_way { flags::ONE_WAY } else { 0 };
        r.hs = Handshake::default();
        if self.one_way && !f.hs_sent && f.tcp & (T_SYN | T_SYNACK) != 0 {
            f.hs_sent = true;
            r.hs = Handshake {
                syn_ns: f.syn_ns,
                synack_ns: f.synack_at,
                ack_ns: f.est_at,
                synack_ack: f.synack_ack,
                ack_ack: f.est_ack,
            };
        }
        r.tcp_opts = f.tcp_opts;
        r.synack_ns = f.synack_ns;
        r.ackdat_ns = f.ackdat_ns;
        r.smac = f.smac;
        r.dmac = f.dmac;
        r.vlan = f.vlan;
        r.mpls = f.mpls;
        r.encap = f.encap;
        r.src_payload.clear();
        r.dst_payload.clear();
        if n > 0 && f.flags & flags::PAYLOAD != 0 {
            // Each record carries the payload bytes captured during its interval.
            for (d, out) in [(si, &mut r.src_payload), (di, &mut r.dst_payload)] {
                let st = &mut f.seq[d];
                let base = (s as usize * 2 + d) * n;
                let (from, to) = (st.payload_sent as usize, st.payload_len as usize);
                if to > from && base + to <= self.payload.len() {
                    out.extend_from_slice(&self.payload[base + from..base + to]);
                }
                st.payload_sent = st.payload_len;
            }
        }
        // Reset the deltas; keep what describes the flow as a whole.
        for d in 0..2 {
            let ds = &mut f.dirs[d];
            *ds = DirStats {
                isn: ds.isn,
                window: ds.window,
                ..DirStats::default()
            };
        }
        f.flags &= !flags::PAYLOAD;
        f.ib.opcodes = [0; 4];
        f.ib.naks = 0;
        f.ib.rnr_naks = 0;
        self.seq += 1;
        self.stats.records += 1;
        self.stats.records_by_cause[cause as usize] += 1;
        sink.record(&self.rec);
    }
}

/// The InfiniBand part of a record: GIDs (or none), QPs oriented as the record, and what the
/// flow saw since its last record.
fn ib_record(r: &mut FlowRecord, f: &Flow) {
    let fl = f.key.ib_flags();
    r.addr_kind = AddrKind::Ipv6;
    r.proto = IBA_TRANSPORT;
    if fl & (ib_flags::GRH | ib_flags::ROCEV2) == 0 {
        r.saddr = Addr::default();
        r.daddr = Addr::default();
    }
    r.sport = 0;
    r.dport = 0;
    let (qa, qb) = f.key.ib_qps();
    let (sqp, dqp) = if f.init_is_a { (qa, qb) } else { (qb, qa) };
    r.ib = IbInfo {
        sqp: if fl & ib_flags::SQP != 0 { sqp } else { 0 },
        dqp,
        flags: fl,
        ..f.ib
    };
}

/// InfiniBand: opcodes, NAKs, and PSN analysis of the requests of direction `d` (PSNs are 24
/// bits, one per packet): `loss_pkts` counts PSNs skipped when a later one arrived (lost
/// before the tap, or reordered), `out_of_order` packets that filled such a gap, `retrans`
/// packets at or below the highest PSN seen that did not (go-back-N resends, duplicates).
#[inline]
fn ib_update(f: &mut Flow, d: usize, s: &PacketSummary) {
    let p = &s.ib;
    if !p.bth {
        return;
    }
    f.ib.add_opcode(p.opcode);
    f.ib.pkey = p.pkey;
    if p.aeth {
        if ib::is_nak(p.syndrome) {
            f.ib.naks += 1;
        } else if ib::is_rnr_nak(p.syndrome) {
            f.ib.rnr_naks += 1;
        }
    }
    if !ib::psn_tracked(p.opcode) {
        return;
    }
    const M: u32 = 0xff_ffff;
    // Signed distance a - b in the 24-bit PSN space.
    let diff = |a: u32, b: u32| ((a.wrapping_sub(b) & M) << 8) as i32 >> 8;
    let (ds, st) = (&mut f.dirs[d], &mut f.seq[d]);
    let psn = p.psn & M;
    let next = (psn + 1) & M;
    if !st.started || st.ib_resync {
        st.started = true;
        st.ib_resync = false;
        st.hole = false;
        st.max_end = next;
    } else {
        let ahead = diff(psn, st.max_end);
        if ahead == 0 {
            st.max_end = next;
        } else if ahead > 0 {
            ds.loss_pkts += ahead as u32;
            if !st.hole {
                st.hole = true;
                st.hole_start = st.max_end;
            }
            st.hole_end = psn;
            st.max_end = next;
        } else if st.hole && diff(psn, st.hole_start) >= 0 && diff(psn, st.hole_end) < 0 {
            ds.out_of_order += 1;
            if psn == st.hole_start {
                st.hole_start = next;
            }
            if diff(st.hole_start, st.hole_end) >= 0 {
                st.hole = false;
            }
        } else {
            ds.retrans += 1;
        }
    }
    if ib::is_read_request(p.opcode) {
        st.ib_resync = true;
    }
}

/// Updates one direction's counters with a packet.
#[inline]
fn update_dir(d: &mut DirStats, st: &mut SeqTrack, s: &PacketSummary) {
    let ts = s.ts_ns;
    if d.pkts == 0 {
        d.first_ns = ts;
        d.ttl_min = s.ttl;
        d.ttl_max = s.ttl;
    } else {
        d.ttl_min = d.ttl_min.min(s.ttl);
        d.ttl_max = d.ttl_max.max(s.ttl);
    }
    d.pkts += 1;
    d.bytes += s.bytes as u64;
    d.ip_bytes += s.ip_len as u64;
    d.app_bytes += s.app_len as u64;
    d.last_ns = d.last_ns.max(ts);
    d.tos = s.tos;
    if s.frag != fragpos::NONE {
        d.frags += 1;
    }
    // Inter-packet time (Welford running mean/variance; ipt_std_ns holds M2 until emitted).
    if st.last_ns != 0 && ts >= st.last_ns {
        let dt = (ts - st.last_ns) as f64;
        d.ipt_n += 1;
        let delta = dt - d.ipt_mean_ns;
        d.ipt_mean_ns += delta / d.ipt_n as f64;
        d.ipt_std_ns += delta * (dt - d.ipt_mean_ns);
    }
    st.last_ns = st.last_ns.max(ts);
}

fn finish_ipt(d: &mut DirStats) {
    d.ipt_std_ns = if d.ipt_n > 0 {
        (d.ipt_std_ns / d.ipt_n as f64).max(0.0).sqrt()
    } else {
        0.0
    };
}

/// TCP: flags, handshake timing, state bits, sequence analysis for direction `d`
/// (0 = sent by endpoint a).
#[inline]
fn tcp_update(f: &mut Flow, d: usize, t: &TcpInfo, app_len: u32, ts: u64) {
    let from_init = (d == 0) == f.init_is_a;
    let fl = t.flags;
    let ds = &mut f.dirs[d];
    ds.tcp_flags |= fl;
    if ds.pkts == 1 {
        // First segment of this direction in the current record.
        ds.first_seq = t.seq;
    }
    ds.last_seq = t.seq;
    if fl & tcpf::ACK != 0 {
        ds.last_ack = t.ack;
    }
    if fl & tcpf::RST == 0 && fl & tcpf::SYN == 0 && t.win == 0 {
        ds.zero_win += 1;
    }
    if fl & tcpf::ECE != 0 && fl & tcpf::SYN == 0 {
        f.flags |= flags::ECN_CE;
    }
    let st = &mut f.seq[d];
    let scale = if fl & tcpf::SYN == 0 && f.tcp_opts & tcp_opts::WSCALE != 0 {
        st.wscale
    } else {
        0
    };
    ds.window = (t.win as u32) << scale;
    if fl & tcpf::SYN != 0 {
        f.tcp_opts |= t.opts & !tcp_opts::SACK;
        if fl & (tcpf::ECE | tcpf::CWR) == tcpf::ECE | tcpf::CWR {
            f.tcp_opts |= tcp_opts::ECN;
        }
        st.wscale = if t.opts & tcp_opts::WSCALE != 0 {
            t.wscale
        } else {
            0
        };
        if t.opts & tcp_opts::WSCALE == 0 && fl & tcpf::ACK != 0 {
            // RFC 7323: scaling is on only if both SYNs carried the option.
            f.tcp_opts &= !tcp_opts::WSCALE;
        }
    } else if t.opts & tcp_opts::SACK != 0 {
        f.tcp_opts |= tcp_opts::SACK;
    }

    // Handshake and state.
    if fl & tcpf::RST != 0 {
        f.tcp |= T_RST;
    }
    if fl & tcpf::SYN != 0 && fl & tcpf::ACK == 0 {
        f.tcp |= T_SYN;
        f.syn_ns = ts;
        f.hs_sent = false;
    } else if fl & tcpf::SYN != 0 {
        if f.tcp & T_SYNACK == 0 {
            f.synack_at = ts;
            f.synack_ack = t.ack;
            f.hs_sent = false;
            if f.syn_ns != 0 && ts >= f.syn_ns {
                f.synack_ns = ts - f.syn_ns;
            }
        }
        f.tcp |= T_SYNACK;
    } else if fl & tcpf::ACK != 0 && from_init && f.tcp & T_SYNACK != 0 && f.tcp & T_EST == 0 {
        f.tcp |= T_EST;
        if ts >= f.synack_at {
            f.ackdat_ns = ts - f.synack_at;
        }
    }
    if fl & tcpf::ACK != 0
        && fl & tcpf::SYN == 0
        && from_init
        && f.est_at == 0
        && f.tcp & (T_SYN | T_SYNACK) != 0
    {
        // The handshake's third packet as either probe of a split tap sees it (the one that
        // sees the initiator never sees the SYN-ACK).
        f.est_at = ts;
        f.est_ack = t.ack;
        f.hs_sent = false;
    }
    if fl & tcpf::FIN != 0 {
        f.tcp |= if d == 0 { T_FIN_A } else { T_FIN_B };
    }

    // Sequence analysis (RFC 9293 sequence space, modulo 2^32).
    if fl & tcpf::SYN != 0 {
        if st.isn_set && ds.isn == t.seq {
            ds.retrans += 1;
        } else {
            st.isn_set = true;
            ds.isn = t.seq;
            st.started = true;
            st.max_end = t.seq.wrapping_add(1);
            st.hole = false;
        }
        return;
    }
    if fl & tcpf::RST != 0 {
        return;
    }
    let len = app_len + (fl & tcpf::FIN != 0) as u32;
    if len == 0 {
        return;
    }
    let end = t.seq.wrapping_add(len);
    if !st.started {
        st.started = true;
        st.max_end = end;
        return;
    }
    let ahead = t.seq.wrapping_sub(st.max_end) as i32;
    if ahead == 0 {
        st.max_end = end;
    } else if ahead > 0 {
        // Data missing before this segment: lost before the tap (or reordered).
        ds.loss_pkts += 1;
        ds.loss_bytes += ahead as u64;
        if !st.hole {
            st.hole = true;
            st.hole_start = st.max_end;
        }
        st.hole_end = t.seq;
        st.max_end = end;
    } else if st.hole
        && (t.seq.wrapping_sub(st.hole_start) as i32) >= 0
        && (t.seq.wrapping_sub(st.hole_end) as i32) < 0
    {
        // Fills the gap: arrived out of order (or is the retransmission of what was lost).
        ds.out_of_order += 1;
        if t.seq == st.hole_start {
            st.hole_start = end;
        }
        if (st.hole_start.wrapping_sub(st.hole_end) as i32) >= 0 {
            st.hole = false;
        }
    } else if !(len <= 1 && t.seq == st.max_end.wrapping_sub(1)) {
        // Below what was already seen, and not a keep-alive probe: a retransmission.
        ds.retrans += 1;
        if (end.wrapping_sub(st.max_end) as i32) > 0 {
            st.max_end = end;
        }
    }
}

fn tcp_state(f: &Flow) -> FlowState {
    if f.key.proto != 6 || f.key.kind == AddrKind::L2 as u8 {
        return FlowState::None;
    }
    let t = f.tcp;
    if t & T_RST != 0 {
        FlowState::Rst
    } else if t & (T_FIN_A | T_FIN_B) != 0 {
        // Argus reports any FIN as FIN (its CLO is never reached); operators filter on it.
        FlowState::Fin
    } else if t & T_EST != 0 {
        FlowState::Con
    } else if t & T_SYNACK != 0 {
        FlowState::Acc
    } else if t & T_SYN != 0 {
        FlowState::Req
    } else {
        FlowState::None
    }
}

#[cfg(test)]
mod tests;
