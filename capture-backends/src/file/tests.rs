//! Tests build pcap/pcapng byte buffers by hand, so every field is known exactly, and read them
//! through every path: in memory (the mmap path's logic), the streaming window with a tiny
//! window and a reader that hands out a few bytes at a time, real files, gzip and zstd.

use super::*;
use crate::LinkType;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------------------------
// Builders

fn put16(out: &mut Vec<u8>, big: bool, v: u16) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}
fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}
fn put64(out: &mut Vec<u8>, big: bool, v: u64) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

/// Deterministic packet payload.
fn payload(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7) as u8)
        .collect()
}

fn pcap_header(big: bool, nanos: bool, snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, big, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    put16(&mut out, big, 2);
    put16(&mut out, big, 4);
    put32(&mut out, big, 0);
    put32(&mut out, big, 0);
    put32(&mut out, big, snaplen);
    put32(&mut out, big, linktype);
    out
}

fn pcap_record(out: &mut Vec<u8>, big: bool, sec: u32, frac: u32, data: &[u8], wire: u32) {
    put32(out, big, sec);
    put32(out, big, frac);
    put32(out, big, data.len() as u32);
    put32(out, big, wire);
    out.extend_from_slice(data);
}

/// A pcap with `n` packets: packet i has payload(i, 40 + i % 50), wire = caplen + (i % 3),
/// ts = (1_600_000_000 + i) s + i * 10 fractional units.
fn pcap_file(big: bool, nanos: bool, n: u32) -> Vec<u8> {
    let mut out = pcap_header(big, nanos, 65535, 1);
    for i in 0..n {
        let data = payload(i, 40 + (i as usize % 50));
        pcap_record(
            &mut out,
            big,
            1_600_000_000 + i,
            i * 10,
            &data,
            data.len() as u32 + i % 3,
        );
    }
    out
}

/// pcapng writer.
struct Ng {
    big: bool,
    out: Vec<u8>,
}

impl Ng {
    fn new(big: bool) -> Ng {
        let mut ng = Ng {
            big,
            out: Vec::new(),
        };
        ng.shb(big, 1, 0);
        ng
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> usize {
        let start = self.out.len();
        let padded = body.len().next_multiple_of(4);
        let len = (12 + padded) as u32;
        let big = self.big;
        put32(&mut self.out, big, btype);
        put32(&mut self.out, big, len);
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len() + padded - body.len(), 0);
        put32(&mut self.out, big, len);
        start
    }

    fn shb(&mut self, big: bool, major: u16, minor: u16) -> usize {
        self.big = big;
        let mut b = Vec::new();
        put32(&mut b, big, 0x1A2B_3C4D);
        put16(&mut b, big, major);
        put16(&mut b, big, minor);
        put64(&mut b, big, u64::MAX);
        // shb_userappl option, then end of options.
        put16(&mut b, big, 4);
        put16(&mut b, big, 7);
        b.extend_from_slice(b"tapflow\0");
        put32(&mut b, big, 0);
        self.block(pcapng::SHB, &b)
    }

    fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> usize {
        let big = self.big;
        let mut b = Vec::new();
        put16(&mut b, big, link);
        put16(&mut b, big, 0);
        put32(&mut b, big, snaplen);
        // if_name first, to check we walk over options we do not use.
        let mut all = vec![(2u16, b"eth0".to_vec())];
        all.extend_from_slice(opts);
        for (code, val) in all {
            put16(&mut b, big, code);
            put16(&mut b, big, val.len() as u16);
            b.extend_from_slice(&val);
            b.resize(b.len().next_multiple_of(4), 0);
        }
        put32(&mut b, big, 0);
        self.block(1, &b)
    }

    fn epb(&mut self, iface: u32, ts: u64, data: &[u8], wire: u32) -> usize {
        let big = self.big;
        let mut b = Vec::new();
        put32(&mut b, big, iface);
        put32(&mut b, big, (ts >> 32) as u32);
        put32(&mut b, big, ts as u32);
        put32(&mut b, big, data.len() as u32);
        put32(&mut b, big, wire);
        b.extend_from_slice(data);
        b.resize(b.len().next_multiple_of(4), 0);
        // epb_flags option: inbound.
        put16(&mut b, big, 2);
        put16(&mut b, big, 4);
        put32(&mut b, big, 1);
        put32(&mut b, big, 0);
        self.block(6, &b)
    }

    fn opb(&mut self, iface: u16, ts: u64, data: &[u8], wire: u32) -> usize {
        let big = self.big;
        let mut b = Vec::new();
        put16(&mut b, big, iface);
        put16(&mut b, big, 0);
        put32(&mut b, big, (ts >> 32) as u32);
        put32(&mut b, big, ts as u32);
        put32(&mut b, big, data.len() as u32);
        put32(&mut b, big, wire);
        b.extend_from_slice(data);
        self.block(2, &b)
    }

    fn spb(&mut self, data: &[u8], wire: u32) -> usize {
        let mut b = Vec::new();
        put32(&mut b, self.big, wire);
        b.extend_from_slice(data);
        self.block(3, &b)
    }

    /// Name resolution, interface statistics and custom blocks: must all be skipped.
    fn noise(&mut self) {
        self.block(4, &[0, 0, 0, 0]);
        let mut isb = Vec::new();
        put32(&mut isb, self.big, 0);
        put64(&mut isb, self.big, 0);
        self.block(5, &isb);
        self.block(0x0000_0BAD, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        self.block(0x0000_000A, &[0; 16]);
    }
}

fn tsresol(v: u8) -> (u16, Vec<u8>) {
    (9, vec![v])
}
fn tsoffset(big: bool, s: i64) -> (u16, Vec<u8>) {
    let mut v = Vec::new();
    put64(&mut v, big, s as u64);
    (14, v)
}

// ---------------------------------------------------------------------------------------------
// Readers

/// Hands out 1..=7 bytes per read, like a slow pipe.
struct Chunky {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl Read for Chunky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step = self.step % 7 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pkt {
    data: Vec<u8>,
    wire_len: u32,
    ts_ns: u64,
    link: u16,
    iface: u16,
}

#[derive(Debug, PartialEq, Eq)]
struct Got {
    pkts: Vec<Pkt>,
    stats: CaptureStats,
    warnings: Vec<(u64, String)>,
}

fn drain_sizes(c: &mut dyn Capture) -> (Got, Vec<usize>) {
    let mut pkts = Vec::new();
    let mut sizes = Vec::new();
    while let Some(b) = c.next_batch().expect("next_batch") {
        assert!(b.len() <= BATCH_SIZE && !b.is_empty());
        sizes.push(b.len());
        for p in b.iter() {
            pkts.push(Pkt {
                data: p.data.to_vec(),
                wire_len: p.wire_len,
                ts_ns: p.ts_ns,
                link: p.link.0,
                iface: p.iface,
            });
        }
    }
    // Stays at the end.
    assert!(c.next_batch().expect("after end").is_none());
    let warnings = c
        .take_warnings()
        .into_iter()
        .map(|w| (w.offset, w.message))
        .collect();
    assert!(c.take_warnings().is_empty());
    let got = Got {
        pkts,
        stats: c.stats(),
        warnings,
    };
    (got, sizes)
}

fn drain(c: &mut dyn Capture) -> Got {
    drain_sizes(c).0
}

fn mem(bytes: &[u8]) -> Result<FileCapture, CaptureError> {
    FileCapture::new("mem", Source::Mem(bytes.to_vec()), false)
}

fn chunky(bytes: &[u8], window: usize) -> Result<FileCapture, CaptureError> {
    let r = Chunky {
        data: bytes.to_vec(),
        pos: 0,
        step: 0,
    };
    open_stream("mem", Box::new(r), None, window)
}

/// Reads `bytes` in memory, through a tiny streaming window fed a few bytes at a time and
/// through the default window; all three must agree exactly.
fn read_all(bytes: &[u8]) -> Got {
    let a = drain(&mut mem(bytes).expect("open mem"));
    let b = drain(&mut chunky(bytes, 64).expect("open chunky"));
    assert_eq!(a, b, "in-memory and small-window streaming differ");
    let c = drain(
        &mut *open_reader("mem", Box::new(Cursor::new(bytes.to_vec()))).expect("open reader"),
    );
    assert_eq!(a, c, "in-memory and streaming differ");
    a
}

fn open_err(bytes: &[u8]) -> String {
    let a = match mem(bytes) {
        Ok(_) => panic!("open should fail"),
        Err(e) => e.to_string(),
    };
    let b = match chunky(bytes, 64) {
        Ok(_) => panic!("open should fail"),
        Err(e) => e.to_string(),
    };
    assert_eq!(a, b);
    a
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A temp file removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str, bytes: &[u8]) -> Tmp {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "tapflow-capture-test-{}-{n}-{tag}",
            std::process::id()
        ));
        std::fs::write(&p, bytes).expect("write temp file");
        Tmp(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn zstd_bytes(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

// ---------------------------------------------------------------------------------------------
// pcap

#[test]
fn pcap_micro_and_nano_both_byte_orders() {
    for big in [false, true] {
        for nanos in [false, true] {
            let got = read_all(&pcap_file(big, nanos, 5));
            assert_eq!(got.pkts.len(), 5);
            assert!(got.warnings.is_empty(), "{:?}", got.warnings);
            for (i, p) in got.pkts.iter().enumerate() {
                let i = i as u32;
                let frac_ns = if nanos {
                    i as u64 * 10
                } else {
                    i as u64 * 10_000
                };
                assert_eq!(
                    p.ts_ns,
                    (1_600_000_000 + i as u64) * 1_000_000_000 + frac_ns
                );
                assert_eq!(p.data, payload(i, 40 + i as usize % 50));
                assert_eq!(p.wire_len, p.data.len() as u32 + i % 3);
                assert_eq!(p.link, 1);
                assert_eq!(p.iface, 0);
            }
            let wire: u64 = got.pkts.iter().map(|p| p.wire_len as u64).sum();
            assert_eq!(
                got.stats,
                CaptureStats {
                    packets: 5,
                    wire_bytes: wire,
                    snaplen_truncated: 3,
                    bad_records: 0,
                    drops: 0
                }
            );
        }
    }
}

#[test]
fn pcap_exact_timestamps() {
    let mut f = pcap_header(false, false, 65535, 1);
    pcap_record(&mut f, false, 1_700_000_000, 999_999, b"abcd", 4);
    let got = read_all(&f);
    assert_eq!(got.pkts[0].ts_ns, 1_700_000_000_999_999_000);
    let mut f = pcap_header(true, true, 65535, 1);
    pcap_record(&mut f, true, 1_700_000_000, 999_999_999, b"abcd", 4);
    let got = read_all(&f);
    assert_eq!(got.pkts[0].ts_ns, 1_700_000_000_999_999_999);
}

#[test]
fn pcap_header_only_is_empty_not_an_error() {
    for big in [false, true] {
        let got = read_all(&pcap_header(big, false, 65535, 1));
        assert!(got.pkts.is_empty());
        assert!(got.warnings.is_empty());
        assert_eq!(got.stats, CaptureStats::default());
    }
}

#[test]
fn pcap_linktype_fcs_bits_are_masked() {
    // FCS present (bit 28) with a 4-byte FCS length (bits 29-31 = 2) over LINKTYPE_LINUX_SLL.
    let mut f = pcap_header(false, false, 65535, 0x5000_0000 | 113);
    pcap_record(&mut f, false, 1, 0, b"xyz", 3);
    let got = read_all(&f);
    assert_eq!(got.pkts[0].link, LinkType::LINUX_SLL.0);
}

#[test]
fn pcap_cut_short_last_packet() {
    let full = pcap_file(false, false, 3);
    // Packet 2 (index 2) has 42 bytes; cut 10 of them.
    let f = &full[..full.len() - 10];
    let got = read_all(f);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.stats.packets, 2);
    let off = 24 + (16 + 40) + (16 + 41);
    assert_eq!(
        got.warnings,
        vec![(
            off as u64,
            format!(
                "packet record 3 at offset {off} claims caplen 42 but only 32 bytes remain; \
                 stopping"
            )
        )]
    );
    // Cut inside the record header.
    let f = &full[..off + 5];
    let got = read_all(f);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(got.warnings[0].1.contains("5 of 16 record header bytes"));
}

#[test]
fn pcap_absurd_caplen_stops() {
    let mut f = pcap_file(false, false, 2);
    let off = f.len();
    pcap_record(&mut f, false, 1, 0, b"", 60);
    f[off + 8..off + 12].copy_from_slice(&300_000u32.to_le_bytes());
    f.extend_from_slice(&[0; 400_000]);
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings.len(), 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(got.warnings[0]
        .1
        .contains("caplen 300000, above the limit 262144"));
}

#[test]
fn pcap_large_snaplen_allows_large_records() {
    // A 1 MiB snaplen (e.g. loopback with TSO) permits a 500 KiB record; the streaming window
    // (64 bytes in `read_all`) must grow to hold it.
    let mut f = pcap_header(false, false, 1 << 20, 1);
    let big = payload(9, 500_000);
    pcap_record(&mut f, false, 5, 6, &big, 500_000);
    pcap_record(&mut f, false, 5, 7, b"tail", 4);
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.pkts[0].data, big);
    assert_eq!(got.pkts[1].data, b"tail");
}

#[test]
fn pcap_caplen_above_wire_len_warns_once() {
    let mut f = pcap_header(false, false, 65535, 1);
    pcap_record(&mut f, false, 1, 0, b"12345678", 4);
    pcap_record(&mut f, false, 1, 0, b"12345678", 2);
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 2);
    assert!(got.pkts.iter().all(|p| p.wire_len == 8));
    assert_eq!(got.warnings.len(), 1);
    assert_eq!(got.warnings[0].0, 24);
    assert_eq!(got.stats.snaplen_truncated, 0);
    assert_eq!(got.stats.wire_bytes, 16);
}

#[test]
fn pcap_bad_version_is_refused() {
    let mut f = pcap_file(false, false, 1);
    f[4] = 3;
    let e = open_err(&f);
    assert!(e.contains("unsupported pcap version 3.4"), "{e}");
    let e = open_err(&f[..10]);
    assert!(e.contains("truncated pcap file header: 10 of 24"), "{e}");
}

#[test]
fn batches_are_full_then_remainder() {
    let f = pcap_file(false, false, 1000);
    let (got, sizes) = drain_sizes(&mut mem(&f).unwrap());
    assert_eq!(sizes, vec![256, 256, 256, 232]);
    assert_eq!(got.pkts.len(), 1000);
    // A small window ends batches early but loses nothing.
    let (got2, sizes2) = drain_sizes(&mut chunky(&f, 1000).unwrap());
    assert!(sizes2.len() > 4);
    assert_eq!(got, got2);
}

// ---------------------------------------------------------------------------------------------
// pcapng

#[test]
fn pcapng_interfaces_resolutions_and_block_kinds() {
    for big in [false, true] {
        let mut ng = Ng::new(big);
        ng.noise();
        // 0: Ethernet, default µs resolution.
        ng.idb(1, 0, &[]);
        // 1: raw IP, ns.
        ng.idb(101, 65535, &[tsresol(9)]);
        // 2: Linux SLL, 2^-20 s, with a 100 s offset.
        ng.idb(113, 65535, &[tsresol(0x80 | 20), tsoffset(big, 100)]);
        // 3: NULL, ms, negative offset that would go below 0: clamps.
        ng.idb(0, 65535, &[tsresol(3), tsoffset(big, -10)]);
        ng.epb(0, 1_600_000_000_123_456, &payload(0, 60), 60);
        ng.noise();
        ng.epb(1, 1_600_000_000_987_654_321, &payload(1, 61), 100);
        ng.epb(2, (1_600_000_000u64 << 20) | (1 << 19), &payload(2, 62), 62);
        ng.epb(3, 5_000, &payload(3, 63), 63);
        ng.spb(&payload(4, 64), 64);
        ng.opb(1, 42, &payload(5, 65), 70);
        let got = read_all(&ng.out);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let want = [
            (60, 60, 1_600_000_000_123_456_000, 1, 0),
            (61, 100, 1_600_000_000_987_654_321, 101, 1),
            (62, 62, 1_600_000_100_500_000_000, 113, 2),
            (63, 63, 0, 0, 3),
            // SPB: interface 0, previous packet's timestamp.
            (64, 64, 0, 1, 0),
            (65, 70, 42, 101, 1),
        ];
        assert_eq!(got.pkts.len(), want.len());
        for (i, (p, w)) in got.pkts.iter().zip(want).enumerate() {
            assert_eq!(p.data, payload(i as u32, w.0), "packet {i}");
            assert_eq!((p.wire_len, p.ts_ns, p.link, p.iface), (w.1, w.2, w.3, w.4));
        }
        assert_eq!(got.stats.packets, 6);
        assert_eq!(got.stats.snaplen_truncated, 2);
        assert_eq!(got.stats.wire_bytes, 60 + 100 + 62 + 63 + 64 + 70);
    }
}

#[test]
fn pcapng_timestamp_resolution_edge_cases() {
    let iface = |resol, offset_s| pcapng_iface_for_test(resol, offset_s);
    assert_eq!(iface(9, 0).ts_ns(u64::MAX), u64::MAX);
    // 10^-6 of u64::MAX s in ns overflows u64: clamps instead of wrapping.
    assert_eq!(iface(6, 0).ts_ns(u64::MAX), u64::MAX);
    assert_eq!(iface(12, 0).ts_ns(5_000_000), 5_000);
    assert_eq!(iface(127, 0).ts_ns(u64::MAX), 0);
    assert_eq!(iface(0x80 | 127, 0).ts_ns(u64::MAX), 0);
    assert_eq!(iface(0x80, 0).ts_ns(3), 3_000_000_000);
    assert_eq!(iface(0, i64::MAX).ts_ns(1), u64::MAX);
    assert_eq!(iface(0, i64::MIN).ts_ns(1), 0);
    assert_eq!(iface(0, i64::MIN).ts_ns(u64::MAX), u64::MAX);
}

/// Builds an interface through the IDB parser, so the option decoding is what is tested.
fn pcapng_iface_for_test(resol: u8, offset_s: i64) -> TestIface {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[tsresol(resol), tsoffset(false, offset_s)]);
    TestIface(ng.out)
}

struct TestIface(Vec<u8>);

impl TestIface {
    fn ts_ns(&self, units: u64) -> u64 {
        let mut ng = Ng {
            big: false,
            out: self.0.clone(),
        };
        ng.epb(0, units, b"x", 1);
        let got = read_all(&ng.out);
        assert_eq!(got.pkts.len(), 1);
        got.pkts[0].ts_ns
    }
}

#[test]
fn pcapng_second_section_has_own_byte_order_and_interfaces() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    ng.idb(101, 0, &[]);
    ng.epb(1, 1, b"first", 5);
    ng.shb(true, 1, 0);
    ng.idb(113, 0, &[tsresol(9)]);
    ng.epb(0, 7, b"second", 6);
    // Interface 1 existed only in the first section.
    let off = ng.epb(1, 8, b"orphan", 6);
    ng.epb(0, 9, b"third", 5);
    let got = read_all(&ng.out);
    let summary: Vec<_> = got
        .pkts
        .iter()
        .map(|p| (p.data.clone(), p.link, p.iface, p.ts_ns))
        .collect();
    assert_eq!(
        summary,
        vec![
            (b"first".to_vec(), 101, 1, 1000),
            (b"second".to_vec(), 113, 0, 7),
            (b"third".to_vec(), 113, 0, 9),
        ]
    );
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings.len(), 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(
        got.warnings[0].1.contains("interface 1"),
        "{:?}",
        got.warnings
    );
}

#[test]
fn pcapng_unsupported_version_is_refused() {
    let mut ng = Ng::new(false);
    ng.out.clear();
    ng.shb(false, 0, 1);
    ng.idb(1, 0, &[]);
    let e = open_err(&ng.out);
    assert!(
        e.contains("unsupported pcapng version 0.1 in section header at offset 0"),
        "{e}"
    );
    // Big-endian too.
    let mut ng = Ng::new(true);
    ng.out.clear();
    ng.shb(true, 2, 0);
    let e = open_err(&ng.out);
    assert!(e.contains("unsupported pcapng version 2.0"), "{e}");
    // A later section with a bad version ends the file, keeping what came before.
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, b"kept", 4);
    let off = ng.shb(false, 3, 0);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, b"lost", 4);
    let got = read_all(&ng.out);
    assert_eq!(got.pkts.len(), 1);
    assert_eq!(got.warnings.len(), 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(got.warnings[0].1.contains("unsupported pcapng version 3.0"));
}

#[test]
fn pcapng_corrupt_block_length_stops_and_keeps_earlier_packets() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, b"one", 3);
    let off = ng.epb(0, 2, b"two", 3);
    ng.epb(0, 3, b"three", 5);
    // Leading length not a multiple of 4.
    let mut f = ng.out.clone();
    f[off + 4] = 13;
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 1);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings.len(), 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(got.warnings[0].1.contains("invalid total length 13"));
    // Trailing length differs from the leading one.
    let mut f = ng.out.clone();
    let blen = u32::from_le_bytes(f[off + 4..off + 8].try_into().unwrap()) as usize;
    f[off + blen - 4] ^= 4;
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 1);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(got.warnings[0].1.contains("does not match"));
    // A length running past the end of the file.
    let mut f = ng.out.clone();
    f[off + 5] = 0x10;
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 1);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings[0].0, off as u64);
    assert!(
        got.warnings[0].1.contains("bytes remain"),
        "{:?}",
        got.warnings
    );
}

#[test]
fn pcapng_truncated_last_block() {
    let mut ng = Ng::new(true);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, b"one", 3);
    let off = ng.epb(0, 2, b"two", 3);
    for cut in [3, 10, 20, 30] {
        let f = &ng.out[..off + cut];
        let got = read_all(f);
        assert_eq!(got.pkts.len(), 1, "cut {cut}");
        // Under 4 bytes the block type is unknown: a warning, but not a lost packet.
        assert_eq!(got.stats.bad_records, u64::from(cut >= 4), "cut {cut}");
        assert_eq!(got.warnings.len(), 1);
        assert_eq!(got.warnings[0].0, off as u64);
    }
}

#[test]
fn pcapng_epb_caplen_beyond_block_is_skipped() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    let off = ng.epb(0, 1, b"abcd", 4);
    ng.epb(0, 2, b"next", 4);
    // caplen field of the first EPB: 4 -> 200.
    ng.out[off + 8 + 12] = 200;
    let got = read_all(&ng.out);
    assert_eq!(got.pkts.len(), 1);
    assert_eq!(got.pkts[0].data, b"next");
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings[0].0, off as u64);
}

#[test]
fn pcapng_spb_snaplen_and_missing_interface() {
    let mut ng = Ng::new(false);
    let off = ng.spb(b"no interface yet", 16);
    ng.idb(1, 8, &[]);
    ng.spb(b"0123456789abcdef", 100);
    let got = read_all(&ng.out);
    assert_eq!(got.pkts.len(), 1);
    // caplen = min(wire 100, snaplen 8, room in block).
    assert_eq!(got.pkts[0].data, b"01234567");
    assert_eq!(got.pkts[0].wire_len, 100);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(got.warnings[0].0, off as u64);
}

#[test]
fn pcapng_large_packet_grows_window() {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[]);
    let big = payload(3, 300_000);
    ng.epb(0, 1, &big, 300_000);
    ng.epb(0, 2, b"small", 5);
    let got = read_all(&ng.out);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.pkts[0].data, big);
}

// ---------------------------------------------------------------------------------------------
// Sniffing, files, compression, progress

#[test]
fn empty_and_unknown_inputs_are_clear_errors() {
    let t = Tmp::new("empty.pcap", b"");
    let e = open(t.path()).err().expect("must fail").to_string();
    assert!(e.contains(t.path()) && e.contains("empty file"), "{e}");
    let t = Tmp::new("junk.pcap", b"\x00\x11\x22\x33\x44");
    let e = open(t.path()).err().expect("must fail").to_string();
    assert!(
        e.contains(t.path()) && e.contains("first bytes are 00 11 22 33"),
        "{e}"
    );
    let e = open_reader("pipe", Box::new(Cursor::new(Vec::new())))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.starts_with("pipe:") && e.contains("empty input"), "{e}");
    let e = open_reader("pipe", Box::new(Cursor::new(b"GET / HTTP/1.1".to_vec())))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("47 45 54 20"), "{e}");
    let e = open_reader("z", Box::new(Cursor::new(gzip(b"hello world"))))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("after gzip decompression"), "{e}");
    let e = open_reader("z", Box::new(Cursor::new(zstd_bytes(b""))))
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("empty input after zstd decompression"), "{e}");
    let e = open("/nonexistent/tapflow.pcap").err().expect("must fail");
    assert!(matches!(e, CaptureError::Io { .. }));
}

fn sample_pcapng() -> Vec<u8> {
    let mut ng = Ng::new(false);
    ng.idb(1, 0, &[tsresol(9)]);
    ng.idb(101, 0, &[]);
    for i in 0..600u32 {
        ng.epb(
            i % 2,
            1_000 + u64::from(i),
            &payload(i, 30 + i as usize % 100),
            200,
        );
    }
    ng.out
}

#[test]
fn files_plain_gzip_zstd_give_identical_packets() {
    for (tag, plain) in [
        ("pcap", pcap_file(true, true, 700)),
        ("pcapng", sample_pcapng()),
    ] {
        let want = read_all(&plain);
        assert!(!want.pkts.is_empty());
        // Two gzip members, split in the middle of a record.
        let mut gz = gzip(&plain[..plain.len() / 2 + 3]);
        gz.extend_from_slice(&gzip(&plain[plain.len() / 2 + 3..]));
        let zs = zstd_bytes(&plain);
        for (ext, bytes) in [("", &plain), (".gz", &gz), (".zst", &zs)] {
            let t = Tmp::new(&format!("x.{tag}{ext}"), bytes);
            let mut c = open(t.path()).expect("open");
            assert_eq!(c.source_name(), t.path());
            assert_eq!(c.progress().1, Some(bytes.len() as u64));
            let got = drain(&mut *c);
            assert_eq!(got, want, "{tag}{ext}");
            assert_eq!(c.progress(), (bytes.len() as u64, Some(bytes.len() as u64)));
            // The same bytes from a reader (stdin-like): no size known.
            let mut c = open_reader("stdin", Box::new(Cursor::new(bytes.clone()))).unwrap();
            assert_eq!(drain(&mut *c), want, "reader {tag}{ext}");
            assert_eq!(c.progress(), (bytes.len() as u64, None));
        }
    }
}

#[test]
fn damaged_compressed_tail_keeps_earlier_packets() {
    let plain = pcap_file(false, false, 2000);
    let gz = gzip(&plain);
    let cut = &gz[..gz.len() / 2];
    let mut c = open_reader("cut.gz", Box::new(Cursor::new(cut.to_vec()))).unwrap();
    let got = drain(&mut *c);
    assert!(
        got.pkts.len() > 500 && got.pkts.len() < 2000,
        "{}",
        got.pkts.len()
    );
    assert!(!got.warnings.is_empty());
    eprintln!("cut gzip: {:?}", got.warnings);
    let zs = zstd_bytes(&plain);
    let mut bad = zs.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad[mid + 1] ^= 0x55;
    let mut c = open_reader("bad.zst", Box::new(Cursor::new(bad))).unwrap();
    // Must end cleanly (possibly with fewer packets), never panic or hang.
    let got = drain(&mut *c);
    assert!(got.pkts.len() <= 2000);
}

#[test]
fn progress_of_mapped_file() {
    let f = pcap_file(false, false, 300);
    let t = Tmp::new("p.pcap", &f);
    let mut c = open(t.path()).unwrap();
    assert_eq!(c.progress(), (24, Some(f.len() as u64)));
    let first = c.next_batch().unwrap().unwrap().len();
    assert_eq!(first, 256);
    let (done, total) = c.progress();
    assert!(done > 24 && done < f.len() as u64);
    assert_eq!(total, Some(f.len() as u64));
    while c.next_batch().unwrap().is_some() {}
    assert_eq!(c.progress().0, f.len() as u64);
}

#[test]
fn mapped_batches_point_into_the_mapping() {
    // Zero copy: consecutive batches share one backing slice (the mapping).
    let f = pcap_file(false, false, 600);
    let t = Tmp::new("z.pcap", &f);
    let mut c = open(t.path()).unwrap();
    let b = c.next_batch().unwrap().unwrap();
    let (p1, l1) = (b.data.as_ptr(), b.data.len());
    assert_eq!(l1, f.len());
    assert_eq!(b.descs[0].offset, 24 + 16);
    let b = c.next_batch().unwrap().unwrap();
    assert_eq!(b.data.as_ptr(), p1);
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// xorshift64*: deterministic, no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Reads damaged input every way; both paths must agree and never panic.
fn read_damaged(bytes: &[u8]) {
    let a = mem(bytes).map(|mut c| drain(&mut c));
    let b = chunky(bytes, 64).map(|mut c| drain(&mut c));
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            let s = &a.stats;
            assert_eq!(s.packets as usize, a.pkts.len());
            assert!(s.bad_records == 0 || !a.warnings.is_empty());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("paths disagree: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
}

#[test]
fn fuzz_truncations_and_bit_flips_never_panic() {
    let mut ng = Ng::new(true);
    ng.idb(1, 0, &[tsresol(0x80 | 20), tsoffset(true, -5)]);
    ng.idb(113, 64, &[tsresol(9)]);
    ng.noise();
    for i in 0..20u32 {
        ng.epb(i % 3, u64::from(i) << 30, &payload(i, 20 + i as usize), 90);
        if i % 5 == 0 {
            ng.spb(&payload(i, 33), 70);
            ng.opb(1, 5, &payload(i, 11), 11);
        }
    }
    ng.shb(false, 1, 0);
    ng.idb(101, 0, &[]);
    ng.epb(0, 1, b"section two", 11);
    let inputs = [
        pcap_file(false, false, 20),
        pcap_file(true, true, 20),
        ng.out,
        sample_pcapng(),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for base in &inputs {
        for cut in 0..base.len().min(600) {
            read_damaged(&base[..cut]);
        }
        for _ in 0..1500 {
            let mut f = base.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            if rng.below(3) == 0 {
                // Whole random bytes too, e.g. lengths.
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
            if rng.below(2) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            read_damaged(&f);
        }
    }
}

#[test]
fn fuzz_compressed_never_panics() {
    let plain = sample_pcapng();
    let mut rng = Rng(12345);
    for comp in [gzip(&plain), zstd_bytes(&plain)] {
        for _ in 0..150 {
            let mut f = comp.clone();
            let i = rng.below(f.len());
            f[i] ^= 1 << rng.below(8);
            if rng.below(2) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            if let Ok(mut c) = open_reader("fz", Box::new(Cursor::new(f))) {
                let mut n = 0;
                while let Ok(Some(b)) = c.next_batch() {
                    n += b.iter().count();
                }
                assert!(n <= 600);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real captures

const CORPUS: &str = "/work/shared/corpus";

#[test]
fn corpus_packet_counts_match_manifest() {
    let dir = Path::new(CORPUS);
    let Ok(manifest) = std::fs::read_to_string(dir.join("manifest.tsv")) else {
        eprintln!("!!!!! {CORPUS}/manifest.tsv not found: SKIPPING the corpus test !!!!!");
        return;
    };
    let oracle = std::fs::read_to_string(dir.join("oracle.tsv")).unwrap_or_default();
    let oracle_bytes = |file: &str| -> Option<u64> {
        oracle
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|c| c.first() == Some(&file))
            .and_then(|c| c.get(2)?.parse().ok())
    };
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (c_file, c_format, c_packets) = (col("file"), col("format"), col("packets"));
    let mut checked = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let file = cols[c_file];
        let path = dir.join(file);
        let path = path.to_str().unwrap();
        let want: u64 = cols[c_packets].parse().expect("packets column");
        if cols[c_format].contains("unreadable") {
            let e = open(path).err().expect("unreadable file must fail to open");
            let msg = e.to_string();
            assert!(msg.contains("version"), "{file}: {msg}");
            eprintln!("{file}: refused as expected: {msg}");
            checked += 1;
            continue;
        }
        let mut c = open(path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = drain(&mut *c);
        let s = &got.stats;
        assert_eq!(
            s.packets + s.bad_records,
            want,
            "{file}: {s:?} {:?}",
            got.warnings
        );
        assert_eq!(
            s.bad_records as usize,
            got.warnings.len().min(s.bad_records as usize)
        );
        if s.bad_records == 0 {
            assert!(got.warnings.is_empty(), "{file}: {:?}", got.warnings);
            if let Some(bytes) = oracle_bytes(file) {
                assert_eq!(s.wire_bytes, bytes, "{file}: wire bytes vs tshark");
            }
        } else {
            eprintln!("{file}: {s:?} warnings {:?}", got.warnings);
        }
        if file == "ndpi_fuzz-2021-10-13.pcap" {
            assert_eq!((s.packets, s.bad_records), (0, 1));
            assert_eq!(got.warnings[0].0, 24);
        }
        // Every other path must see exactly the same thing.
        let raw = std::fs::read(path).unwrap();
        assert_eq!(
            drain(&mut chunky(&raw, 4096).unwrap()),
            got,
            "{file} streamed"
        );
        let mut gz = open_reader(file, Box::new(Cursor::new(gzip(&raw)))).unwrap();
        let mut g = drain(&mut *gz);
        g.warnings.iter_mut().for_each(|w| w.1.clear());
        let mut plain = got;
        plain.warnings.iter_mut().for_each(|w| w.1.clear());
        assert_eq!(g, plain, "{file} gzip");
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} corpus files checked");
}

// ---------------------------------------------------------------------------------------------
// ERF

/// An ERF record (Ethernet types get their 2-byte pad), timestamp `sec` + half a second.
fn erf_rec(ty: u8, lctr: u16, exts: usize, sec: u32, p: &[u8], wlen: u16) -> Vec<u8> {
    let pad = if ty == 2 { 2 } else { 0 };
    let rlen = 16 + exts * 8 + pad + p.len();
    let mut v = Vec::new();
    v.extend_from_slice(&((u64::from(sec) << 32) | 0x8000_0000).to_le_bytes());
    v.push(ty | if exts > 0 { 0x80 } else { 0 });
    v.push(0x04 | (sec & 1) as u8);
    v.extend_from_slice(&(rlen as u16).to_be_bytes());
    v.extend_from_slice(&lctr.to_be_bytes());
    v.extend_from_slice(&wlen.to_be_bytes());
    for i in 0..exts {
        v.extend_from_slice(&[if i + 1 < exts { 0x84 } else { 0x04 }, 0, 0, 0, 0, 0, 0, 1]);
    }
    v.extend(std::iter::repeat_n(0, pad));
    v.extend_from_slice(p);
    v
}

/// `n` records cycling through Ethernet (with FCS), IPv4, InfiniBand, a pad record.
fn erf_file(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let sec = 1_700_000_000 + i;
        let p = payload(i, 60 + (i as usize % 40));
        match i % 4 {
            0 => out.extend(erf_rec(
                2,
                (i % 3) as u16,
                (i % 3) as usize,
                sec,
                &p,
                p.len() as u16,
            )),
            1 => out.extend(erf_rec(22, 0, 0, sec, &p, p.len() as u16)),
            2 => out.extend(erf_rec(21, 0, 1, sec, &p, p.len() as u16 + 8)),
            _ => out.extend(erf_rec(48, 0, 0, 0, &[0; 8], 0)),
        }
    }
    out
}

#[test]
fn erf_records_through_every_path() {
    let f = erf_file(403);
    let got = read_all(&f);
    // Pad records are not packets.
    assert_eq!(got.pkts.len(), 303);
    assert!(got.warnings.is_empty(), "{:?}", got.warnings);
    let eth = &got.pkts[0];
    assert_eq!(eth.link, 1);
    assert_eq!(eth.wire_len, 56, "FCS left out");
    assert_eq!(eth.data.len(), 56);
    assert_eq!(eth.ts_ns, 1_700_000_000_500_000_000);
    assert_eq!(eth.data[..], payload(0, 60)[..56]);
    let ib = &got.pkts[2];
    assert_eq!((ib.link, ib.wire_len, ib.data.len()), (247, 70, 62));
    assert_eq!(ib.iface, 0);
    assert_eq!(got.pkts[1].link, 228);
    assert_eq!(got.pkts[1].iface, 1);
    assert_eq!(
        got.stats.snaplen_truncated, 101,
        "IB records hold 8 bytes less than wlen"
    );
    // lctr of the Ethernet records (i % 3 for i = 0, 4, 8 …) feeds the drop count.
    let lost: u64 = (0..403u64).filter(|i| i % 4 == 0).map(|i| i % 3).sum();
    assert_eq!(got.stats.drops, lost);
    // A file named .erf, and gzip of it.
    let t = Tmp::new("x.erf", &f);
    assert_eq!(drain(&mut *open(t.path()).unwrap()), got);
    let t = Tmp::new("x.erf.gz", &gzip(&f));
    let z = drain(&mut *open(t.path()).unwrap());
    assert_eq!(z.pkts, got.pkts);
}

#[test]
fn erf_damage_is_reported_with_offsets_and_good_records_kept() {
    let good = erf_file(8);
    let recs: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        let mut p = 0;
        while p < good.len() {
            let rlen = u16::from_be_bytes([good[p + 10], good[p + 11]]) as usize;
            v.push(good[p..p + rlen].to_vec());
            p += rlen;
        }
        v
    };
    let at = |k: usize| recs[..k].iter().map(Vec::len).sum::<usize>() as u64;
    // Unknown type in record 3: skipped by its rlen, reading goes on.
    let mut d = recs.clone();
    d[2][8] = 99;
    let got = read_all(&d.concat());
    assert_eq!(got.pkts.len(), 5);
    assert_eq!(got.stats.bad_records, 1);
    assert_eq!(
        got.warnings,
        vec![(
            at(2),
            format!(
                "ERF record 3 at offset {}: unknown ERF record type 99; skipping its {} bytes",
                at(2),
                d[2].len()
            )
        )]
    );
    // Truncated extension chain in record 5: every 8-byte step says another header follows,
    // so the chain runs past the record's end.
    let mut d = recs.clone();
    for k in (16..d[4].len()).step_by(8) {
        d[4][k] |= 0x80;
    }
    let got = read_all(&d.concat());
    assert_eq!(got.pkts.len(), 5);
    assert_eq!(got.stats.bad_records, 1);
    assert!(
        got.warnings[0]
            .1
            .contains("header(s) announced) runs past the record length"),
        "{:?}",
        got.warnings
    );
    assert_eq!(got.warnings[0].0, at(4));
    // rlen below the header: the framing is gone, reading stops; earlier records kept.
    let mut d = recs.clone();
    d[5][10..12].copy_from_slice(&7u16.to_be_bytes());
    let got = read_all(&d.concat());
    assert_eq!(got.pkts.len(), 4);
    assert_eq!(got.stats.bad_records, 1);
    assert!(got.warnings[0]
        .1
        .ends_with("corrupt record header; stopping"));
    // Truncated file: the cut record is reported, the others kept.
    let all = good.clone();
    let cut = &all[..all.len() - 5 - recs[7].len()];
    let got = read_all(cut);
    assert_eq!(got.pkts.len(), 5);
    assert_eq!(got.warnings.len(), 1);
    assert!(got.warnings[0].1.contains("only"), "{:?}", got.warnings);
    assert_eq!(got.warnings[0].0, at(6));
    // A file named .erf whose first record is damaged is still read as ERF: a clear error
    // per record, not "unknown format".
    let mut d = recs.clone();
    d[0][10..12].copy_from_slice(&3u16.to_be_bytes());
    let t = Tmp::new("bad.erf", &d.concat());
    let g = drain(&mut *open(t.path()).unwrap());
    assert!(g.pkts.is_empty());
    assert!(g.warnings[0]
        .1
        .starts_with("ERF record 1 at offset 0: record length 3"));
}

#[test]
fn erf_inside_pcap_linktype_197() {
    let mut f = pcap_header(false, true, 65535, 197);
    let p = payload(1, 64);
    let r = erf_rec(2, 2, 1, 1_700_000_000, &p, 64);
    pcap_record(&mut f, false, 1_700_000_001, 5, &r, r.len() as u32);
    let r = erf_rec(48, 0, 0, 0, &[0; 8], 0);
    pcap_record(&mut f, false, 1_700_000_002, 5, &r, r.len() as u32);
    let mut r = erf_rec(21, 0, 0, 1_700_000_000, &p, 64);
    r[8] = 100;
    pcap_record(&mut f, false, 1_700_000_003, 5, &r, r.len() as u32);
    // Cut by the snap length: the packet is what is there.
    let r = erf_rec(21, 0, 0, 1_700_000_000, &p, 64);
    pcap_record(&mut f, false, 1_700_000_004, 5, &r[..40], r.len() as u32);
    let got = read_all(&f);
    assert_eq!(got.pkts.len(), 2);
    assert_eq!(got.pkts[0].link, 1);
    assert_eq!(got.pkts[0].wire_len, 60);
    assert_eq!(got.pkts[0].ts_ns, 1_700_000_001_000_000_005);
    assert_eq!(got.pkts[0].data[..], p[..60]);
    assert_eq!(got.pkts[1].link, 247);
    assert_eq!((got.pkts[1].data.len(), got.pkts[1].wire_len), (24, 64));
    assert_eq!(got.stats.drops, 2);
    assert_eq!(got.stats.bad_records, 1);
    assert!(got.warnings[0].1.contains("unknown ERF record type 100"));
}
