use std::collections::HashMap;

use tapflow_record::{Addr, AddrKind, Cause, DirStats, FlowRecord};

use super::*;

const NOW: u64 = 1_700_000_000_123_456_789;

fn rec_v4(probe: u32, i: u32) -> FlowRecord {
    let mut r = FlowRecord {
        probe_id: probe,
        cause: Cause::Close,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: Addr::from_v4([10, 0, 0, 1]),
        daddr: Addr::from_v4([192, 0, 2, (i % 250) as u8]),
        sport: 40000 + (i % 1000) as u16,
        dport: 443,
        stime_ns: 1_699_999_990_000_000_000 + u64::from(i) * 1_000_000,
        smac: [2, 0, 0, 0, 0, 1],
        dmac: [2, 0, 0, 0, 0, 2],
        vlan: [100, 0],
        ..FlowRecord::default()
    };
    r.src = DirStats {
        pkts: 10 + u64::from(i),
        bytes: 1140 + u64::from(i) * 14,
        ip_bytes: 1000,
        first_ns: r.stime_ns,
        last_ns: r.stime_ns + 500_000_000,
        ttl_min: 63,
        ttl_max: 64,
        tos: 0x10,
        tcp_flags: 0x1b,
        ..DirStats::default()
    };
    r.dst = DirStats {
        pkts: 8,
        bytes: 5112,
        ip_bytes: 5000,
        first_ns: r.stime_ns + 1_000_000,
        last_ns: r.stime_ns + 600_000_000,
        ttl_min: 50,
        ttl_max: 52,
        tos: 0,
        tcp_flags: 0x1a,
        ..DirStats::default()
    };
    r.ltime_ns = r.dst.last_ns;
    r
}

fn rec_v6(probe: u32) -> FlowRecord {
    let mut r = rec_v4(probe, 1);
    r.addr_kind = AddrKind::Ipv6;
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = 1;
    r.saddr = Addr(a);
    a[15] = 2;
    r.daddr = Addr(a);
    r.proto = 17;
    r
}

fn encode(cfg: Config, recs: &[FlowRecord], now: u64) -> (Vec<Vec<u8>>, Stats) {
    let mut e = Encoder::new(cfg);
    let mut out: Vec<Vec<u8>> = vec![];
    let mut sink = |m: &[u8]| -> Result<(), ()> {
        out.push(m.to_vec());
        Ok(())
    };
    for r in recs {
        e.add(r, now, &mut sink).unwrap();
    }
    e.flush(now, &mut sink).unwrap();
    let st = *e.stats();
    (out, st)
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| (a << 8) | u64::from(x))
}

/// (element id, pen) → value bytes of one data record.
type Fields = HashMap<(u16, u32), Vec<u8>>;
/// (domain, template id) → (element id, length, pen) per field.
type Templates = HashMap<(u32, u16), Vec<(u16, u16, u32)>>;

#[derive(Debug, Default)]
struct Msg {
    version: u16,
    /// IPFIX length / v9 count.
    len_or_count: u16,
    uptime: u32,
    time: u32,
    seq: u32,
    domain: u32,
    template_records: usize,
    data: Vec<(u16, Fields)>,
}

/// A strict parser: every length must add up, padding must be zeros and shorter than a record.
fn parse(m: &[u8], tpls: &mut Templates) -> Msg {
    let mut msg = Msg {
        version: be16(m),
        len_or_count: be16(&m[2..]),
        ..Msg::default()
    };
    let mut p = if msg.version == 10 {
        assert_eq!(msg.len_or_count as usize, m.len(), "IPFIX length");
        msg.time = be32(&m[4..]);
        msg.seq = be32(&m[8..]);
        msg.domain = be32(&m[12..]);
        16
    } else {
        assert_eq!(msg.version, 9);
        msg.uptime = be32(&m[4..]);
        msg.time = be32(&m[8..]);
        msg.seq = be32(&m[12..]);
        msg.domain = be32(&m[16..]);
        20
    };
    let tset = if msg.version == 10 { 2 } else { 0 };
    while p < m.len() {
        let (id, len) = (be16(&m[p..]), be16(&m[p + 2..]) as usize);
        assert!(len >= 4 && p + len <= m.len(), "set length {len} at {p}");
        assert_eq!(len % 4, 0, "sets are padded to 32 bits");
        let body = &m[p + 4..p + len];
        if id == tset {
            let mut q = 0;
            while q < body.len() {
                let (tid, n) = (be16(&body[q..]), be16(&body[q + 2..]));
                q += 4;
                let mut f = vec![];
                for _ in 0..n {
                    let (mut ie, l) = (be16(&body[q..]), be16(&body[q + 2..]));
                    q += 4;
                    let mut pen = 0;
                    if ie & 0x8000 != 0 {
                        assert_eq!(msg.version, 10, "enterprise bit only in IPFIX");
                        ie &= 0x7fff;
                        pen = be32(&body[q..]);
                        q += 4;
                    }
                    f.push((ie, l, pen));
                }
                tpls.insert((msg.domain, tid), f);
                msg.template_records += 1;
            }
        } else {
            assert!(id >= 256, "data set id {id}");
            let t = tpls
                .get(&(msg.domain, id))
                .expect("template before data")
                .clone();
            let rl: usize = t.iter().map(|f| f.1 as usize).sum();
            let mut q = 0;
            while body.len() - q >= rl {
                let mut fields = Fields::new();
                for &(ie, l, pen) in &t {
                    fields.insert((ie, pen), body[q..q + l as usize].to_vec());
                    q += l as usize;
                }
                msg.data.push((id, fields));
            }
            assert!(body[q..].iter().all(|&b| b == 0), "padding is zeros");
            assert!(body.len() - q < 4, "padding under 4 bytes");
        }
        p += len;
    }
    assert_eq!(p, m.len());
    if msg.version == 9 {
        assert_eq!(
            msg.len_or_count as usize,
            msg.template_records + msg.data.len(),
            "v9 count = template + data records"
        );
    }
    msg
}

fn val(f: &Fields, ie: u16) -> u64 {
    be(&f[&(ie, 0)])
}
fn rval(f: &Fields, ie: u16) -> u64 {
    be(&f[&(ie, REVERSE_PEN)])
}

#[test]
fn ntp_format() {
    assert_eq!(ntp_timestamp(0), 2_208_988_800u64 << 32);
    assert_eq!(
        ntp_timestamp(1_500_000_000),
        ((2_208_988_801u64) << 32) | 0x8000_0000
    );
    // Back to ns by truncation, as readers do: exact for every ns value.
    for ns in [1u64, 609_999_999, 610_000_000, 999_999_999, 123_456_789] {
        let frac = ntp_timestamp(ns) & 0xffff_ffff;
        assert_eq!((frac * 1_000_000_000) >> 32, ns, "{ns}");
    }
}

/// A whole message, byte by byte: header, template set, data set and padding.
#[test]
fn golden_uniflow_message() {
    let mut r = rec_v4(7, 0);
    r.dst = DirStats::default();
    let mut cfg = Config::stream(Dialect::Ipfix);
    cfg.uniflow = true;
    let (m, _) = encode(cfg, &[r.clone()], NOW);
    assert_eq!(m.len(), 1);
    let m = &m[0];
    // 16 header + (4 + 2 × (4 + 21 × 4)) template set + (4 + 91 + 1 padding) data set.
    assert_eq!(m.len(), 16 + 180 + 96);
    let mut want: Vec<u8> = vec![];
    want.extend_from_slice(&[0, 10]); // version
    want.extend_from_slice(&292u16.to_be_bytes()); // length
    want.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // export time (s)
    want.extend_from_slice(&[0, 0, 0, 0]); // sequence: no data record before
    want.extend_from_slice(&[0, 0, 0, 7]); // observation domain = probe id
    want.extend_from_slice(&[0, 2, 0, 180]); // template set
    want.extend_from_slice(&[1, 2, 0, 21]); // template 258, 21 fields
    for (ie, l) in [
        (8u16, 4u16),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (32, 2),
        (152, 8),
        (153, 8),
        (156, 8),
        (157, 8),
        (1, 8),
        (2, 8),
        (352, 8),
        (6, 2),
        (5, 1),
        (52, 1),
        (53, 1),
        (56, 6),
        (80, 6),
        (58, 2),
        (136, 1),
    ] {
        want.extend_from_slice(&ie.to_be_bytes());
        want.extend_from_slice(&l.to_be_bytes());
    }
    assert_eq!(&m[..want.len()], &want[..], "header and IPv4 template");
    assert_eq!(&m[108..112], &[1, 3, 0, 21], "IPv6 template 259");
    let d = &m[196..];
    let mut want: Vec<u8> = vec![1, 2, 0, 96]; // data set 258, 4 + 91 + 1
    want.extend_from_slice(&[10, 0, 0, 1, 192, 0, 2, 0]);
    want.extend_from_slice(&40000u16.to_be_bytes());
    want.extend_from_slice(&443u16.to_be_bytes());
    want.push(6);
    want.extend_from_slice(&[0, 0]); // no ICMP type
    want.extend_from_slice(&(r.src.first_ns / 1_000_000).to_be_bytes());
    want.extend_from_slice(&(r.src.last_ns / 1_000_000).to_be_bytes());
    want.extend_from_slice(&ntp_timestamp(r.src.first_ns).to_be_bytes());
    want.extend_from_slice(&ntp_timestamp(r.src.last_ns).to_be_bytes());
    want.extend_from_slice(&1000u64.to_be_bytes()); // IP octets
    want.extend_from_slice(&10u64.to_be_bytes());
    want.extend_from_slice(&1140u64.to_be_bytes()); // layer-2 octets
    want.extend_from_slice(&[0, 0x1b, 0x10, 63, 64]);
    want.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    want.extend_from_slice(&[0, 100, 3]); // VLAN, end of flow
    want.push(0); // padding
    assert_eq!(d, &want[..]);
    // The record time in NTP format: 1699999990 s + 2208988800.
    assert_eq!(be32(&d[4 + 31..]), 1_699_999_990 + 2_208_988_800);
}

#[test]
fn biflow_reverse_elements_carry_the_responder() {
    let recs = [rec_v4(1, 3), rec_v6(1)];
    let (msgs, st) = encode(Config::stream(Dialect::Ipfix), &recs, NOW);
    assert_eq!(st.data_records, 2);
    let mut t = HashMap::new();
    let m = parse(&msgs[0], &mut t);
    assert_eq!(m.template_records, 2);
    // The reverse elements are enterprise elements of PEN 29305 with forward numbers.
    let tpl = &t[&(1, template::IPV4_BIFLOW)];
    assert!(tpl.contains(&(ie::OCTET_DELTA_COUNT, 8, REVERSE_PEN)));
    assert!(tpl.contains(&(ie::FLOW_START_NANOSECONDS, 8, REVERSE_PEN)));
    assert_eq!(m.data.len(), 2);
    for ((tid, f), r) in m.data.iter().zip(&recs) {
        let v6 = r.addr_kind == AddrKind::Ipv6;
        assert_eq!(
            *tid,
            if v6 {
                template::IPV6_BIFLOW
            } else {
                template::IPV4_BIFLOW
            }
        );
        let src = if v6 { &f[&(27, 0)] } else { &f[&(8, 0)] };
        assert_eq!(&src[..], &r.saddr.0[..src.len()]);
        assert_eq!(val(f, ie::PACKET_DELTA_COUNT), r.src.pkts);
        assert_eq!(val(f, ie::OCTET_DELTA_COUNT), r.src.ip_bytes);
        assert_eq!(val(f, ie::LAYER2_OCTET_DELTA_COUNT), r.src.bytes);
        assert_eq!(rval(f, ie::PACKET_DELTA_COUNT), r.dst.pkts);
        assert_eq!(rval(f, ie::OCTET_DELTA_COUNT), r.dst.ip_bytes);
        assert_eq!(rval(f, ie::LAYER2_OCTET_DELTA_COUNT), r.dst.bytes);
        assert_eq!(
            val(f, ie::FLOW_START_NANOSECONDS),
            ntp_timestamp(r.src.first_ns)
        );
        assert_eq!(
            rval(f, ie::FLOW_END_NANOSECONDS),
            ntp_timestamp(r.dst.last_ns)
        );
        assert_eq!(val(f, ie::TCP_CONTROL_BITS), u64::from(r.src.tcp_flags));
        assert_eq!(rval(f, ie::TCP_CONTROL_BITS), u64::from(r.dst.tcp_flags));
        assert_eq!(rval(f, ie::MAXIMUM_TTL), u64::from(r.dst.ttl_max));
        assert_eq!(val(f, ie::BIFLOW_DIRECTION), 1);
        assert_eq!(val(f, ie::FLOW_END_REASON), 3);
        assert_eq!(val(f, ie::SOURCE_TRANSPORT_PORT), u64::from(r.sport));
    }
}

#[test]
fn uniflow_split_swaps_the_responder() {
    let mut cfg = Config::stream(Dialect::Ipfix);
    cfg.uniflow = true;
    let mut one_way = rec_v4(1, 1);
    one_way.dst = DirStats::default();
    let mut icmp = rec_v4(1, 2);
    icmp.proto = 1;
    icmp.sport = 8 << 8;
    icmp.dport = 77;
    let recs = [rec_v4(1, 0), one_way, icmp];
    let (msgs, st) = encode(cfg, &recs, NOW);
    assert_eq!(st.data_records, 5);
    let mut t = HashMap::new();
    let d: Vec<(u16, Fields)> = msgs.iter().flat_map(|m| parse(m, &mut t).data).collect();
    let (f, rv) = (&d[0].1, &d[1].1);
    assert_eq!(f[&(8, 0)], vec![10, 0, 0, 1]);
    assert_eq!(rv[&(12, 0)], vec![10, 0, 0, 1]);
    assert_eq!(val(rv, ie::SOURCE_TRANSPORT_PORT), 443);
    assert_eq!(val(rv, ie::DESTINATION_TRANSPORT_PORT), 40000);
    assert_eq!(val(rv, ie::PACKET_DELTA_COUNT), recs[0].dst.pkts);
    assert_eq!(val(rv, ie::OCTET_DELTA_COUNT), recs[0].dst.ip_bytes);
    assert_eq!(rv[&(56, 0)], recs[0].dmac.to_vec());
    // ICMP: ports 0, type/code in icmpTypeCodeIPv4; the responder's packets are replies.
    let (fi, ri) = (&d[3].1, &d[4].1);
    assert_eq!(val(fi, ie::ICMP_TYPE_CODE_IPV4), 8 << 8);
    assert_eq!(val(fi, ie::SOURCE_TRANSPORT_PORT), 0);
    assert_eq!(val(ri, ie::ICMP_TYPE_CODE_IPV4), 0);
}

#[test]
fn sequence_numbers_count_data_records_per_domain() {
    let mut recs = vec![];
    for i in 0..40 {
        recs.push(rec_v4(1, i));
    }
    for i in 0..7 {
        recs.push(rec_v4(2, i));
    }
    for i in 40..45 {
        recs.push(rec_v4(1, i));
    }
    let (msgs, st) = encode(Config::udp(Dialect::Ipfix), &recs, NOW);
    let mut t = HashMap::new();
    let mut per_domain: HashMap<u32, u64> = HashMap::new();
    for m in &msgs {
        let p = parse(m, &mut t);
        let n = per_domain.entry(p.domain).or_default();
        assert_eq!(u64::from(p.seq), *n, "sequence = data records before");
        *n += p.data.len() as u64;
    }
    assert_eq!(per_domain[&1], 45);
    assert_eq!(per_domain[&2], 7);
    assert_eq!(st.data_records, 52);
    assert_eq!(st.messages as usize, msgs.len());
}

#[test]
fn messages_stay_under_the_limit() {
    let mut recs = vec![];
    for i in 0..1000 {
        recs.push(if i % 3 == 0 { rec_v6(9) } else { rec_v4(9, i) });
    }
    for (dialect, uniflow) in [
        (Dialect::Ipfix, false),
        (Dialect::Ipfix, true),
        (Dialect::Netflow9, true),
    ] {
        let mut cfg = Config::udp(dialect);
        cfg.uniflow = uniflow;
        let (msgs, st) = encode(cfg, &recs, NOW);
        let mut t = HashMap::new();
        let mut n = 0;
        for m in &msgs {
            assert!(m.len() <= UDP_MAX_MESSAGE, "{} bytes", m.len());
            n += parse(m, &mut t).data.len();
        }
        let want = if uniflow { 2000 } else { 1000 };
        assert_eq!(n, want, "{dialect:?} uniflow {uniflow}");
        assert_eq!(st.data_records, want as u64);
        // Full messages: every message but the last is close to the limit.
        for m in &msgs[..msgs.len() - 1] {
            assert!(m.len() > UDP_MAX_MESSAGE - 200, "{} bytes", m.len());
        }
    }
    // The smallest limit still holds the templates and a record.
    let mut cfg = Config::udp(Dialect::Ipfix);
    cfg.max_message = 1;
    let (msgs, _) = encode(cfg, &recs[..5], NOW);
    assert!(msgs.iter().all(|m| m.len() <= MIN_MESSAGE));
}

#[test]
fn udp_templates_are_refreshed() {
    let mut cfg = Config::udp(Dialect::Ipfix);
    cfg.refresh = Refresh::Every {
        messages: 3,
        seconds: 600,
    };
    let mut e = Encoder::new(cfg);
    let mut got: Vec<usize> = vec![];
    let mut t = HashMap::new();
    let mut sink = |m: &[u8]| -> Result<(), ()> {
        got.push(parse(m, &mut t).template_records);
        Ok(())
    };
    // One message per flush.
    for i in 0..7 {
        e.add(&rec_v4(1, i), NOW, &mut sink).unwrap();
        e.flush(NOW, &mut sink).unwrap();
    }
    // 601 s later: due by time.
    e.add(&rec_v4(1, 8), NOW + 601_000_000_000, &mut sink)
        .unwrap();
    e.flush(NOW + 601_000_000_000, &mut sink).unwrap();
    assert_eq!(got, vec![2, 0, 0, 2, 0, 0, 2, 2]);

    // A stream sends them once per domain, again after reset_templates (new connection).
    let mut e = Encoder::new(Config::stream(Dialect::Ipfix));
    let mut got: Vec<(u32, usize)> = vec![];
    let mut t = HashMap::new();
    let mut sink = |m: &[u8]| -> Result<(), ()> {
        let p = parse(m, &mut t);
        got.push((p.domain, p.template_records));
        Ok(())
    };
    for probe in [1, 1, 2, 1, 2] {
        e.add(&rec_v4(probe, 0), NOW, &mut sink).unwrap();
        e.flush(NOW, &mut sink).unwrap();
    }
    e.reset_templates();
    e.add(&rec_v4(1, 0), NOW, &mut sink).unwrap();
    e.flush(NOW, &mut sink).unwrap();
    assert_eq!(got, vec![(1, 2), (1, 0), (2, 2), (1, 0), (2, 0), (1, 2)]);
}

#[test]
fn netflow9_header_times_and_sequence() {
    let recs: Vec<FlowRecord> = (0..100).map(|i| rec_v4(5, i)).collect();
    let (msgs, st) = encode(Config::udp(Dialect::Netflow9), &recs, NOW);
    assert_eq!(st.data_records, 200);
    let mut t = HashMap::new();
    let mut firsts = vec![];
    for (i, m) in msgs.iter().enumerate() {
        let p = parse(m, &mut t);
        assert_eq!(p.seq as usize, i, "v9 sequence counts packets");
        assert_eq!(p.domain, 5);
        assert_eq!(u64::from(p.time), NOW / 1_000_000_000, "wall clock");
        let boot = u64::from(p.time) * 1000 - u64::from(p.uptime);
        for (_, f) in &p.data {
            firsts.push(boot + val(f, ie::NF9_FIRST_SWITCHED));
            assert_eq!(f[&(ie::TCP_CONTROL_BITS, 0)].len(), 1);
        }
    }
    // Uniflows in order: the initiator's then the responder's start, to the millisecond.
    let want: Vec<u64> = recs
        .iter()
        .flat_map(|r| [r.src.first_ns / 1_000_000, r.dst.first_ns / 1_000_000])
        .collect();
    assert_eq!(firsts, want);

    // An archive a year old: uptimes cannot reach today's clock, so unix_secs is the
    // records' time instead, and times still come back exact.
    let year = 365 * 86_400 * 1_000_000_000u64;
    let (msgs, _) = encode(Config::udp(Dialect::Netflow9), &recs[..3], NOW + year);
    let p = parse(&msgs[0], &mut t);
    assert!(u64::from(p.time) < (NOW + year) / 1_000_000_000);
    let boot = u64::from(p.time) * 1000 - u64::from(p.uptime);
    assert_eq!(
        boot + val(&p.data[0].1, ie::NF9_LAST_SWITCHED),
        recs[0].src.last_ns / 1_000_000
    );
}

#[test]
fn non_ip_and_infiniband_are_counted_not_exported() {
    let mut l2 = rec_v4(1, 0);
    l2.addr_kind = AddrKind::L2;
    let mut ib = rec_v6(1);
    ib.flags |= tapflow_record::flags::INFINIBAND;
    let mut e = Encoder::new(Config::stream(Dialect::Ipfix));
    let mut n = 0;
    let mut sink = |_: &[u8]| -> Result<(), ()> {
        n += 1;
        Ok(())
    };
    assert_eq!(e.add(&l2, NOW, &mut sink).unwrap(), Some(Skip::NonIp));
    assert_eq!(e.add(&ib, NOW, &mut sink).unwrap(), Some(Skip::Infiniband));
    e.flush(NOW, &mut sink).unwrap();
    assert_eq!(n, 0, "no empty message");
    let st = e.stats();
    assert_eq!((st.records, st.skipped_non_ip, st.skipped_ib), (2, 1, 1));
}

#[test]
fn dest_parsing() {
    assert_eq!(
        net::Dest::parse("udp://127.0.0.1:4739"),
        Some(net::Dest::Udp("127.0.0.1:4739".into()))
    );
    assert_eq!(
        net::Dest::parse("tcp://[::1]:4739/"),
        Some(net::Dest::Tcp("[::1]:4739".into()))
    );
    assert_eq!(net::Dest::parse("flows.ipfix"), None);
    assert!(net::resolve("nohostport").is_err());
}
