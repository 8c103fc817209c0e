//! `tapflow top` and `tapflow plot` as a user runs them: top over a real TCP record stream
//! (batch frames as records arrive, and the interactive view in a pseudo-terminal), plot's
//! series against `tapflow bins`, and its SVG and PNG files.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tapflow_record::{
    Addr, AddrKind, Cause, DirStats, FileHeader, FlowRecord, FlowState, RecordWriter, WriterOptions,
};
use tapflow_tests::{bin, scratch};

const S: u64 = 1_000_000_000;
/// 2026-11-24 10:00:00 UTC.
const T0: u64 = 1_795_514_400 * S;

fn tcp(s: [u8; 4], d: [u8; 4], dport: u16, bytes: u64, stime_s: u64, dur_s: u64) -> FlowRecord {
    FlowRecord {
        probe_id: 1,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: Addr::from_v4(s),
        daddr: Addr::from_v4(d),
        sport: 40000,
        dport,
        state: FlowState::Con,
        cause: Cause::Status,
        stime_ns: T0 + stime_s * S,
        ltime_ns: T0 + (stime_s + dur_s) * S,
        src: DirStats {
            pkts: bytes / 100,
            bytes,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn header() -> FileHeader {
    FileHeader {
        probe_id: 1,
        created_ns: T0,
        ..Default::default()
    }
}

fn write_file(path: &Path, recs: &[FlowRecord]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = RecordWriter::new(f, &header(), WriterOptions::default()).unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("tapflow"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const WEB: [u8; 4] = [192, 0, 2, 80];

#[test]
fn top_batch_frames_follow_a_live_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // The stream: host A's records at once, host B's 1.5 s later, then the end.
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let opts = WriterOptions {
            block_records: 1,
            ..Default::default()
        };
        let mut w = RecordWriter::new(sock, &header(), opts).unwrap();
        for i in 0..3 {
            w.write(&tcp(A, WEB, 443, 10_000, 100 + i, 5)).unwrap();
        }
        w.flush_block().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        w.write(&tcp(B, WEB, 80, 500_000, 104, 5)).unwrap();
        w.finish().unwrap();
    });
    let mut child = Command::new(bin("tapflow"))
        .args([
            "top",
            "--batch",
            "-S",
            &addr,
            "--refresh",
            "0.3",
            "-M",
            "saddr",
            "-s",
            "saddr,trans,bytes,rate",
            "--window",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut frames: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.is_empty() {
            if !cur.is_empty() {
                frames.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push_str(&line);
            cur.push('\n');
        }
    }
    if !cur.is_empty() {
        frames.push(cur);
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    server.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(frames.len() >= 3, "a frame per refresh: {frames:?}");
    // Early frames: only A, its 3 records summed.
    let first = &frames[0];
    assert!(
        first.contains("10.0.0.1") && !first.contains("10.0.0.2"),
        "{first}"
    );
    let a_row = first.lines().find(|l| l.contains("10.0.0.1")).unwrap();
    let cols: Vec<&str> = a_row.split_whitespace().collect();
    assert_eq!(cols[..3], ["10.0.0.1", "3", "30000"], "{first}");
    assert!(!first.contains("[input ended]"));
    // The last frame: the stream ended, B on top by rate (500 kB in the window).
    let last = frames.last().unwrap();
    assert!(last.contains("[input ended]"), "{last}");
    let rows: Vec<&str> = last.lines().skip(3).collect();
    assert!(rows[0].starts_with("10.0.0.2") || rows[0].trim_start().starts_with("10.0.0.2"));
    let b: Vec<&str> = rows[0].split_whitespace().collect();
    // 500,000 bytes * 8 / 10 s = 400K bit/s.
    assert_eq!(b[..4], ["10.0.0.2", "1", "500000", "400K"], "{last}");
}

#[test]
fn top_interactive_view_runs_in_a_terminal_and_quits_on_q() {
    let dir = scratch("top-tty");
    let f = dir.join("flows.tfr");
    write_file(
        &f,
        &[tcp(A, WEB, 443, 1000, 0, 5), tcp(B, WEB, 80, 2000, 0, 5)],
    );
    // A second input with a damaged tail: its message must survive the full-screen view.
    let d = dir.join("damaged.tfr");
    write_file(&d, &[tcp([10, 0, 0, 7], WEB, 22, 700, 1, 1)]);
    let len = std::fs::metadata(&d).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&d)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // A pseudo-terminal from util-linux `script`; the keys arrive on its stdin.
    let cmd = format!(
        "stty cols 140 rows 30; {} top -r {} -r {}",
        bin("tapflow").display(),
        f.display(),
        d.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs the view in a pseudo-terminal");
    let mut keys = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(Duration::from_millis(1200));
        keys.write_all(b"s").unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        keys.write_all(b"q").unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(3000));
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    // The damaged input makes the exit status 1, as for every subcommand.
    assert_eq!(out.status.code(), Some(1), "{screen}");
    // The screen is drawn with cursor moves, so look for words, not lines.
    assert!(
        screen.contains("tapflow") && screen.contains("10.0.0.2"),
        "{screen}"
    );
    // 's' moved the sort from Rate to the next column, PRate.
    assert!(
        screen.contains("PRate ↓"),
        "the s key was not seen: {screen}"
    );
    // The alternate screen was entered and left again (the terminal is restored), and the
    // message about the damaged file is printed after it, naming the file.
    let (view, after) = screen
        .split_once("\x1b[?1049l")
        .expect("alternate screen left");
    assert!(view.contains("\x1b[?1049h"));
    assert!(after.contains("damaged.tfr"), "message lost: {after}");
}

#[test]
fn top_without_a_terminal_says_use_batch() {
    let dir = scratch("top-notty");
    let f = dir.join("flows.tfr");
    write_file(&f, &[tcp(A, WEB, 443, 1000, 0, 5)]);
    let (code, out, err) = run(&["top", "-r", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(err.contains("--batch"), "{err}");
}

/// A day's morning: A steady at 6 kB/min from 10:00 to 10:10, B one 10-minute record of
/// 1.2 MB (10:02-10:12), C small.
fn morning() -> Vec<FlowRecord> {
    let mut v = Vec::new();
    for m in 0..10 {
        v.push(tcp(A, WEB, 443, 6000, m * 60, 59));
    }
    v.push(tcp(B, WEB, 80, 1_200_000, 120, 600));
    v.push(tcp([10, 0, 0, 3], WEB, 25, 300, 30, 0));
    v
}

#[test]
fn plot_series_equal_bins_and_charts_are_written() {
    let dir = scratch("plot");
    let f = dir.join("flows.tfr");
    write_file(&f, &morning());
    let fs = f.to_str().unwrap();
    // The series behind the chart: bits/s per minute, per host.
    let (code, table, err) = run(&["plot", "-r", fs, "-B", "1m", "-M", "saddr", "--table"]);
    assert_eq!(code, 0, "{err}");
    let (code, bins, err) = run(&["bins", "-r", fs, "-B", "1m", "-M", "saddr", "--csv"]);
    assert_eq!(code, 0, "{err}");
    // bins: time,saddr,count,spkts,dpkts,sbytes,dbytes (times as text); compare totals.
    let bins_bytes: u64 = bins
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            c[c.len() - 2].parse::<u64>().unwrap() + c[c.len() - 1].parse::<u64>().unwrap()
        })
        .sum();
    let plotted_bits: f64 = table
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap() * 60.0)
        .sum();
    assert_eq!(bins_bytes, 60_000 + 1_200_000 + 300);
    assert!(
        (plotted_bits / 8.0 - bins_bytes as f64).abs() < 1.0,
        "{table}"
    );
    // B's 1.2 MB over 10 minutes: 2 kB/s = 16000 bit/s in each full minute it covers.
    assert!(
        table.contains(&format!("{},10.0.0.2,16000\n", T0 / S + 300)),
        "{table}"
    );
    // 12 minutes (10:00..10:11; B ends at 10:12:00), three hosts: every (minute, host) pair,
    // zeros included.
    assert_eq!(table.lines().count(), 1 + 12 * 3, "{table}");

    let svg = dir.join("chart.svg");
    let (code, _, err) = run(&[
        "plot",
        "-r",
        fs,
        "-B",
        "1m",
        "-M",
        "saddr",
        "--title",
        "Morning",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Morning"));
    for host in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        assert!(text.contains(host), "legend lacks {host}");
    }

    let png = dir.join("chart.png");
    let (code, _, err) = run(&[
        "plot",
        "-r",
        fs,
        "-B",
        "1m",
        "-M",
        "saddr",
        "--stack",
        "--width",
        "640",
        "--height",
        "320",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, right after the chunk's length and type.
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 640);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 320);
    // Not a blank image: decoded, it has many colours (areas, text, grid).
    let dec = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.line_size / info.width as usize;
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    assert!(colours.len() > 20, "{} colours", colours.len());
    assert!(!dir.join("chart.part").exists());
}

#[test]
fn plot_errors_are_clear() {
    let dir = scratch("plot-errors");
    let f = dir.join("flows.tfr");
    write_file(&f, &morning());
    let fs = f.to_str().unwrap();
    let bad = |args: &[&str], want: &str| {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    bad(
        &["plot", "-r", fs, "-B", "1m", "--metric", "volume"],
        "unknown metric",
    );
    bad(
        &["plot", "-r", fs, "-B", "1m", "-o", "x.gif"],
        ".svg or .png",
    );
    bad(
        &["plot", "-r", fs, "-B", "1m", "--format", "png"],
        "needs a file",
    );
    bad(
        &[
            "plot",
            "-r",
            fs,
            "-B",
            "1m",
            "--font",
            "/nonexistent.ttf",
            "-o",
            "-",
        ],
        "--font /nonexistent.ttf",
    );
    bad(&["plot", "-r", fs], "bin size");
}
