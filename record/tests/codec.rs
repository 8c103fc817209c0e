//! Round trips, recovery, versioning and stream behaviour of the native record codec.

mod common;

use std::io::{self, Read};

use common::*;
use tapflow_record::*;

fn roundtrip(r: &FlowRecord) -> FlowRecord {
    let mut buf = vec![0xAA]; // encoding appends: keep what is already there
    encode_record(r, &mut buf);
    assert_eq!(buf[0], 0xAA);
    let (back, n) = decode_record(&buf[1..]).unwrap();
    assert_eq!(n, buf.len() - 1, "decode consumes exactly the encoding");
    back
}

fn assert_same(a: &FlowRecord, b: &FlowRecord) {
    assert_eq!(a, b);
    // PartialEq treats -0.0 == 0.0 and NaN != NaN: compare the f64 bits too.
    for (x, y) in [(&a.src, &b.src), (&a.dst, &b.dst)] {
        assert_eq!(x.ipt_mean_ns.to_bits(), y.ipt_mean_ns.to_bits());
        assert_eq!(x.ipt_std_ns.to_bits(), y.ipt_std_ns.to_bits());
    }
}

/// Compares record lists without dumping thousands of records on failure.
#[track_caller]
fn assert_recs(got: &[FlowRecord], expect: &[FlowRecord]) {
    let seqs = |v: &[FlowRecord]| v.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(got), seqs(expect));
    for (i, (a, b)) in got.iter().zip(expect).enumerate() {
        assert!(a == b, "record {i} differs:\n got {a:?}\nwant {b:?}");
    }
}

/// Strips the length prefix of an encoded record.
fn body_of(enc: &[u8]) -> Vec<u8> {
    let mut len = 0u64;
    let mut i = 0;
    loop {
        let b = enc[i];
        len |= u64::from(b & 0x7f) << (7 * i);
        i += 1;
        if b < 0x80 {
            break;
        }
    }
    assert_eq!(len as usize, enc.len() - i);
    enc[i..].to_vec()
}

fn buf_of(r: &FlowRecord) -> Vec<u8> {
    let mut v = Vec::new();
    encode_record(r, &mut v);
    v
}

fn with_prefix(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = body.len() as u64;
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out.extend_from_slice(body);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ---------------------------------------------------------------------------------------
// Record encoding

#[test]
fn full_record_round_trips() {
    let r = full_record();
    assert_same(&roundtrip(&r), &r);
}

/// The worked example of `docs/record-format.md`: pins the encoding byte for byte.
#[test]
fn golden_record_bytes() {
    let stime = 1_700_000_000_000_000_000u64;
    let r = FlowRecord {
        probe_id: 3,
        seq: 1,
        observed: observed::SRC_TO_DST,
        addr_kind: AddrKind::Ipv4,
        proto: 17,
        ethertype: 0x0800,
        saddr: Addr::from_v4([10, 0, 0, 1]),
        daddr: Addr::from_v4([10, 0, 0, 2]),
        sport: 53000,
        dport: 53,
        stime_ns: stime,
        ltime_ns: stime + 1000,
        src: DirStats {
            pkts: 1,
            bytes: 74,
            first_ns: stime,
            last_ns: stime,
            ..DirStats::default()
        },
        ..FlowRecord::default()
    };
    let mut buf = Vec::new();
    encode_record(&r, &mut buf);
    let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex.join(" "),
        "35 08 03 10 01 20 01 28 04 30 11 38 80 10 42 04 0a 00 00 01 4a 04 0a 00 00 02 \
         50 88 9e 03 58 35 61 00 00 2a 36 fe 9c 97 17 68 e8 07 72 08 08 01 10 4a 28 00 30 00"
    );
    assert_same(&roundtrip(&r), &r);
}

/// Probe-status records (format 1.1): every counter round-trips, the bytes follow the tag table,
/// and the sub-message comes after the payload fields.
#[test]
fn probe_status_round_trip_and_layout() {
    let st = ProbeStatus {
        worker: 1,
        flags: status_flags::FINAL,
        seen: 1000,
        delivered: 990,
        ring_drops: 10,
        decoded: 985,
        malformed: 5,
        flows_admitted: 7,
        records_queued: 9,
        active_flows: 2,
        ..ProbeStatus::default()
    };
    let r = FlowRecord {
        probe_id: 2,
        dst_payload: vec![0xaa],
        status: Some(Box::new(st)),
        ..FlowRecord::default()
    };
    let mut buf = Vec::new();
    encode_record(&r, &mut buf);
    let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex.join(" "),
        "20 08 02 ea 01 01 aa f2 01 17 08 01 10 01 18 e8 07 20 de 07 28 0a 48 d9 07 50 05 58 07 \
         68 09 78 02"
    );
    let (back, used) = decode_record(&buf).unwrap();
    assert_eq!(used, buf.len());
    assert_eq!(back, r);
    // A flow record carries no status.
    let (plain, _) = decode_record(&[0]).unwrap();
    assert!(plain.status.is_none());
    // Every field, maxed.
    let all = ProbeStatus {
        worker: u32::MAX,
        flags: u32::MAX,
        seen: u64::MAX,
        delivered: u64::MAX - 1,
        ring_drops: 3,
        filtered: 4,
        passed: 5,
        invalid: 6,
        decoded: 7,
        malformed: 8,
        flows_admitted: 9,
        evictions: 10,
        records_queued: 11,
        records_dropped: 12,
        active_flows: u64::MAX,
    };
    let mut r = full_record();
    r.status = Some(Box::new(all));
    buf.clear();
    encode_record(&r, &mut buf);
    assert_eq!(decode_record(&buf).unwrap().0, r);
}

#[test]
fn handshake_and_merge_status_round_trip() {
    let mut r = full_record();
    r.hs = Handshake {
        syn_ns: 1_700_000_000_123_456_789,
        synack_ns: 1_700_000_000_125_000_000,
        ack_ns: u64::MAX,
        synack_ack: u32::MAX,
        ack_ack: 7,
    };
    let mut buf = Vec::new();
    encode_record(&r, &mut buf);
    assert_eq!(decode_record(&buf).unwrap().0, r);
    for offset in [0i64, 1, -1, 20_000_000, -20_000_000, i64::MAX, i64::MIN] {
        let mut m = FlowRecord {
            stime_ns: 5,
            ltime_ns: 10,
            ..FlowRecord::default()
        };
        m.merge = Some(Box::new(MergeStatus {
            probe: 9,
            flags: 3,
            records_in: u64::MAX,
            duplicates: 1,
            gaps: 2,
            late: 3,
            offset_ns: offset,
            offset_err_ns: 4,
            offset_pairs: 5,
            joined: 6,
            one_sided: 7,
            records_out: 8,
            evictions: 9,
            active_flows: 10,
        }));
        buf.clear();
        encode_record(&m, &mut buf);
        let back = decode_record(&buf).unwrap().0;
        assert_eq!(back, m, "offset {offset}");
        assert!(back.is_meta());
    }
    // A record without them decodes to empty ones.
    let (plain, _) = decode_record(&[0]).unwrap();
    assert!(plain.hs.is_empty() && plain.merge.is_none());
}

/// InfiniBand records (format 1.3): the `ib` sub-message (tag 33) comes last, its opcode set
/// is trimmed like an address, and a reader that does not know tag 33 still reads the rest.
#[test]
fn infiniband_round_trip_and_layout() {
    let mut ib = IbInfo {
        slid: 1,
        dlid: 2,
        dqp: 0x12_3456,
        pkey: 0xffff,
        naks: 1,
        ..IbInfo::default()
    };
    ib.add_opcode(0x04); // RC SEND_ONLY
    ib.add_opcode(0x11); // RC ACK
    let r = FlowRecord {
        addr_kind: AddrKind::Ipv6,
        proto: IBA_TRANSPORT,
        flags: flags::INFINIBAND,
        ib,
        ..FlowRecord::default()
    };
    let mut buf = Vec::new();
    encode_record(&r, &mut buf);
    let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex.join(" "),
        "1e 28 06 30 1b 88 01 80 08 8a 02 13 08 01 10 02 20 d6 e8 48 28 ff ff 03 3a 03 10 00 02 \
         40 01"
    );
    let (back, used) = decode_record(&buf).unwrap();
    assert_eq!(used, buf.len());
    assert_eq!(back, r);
    assert!(back.is_ib());
    assert!(back.ib.has_opcode(0x11) && !back.ib.has_opcode(0x12));
    assert_eq!(back.ib.services(), 1, "RC only");
    // Every field, maxed, with opcodes in the last word.
    let mut full = full_record();
    full.ib.opcodes = [u64::MAX; 4];
    buf.clear();
    encode_record(&full, &mut buf);
    assert_eq!(decode_record(&buf).unwrap().0, full);
    // An older (1.2) reader sees the 1.2 fields, then one length-delimited field (tag 33) it
    // skips by its wire type.
    let mut no_ib = r.clone();
    no_ib.ib = IbInfo::default();
    let mut short = Vec::new();
    encode_record(&no_ib, &mut short);
    let (old, new) = (body_of(&short), body_of(&buf_of(&r)));
    assert_eq!(&new[..old.len()], &old[..]);
    assert_eq!(&new[old.len()..old.len() + 2], &[0x8a, 0x02]);
    // An unknown field inside `ib` (a later minor) is skipped.
    let mut body = body_of(&buf_of(&r));
    let n = body.len();
    // The sub-message is the last field: grow its length and append field 12 = 5.
    let len_at = n - 1 - 19; // key 8a 02, length byte, 19 bytes of body
    assert_eq!(body[len_at], 19);
    body[len_at] = 21;
    body.extend_from_slice(&[12 << 3, 5]);
    assert_eq!(decode_record(&with_prefix(&body)).unwrap().0, r);
}

#[test]
fn golden_file_layout() {
    let h = FileHeader {
        major: 1,
        minor: 0,
        probe_id: 0x0102_0304,
        created_ns: 0x1122_3344_5566_7788,
        flags: 0xa0b0_c0d0,
    };
    let mut w = RecordWriter::new(Vec::new(), &h, WriterOptions::default()).unwrap();
    w.write(&FlowRecord::default()).unwrap();
    let d = w.finish().unwrap();
    assert_eq!(&d[..8], b"TAPFLOW\0");
    assert_eq!(&d[8..16], &[1, 0, 3, 0, 36, 0, 0, 0]);
    assert_eq!(&d[16..20], &0xa0b0_c0d0u32.to_le_bytes());
    assert_eq!(&d[20..24], &0x0102_0304u32.to_le_bytes());
    assert_eq!(&d[24..32], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&d[32..36], &crc32c::crc32c(&d[..32]).to_le_bytes());
    let f = &d[36..];
    assert_eq!(&f[..4], &[0xf7, b'T', b'F', b'B']);
    let clen = u32::from_le_bytes(f[4..8].try_into().unwrap()) as usize;
    assert_eq!(f.len(), 24 + clen);
    assert_eq!(
        u32::from_le_bytes(f[8..12].try_into().unwrap()),
        1,
        "1 byte uncompressed"
    );
    assert_eq!(
        u32::from_le_bytes(f[12..16].try_into().unwrap()),
        1,
        "1 record"
    );
    assert_eq!(&f[16..20], &crc32c::crc32c(&f[24..]).to_le_bytes());
    assert_eq!(&f[20..24], &crc32c::crc32c(&f[..20]).to_le_bytes());
    assert_eq!(zstd::bulk::decompress(&f[24..], 1).unwrap(), [0]);
}

#[test]
fn every_enum_variant_round_trips() {
    let causes = [
        Cause::Start,
        Cause::Status,
        Cause::Close,
        Cause::Idle,
        Cause::Evicted,
        Cause::Shutdown,
    ];
    let states = [
        FlowState::None,
        FlowState::Req,
        FlowState::Acc,
        FlowState::Con,
        FlowState::Fin,
        FlowState::Clo,
        FlowState::Rst,
    ];
    let kinds = [AddrKind::L2, AddrKind::Ipv4, AddrKind::Ipv6];
    let mut r = full_record();
    for c in causes {
        for s in states {
            for k in kinds {
                r.cause = c;
                r.state = s;
                r.addr_kind = k;
                r.encap.outer_kind = k;
                assert_same(&roundtrip(&r), &r);
                let mut d = FlowRecord {
                    cause: c,
                    state: s,
                    addr_kind: k,
                    ..FlowRecord::default()
                };
                d.encap.outer_kind = k;
                assert_same(&roundtrip(&d), &d);
            }
        }
    }
}

#[test]
fn default_record_is_one_byte() {
    let r = FlowRecord::default();
    let mut buf = Vec::new();
    encode_record(&r, &mut buf);
    assert_eq!(buf, [0]);
    assert_same(&roundtrip(&r), &r);
}

#[test]
fn odd_values_round_trip() {
    let mut rng = Rng::new(1);
    let mut r = full_record();
    // Timestamps before the record start, zero start, extremes: delta encoding must wrap.
    for (stime, ltime, first, last) in [
        (0u64, u64::MAX, 1u64, u64::MAX),
        (u64::MAX, 1, u64::MAX, 0),
        (5, 4, 3, 0),
        (
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_000,
            0,
        ),
    ] {
        r.stime_ns = stime;
        r.ltime_ns = ltime;
        r.src.first_ns = first;
        r.src.last_ns = last;
        r.dst.first_ns = last;
        r.dst.last_ns = first;
        assert_same(&roundtrip(&r), &r);
    }
    // f64 specials (bits compared).
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        -0.0,
        0.0,
        1e300,
    ] {
        r.src.ipt_mean_ns = v;
        r.dst.ipt_std_ns = v;
        let back = roundtrip(&r);
        assert_eq!(back.src.ipt_mean_ns.to_bits(), v.to_bits());
        assert_eq!(back.dst.ipt_std_ns.to_bits(), v.to_bits());
    }
    // Addresses with trailing zeros, leading zeros, MACs ending in 0.
    r.src.ipt_mean_ns = 1.0;
    r.dst.ipt_std_ns = 1.0;
    r.saddr = Addr([0; 16]);
    r.daddr = Addr::from_v4([0, 0, 0, 1]);
    r.smac = [0, 0, 0, 0, 0, 0];
    r.dmac = [1, 0, 0, 0, 0, 0];
    r.encap.outer_dst = Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    assert_same(&roundtrip(&r), &r);
    // Large payloads: length prefixes of 2 and 3 bytes, sub-messages over 127 bytes.
    for n in [127usize, 128, 16383, 16384, 70000] {
        r.src_payload = rng.bytes(n);
        r.dst_payload = rng.bytes(n / 3);
        assert_same(&roundtrip(&r), &r);
    }
}

#[test]
fn random_records_round_trip() {
    let mut rng = Rng::new(2);
    let mut buf = Vec::new();
    let mut recs = Vec::new();
    for i in 0..2000 {
        let mut r = small_record(&mut rng, i);
        // Randomly zero some fields so presence varies.
        if rng.below(2) == 0 {
            r.src = DirStats::default();
        }
        if rng.below(3) == 0 {
            r.stime_ns = 0;
        }
        if rng.below(5) == 0 {
            r.encap = full_record().encap;
        }
        encode_record(&r, &mut buf);
        recs.push(r);
    }
    let mut at = 0;
    for r in &recs {
        let (back, n) = decode_record(&buf[at..]).unwrap();
        assert_same(&back, r);
        at += n;
    }
    assert_eq!(at, buf.len());
}

#[test]
fn unknown_fields_and_enum_values_are_skipped() {
    let r = full_record();
    let mut enc = Vec::new();
    encode_record(&r, &mut enc);
    let mut body = body_of(&enc);
    // Unknown fields of every skippable wire type, at tags a newer minor might use.
    varint(&mut body, 100 << 3); // varint
    varint(&mut body, u64::MAX);
    varint(&mut body, (101 << 3) | 1); // fixed64
    body.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    varint(&mut body, (102 << 3) | 2); // length-delimited
    varint(&mut body, 300);
    body.extend_from_slice(&[0x55; 300]);
    varint(&mut body, (103 << 3) | 5); // fixed32
    body.extend_from_slice(&[9, 9, 9, 9]);
    varint(&mut body, (u64::from(u32::MAX) + 5) << 3); // a tag beyond u32
    varint(&mut body, 1);
    // An enum value this reader does not know: the field keeps its value.
    varint(&mut body, 16 << 3); // state
    varint(&mut body, 77);
    varint(&mut body, 3 << 3); // cause
    varint(&mut body, 1000);
    let rec = with_prefix(&body);
    let (back, n) = decode_record(&rec).unwrap();
    assert_eq!(n, rec.len());
    assert_same(&back, &r);

    // Unknown enum values alone leave the defaults.
    let mut body = Vec::new();
    varint(&mut body, 5 << 3); // addr_kind
    varint(&mut body, 5);
    varint(&mut body, 3 << 3); // cause
    varint(&mut body, 6);
    let (back, _) = decode_record(&with_prefix(&body)).unwrap();
    assert_eq!(back, FlowRecord::default());

    // Unknown fields inside sub-messages too.
    let mut sub = Vec::new();
    varint(&mut sub, 1 << 3);
    varint(&mut sub, 42);
    varint(&mut sub, (60 << 3) | 2);
    varint(&mut sub, 2);
    sub.extend_from_slice(b"hi");
    let mut body = Vec::new();
    for tag in [14u64, 15, 27] {
        varint(&mut body, (tag << 3) | 2);
        varint(&mut body, sub.len() as u64);
        body.extend_from_slice(&sub);
    }
    let (back, _) = decode_record(&with_prefix(&body)).unwrap();
    assert_eq!(back.src.pkts, 42);
    assert_eq!(back.dst.pkts, 42);
    assert_eq!(back.encap.kinds, 42);
}

#[test]
fn malformed_records_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "ends inside"),
        (vec![5, 8], "exceeds"),  // length past the buffer
        (vec![2, 0, 0], "tag 0"), // key 0
        (vec![2, (6 << 3) | 1, 0], "wrong wire type"), // proto as fixed64
        (vec![3, 6 << 3, 0xac, 0x02], "out of range"), // proto = 300
        (vec![2, (8 << 3) | 2, 17], "length 17"), // saddr past the end
        (vec![2, (99 << 3) | 3, 0], "wire type 3"), // group: cannot skip
        (vec![2, 6 << 3, 0x80], "ends inside"), // truncated varint
        (
            vec![
                11,
                2 << 3,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x7f,
            ],
            "longer than 64",
        ),
    ];
    for (buf, want) in cases {
        match decode_record(&buf) {
            Err(e @ RecordError::Format { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{buf:?}: {msg}");
                assert!(msg.starts_with("offset "), "{msg}");
            }
            other => panic!("{buf:?}: {other:?}"),
        }
    }
    // 18 bytes for a 16-byte address.
    let mut body = vec![(8 << 3) | 2, 17];
    body.extend_from_slice(&[1; 17]);
    let e = decode_record(&with_prefix(&body)).unwrap_err().to_string();
    assert!(
        e.contains("field saddr (tag 8) is 17 bytes long, at most 16"),
        "{e}"
    );
    // A nested error names the sub-message.
    let body = vec![(14 << 3) | 2, 2, 7 << 3, 0x7f | 0x80];
    let e = decode_record(&with_prefix(&body)).unwrap_err().to_string();
    assert!(e.contains("ends inside"), "{e}");
    let body = vec![(15 << 3) | 2, 3, 7 << 3, 0x80, 0x02];
    let e = decode_record(&with_prefix(&body)).unwrap_err().to_string();
    assert!(
        e.contains("field dst.ttl_min (tag 7) value 256 out of range"),
        "{e}"
    );
}

#[test]
fn decode_never_panics_on_garbage() {
    let mut rng = Rng::new(3);
    let mut enc = Vec::new();
    encode_record(&full_record(), &mut enc);
    for i in 0..20000 {
        let buf = if i % 2 == 0 {
            let n = rng.below(64) as usize;
            rng.bytes(n)
        } else {
            let mut b = enc.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len() as u64) as usize;
                b[at] ^= 1 << rng.below(8);
            }
            b.truncate(rng.below(b.len() as u64 + 1) as usize);
            b
        };
        if let Ok((_, n)) = decode_record(&buf) {
            assert!(n <= buf.len());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files

#[test]
fn header_and_records_round_trip_through_a_file() {
    let mut rng = Rng::new(4);
    let h = FileHeader {
        major: 0, // the writer writes its own version
        minor: 77,
        probe_id: 12,
        created_ns: 1_760_000_000_123_456_789,
        flags: 0x8000_0001,
    };
    let mut w = RecordWriter::new(Vec::new(), &h, WriterOptions::default()).unwrap();
    assert_eq!(w.bytes_written(), 36);
    assert_eq!(w.get_ref().len(), 36);
    let mut recs = vec![full_record(), FlowRecord::default()];
    for i in 0..500 {
        recs.push(small_record(&mut rng, i));
    }
    for r in &recs {
        w.write(r).unwrap();
    }
    assert_eq!(w.records_written(), recs.len() as u64);
    assert_eq!(
        w.bytes_written(),
        36,
        "one pending block, nothing written yet"
    );
    let data = w.finish().unwrap();
    let mut rd = RecordReader::new(&data[..], "x.tfr").unwrap();
    assert_eq!(
        rd.header(),
        &FileHeader {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            ..h
        }
    );
    let back: Vec<FlowRecord> = rd.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(back.len(), recs.len());
    for (a, b) in back.iter().zip(&recs) {
        assert_same(a, b);
    }
    assert_eq!(rd.blocks_read(), 1);
    assert!(rd.take_warnings().is_empty());
}

#[test]
fn header_only_file_is_empty_and_clean() {
    let data = RecordWriter::new(Vec::new(), &header(1), WriterOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(data.len(), 36);
    let (recs, warns, err) = read_all(&data).unwrap();
    assert!(recs.is_empty() && warns.is_empty() && err.is_none());
}

#[test]
fn many_blocks() {
    let mut rng = Rng::new(5);
    let opts = WriterOptions {
        zstd_level: 1,
        block_records: 1000,
        block_bytes: 1 << 20,
    };
    let mut w = RecordWriter::new(Vec::new(), &header(1), opts).unwrap();
    let n = 100_000u64;
    let mut expect = Vec::new();
    for i in 0..n {
        let r = small_record(&mut rng, i);
        w.write(&r).unwrap();
        if i % 997 == 1 {
            expect.push(r);
        }
    }
    let written = w.bytes_written();
    let data = w.finish().unwrap();
    assert_eq!(
        written as usize,
        data.len(),
        "100 full blocks, none pending"
    );
    let mut rd = RecordReader::new(&data[..], "many.tfr").unwrap();
    let mut count = 0u64;
    while let Some(r) = rd.next_record().unwrap() {
        assert_eq!(r.seq, count);
        if count % 997 == 1 {
            assert_same(&r, &expect[(count / 997) as usize]);
        }
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(rd.blocks_read(), 100);
    assert!(rd.take_warnings().is_empty());
}

#[test]
fn block_bytes_limit_cuts_blocks() {
    let mut rng = Rng::new(6);
    let opts = WriterOptions {
        zstd_level: 3,
        block_records: 1_000_000,
        block_bytes: 10_000,
    };
    let mut w = RecordWriter::new(Vec::new(), &header(1), opts).unwrap();
    for i in 0..1000 {
        w.write(&small_record(&mut rng, i)).unwrap();
    }
    let data = w.finish().unwrap();
    let mut rd = RecordReader::new(&data[..], "x").unwrap();
    assert_eq!(rd.by_ref().count(), 1000);
    let blocks = rd.blocks_read();
    assert!((10..=40).contains(&blocks), "{blocks} blocks");
}

#[test]
fn flush_block_and_drop_write_pending_records() {
    let mut rng = Rng::new(7);
    let mut data = Vec::new();
    {
        let mut w = RecordWriter::new(&mut data, &header(1), WriterOptions::default()).unwrap();
        w.flush_block().unwrap(); // nothing pending: no block
        assert_eq!(w.bytes_written(), 36);
        for i in 0..10 {
            w.write(&small_record(&mut rng, i)).unwrap();
            w.flush_block().unwrap();
        }
        assert_eq!(w.get_mut().len() as u64, w.bytes_written());
        w.write(&small_record(&mut rng, 10)).unwrap();
        // dropped with one record pending
    }
    let mut rd = RecordReader::new(&data[..], "x").unwrap();
    let seqs: Vec<u64> = rd.by_ref().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (0..11).collect::<Vec<_>>());
    assert_eq!(rd.blocks_read(), 11);
}

#[test]
fn partial_last_block_at_every_truncation() {
    let (data, starts, recs) = write_file(8, 3, 16);
    let last = starts[2];
    assert!(data.len() - last > 1000, "a last block of some size");
    for cut in last..data.len() {
        let (got, warns, err) = read_all(&data[..cut]).unwrap();
        assert!(err.is_none());
        assert_eq!(got.len(), 32, "cut at {cut}");
        assert_recs(&got, &recs[..32]);
        if cut == last {
            assert!(warns.is_empty(), "{warns:?}");
        } else {
            assert_eq!(
                warns,
                [format!(
                    "x.tfr: offset {last}: partial block at end of input ({} bytes), ignored",
                    cut - last
                )],
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn truncated_file_header() {
    let (data, _, _) = write_file(9, 1, 5);
    for cut in 0..36 {
        let err = RecordReader::new(&data[..cut], "x.tfr").err().unwrap();
        let msg = err.to_string();
        if cut == 0 {
            assert_eq!(
                msg,
                "x.tfr: offset 0: empty input, not a tapflow record file"
            );
        } else {
            assert!(
                msg.starts_with("x.tfr: offset 0: truncated file header"),
                "{msg}"
            );
        }
    }
}

fn flip(data: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut d = data.to_vec();
    d[at] ^= 1 << bit;
    d
}

#[test]
fn corrupt_middle_block_payload() {
    let (data, starts, recs) = write_file(10, 5, 40);
    let bad = 2;
    let (s, e) = (starts[bad], starts[bad + 1]);
    for at in [s + 24, s + 30, (s + e) / 2, e - 1] {
        let (got, warns, err) = read_all(&flip(&data, at, 3)).unwrap();
        assert!(err.is_none());
        let expect: Vec<FlowRecord> = recs[..80].iter().chain(&recs[120..]).cloned().collect();
        assert_recs(&got, &expect);
        assert_eq!(warns.len(), 1, "{warns:?}");
        assert!(
            warns[0].starts_with(&format!(
                "x.tfr: offset {s}: block payload checksum mismatch"
            )),
            "{warns:?}"
        );
        assert!(
            warns[0].ends_with(&format!(
                "skipped {} bytes to the next block at offset {e}",
                e - s
            )),
            "{warns:?}"
        );
    }
}

#[test]
fn corrupt_block_header() {
    let (data, starts, recs) = write_file(11, 5, 40);
    let (s, e) = (starts[1], starts[2]);
    for at in s..s + 24 {
        for bit in [0, 7] {
            let (got, warns, err) = read_all(&flip(&data, at, bit)).unwrap();
            assert!(err.is_none());
            let expect: Vec<FlowRecord> = recs[..40].iter().chain(&recs[80..]).cloned().collect();
            assert_recs(&got, &expect);
            assert_eq!(warns.len(), 1, "{warns:?}");
            assert!(
                warns[0].starts_with(&format!("x.tfr: offset {s}: ")),
                "{warns:?}"
            );
            assert!(
                warns[0].ends_with(&format!("next block at offset {e}")),
                "{warns:?}"
            );
        }
    }
}

#[test]
fn corrupt_last_block_is_skipped_to_the_end() {
    let (data, starts, recs) = write_file(12, 3, 10);
    let s = starts[2];
    let (got, warns, _) = read_all(&flip(&data, s + 40, 0)).unwrap();
    assert_recs(&got, &recs[..20]);
    assert_eq!(warns.len(), 1);
    assert!(
        warns[0].ends_with(&format!(
            "no further block found, skipped {} bytes to end of input",
            data.len() - s
        )),
        "{warns:?}"
    );
}

#[test]
fn garbage_between_blocks_is_skipped() {
    let (data, starts, recs) = write_file(13, 3, 10);
    let mut rng = Rng::new(13);
    let mut junk = rng.bytes(1000);
    // Make the garbage nasty: fake sync markers and a fake file magic without valid checksums.
    junk[100..104].copy_from_slice(&[0xF7, b'T', b'F', b'B']);
    junk[500..508].copy_from_slice(b"TAPFLOW\0");
    let mut d = data[..starts[1]].to_vec();
    d.extend_from_slice(&junk);
    d.extend_from_slice(&data[starts[1]..]);
    let (got, warns, err) = read_all(&d).unwrap();
    assert!(err.is_none());
    assert_recs(&got, &recs);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].starts_with(&format!("x.tfr: offset {}: ", starts[1])));
    assert!(warns[0].contains("skipped 1000 bytes"), "{warns:?}");

    // Trailing garbage shorter than a frame header.
    let mut d = data.clone();
    d.extend_from_slice(b"\n\n");
    let (got, warns, _) = read_all(&d).unwrap();
    assert_recs(&got, &recs);
    assert_eq!(
        warns,
        [format!(
            "x.tfr: offset {}: unrecognized data at end of input (2 bytes), ignored",
            data.len()
        )]
    );
}

#[test]
fn undecodable_record_in_valid_block_is_skipped() {
    let mut enc = Vec::new();
    encode_record(&full_record(), &mut enc);
    let good = enc.clone();
    enc.extend_from_slice(&[2, 0, 0]); // tag 0: bad record, sound length prefix
    enc.extend_from_slice(&good);
    let mut d = raw_header(1, 0, &[]);
    let b1 = d.len();
    d.extend_from_slice(&raw_block(&enc, 3));
    d.extend_from_slice(&raw_block(&good, 1));
    let (got, warns, err) = read_all(&d).unwrap();
    assert!(err.is_none());
    assert_eq!(got.len(), 3);
    assert_eq!(
        warns,
        [format!(
            "x.tfr: offset {b1}: record 1 of 3 in block undecodable (field tag 0, at payload \
             byte {}); record skipped",
            good.len() + 1
        )]
    );

    // A length prefix past the end of the block: the rest of the block goes.
    let mut enc = good.clone();
    enc.extend_from_slice(&[0xff, 0xff, 0x7f, 8, 1]);
    enc.extend_from_slice(&good);
    let mut d = raw_header(1, 0, &[]);
    d.extend_from_slice(&raw_block(&enc, 3));
    d.extend_from_slice(&raw_block(&good, 1));
    let (got, warns, _) = read_all(&d).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(warns.len(), 1);
    assert!(warns[0].ends_with("rest of block skipped"), "{warns:?}");

    // Fewer/more records than the frame says.
    let mut d = raw_header(1, 0, &[]);
    d.extend_from_slice(&raw_block(&[good.clone(), good.clone()].concat(), 1));
    d.extend_from_slice(&raw_block(&good, 2));
    let (got, warns, _) = read_all(&d).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert!(warns[0].contains(&format!(
        "block has {} bytes after its 1 records",
        good.len()
    )));
    assert!(warns[1].contains("record 1 of 2 in block undecodable"));
}

#[test]
fn reader_writer_and_errors_are_send() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync + std::error::Error + 'static>() {}
    send::<RecordReader<std::net::TcpStream>>();
    send::<RecordWriter<std::fs::File>>();
    send_sync::<RecordError>();
}

#[test]
fn empty_block_is_a_keepalive() {
    let mut enc = Vec::new();
    encode_record(&full_record(), &mut enc);
    let mut d = raw_header(1, 0, &[]);
    d.extend_from_slice(&raw_block(&[], 0));
    d.extend_from_slice(&raw_block(&enc, 1));
    d.extend_from_slice(&raw_block(&[], 0));
    let mut rd = RecordReader::new(&d[..], "x").unwrap();
    assert_eq!(rd.by_ref().count(), 1);
    assert_eq!(rd.blocks_read(), 3);
    assert!(rd.take_warnings().is_empty());
}

// ---------------------------------------------------------------------------------------
// Versions

#[test]
fn newer_major_is_refused() {
    let mut d = raw_header(2, 0, &[0; 20]);
    d.extend_from_slice(b"whatever a 2.0 file holds");
    let err = RecordReader::new(&d[..], "x.tfr").err().unwrap();
    assert!(matches!(
        err,
        RecordError::NewerVersion {
            major: 2,
            minor: 0,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "x.tfr: written by record format 2.0, this reader supports 1.x: upgrade tapflow"
    );
    // A corrupt header is not mistaken for a newer version.
    let mut d = raw_header(2, 0, &[]);
    d[20] ^= 1;
    let err = RecordReader::new(&d[..], "x.tfr").err().unwrap();
    assert!(
        err.to_string()
            .starts_with("x.tfr: offset 0: file header checksum mismatch"),
        "{err}"
    );
    // Major 0 never existed.
    let err = RecordReader::new(&raw_header(0, 9, &[])[..], "x.tfr")
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "x.tfr: offset 0: unsupported record format 0.9 (this reader supports 1.x)"
    );
}

#[test]
fn newer_minor_with_unknown_field_is_read() {
    let r = full_record();
    let mut enc = Vec::new();
    encode_record(&r, &mut enc);
    let mut body = body_of(&enc);
    varint(&mut body, (40 << 3) | 2);
    varint(&mut body, 3);
    body.extend_from_slice(b"new");
    varint(&mut body, 41 << 3);
    varint(&mut body, 12345);
    let rec = with_prefix(&body);
    // A 1.4 header with 12 more header bytes than 1.0 has.
    let mut d = raw_header(1, 4, &[0xEE; 12]);
    d.extend_from_slice(&raw_block(&[rec.clone(), rec].concat(), 2));
    let mut rd = RecordReader::new(&d[..], "new.tfr").unwrap();
    assert_eq!(rd.header().minor, 4);
    assert_eq!(rd.header().probe_id, 9);
    let got: Vec<FlowRecord> = rd.by_ref().map(|x| x.unwrap()).collect();
    assert_recs(&got, &[r.clone(), r]);
    assert!(rd.take_warnings().is_empty());
}

#[test]
fn not_a_record_file() {
    let err = RecordReader::new(
        &b"PK\x03\x04\x14\x00\x00\x00\x08\x00 zip zip zip"[..],
        "x.tfr",
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "x.tfr: offset 0: not a tapflow record file (magic 50 4b 03 04)"
    );
    let err = RecordReader::new(
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0][..],
        "x.tfr.gz",
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "x.tfr.gz: offset 0: not a tapflow record file (magic 1f 8b 08 00, looks like gzip: decompress it first)"
    );
    let err = RecordReader::new(&b"TAP"[..], "x").err().unwrap();
    assert_eq!(
        err.to_string(),
        "x: offset 0: truncated file header (3 bytes)"
    );
}

// ---------------------------------------------------------------------------------------
// Streams

#[test]
fn concatenated_files() {
    let (a, _, ra) = write_file(14, 3, 10);
    let mut rng = Rng::new(15);
    let mut w = RecordWriter::new(Vec::new(), &header(99), WriterOptions::default()).unwrap();
    let rb: Vec<FlowRecord> = (0..25).map(|i| small_record(&mut rng, 1000 + i)).collect();
    for r in &rb {
        w.write(r).unwrap();
    }
    let b = w.finish().unwrap();
    let mut cat = a.clone();
    cat.extend_from_slice(&b);
    cat.extend_from_slice(&a);
    let mut rd = RecordReader::new(&cat[..], "cat").unwrap();
    assert_eq!(rd.header().probe_id, 7);
    let mut got = Vec::new();
    for _ in 0..30 {
        got.push(rd.next_record().unwrap().unwrap());
    }
    got.push(rd.next_record().unwrap().unwrap());
    assert_eq!(rd.header().probe_id, 99);
    got.extend(rd.by_ref().map(|r| r.unwrap()));
    assert_eq!(rd.header().probe_id, 7);
    let expect: Vec<FlowRecord> = ra.iter().chain(&rb).chain(&ra).cloned().collect();
    assert_recs(&got, &expect);
    assert!(rd.take_warnings().is_empty());

    // A second section of a newer major stops the reader after the first section.
    let mut cat = a.clone();
    cat.extend_from_slice(&raw_header(3, 1, &[]));
    let (got, warns, err) = read_all(&cat).unwrap();
    assert_recs(&got, &ra);
    assert!(warns.is_empty());
    assert_eq!(
        err.unwrap().to_string(),
        "x.tfr: written by record format 3.1, this reader supports 1.x: upgrade tapflow"
    );

    // A truncated second header.
    let mut cat = a.clone();
    cat.extend_from_slice(&b[..30]);
    let (got, warns, _) = read_all(&cat).unwrap();
    assert_recs(&got, &ra);
    assert_eq!(
        warns,
        [format!(
            "x.tfr: offset {}: partial file header at end of input (30 bytes), ignored",
            a.len()
        )]
    );
}

/// Returns at most one byte per read, and `Interrupted` now and then.
struct Trickle<'a> {
    data: &'a [u8],
    calls: u64,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 5 == 4 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        if self.data.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.data[0];
        self.data = &self.data[1..];
        Ok(1)
    }
}

#[test]
fn one_byte_reads() {
    let (a, starts, recs) = write_file(16, 4, 30);
    let mut cat = a.clone();
    cat.extend_from_slice(&a[..starts[2] + 10]); // second section, cut in its 2nd block
    let (got, warns, err) = read_all_from(
        Trickle {
            data: &cat,
            calls: 0,
        },
        "slow",
    )
    .unwrap();
    assert!(err.is_none());
    let expect: Vec<FlowRecord> = recs.iter().chain(&recs[..60]).cloned().collect();
    assert_recs(&got, &expect);
    assert_eq!(
        warns,
        [format!(
            "slow: offset {}: partial block at end of input (10 bytes), ignored",
            a.len() + starts[2]
        )]
    );
}

/// Fails with `WouldBlock` every other call once the file header is through.
struct Flaky<'a> {
    data: &'a [u8],
    calls: u64,
    given: usize,
}

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 2 == 1 && self.given >= 36 {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "later"));
        }
        let n = buf.len().min(self.data.len()).min(7);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.given += n;
        Ok(n)
    }
}

#[test]
fn would_block_can_be_retried() {
    let (a, _, recs) = write_file(17, 3, 20);
    // (`new` itself cannot be retried: it needs the whole header.)
    let flaky = Flaky {
        data: &a,
        calls: 0,
        given: 0,
    };
    let mut rd = RecordReader::new(flaky, "sock").unwrap();
    let mut got = Vec::new();
    let mut blocked = 0;
    loop {
        match rd.next_record() {
            Ok(Some(r)) => got.push(r),
            Ok(None) => break,
            Err(RecordError::Io { err, .. }) if err.kind() == io::ErrorKind::WouldBlock => {
                blocked += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(blocked > 0);
    assert_recs(&got, &recs);
    assert!(rd.take_warnings().is_empty());
}

/// Fails hard after some bytes.
struct Broken<'a>(&'a [u8]);

impl Read for Broken<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by peer",
            ));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn io_error_ends_reading() {
    let (a, starts, recs) = write_file(18, 3, 20);
    let (got, warns, err) = read_all_from(Broken(&a[..starts[2] + 5]), "peer").unwrap();
    assert_recs(&got, &recs[..40]);
    assert!(warns.is_empty());
    assert_eq!(err.unwrap().to_string(), "peer: read error: reset by peer");
}

#[test]
fn over_tcp() {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let mut rng = Rng::new(19);
        let sock = TcpStream::connect(addr).unwrap();
        let opts = WriterOptions {
            block_records: 100,
            ..WriterOptions::default()
        };
        let mut recs = Vec::new();
        let mut w = RecordWriter::new(sock, &header(5), opts).unwrap();
        for i in 0..1050 {
            let r = small_record(&mut rng, i);
            w.write(&r).unwrap();
            recs.push(r);
            if i % 333 == 0 {
                w.flush_block().unwrap(); // "send what you have" on a quiet link
            }
        }
        // A second section on the same connection (e.g. the probe restarted its writer).
        let sock = w.finish().unwrap();
        let mut w = RecordWriter::new(sock, &header(6), opts).unwrap();
        let r = full_record();
        w.write(&r).unwrap();
        recs.push(r);
        w.finish().unwrap();
        recs
    });
    let (sock, _) = listener.accept().unwrap();
    let (got, warns, err) = read_all_from(sock, "tcp:peer").unwrap();
    let sent = sender.join().unwrap();
    assert!(err.is_none() && warns.is_empty(), "{err:?} {warns:?}");
    assert_eq!(got.len(), sent.len());
    assert_recs(&got, &sent);
}

// ---------------------------------------------------------------------------------------
// Damage fuzzing

#[test]
fn fuzz_truncation_and_bit_flips() {
    let (data, starts, recs) = write_file(20, 12, 25);
    let mut rng = Rng::new(21);
    for iter in 0..3000 {
        let mut d = data.clone();
        let mut damaged: Vec<usize> = Vec::new(); // flipped byte offsets (in `data` terms)
        let flips = match iter % 4 {
            0 => 0,
            _ => 1 + rng.below(3) as usize,
        };
        for _ in 0..flips {
            let at = rng.below(d.len() as u64) as usize;
            d[at] ^= 1 << rng.below(8);
            damaged.push(at);
        }
        let cut = if iter % 3 == 0 {
            d.len()
        } else {
            rng.below(d.len() as u64 + 1) as usize
        };
        d.truncate(cut);
        // Sometimes splice garbage in (offsets after it shift; only check block survival).
        let garbage_at = if iter % 5 == 0 && cut > 36 {
            let at = 36 + rng.below((cut - 36) as u64) as usize;
            let n = rng.below(200) as usize;
            let junk = rng.bytes(n);
            d.splice(at..at, junk);
            Some(at)
        } else {
            None
        };

        let result = read_all(&d);
        let header_ok = cut >= 36 && damaged.iter().all(|&a| a >= 36);
        let (got, _warns, err) = match result {
            Ok(x) => x,
            Err(e) => {
                assert!(!header_ok, "iter {iter}: header intact but {e}");
                continue;
            }
        };
        // Only intact data can come out: every record returned is one that was written.
        let mut last_seq = None;
        for r in &got {
            let orig = &recs[r.seq as usize];
            assert_eq!(r, orig, "iter {iter}");
            assert!(
                last_seq < Some(r.seq),
                "iter {iter}: out of order or duplicated"
            );
            last_seq = Some(r.seq);
        }
        // A newer-major error could only come from a damaged (yet checksum-valid) header.
        if let Some(e) = err {
            panic!("iter {iter}: unexpected error {e}");
        }
        // Every block untouched by damage is returned.
        for b in 0..starts.len() - 1 {
            let (s, e) = (starts[b], starts[b + 1]);
            let touched = e > cut
                || damaged.iter().any(|&a| a >= s && a < e)
                || garbage_at.is_some_and(|g| g > s && g < e);
            if !touched {
                for rec in &recs[b * 25..(b + 1) * 25] {
                    assert!(
                        got.binary_search_by_key(&rec.seq, |r| r.seq).is_ok(),
                        "iter {iter}: record {} of untouched block {b} lost",
                        rec.seq
                    );
                }
            }
        }
    }
}

#[test]
fn fuzz_random_input_never_panics() {
    let mut rng = Rng::new(22);
    let hdr = raw_header(1, 0, &[]);
    for i in 0..2000 {
        let n = rng.below(3000) as usize;
        let mut d = if i % 2 == 0 { hdr.clone() } else { Vec::new() };
        d.extend(rng.bytes(n));
        // Sprinkle sync markers so the frame parser gets exercised.
        for _ in 0..rng.below(5) {
            if d.len() > 4 {
                let at = rng.below(d.len() as u64 - 4) as usize;
                d[at..at + 4].copy_from_slice(&[0xF7, b'T', b'F', b'B']);
            }
        }
        if let Ok((got, _, err)) = read_all(&d) {
            assert!(got.is_empty());
            assert!(err.is_none());
        }
    }
}

#[test]
fn warnings_are_capped() {
    let mut enc = Vec::new();
    for _ in 0..1100 {
        enc.extend_from_slice(&[2, 0, 0]); // undecodable, skippable
    }
    let mut d = raw_header(1, 0, &[]);
    let off = d.len();
    d.extend_from_slice(&raw_block(&enc, 1100));
    let (got, warns, _) = read_all(&d).unwrap();
    assert!(got.is_empty());
    assert_eq!(warns.len(), 1001);
    assert_eq!(
        warns[1000],
        format!("x.tfr: offset {off}: 100 more warnings suppressed")
    );
}

#[test]
fn huge_records() {
    let big = FlowRecord {
        seq: 1,
        src_payload: vec![0x5a; 17 << 20],
        ..FlowRecord::default()
    };
    let opts = WriterOptions {
        block_bytes: usize::MAX, // capped at 32 MiB
        ..WriterOptions::default()
    };
    let mut w = RecordWriter::new(Vec::new(), &header(1), opts).unwrap();
    w.write(&big).unwrap();
    assert_eq!(w.bytes_written(), 36);
    // The second one does not fit the 32 MiB block: the first is written on its own.
    let big2 = FlowRecord { seq: 2, ..big };
    w.write(&big2).unwrap();
    assert!(w.bytes_written() > 36);
    // Over 32 MiB on its own: refused, the writer carries on.
    let huge = FlowRecord {
        seq: 3,
        dst_payload: vec![1; 33 << 20],
        ..FlowRecord::default()
    };
    let e = w.write(&huge).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    w.write(&full_record()).unwrap();
    assert_eq!(w.records_written(), 3);
    let d = w.finish().unwrap();
    let mut rd = RecordReader::new(&d[..], "big").unwrap();
    let seqs: Vec<u64> = rd.by_ref().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, [1, 2, full_record().seq]);
    assert_eq!(rd.blocks_read(), 2);
}

/// Found by `cargo fuzz run record`: a status record whose counters are all zero (an idle
/// worker's interval) lost its status part when re-encoded and came back as a flow record.
/// Status and merge-status parts are written even when empty.
#[test]
fn empty_status_and_merge_parts_survive_a_round_trip() {
    for rec in [
        FlowRecord {
            status: Some(Box::default()),
            ..Default::default()
        },
        FlowRecord {
            merge: Some(Box::default()),
            ..Default::default()
        },
    ] {
        assert!(rec.is_meta());
        let mut buf = Vec::new();
        encode_record(&rec, &mut buf);
        let (back, n) = decode_record(&buf).unwrap();
        assert_eq!(n, buf.len());
        assert!(back.is_meta(), "a status record came back as a flow record");
        assert_eq!(back, rec);
    }
    // The fuzzer's input itself: decode, encode, decode gives the same record.
    let crash: &[u8] = &[
        0x0a, 0xf2, 0x01, 0x07, 0x98, 0x96, 0xab, 0xfa, 0xf9, 0x39, 0x0c, 0xc0, 0x01, 0xb8, 0xb8,
        0xb8, 0xff, 0x39, 0x35, 0x6e, 0x88, 0xb8, 0x0b, 0x21, 0x3f, 0x3f, 0x00,
    ];
    let (rec, _) = decode_record(crash).unwrap();
    let mut buf = Vec::new();
    encode_record(&rec, &mut buf);
    assert_eq!(decode_record(&buf).unwrap().0, rec);
}
