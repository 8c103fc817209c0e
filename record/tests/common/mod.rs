//! Helpers shared by the codec tests: a deterministic PRNG, record generators, and
//! hand-made frames/headers for crafting inputs the writer would not produce.
#![allow(dead_code)]

use tapflow_record::*;

/// xorshift64* — deterministic, no extra crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn full_dir(k: u64) -> DirStats {
    DirStats {
        pkts: 1000 + k,
        bytes: 1_500_000 + k,
        ip_bytes: 1_400_000 + k,
        app_bytes: 1_300_000 + k,
        first_ns: 1_700_000_000_123_456_789 + k,
        last_ns: 1_700_000_060_987_654_321 + k,
        ttl_min: 1 + k as u8,
        ttl_max: 255,
        tos: 0xb8,
        tcp_flags: 0x1b,
        retrans: 7,
        out_of_order: 3,
        zero_win: 2,
        loss_pkts: 5,
        loss_bytes: u64::MAX - k,
        window: 65535 << 7,
        isn: u32::MAX - 1,
        first_seq: 0x8000_0001,
        last_seq: 0x1234_5678,
        last_ack: 42,
        ipt_n: 999,
        ipt_mean_ns: 1234.5678 + k as f64,
        ipt_std_ns: -0.0,
        frags: 9,
    }
}

/// A record with every field set to something other than its default.
pub fn full_record() -> FlowRecord {
    FlowRecord {
        probe_id: 0xdead_beef,
        seq: u64::MAX,
        cause: Cause::Evicted,
        observed: observed::SRC_TO_DST | observed::DST_TO_SRC,
        addr_kind: AddrKind::Ipv6,
        proto: 132,
        ethertype: 0x86dd,
        saddr: Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        daddr: Addr([0xff; 16]),
        sport: 65535,
        dport: 443,
        stime_ns: 1_700_000_000_000_000_000,
        ltime_ns: 1_700_000_061_000_000_000,
        state: FlowState::Rst,
        flags: u32::MAX,
        tcp_opts: 0x3f,
        synack_ns: 1_234_567,
        ackdat_ns: 89_012,
        smac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        dmac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
        vlan: [4094, 17],
        mpls: [0xfffff, 16],
        encap: Encap {
            kinds: encap::VLAN | encap::QINQ | encap::VXLAN | encap::TEB,
            tunnel_id: 0x00ff_ffff,
            outer_kind: AddrKind::Ipv4,
            outer_src: Addr::from_v4([10, 0, 0, 1]),
            outer_dst: Addr::from_v4([10, 0, 0, 254]),
        },
        src: full_dir(0),
        dst: full_dir(1),
        src_payload: b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n".to_vec(),
        dst_payload: (0..=255u8).collect(),
        status: None,
        hs: Handshake::default(),
        merge: None,
        ib: IbInfo {
            slid: 0xfffe,
            dlid: 1,
            sqp: 0xff_ffff,
            dqp: 0x12_3456,
            pkey: 0xffff,
            flags: ib_flags::GRH | ib_flags::SQP,
            opcodes: [1 | 1 << 17, 0, 0, 1 << 63],
            naks: u32::MAX,
            rnr_naks: 7,
        },
    }
}

/// A typical TCP status record of a busy link; `i` varies it like a real stream would.
pub fn tcp_record(rng: &mut Rng, i: u64) -> FlowRecord {
    let t0 = 1_760_000_000_000_000_000u64 + i * 50_000 + rng.below(1_000_000);
    let dur = rng.below(60_000_000_000);
    let spkts = 1 + rng.below(200);
    let dpkts = 1 + rng.below(300);
    let sbytes = spkts * (66 + rng.below(500));
    let dbytes = dpkts * (66 + rng.below(1400));
    let host =
        |rng: &mut Rng, net: u8| Addr::from_v4([10, net, rng.below(4) as u8, rng.below(250) as u8]);
    let dir = |rng: &mut Rng, pkts: u64, bytes: u64, ttl: u8| DirStats {
        pkts,
        bytes,
        ip_bytes: bytes - pkts * 14,
        app_bytes: bytes.saturating_sub(pkts * 66),
        first_ns: t0 + rng.below(1_000_000),
        last_ns: t0 + dur,
        ttl_min: ttl,
        ttl_max: ttl,
        tos: 0,
        tcp_flags: 0x18 | (rng.below(2) as u8 * 0x02),
        retrans: (rng.below(10) == 0) as u32,
        out_of_order: 0,
        zero_win: 0,
        loss_pkts: 0,
        loss_bytes: 0,
        window: 64240 + rng.below(1000) as u32,
        isn: rng.next() as u32,
        first_seq: rng.next() as u32,
        last_seq: rng.next() as u32,
        last_ack: rng.next() as u32,
        ipt_n: pkts as u32 - 1,
        ipt_mean_ns: dur as f64 / pkts as f64,
        ipt_std_ns: (rng.below(1 << 30) as f64) * 0.37,
        frags: 0,
    };
    let src = dir(rng, spkts, sbytes, 64);
    let dst = dir(rng, dpkts, dbytes, 57);
    FlowRecord {
        probe_id: 3,
        seq: 1_000_000 + i,
        cause: if rng.below(4) == 0 {
            Cause::Close
        } else {
            Cause::Status
        },
        observed: 3,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: host(rng, 1),
        daddr: host(rng, 2),
        sport: 32768 + rng.below(28000) as u16,
        dport: [443, 80, 22, 8443][rng.below(4) as usize],
        stime_ns: t0,
        ltime_ns: t0 + dur,
        state: FlowState::Con,
        flags: 0,
        tcp_opts: tcp_opts::MSS | tcp_opts::WSCALE | tcp_opts::SACK_OK | tcp_opts::TSTAMP,
        synack_ns: 200_000 + rng.below(5_000_000),
        ackdat_ns: 50_000 + rng.below(500_000),
        smac: [0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c],
        dmac: [0x00, 0x50, 0x56, 0x9a, 0x01, 0x02],
        vlan: [120, 0],
        mpls: [0, 0],
        encap: Encap::default(),
        src,
        dst,
        src_payload: Vec::new(),
        dst_payload: Vec::new(),
        status: None,
        hs: Handshake::default(),
        merge: None,
        ib: IbInfo::default(),
    }
}

/// A small varied record with a unique `seq` (for identifying what survived damage).
pub fn small_record(rng: &mut Rng, seq: u64) -> FlowRecord {
    let mut r = tcp_record(rng, seq);
    r.seq = seq;
    if seq % 7 == 3 {
        r.src_payload = rng.bytes((seq % 40) as usize);
    }
    r
}

pub fn header(probe_id: u32) -> FileHeader {
    FileHeader {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        probe_id,
        created_ns: 1_760_000_000_000_000_000 + probe_id as u64,
        flags: 0,
    }
}

/// A file of `blocks` blocks of `per_block` records (seq = 0, 1, 2 …), and the byte offset
/// where each block starts (plus the file length at the end).
pub fn write_file(
    seed: u64,
    blocks: usize,
    per_block: usize,
) -> (Vec<u8>, Vec<usize>, Vec<FlowRecord>) {
    let mut rng = Rng::new(seed);
    let opts = WriterOptions {
        block_records: per_block,
        ..WriterOptions::default()
    };
    let mut w = RecordWriter::new(Vec::new(), &header(7), opts).unwrap();
    let mut starts = vec![w.bytes_written() as usize];
    let mut recs = Vec::new();
    for b in 0..blocks {
        for i in 0..per_block {
            let r = small_record(&mut rng, (b * per_block + i) as u64);
            w.write(&r).unwrap();
            recs.push(r);
        }
        starts.push(w.bytes_written() as usize);
    }
    let out = w.finish().unwrap();
    assert_eq!(out.len(), *starts.last().unwrap());
    (out, starts, recs)
}

/// A file header with any version and `extra` bytes appended before the checksum.
pub fn raw_header(major: u16, minor: u16, extra: &[u8]) -> Vec<u8> {
    let len = 36 + extra.len();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(b"TAPFLOW\0");
    b.extend_from_slice(&major.to_le_bytes());
    b.extend_from_slice(&minor.to_le_bytes());
    b.extend_from_slice(&(len as u16).to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&0u32.to_le_bytes()); // flags
    b.extend_from_slice(&9u32.to_le_bytes()); // probe_id
    b.extend_from_slice(&123u64.to_le_bytes()); // created_ns
    b.extend_from_slice(extra);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A block frame around already-encoded records.
pub fn raw_block(encoded: &[u8], count: u32) -> Vec<u8> {
    let payload = if encoded.is_empty() {
        Vec::new()
    } else {
        zstd::bulk::compress(encoded, 3).unwrap()
    };
    let mut b = Vec::new();
    b.extend_from_slice(&[0xF7, b'T', b'F', b'B']);
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&payload);
    b
}

/// Records read, warnings, and the error that stopped reading (if any).
pub type ReadAll = (Vec<FlowRecord>, Vec<String>, Option<RecordError>);

/// Reads everything.
pub fn read_all(data: &[u8]) -> Result<ReadAll, RecordError> {
    read_all_from(data, "x.tfr")
}

pub fn read_all_from<R: std::io::Read>(r: R, source: &str) -> Result<ReadAll, RecordError> {
    let mut rd = RecordReader::new(r, source)?;
    let mut recs = Vec::new();
    let mut err = None;
    loop {
        match rd.next_record() {
            Ok(Some(r)) => recs.push(r),
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    // Finished readers stay finished.
    assert!(matches!(rd.next_record(), Ok(None)));
    Ok((recs, rd.take_warnings(), err))
}
