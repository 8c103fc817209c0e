//! ERF and InfiniBand end to end. `tapflow-bench gen ib` writes native IB (pcap 247, ERF 21/25,
//! pcap of ERF records 197) and RoCEv2 (pcap, ERF type 2) captures with known flows, losses,
//! reorderings, retransmissions and NAKs, plus damaged ERF files. Checked here:
//!
//! * per packet, every IB header field tapflow's decoder reads equals tshark's (Debian's
//!   Wireshark reads ERF and dissects InfiniBand and RoCEv2; it does not read pcap link type
//!   247, so that file is checked against tapflow's own ERF reading of the same packets);
//! * per flow, the records sum to what the generator knows (packets, bytes, payload, PSN loss,
//!   reordering, retransmissions, NAKs, opcodes, LIDs/GIDs/QPs), and conservation holds;
//! * damaged ERF: a clear warning with file and byte offset, every good record kept;
//! * `tapflow read` prints and filters the IB fields; `tapflow-merge` passes IB records through.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tapflow_probe::EngineConfig;
use tapflow_record::{ib_flags, FlowRecord, RecordReader};
use tapflow_tests::{bin, probe, scratch};

/// The tshark fields `tapflow-bench dump-ib` prints, in its order.
use tapflow_bench::engine_bench::DUMP_FIELDS as FIELDS;

/// Generates the IB captures once per test into a scratch directory.
fn generate(name: &str) -> PathBuf {
    let dir = scratch(name);
    let st = Command::new(bin("tapflow-bench"))
        .args(["gen", "ib", "--dir"])
        .arg(&dir)
        .status()
        .expect("run tapflow-bench gen ib");
    assert!(st.success(), "tapflow-bench gen ib failed");
    dir
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark").arg("-v").output().is_ok();
    if !ok {
        eprintln!(
            "*** tshark not installed (apt-get install tshark; scripts/test.sh does it): \
             InfiniBand per-packet oracle SKIPPED ***"
        );
    }
    ok
}

fn tshark_lines(f: &Path) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(f)
        .args(["-T", "fields", "-E", "separator=/t"]);
    for x in FIELDS {
        cmd.args(["-e", x]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        f.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn dump_lines(f: &Path) -> Vec<String> {
    let out = Command::new(bin("tapflow-bench"))
        .arg("dump-ib")
        .arg("-r")
        .arg(f)
        .output()
        .expect("run tapflow-bench dump-ib");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A field value in a form both tools agree on: tshark prints some integers in hex
/// (`0x000123`), booleans as 0/1, byte fields as hex strings (repeated, comma-separated).
fn norm(field: &str, v: &str) -> String {
    let v = v.split(',').next().unwrap_or("").trim();
    if v.is_empty() {
        return String::new();
    }
    if field.ends_with("gid") {
        return v
            .parse::<Ipv6Addr>()
            .map_or(v.to_string(), |a| a.to_string());
    }
    if field == "frame.time_epoch" {
        return v.to_string();
    }
    let hexbytes = matches!(field, "infiniband.immdt" | "infiniband.ieth");
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None if hexbytes && v.len() <= 16 => u64::from_str_radix(v, 16).ok(),
        None => match v {
            "True" => Some(1),
            "False" => Some(0),
            _ => v.parse().ok(),
        },
    };
    n.map_or(v.to_string(), |n| n.to_string())
}

fn normalize(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| {
            let mut c: Vec<&str> = l.split('\t').collect();
            c.resize(FIELDS.len(), "");
            FIELDS.iter().zip(c).map(|(f, v)| norm(f, v)).collect()
        })
        .collect()
}

/// Compares per-packet fields; returns the number of packets with InfiniBand fields.
fn compare(name: &str, ours: &[String], theirs: &[String]) -> usize {
    let (a, b) = (normalize(ours), normalize(theirs));
    assert_eq!(a.len(), b.len(), "{name}: packet count differs");
    let mut diffs = Vec::new();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        for (k, f) in FIELDS.iter().enumerate() {
            if x[k] != y[k] {
                diffs.push(format!(
                    "{name} frame {}: {f}: tapflow {:?} tshark {:?}",
                    i + 1,
                    x[k],
                    y[k]
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    a.iter().filter(|c| !c[15].is_empty()).count()
}

#[test]
fn per_packet_fields_match_tshark() {
    let dir = generate("ib-tshark");
    let mut checked = 0;
    if tshark_available() {
        for f in ["ib.erf", "ib-erf.pcap", "roce.pcap", "roce.erf"] {
            let p = dir.join(f);
            let n = compare(f, &dump_lines(&p), &tshark_lines(&p));
            assert!(n > 80, "{f}: only {n} IB packets compared");
            checked += n;
        }
        eprintln!("per-packet IB fields equal tshark's on {checked} packets");
    }
    // Wireshark 4.0 does not read LINKTYPE_INFINIBAND pcaps: the same packets read from the
    // ERF file (minus the link packets, which pcap cannot carry) must decode identically.
    let erf: Vec<String> = dump_lines(&dir.join("ib.erf"))
        .into_iter()
        .filter(|l| l.split('\t').nth(15).is_some_and(|op| !op.is_empty()))
        .collect();
    let pcap = dump_lines(&dir.join("ib.pcap"));
    assert_eq!(pcap, erf);
}

/// Per-flow sums of tapflow's IB records, keyed like the truth.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sums {
    pkts: [u64; 2],
    bytes: [u64; 2],
    app: [u64; 2],
    loss: [u64; 2],
    ooo: [u64; 2],
    retrans: [u64; 2],
    naks: u64,
    rnr: u64,
    ops: Vec<u64>,
}

fn flow_id(slid: u64, dlid: u64, sgid: &str, dgid: &str, sqp: Option<u64>, dqp: u64) -> String {
    format!("{slid}/{dlid}/{sgid}/{dgid}/{sqp:?}/{dqp}")
}

fn sums(recs: &[FlowRecord]) -> BTreeMap<String, Sums> {
    let mut m: BTreeMap<String, Sums> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.is_ib()) {
        let x = &r.ib;
        let gids = x.flags & (ib_flags::GRH | ib_flags::ROCEV2) != 0;
        let g = |a: [u8; 16]| {
            if gids {
                Ipv6Addr::from(a).to_string()
            } else {
                "::".to_string()
            }
        };
        let id = if x.flags & ib_flags::LINK != 0 {
            "link".to_string()
        } else {
            flow_id(
                x.slid.into(),
                x.dlid.into(),
                &g(r.saddr.0),
                &g(r.daddr.0),
                (x.flags & ib_flags::SQP != 0).then_some(x.sqp.into()),
                x.dqp.into(),
            )
        };
        let s = m.entry(id).or_default();
        for (d, ds) in [&r.src, &r.dst].into_iter().enumerate() {
            s.pkts[d] += ds.pkts;
            s.bytes[d] += ds.bytes;
            s.app[d] += ds.app_bytes;
            s.loss[d] += u64::from(ds.loss_pkts);
            s.ooo[d] += u64::from(ds.out_of_order);
            s.retrans[d] += u64::from(ds.retrans);
        }
        s.naks += u64::from(x.naks);
        s.rnr += u64::from(x.rnr_naks);
        for op in 0..=255u8 {
            if x.has_opcode(op) && !s.ops.contains(&op.into()) {
                s.ops.push(op.into());
            }
        }
        s.ops.sort_unstable();
    }
    m
}

fn truth(path: &Path, with_erf_only: bool) -> BTreeMap<String, (String, Sums)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["erf_only"].as_bool() == Some(true) && !with_erf_only {
            continue;
        }
        let arr = |k: &str| -> [u64; 2] {
            let a = v[k].as_array().unwrap();
            [a[0].as_u64().unwrap(), a[1].as_u64().unwrap()]
        };
        let id = if v["link"].as_bool() == Some(true) {
            "link".to_string()
        } else {
            flow_id(
                v["slid"].as_u64().unwrap(),
                v["dlid"].as_u64().unwrap(),
                v["sgid"].as_str().unwrap(),
                v["dgid"].as_str().unwrap(),
                v["sqp"].as_u64(),
                v["dqp"].as_u64().unwrap(),
            )
        };
        let s = Sums {
            pkts: arr("pkts"),
            bytes: arr("bytes"),
            app: arr("app_bytes"),
            loss: arr("loss"),
            ooo: arr("ooo"),
            retrans: arr("retrans"),
            naks: v["naks"].as_u64().unwrap(),
            rnr: v["rnr_naks"].as_u64().unwrap(),
            ops: v["opcodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_u64().unwrap())
                .collect(),
        };
        m.insert(id, (v["note"].as_str().unwrap().to_string(), s));
    }
    m
}

/// Sum of the ERF loss counters of a file, read independently of tapflow's reader.
fn erf_lctr_sum(bytes: &[u8]) -> u64 {
    let (mut p, mut sum) = (0, 0u64);
    while p + 16 <= bytes.len() {
        let rlen = usize::from(u16::from_be_bytes([bytes[p + 10], bytes[p + 11]]));
        if bytes[p + 8] & 0x7f != 48 {
            sum += u64::from(u16::from_be_bytes([bytes[p + 12], bytes[p + 13]]));
        }
        p += rlen.max(16);
    }
    sum
}

#[test]
fn flows_match_the_generator_truth() {
    let dir = generate("ib-truth");
    for (file, t, erf_only) in [
        ("ib.pcap", "ib.truth.jsonl", false),
        ("ib.erf", "ib.truth.jsonl", true),
        ("ib-erf.pcap", "ib.truth.jsonl", true),
        ("roce.pcap", "roce.truth.jsonl", false),
        ("roce.erf", "roce.truth.jsonl", false),
    ] {
        let p = dir.join(file);
        let (summary, recs) = probe(&[&p], EngineConfig::default());
        assert!(
            summary.conserved(),
            "{file}: conservation\n{}",
            summary.render()
        );
        assert_eq!(summary.decode.malformed_total(), 0, "{file}");
        assert!(
            summary.inputs[0].warnings.is_empty(),
            "{file}: {:?}",
            summary.inputs[0].warnings
        );
        let got = sums(&recs);
        let want = truth(&dir.join(t), erf_only);
        let names: Vec<&String> = want.keys().collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            names,
            "{file}: flows differ"
        );
        for (id, (note, w)) in &want {
            assert_eq!(&got[id], w, "{file}: flow {note} ({id})");
        }
        if file.ends_with(".erf") {
            let lctr = erf_lctr_sum(&std::fs::read(&p).unwrap());
            assert!(lctr > 0);
            assert_eq!(
                summary.inputs[0].capture.drops, lctr,
                "{file}: ERF lctr → drops"
            );
        }
    }
}

#[test]
fn damaged_erf_is_reported_with_offset_and_good_records_are_kept() {
    let dir = generate("ib-damage");
    let good = probe(&[&dir.join("ib.erf")], EngineConfig::default()).0;
    let text = std::fs::read_to_string(dir.join("damage.tsv")).unwrap();
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        let (name, off, before, after) = (
            c[0],
            c[1].parse::<u64>().unwrap(),
            c[2].parse::<u64>().unwrap(),
            c[3].parse::<u64>().unwrap(),
        );
        let p = dir.join(name);
        let (s, recs) = probe(&[&p], EngineConfig::default());
        let input = &s.inputs[0];
        assert!(input.error.is_none(), "{name}: {:?}", input.error);
        assert_eq!(input.capture.bad_records, 1, "{name}: {:?}", input.warnings);
        assert_eq!(input.warnings.len(), 1, "{name}: {:?}", input.warnings);
        let w = &input.warnings[0];
        let prefix = format!("{}: offset {off}: ERF record", p.display());
        assert!(w.starts_with(&prefix), "{name}: {w}");
        // Every good record before (and, where the framing survived, after) the damage.
        assert_eq!(input.capture.packets, before + after, "{name}: {w}");
        assert!(input.capture.packets < good.inputs[0].capture.packets);
        assert!(s.conserved(), "{name}\n{}", s.render());
        let pkts: u64 = recs.iter().map(|r| r.pkts()).sum();
        assert_eq!(pkts + s.decode.malformed_total(), input.capture.packets);
        eprintln!("{name}: {w}");
    }
    // The probe binary says it too, naming the file and offset, and still writes the records.
    let out = dir.join("bad.tfr");
    let o = Command::new(bin("tapflow-probe"))
        .arg("-r")
        .arg(dir.join("bad-ext.erf"))
        .arg("-w")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad-ext.erf: offset "), "{err}");
    assert!(err.contains("extension header chain"), "{err}");
    let n = RecordReader::new(std::fs::File::open(&out).unwrap(), "bad.tfr")
        .unwrap()
        .count();
    assert!(n > 5);
}

fn tapflow(args: &[&str]) -> String {
    let o = Command::new(bin("tapflow")).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "tapflow {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn read_prints_and_filters_ib_fields_and_merge_passes_them() {
    let dir = generate("ib-read");
    let mut tfr = Vec::new();
    for f in ["ib.erf", "roce.erf"] {
        let out = dir.join(format!("{f}.tfr"));
        let st = Command::new(bin("tapflow-probe"))
            .args(["-q", "-r"])
            .arg(dir.join(f))
            .arg("-w")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        tfr.push(out.to_string_lossy().into_owned());
    }
    let ib = tfr[0].as_str();
    let cols = "proto,slid,dlid,sgid,dgid,sqp,dqp,pkey,ibsvc,opcodes,spkts,sloss,sooo,sretrans,naks,rnrnaks";
    let csv = tapflow(&[
        "read", "-r", ib, "-s", cols, "--csv", "-", "ib", "and", "dqp", "eq", "0x123",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    // 49 requests seen (one lost before the tap), 2 PSNs missing, 1 reordered, 4 resent.
    assert_eq!(
        lines[1],
        "ib,17,34,,,,291,65535,RC,\"RC_SEND_FIRST,RC_SEND_MIDDLE,RC_SEND_LAST,RC_SEND_ONLY,\
         RC_SEND_ONLY_IMM,RC_WRITE_ONLY,RC_WRITE_ONLY_IMM,RC_READ_REQ,RC_SEND_ONLY_INV\",\
         49,2,1,4,0,0"
    );
    // The acknowledgement flow carries the NAK and the RNR NAK.
    let csv = tapflow(&[
        "read",
        "-r",
        ib,
        "-s",
        "slid,dlid,dqp,naks,rnrnaks",
        "--csv",
        "-",
        "naks",
        "gt",
        "0",
    ]);
    assert_eq!(csv.lines().nth(1), Some("34,17,1110,1,1"), "{csv}");
    // GRH flows print their GIDs; UD flows their source QP; link packets are their own flow.
    let csv = tapflow(&[
        "read",
        "-r",
        ib,
        "-s",
        "slid,sgid,dgid,dqp",
        "--csv",
        "-",
        "ib",
        "and",
        "host",
        "fe80::2:c903:a:202",
    ]);
    assert_eq!(
        csv.lines().nth(1),
        Some("257,fe80::2:c903:a:101,fe80::2:c903:a:202,43981"),
        "{csv}"
    );
    let csv = tapflow(&[
        "read",
        "-r",
        ib,
        "-s",
        "proto,sqp,dqp,spkts,dpkts",
        "--csv",
        "-",
        "sqp",
        "eq",
        "16",
    ]);
    assert_eq!(csv.lines().nth(1), Some("ib,16,32,6,6"), "{csv}");
    let all = tapflow(&["read", "-r", ib, "-s", "proto", "--csv"]);
    assert!(all.lines().any(|l| l == "iblink"), "{all}");
    // Default columns: LIDs as addresses, QPs as ports.
    let txt = tapflow(&["read", "-r", ib, "-", "dqp", "eq", "291"]);
    assert!(
        txt.contains(" ib ") && txt.contains("17") && txt.contains("291"),
        "{txt}"
    );
    // RoCEv2: the IP addresses as GIDs, IPv4-mapped.
    let csv = tapflow(&[
        "read",
        "-r",
        &tfr[1],
        "-s",
        "proto,sgid,dgid,dqp,opcodes",
        "--csv",
        "-",
        "ib",
        "and",
        "dqp",
        "eq",
        "1929",
    ]);
    assert_eq!(
        csv.lines().nth(1),
        Some("roce,::ffff:10.1.0.34,::ffff:10.1.0.17,1929,CNP"),
        "{csv}"
    );
    // Non-IB filters do not match IB records; IB fields are blank elsewhere.
    assert_eq!(
        tapflow(&["read", "-r", ib, "--csv", "-", "tcp"])
            .lines()
            .count(),
        1
    );

    // Merge: IB records pass through unchanged (no IB join).
    let merged = dir.join("merged.tfr");
    let o = Command::new(bin("tapflow-merge"))
        .args(["-r", &tfr[0], "-r", &tfr[1], "-w"])
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &str| -> Vec<FlowRecord> {
        RecordReader::new(std::fs::File::open(p).unwrap(), p)
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| r.is_ib())
            .collect()
    };
    let mut before = read(&tfr[0]);
    before.extend(read(&tfr[1]));
    let after = read(merged.to_str().unwrap());
    let key = |r: &FlowRecord| (r.ib, r.saddr, r.daddr, r.src.pkts, r.dst.pkts, r.src.bytes);
    let mut a: Vec<_> = before.iter().map(key).collect();
    let mut b: Vec<_> = after.iter().map(key).collect();
    a.sort_by_key(|k| format!("{k:?}"));
    b.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(a, b);
}
