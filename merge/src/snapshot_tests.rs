//! Merger snapshots: a merger restored from a snapshot must go on exactly as the original.

use super::*;
use tapflow_record::{flags, observed, Addr, AddrKind, Cause, DirStats, FlowRecord, Handshake};

const S: u64 = 1_000_000_000;
/// Start of the capture, on an interval boundary.
const T0: u64 = 1_700_000_000 * S;
/// Input 1's clock minus input 0's (the reference).
const THETA: u64 = 2_000_000;

/// Small deterministic generator (no dependency, same stream every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Fin,
    Rst,
    Idle,
}

/// One simulated connection: client (initiator) → server, seen by input 0 client→server and
/// by input 1 server→client.
struct Conn {
    tcp: bool,
    client: [u8; 4],
    cport: u16,
    start: u64,
    /// Intervals with packets (the first is the start's).
    intervals: u64,
    end: End,
    isn_c: u32,
    isn_s: u32,
}

/// The half-records of both inputs, in the order the probes would write them: every interval
/// of input 0, then of input 1 (input 1 lags behind), interval by interval.
fn stream(iv: u64) -> Vec<(usize, FlowRecord)> {
    let mut g = Lcg(7);
    let conns: Vec<Conn> = (0..300u64)
        .map(|i| Conn {
            tcp: i % 5 != 0,
            client: [10, 1, (i >> 8) as u8, i as u8],
            cport: 30_000 + i as u16,
            start: T0 + g.below(8 * iv) + 1_000,
            intervals: 1 + g.below(6),
            end: [End::Fin, End::Fin, End::Rst, End::Idle][g.below(4) as usize],
            isn_c: 1 + g.below(1 << 31) as u32,
            isn_s: 1 + g.below(1 << 31) as u32,
        })
        .collect();
    let last_iv = (T0 + 20 * iv) / iv;
    let mut seq = [0u64; 2];
    let mut out = Vec::new();
    for k in T0 / iv..last_iv {
        let (lo, hi) = (k * iv, (k + 1) * iv);
        for (p, next_seq) in seq.iter_mut().enumerate() {
            for c in &conns {
                let first_k = c.start / iv;
                if k < first_k || k >= first_k + c.intervals {
                    continue;
                }
                let last = k == first_k + c.intervals - 1;
                let first = k == first_k;
                let t1 = if first { c.start } else { lo + 10_000 };
                let t2 = if last {
                    t1 + (hi - t1) / 3
                } else {
                    hi - 10_000
                };
                // Server's packets 50 µs after the client's; input 1's clock runs THETA ahead.
                let (a, b) = if p == 0 {
                    (t1, t2)
                } else {
                    (t1 + 50_000 + THETA, t2 + 50_000 + THETA)
                };
                let pkts = 2 + (c.cport as u64 + k) % 7;
                let mut ds = DirStats {
                    pkts,
                    bytes: pkts * 600,
                    ip_bytes: pkts * 586,
                    app_bytes: pkts * 546,
                    first_ns: a,
                    last_ns: b,
                    ttl_min: 60,
                    ttl_max: 64,
                    ipt_n: pkts as u32 - 1,
                    ipt_mean_ns: (b - a) as f64 / (pkts - 1) as f64,
                    ipt_std_ns: 1234.5,
                    ..DirStats::default()
                };
                let mut hs = Handshake::default();
                if c.tcp {
                    let isn = if p == 0 { c.isn_c } else { c.isn_s };
                    ds.isn = isn;
                    ds.first_seq = isn.wrapping_add(1 + (k - first_k) as u32 * 1000);
                    ds.last_seq = ds.first_seq.wrapping_add(pkts as u32 * 546);
                    ds.tcp_flags = 0x10 | 0x08;
                    if first {
                        ds.tcp_flags |= 0x02;
                        if p == 0 {
                            hs.syn_ns = a;
                            hs.ack_ns = a + 100_000;
                            hs.ack_ack = c.isn_s.wrapping_add(1);
                        } else {
                            hs.synack_ns = a;
                            hs.synack_ack = c.isn_c.wrapping_add(1);
                        }
                    }
                    if last {
                        match c.end {
                            End::Fin => ds.tcp_flags |= 0x01,
                            End::Rst if p == 1 => ds.tcp_flags |= 0x04,
                            _ => {}
                        }
                    }
                }
                let empty = DirStats::default();
                let (src, dst, obs) = if p == 0 {
                    (ds, empty, observed::SRC_TO_DST)
                } else {
                    (empty, ds, observed::DST_TO_SRC)
                };
                let rec = FlowRecord {
                    probe_id: 10 + p as u32,
                    seq: *next_seq,
                    cause: match (last, c.end) {
                        (false, _) => Cause::Status,
                        (true, End::Idle) => Cause::Idle,
                        (true, _) => Cause::Close,
                    },
                    observed: obs,
                    addr_kind: AddrKind::Ipv4,
                    proto: if c.tcp { 6 } else { 17 },
                    ethertype: 0x0800,
                    saddr: Addr::from_v4(c.client),
                    daddr: Addr::from_v4([192, 168, 0, 1]),
                    sport: c.cport,
                    dport: if c.tcp { 443 } else { 53 },
                    stime_ns: a,
                    ltime_ns: b,
                    flags: flags::ONE_WAY,
                    smac: [2, 0, 0, 0, 0, 1],
                    dmac: [2, 0, 0, 0, 0, 2],
                    vlan: [100, 0],
                    src,
                    dst,
                    src_payload: if p == 0 { vec![1, 2, 3] } else { Vec::new() },
                    dst_payload: if p == 1 { vec![4, 5] } else { Vec::new() },
                    hs,
                    ..FlowRecord::default()
                };
                *next_seq += 1;
                out.push((p, rec));
            }
        }
    }
    out
}

fn cfg() -> MergeConfig {
    MergeConfig {
        probe_id: 99,
        // Merge-status records every 10 s: their counters are part of the state too.
        stats_interval_ns: 10 * S,
        ..MergeConfig::default()
    }
}

fn feed(m: &mut Merger, recs: &[(usize, FlowRecord)], out: &mut Vec<FlowRecord>) {
    let mut sink = |r: &FlowRecord| out.push(r.clone());
    for (p, r) in recs {
        m.push(*p, r.clone(), &mut sink);
        m.advance(&mut sink);
    }
}

#[test]
fn restored_merger_continues_exactly_like_the_original() {
    let cfg = cfg();
    let recs = stream(cfg.flow.status_interval_ns);
    // Mid-interval, with records of one input buffered and flows open.
    let cut = recs.len() / 2 + 17;
    let mut a = Merger::new(cfg.clone(), 2);
    let mut before = Vec::new();
    feed(&mut a, &recs[..cut], &mut before);
    assert!(
        a.buffered > 0 && a.active_flows() > 0,
        "a cut with state in flight"
    );
    assert!(before.iter().any(|r| r.flags & flags::MERGED != 0));

    let mut snap = Vec::new();
    a.snapshot(&mut snap).unwrap();
    let mut b = Merger::restore(cfg, 2, &mut snap.as_slice()).unwrap();
    assert_eq!(b.stats(), a.stats());
    assert_eq!(b.offset(1), a.offset(1));
    assert_ne!(
        a.offset(1).pairs,
        0,
        "the clock estimate is part of the state"
    );

    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    feed(&mut a, &recs[cut..], &mut out_a);
    feed(&mut b, &recs[cut..], &mut out_b);
    a.finish(&mut |r: &FlowRecord| out_a.push(r.clone()));
    b.finish(&mut |r: &FlowRecord| out_b.push(r.clone()));

    assert!(out_a.len() > 100, "{} records after the cut", out_a.len());
    assert!(out_a.iter().any(|r| r.flags & flags::MERGED != 0));
    assert!(out_a.iter().any(|r| r.merge.is_some()));
    assert_eq!(out_a.len(), out_b.len());
    for (i, (x, y)) in out_a.iter().zip(&out_b).enumerate() {
        assert_eq!(x, y, "record {i} after the cut differs");
    }
    assert_eq!(a.stats(), b.stats());
    // And the merged sequence numbers run on from the cut without a gap or repeat.
    let seqs: Vec<u64> = before.iter().chain(&out_a).map(|r| r.seq).collect();
    assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as u64));
}

#[test]
fn any_cut_gives_the_uninterrupted_output() {
    // Wherever the snapshot falls (mid-interval, at a boundary, with timers pending), the
    // records before it plus the restored merger's are the uninterrupted run's, seq included.
    let cfg = cfg();
    let recs = stream(cfg.flow.status_interval_ns);
    let mut full = Vec::new();
    let mut m = Merger::new(cfg.clone(), 2);
    feed(&mut m, &recs, &mut full);
    m.finish(&mut |r: &FlowRecord| full.push(r.clone()));
    for cut in (1..recs.len()).step_by(recs.len() / 25) {
        let mut a = Merger::new(cfg.clone(), 2);
        let mut out = Vec::new();
        feed(&mut a, &recs[..cut], &mut out);
        let mut snap = Vec::new();
        a.snapshot(&mut snap).unwrap();
        drop(a);
        let mut b = Merger::restore(cfg.clone(), 2, &mut snap.as_slice()).unwrap();
        feed(&mut b, &recs[cut..], &mut out);
        b.finish(&mut |r: &FlowRecord| out.push(r.clone()));
        assert_eq!(out.len(), full.len(), "cut at {cut}");
        assert!(out == full, "cut at {cut}: output differs");
    }
}

/// A merger with some state in it, and its snapshot.
fn snapshot_of_busy_merger() -> Vec<u8> {
    let cfg = cfg();
    let recs = stream(cfg.flow.status_interval_ns);
    let mut m = Merger::new(cfg, 2);
    feed(&mut m, &recs[..recs.len() / 3], &mut Vec::new());
    let mut snap = Vec::new();
    m.snapshot(&mut snap).unwrap();
    snap
}

#[test]
fn truncated_or_corrupt_snapshots_are_errors() {
    let snap = snapshot_of_busy_merger();
    for len in [
        0,
        5,
        8,
        12,
        13,
        snap.len() / 2,
        snap.len() - 4,
        snap.len() - 1,
    ] {
        let r = Merger::restore(cfg(), 2, &mut &snap[..len]);
        assert!(r.is_err(), "truncated to {len} of {}", snap.len());
    }
    for at in [3, 20, snap.len() / 2, snap.len() - 2] {
        let mut bad = snap.clone();
        bad[at] ^= 0x40;
        assert!(
            Merger::restore(cfg(), 2, &mut bad.as_slice()).is_err(),
            "byte {at}"
        );
    }
    // The intact one restores, and reads exactly its own bytes.
    let mut longer = snap.clone();
    longer.extend_from_slice(b"next");
    let mut r = longer.as_slice();
    assert!(Merger::restore(cfg(), 2, &mut r).is_ok());
    assert_eq!(r, b"next");
}

#[test]
fn input_count_mismatch_is_an_error() {
    let snap = snapshot_of_busy_merger();
    for n in [1, 3] {
        let e = Merger::restore(cfg(), n, &mut snap.as_slice())
            .err()
            .expect("mismatch");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn empty_merger_round_trips() {
    let m = Merger::new(cfg(), 3);
    let mut snap = Vec::new();
    m.snapshot(&mut snap).unwrap();
    assert_eq!(&snap[..8], b"TFMSNAP3");
    let r = Merger::restore(cfg(), 3, &mut snap.as_slice()).unwrap();
    assert_eq!((r.inputs(), r.active_flows()), (3, 0));
}
