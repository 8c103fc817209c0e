//! The binaries as a user runs them: the README pipeline and the probe's error exits.

use std::io::Write;
use std::process::{Command, Stdio};
use tapflow_tests::*;

#[test]
fn probe_to_reader_pipeline_prints_every_record() {
    let demo = repo_root().join("tests/fixtures/demo.pcap");
    let probe = Command::new(bin("tapflow-probe"))
        .args(["-q", "-r"])
        .arg(&demo)
        .args(["-w", "-"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let mut read = Command::new(bin("tapflow"))
        .args(["read", "-r", "-", "-s", "saddr,daddr,sbytes,pkts", "--csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    read.stdin.take().unwrap().write_all(&probe.stdout).unwrap();
    let out = read.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("saddr,daddr,sbytes,pkts"));
    let pkts: u64 = lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let (summary, _) = probe_in_process(&demo);
    assert_eq!(
        pkts, summary,
        "records printed must hold every packet of the capture"
    );
}

fn probe_in_process(p: &std::path::Path) -> (u64, ()) {
    let (s, _) = probe(&[p], tapflow_probe::EngineConfig::default());
    (s.packets_in(), ())
}

#[test]
fn probe_reports_a_missing_input_and_still_writes_the_good_ones() {
    let tmp = scratch("cli");
    let out = tmp.join("o.tfr");
    let demo = repo_root().join("tests/fixtures/demo.pcap");
    let r = Command::new(bin("tapflow-probe"))
        .args(["-q", "-r", "/nonexistent/x.pcap", "-r"])
        .arg(&demo)
        .arg("-w")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("/nonexistent/x.pcap"), "{err}");
    let read = Command::new(bin("tapflow"))
        .args(["read", "-r"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(read.status.success());
    assert!(String::from_utf8_lossy(&read.stdout).lines().count() > 20);
    // Usage errors exit 2.
    let r = Command::new(bin("tapflow-probe"))
        .args(["-r", "x", "-w", "y", "--max-flows", "0"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
}
