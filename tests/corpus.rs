//! Every capture we have, real (../shared/corpus) and our own (tests/fixtures), runs through
//! the probe without panic, and packets and bytes are conserved: each packet read is in exactly
//! one record or counted as malformed by reason.

use std::path::Path;
use tapflow_probe::run::RunSummary;
use tapflow_probe::EngineConfig;
use tapflow_record::FlowRecord;
use tapflow_tests::*;

fn check_conservation(name: &str, s: &RunSummary, recs: &[FlowRecord]) {
    let pkts: u64 = recs.iter().map(|r| r.pkts()).sum();
    let bytes: u64 = recs.iter().map(|r| r.bytes()).sum();
    assert_eq!(
        pkts, s.record_pkts,
        "{name}: records read back differ from records written"
    );
    assert_eq!(bytes, s.record_bytes, "{name}");
    assert_eq!(recs.len() as u64, s.records_written, "{name}");
    let d = &s.decode;
    assert_eq!(
        pkts + d.malformed_total(),
        s.packets_in(),
        "{name}: packets in records + malformed != packets read\n{}",
        s.render()
    );
    assert_eq!(
        bytes + d.malformed_bytes + d.link_pseudo_bytes,
        s.wire_bytes_in(),
        "{name}: bytes not conserved\n{}",
        s.render()
    );
    // Sequence numbers are dense per probe: a gap would mean a lost record.
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "{name}: record sequence gap");
        assert!(
            r.pkts() > 0 || r.cause.is_final(),
            "{name}: empty status record"
        );
        assert!(r.stime_ns <= r.ltime_ns, "{name}: stime after ltime");
    }
}

#[test]
fn corpus_captures_conserve_packets_and_bytes() {
    let Some(dir) = corpus_dir() else { return };
    let rows = manifest(&dir);
    assert!(rows.len() >= 50, "manifest too short");
    for (file, linktype, manifest_pkts) in rows {
        let path = dir.join(&file);
        let (s, recs) = probe(&[&path], EngineConfig::default());
        check_conservation(&file, &s, &recs);
        let inp = &s.inputs[0];
        if linktype == "unreadable" {
            let err = inp.error.as_deref().unwrap_or_default();
            assert!(
                err.contains(&file) && err.contains("version"),
                "{file}: {err}"
            );
            continue;
        }
        assert!(inp.error.is_none(), "{file}: {:?}", inp.error);
        assert_eq!(
            inp.capture.packets + inp.capture.bad_records,
            manifest_pkts,
            "{file}: packets delivered + bad records != capinfos' count"
        );
        if inp.capture.bad_records > 0 {
            assert!(
                inp.warnings.iter().any(|w| w.contains("offset")),
                "{file}: a bad record must produce a warning naming the offset"
            );
        }
        // Ethernet, SLL, raw IP and loopback captures decode fully; only link types we do not
        // decode (and genuinely broken headers) may leave malformed packets.
        let decodable = matches!(
            linktype.as_str(),
            "ether" | "linux-sll" | "linux-sll2" | "rawip" | "rawip4" | "rawip6" | "null" | "ppp"
        );
        if decodable && !file.contains("invalid") {
            assert_eq!(s.decode.malformed_total(), 0, "{file}:\n{}", s.render());
        }
    }
}

#[test]
fn own_fixtures_conserve_packets_and_bytes() {
    let fx = fixtures();
    assert!(!fx.is_empty(), "tests/fixtures has no captures");
    for path in fx {
        let name = path.display().to_string();
        let (s, recs) = probe(&[&path], EngineConfig::default());
        assert!(
            s.inputs[0].error.is_none(),
            "{name}: {:?}",
            s.inputs[0].error
        );
        check_conservation(&name, &s, &recs);
        assert_eq!(s.decode.malformed_total(), 0, "{name}:\n{}", s.render());
        if !name.contains("empty") {
            assert!(s.packets_in() > 0, "{name}: fixture has no packet");
        }
    }
}

/// Damaged captures (cut at many offsets, bytes flipped) never panic, keep conservation, and a
/// cut-short capture keeps every complete packet before the cut.
#[test]
fn damaged_captures_never_panic_and_conserve() {
    let mut sources: Vec<std::path::PathBuf> = fixtures().into_iter().take(3).collect();
    if let Some(dir) = corpus_dir() {
        for f in [
            "zeek_tunnels_gtp_gtp1_gn_normal_incl_fragmentation.pcap",
            "ndpi_alexa-app.pcapng",
        ] {
            sources.push(dir.join(f));
        }
    }
    let tmp = scratch("damaged");
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for src in sources {
        let data = std::fs::read(&src).unwrap();
        let (full, _) = probe(&[&src], EngineConfig::default());
        for i in 0..12 {
            let mut d = data.clone();
            let cut = (next() as usize) % d.len().max(1);
            if i % 2 == 0 {
                d.truncate(cut);
            } else {
                for _ in 0..8 {
                    let at = (next() as usize) % d.len();
                    d[at] ^= 1 << (next() % 8);
                }
            }
            let p = tmp.join(format!("d{i}.pcap"));
            std::fs::write(&p, &d).unwrap();
            let (s, recs) = probe(&[&p as &Path], EngineConfig::default());
            check_conservation(&format!("{} variant {i}", src.display()), &s, &recs);
            if i % 2 == 0 {
                assert!(s.packets_in() <= full.packets_in());
            }
        }
    }
}
