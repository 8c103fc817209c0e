//! One capture worker: owns its sockets (one per interface: a NIC queue or fanout member on each
//! leg), its flow table and the producer end of its record queue. Nothing is shared with other
//! workers; the per-packet path has no lock, atomic, allocation or syscall. The only syscalls
//! are one `poll` per idle period and, per batch, a vDSO clock read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapflow_capture::live::{realtime_ns, wait_readable};
use tapflow_capture::LiveCapture;
use tapflow_record::{status_flags, Cause, FlowRecord, ProbeStatus};

use super::log;
use crate::{Engine, EngineConfig, RecordSink};

/// Everything a worker thread owns.
pub struct Worker {
    pub id: usize,
    /// Core to pin to.
    pub core: Option<usize>,
    pub sources: Vec<Box<dyn LiveCapture>>,
    pub engine: EngineConfig,
    pub queue: rtrb::Producer<FlowRecord>,
    pub stop: Arc<AtomicBool>,
    /// Probe-status record interval.
    pub stats_interval_ns: u64,
    /// `status_flags` bits every status record of this worker carries.
    pub flags: u32,
}

/// Pushes flow records into the worker's queue. Never blocks while capturing: a full queue
/// costs the record, counted. At shutdown (`wait`) it waits for room instead.
struct QueueSink {
    q: rtrb::Producer<FlowRecord>,
    queued: u64,
    dropped: u64,
    wait: bool,
}

impl RecordSink for QueueSink {
    fn record(&mut self, rec: &FlowRecord) {
        // An empty-payload, status-less record clones without allocating.
        let mut item = rec.clone();
        loop {
            match self.q.push(item) {
                Ok(()) => {
                    self.queued += 1;
                    return;
                }
                Err(rtrb::PushError::Full(back)) => {
                    if !self.wait || self.q.is_abandoned() {
                        self.dropped += 1;
                        return;
                    }
                    item = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
}

impl Worker {
    /// Runs until the stop flag is set (then drains, flushes every flow as a shutdown record
    /// and writes a final status record) or a source fails.
    pub fn run(mut self) -> Result<ProbeStatus, String> {
        if let Some(c) = self.core {
            if let Err(e) = tapflow_capture::live::pin_thread(c) {
                log(&format!("worker {}: cannot pin to core {c}: {e}", self.id));
            }
        }
        let mut engine = Engine::new(self.engine.clone());
        let mut sink = QueueSink {
            q: self.queue,
            queued: 0,
            dropped: 0,
            wait: false,
        };
        let fds: Vec<_> = self.sources.iter().map(|s| s.poll_fd()).collect();
        let interval = self.stats_interval_ns.max(100_000_000);
        let mut acct = Accounting {
            worker: self.id as u32,
            flags: self.flags,
            since_ns: realtime_ns(),
            last: ProbeStatus::default(),
            pending: VecDeque::new(),
        };
        let mut next_status = (acct.since_ns / interval + 1) * interval;
        let mut error = None;
        let mut stopping_since: Option<Instant> = None;
        let mut quiet_since = Instant::now();
        loop {
            let mut got = 0usize;
            if let Err(e) = pump(&mut self.sources, &mut engine, &mut sink, &mut got) {
                error = Some(format!("worker {}: {e}", self.id));
            }
            if error.is_some() {
                break;
            }
            if stopping_since.is_none() && self.stop.load(Ordering::Relaxed) {
                stopping_since = Some(Instant::now());
                quiet_since = Instant::now();
            }
            if let Some(t) = stopping_since {
                // Take what is in the rings, including AF_PACKET blocks the kernel retires on
                // its timer, then stop (within 2 s even under constant traffic).
                if got > 0 {
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() > Duration::from_millis(60)
                    || t.elapsed() > Duration::from_secs(2)
                {
                    break;
                } else if let Err(e) = wait_readable(&fds, 10) {
                    error = Some(format!("worker {}: poll: {e}", self.id));
                    break;
                }
            } else if got == 0 {
                if let Err(e) = wait_readable(&fds, 50) {
                    error = Some(format!("worker {}: poll: {e}", self.id));
                    break;
                }
            }
            let now = realtime_ns();
            engine.advance(now, &mut sink);
            if now >= next_status {
                acct.status(now, &mut engine, &mut self.sources, &sink, false);
                next_status = (now / interval + 1) * interval;
            }
            acct.push_pending(&mut sink.q);
        }
        // Shutdown: every flow leaves as a record, and nothing is dropped for lack of room.
        sink.wait = true;
        engine.flush(&mut sink);
        let now = realtime_ns();
        acct.status(now, &mut engine, &mut self.sources, &sink, true);
        while !acct.pending.is_empty() {
            if sink.q.is_abandoned() {
                break;
            }
            acct.push_pending(&mut sink.q);
            if !acct.pending.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(acct.last),
        }
    }
}

/// Most capture sources (tap legs) one worker reads.
pub const MAX_SOURCES: usize = 4;

/// Takes one batch from every source and feeds the engine. With several sources (the legs of a
/// tap) the packets are merged in timestamp order, so a flow's two directions reach the engine
/// as they crossed the wire, not a batch of one leg after a batch of the other.
fn pump(
    sources: &mut [Box<dyn LiveCapture>],
    engine: &mut Engine,
    sink: &mut QueueSink,
    got: &mut usize,
) -> Result<(), tapflow_capture::CaptureError> {
    if sources.len() == 1 {
        if let Some(b) = sources[0].next_batch()? {
            *got += b.len();
            engine.process_batch(&b, sink);
        }
        return Ok(());
    }
    let mut bs: [Option<tapflow_capture::Batch<'_>>; MAX_SOURCES] = [None; MAX_SOURCES];
    for (slot, s) in bs.iter_mut().zip(sources.iter_mut()) {
        *slot = s.next_batch()?;
    }
    let mut pos = [0usize; MAX_SOURCES];
    loop {
        // The source whose next packet is oldest, and the oldest next packet of the others.
        let mut pick = None;
        let mut bound = u64::MAX;
        for (i, b) in bs.iter().enumerate() {
            let Some(b) = b else { continue };
            let Some(d) = b.descs.get(pos[i]) else {
                continue;
            };
            match pick {
                Some((_, t)) if d.ts_ns >= t => bound = bound.min(d.ts_ns),
                Some((_, t)) => {
                    bound = bound.min(t);
                    pick = Some((i, d.ts_ns));
                }
                None => pick = Some((i, d.ts_ns)),
            }
        }
        let Some((i, _)) = pick else { break };
        let b = bs[i].as_ref().expect("picked a present batch");
        let start = pos[i];
        let run = b.descs[start..]
            .iter()
            .position(|d| d.ts_ns > bound)
            .unwrap_or(b.descs.len() - start)
            .max(1);
        let part = tapflow_capture::Batch {
            data: b.data,
            descs: &b.descs[start..start + run],
        };
        engine.process_batch(&part, sink);
        *got += run;
        pos[i] += run;
    }
    Ok(())
}

/// Builds probe-status records: deltas of the cumulative counters since the last one.
struct Accounting {
    worker: u32,
    flags: u32,
    since_ns: u64,
    /// Cumulative counters at the last status record.
    last: ProbeStatus,
    /// Status records waiting for room in the queue (they are never dropped).
    pending: VecDeque<FlowRecord>,
}

impl Accounting {
    fn status(
        &mut self,
        now: u64,
        engine: &mut Engine,
        sources: &mut [Box<dyn LiveCapture>],
        sink: &QueueSink,
        last: bool,
    ) {
        let mut cur = ProbeStatus {
            worker: self.worker,
            flags: self.flags | if last { status_flags::FINAL } else { 0 },
            ..ProbeStatus::default()
        };
        for s in sources.iter_mut() {
            for w in s.take_warnings() {
                log(&format!("worker {}: warning: {w}", self.worker));
            }
            let l = s.live_stats();
            cur.seen += l.seen;
            cur.delivered += l.delivered;
            cur.ring_drops += l.ring_drops;
            cur.filtered += l.filtered;
            cur.passed += l.passed;
            cur.invalid += l.invalid;
        }
        let es = engine.stats();
        cur.decoded = es.packets;
        cur.malformed = engine.decoder.stats.malformed_total();
        cur.flows_admitted = es.flows_created;
        cur.evictions = es.evictions;
        cur.records_queued = sink.queued;
        cur.records_dropped = sink.dropped;
        cur.active_flows = es.active_flows;
        let st = cur.delta(&self.last);
        let rec = FlowRecord {
            probe_id: engine.config().probe_id,
            seq: engine.take_seq(),
            cause: if last { Cause::Shutdown } else { Cause::Status },
            stime_ns: self.since_ns,
            ltime_ns: now,
            status: Some(Box::new(st)),
            ..FlowRecord::default()
        };
        self.pending.push_back(rec);
        self.last = cur;
        self.since_ns = now;
    }

    fn push_pending(&mut self, q: &mut rtrb::Producer<FlowRecord>) {
        while let Some(r) = self.pending.pop_front() {
            if let Err(rtrb::PushError::Full(r)) = q.push(r) {
                self.pending.push_front(r);
                break;
            }
        }
    }
}
