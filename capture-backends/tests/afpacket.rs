//! AF_PACKET TPACKET_V3 backend on real kernel sockets: veth pairs between two network
//! namespaces (see `tapflow_capture::netns`). Needs root; skips loudly otherwise.
//!
//! Every test counts only frames of its own pattern (a marker in the UDP payload) and sends far
//! fewer frames than a ring holds, so the counts are exact on a busy machine. Deadlines only
//! stop a test that would otherwise hang; nothing asserts on time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tapflow_capture::afpacket::{AfPacket, AfPacketConfig, FanoutHash};
use tapflow_capture::live::{realtime_ns, wait_readable};
use tapflow_capture::netns::{self, skip_unless_available, Lab, SendOptions};
use tapflow_capture::{Capture, LinkType, LiveCapture};

const MARK: &[u8; 4] = b"TFAP";
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// One direction of a UDP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flow {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
}

impl Flow {
    fn nth(i: usize) -> Flow {
        Flow {
            src: [10, 1, (i >> 8) as u8, i as u8],
            dst: [10, 2, 0, (i % 7) as u8 + 1],
            sport: 20000 + i as u16,
            dport: 53 + (i % 3) as u16 * 1000,
        }
    }
    fn reversed(self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
    /// Direction-independent key.
    fn key(self) -> Flow {
        if (self.src, self.sport) <= (self.dst, self.dport) {
            self
        } else {
            self.reversed()
        }
    }
}

/// An Ethernet/IPv4/UDP frame of `len` bytes (>= 60) whose payload starts with MARK, `test`
/// and `seq`, behind the given VLAN tags (TPID, TCI), outermost first.
fn frame(f: Flow, len: usize, test: u8, seq: u32, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let (dmac, smac) = if f.src[1] == 1 {
        (DST_MAC, SRC_MAC)
    } else {
        (SRC_MAC, DST_MAC)
    };
    v.extend_from_slice(&dmac);
    v.extend_from_slice(&smac);
    for &(tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = len - v.len();
    let ip_start = v.len();
    v.extend_from_slice(&[0x45, 0]);
    v.extend_from_slice(&(ip_len as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    v.extend_from_slice(&f.src);
    v.extend_from_slice(&f.dst);
    let sum = v[ip_start..ip_start + 20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    v[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    v.extend_from_slice(&f.sport.to_be_bytes());
    v.extend_from_slice(&f.dport.to_be_bytes());
    v.extend_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(MARK);
    v.push(test);
    v.extend_from_slice(&seq.to_be_bytes());
    v.resize(len, 0xa5);
    v
}

/// What a test keeps of a captured frame of its own.
#[derive(Clone, Debug)]
struct Got {
    seq: u32,
    flow: Flow,
    /// VLAN tags found in the captured bytes.
    tags: Tags,
    data: Vec<u8>,
    wire_len: u32,
    ts_ns: u64,
    link: LinkType,
    iface: u16,
}

/// VLAN tags (TPID, TCI), outermost first.
type Tags = Vec<(u16, u16)>;

/// Sequence number, flow and VLAN tags of a frame of test `test`: IPv4 (a fragment after the
/// first has its marker right after the IP header and ports 0) or IPv6 (the flow holds the last
/// 4 bytes of each address).
fn parse(pkt: &[u8], test: u8) -> Option<(u32, Flow, Tags)> {
    let be16 = |o: usize| Some(u16::from_be_bytes([*pkt.get(o)?, *pkt.get(o + 1)?]));
    let mut o = 12;
    let mut tags = Vec::new();
    while matches!(be16(o)?, 0x8100 | 0x88a8) {
        tags.push((be16(o)?, be16(o + 2)?));
        o += 4;
    }
    let ip = o + 2;
    let (src, dst, l4) = match be16(o)? {
        0x0800 if be16(ip + 6)? & 0x1fff != 0 => (ip + 12, ip + 16, None),
        0x0800 => (ip + 12, ip + 16, Some(ip + 20)),
        0x86dd => (ip + 20, ip + 36, Some(ip + 40)),
        _ => return None,
    };
    let marker = l4.map_or(ip + 20, |u| u + 8);
    let pl = pkt.get(marker..marker + 9)?;
    if &pl[..4] != MARK || pl[4] != test {
        return None;
    }
    let flow = Flow {
        src: pkt.get(src..src + 4)?.try_into().ok()?,
        dst: pkt.get(dst..dst + 4)?.try_into().ok()?,
        sport: l4.map_or(Some(0), be16)?,
        dport: l4.map_or(Some(0), |u| be16(u + 2))?,
    };
    Some((u32::from_be_bytes(pl[5..9].try_into().ok()?), flow, tags))
}

fn eth_header(f: Flow, tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(1600);
    let (dmac, smac) = if f.src[1] == 1 {
        (DST_MAC, SRC_MAC)
    } else {
        (SRC_MAC, DST_MAC)
    };
    v.extend_from_slice(&dmac);
    v.extend_from_slice(&smac);
    for &(tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v
}

fn marker(test: u8, seq: u32) -> Vec<u8> {
    let mut m = MARK.to_vec();
    m.push(test);
    m.extend_from_slice(&seq.to_be_bytes());
    m
}

/// A UDP datagram of flow `f` with `data` bytes of payload, as three IPv4 fragments (the
/// first with the UDP header). Each fragment's payload starts with a marker (`seq`, +1, +2).
fn fragments(f: Flow, test: u8, seq: u32, id: u16, data: usize) -> Vec<Vec<u8>> {
    // Fragment payload sizes: multiples of 8 but the last.
    let first = 1008usize;
    let parts = [first, 1008, 8 + data - 2 * first];
    let mut out = Vec::new();
    let mut offset = 0usize;
    for (k, &len) in parts.iter().enumerate() {
        let mut v = eth_header(f, &[], 0x0800);
        let ip = v.len();
        let mf = if k + 1 < parts.len() { 0x2000 } else { 0 };
        v.extend_from_slice(&[0x45, 0]);
        v.extend_from_slice(&((20 + len) as u16).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&((mf | (offset / 8)) as u16).to_be_bytes());
        v.extend_from_slice(&[64, 17, 0, 0]);
        v.extend_from_slice(&f.src);
        v.extend_from_slice(&f.dst);
        let sum = v[ip..ip + 20]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        v[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
        let start = v.len();
        if k == 0 {
            v.extend_from_slice(&f.sport.to_be_bytes());
            v.extend_from_slice(&f.dport.to_be_bytes());
            v.extend_from_slice(&((8 + data) as u16).to_be_bytes());
            v.extend_from_slice(&[0, 0]);
        }
        v.extend_from_slice(&marker(test, seq + k as u32));
        v.resize(start + len, 0x5a);
        out.push(v);
        offset += len;
    }
    out
}

/// An IPv6/UDP frame of `len` bytes between 2001:db8::<f.src> and 2001:db8::<f.dst>.
fn frame6(f: Flow, len: usize, test: u8, seq: u32) -> Vec<u8> {
    let mut v = eth_header(f, &[], 0x86dd);
    let payload = len - v.len() - 40;
    v.extend_from_slice(&[0x60, 0, 0, 0]);
    v.extend_from_slice(&(payload as u16).to_be_bytes());
    v.extend_from_slice(&[17, 64]);
    for a in [f.src, f.dst] {
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&a);
    }
    v.extend_from_slice(&f.sport.to_be_bytes());
    v.extend_from_slice(&f.dport.to_be_bytes());
    v.extend_from_slice(&(payload as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&marker(test, seq));
    v.resize(len, 0xa5);
    v
}

/// Reads all sockets until they hold `expect` frames of test `test` in total and every socket's
/// kernel counters are accounted for (seen == delivered + ring_drops), or 10 s pass.
fn drain(caps: &mut [AfPacket], test: u8, expect: usize) -> Vec<Vec<Got>> {
    let mut got: Vec<Vec<Got>> = vec![Vec::new(); caps.len()];
    let deadline = Instant::now() + Duration::from_secs(10);
    let fds: Vec<_> = caps.iter().map(|c| c.poll_fd()).collect();
    loop {
        for (c, g) in caps.iter_mut().zip(got.iter_mut()) {
            // Read until empty so the counters below can be exact.
            loop {
                let b = c
                    .next_batch()
                    .expect("live next_batch never fails")
                    .unwrap();
                if b.is_empty() {
                    break;
                }
                for p in b.iter() {
                    if let Some((seq, flow, tags)) = parse(p.data, test) {
                        g.push(Got {
                            seq,
                            flow,
                            tags,
                            data: p.data.to_vec(),
                            wire_len: p.wire_len,
                            ts_ns: p.ts_ns,
                            link: p.link,
                            iface: p.iface,
                        });
                    }
                }
            }
        }
        let total: usize = got.iter().map(Vec::len).sum();
        let settled = caps.iter_mut().all(|c| c.live_stats().unaccounted() == 0);
        if (total >= expect && settled) || Instant::now() > deadline {
            break;
        }
        wait_readable(&fds, 20).unwrap();
    }
    for c in caps.iter_mut() {
        let st = c.live_stats();
        assert_eq!(
            st.seen,
            st.delivered + st.ring_drops,
            "{}: {st:?}",
            c.source_name()
        );
        assert_eq!(st.ring_drops, 0, "{}: {st:?}", c.source_name());
        assert_eq!(st.delivered, c.stats().packets);
        let w = c.take_warnings();
        assert!(w.is_empty(), "{w:?}");
    }
    got
}

fn open_in(lab: &Lab, cfgs: Vec<AfPacketConfig>) -> Vec<AfPacket> {
    lab.in_rx(move || {
        cfgs.iter()
            .map(|c| AfPacket::open(c).unwrap_or_else(|e| panic!("open {c:?}: {e}")))
            .collect()
    })
    .unwrap()
}

fn cfg(iface: &str) -> AfPacketConfig {
    AfPacketConfig {
        iface: iface.to_string(),
        // Small rings: tests open several sockets at once.
        block_size: 256 << 10,
        block_count: 16,
        ..AfPacketConfig::default()
    }
}

#[test]
fn one_socket_gets_every_frame_with_snaplen() {
    if skip_unless_available("one_socket_gets_every_frame_with_snaplen") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let leg = &lab.legs[0];
    // Default ring and snap length (128); a second socket takes whole packets.
    let c = AfPacketConfig {
        iface: leg.rx_if.clone(),
        iface_tag: 7,
        ..AfPacketConfig::default()
    };
    let full = AfPacketConfig {
        snaplen: 0,
        ..cfg(&leg.rx_if)
    };
    let mut caps = open_in(&lab, vec![c, full]);
    assert_eq!(caps[0].link_type(), LinkType::ETHERNET);

    const N: usize = 2000;
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| frame(Flow::nth(i % 50), 60 + (i * 37) % 1455, 1, i as u32, &[]))
        .collect();
    let t0 = realtime_ns();
    assert_eq!(
        lab.send(0, &frames, SendOptions::default()).unwrap(),
        N as u64
    );
    let got = drain(&mut caps, 1, 2 * N);
    let t1 = realtime_ns();

    for (s, g) in got.iter().enumerate() {
        assert_eq!(g.len(), N, "socket {s}");
        let seqs: BTreeSet<u32> = g.iter().map(|g| g.seq).collect();
        assert_eq!(seqs.len(), N, "socket {s}: duplicates");
        for x in g {
            let sent = &frames[x.seq as usize];
            assert_eq!(x.wire_len as usize, sent.len());
            let want = if s == 0 {
                sent.len().min(128)
            } else {
                sent.len()
            };
            assert_eq!(x.data.len(), want, "socket {s} seq {}", x.seq);
            assert_eq!(&x.data[..], &sent[..want]);
            assert_eq!(x.link, LinkType::ETHERNET);
            assert_eq!(x.iface, if s == 0 { 7 } else { 0 });
            // Kernel receive time: between sending and draining (1 s of slack for clock
            // granularity; no rate or latency is asserted).
            assert!(x.ts_ns + 1_000_000_000 > t0 && x.ts_ns < t1 + 1_000_000_000);
        }
    }
    let st = caps[0].stats();
    assert_eq!(st.packets, N as u64);
    assert_eq!(
        st.snaplen_truncated,
        frames.iter().filter(|f| f.len() > 128).count() as u64
    );
    assert_eq!(
        st.wire_bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(caps[1].stats().snaplen_truncated, 0);

    // Nothing more arrives: an empty batch, not the end.
    let b = caps[0]
        .next_batch()
        .unwrap()
        .expect("live sources never end");
    assert!(b.is_empty());
}

#[test]
fn ring_overflow_is_counted() {
    if skip_unless_available("ring_overflow_is_counted") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    // Two one-page blocks hold a handful of 1000-byte frames; nothing reads while 300 arrive.
    let c = AfPacketConfig {
        snaplen: 0,
        block_size: 4096,
        block_count: 2,
        ..cfg(&lab.legs[0].rx_if)
    };
    let mut caps = open_in(&lab, vec![c]);
    let frames: Vec<Vec<u8>> = (0..300)
        .map(|i| frame(Flow::nth(i % 5), 1000, 6, i as u32, &[]))
        .collect();
    lab.send(0, &frames, SendOptions::default()).unwrap();
    // veth hands frames to the receiving side asynchronously: wait until all were seen. The
    // kernel resets its counters on every read, so this also checks that the sums are kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = caps[0].live_stats();
    while first.seen < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        first = caps[0].live_stats();
    }
    assert_eq!(first.seen, 300, "{first:?}");
    assert_eq!(caps[0].live_stats(), first);
    assert!(first.ring_drops > 0, "{first:?}");
    let mut delivered = 0;
    loop {
        let b = caps[0].next_batch().unwrap().unwrap();
        delivered += b.iter().filter(|p| parse(p.data, 6).is_some()).count() as u64;
        let st = caps[0].live_stats();
        if st.unaccounted() == 0 || Instant::now() > deadline {
            break;
        }
        wait_readable(&[caps[0].poll_fd()], 20).unwrap();
    }
    let st = caps[0].live_stats();
    assert_eq!(st.seen, 300);
    assert_eq!(st.delivered, delivered);
    assert_eq!(st.delivered + st.ring_drops, st.seen, "{st:?}");
    assert_eq!(caps[0].stats().drops, st.ring_drops);
}

#[test]
fn bad_config_is_refused_with_the_interface_named() {
    if skip_unless_available("bad_config_is_refused_with_the_interface_named") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let rx = lab.legs[0].rx_if.clone();
    let errs = lab
        .in_rx(move || {
            let bad = [
                AfPacketConfig {
                    block_size: 3 << 20,
                    ..cfg(&rx)
                },
                AfPacketConfig {
                    block_count: 1,
                    ..cfg(&rx)
                },
                cfg("tfnosuchif0"),
                // lo exists, but group 9 is already taken by a socket on another interface.
                AfPacketConfig {
                    fanout: Some(9),
                    ..cfg("lo")
                },
            ];
            let _keep = AfPacket::open(&AfPacketConfig {
                fanout: Some(9),
                ..cfg(&rx)
            })
            .unwrap();
            bad.iter()
                .map(|c| AfPacket::open(c).unwrap_err().to_string())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert!(errs[0].contains("power of two"), "{}", errs[0]);
    assert!(errs[1].contains("at least 2"), "{}", errs[1]);
    assert!(errs[2].contains("tfnosuchif0"), "{}", errs[2]);
    assert!(
        errs[3].contains("lo") && errs[3].contains("PACKET_FANOUT"),
        "{}",
        errs[3]
    );
}

/// Keeps only the capabilities in `keep` (bit numbers) on the calling thread (Linux
/// capabilities are per thread). Returns false if capset failed.
fn keep_only_caps(keep: &[u32]) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    for &c in keep {
        let d = &mut data[(c / 32) as usize];
        d.effective |= 1 << (c % 32);
        d.permitted |= 1 << (c % 32);
    }
    // SAFETY: header and a two-element data array of the v3 layout, as capset expects.
    unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_mut_ptr()) == 0 }
}

#[test]
fn open_needs_only_cap_net_raw() {
    if skip_unless_available("open_needs_only_cap_net_raw") {
        return;
    }
    const CAP_NET_RAW: u32 = 13;
    let lab = Lab::new(1, 1).unwrap();
    let c = AfPacketConfig {
        fanout: Some(5),
        ..cfg(&lab.legs[0].rx_if)
    };
    // The deploy unit relies on this: AF_PACKET set-up needs CAP_NET_RAW and nothing else.
    let with_raw = {
        let c = c.clone();
        lab.in_rx(move || {
            assert!(keep_only_caps(&[CAP_NET_RAW]));
            AfPacket::open(&c).map(|_| ())
        })
        .unwrap()
    };
    assert!(with_raw.is_ok(), "{with_raw:?}");
    let without = lab
        .in_rx(move || {
            assert!(keep_only_caps(&[]));
            AfPacket::open(&c).map(|_| ())
        })
        .unwrap();
    let e = without.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("socket"), "{e}");
}

#[test]
fn outgoing_frames_are_ignored() {
    if skip_unless_available("outgoing_frames_are_ignored") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let leg = lab.legs[0].clone();
    let mut caps = open_in(
        &lab,
        vec![
            cfg(&leg.rx_if),
            AfPacketConfig {
                ignore_outgoing: false,
                ..cfg(&leg.rx_if)
            },
            // A fanout group has its own hook: the flag must reach it too.
            AfPacketConfig {
                fanout: Some(3),
                ..cfg(&leg.rx_if)
            },
        ],
    );
    let out: Vec<Vec<u8>> = (0..100)
        .map(|i| frame(Flow::nth(i), 100, 2, 1000 + i as u32, &[]))
        .collect();
    let inc: Vec<Vec<u8>> = (0..100)
        .map(|i| frame(Flow::nth(i), 100, 2, i as u32, &[]))
        .collect();
    // Outgoing first: the kernel puts them in the rings during the send, so once the incoming
    // ones are drained, any outgoing frame a socket took would have been seen.
    let rx_if = leg.rx_if.clone();
    let sent = lab
        .in_rx(move || netns::send_frames(&rx_if, &out, SendOptions::default()))
        .unwrap()
        .unwrap();
    assert_eq!(sent, 100);
    lab.send(0, &inc, SendOptions::default()).unwrap();
    let got = drain(&mut caps, 2, 300);
    let count =
        |g: &Vec<Got>, outgoing: bool| g.iter().filter(|x| (x.seq >= 1000) == outgoing).count();
    assert_eq!((count(&got[0], false), count(&got[0], true)), (100, 0));
    assert_eq!((count(&got[1], false), count(&got[1], true)), (100, 100));
    assert_eq!((count(&got[2], false), count(&got[2], true)), (100, 0));
}

/// Worker index of every flow key; panics if a flow's frames reached two workers.
fn flow_owner(
    got: &[Vec<Got>],
    worker_of_socket: impl Fn(usize) -> usize,
) -> BTreeMap<Flow, usize> {
    let mut owner = BTreeMap::new();
    for (s, g) in got.iter().enumerate() {
        let w = worker_of_socket(s);
        for x in g {
            let prev = *owner.entry(x.flow.key()).or_insert(w);
            assert_eq!(prev, w, "flow {:?} reached workers {prev} and {w}", x.flow);
        }
    }
    owner
}

#[test]
fn fanout_splits_flows_disjointly() {
    if skip_unless_available("fanout_splits_flows_disjointly") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let c = AfPacketConfig {
        fanout: Some(1),
        ..cfg(&lab.legs[0].rx_if)
    };
    let mut caps = open_in(&lab, vec![c.clone(), c]);
    const FLOWS: usize = 64;
    const PER: usize = 30;
    let frames: Vec<Vec<u8>> = (0..FLOWS * PER)
        .map(|i| frame(Flow::nth(i % FLOWS), 80, 3, i as u32, &[]))
        .collect();
    lab.send(0, &frames, SendOptions::default()).unwrap();
    let got = drain(&mut caps, 3, FLOWS * PER);
    let all: BTreeSet<u32> = got.iter().flatten().map(|x| x.seq).collect();
    assert_eq!(all.len(), FLOWS * PER);
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), FLOWS * PER);
    let owner = flow_owner(&got, |s| s);
    assert_eq!(owner.len(), FLOWS);
    // 64 flows on 2 sockets by a hash: both get some (all on one: p = 2^-63).
    let on0 = owner.values().filter(|&&w| w == 0).count();
    assert!(on0 > 0 && on0 < FLOWS, "{on0} of {FLOWS} flows on socket 0");
}

#[test]
fn two_legs_fanout_is_symmetric() {
    if skip_unless_available("two_legs_fanout_is_symmetric") {
        return;
    }
    let lab = Lab::new(2, 1).unwrap();
    let (g0, g1) = (10, 11);
    // Joined worker by worker in the same order on both legs, so group index = worker.
    let mut cfgs = Vec::new();
    for _worker in 0..2 {
        cfgs.push(AfPacketConfig {
            fanout: Some(g0),
            iface_tag: 0,
            ..cfg(&lab.legs[0].rx_if)
        });
        cfgs.push(AfPacketConfig {
            fanout: Some(g1),
            iface_tag: 1,
            ..cfg(&lab.legs[1].rx_if)
        });
    }
    let mut caps = open_in(&lab, cfgs);
    const FLOWS: usize = 64;
    const PER: usize = 10;
    let mut ab = Vec::new();
    let mut ba = Vec::new();
    for i in 0..FLOWS * PER {
        let f = Flow::nth(i % FLOWS);
        ab.push(frame(f, 90, 4, i as u32, &[]));
        ba.push(frame(f.reversed(), 90, 4, (FLOWS * PER + i) as u32, &[]));
    }
    lab.send(0, &ab, SendOptions::default()).unwrap();
    lab.send(1, &ba, SendOptions::default()).unwrap();
    let got = drain(&mut caps, 4, 2 * FLOWS * PER);
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 2 * FLOWS * PER);
    for (s, g) in got.iter().enumerate() {
        // Socket 2w is on leg 0 (A->B only), 2w+1 on leg 1 (B->A only).
        for x in g {
            assert_eq!(x.iface as usize, s % 2);
            assert_eq!(x.flow.src[1] == 1, s % 2 == 0, "{:?} on socket {s}", x.flow);
        }
    }
    let owner = flow_owner(&got, |s| s / 2);
    assert_eq!(owner.len(), FLOWS);
    let on0 = owner.values().filter(|&&w| w == 0).count();
    assert!(on0 > 0 && on0 < FLOWS, "{on0} of {FLOWS} flows on worker 0");
    // Both directions of every flow reached its worker, all of them.
    for w in 0..2 {
        let a: usize = got[2 * w].len();
        let b: usize = got[2 * w + 1].len();
        assert_eq!(a, b, "worker {w}: {a} A->B vs {b} B->A frames");
    }
}

/// Opens 2 workers x 2 legs, joined worker by worker (group index = worker).
fn two_workers_two_legs(lab: &Lab, hash: FanoutHash) -> Vec<AfPacket> {
    let mut cfgs = Vec::new();
    for _worker in 0..2 {
        for leg in 0..2 {
            cfgs.push(AfPacketConfig {
                fanout: Some(20 + leg as u16),
                fanout_hash: hash,
                iface_tag: leg as u16,
                ..cfg(&lab.legs[leg].rx_if)
            });
        }
    }
    open_in(lab, cfgs)
}

#[test]
fn host_pair_fanout_keeps_fragments_and_both_directions_together() {
    if skip_unless_available("host_pair_fanout_keeps_fragments_and_both_directions_together") {
        return;
    }
    let lab = Lab::new(2, 1).unwrap();
    let mut caps = two_workers_two_legs(&lab, FanoutHash::HostPair);
    // Per host pair ("flow" below): plain A->B frames, a fragmented A->B datagram and a QinQ
    // frame (one tag left in the frame after the kernel takes the outer one) on leg 0; B->A
    // frames on leg 1. IPv6 pairs the same way. `pair_of[seq]` says whose frame it is: 2 * flow
    // for IPv4, 2 * flow + 1 for IPv6.
    const FLOWS: usize = 32;
    let (mut leg0, mut leg1, mut pair_of) = (Vec::new(), Vec::new(), Vec::new());
    let qinq = [(0x88a8, 0x0064), (0x8100, 0x00c8)];
    for i in 0..FLOWS {
        let f = Flow::nth(i);
        for _ in 0..5 {
            let seq = pair_of.len() as u32;
            leg0.push(frame(f, 100, 7, seq, &[]));
            leg1.push(frame(f.reversed(), 100, 7, seq + 1, &[]));
            leg0.push(frame6(f, 120, 7, seq + 2));
            leg1.push(frame6(f.reversed(), 120, 7, seq + 3));
            leg0.push(frame(f, 110, 7, seq + 4, &qinq));
            pair_of.extend([2 * i, 2 * i, 2 * i + 1, 2 * i + 1, 2 * i]);
        }
        let seq = pair_of.len() as u32;
        leg0.extend(fragments(f, 7, seq, 1000 + i as u16, 2400));
        pair_of.extend([2 * i; 3]);
    }
    lab.send(0, &leg0, SendOptions::default()).unwrap();
    lab.send(1, &leg1, SendOptions::default()).unwrap();
    let got = drain(&mut caps, 7, pair_of.len());
    let seqs: BTreeSet<u32> = got.iter().flatten().map(|x| x.seq).collect();
    assert_eq!(
        seqs.len(),
        pair_of.len(),
        "every frame, fragments one by one"
    );
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), pair_of.len());
    let mut owner = BTreeMap::new();
    for (s, g) in got.iter().enumerate() {
        for x in g {
            let (pair, w) = (pair_of[x.seq as usize], s / 2);
            let prev = *owner.entry(pair).or_insert(w);
            assert_eq!(prev, w, "host pair {pair} on workers {prev} and {w}");
        }
    }
    assert_eq!(owner.len(), 2 * FLOWS);
    // Both address families are spread (a program failing on one would return 0 for all).
    for family in 0..2 {
        let on0 = (0..FLOWS).filter(|i| owner[&(2 * i + family)] == 0).count();
        assert!(
            on0 > 0 && on0 < FLOWS,
            "{on0} of {FLOWS} pairs of family {family} on worker 0"
        );
    }
}

#[test]
fn flow_fanout_reassembles_ipv4_fragments() {
    if skip_unless_available("flow_fanout_reassembles_ipv4_fragments") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let rx = &lab.legs[0].rx_if;
    let group = AfPacketConfig {
        fanout: Some(30),
        snaplen: 0,
        ..cfg(rx)
    };
    let plain = AfPacketConfig {
        snaplen: 0,
        ..cfg(rx)
    };
    let mut caps = open_in(&lab, vec![group.clone(), group, plain]);
    let mut frames = Vec::new();
    for i in 0..16u32 {
        let f = Flow::nth(i as usize);
        frames.push(frame(f, 100, 8, 1000 + i, &[]));
        frames.extend(fragments(f, 8, 10 * i, 2000 + i as u16, 2400));
    }
    lab.send(0, &frames, SendOptions::default()).unwrap();
    // The group gets 16 frames + 16 reassembled datagrams; the plain socket 16 + 48 fragments.
    let got = drain(&mut caps, 8, 16 + 16 + 16 + 48);
    let group: Vec<&Got> = got[0].iter().chain(&got[1]).collect();
    assert_eq!(group.len(), 32);
    for x in &group {
        if x.seq < 1000 {
            // One packet for the datagram: Ethernet + IPv4 + UDP + 2400 bytes.
            assert_eq!(x.wire_len, 14 + 20 + 8 + 2400);
            assert_eq!(x.seq % 10, 0);
        }
    }
    // The datagram reached the socket of its flow's unfragmented frames.
    for g in &got[..2] {
        for x in g.iter().filter(|x| x.seq < 1000) {
            assert!(
                g.iter().any(|y| y.seq == 1000 + x.seq / 10),
                "seq {}",
                x.seq
            );
        }
    }
    assert_eq!(got[2].len(), 16 + 48);
}

#[test]
fn vlan_tags_are_put_back() {
    if skip_unless_available("vlan_tags_are_put_back") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let rx_if = lab.legs[0].rx_if.clone();
    // For the log: the tag is taken off by the kernel's receive path whatever this says.
    if let Ok(o) = Command::new("ip")
        .args(["netns", "exec", &lab.rx_ns, "ethtool", "-k", &rx_if])
        .output()
    {
        let s = String::from_utf8_lossy(&o.stdout);
        for l in s.lines().filter(|l| l.contains("vlan-offload")) {
            eprintln!("{rx_if}: {}", l.trim());
        }
    }
    let mut caps = open_in(
        &lab,
        vec![
            AfPacketConfig {
                snaplen: 0,
                ..cfg(&rx_if)
            },
            cfg(&rx_if),
        ],
    );
    let q = [(0x8100, 0x6064)]; // PCP 3, VID 100
    let qinq = [(0x88a8, 0x00c8), (0x8100, 0x0064)]; // S-VID 200, C-VID 100
    let prio = [(0x8100, 0xa000)]; // priority tag: VID 0, PCP 5
    let mut frames = Vec::new();
    for i in 0..40u32 {
        let f = Flow::nth(i as usize);
        let len = 64 + i as usize * 20;
        frames.push(frame(f, len, 5, 4 * i, &q));
        frames.push(frame(f, len, 5, 4 * i + 1, &qinq));
        frames.push(frame(f, len, 5, 4 * i + 2, &prio));
        frames.push(frame(f, len, 5, 4 * i + 3, &[]));
    }
    lab.send(0, &frames, SendOptions::default()).unwrap();
    let got = drain(&mut caps, 5, 2 * frames.len());
    for (s, g) in got.iter().enumerate() {
        assert_eq!(g.len(), frames.len(), "socket {s}");
        for x in g {
            let sent = &frames[x.seq as usize];
            let want_tags: &[(u16, u16)] = match x.seq % 4 {
                0 => &q,
                1 => &qinq,
                2 => &prio,
                _ => &[],
            };
            assert_eq!(x.tags, want_tags, "socket {s} seq {}", x.seq);
            assert_eq!(x.wire_len as usize, sent.len(), "seq {}", x.seq);
            // snaplen counts the bytes after the (stripped) outer tag: 128 + 4 when tagged.
            let want = if s == 0 {
                sent.len()
            } else {
                sent.len()
                    .min(128 + if want_tags.is_empty() { 0 } else { 4 })
            };
            assert_eq!(x.data, sent[..want], "socket {s} seq {}", x.seq);
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/tune-nic.sh")
}

#[test]
fn tune_nic_script_is_shellcheck_clean() {
    match Command::new("shellcheck").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!(
                "*** SKIPPED tune_nic_script_is_shellcheck_clean: shellcheck not installed ***"
            );
            return;
        }
    }
    let o = Command::new("shellcheck").arg(script()).output().unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// What can be observed of an interface's configuration from inside its namespace.
fn iface_state(ns: &str, ifname: &str) -> String {
    let mut s = String::new();
    for args in [
        vec!["ip", "-d", "addr", "show", "dev", ifname],
        vec!["ethtool", "-k", ifname],
        vec!["ethtool", "-l", ifname],
        vec!["ethtool", "-g", ifname],
        vec!["sysctl", "-n", "vm.nr_hugepages"],
    ] {
        let o = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(&args)
            .output()
            .unwrap();
        s += &String::from_utf8_lossy(&o.stdout);
    }
    s
}

fn run_script(lab: &Lab, args: &[&str]) -> (bool, String) {
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.rx_ns, "bash"])
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

#[test]
fn tune_nic_dry_run_changes_nothing() {
    if skip_unless_available("tune_nic_dry_run_changes_nothing") {
        return;
    }
    if Command::new("ethtool").arg("--version").output().is_err() {
        eprintln!("*** SKIPPED tune_nic_dry_run_changes_nothing: ethtool not installed ***");
        return;
    }
    let lab = Lab::new(1, 2).unwrap();
    let ifname = lab.legs[0].rx_if.clone();
    let before = iface_state(&lab.rx_ns, &ifname);
    let (ok, out) = run_script(
        &lab,
        &[
            &ifname,
            "--queues",
            "2",
            "--cores",
            "0,1",
            "--ring",
            "1024",
            "--hugepages",
            "64",
            "--dry-run",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(iface_state(&lab.rx_ns, &ifname), before, "{out}");
    for want in [
        "ethtool -L",
        "ethtool -G",
        "ethtool -K",
        "gro off",
        "lro off",
        "ethtool -X",
        "ethtool -N",
        "ethtool -A",
        "promisc on",
        "nr_hugepages",
        "rps_cpus",
        "ip link set dev",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("[dry-run]") && l.contains(want)),
            "no dry-run `{want}` in:\n{out}"
        );
    }
    assert!(
        !out.contains("rx-vlan-offload off") && !out.contains("rxvlan off"),
        "{out}"
    );
}

#[test]
fn tune_nic_reports_and_continues_on_veth() {
    if skip_unless_available("tune_nic_reports_and_continues_on_veth") {
        return;
    }
    if Command::new("ethtool").arg("--version").output().is_err() {
        eprintln!("*** SKIPPED tune_nic_reports_and_continues_on_veth: ethtool not installed ***");
        return;
    }
    let lab = Lab::new(1, 2).unwrap();
    let ifname = lab.legs[0].rx_if.clone();
    // No --hugepages and veth has no IRQs: nothing outside the lab's namespace changes.
    let (ok, out) = run_script(&lab, &[&ifname, "--queues", "2"]);
    assert!(ok, "{out}");
    let st = iface_state(&lab.rx_ns, &ifname);
    assert!(st.contains("PROMISC"), "{st}\n{out}");
    assert!(st.contains("generic-receive-offload: off"), "{st}\n{out}");
    assert!(out.contains("summary:"), "{out}");

    let (ok, out) = run_script(&lab, &["tfnosuchif0", "--dry-run"]);
    assert!(!ok && out.contains("tfnosuchif0"), "{out}");
    let (ok, out) = run_script(&lab, &[&ifname, "--bogus"]);
    assert!(!ok && out.contains("--bogus"), "{out}");
}
