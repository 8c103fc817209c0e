//! Unit tests: the round-trip contract ([`carried`]) and damage handling.

use super::*;
use tapflow_record::{encap, flags, Addr, AddrKind, Cause, DirStats, FlowRecord, FlowState};

fn tcp_record() -> FlowRecord {
    let t0 = 1_700_000_000_123_456_789u64;
    let dir = |first: u64, pkts: u64, flags: u8| DirStats {
        pkts,
        bytes: pkts * 100,
        ip_bytes: pkts * 86,
        app_bytes: pkts * 20,
        first_ns: first,
        last_ns: first + 5_000_001,
        ttl_min: 60,
        ttl_max: 64,
        tos: 0x10,
        tcp_flags: flags,
        retrans: 2,
        out_of_order: 3,
        zero_win: 0,
        loss_pkts: 1,
        loss_bytes: 100,
        window: 300_000,
        isn: 1000,
        first_seq: 1001,
        last_seq: 5000,
        last_ack: 7000,
        ipt_n: 4,
        ipt_mean_ns: 1_234_567.0,
        ipt_std_ns: 2345.5,
        frags: 0,
    };
    FlowRecord {
        probe_id: 7,
        seq: 0x1_0000_0042,
        cause: Cause::Idle,
        observed: 3,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: Addr::from_v4([10, 0, 0, 1]),
        daddr: Addr::from_v4([10, 0, 0, 2]),
        sport: 40000,
        dport: 80,
        stime_ns: t0,
        ltime_ns: t0 + 5_000_001 + 7,
        state: FlowState::Fin,
        flags: flags::ECN_CE | flags::ONE_WAY,
        tcp_opts: 0x1f,
        synack_ns: 10_000_123,
        ackdat_ns: 20_000_999,
        smac: [2, 0, 0, 0, 0, 1],
        dmac: [2, 0, 0, 0, 0, 2],
        vlan: [100, 200],
        mpls: [16, 17],
        encap: tapflow_record::Encap {
            kinds: encap::VLAN | encap::QINQ | encap::GRE,
            tunnel_id: 5,
            ..Default::default()
        },
        src: dir(t0, 5, 0x1b),
        dst: dir(t0 + 7, 3, 0x13),
        src_payload: b"GET / HTTP/1.1".to_vec(),
        dst_payload: b"HTTP/1.1 200".to_vec(),
        ..FlowRecord::default()
    }
}

fn roundtrip(r: &FlowRecord) -> FlowRecord {
    let mut buf = Vec::new();
    encode_far(r, &mut buf);
    assert_eq!(buf.len() % 4, 0);
    assert_eq!(
        usize::from(u16::from_be_bytes([buf[2], buf[3]])) * 4,
        buf.len()
    );
    let mut out = FlowRecord::default();
    decode_far(&buf, &mut out).expect("own output decodes");
    out
}

#[test]
fn tcp_roundtrip_keeps_what_argus_carries() {
    let r = tcp_record();
    let back = roundtrip(&r);
    assert_eq!(back, carried(&r));
    // Spot checks of the contract itself.
    assert_eq!(back.seq, 0x42);
    assert_eq!(back.cause, Cause::Idle);
    assert_eq!(back.state, FlowState::Fin);
    assert_eq!(back.src.first_ns, r.src.first_ns, "nanosecond times");
    assert_eq!(back.src.window, 300_000 >> 3 << 3);
    assert_eq!(back.vlan, [100, 0]);
    assert_eq!(back.src_payload, r.src_payload);
    assert_ne!(back.flags & flags::ECN_CE, 0);
}

#[test]
fn other_kinds_roundtrip() {
    let base = tcp_record();
    let mut cases = vec![];
    for cause in [
        Cause::Start,
        Cause::Status,
        Cause::Close,
        Cause::Idle,
        Cause::Evicted,
        Cause::Shutdown,
    ] {
        for state in [
            FlowState::None,
            FlowState::Req,
            FlowState::Acc,
            FlowState::Con,
            FlowState::Fin,
            FlowState::Clo,
            FlowState::Rst,
        ] {
            let mut r = base.clone();
            r.cause = cause;
            r.state = state;
            cases.push(r.clone());
            r.flags |= flags::DIR_GUESSED;
            r.dst = DirStats::default();
            cases.push(r);
        }
    }
    let mut udp = base.clone();
    udp.proto = 17;
    udp.state = FlowState::None;
    udp.src.frags = 2;
    cases.push(udp.clone());
    let mut v6 = udp.clone();
    v6.addr_kind = AddrKind::Ipv6;
    v6.saddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6.daddr = Addr([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.proto = 58;
    v6.sport = 128 << 8;
    v6.dport = 0x1234;
    cases.push(v6);
    let mut icmp = udp.clone();
    icmp.proto = 1;
    icmp.sport = 3 << 8 | 3;
    icmp.dport = 0;
    cases.push(icmp);
    let mut l2 = FlowRecord {
        addr_kind: AddrKind::L2,
        ethertype: 0x0806,
        saddr: Addr::from_mac([2, 0, 0, 0, 0, 1]),
        daddr: Addr::from_mac([0xff; 6]),
        stime_ns: 5_000_000_123,
        ltime_ns: 5_000_000_123,
        ..FlowRecord::default()
    };
    l2.src.pkts = 1;
    l2.src.bytes = 60;
    l2.src.first_ns = l2.stime_ns;
    l2.src.last_ns = l2.stime_ns;
    cases.push(l2.clone());
    // No packets at all (an aggregate of nothing, or a hand-made record).
    let empty = FlowRecord {
        stime_ns: 10,
        ltime_ns: 20,
        addr_kind: AddrKind::Ipv4,
        proto: 17,
        ..FlowRecord::default()
    };
    cases.push(empty);
    for r in &cases {
        assert_eq!(roundtrip(r), carried(r), "{r:?}");
    }
}

#[test]
fn writer_and_reader_files() {
    let recs = vec![tcp_record(), {
        let mut r = tcp_record();
        r.proto = 17;
        r.state = FlowState::None;
        r
    }];
    let mut w = ArgusWriter::new(Vec::new(), 1_800_000_000_000_000_000);
    for r in &recs {
        w.write(r).unwrap();
    }
    let file = w.finish().unwrap();
    assert_eq!(&file[0..4], &[0x83, 0x10, 0x00, 0x20]);
    assert_eq!(&file[8..12], &COOKIE.to_be_bytes());
    assert!(is_argus(&file));
    let mut rd = ArgusReader::new(&file[..], "x.argus").unwrap();
    assert_eq!(rd.srcid(), Some(7));
    let mut got = vec![];
    while let Some(r) = rd.next_record().unwrap() {
        got.push(r);
    }
    assert!(rd.take_warnings().is_empty());
    let want: Vec<FlowRecord> = recs.iter().map(carried).collect();
    assert_eq!(got, want);
}

#[test]
fn damage_is_reported_and_good_records_kept() {
    let mut w = ArgusWriter::new(Vec::new(), 0);
    for _ in 0..3 {
        w.write(&tcp_record()).unwrap();
    }
    let file = w.finish().unwrap();
    let far = usize::from(u16::from_be_bytes([file[130], file[131]])) * 4;
    let read_all = |b: &[u8]| {
        let mut rd = ArgusReader::new(b, "d.argus").unwrap();
        let mut n = 0;
        while rd.next_record().unwrap().is_some() {
            n += 1;
        }
        (n, rd.take_warnings())
    };
    // Truncated: the last FAR cut (the STOP MAR removed with it).
    let cut = &file[..128 + 2 * far + far / 2];
    let (n, w) = read_all(cut);
    assert_eq!(n, 2);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains(&format!("offset {}", 128 + 2 * far)), "{w:?}");
    assert!(w[0].contains("cut short"), "{w:?}");
    // A DSR length running past the record: that record skipped, the others kept.
    let mut bad = file.clone();
    bad[128 + far + 7] = 0xff; // the transport DSR's length byte of the second FAR
    let (n, w) = read_all(&bad);
    assert_eq!(n, 2);
    assert!(w[0].contains(&format!("offset {}", 128 + far)) && w[0].contains("runs past"));
    // A corrupt record header: skipped up to the next record.
    let mut bad = file.clone();
    bad[128 + far] = 0xee;
    let (n, w) = read_all(&bad);
    assert_eq!(n, 2);
    assert!(w[0].contains("not a record header"), "{w:?}");
    // No MAR: a warning, every record read.
    let (n, w) = read_all(&file[128..]);
    assert_eq!(n, 3);
    assert!(w[0].contains("offset 0") && w[0].contains("no Argus management record"));
    // Not Argus at all.
    assert!(ArgusReader::new(&b"TAPFLOW\0 and more bytes here"[..], "t").is_err());
    assert!(ArgusReader::new(&file[..100], "short").is_err());
    // Any prefix or any single corrupt byte: never a panic.
    for n in 0..file.len() {
        if let Ok(mut rd) = ArgusReader::new(&file[..n], "p") {
            while let Ok(Some(_)) = rd.next_record() {}
        }
    }
    for i in 0..file.len() {
        for v in [0u8, 0xff, 0x80, 0x01] {
            let mut b = file.clone();
            b[i] = v;
            if let Ok(mut rd) = ArgusReader::new(&b[..], "c") {
                while let Ok(Some(_)) = rd.next_record() {}
            }
        }
    }
}
