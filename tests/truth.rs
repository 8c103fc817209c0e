//! Our generator writes the ground truth of every flow it puts in a capture
//! (`tests/fixtures/*.truth.csv`): per direction packets, bytes, IP bytes, payload bytes,
//! retransmissions, out-of-order segments, zero windows and fragments, and who initiated.
//! tapflow's records, summed per flow, must say exactly that.

use std::collections::HashMap;
use tapflow_probe::EngineConfig;
use tapflow_record::{AddrKind, FlowRecord, FlowState};
use tapflow_tests::*;

fn key(proto: u8, s: &str, sp: u16, d: &str, dp: u16) -> String {
    format!("{proto} {s} {sp} {d} {dp}")
}

fn check(capture: &str, truth: &str) {
    let root = repo_root().join("tests/fixtures");
    let (_, recs) = probe(&[&root.join(capture)], EngineConfig::default());
    let mut ours: HashMap<String, Vec<&FlowRecord>> = HashMap::new();
    for r in recs.iter().filter(|r| r.addr_kind != AddrKind::L2) {
        let k = key(
            r.proto,
            &r.saddr.display(r.addr_kind).to_string(),
            r.sport,
            &r.daddr.display(r.addr_kind).to_string(),
            r.dport,
        );
        ours.entry(k).or_default().push(r);
    }
    let text = std::fs::read_to_string(root.join(truth)).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let mut checked = 0;
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        let get = |n: &str| c[col(n)];
        let num = |n: &str| get(n).parse::<u64>().unwrap_or(0);
        if get("ethertype") == "0x0806" {
            continue; // ARP: keyed by MAC pair in tapflow (docs/flow-engine.md)
        }
        let k = key(
            num("proto") as u8,
            get("src"),
            num("sport") as u16,
            get("dst"),
            num("dport") as u16,
        );
        let Some(rs) = ours.get(&k) else {
            let near: Vec<&String> = ours.keys().filter(|o| o.contains(get("dst"))).collect();
            panic!("{capture}: truth flow {} ({}) has no record oriented the same way; records nearby: {near:?}", k, get("note"));
        };
        let sum = |f: &dyn Fn(&FlowRecord) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
        let pairs: [(&str, u64); 16] = [
            ("src_pkts", sum(&|r| r.src.pkts)),
            ("dst_pkts", sum(&|r| r.dst.pkts)),
            ("src_bytes", sum(&|r| r.src.bytes)),
            ("dst_bytes", sum(&|r| r.dst.bytes)),
            ("src_ip_bytes", sum(&|r| r.src.ip_bytes)),
            ("dst_ip_bytes", sum(&|r| r.dst.ip_bytes)),
            ("src_app_bytes", sum(&|r| r.src.app_bytes)),
            ("dst_app_bytes", sum(&|r| r.dst.app_bytes)),
            ("src_retrans", sum(&|r| r.src.retrans as u64)),
            ("dst_retrans", sum(&|r| r.dst.retrans as u64)),
            ("src_ooo", sum(&|r| r.src.out_of_order as u64)),
            ("dst_ooo", sum(&|r| r.dst.out_of_order as u64)),
            ("src_zero_win", sum(&|r| r.src.zero_win as u64)),
            ("dst_zero_win", sum(&|r| r.dst.zero_win as u64)),
            ("src_frags", sum(&|r| r.src.frags as u64)),
            ("dst_frags", sum(&|r| r.dst.frags as u64)),
        ];
        for (name, got) in pairs {
            assert_eq!(got, num(name), "{capture}: {k} ({}): {name}", get("note"));
        }
        let first = rs.iter().map(|r| r.stime_ns).min().unwrap();
        let last = rs.iter().map(|r| r.ltime_ns).max().unwrap();
        assert_eq!(
            (first, last),
            (num("first_ns"), num("last_ns")),
            "{capture}: {k}: times"
        );
        let end = rs.last().unwrap().state;
        match get("end") {
            "fin" => assert_eq!(end, FlowState::Fin, "{capture}: {k}"),
            "rst" => assert_eq!(end, FlowState::Rst, "{capture}: {k}"),
            _ => {}
        }
        if num("tunnel_id") > 0 {
            assert!(
                rs.iter()
                    .all(|r| r.encap.tunnel_id as u64 == num("tunnel_id")),
                "{capture}: {k}: tunnel id"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "{capture}: only {checked} flows checked");
}

#[test]
fn demo_records_equal_the_generator_truth() {
    check("demo.pcap", "demo.truth.csv");
}

#[test]
fn demo_pcapng_records_equal_the_generator_truth() {
    check("demo.pcapng", "demo.pcapng.truth.csv");
}
