use super::*;
use crate::testutil::*;
use tapflow_capture::LinkType;

const C: [u8; 4] = [10, 0, 0, 1]; // client
const SV: [u8; 4] = [10, 0, 0, 2]; // server
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

struct Run {
    e: Engine,
    recs: Vec<FlowRecord>,
}

impl Run {
    fn new(cfg: EngineConfig) -> Run {
        Run {
            e: Engine::new(cfg),
            recs: vec![],
        }
    }
    fn pkt(&mut self, ts: u64, frame: &[u8]) {
        let recs = &mut self.recs;
        self.e
            .process_packet(
                frame,
                frame.len() as u32,
                LinkType(1),
                ts,
                &mut |r: &FlowRecord| recs.push(r.clone()),
            )
            .expect("decodes");
    }
    /// Client → server TCP segment.
    fn c2s(&mut self, ts: u64, seq: u32, ack: u32, flags: u8, len: usize) {
        let f = eth_tcp(C, SV, 40000, 80, seq, ack, flags, &vec![0xab; len]);
        self.pkt(ts, &f);
    }
    fn s2c(&mut self, ts: u64, seq: u32, ack: u32, flags: u8, len: usize) {
        let f = eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4(SV, C, 6, &tcp(80, 40000, seq, ack, flags, &vec![0xcd; len])),
        );
        self.pkt(ts, &f);
    }
    fn finish(mut self) -> Vec<FlowRecord> {
        let recs = &mut self.recs;
        self.e.flush(&mut |r: &FlowRecord| recs.push(r.clone()));
        self.recs
    }
}

const SYN: u8 = tcpf::SYN;
const ACK: u8 = tcpf::ACK;
const SA: u8 = tcpf::SYN | tcpf::ACK;
const PA: u8 = tcpf::PSH | tcpf::ACK;
const FA: u8 = tcpf::FIN | tcpf::ACK;

fn no_status() -> EngineConfig {
    EngineConfig {
        status_interval_ns: 0,
        ..EngineConfig::default()
    }
}

fn full_session(r: &mut Run, t: u64) {
    r.c2s(t, 100, 0, SYN, 0);
    r.s2c(t + 10 * MS, 500, 101, SA, 0);
    r.c2s(t + 12 * MS, 101, 501, ACK, 0);
    r.c2s(t + 20 * MS, 101, 501, PA, 200);
    r.s2c(t + 30 * MS, 501, 301, PA, 1000);
    r.c2s(t + 31 * MS, 301, 1501, FA, 0);
    r.s2c(t + 40 * MS, 1501, 302, FA, 0);
    r.c2s(t + 41 * MS, 302, 1502, ACK, 0);
}

#[test]
fn tcp_session_gives_one_close_record_oriented_to_the_initiator() {
    let mut r = Run::new(no_status());
    full_session(&mut r, T0);
    // Time passes beyond the linger: the close record comes out on the next packet.
    r.pkt(T0 + 5 * SEC, &eth(MAC_A, MAC_B, 0x0806, &[0; 28]));
    assert_eq!(r.recs.len(), 1);
    let rec = &r.recs[0];
    assert_eq!(rec.cause, Cause::Close);
    assert_eq!(rec.state, FlowState::Fin);
    assert_eq!(&rec.saddr.0[..4], &C);
    assert_eq!((rec.sport, rec.dport, rec.proto), (40000, 80, 6));
    assert_eq!((rec.src.pkts, rec.dst.pkts), (5, 3));
    assert_eq!((rec.src.app_bytes, rec.dst.app_bytes), (200, 1000));
    assert_eq!(rec.src.bytes, 5 * 54 + 200);
    assert_eq!(rec.synack_ns, 10 * MS);
    assert_eq!(rec.ackdat_ns, 2 * MS);
    assert_eq!(rec.src.isn, 100);
    assert_eq!(rec.dst.isn, 500);
    assert_eq!(rec.src.tcp_flags, SYN | ACK | tcpf::PSH | tcpf::FIN);
    assert_eq!(
        (rec.src.retrans, rec.src.out_of_order, rec.src.loss_pkts),
        (0, 0, 0)
    );
    assert_eq!(rec.stime_ns, T0);
    assert_eq!(rec.ltime_ns, T0 + 41 * MS);
    assert_eq!(rec.smac, MAC_A);
    assert_eq!(rec.observed, observed::SRC_TO_DST | observed::DST_TO_SRC);
    assert_eq!(rec.flags & flags::DIR_GUESSED, 0);
    assert_eq!(rec.dir_str(), "<->");
    let rest = r.finish();
    assert_eq!(rest.len(), 2, "ARP flow flushed at the end");
    assert_eq!(rest[1].cause, Cause::Shutdown);
}

#[test]
fn syn_ack_first_makes_its_receiver_the_initiator() {
    let mut r = Run::new(no_status());
    r.s2c(T0, 500, 101, SA, 0);
    r.c2s(T0 + MS, 101, 501, ACK, 0);
    let recs = r.finish();
    assert_eq!(&recs[0].saddr.0[..4], &C);
    assert_eq!(recs[0].state, FlowState::Con);
}

#[test]
fn midstream_tcp_uses_the_port_heuristic_and_is_marked_guessed() {
    let mut r = Run::new(no_status());
    r.s2c(T0, 9000, 2000, PA, 100);
    r.c2s(T0 + MS, 2000, 9100, ACK, 0);
    let recs = r.finish();
    assert_eq!(&recs[0].saddr.0[..4], &C, "port 80 side is the server");
    assert_ne!(recs[0].flags & flags::DIR_GUESSED, 0);
    assert_eq!(recs[0].dir_str(), "<?>");
    assert_eq!(recs[0].state_name(), "CON");
}

#[test]
fn retransmission_reordering_and_loss_are_counted() {
    let mut r = Run::new(no_status());
    r.c2s(T0, 0, 0, SYN, 0);
    r.s2c(T0 + MS, 0, 1, SA, 0);
    r.c2s(T0 + 2 * MS, 1, 1, ACK, 0);
    r.c2s(T0 + 3 * MS, 1, 1, PA, 100); // 1..101
    r.c2s(T0 + 4 * MS, 1, 1, PA, 100); // retransmission
    r.c2s(T0 + 5 * MS, 201, 1, PA, 100); // gap 101..201
    r.c2s(T0 + 6 * MS, 101, 1, PA, 100); // fills it: out of order
    r.c2s(T0 + 7 * MS, 401, 1, PA, 100); // gap 301..401, never filled
    r.c2s(T0 + 8 * MS, 500, 1, ACK, 0); // pure ACK: no effect
    r.c2s(T0 + 9 * MS, 0, 0, SYN, 0); // SYN retransmission
    r.s2c(T0 + 10 * MS, 1, 501, ACK, 0);
    let recs = r.finish();
    let s = &recs[0].src;
    assert_eq!(s.retrans, 2, "data and SYN retransmissions");
    assert_eq!(s.out_of_order, 1);
    assert_eq!((s.loss_pkts, s.loss_bytes), (2, 200));
}

#[test]
fn zero_window_and_window_scaling() {
    let mut r = Run::new(no_status());
    let ws = |shift| [3u8, 3, shift, 1];
    r.pkt(
        T0,
        &eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(C, SV, 6, &tcp_opts(40000, 80, 0, 0, SYN, 1000, &ws(2), &[])),
        ),
    );
    r.pkt(
        T0 + MS,
        &eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4(SV, C, 6, &tcp_opts(80, 40000, 0, 1, SA, 2000, &ws(3), &[])),
        ),
    );
    r.pkt(
        T0 + 2 * MS,
        &eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(C, SV, 6, &tcp_opts(40000, 80, 1, 1, ACK, 1000, &[], &[])),
        ),
    );
    r.pkt(
        T0 + 3 * MS,
        &eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4(SV, C, 6, &tcp_opts(80, 40000, 1, 1, ACK, 0, &[], &[])),
        ),
    );
    let recs = r.finish();
    assert_eq!(recs[0].src.window, 4000, "1000 << 2");
    assert_eq!(recs[0].dst.window, 0);
    assert_eq!(recs[0].dst.zero_win, 1);
    assert_ne!(recs[0].tcp_opts & tcp_opts::WSCALE, 0);
}

#[test]
fn status_records_are_aligned_deltas_that_sum_to_the_flow() {
    let mut r = Run::new(EngineConfig::default()); // 5 s status interval
    let start = T0 + 3 * SEC; // boundaries at T0+5, T0+10, T0+15
    let mut sent = 0;
    for i in 0..14u64 {
        let f = eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(C, SV, 17, &udp(5000, 6000, &[0; 10])),
        );
        r.pkt(start + i * SEC, &f);
        sent += 1;
    }
    let recs = r.finish();
    let status: Vec<_> = recs.iter().filter(|r| r.cause == Cause::Status).collect();
    // At T0+5 the flow is younger than one interval: no record. At T0+10 the packets of
    // T0+3..T0+9, at T0+15 those of T0+10..T0+14; the rest in the final record.
    assert_eq!(status.len(), 2, "{recs:#?}");
    assert_eq!(status[0].src.pkts, 7);
    assert_eq!(status[1].src.pkts, 5);
    assert!(status[1].stime_ns >= T0 + 10 * SEC && status[1].ltime_ns < T0 + 15 * SEC);
    assert_eq!(recs.iter().map(|r| r.src.pkts).sum::<u64>(), sent);
    assert_eq!(recs.last().unwrap().cause, Cause::Shutdown);
    let seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..recs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn idle_timeout_ends_a_flow_and_a_later_packet_starts_a_new_one() {
    let mut r = Run::new(no_status());
    let f = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(C, SV, 17, &udp(5000, 53, &[0; 10])),
    );
    r.pkt(T0, &f);
    r.pkt(T0 + SEC, &f);
    r.pkt(T0 + 45 * SEC, &f); // UDP idle timeout is 30 s
    let recs = r.finish();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].cause, Cause::Idle);
    assert_eq!(recs[0].src.pkts, 2);
    assert_eq!(recs[1].src.pkts, 1);
}

/// A live worker moves time on without packets: quiet flows still time out, on time, and the
/// record sequence continues across records the caller numbers itself.
#[test]
fn advance_runs_timers_without_packets() {
    let mut r = Run::new(EngineConfig {
        first_seq: 7 << 48,
        ..no_status()
    });
    let f = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(C, SV, 17, &udp(5000, 53, &[0; 10])),
    );
    r.pkt(T0, &f);
    let mut out = Vec::new();
    r.e.advance(T0 + 29 * SEC, &mut |x: &FlowRecord| out.push(x.clone()));
    assert!(out.is_empty(), "expired before its 30 s idle timeout");
    r.e.advance(T0 + 31 * SEC, &mut |x: &FlowRecord| out.push(x.clone()));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cause, Cause::Idle);
    assert_eq!(out[0].seq, 7 << 48);
    assert_eq!(r.e.take_seq(), (7 << 48) + 1);
    // Before any packet, advancing does nothing.
    let mut fresh = Engine::new(no_status());
    fresh.advance(T0, &mut |_: &FlowRecord| panic!("no flows yet"));
}

#[test]
fn a_new_syn_after_rst_starts_a_new_flow() {
    let mut r = Run::new(no_status());
    r.c2s(T0, 100, 0, SYN, 0);
    r.s2c(T0 + MS, 0, 101, tcpf::RST | ACK, 0);
    r.c2s(T0 + 2 * MS, 7000, 0, SYN, 0);
    assert_eq!(r.e.stats().port_reuse, 1);
    let recs = r.finish();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].state, FlowState::Rst);
    assert_eq!(recs[0].cause, Cause::Close);
    assert_eq!((recs[0].src.pkts, recs[0].dst.pkts), (1, 1));
    assert_eq!(recs[1].state, FlowState::Req);
    assert_eq!(recs[1].src.isn, 7000);
}

/// Two tap legs can deliver a whole reply direction before the request direction: the
/// client's SYN arriving after the server's FIN is its late first packet, not a reused port.
#[test]
fn late_syn_from_a_silent_side_is_not_port_reuse() {
    let mut r = Run::new(no_status());
    r.s2c(T0 + MS, 5000, 101, SYN | ACK, 0);
    r.s2c(T0 + 3 * MS, 5001, 111, ACK, 200);
    r.s2c(T0 + 4 * MS, 5201, 112, tcpf::FIN | ACK, 0);
    r.c2s(T0, 100, 0, SYN, 0);
    r.c2s(T0 + 2 * MS, 101, 5001, ACK, 10);
    r.c2s(T0 + 5 * MS, 111, 5202, tcpf::FIN | ACK, 0);
    assert_eq!(r.e.stats().port_reuse, 0);
    let recs = r.finish();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!((recs[0].src.pkts + recs[0].dst.pkts), 6);
}

#[test]
fn icmp_echo_exchange_is_one_flow_from_the_requester() {
    let mut r = Run::new(no_status());
    for i in 0..3u16 {
        let t = T0 + i as u64 * SEC;
        r.pkt(
            t,
            &eth(
                MAC_A,
                MAC_B,
                0x0800,
                &ipv4(C, SV, 1, &icmp(8, 0, 9, i, &[0; 56])),
            ),
        );
        r.pkt(
            t + MS,
            &eth(
                MAC_B,
                MAC_A,
                0x0800,
                &ipv4(SV, C, 1, &icmp(0, 0, 9, i, &[0; 56])),
            ),
        );
    }
    let recs = r.finish();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].src.pkts, recs[0].dst.pkts), (3, 3));
    assert_eq!(&recs[0].saddr.0[..4], &C);
    assert_eq!(recs[0].state_name(), "ECO");
    assert_eq!(recs[0].src.ipt_n, 2);
    assert!((recs[0].src.ipt_mean_ns - SEC as f64).abs() < 1.0);
}

#[test]
fn a_full_table_evicts_one_packet_flows_before_established_ones() {
    let cfg = EngineConfig {
        capacity: 16,
        ..no_status()
    };
    let mut r = Run::new(cfg);
    // One established session with many packets.
    r.c2s(T0, 0, 0, SYN, 0);
    r.s2c(T0 + MS, 0, 1, SA, 0);
    r.c2s(T0 + 2 * MS, 1, 1, ACK, 0);
    let mut total = 3;
    // A flood of single-packet flows from random sources, with the session still talking.
    let mut x = 12345u32;
    for i in 0..2000u64 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let src = x.to_be_bytes();
        let f = eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(src, SV, 6, &tcp((x >> 16) as u16, 80, x, 0, SYN, &[])),
        );
        r.pkt(T0 + 3 * MS + i * 1000, &f);
        total += 1;
        if i % 50 == 0 {
            r.c2s(T0 + 3 * MS + i * 1000 + 1, 1, 1, ACK, 0);
            total += 1;
        }
    }
    let evictions = r.e.stats().evictions;
    let recs = r.finish();
    assert!(evictions > 1900, "{evictions}");
    assert_eq!(
        recs.iter().map(|r| r.pkts()).sum::<u64>(),
        total,
        "evicted flows keep their packets"
    );
    let session: Vec<_> = recs
        .iter()
        .filter(|r| r.sport == 40000 && r.saddr.0[..4] == C)
        .collect();
    assert_eq!(
        session.len(),
        1,
        "the established session was never evicted"
    );
    assert_eq!(session[0].cause, Cause::Shutdown);
    assert_eq!(session[0].pkts(), 3 + 40);
    assert_eq!(
        recs.iter().filter(|r| r.cause == Cause::Evicted).count() as u64,
        evictions
    );
}

#[test]
fn payload_capture_keeps_the_first_bytes_each_way() {
    let cfg = EngineConfig {
        payload_bytes: 4,
        capacity: 8,
        ..no_status()
    };
    let mut r = Run::new(cfg);
    let q = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(C, SV, 17, &udp(5000, 53, b"abcdefgh")),
    );
    let a = eth(
        MAC_B,
        MAC_A,
        0x0800,
        &ipv4(SV, C, 17, &udp(53, 5000, b"xy")),
    );
    r.pkt(T0, &q);
    r.pkt(T0 + 1, &a);
    r.pkt(T0 + 2, &a);
    let recs = r.finish();
    assert_eq!(recs[0].src_payload, b"abcd");
    assert_eq!(recs[0].dst_payload, b"xyxy");
    assert_ne!(recs[0].flags & flags::PAYLOAD, 0);
    // Off by default.
    let mut r = Run::new(no_status());
    r.pkt(T0, &q);
    let recs = r.finish();
    assert!(recs[0].src_payload.is_empty());
    assert_eq!(recs[0].flags & flags::PAYLOAD, 0);
}

#[test]
fn a_long_time_gap_expires_everything_in_one_pass() {
    let mut r = Run::new(no_status());
    for i in 0..100u16 {
        let f = eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(C, SV, 17, &udp(1000 + i, 53, &[])),
        );
        r.pkt(T0, &f);
    }
    // A day later.
    r.pkt(T0 + 86_400 * SEC, &eth(MAC_A, MAC_B, 0x0806, &[0; 28]));
    assert_eq!(r.recs.len(), 100);
    assert!(r.recs.iter().all(|x| x.cause == Cause::Idle));
}

#[test]
fn batches_and_single_packets_give_the_same_records() {
    use tapflow_capture::{Batch, PacketDesc};
    let mut frames = vec![];
    for i in 0..600u32 {
        let t = T0 + i as u64 * 20 * MS; // 12 s: crosses two status boundaries
        let sp = 1000 + (i % 37) as u16;
        frames.push((
            t,
            eth_tcp(C, SV, sp, 80, i, 0, if i < 37 { SYN } else { ACK }, &[0; 3]),
        ));
    }
    let mut data = vec![];
    let mut descs = vec![];
    for (t, f) in &frames {
        descs.push(PacketDesc {
            offset: data.len(),
            caplen: f.len() as u32,
            wire_len: f.len() as u32,
            ts_ns: *t,
            link: 1,
            iface: 0,
        });
        data.extend_from_slice(f);
    }
    let mut batched = vec![];
    let mut e = Engine::new(EngineConfig::default());
    for chunk in descs.chunks(100) {
        let b = Batch {
            data: &data,
            descs: chunk,
        };
        e.process_batch(&b, &mut |r: &FlowRecord| batched.push(r.clone()));
    }
    e.flush(&mut |r: &FlowRecord| batched.push(r.clone()));
    let mut single = Run::new(EngineConfig::default());
    for (t, f) in &frames {
        single.pkt(*t, f);
    }
    let single = single.finish();
    assert_eq!(batched, single);
    assert!(batched.len() > 37);
}
