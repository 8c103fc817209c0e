//! The filter parser on arbitrary input: it must never panic, errors must point inside the
//! expression and render, and a filter that parses must evaluate on any record.
//!
//! `cargo +nightly fuzz run filter` (from the repository root, with cargo-fuzz installed).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapflow_client::filter::Filter;
use tapflow_record::{Addr, AddrKind, DirStats, FlowRecord};

/// A record whose fields come from the input, so evaluation paths vary with it.
fn record(data: &[u8]) -> FlowRecord {
    let b = |i: usize| data.get(i).copied().unwrap_or(0);
    let w = |i: usize| u64::from_le_bytes(std::array::from_fn(|k| b(i + k)));
    let side = |i: usize| DirStats {
        pkts: w(i),
        bytes: w(i + 8),
        app_bytes: w(i + 16),
        ttl_max: b(i + 24),
        tcp_flags: b(i + 25),
        retrans: b(i + 26) as u32,
        loss_pkts: u32::MAX - b(i + 27) as u32,
        ipt_std_ns: f64::from_bits(w(i + 28)),
        ..Default::default()
    };
    FlowRecord {
        addr_kind: AddrKind::from_u8(b(0) % 8).unwrap_or(AddrKind::Ipv4),
        proto: b(1),
        ethertype: w(2) as u16,
        saddr: Addr([b(4); 16]),
        daddr: Addr([b(5); 16]),
        sport: w(6) as u16,
        dport: w(8) as u16,
        stime_ns: w(10),
        ltime_ns: w(18),
        synack_ns: w(26),
        ackdat_ns: u64::MAX,
        vlan: [w(34) as u16, w(36) as u16],
        mpls: [w(38) as u32, 0],
        flags: w(42) as u32,
        src: side(46),
        dst: side(82),
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Filter::parse(&text) {
        Ok(f) => {
            let _ = f.expr.to_string();
            for r in [FlowRecord::default(), record(data)] {
                f.matches(&r);
            }
        }
        Err(e) => {
            assert!(e.error.pos <= text.len() && text.is_char_boundary(e.error.pos));
            assert_eq!(e.to_string().lines().count(), 3);
        }
    }
});
