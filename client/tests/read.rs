//! End-to-end tests of `tapflow read`: write a small .tfr with RecordWriter, run the binary.

use std::fs;
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tapflow_record::{
    Addr, AddrKind, Cause, DirStats, FileHeader, FlowRecord, FlowState, RecordWriter,
    WriterOptions, FORMAT_MAJOR, FORMAT_MINOR,
};

const T0: u64 = 1_700_000_000_000_000_000; // 2023-11-14 22:13:20 UTC

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("read-tests")
        .join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn stats(pkts: u64, bytes: u64) -> DirStats {
    DirStats {
        pkts,
        bytes,
        ..Default::default()
    }
}

fn v4(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, proto: u8) -> FlowRecord {
    FlowRecord {
        addr_kind: AddrKind::Ipv4,
        proto,
        ethertype: 0x0800,
        saddr: Addr::from_v4(s),
        daddr: Addr::from_v4(d),
        sport: sp,
        dport: dp,
        smac: [2, 0, 0, 0, 0, 1],
        dmac: [2, 0, 0, 0, 0, 2],
        src: stats(3, 300),
        dst: stats(2, 200),
        cause: Cause::Close,
        ..Default::default()
    }
}

/// Five records: tcp/ssh, udp/dns, icmp echo, tcp over IPv6, arp.
fn sample() -> Vec<FlowRecord> {
    let mut ssh = v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 22, 6);
    ssh.state = FlowState::Con;
    ssh.synack_ns = 1_000_000;
    ssh.ackdat_ns = 500_000;
    let dns = v4([10, 0, 0, 3], 5353, [10, 0, 0, 53], 53, 17);
    let mut ping = v4([10, 0, 0, 1], 8 << 8, [8, 8, 8, 8], 0x0042, 1);
    ping.dst = stats(0, 0);
    let v6 = |s: &str| Addr(s.parse::<Ipv6Addr>().unwrap().octets());
    let web6 = FlowRecord {
        addr_kind: AddrKind::Ipv6,
        proto: 6,
        ethertype: 0x86dd,
        saddr: v6("2001:db8::1"),
        daddr: v6("2001:db8::2"),
        sport: 50000,
        dport: 443,
        state: FlowState::Rst,
        src: stats(4, 400),
        dst: stats(1, 60),
        ..Default::default()
    };
    let arp = FlowRecord {
        addr_kind: AddrKind::L2,
        ethertype: 0x0806,
        saddr: Addr::from_mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
        daddr: Addr::from_mac([0xff; 6]),
        smac: [0, 0x11, 0x22, 0x33, 0x44, 0x55],
        dmac: [0xff; 6],
        src: stats(1, 60),
        ..Default::default()
    };
    let mut v = vec![ssh, dns, ping, web6, arp];
    for (i, r) in v.iter_mut().enumerate() {
        r.probe_id = 9;
        r.seq = i as u64 + 1;
        r.stime_ns = T0 + i as u64 * 1_000_000_000;
        r.ltime_ns = r.stime_ns + 1_500_000;
    }
    v
}

fn write_tfr(path: &Path, recs: &[FlowRecord], opts: WriterOptions) {
    let f = fs::File::create(path).unwrap();
    let header = FileHeader {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        probe_id: 9,
        created_ns: T0,
        flags: 0,
    };
    let mut w = RecordWriter::new(f, &header, opts).unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

fn sample_file(name: &str) -> PathBuf {
    let p = tmpdir(name).join("flows.tfr");
    write_tfr(&p, &sample(), WriterOptions::default());
    p
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn tapflow(args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapflow"))
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
    Out {
        code: o.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn read(file: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["read", "-r", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    tapflow(&args, None)
}

fn ok(o: &Out) -> Vec<&str> {
    assert_eq!(o.code, 0, "stderr: {}", o.stderr);
    assert_eq!(o.stderr, "");
    o.stdout.lines().collect()
}

#[test]
fn default_columns() {
    let f = sample_file("default_columns");
    let o = read(&f, &[]);
    let lines = ok(&o);
    assert_eq!(lines.len(), 6, "{}", o.stdout);
    assert!(lines[0].starts_with("StartTime "));
    for t in [
        "Flgs", "Proto", "SrcAddr", "Sport", "Dir", "DstAddr", "Dport", "TotPkts", "TotBytes",
        "State",
    ] {
        assert!(lines[0].contains(t), "{t}");
    }
    assert_eq!(
        lines[1],
        "2023-11-14 22:13:20.000000  e        tcp              10.0.0.1 40000   <->           10.0.0.2 ssh           5        500 CON"
    );
    assert!(lines[2].contains(" udp ") && lines[2].contains(" domain "));
    assert!(
        lines[3].contains(" 0x0800 ")
            && lines[3].contains(" 0x0042 ")
            && lines[3].ends_with(" ECO")
    );
    assert!(
        lines[4].contains("2001:db8::1") && lines[4].contains("https") && lines[4].ends_with("RST")
    );
    assert!(
        lines[5].contains("00:11:22:33:44:55")
            && lines[5].contains(" who ")
            && lines[5].contains(" arp ")
    );
}

#[test]
fn numeric_and_epoch() {
    let f = sample_file("numeric_and_epoch");
    let o = read(&f, &["-n", "-u", "-s", "stime,sport,dport,dur,tcprtt"]);
    let lines = ok(&o);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["1700000000.000000", "40000", "22", "0.001500", "0.001500"]
    );
    assert!(lines[2].contains(" 53"));
}

#[test]
fn field_selection_plus_and_minus() {
    let f = sample_file("field_selection");
    let o = read(&f, &["-s", "-flgs", "-s", "+seq,+probe"]);
    let lines = ok(&o);
    assert!(!lines[0].contains("Flgs"));
    fn tail(l: &str) -> Vec<&str> {
        l.split_whitespace().rev().take(3).collect()
    }
    assert_eq!(tail(lines[0]), ["ProbeId", "Seq", "State"]);
    assert_eq!(tail(lines[1]), ["9", "1", "CON"]);
}

#[test]
fn filters() {
    let f = sample_file("filters");
    let count = |expr: &[&str]| {
        let mut a = vec!["-s", "seq", "-"];
        a.extend_from_slice(expr);
        let o = read(&f, &a);
        ok(&o).len() - 1
    };
    assert_eq!(count(&["tcp"]), 2);
    assert_eq!(count(&["tcp", "and", "host", "10.0.0.1"]), 1);
    assert_eq!(count(&["tcp and host 10.0.0.1"]), 1);
    assert_eq!(count(&["host", "10.0.0.1"]), 2);
    assert_eq!(count(&["src", "host", "10.0.0.2"]), 0);
    assert_eq!(count(&["ip6"]), 1);
    assert_eq!(count(&["net", "2001:db8::/32"]), 1);
    assert_eq!(count(&["arp", "or", "icmp"]), 2);
    assert_eq!(count(&["not", "(", "tcp", "or", "udp", ")"]), 2);
    assert_eq!(count(&["!", "ip"]), 2);
    assert_eq!(count(&["port", "https", "||", "dst", "port", "53"]), 2);
    assert_eq!(count(&["host", "ff:ff:ff:ff:ff:ff"]), 1);
    // `--` works too.
    let o = read(&f, &["-s", "seq", "--", "udp"]);
    assert_eq!(ok(&o), ["     Seq", "       2"]);
}

#[test]
fn csv_output() {
    let f = sample_file("csv_output");
    let o = read(
        &f,
        &[
            "--csv",
            "-s",
            "stime,saddr,sport,dir,daddr,dport,proto,state",
        ],
    );
    let lines = ok(&o);
    assert_eq!(lines[0], "stime,saddr,sport,dir,daddr,dport,proto,state");
    assert_eq!(
        lines[1],
        "2023-11-14 22:13:20.000000,10.0.0.1,40000,<->,10.0.0.2,22,tcp,CON"
    );
    assert_eq!(
        lines[3],
        "2023-11-14 22:13:22.000000,10.0.0.1,0x0800,->,8.8.8.8,0x0042,icmp,ECO"
    );
    assert_eq!(
        lines[5],
        "2023-11-14 22:13:24.000000,00:11:22:33:44:55,,who,ff:ff:ff:ff:ff:ff,,arp,REQ"
    );
    let o = read(
        &f,
        &["--csv", "-u", "-c", ";", "-s", "stime,dur", "-", "udp"],
    );
    assert_eq!(ok(&o), ["stime;dur", "1700000001.000000;0.001500"]);
}

#[test]
fn delimited_output() {
    let f = sample_file("delimited_output");
    let o = read(&f, &["-c", ",", "-s", "saddr,dport,pkts", "-", "tcp"]);
    assert_eq!(
        ok(&o),
        [
            "SrcAddr,Dport,TotPkts",
            "10.0.0.1,ssh,5",
            "2001:db8::1,https,5"
        ]
    );
}

#[test]
fn json_output() {
    let f = sample_file("json_output");
    let o = read(
        &f,
        &["--json", "-s", "stime,saddr,sport,dport,pkts,dur,state"],
    );
    let lines = ok(&o);
    assert_eq!(lines.len(), 5);
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[0]["stime"].as_f64(), Some(1_700_000_000.0));
    assert_eq!(v[0]["sport"].as_u64(), Some(40000));
    assert_eq!(v[0]["dport"].as_u64(), Some(22));
    assert_eq!(v[0]["pkts"].as_u64(), Some(5));
    assert_eq!(v[0]["dur"].as_f64(), Some(0.0015));
    assert_eq!(v[0]["state"], "CON");
    assert_eq!(v[2]["sport"].as_u64(), Some(0x0800));
    assert_eq!(v[3]["saddr"], "2001:db8::1");
    assert!(v[4]["sport"].is_null());
    // All fields at once still give valid JSON.
    let o = read(&f, &["--json", "-s", "help"]);
    let names: Vec<&str> = ok(&o)
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let o = read(&f, &["--json", "-s", &names.join(",")]);
    for l in ok(&o) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v.as_object().unwrap().len(), names.len());
    }
}

#[test]
fn several_files_and_limit() {
    let f = sample_file("several_files");
    let p = f.to_str().unwrap();
    let o = tapflow(&["read", "-r", p, "-r", p, "-s", "seq"], None);
    assert_eq!(ok(&o).len(), 11);
    let o = tapflow(&["read", "-r", p, "-r", p, "-N", "7", "-s", "seq"], None);
    let lines = ok(&o);
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[7].trim(), "2");
}

#[test]
fn stdin_input() {
    let f = sample_file("stdin_input");
    let data = fs::read(&f).unwrap();
    let o = tapflow(&["read", "-r", "-", "-s", "seq", "-", "ip"], Some(&data));
    assert_eq!(ok(&o), ["     Seq", "       1", "       2", "       3"]);
    // Concatenated files on a pipe read as one stream.
    let mut two = data.clone();
    two.extend_from_slice(&data);
    let o = tapflow(&["read", "-r", "-", "-s", "seq"], Some(&two));
    assert_eq!(ok(&o).len(), 11);
}

#[test]
fn missing_file_is_one_line_and_status_2() {
    let d = tmpdir("missing_file");
    let missing = d.join("nope.tfr");
    let o = read(&missing, &[]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.starts_with("tapflow: cannot open "));
    assert!(
        o.stderr.contains("nope.tfr: No such file or directory"),
        "{}",
        o.stderr
    );
}

#[test]
fn missing_file_among_good_ones_still_prints_the_rest() {
    let f = sample_file("missing_among");
    let d = f.parent().unwrap().join("nope.tfr");
    let o = tapflow(
        &[
            "read",
            "-r",
            d.to_str().unwrap(),
            "-r",
            f.to_str().unwrap(),
            "-s",
            "seq",
        ],
        None,
    );
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout.lines().count(), 6);
    assert_eq!(o.stderr.lines().count(), 1);
}

#[test]
fn non_tapflow_file() {
    let d = tmpdir("non_tapflow");
    let p = d.join("notes.txt");
    fs::write(&p, "hello, this is not a record file\n".repeat(10)).unwrap();
    let o = read(&p, &[]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.starts_with("tapflow: "));
    assert!(o.stderr.contains("notes.txt"));
    assert!(
        o.stderr.contains("not a tapflow record file"),
        "{}",
        o.stderr
    );
    let empty = d.join("empty.tfr");
    fs::write(&empty, b"").unwrap();
    let o = read(&empty, &[]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
}

#[test]
fn truncated_file_warns_and_keeps_what_it_can() {
    let d = tmpdir("truncated");
    let p = d.join("cut.tfr");
    let opts = WriterOptions {
        block_records: 2,
        ..Default::default()
    };
    write_tfr(&p, &sample(), opts);
    let data = fs::read(&p).unwrap();
    fs::write(&p, &data[..data.len() - 5]).unwrap();
    let o = read(&p, &["-s", "seq"]);
    // Damage is an error in the exit status (1), after every good record was printed.
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(
        o.stdout.lines().count(),
        5,
        "header and the 4 records of the intact blocks"
    );
    assert!(o.stderr.starts_with("tapflow: warning: "), "{}", o.stderr);
    assert!(o.stderr.contains("cut.tfr"));
}

#[test]
fn bad_filter_shows_a_caret() {
    let f = sample_file("bad_filter");
    let o = read(&f, &["-", "tcp", "and", "port", "x"]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert_eq!(
        o.stderr,
        "tapflow: bad filter: expected a port number after 'port'\n  tcp and port x\n               ^\n"
    );
    let o = read(&f, &["-", "(tcp", "or", "udp"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.ends_with("  (tcp or udp\n             ^\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_field_lists_valid_ones() {
    let f = sample_file("bad_field");
    let o = read(&f, &["-s", "saddr,bogus"]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr.lines().count(), 1);
    assert!(o
        .stderr
        .starts_with("tapflow: unknown field 'bogus' in -s; valid fields: seq, probe, stime,"));
    assert!(o.stderr.contains("tcprtt"));
}

#[test]
fn usage_errors() {
    let f = sample_file("usage_errors");
    // A bare word is not taken as a filter: ra wants a lone '-'.
    let o = read(&f, &["tcp"]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stderr.lines().count(), 1);
    assert!(
        o.stderr.contains("unexpected argument 'tcp'"),
        "{}",
        o.stderr
    );
    // Reading stdin twice.
    let o = tapflow(&["read", "-r", "-", "-r", "-"], Some(b""));
    assert_eq!(o.code, 2);
    assert!(o.stderr.starts_with("tapflow: standard input"));
    // clap: no -r, unknown flag, conflicting formats.
    assert_eq!(tapflow(&["read"], None).code, 2);
    assert_eq!(read(&f, &["--bogus"]).code, 2);
    assert_eq!(read(&f, &["--csv", "--json"]).code, 2);
    assert_eq!(tapflow(&["frobnicate"], None).code, 2);
    let help = tapflow(&["read", "--help"], None);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("FILTER"));
}

#[test]
fn broken_pipe_exits_quietly() {
    let d = tmpdir("broken_pipe");
    let p = d.join("many.tfr");
    let one = sample().remove(0);
    let recs: Vec<FlowRecord> = (0..30_000u64)
        .map(|i| FlowRecord {
            seq: i,
            ..one.clone()
        })
        .collect();
    write_tfr(&p, &recs, WriterOptions::default());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapflow"))
        .args(["read", "-r", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(err, "");
}
