//! Tests of the synthetic capture generator: determinism, checksums (verified by an
//! independent decoder written here), truth consistency, byte-exact file layouts, the committed
//! fixtures, and (when installed) tshark's opinion of the demo capture.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use tapflow_bench::gen::link::{self, RelinkOpts};
use tapflow_bench::gen::write::{write_pcap_opts, Endian, PcapOpts};
use tapflow_bench::gen::{
    demo, demo_two_ifaces, fixtures, linktype, mix, worst, write_pcap, write_pcapng, Frame,
    Interface, Truth,
};

// ---------------------------------------------------------------------------------------------
// An independent decoder and checksum verifier.

fn sum(data: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in data.chunks(2) {
        s += (c[0] as u32) << 8 | *c.get(1).unwrap_or(&0) as u32;
    }
    s
}

fn ok(s: u32) -> bool {
    let mut s = s as u64;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    sum(src) + sum(dst) + proto as u32 + (len as u32 >> 16) + (len as u32 & 0xffff)
}

/// What the decoder found in a frame's innermost IP packet.
#[derive(Debug, Clone, PartialEq)]
struct Inner {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    /// Ports, or (type, id) for ICMP echo; None for non-first fragments.
    ports: Option<(u16, u16)>,
    ip_len: usize,
    frag: bool,
}

/// Fragments of one datagram: pieces (offset, bytes), total length once known, protocol.
type FragSet = (Vec<(usize, Vec<u8>)>, Option<usize>, u8);

#[derive(Default)]
struct Checker {
    /// Fragment reassembly: (src, dst, id) → (pieces (offset, bytes), total length, pseudo info).
    frags: HashMap<(IpAddr, IpAddr, u32), FragSet>,
    l4_checked: usize,
}

impl Checker {
    fn eth(&mut self, f: &[u8]) -> Result<Option<Inner>, String> {
        let mut et = u16::from_be_bytes([f[12], f[13]]);
        let mut off = 14;
        while et == 0x8100 || et == 0x88a8 {
            et = u16::from_be_bytes([f[off + 2], f[off + 3]]);
            off += 4;
        }
        match et {
            0x0800 | 0x86dd => self.ip(&f[off..]).map(Some),
            0x0806 => Ok(None),
            0x8847 => {
                loop {
                    let bos = f[off + 2] & 1;
                    off += 4;
                    if bos == 1 {
                        break;
                    }
                }
                self.ip(&f[off..]).map(Some)
            }
            0x8864 => {
                let len = u16::from_be_bytes([f[off + 4], f[off + 5]]) as usize;
                let ppp = u16::from_be_bytes([f[off + 6], f[off + 7]]);
                if ppp != 0x0021 && ppp != 0x0057 {
                    return Err(format!("PPP protocol {ppp:#x}"));
                }
                self.ip(&f[off + 8..off + 6 + len]).map(Some)
            }
            e => Err(format!("unexpected ethertype {e:#06x}")),
        }
    }

    fn ip(&mut self, p: &[u8]) -> Result<Inner, String> {
        match p[0] >> 4 {
            4 => self.ipv4(p),
            6 => self.ipv6(p),
            v => Err(format!("IP version {v}")),
        }
    }

    fn ipv4(&mut self, p: &[u8]) -> Result<Inner, String> {
        let hl = (p[0] & 15) as usize * 4;
        let total = u16::from_be_bytes([p[2], p[3]]) as usize;
        if total > p.len() || hl < 20 {
            return Err("bad IPv4 lengths".into());
        }
        if !ok(sum(&p[..hl])) {
            return Err("bad IPv4 header checksum".into());
        }
        let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
        let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let ff = u16::from_be_bytes([p[6], p[7]]);
        let (mf, fo) = (ff & 0x2000 != 0, (ff & 0x1fff) as usize * 8);
        let id = u16::from_be_bytes([p[4], p[5]]) as u32;
        self.l4(
            src,
            dst,
            p[9],
            &p[hl..total],
            &p[12..16],
            &p[16..20],
            mf,
            fo,
            id,
            total,
        )
    }

    fn ipv6(&mut self, p: &[u8]) -> Result<Inner, String> {
        let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
        if 40 + plen > p.len() {
            return Err("bad IPv6 length".into());
        }
        let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()));
        let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()));
        let mut nh = p[6];
        let mut off = 40;
        let (mut mf, mut fo, mut id, mut frag) = (false, 0, 0, false);
        loop {
            match nh {
                0 | 43 | 60 => {
                    nh = p[off];
                    off += (p[off + 1] as usize + 1) * 8;
                }
                44 => {
                    nh = p[off];
                    let v = u16::from_be_bytes([p[off + 2], p[off + 3]]);
                    fo = (v >> 3) as usize * 8;
                    mf = v & 1 != 0;
                    id = u32::from_be_bytes(p[off + 4..off + 8].try_into().unwrap());
                    frag = true;
                    off += 8;
                }
                _ => break,
            }
        }
        let mut inner = self.l4(
            src,
            dst,
            nh,
            &p[off..40 + plen],
            &p[8..24],
            &p[24..40],
            mf,
            fo,
            id,
            40 + plen,
        )?;
        inner.frag |= frag;
        Ok(inner)
    }

    #[allow(clippy::too_many_arguments)]
    fn l4(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        seg: &[u8],
        s: &[u8],
        d: &[u8],
        mf: bool,
        fo: usize,
        id: u32,
        ip_len: usize,
    ) -> Result<Inner, String> {
        let is_frag = mf || fo > 0;
        let mut inner = Inner {
            src,
            dst,
            proto,
            ports: None,
            ip_len,
            frag: is_frag,
        };
        if is_frag {
            let e = self
                .frags
                .entry((src, dst, id))
                .or_insert((Vec::new(), None, proto));
            e.0.push((fo, seg.to_vec()));
            if !mf {
                e.1 = Some(fo + seg.len());
            }
            if fo == 0 {
                inner.ports = Some((
                    u16::from_be_bytes([seg[0], seg[1]]),
                    u16::from_be_bytes([seg[2], seg[3]]),
                ));
            }
            // Complete? Verify the reassembled datagram.
            if let Some(total) = e.1 {
                let have: usize = e.0.iter().map(|(_, b)| b.len()).sum();
                if have == total {
                    let mut whole = vec![0u8; total];
                    for (o, b) in &e.0 {
                        whole[*o..*o + b.len()].copy_from_slice(b);
                    }
                    let (s, d) = (s.to_vec(), d.to_vec());
                    self.frags.remove(&(src, dst, id));
                    self.check_l4(proto, &whole, &s, &d)?;
                }
            }
            return Ok(inner);
        }
        inner.ports = self.check_l4(proto, seg, s, d)?;
        // Tunnels: decode further.
        match proto {
            47 => {
                let flags = u16::from_be_bytes([seg[0], seg[1]]);
                let mut off = 4;
                if flags & 0x8000 != 0 {
                    off += 4;
                }
                if flags & 0x2000 != 0 {
                    off += 4;
                }
                if flags & 0x1000 != 0 {
                    off += 4;
                }
                return self.ip(&seg[off..]);
            }
            41 => return self.ip(seg),
            17 => {
                let dport = u16::from_be_bytes([seg[2], seg[3]]);
                let payload = &seg[8..];
                match dport {
                    4789 => return self.eth(&payload[8..]).map(|i| i.unwrap()),
                    6081 => {
                        let opt = (payload[0] & 0x3f) as usize * 4;
                        return self.eth(&payload[8 + opt..]).map(|i| i.unwrap());
                    }
                    2152 => return self.ip(&payload[8..]),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(inner)
    }

    fn check_l4(
        &mut self,
        proto: u8,
        seg: &[u8],
        s: &[u8],
        d: &[u8],
    ) -> Result<Option<(u16, u16)>, String> {
        let ps = pseudo(s, d, proto, seg.len());
        let good = match proto {
            6 | 17 => ok(ps + sum(seg)),
            58 => ok(ps + sum(seg)),
            1 | 2 => ok(sum(seg)),
            _ => true,
        };
        if !good {
            return Err(format!("bad checksum for protocol {proto}"));
        }
        if proto == 17 && seg[6..8] == [0, 0] {
            return Err("UDP checksum left zero".into());
        }
        self.l4_checked += 1;
        Ok(match proto {
            6 | 17 => Some((
                u16::from_be_bytes([seg[0], seg[1]]),
                u16::from_be_bytes([seg[2], seg[3]]),
            )),
            1 | 58 => Some((
                (seg[0] as u16) << 8 | seg[1] as u16,
                u16::from_be_bytes([seg[4], seg[5]]),
            )),
            _ => Some((0, 0)),
        })
    }
}

/// Decodes and checksum-verifies every frame; checks each frame's truth tag against what was
/// decoded. Returns the number of frames checked.
fn verify(frames: &[Frame], truth: &Truth, lt_of_iface: &[u16]) -> usize {
    let mut c = Checker::default();
    for (i, f) in frames.iter().enumerate() {
        let lt = lt_of_iface[f.iface as usize];
        let inner = match lt {
            linktype::ETHERNET => c.eth(&f.data),
            linktype::RAW => c.ip(&f.data).map(Some),
            _ => unreachable!(),
        }
        .unwrap_or_else(|e| panic!("frame {i}: {e}"));
        let fl = &truth.flows[f.tag.flow as usize];
        let Some(inner) = inner else {
            assert_eq!(
                fl.ethertype, 0x0806,
                "frame {i}: non-IP frame not in an ARP flow"
            );
            continue;
        };
        let (s, d) = if f.tag.reverse {
            (fl.dst, fl.src)
        } else {
            (fl.src, fl.dst)
        };
        assert_eq!(
            (inner.src, inner.dst, inner.proto),
            (s, d, fl.proto),
            "frame {i} key"
        );
        assert_eq!(inner.ip_len as u32, f.tag.ip_len, "frame {i} ip_len");
        assert_eq!(inner.frag, f.tag.frag, "frame {i} frag");
        if let Some((a, b)) = inner.ports {
            match fl.proto {
                6 | 17 => {
                    let want = if f.tag.reverse {
                        (fl.dport, fl.sport)
                    } else {
                        (fl.sport, fl.dport)
                    };
                    assert_eq!((a, b), want, "frame {i} ports");
                }
                1 | 58 if fl.sport >> 8 == 8 || fl.sport >> 8 == 128 => {
                    assert_eq!(b, fl.dport, "frame {i} ICMP echo id");
                    let ty = (a >> 8) as u8;
                    assert!(matches!(ty, 0 | 8 | 128 | 129), "frame {i} ICMP type {ty}");
                }
                _ => {}
            }
        }
    }
    assert!(c.frags.is_empty(), "incomplete fragment sets left");
    assert!(c.l4_checked > 0);
    frames.len()
}

fn check_truth_sums(frames: &[Frame], truth: &Truth) {
    assert_eq!(truth.total_pkts(), frames.len() as u64);
    let wire: u64 = frames.iter().map(|f| f.wire_len as u64).sum();
    assert_eq!(truth.total_bytes(), wire);
    for f in frames {
        assert_eq!(f.wire_len as usize, f.data.len());
        let fl = &truth.flows[f.tag.flow as usize];
        assert!(fl.first_ns <= f.ts_ns && f.ts_ns <= fl.last_ns);
    }
    assert!(
        frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
        "frames not in time order"
    );
}

fn pcap_bytes(frames: &[Frame]) -> Vec<u8> {
    write_pcap(Vec::new(), frames, linktype::ETHERNET, true).unwrap()
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapflow-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------------

#[test]
fn demo_is_deterministic() {
    let (a, ta) = demo(1);
    let (b, tb) = demo(1);
    assert_eq!(pcap_bytes(&a), pcap_bytes(&b));
    assert_eq!(ta, tb);
    let (c, _) = demo(2);
    assert_ne!(pcap_bytes(&a), pcap_bytes(&c), "the seed must matter");
    assert_eq!(
        a.len(),
        c.len(),
        "the seed changes contents, not the scenario"
    );
}

#[test]
fn worst_and_mix_are_deterministic() {
    let a: Vec<Frame> = worst(5000, 700, 9, 0.3).collect();
    let b: Vec<Frame> = worst(5000, 700, 9, 0.3).collect();
    assert_eq!(a, b);
    let c: Vec<Frame> = worst(5000, 700, 10, 0.3).collect();
    assert_ne!(a, c);
    let (m1, t1) = mix(3000, 200, 4);
    let (m2, t2) = mix(3000, 200, 4);
    assert_eq!(pcap_bytes(&m1), pcap_bytes(&m2));
    assert_eq!(t1, t2);
}

#[test]
fn demo_checksums_and_truth() {
    let (frames, truth) = demo(1);
    assert!(
        (200..400).contains(&frames.len()),
        "{} packets",
        frames.len()
    );
    let size = pcap_bytes(&frames).len();
    assert!(size < 100_000, "demo.pcap is {size} bytes");
    let span = frames.last().unwrap().ts_ns - frames[0].ts_ns;
    assert!(
        (90..=130).contains(&(span / 1_000_000_000)),
        "span {span} ns"
    );
    verify(&frames, &truth, &[linktype::ETHERNET]);
    check_truth_sums(&frames, &truth);

    // The scenario's promised ingredients.
    let by_note = |s: &str| {
        truth
            .flows
            .iter()
            .find(|f| f.note.contains(s))
            .unwrap_or_else(|| panic!("no flow {s:?}"))
    };
    assert!(!by_note("mid-stream").handshake);
    assert_eq!(by_note("retransmitted").retrans, [1, 0]);
    assert_eq!(by_note("out-of-order").ooo, [0, 1]);
    assert_eq!(by_note("reset").end.name(), "rst");
    assert_eq!(by_note("left open").end.name(), "open");
    let long = by_note("long TCP");
    assert!(long.last_ns - long.first_ns > 5_000_000_000);
    assert_eq!(long.zero_win, [1, 0]);
    assert_eq!(by_note("unanswered").pkts, [2, 0]);
    assert_eq!(by_note("3 IPv4 fragments").frags, [0, 3]);
    assert!(by_note("IPv6 fragments").frags[1] >= 2);
    for e in [
        "vlan", "qinq", "mpls", "pppoe", "vxlan", "geneve", "gre", "gtpu", "6in4",
    ] {
        assert!(truth.flows.iter().any(|f| f.encap == e), "no {e} flow");
    }
    assert!(truth.flows.iter().any(|f| f.ethertype == 0x0806));
    assert!(truth.flows.iter().any(|f| f.proto == 1));
    assert!(truth
        .flows
        .iter()
        .any(|f| f.proto == 58 && f.sport == 128 << 8));
    assert!(truth.flows.iter().filter(|f| f.ip_options).count() >= 2);
    let tcp_v6 = truth
        .flows
        .iter()
        .filter(|f| f.proto == 6 && f.src.is_ipv6())
        .count();
    assert!(tcp_v6 >= 2);
}

#[test]
fn truth_csv_round_trips() {
    let (_, truth) = demo_two_ifaces(1);
    let mut csv = Vec::new();
    truth.write_csv(&mut csv).unwrap();
    let back = Truth::from_csv(std::str::from_utf8(&csv).unwrap()).unwrap();
    let mut want = truth.without_empty();
    for f in &mut want.flows {
        f.note = f.note.replace([',', '\n'], ";");
    }
    assert_eq!(back, want);
}

#[test]
fn verifier_catches_corruption() {
    // The checks above are only worth something if a flipped byte is noticed.
    let (frames, truth) = demo(1);
    let lt = [linktype::ETHERNET];
    let find = |pred: &dyn Fn(&Frame) -> bool| frames.iter().position(pred).unwrap();
    let cases = [
        // TCP payload byte of a data segment (Ethernet, no tunnel).
        (
            find(&|f: &Frame| {
                f.tag.app_len > 100 && f.data.len() > 200 && f.data[12..14] == [8, 0]
            }),
            120,
        ),
        // IPv4 header byte (TTL) of the first frame.
        (0, 22),
        // ICMPv6 payload byte.
        (find(&|f: &Frame| f.data.len() == 118), 100),
        // Inner TCP byte inside VXLAN.
        (
            find(&|f: &Frame| {
                f.data.len() > 1000
                    && f.data[12..14] == [8, 0]
                    && f.data[23] == 17
                    && f.data[36..38] == [0x12, 0xb5]
            }),
            200,
        ),
    ];
    for (i, off) in cases {
        let mut bad = frames.clone();
        bad[i].data[off] ^= 0x40;
        let r = std::panic::catch_unwind(|| verify(&bad, &truth, &lt));
        assert!(r.is_err(), "corrupting frame {i} byte {off} went unnoticed");
    }
}

#[test]
fn two_interface_demo() {
    let (frames, truth) = demo_two_ifaces(1);
    let raw: Vec<&Frame> = frames.iter().filter(|f| f.iface == 1).collect();
    assert_eq!(raw.len(), 2);
    assert!(raw.iter().all(|f| f.data[0] >> 4 == 4));
    verify(&frames, &truth, &[linktype::ETHERNET, linktype::RAW]);
    check_truth_sums(&frames, &truth);
}

#[test]
fn worst_case_shape() {
    let (packets, flows) = (10_000u64, 1_000u64);
    let it = worst(packets, flows, 3, 0.25);
    let mut truth = it.truth();
    let frames: Vec<Frame> = it.collect();
    assert_eq!(frames.len() as u64, packets);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.data.len(), 60, "frame {i}");
        assert_eq!(f.ts_ns - frames[0].ts_ns, i as u64 * 67_200 / 1000);
        truth.tally(f, 0);
    }
    verify(&frames, &truth, &[linktype::ETHERNET]);
    check_truth_sums(&frames, &truth);
    assert_eq!(truth.flows.len() as u64, flows);
    // Distinct 5-tuples, each flow 10 packets, all live at once: each flow appears in every
    // window of `flows` packets.
    let keys: std::collections::HashSet<_> = truth
        .flows
        .iter()
        .map(|f| (f.proto, f.src, f.sport, f.dst, f.dport))
        .collect();
    assert_eq!(keys.len() as u64, flows);
    assert!(truth.flows.iter().all(|f| f.pkts == [10, 0]));
    let first: std::collections::HashSet<u32> = frames[..flows as usize]
        .iter()
        .map(|f| f.tag.flow)
        .collect();
    assert_eq!(first.len() as u64, flows);
    let udp = truth.flows.iter().filter(|f| f.proto == 17).count();
    assert!((150..350).contains(&udp), "{udp} UDP flows");
    let victims: std::collections::HashSet<_> = truth.flows.iter().map(|f| f.dst).collect();
    assert_eq!(victims.len(), 16);
    // SYN retransmissions repeat the sequence number; UDP payloads are 18 bytes.
    let mut seqs: HashMap<u32, u32> = HashMap::new();
    for f in &frames {
        match f.data[23] {
            6 => {
                assert_eq!(f.data[14 + 20 + 13], 0x02, "SYN only");
                let seq = u32::from_be_bytes(f.data[38..42].try_into().unwrap());
                assert_eq!(*seqs.entry(f.tag.flow).or_insert(seq), seq);
            }
            17 => assert_eq!(u16::from_be_bytes([f.data[38], f.data[39]]), 8 + 18),
            p => panic!("protocol {p}"),
        }
    }
}

#[test]
fn mix_is_consistent() {
    let (frames, truth) = mix(20_000, 500, 7);
    let n = frames.len() as f64;
    assert!((16_000.0..24_000.0).contains(&n), "{n} packets");
    verify(&frames, &truth, &[linktype::ETHERNET]);
    check_truth_sums(&frames, &truth);
    assert_eq!(truth.without_empty().flows.len(), 500);
}

#[test]
fn pcap_layout_one_packet() {
    let mut f = Frame::new(1_709_294_400_123_456_789, (0u8..60).collect());
    f.wire_len = 64;
    let ns = write_pcap(Vec::new(), [&f], linktype::ETHERNET, true).unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(&[0x4d, 0x3c, 0xb2, 0xa1]); // a1b23c4d, little-endian
    want.extend_from_slice(&[2, 0, 4, 0]); // 2.4
    want.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    want.extend_from_slice(&262_144u32.to_le_bytes());
    want.extend_from_slice(&[1, 0, 0, 0]); // LINKTYPE_ETHERNET
    want.extend_from_slice(&1_709_294_400u32.to_le_bytes());
    want.extend_from_slice(&123_456_789u32.to_le_bytes());
    want.extend_from_slice(&60u32.to_le_bytes());
    want.extend_from_slice(&64u32.to_le_bytes());
    want.extend(0u8..60);
    assert_eq!(ns, want);

    let us = write_pcap(Vec::new(), [&f], linktype::ETHERNET, false).unwrap();
    assert_eq!(&us[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(&us[28..32], &123_456u32.to_le_bytes());
    assert_eq!(us.len(), want.len());

    let mut o = PcapOpts::new(linktype::RAW, true);
    o.endian = Endian::Big;
    o.snaplen = 32;
    let be = write_pcap_opts(Vec::new(), [&f], o).unwrap();
    assert_eq!(&be[..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
    assert_eq!(&be[16..24], &[0, 0, 0, 32, 0, 0, 0, 101]);
    assert_eq!(&be[32..40], &[0, 0, 0, 32, 0, 0, 0, 64]);
    assert_eq!(be.len(), 24 + 16 + 32);
}

#[test]
fn pcapng_layout_one_packet() {
    let f = Frame::new(1_709_294_400_123_456_789, vec![0xaa; 61]);
    let out = write_pcapng(
        Vec::new(),
        &[Interface::new(linktype::ETHERNET, "eth0")],
        [&f],
    )
    .unwrap();
    let u32at = |o: usize| u32::from_le_bytes(out[o..o + 4].try_into().unwrap());
    // SHB
    assert_eq!(u32at(0), 0x0a0d0d0a);
    let shb_len = u32at(4) as usize;
    assert_eq!(u32at(8), 0x1a2b3c4d);
    assert_eq!(&out[12..16], &[1, 0, 0, 0]);
    assert_eq!(&out[16..24], &[0xff; 8]);
    assert_eq!(u32at(shb_len - 4) as usize, shb_len);
    // IDB: linktype 1, snaplen, if_name "eth0", if_tsresol 9, end of options.
    let idb = shb_len;
    assert_eq!(u32at(idb), 1);
    let idb_len = u32at(idb + 4) as usize;
    let mut body = vec![1, 0, 0, 0];
    body.extend_from_slice(&262_144u32.to_le_bytes());
    body.extend_from_slice(&[2, 0, 4, 0, b'e', b't', b'h', b'0']);
    body.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]);
    body.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(&out[idb + 8..idb + idb_len - 4], &body[..]);
    // EPB
    let epb = idb + idb_len;
    assert_eq!(u32at(epb), 6);
    assert_eq!(u32at(epb + 4) as usize, 32 + 64);
    assert_eq!(u32at(epb + 8), 0);
    let ts = 1_709_294_400_123_456_789u64;
    assert_eq!(u32at(epb + 12), (ts >> 32) as u32);
    assert_eq!(u32at(epb + 16), ts as u32);
    assert_eq!(u32at(epb + 20), 61);
    assert_eq!(u32at(epb + 24), 61);
    assert_eq!(&out[epb + 28..epb + 89], &[0xaa; 61][..]);
    assert_eq!(&out[epb + 89..epb + 92], &[0, 0, 0]);
    assert_eq!(u32at(epb + 92), 96);
    assert_eq!(out.len(), epb + 96);
}

#[test]
fn relinked_headers() {
    let (frames, _) = fixtures::demo_flow("HTTP GET, 3 kB response, FIN");
    let syn = &frames[0];
    let client = syn.data[6..12].try_into().unwrap();
    let o = RelinkOpts {
        local_mac: client,
        ..Default::default()
    };
    let ip = &syn.data[14..];
    let sll = link::relink(&syn.data, linktype::LINUX_SLL, &o).unwrap();
    assert_eq!(
        &sll[..16],
        &[
            0, 4, 0, 1, 0, 6, client[0], client[1], client[2], client[3], client[4], client[5], 0,
            0, 8, 0
        ]
    );
    assert_eq!(&sll[16..], ip);
    let sll2 = link::relink(&syn.data, linktype::LINUX_SLL2, &o).unwrap();
    assert_eq!(&sll2[..12], &[8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6]);
    assert_eq!(&sll2[20..], ip);
    let null = link::relink(&syn.data, linktype::NULL, &o).unwrap();
    assert_eq!(&null[..4], &[2, 0, 0, 0]);
    let be = RelinkOpts {
        null_big_endian: true,
        ..o
    };
    assert_eq!(
        &link::relink(&syn.data, linktype::NULL, &be).unwrap()[..4],
        &[0, 0, 0, 2]
    );
    assert_eq!(link::relink(&syn.data, linktype::RAW, &o).unwrap(), ip);
    assert!(link::relink(&syn.data, linktype::IPV6, &o).is_none());
    // Ethernet padding is not carried over.
    let small = frames.iter().find(|f| f.data.len() == 66).unwrap();
    assert_eq!(
        link::relink(&small.data, linktype::RAW, &o).unwrap().len(),
        52
    );
}

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn decompressed(p: &std::path::Path) -> Vec<u8> {
    let raw = read(p);
    let name = p.to_string_lossy();
    if name.ends_with(".gz") {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut v)
            .unwrap();
        v
    } else if name.ends_with(".zst") {
        zstd::stream::decode_all(&raw[..]).unwrap()
    } else {
        raw
    }
}

#[test]
fn committed_fixtures_are_up_to_date() {
    let dir = temp_dir("fixtures");
    let written = fixtures::write_all(&dir).unwrap();
    let committed = fixtures_dir();
    let mut total = 0u64;
    for p in &written {
        let rel = p.strip_prefix(&dir).unwrap();
        let c = committed.join(rel);
        assert!(
            c.exists(),
            "{} is missing: run `tapflow-bench gen fixtures`",
            c.display()
        );
        assert!(
            decompressed(p) == decompressed(&c),
            "{} differs from the generator's output: run `tapflow-bench gen fixtures`",
            c.display()
        );
        total += std::fs::metadata(&c).unwrap().len();
    }
    assert!(total < 1_000_000, "fixtures take {total} bytes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixture_truths_match_their_captures() {
    // Every *.truth.csv parses and sums to its capture's packet count.
    let d = fixtures_dir();
    let pairs = [
        ("demo.pcap", "demo.truth.csv"),
        ("linktypes/ethernet.pcap", "linktypes/ethernet.truth.csv"),
        ("linktypes/sll.pcap", "linktypes/truth.csv"),
        ("linktypes/ipv4.pcap", "linktypes/ipv4.truth.csv"),
        ("linktypes/ipv6.pcap", "linktypes/ipv6.truth.csv"),
        ("edge/usec.pcap", "edge/session.truth.csv"),
        ("edge/snaplen96.pcap", "edge/session.truth.csv"),
    ];
    for (cap, tr) in pairs {
        let t = Truth::from_csv(&String::from_utf8(read(&d.join(tr))).unwrap()).unwrap();
        let data = read(&d.join(cap));
        // Walk the little-endian pcap records.
        let (mut off, mut n, mut bytes) = (24usize, 0u64, 0u64);
        let hdr = if cap.starts_with("linktypes/sll") {
            16
        } else {
            0
        };
        while off + 16 <= data.len() {
            let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
            let orig = u32::from_le_bytes(data[off + 12..off + 16].try_into().unwrap());
            bytes += (orig - hdr) as u64;
            off += 16 + incl;
            n += 1;
        }
        assert_eq!(off, data.len(), "{cap}");
        assert_eq!(t.total_pkts(), n, "{cap} vs {tr}");
        assert_eq!(t.total_bytes(), bytes, "{cap} vs {tr}");
    }
}

fn tshark() -> Option<PathBuf> {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success());
    if ok.unwrap_or(false) {
        Some("tshark".into())
    } else {
        eprintln!(
            "!!!!!! tshark is not installed: SKIPPING the tshark cross-check of the demo capture"
        );
        None
    }
}

#[test]
fn tshark_parses_demo_cleanly() {
    let Some(ts) = tshark() else { return };
    let dir = temp_dir("tshark");
    for (name, frames) in [
        ("demo.pcap", {
            let (f, _) = demo(1);
            let p = dir.join("demo.pcap");
            std::fs::write(&p, pcap_bytes(&f)).unwrap();
            f
        }),
        ("demo.pcapng", {
            let (f, _) = demo_two_ifaces(1);
            let ifs = [
                Interface::new(linktype::ETHERNET, "eth0"),
                Interface::new(linktype::RAW, "tun0"),
            ];
            std::fs::write(
                dir.join("demo.pcapng"),
                write_pcapng(Vec::new(), &ifs, &f).unwrap(),
            )
            .unwrap();
            f
        }),
    ] {
        let p = dir.join(name);
        let out = Command::new(&ts)
            .args(["-r"])
            .arg(&p)
            .args(["-T", "fields", "-e", "frame.len"])
            .output()
            .unwrap();
        assert!(out.status.success(), "tshark failed on {name}");
        let lens: Vec<usize> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        let want: Vec<usize> = frames.iter().map(|f| f.data.len()).collect();
        assert_eq!(lens, want, "{name}: frame lengths");
        let v = Command::new(&ts)
            .arg("-r")
            .arg(&p)
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
            ])
            .args(["-o", "udp.check_checksum:TRUE", "-V"])
            .output()
            .unwrap();
        assert!(v.status.success());
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            !text.contains("Malformed"),
            "{name}: tshark reports a malformed packet"
        );
        assert!(
            !text.contains("Status: Bad"),
            "{name}: tshark reports a bad checksum"
        );
        assert!(
            !text.contains("[incorrect"),
            "{name}: tshark reports a bad checksum"
        );
        assert!(text.contains("Checksum Status: Good"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
