//! `tapflow read | agg | sort` as a user runs them, on hand-made records with hand-checked
//! answers: archive directories, time ranges, aggregation across status records, sorting,
//! damaged files and exit codes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tapflow_record::{
    Addr, AddrKind, Cause, DirStats, FileHeader, FlowRecord, FlowState, ProbeStatus, RecordWriter,
    WriterOptions,
};
use tapflow_tests::{bin, scratch};

const S: u64 = 1_000_000_000;
/// 2023-11-14 22:13:20 UTC.
const T0: u64 = 1_700_000_000 * S;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn tapflow(args: &[&str], stdin: Option<&[u8]>) -> Out {
    let o = tapflow_bytes(args, stdin);
    Out {
        code: o.0,
        stdout: String::from_utf8(o.1).unwrap(),
        stderr: o.2,
    }
}

fn tapflow_bytes(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(bin("tapflow"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().expect("exited, not killed by a signal"),
        o.stdout,
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// Lines of a successful run with nothing on stderr.
fn ok(o: &Out) -> Vec<&str> {
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    assert_eq!(o.stderr, "");
    o.stdout.lines().collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A TCP record `s:sp -> d:dp` with `sp`/`dp` packets (100 / 1000 bytes each).
fn tcp(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, spkts: u64, dpkts: u64) -> FlowRecord {
    FlowRecord {
        probe_id: 1,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: Addr::from_v4(s),
        daddr: Addr::from_v4(d),
        sport: sp,
        dport: dp,
        state: FlowState::Con,
        cause: Cause::Status,
        src: DirStats {
            pkts: spkts,
            bytes: spkts * 100,
            ..Default::default()
        },
        dst: DirStats {
            pkts: dpkts,
            bytes: dpkts * 1000,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn at(mut r: FlowRecord, stime_s: u64, dur_s: u64) -> FlowRecord {
    r.stime_ns = T0 + stime_s * S;
    r.ltime_ns = r.stime_ns + dur_s * S;
    r
}

fn status_record(t: u64) -> FlowRecord {
    FlowRecord {
        probe_id: 1,
        stime_ns: t,
        ltime_ns: t + 5 * S,
        status: Some(Box::new(ProbeStatus {
            seen: 1000,
            delivered: 1000,
            decoded: 1000,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn write_file(path: &Path, header: FileHeader, recs: &[FlowRecord], block_records: usize) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let f = fs::File::create(path).unwrap();
    let opts = WriterOptions {
        block_records,
        ..Default::default()
    };
    let mut w = RecordWriter::new(f, &header, opts).unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

fn header(probe_id: u32, created_ns: u64) -> FileHeader {
    FileHeader {
        probe_id,
        created_ns,
        ..Default::default()
    }
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 1, 3];
const WEB: [u8; 4] = [192, 168, 1, 10];
const MAIL: [u8; 4] = [192, 168, 1, 20];

/// Three hosts, four flows; two flows split into status records (deltas), a probe-status
/// record in the middle. Totals by flow (spkts/dpkts): A→WEB 9/7 in 3 records, B→WEB 15/10
/// in 2, C→MAIL 1/0, A→MAIL 2/2. By host: A 20 packets in 4 records, B 25 in 2, C 1 in 1.
fn three_hosts() -> Vec<FlowRecord> {
    let close = |r: FlowRecord| {
        let mut r = r;
        r.cause = Cause::Close;
        r.state = FlowState::Fin;
        r
    };
    vec![
        at(tcp(A, 40000, WEB, 80, 4, 3), 0, 5),
        at(tcp(B, 40001, WEB, 80, 10, 8), 1, 4),
        at(tcp(A, 40000, WEB, 80, 3, 3), 5, 5),
        status_record(T0 + 5 * S),
        at(tcp(C, 40002, MAIL, 25, 1, 0), 62, 0),
        close(at(tcp(B, 40001, WEB, 80, 5, 2), 6, 3)),
        close(at(tcp(A, 40000, WEB, 80, 2, 1), 10, 50)),
        close(at(tcp(A, 40003, MAIL, 25, 2, 2), 70, 1)),
    ]
}

fn three_hosts_file(name: &str) -> (PathBuf, PathBuf) {
    let d = scratch(name);
    let f = d.join("flows.tfr");
    write_file(&f, header(1, 1), &three_hosts(), 3);
    (d, f)
}

/// CSV lines as vectors of cells, header skipped.
fn csv(o: &Out) -> Vec<Vec<String>> {
    ok(o)
        .iter()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn agg_default_key_sums_each_flow_across_its_status_records() {
    let (_d, f) = three_hosts_file("agg-flow");
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "--csv",
            "-s",
            "saddr,sport,daddr,dport,trans,spkts,dpkts,sbytes,dbytes,state",
        ],
        None,
    );
    let rows = csv(&o);
    assert_eq!(
        ok(&o)[0],
        "saddr,sport,daddr,dport,trans,spkts,dpkts,sbytes,dbytes,state"
    );
    // In order of each flow's first record; the probe-status record is not a flow.
    assert_eq!(
        rows,
        [
            [
                "10.0.0.1",
                "40000",
                "192.168.1.10",
                "80",
                "3",
                "9",
                "7",
                "900",
                "7000",
                "FIN"
            ],
            [
                "10.0.0.2",
                "40001",
                "192.168.1.10",
                "80",
                "2",
                "15",
                "10",
                "1500",
                "10000",
                "FIN"
            ],
            [
                "10.0.1.3",
                "40002",
                "192.168.1.20",
                "25",
                "1",
                "1",
                "0",
                "100",
                "0",
                "CON"
            ],
            [
                "10.0.0.1",
                "40003",
                "192.168.1.20",
                "25",
                "1",
                "2",
                "2",
                "200",
                "2000",
                "FIN"
            ],
        ]
    );
    // The flow's span: first record's stime to the last one's ltime (0 .. 60 s).
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-u",
            "--csv",
            "-s",
            "stime,ltime,dur",
            "-",
            "port",
            "80",
        ],
        None,
    );
    assert_eq!(
        csv(&o)[0],
        ["1700000000.000000", "1700000060.000000", "60.000000"]
    );
}

#[test]
fn agg_by_host_by_prefix_and_by_time_bin() {
    let (_d, f) = three_hosts_file("agg-host");
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "saddr",
            "--csv",
            "-s",
            "saddr,trans,pkts,bytes",
        ],
        None,
    );
    assert_eq!(
        csv(&o),
        [
            ["10.0.0.1", "4", "20", "10100"],
            ["10.0.0.2", "2", "25", "11500"],
            ["10.0.1.3", "1", "1", "100"],
        ]
    );
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "saddr/24",
            "--csv",
            "-s",
            "saddr,trans,pkts",
        ],
        None,
    );
    assert_eq!(csv(&o), [["10.0.0.0", "6", "45"], ["10.0.1.0", "1", "1"]]);
    // A field outside the key prints as zero where the records disagree, else its value.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "daddr",
            "--csv",
            "-s",
            "daddr,saddr,dport,trans",
        ],
        None,
    );
    assert_eq!(
        csv(&o),
        [
            // Sources differ within each aggregate: blank, not a made-up 0.0.0.0.
            ["192.168.1.10", "", "80", "5"],
            ["192.168.1.20", "", "25", "2"],
        ]
    );
    // Minute bins by stime (T0 = 22:13:20): 22:13 holds the records starting at 0..39 s,
    // 22:14 the rest (62 s, 70 s). stime is the aggregate's first packet, in its bin.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "saddr",
            "-B",
            "1m",
            "--csv",
            "-s",
            "stime,saddr,trans,pkts",
        ],
        None,
    );
    assert_eq!(
        csv(&o),
        [
            ["2023-11-14 22:13:20.000000", "10.0.0.1", "3", "16"],
            ["2023-11-14 22:13:21.000000", "10.0.0.2", "2", "25"],
            ["2023-11-14 22:14:22.000000", "10.0.1.3", "1", "1"],
            ["2023-11-14 22:14:30.000000", "10.0.0.1", "1", "4"],
        ]
    );
    let o2 = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "stime/1m,saddr",
            "--csv",
            "-s",
            "stime,saddr,trans,pkts",
        ],
        None,
    );
    assert_eq!(o2.stdout, o.stdout, "-B 1m is stime/1m");
    // The filter applies before aggregation.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "saddr",
            "--csv",
            "-s",
            "saddr,pkts",
            "-",
            "port",
            "25",
        ],
        None,
    );
    assert_eq!(csv(&o), [["10.0.1.3", "1"], ["10.0.0.1", "4"]]);
    // JSON lines carry the same numbers.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-M",
            "proto",
            "--json",
            "-s",
            "proto,trans,pkts",
        ],
        None,
    );
    assert_eq!(ok(&o), [r#"{"proto":"tcp","trans":7,"pkts":46}"#]);
    // Default columns: when, the key, how much.
    let o = tapflow(&["agg", "-r", p(&f), "-M", "saddr"], None);
    let head: Vec<&str> = ok(&o)[0].split_whitespace().collect();
    assert_eq!(
        head,
        [
            "StartTime",
            "Dur",
            "SrcAddr",
            "Trans",
            "SrcPkts",
            "DstPkts",
            "SrcBytes",
            "DstBytes"
        ]
    );
}

#[test]
fn sort_ascending_descending_top_n_and_after_agg() {
    let (_d, f) = three_hosts_file("sort");
    let flows = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["sort", "-r", p(&f), "--csv", "-s", "saddr,sport,pkts"];
        a.extend_from_slice(args);
        csv(&tapflow(&a, None))
            .into_iter()
            .map(|r| r.join(" "))
            .collect()
    };
    let asc = flows(&["-m", "pkts"]);
    assert_eq!(
        asc,
        [
            "10.0.1.3 40002 1",
            "10.0.0.1 40000 3",
            "10.0.0.1 40003 4",
            "10.0.0.1 40000 6",
            "10.0.0.1 40000 7",
            "10.0.0.2 40001 7",
            "10.0.0.2 40001 18",
        ]
    );
    // Descending keeps equal records in input order (stable): the two 7-packet records.
    let desc = flows(&["-m", "-pkts"]);
    assert_eq!(desc[1..3], ["10.0.0.1 40000 7", "10.0.0.2 40001 7"]);
    assert_eq!(desc[0], "10.0.0.2 40001 18");
    assert_eq!(flows(&["-m", "pkts", "--desc"]), desc);
    assert_eq!(flows(&["-m", "-pkts", "-N", "3"]), desc[..3]);
    assert_eq!(
        flows(&["-N", "2", "-m", "saddr,-sport"]),
        ["10.0.0.1 40003 4", "10.0.0.1 40000 7"]
    );
    // Top talkers: agg writes native records, sort reads them from stdin.
    let (code, native, err) = tapflow_bytes(&["agg", "-r", p(&f), "-M", "saddr", "-w", "-"], None);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(native.starts_with(b"TAPFLOW\0"));
    let o = tapflow(
        &[
            "sort",
            "-r",
            "-",
            "-m",
            "-pkts",
            "-N",
            "2",
            "--csv",
            "-s",
            "saddr,trans,pkts",
        ],
        Some(&native),
    );
    assert_eq!(csv(&o), [["10.0.0.2", "2", "25"], ["10.0.0.1", "4", "20"]]);
    // An aggregate aggregated again still counts the records inside it.
    let o = tapflow(
        &["agg", "-r", "-", "-M", "proto", "--csv", "-s", "trans,pkts"],
        Some(&native),
    );
    assert_eq!(csv(&o), [["7", "46"]]);
    // -w to a file, read back.
    let out = f.with_file_name("sorted.tfr");
    let o = tapflow(&["sort", "-r", p(&f), "-m", "-bytes", "-w", p(&out)], None);
    assert_eq!(ok(&o), Vec::<&str>::new());
    let o = tapflow(&["read", "-r", p(&out), "--csv", "-s", "bytes"], None);
    let bytes: Vec<u64> = csv(&o).iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(bytes, [9000, 3400, 3300, 2500, 2200, 1200, 100]);
}

#[test]
fn directories_are_read_in_time_order_skipping_part_and_foreign_files() {
    let d = scratch("archive-order");
    let rec = |seq: u64, t: u64| {
        let mut r = at(tcp(A, 1, WEB, 80, 1, 1), t, 1);
        r.seq = seq;
        r
    };
    // Names that sort against time: z/ holds the earliest records.
    write_file(
        &d.join("a/late.tfr"),
        header(1, 7),
        &[rec(5, 300), rec(6, 310)],
        8,
    );
    write_file(
        &d.join("z/early.tfr"),
        header(1, 7),
        &[rec(1, 0), rec(2, 10)],
        8,
    );
    write_file(
        &d.join("m/mid.tfr"),
        header(1, 7),
        &[rec(3, 100), rec(4, 110)],
        8,
    );
    write_file(&d.join("m/.next.tfr.part"), header(1, 7), &[rec(7, 400)], 8);
    fs::write(d.join("m/README.txt"), "not records\n").unwrap();
    fs::write(d.join(".hidden"), "ignored silently\n").unwrap();
    let o = tapflow(&["read", "-r", p(&d), "-s", "seq", "--csv"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["seq", "1", "2", "3", "4", "5", "6"]
    );
    // Each skip is said, with the reason; the other hidden file silently.
    let notes: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(notes.len(), 2, "{}", o.stderr);
    assert!(notes
        .iter()
        .any(|l| l.contains(".next.tfr.part") && l.contains("--partial")));
    assert!(notes
        .iter()
        .any(|l| l.contains("README.txt") && l.contains("not a tapflow record file")));
    let o = tapflow(
        &["read", "-r", p(&d), "--partial", "-s", "seq", "--csv"],
        None,
    );
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout.lines().last(), Some("7"));
    // A directory and a file together: each input in the order given.
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&d.join("a/late.tfr")),
            "-r",
            p(&d.join("z")),
            "-s",
            "seq",
            "--csv",
        ],
        None,
    );
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["seq", "5", "6", "1", "2"]
    );
}

#[test]
fn time_ranges_select_by_overlap_with_exact_boundaries() {
    let d = scratch("time-range");
    let rec = |seq: u64, start: u64, dur: u64| {
        let mut r = at(tcp(A, 1, WEB, 80, 1, 1), start, dur);
        r.seq = seq;
        r
    };
    // T0 = 22:13:20. The range 22:14:20-22:15:20 is [T0+60, T0+120).
    let recs = [
        rec(1, 0, 10),    // 22:13:20-22:13:30: before
        rec(2, 50, 10),   // ends exactly at the start: in
        rec(3, 50, 9),    // ends a second before the start: out
        rec(4, 60, 10),   // inside
        rec(5, 100, 100), // starts inside, ends after: in
        rec(6, 119, 0),   // starts a second before the end: in
        rec(7, 120, 5),   // starts exactly at the end: out
        rec(8, 0, 600),   // spans the whole range: in
    ];
    let f = d.join("t.tfr");
    write_file(&f, header(1, 1), &recs, 8);
    let seqs = |t: &str| -> Vec<String> {
        let o = tapflow(&["read", "-r", p(&f), "-t", t, "-s", "seq", "--csv"], None);
        ok(&o).iter().skip(1).map(|s| s.to_string()).collect()
    };
    let want = ["2", "4", "5", "6", "8"];
    // Time of day: on the date of the first record read (2023-11-14).
    assert_eq!(seqs("22:14:20-22:15:20"), want);
    assert_eq!(seqs("2023-11-14T22:14:20-2023-11-14T22:15:20"), want);
    assert_eq!(seqs("2023-11-14T22:14:20Z-22:15:20"), want);
    assert_eq!(seqs("2023/11/14.22:14:20+1m"), want);
    assert_eq!(seqs("22:14:20+60s"), want);
    assert_eq!(seqs("@1700000060-@1700000120"), want);
    assert_eq!(seqs("2023-11-14").len(), 8);
    assert!(seqs("2023-11-15").is_empty());
    // A whole minute: 22:13 is [22:13:00, 22:14:00): records 1 and 8.
    assert_eq!(seqs("22:13"), ["1", "8"]);
    // agg and sort take -t too.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&f),
            "-t",
            "22:14:20-22:15:20",
            "-M",
            "saddr",
            "--csv",
            "-s",
            "trans",
        ],
        None,
    );
    assert_eq!(csv(&o), [["5"]]);
    let o = tapflow(
        &[
            "sort",
            "-r",
            p(&f),
            "-t",
            "22:13",
            "-m",
            "-seq",
            "-N",
            "1",
            "--csv",
            "-s",
            "seq",
        ],
        None,
    );
    assert_eq!(csv(&o), [["8"]]);
}

#[test]
fn relative_time_range_is_the_last_hour_before_now() {
    let d = scratch("time-relative");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let rec = |seq: u64, ago_min: u64| {
        let mut r = tcp(A, 1, WEB, 80, 1, 1);
        r.seq = seq;
        r.stime_ns = now - ago_min * 60 * S;
        r.ltime_ns = r.stime_ns + S;
        r
    };
    let f = d.join("recent.tfr");
    write_file(
        &f,
        header(1, 1),
        &[rec(1, 150), rec(2, 30), rec(3, 65), rec(4, 5)],
        8,
    );
    let o = tapflow(
        &["read", "-r", p(&f), "-t", "-1h", "-s", "seq", "--csv"],
        None,
    );
    assert_eq!(ok(&o), ["seq", "2", "4"]);
    let o = tapflow(
        &["read", "-r", p(&f), "-t", "-2h+1h", "-s", "seq", "--csv"],
        None,
    );
    assert_eq!(ok(&o), ["seq", "3"]);
}

#[test]
fn archive_files_outside_the_range_are_skipped_unread() {
    let d = scratch("prune");
    // One probe run (same probe id and header time), rotated hourly.
    let rec = |seq: u64, t: u64| {
        let mut r = at(tcp(A, 1, WEB, 80, 1, 1), t, 1);
        r.seq = seq;
        r
    };
    let run = header(3, 42);
    write_file(
        &d.join("h0.tfr"),
        run.clone(),
        &[rec(1, 10), rec(2, 3000)],
        8,
    );
    write_file(
        &d.join("h1.tfr"),
        run.clone(),
        &[rec(3, 3610), rec(4, 7000)],
        8,
    );
    write_file(
        &d.join("h2.tfr"),
        run.clone(),
        &[rec(5, 7210), rec(6, 9000)],
        8,
    );
    // The first file is damaged past its first block: if it were read, the run would warn
    // and exit 1. Pruned, it is never read.
    let h0 = d.join("h0.tfr");
    let mut bytes = fs::read(&h0).unwrap();
    bytes.extend_from_slice(b"\xF7TFBgarbage that is no block");
    fs::write(&h0, bytes).unwrap();
    // T0 + 7200 s = 00:13:20 on the 15th; the range is the third hour of the run.
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&d),
            "-t",
            "2023-11-15T00:13:30-2023-11-15T01:00",
            "-v",
            "-s",
            "seq",
            "--csv",
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), ["seq", "5", "6"]);
    assert!(
        o.stderr
            .contains(&format!("note: skipped {}: its records end before", p(&h0))),
        "{}",
        o.stderr
    );
    // h1 starts 1 h before the range, but the next file starts at the range (within the
    // slack), so h1 is read.
    assert!(
        o.stderr.contains("note: reading") && o.stderr.contains("h1.tfr"),
        "{}",
        o.stderr
    );
    // --no-prune reads everything: the damage in h0 is reported.
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&d),
            "-t",
            "2023-11-15T00:13:30-2023-11-15T01:00",
            "--no-prune",
            "-s",
            "seq",
            "--csv",
        ],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), ["seq", "5", "6"]);
    assert!(o.stderr.contains("h0.tfr: offset"), "{}", o.stderr);
    // A lone file is never pruned (it need not be in time order).
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&h0),
            "-t",
            "2023-11-15T00:13:30-2023-11-15T01:00",
            "-s",
            "seq",
        ],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    // Globbed files of the run are pruned like the directory.
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&h0),
            "-r",
            p(&d.join("h1.tfr")),
            "-r",
            p(&d.join("h2.tfr")),
            "-t",
            "2023-11-15T00:13:30-2023-11-15T01:00",
            "-s",
            "seq",
            "--csv",
        ],
        None,
    );
    assert_eq!(ok(&o), ["seq", "5", "6"]);
}

#[test]
fn damaged_file_reports_file_and_offset_keeps_good_records_and_exits_1() {
    let (d, f) = three_hosts_file("damaged");
    let cut = d.join("cut.tfr");
    let data = fs::read(&f).unwrap();
    // 8 records in blocks of 3: cutting into the last block loses its 2 records.
    fs::write(&cut, &data[..data.len() - 7]).unwrap();
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&cut),
            "-r",
            p(&f),
            "-M",
            "proto",
            "--csv",
            "-s",
            "trans,pkts",
        ],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    // All of f (7 flow records, 46 packets) and the first two blocks of the cut copy (five
    // flow records: 4+3, 10+8, 3+3, 1+0, 5+2 packets = 39).
    assert_eq!(o.stdout.lines().nth(1), Some("12,85"), "{}", o.stdout);
    let l: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(l.len(), 1, "{}", o.stderr);
    assert!(
        l[0].starts_with(&format!("tapflow: warning: {}: offset ", p(&cut))),
        "{}",
        l[0]
    );
    assert!(l[0].contains("partial block"), "{}", l[0]);
    // The same for sort and read.
    let o = tapflow(
        &["sort", "-r", p(&cut), "-m", "pkts", "--csv", "-s", "pkts"],
        None,
    );
    assert_eq!((o.code, o.stdout.lines().count()), (1, 6));
    let o = tapflow(&["read", "-r", p(&cut), "-s", "seq"], None);
    assert_eq!(o.code, 1);
}

#[test]
fn usage_and_input_errors_exit_2_with_one_clear_line() {
    let (d, f) = three_hosts_file("errors");
    // A time range with a caret under the problem.
    let o = tapflow(&["read", "-r", p(&f), "-t", "10:5x-11:00"], None);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert_eq!(
        o.stderr,
        "tapflow: bad time range (-t): expected '-' and the end of the range, or '+' and a \
         length (+10m)\n  10:5x-11:00\n      ^\n"
    );
    let o = tapflow(&["agg", "-r", p(&f), "-t", "11:00-10:00"], None);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.ends_with("  11:00-10:00\n        ^\n"),
        "{}",
        o.stderr
    );
    let o = tapflow(&["agg", "-r", p(&f), "-M", "saddr/33/64"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("prefix length 0-32"), "{}", o.stderr);
    let o = tapflow(&["agg", "-r", p(&f), "-M", "color"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("unknown key 'color'"), "{}", o.stderr);
    let o = tapflow(&["sort", "-r", p(&f), "-m", "-colour"], None);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("unknown field 'colour' in -m"),
        "{}",
        o.stderr
    );
    // The filter's caret, in agg as in read.
    let o = tapflow(&["agg", "-r", p(&f), "-", "port", "x"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.ends_with("  port x\n       ^\n"), "{}", o.stderr);
    // A missing input among good ones: the rest is aggregated, status 2.
    let o = tapflow(
        &[
            "agg",
            "-r",
            p(&d.join("nope.tfr")),
            "-r",
            p(&f),
            "-M",
            "proto",
            "--csv",
            "-s",
            "pkts",
        ],
        None,
    );
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "pkts\n46\n");
    assert!(o.stderr.contains("cannot open") && o.stderr.contains("nope.tfr"));
    // -w with text options is a usage error.
    assert_eq!(
        tapflow(&["sort", "-r", p(&f), "-w", "-", "--csv"], None).code,
        2
    );
    let help = tapflow(&["agg", "--help"], None);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("KEYS") && help.stdout.contains("TIME RANGE"));
}

// ---------------------------------------------------------------------------------------------
// report, anon, bins, hist

fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

const SPAMMER: [u8; 4] = [10, 0, 0, 25];
const QUIET: [u8; 4] = [10, 0, 0, 26];
const PROBER: [u8; 4] = [10, 0, 0, 27];
const CLIENT: [u8; 4] = [10, 0, 0, 5];
const SCANNER: [u8; 4] = [198, 51, 100, 66];

/// Local network 10.0.0.0/8. Within half an hour: SPAMMER sends mail to 300 distinct remote
/// hosts (5/4 packets each: out 500 B, in 4000 B per flow), QUIET to 20; PROBER sends one
/// packet to 50 hosts (below the scan threshold); the remote SCANNER sends one packet each to
/// 500 local hosts on port 23, unanswered. CLIENT downloads from 192.0.2.80:443 (out 10 000 B,
/// in 500 000 B) and serves ssh to 192.0.2.99 (receives 2 000 B, sends 30 000 B). Plus one
/// probe-status record.
fn spam_and_scan() -> Vec<FlowRecord> {
    let mut v = Vec::new();
    for i in 0..300u64 {
        let remote = [198, 18, (i / 200) as u8, (i % 200 + 1) as u8];
        v.push(at(
            tcp(SPAMMER, 30000 + i as u16, remote, 25, 5, 4),
            i * 6,
            2,
        ));
    }
    for i in 0..20u64 {
        let remote = [198, 19, 0, i as u8 + 1];
        v.push(at(
            tcp(QUIET, 31000 + i as u16, remote, 25, 5, 4),
            i * 60,
            2,
        ));
    }
    // SYN probes (no SYN-ACK back).
    let syn = |mut r: FlowRecord| {
        r.src.tcp_flags = 0x02;
        r
    };
    for i in 0..50u64 {
        let remote = [203, 0, 113, i as u8 + 1];
        v.push(at(syn(tcp(PROBER, 32000, remote, 8080, 1, 0)), 100 + i, 0));
    }
    for i in 0..500u64 {
        let local = [10, 1, (i / 250) as u8, (i % 250 + 1) as u8];
        v.push(at(syn(tcp(SCANNER, 55555, local, 23, 1, 0)), 200 + i, 0));
    }
    v.push(at(
        tcp(CLIENT, 40000, [192, 0, 2, 80], 443, 100, 500),
        10,
        600,
    ));
    // Initiated by the remote host: 20 packets of 100 B in, 30 of 1000 B out.
    v.push(at(tcp([192, 0, 2, 99], 50000, CLIENT, 22, 20, 30), 20, 300));
    v.push(status_record(T0 + 5 * S));
    v
}

#[test]
fn report_flags_spam_fanout_and_scans_and_ranks_top_talkers() {
    let d = scratch("report");
    let f = d.join("flows.tfr");
    write_file(&f, header(1, 1), &spam_and_scan(), 64);
    let o = tapflow(
        &[
            "report",
            "-r",
            p(&f),
            "--local",
            "10.0.0.0/8",
            "--top",
            "3",
            "--json",
        ],
        None,
    );
    assert_eq!(o.stderr, "");
    let r = json(&o);
    let t = &r["totals"];
    assert_eq!(t["records"], 300 + 20 + 50 + 500 + 2);
    assert_eq!(t["meta_records_skipped"], 1);
    // Top talkers, hand-checked: SPAMMER 300 × (500 out + 4000 in), CLIENT 10 000 + 30 000
    // out and 500 000 + 2 000 in, QUIET 20 × 4 500.
    let hosts = r["top_hosts"].as_array().unwrap();
    let row = |h: &serde_json::Value| {
        (
            h["host"].as_str().unwrap().to_string(),
            h["out_bytes"].as_u64().unwrap(),
            h["in_bytes"].as_u64().unwrap(),
            h["records"].as_u64().unwrap(),
        )
    };
    assert_eq!(
        hosts.iter().map(row).collect::<Vec<_>>(),
        [
            ("10.0.0.25".to_string(), 150_000, 1_200_000, 300),
            ("10.0.0.5".to_string(), 40_000, 502_000, 2),
            ("10.0.0.26".to_string(), 10_000, 80_000, 20),
        ]
    );
    assert_eq!(hosts[1]["out_pkts"], 130);
    assert_eq!(hosts[1]["in_pkts"], 520);
    // CLIENT's ports: the https it used and the ssh it served.
    let ports: Vec<(&str, u64, u64)> = hosts[1]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["out_bytes"].as_u64().unwrap(),
                p["in_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("tcp/443", 10_000, 500_000),
            ("tcp/22 (served)", 30_000, 2_000)
        ]
    );
    // Fan-out: 300 remotes on port 25 within the hour is flagged, 20 is not.
    let alerts = r["fanout"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["host"], "10.0.0.25");
    let remotes = alerts[0]["remotes"].as_u64().unwrap();
    assert!(
        (280..=320).contains(&remotes),
        "{remotes} (an estimate of 300)"
    );
    // Scans: 500 one-packet probes are flagged, PROBER's 50 are not.
    let scans = r["scans"]["scanners"].as_array().unwrap();
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(scans[0]["source"], "198.51.100.66");
    assert_eq!(scans[0]["kind"], "horizontal");
    assert_eq!(scans[0]["probes"], 500);
    let targets = scans[0]["targets"].as_u64().unwrap();
    assert!(
        (470..=530).contains(&targets),
        "{targets} (an estimate of 500)"
    );

    // The thresholds are the operator's: K = 10 flags QUIET too; 40 targets flags PROBER.
    let o = tapflow(
        &[
            "report",
            "-r",
            p(&f),
            "--local",
            "10.0.0.0/8",
            "--fanout-k",
            "10",
            "--scan-targets",
            "40",
            "--json",
        ],
        None,
    );
    let r = json(&o);
    let mut flagged: Vec<&str> = r["fanout"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["host"].as_str().unwrap())
        .collect();
    flagged.sort();
    assert_eq!(flagged, ["10.0.0.25", "10.0.0.26"]);
    assert_eq!(r["scans"]["scanners"].as_array().unwrap().len(), 2);

    // Text: the same findings, top hosts numbered in order; the filter applies first.
    let o = tapflow(
        &[
            "report",
            "-r",
            p(&f),
            "--local",
            "10.0.0.0/8",
            "-N",
            "2",
            "-",
            "not",
            "port",
            "23",
        ],
        None,
    );
    let text = ok(&o).join("\n");
    let pos = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
    };
    assert!(pos(" 1 10.0.0.25") < pos(" 2 10.0.0.5"));
    assert!(!text.contains("\n   3 "), "-N 2 shows two hosts:\n{text}");
    let fan = &text[pos("Fan-out:")..pos("Scans:")];
    assert!(
        fan.contains("10.0.0.25") && !fan.contains("10.0.0.26"),
        "{fan}"
    );
    assert!(
        text[pos("Scans:")..].contains("(none)"),
        "port 23 filtered out:\n{text}"
    );

    // --local is required; a bad network or duration is a usage error.
    let o = tapflow(&["report", "-r", p(&f)], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--local"), "{}", o.stderr);
    let o = tapflow(&["report", "-r", p(&f), "--local", "10.0.0.0/33"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("prefix length"), "{}", o.stderr);
    let o = tapflow(
        &[
            "report",
            "-r",
            p(&f),
            "--local",
            "10.0.0.0/8",
            "--fanout-window",
            "1y",
        ],
        None,
    );
    assert_eq!((o.code, o.stdout.as_str()), (2, ""));
    assert!(o.stderr.contains("--fanout-window 1y"), "{}", o.stderr);
}

/// Leading bits two IPv4 addresses share.
fn common_prefix(a: &str, b: &str) -> u32 {
    let v = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
    (v(a) ^ v(b)).leading_zeros()
}

#[test]
fn anon_output_is_valid_records_with_prefixes_and_low_ports_kept() {
    let d = scratch("anon");
    let f = d.join("flows.tfr");
    let mut with_payload = at(tcp([10, 1, 2, 3], 40000, [192, 0, 2, 80], 443, 4, 3), 0, 5);
    with_payload.src_payload = b"GET / HTTP/1.1".to_vec();
    with_payload.flags |= tapflow_record::flags::PAYLOAD;
    let recs = vec![
        with_payload,
        at(tcp([10, 1, 2, 77], 40001, [192, 0, 2, 80], 80, 2, 2), 1, 5),
        at(tcp([10, 9, 0, 1], 5353, [198, 51, 100, 7], 22, 1, 1), 2, 5),
        status_record(T0 + 5 * S),
    ];
    write_file(&f, header(1, 1), &recs, 8);
    let key = d.join("anon.key");
    fs::write(
        &key,
        "00112233445566778899aabbccddeeff\n0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let anon = |out: &Path, extra: &[&str]| {
        let mut a = vec!["anon", "-r", p(&f), "--key-file", p(&key), "-w", p(out)];
        a.extend_from_slice(extra);
        let o = tapflow(&a, None);
        assert_eq!((o.code, o.stderr.as_str(), o.stdout.as_str()), (0, "", ""));
    };
    let fields = ["--csv", "-u", "-s", "saddr,sport,daddr,dport,pkts,stime"];
    let read = |file: &Path| {
        let mut a = vec!["read", "-r", p(file)];
        a.extend_from_slice(&fields);
        csv(&tapflow(&a, None))
    };
    let out = d.join("anon.tfr");
    anon(&out, &[]);
    let orig = read(&f);
    let got = read(&out);
    assert_eq!(got.len(), 3);
    for (o, g) in orig.iter().zip(&got) {
        assert_ne!(o[0], g[0], "saddr changed");
        assert_ne!(o[2], g[2], "daddr changed");
        assert_eq!(o[4], g[4], "counters kept");
        assert_eq!(o[5], g[5], "times kept by default");
    }
    // Prefix relations survive: 10.1.2.3 / 10.1.2.77 share 25 bits, 10.1.2.3 / 10.9.0.1
    // share 12; both daddrs of the first two are one host.
    assert_eq!(common_prefix(&orig[0][0], &orig[1][0]), 25);
    assert_eq!(common_prefix(&got[0][0], &got[1][0]), 25);
    assert_eq!(
        common_prefix(&got[0][0], &got[2][0]),
        common_prefix(&orig[0][0], &orig[2][0])
    );
    assert_eq!(got[0][2], got[1][2]);
    // Ports below 1024 kept, others permuted.
    assert_eq!(
        got.iter().map(|r| r[3].as_str()).collect::<Vec<_>>(),
        ["443", "80", "22"]
    );
    for (o, g) in orig.iter().zip(&got) {
        assert_ne!(o[1], g[1], "ephemeral port {} kept", o[1]);
    }
    // Same key, same output; the status record passed through; the payload is gone.
    let again = d.join("again.tfr");
    anon(&again, &[]);
    assert_eq!(read(&again), got);
    let st = tapflow(&["read", "-r", p(&out), "--status"], None);
    assert_eq!(ok(&st).len(), 1);
    let rd = tapflow_record::RecordReader::new(fs::File::open(&out).unwrap(), "out").unwrap();
    let back: Vec<FlowRecord> = rd.map(Result::unwrap).collect();
    assert_eq!(back.len(), 4);
    assert!(back
        .iter()
        .all(|r| r.src_payload.is_empty() && r.flags & tapflow_record::flags::PAYLOAD == 0));
    // A passphrase in the environment: another mapping, stable, still prefix-preserving;
    // times shifted by exactly one day.
    let pass = |extra: &[&str]| {
        let mut a = vec!["anon", "-r", p(&f), "-w", "-"];
        a.extend_from_slice(extra);
        let mut c = Command::new(bin("tapflow"));
        c.args(&a).env("TAPFLOW_ANON_KEY", "correct horse");
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut r = vec!["read", "-r", "-"];
        r.extend_from_slice(&fields);
        csv(&tapflow(&r, Some(&o.stdout)))
    };
    let env = pass(&["--time-shift", "-1d"]);
    assert_ne!(env[0][0], got[0][0]);
    assert_eq!(common_prefix(&env[0][0], &env[1][0]), 25);
    assert_eq!(pass(&["--time-shift", "-86400"]), env);
    let secs = |r: &Vec<String>| r[5].parse::<f64>().unwrap();
    assert_eq!(secs(&orig[0]) - secs(&env[0]), 86_400.0);
    // No key: a usage error naming the ways to give one; -w over the input is refused.
    let o = tapflow(&["anon", "-r", p(&f), "-w", p(&d.join("x.tfr"))], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--key-file") && o.stderr.contains("TAPFLOW_ANON_KEY"));
    let o = tapflow(
        &["anon", "-r", p(&f), "--key-file", p(&key), "-w", p(&f)],
        None,
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("also an input"), "{}", o.stderr);
    assert_eq!(read(&f), orig, "the input is untouched");
    // A passphrase on the command line works, with a warning.
    let o = tapflow(
        &[
            "anon",
            "-r",
            p(&f),
            "--passphrase",
            "correct horse",
            "-w",
            p(&d.join("y.tfr")),
        ],
        None,
    );
    assert_eq!(o.code, 0);
    assert!(o.stderr.contains("warning"), "{}", o.stderr);
    assert_eq!(read(&d.join("y.tfr"))[0][0], pass(&[])[0][0]);
}

#[test]
fn bins_per_minute_sums_equal_the_input_totals() {
    let (_d, f) = three_hosts_file("bins");
    // Minutes start at T0 - 20 s. The A→WEB record at 10 s lasting 50 s (2/1 packets,
    // 200/1000 bytes) has 30 s in the first minute and 20 s in the second: 1/0 packets and
    // 120/600 bytes, then 1/1 and 80/400.
    let o = tapflow(&["bins", "-r", p(&f), "-B", "1m", "--csv"], None);
    assert_eq!(ok(&o)[0], "stime,count,spkts,dpkts,sbytes,dbytes");
    assert_eq!(
        csv(&o),
        [
            ["1699999980", "5", "23", "16", "2320", "16600"],
            ["1700000040", "3", "4", "3", "380", "2400"],
        ]
    );
    // rabins' `-M 1m` is the same.
    let o2 = tapflow(&["bins", "-r", p(&f), "-M", "1m", "--csv"], None);
    assert_eq!(o2.stdout, o.stdout);
    // Whole records in the bin of their start.
    let o = tapflow(
        &["bins", "-r", p(&f), "-B", "1m", "--start-bin", "--csv"],
        None,
    );
    assert_eq!(
        csv(&o),
        [
            ["1699999980", "5", "24", "17", "2400", "17000"],
            ["1700000040", "2", "3", "2", "300", "2000"],
        ]
    );
    // Per key, any bin size: each host's sums are agg's totals (A 20 packets, B 25, C 1).
    let o = tapflow(
        &["bins", "-r", p(&f), "-B", "7s", "-M", "saddr", "--json"],
        None,
    );
    let mut pkts = std::collections::BTreeMap::<String, u64>::new();
    let mut totals = [0u64; 4];
    for l in ok(&o) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap();
        *pkts.entry(v["saddr"].as_str().unwrap().into()).or_default() += n("spkts") + n("dpkts");
        for (t, k) in totals
            .iter_mut()
            .zip(["spkts", "dpkts", "sbytes", "dbytes"])
        {
            *t += n(k);
        }
    }
    assert_eq!(totals, [27, 19, 2700, 19000]);
    assert_eq!(
        pkts.into_iter().collect::<Vec<_>>(),
        [
            ("10.0.0.1".to_string(), 20),
            ("10.0.0.2".to_string(), 25),
            ("10.0.1.3".to_string(), 1)
        ]
    );
    // The filter applies first; text output has a header.
    let o = tapflow(
        &["bins", "-r", p(&f), "-B", "1h", "-u", "-", "port", "25"],
        None,
    );
    let lines = ok(&o);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>()[..2],
        ["StartTime", "Count"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["1699999200", "2", "3", "2", "300", "2000"]
    );
    // No bin size, or a bad key: usage errors.
    let o = tapflow(&["bins", "-r", p(&f), "-M", "saddr"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("-B 1m"), "{}", o.stderr);
    let o = tapflow(&["bins", "-r", p(&f), "-B", "1m", "-M", "colour"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("unknown key 'colour'"), "{}", o.stderr);
}

#[test]
fn hist_counts_sum_to_the_records_and_bad_fields_are_named() {
    let (d, f) = three_hosts_file("hist");
    // Packets per flow record: 7 18 6 1 7 3 4.
    let o = tapflow(
        &[
            "hist",
            "-r",
            p(&f),
            "pkts",
            "--bins",
            "2",
            "--range",
            "0:20",
            "--csv",
        ],
        None,
    );
    assert_eq!(ok(&o)[0], "bin,low,high,count,fraction,cumulative");
    let rows = csv(&o);
    let counts: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(counts, ["6", "1"]);
    let o = tapflow(&["hist", "-r", p(&f), "pkts", "--log", "--json"], None);
    let h = json(&o);
    assert_eq!(
        (h["values"].as_u64(), h["no_value"].as_u64()),
        (Some(7), Some(0))
    );
    assert_eq!(
        (h["min"].as_f64(), h["max"].as_f64()),
        (Some(1.0), Some(18.0))
    );
    let binned: u64 = h["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        binned + h["under"].as_u64().unwrap() + h["over"].as_u64().unwrap(),
        7
    );
    // The filter: port 80 keeps 5 records.
    let o = tapflow(
        &["hist", "-r", p(&f), "dur", "--json", "-", "port", "80"],
        None,
    );
    assert_eq!(json(&o)["values"], 5);
    // Text: a summary line and a row per bin.
    let o = tapflow(&["hist", "-r", p(&f), "bytes", "--bins", "4"], None);
    let lines = ok(&o);
    assert!(
        lines[0].starts_with("bytes: 7 records with a value"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 2 + 4);
    // A bad field: exit 2, nothing on stdout, the valid fields named.
    let o = tapflow(&["hist", "-r", p(&f), "colour"], None);
    assert_eq!((o.code, o.stdout.as_str()), (2, ""));
    assert!(o.stderr.contains("unknown field 'colour'"), "{}", o.stderr);
    assert!(
        o.stderr.contains("dur,") && o.stderr.contains("pkts,"),
        "{}",
        o.stderr
    );
    let o = tapflow(&["hist", "-r", p(&f), "saddr"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("not numeric"), "{}", o.stderr);
    let o = tapflow(&["hist", "-r", p(&f), "dur", "--range", "5:1"], None);
    assert_eq!(o.code, 2);
    let o = tapflow(&["hist", "-r", p(&f), "-", "tcp"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("FIELD"), "{}", o.stderr);
    // Damaged input: the good records are counted, exit 1 (blocks of 3: five flow records
    // survive the cut).
    let data = fs::read(&f).unwrap();
    let cut = d.join("cut.tfr");
    fs::write(&cut, &data[..data.len() - 7]).unwrap();
    let o = tapflow(&["hist", "-r", p(&cut), "pkts", "--json"], None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("offset"), "{}", o.stderr);
    let h: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(h["values"], 5);
    let o = tapflow(&["bins", "-r", p(&cut), "-B", "1d", "--csv"], None);
    assert_eq!(o.code, 1);
    assert_eq!(
        csv(&Out {
            code: 0,
            stderr: String::new(),
            ..o
        })[0][1],
        "5"
    );
}

#[test]
fn help_lists_the_analysis_subcommands_with_examples() {
    let o = tapflow(&["--help"], None);
    for c in ["report", "anon", "bins", "hist"] {
        assert!(o.stdout.contains(&format!("  {c} ")), "{c}:\n{}", o.stdout);
        let h = tapflow(&[c, "--help"], None);
        assert_eq!(h.code, 0);
        assert!(
            h.stdout.contains("EXAMPLES:") && h.stdout.contains(&format!("tapflow {c} -r")),
            "{c}:\n{}",
            h.stdout
        );
        assert!(h.stdout.contains("TIME RANGE"), "{c}");
    }
}

/// `-w` onto one of the inputs would truncate it before a record is read: refused, input
/// untouched, for every subcommand that writes records.
#[test]
fn writing_over_an_input_is_refused() {
    let (d, f) = three_hosts_file("analysis-w-over-input");
    let before = fs::read(&f).unwrap();
    for cmd in ["read", "sort", "agg"] {
        let o = tapflow(&[cmd, "-r", p(&f), "-w", p(&f)], None);
        assert_eq!(o.code, 2, "{cmd}: {}", o.stderr);
        assert!(o.stderr.contains("is also an input"), "{cmd}: {}", o.stderr);
        assert_eq!(fs::read(&f).unwrap(), before, "{cmd} changed its input");
    }
    // Into a file inside an input directory as well.
    let o = tapflow(&["sort", "-r", p(&d), "-w", p(&f)], None);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(fs::read(&f).unwrap(), before);
    let _ = fs::remove_dir_all(&d);
}

/// A file rotated at midnight starts with flows that began just before it: a time of day is
/// still taken on the date of the data, and the date chosen is said.
#[test]
fn time_of_day_is_on_the_date_of_the_data_despite_a_straggler_before_midnight() {
    let d = scratch("analysis-tod-midnight");
    let f = d.join("day.tfr");
    // The first midnight after T0; the file's first record started 2 s before it.
    let day = 86_400 * S;
    let m = (T0 / day + 1) * day;
    let rec_at = |r: FlowRecord, t: u64, dur: u64| {
        let mut r = r;
        r.stime_ns = t;
        r.ltime_ns = t + dur * S;
        r
    };
    let mut recs = vec![rec_at(tcp(A, 40000, WEB, 80, 1, 1), m - 2 * S, 10)];
    for i in 0..10u16 {
        recs.push(rec_at(
            tcp(B, 41000 + i, WEB, 80, 1, 1),
            m + (1800 + u64::from(i)) * S,
            1,
        ));
    }
    write_file(&f, header(1, 1), &recs, 4);
    let o = tapflow(
        &[
            "read",
            "-r",
            p(&f),
            "-t",
            "00:29-00:32",
            "-s",
            "sport",
            "-n",
        ],
        None,
    );
    let ports = ok(&o)
        .iter()
        .filter(|l| l.trim().starts_with("410"))
        .count();
    assert_eq!(ports, 10, "{}\n{}", o.stdout, o.stderr);
    // -v says which date was taken.
    let o = tapflow(&["read", "-v", "-r", p(&f), "-t", "00:29-00:32"], None);
    assert!(o.stderr.contains("taken on"), "{}", o.stderr);
    let _ = fs::remove_dir_all(&d);
}

/// An archive directory with no record files (a typo, an empty mount) is not "no traffic":
/// said on stderr, exit status 1, for every subcommand.
#[test]
fn an_empty_archive_directory_exits_1() {
    let d = scratch("analysis-empty-dir");
    fs::create_dir_all(&d).unwrap();
    for args in [
        vec!["read", "-r", p(&d)],
        vec!["agg", "-r", p(&d)],
        vec!["hist", "-r", p(&d), "pkts"],
    ] {
        let o = tapflow(&args, None);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("no record files in"), "{}", o.stderr);
    }
    let _ = fs::remove_dir_all(&d);
}
