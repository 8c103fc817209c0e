//! Debian's argus 3.0.8 as an external oracle. For each capture argus can read, both tools'
//! records are summed per flow and per direction; packets and bytes must be equal. The
//! intentional differences (docs/argus-differences.md) are handled by rule, never by a list
//! of files:
//!
//! 1. Flows are grouped by protocol and the unordered pair of endpoints (address+port for
//!    TCP/UDP/SCTP, address only otherwise), because argus splits one flow into several records
//!    (status intervals, ICMP sequence numbers, DNS transaction ids, idle gaps) and may orient
//!    them differently; sums per group and direction are what both must agree on.
//! 2. tapflow keys tunnelled traffic by the innermost flow (argus reports the outer flow for
//!    GRE, VXLAN, GENEVE, GTP-U, IP-in-IP, 6in4 and Teredo) and decodes through IPsec AH (argus
//!    reports `ah`): in a capture where tapflow decapsulated such a packet, only the capture's
//!    totals are compared.
//! 3. Non-IP frames: tapflow keys them by MAC pair and ethertype, argus keys ARP by the IP
//!    addresses inside it: they are compared as one aggregate per capture.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tapflow_probe::EngineConfig;
use tapflow_record::{encap, flags, proto_name, AddrKind, FlowRecord};
use tapflow_tests::*;

/// [packets a→b, packets b→a, bytes a→b, bytes b→a] with a < b.
type Dir4 = [u64; 4];

fn group_key(proto: &str, sa: &str, sp: &str, da: &str, dp: &str) -> (String, bool) {
    // argus 3.0.8 does not put SCTP ports in its flow key (rule 4).
    let ported = matches!(proto, "tcp" | "udp" | "udplite");
    let (x, y) = if ported {
        (format!("{sa}.{sp}"), format!("{da}.{dp}"))
    } else {
        (sa.to_string(), da.to_string())
    };
    let swap = x > y;
    let (lo, hi) = if swap { (y, x) } else { (x, y) };
    (format!("{proto} {lo} {hi}"), swap)
}

fn add(m: &mut BTreeMap<String, Dir4>, key: (String, bool), sp: u64, dp: u64, sb: u64, db: u64) {
    let e = m.entry(key.0.clone()).or_default();
    if key.0 == L2 {
        // Direction-free (rule 3).
        e[0] += sp + dp;
        e[2] += sb + db;
        return;
    }
    if key.1 {
        e[0] += dp;
        e[1] += sp;
        e[2] += db;
        e[3] += sb;
    } else {
        e[0] += sp;
        e[1] += dp;
        e[2] += sb;
        e[3] += db;
    }
}

const L2: &str = "non-ip";

fn argus_flows(capture: &Path, dir: &Path) -> Option<BTreeMap<String, Dir4>> {
    let out = dir.join("a.argus");
    let _ = std::fs::remove_file(&out);
    let st = Command::new("argus")
        .arg("-X")
        .arg("-r")
        .arg(capture)
        .arg("-w")
        .arg(&out)
        .output()
        .expect("run argus");
    if !st.status.success() || !out.exists() {
        eprintln!(
            "  argus refused {}: {}",
            capture.display(),
            String::from_utf8_lossy(&st.stderr).trim()
        );
        return None;
    }
    let ra = Command::new("ra")
        .args(["-X", "-n", "-u", "-c", ",", "-r"])
        .arg(&out)
        .args([
            "-s", "proto", "saddr", "sport", "daddr", "dport", "spkts", "dpkts", "sbytes", "dbytes",
        ])
        .args(["-", "not", "man"])
        .output()
        .expect("run ra");
    let text = String::from_utf8_lossy(&ra.stdout);
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split(',').map(|s| s.trim()).collect();
        if c.len() < 9 || c[0] == "Proto" {
            continue;
        }
        let n = |i: usize| c[i].parse::<u64>().unwrap_or(0);
        let ip = matches!(
            c[0],
            "tcp"
                | "udp"
                | "icmp"
                | "ipv6-icmp"
                | "sctp"
                | "udplite"
                | "esp"
                | "ah"
                | "gre"
                | "igmp"
                | "ospf"
                | "pim"
                | "ipv6"
                | "ipip"
                | "vrrp"
        ) || c[0].parse::<u8>().is_ok();
        if ip {
            add(
                &mut m,
                group_key(c[0], c[1], c[2], c[3], c[4]),
                n(5),
                n(6),
                n(7),
                n(8),
            );
        } else {
            add(&mut m, (L2.into(), false), n(5), n(6), n(7), n(8));
        }
    }
    if m.is_empty() {
        eprintln!("  argus wrote no flow for {}", capture.display());
        return None;
    }
    Some(m)
}

/// Our records grouped the same way; `None` in the second slot means "totals only" (rule 2).
fn tapflow_flows(recs: &[FlowRecord], ppp: bool) -> (BTreeMap<String, Dir4>, bool) {
    let tunnels = encap::GRE
        | encap::VXLAN
        | encap::GENEVE
        | encap::GTPU
        | encap::IPIP
        | encap::IP6IN4
        | encap::TEREDO;
    let mut totals_only = false;
    let mut m = BTreeMap::new();
    for r in recs {
        let decapsulated = r.encap.kinds & tunnels != 0 && r.encap.kinds & encap::ERSPAN == 0;
        if decapsulated || r.flags & (flags::IPSEC_AH | flags::FRAGMENTS) != 0 {
            totals_only = true;
        }
        if r.addr_kind == AddrKind::L2 || (ppp && r.encap.kinds & encap::MPLS != 0) {
            add(
                &mut m,
                (L2.into(), false),
                r.src.pkts,
                r.dst.pkts,
                r.src.bytes,
                r.dst.bytes,
            );
            continue;
        }
        let proto = proto_name(r.addr_kind, r.proto, r.ethertype);
        let sa = r.saddr.display(r.addr_kind).to_string();
        let da = r.daddr.display(r.addr_kind).to_string();
        let k = group_key(&proto, &sa, &r.sport.to_string(), &da, &r.dport.to_string());
        add(&mut m, k, r.src.pkts, r.dst.pkts, r.src.bytes, r.dst.bytes);
    }
    (m, totals_only)
}

fn totals(m: &BTreeMap<String, Dir4>) -> (u64, u64) {
    m.values()
        .fold((0, 0), |(p, b), v| (p + v[0] + v[1], b + v[2] + v[3]))
}

/// Compares tapflow with argus on one capture. argus 3.0.8 is not deterministic under load (its
/// output thread sometimes loses the last record at shutdown), so on a difference argus is run
/// again, up to three runs in all: tapflow must agree with one of them. A tapflow error would
/// disagree with every run.
fn compare(capture: &Path, dir: &Path) -> Option<Result<usize, String>> {
    let (_, recs) = probe(&[capture], EngineConfig::default());
    let head = std::fs::read(capture)
        .map(|d| d.get(20..24).map(|b| b.to_vec()))
        .ok()
        .flatten();
    // Link type from the pcap header (rule 6 concerns PPP captures only).
    let ppp = head.is_some_and(|b| b == [9, 0, 0, 0] || b == [0, 0, 0, 9]);
    let (ours, totals_only) = tapflow_flows(&recs, ppp);
    let mut first_err = None;
    for run in 0..3 {
        let theirs = argus_flows(capture, dir)?;
        match agree(capture, &ours, &theirs, totals_only) {
            Ok(n) => {
                if run > 0 {
                    eprintln!(
                        "  argus gave different output on run {} for {}",
                        run + 1,
                        capture.display()
                    );
                }
                return Some(Ok(n));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map(Err)
}

fn agree(
    capture: &Path,
    ours: &BTreeMap<String, Dir4>,
    theirs: &BTreeMap<String, Dir4>,
    totals_only: bool,
) -> Result<usize, String> {
    let name = capture.file_name().unwrap().to_string_lossy().into_owned();
    if totals(ours) != totals(theirs) {
        return Err(format!(
            "{name}: totals (pkts, bytes) tapflow {:?} argus {:?}",
            totals(ours),
            totals(theirs)
        ));
    }
    if totals_only {
        return Ok(0);
    }
    let mut diffs = vec![];
    for k in ours.keys().chain(theirs.keys()) {
        let (a, b) = (ours.get(k), theirs.get(k));
        if a != b {
            diffs.push(format!("  {k}: tapflow {a:?} argus {b:?}"));
        }
    }
    diffs.dedup();
    if diffs.is_empty() {
        Ok(ours.len())
    } else {
        Err(format!("{name}:\n{}", diffs.join("\n")))
    }
}

fn argus_available() -> bool {
    let ok = Command::new("argus").arg("-h").output().is_ok()
        && Command::new("ra").arg("-h").output().is_ok();
    if !ok {
        eprintln!("*** argus/ra not installed (apt-get install argus-server argus-client): argus oracle SKIPPED ***");
    }
    ok
}

#[test]
fn per_flow_totals_match_argus() {
    if !argus_available() {
        return;
    }
    let tmp = scratch("argus");
    let mut captures: Vec<std::path::PathBuf> = fixtures()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    if let Some(dir) = corpus_dir() {
        for (file, _, _) in manifest(&dir) {
            captures.push(dir.join(file));
        }
    }
    let mut failures = vec![];
    let (mut compared, mut flows) = (0, 0);
    for c in &captures {
        match compare(c, &tmp) {
            None => {}
            Some(Ok(n)) => {
                compared += 1;
                flows += n;
            }
            Some(Err(e)) => failures.push(e),
        }
    }
    eprintln!("argus oracle: {compared} captures agree ({flows} flow groups compared one by one)");
    assert!(
        failures.is_empty(),
        "differences from argus:\n{}",
        failures.join("\n")
    );
    assert!(compared > 0, "no capture was compared");
}
