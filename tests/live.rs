//! Live capture end to end: the `tapflow-probe` binary on real AF_PACKET and AF_XDP sockets in
//! network namespaces, fed by frames replayed from the peer namespace. The records must equal,
//! per flow, what the file backend makes of the same frames; the probe's drop accounting must
//! balance; SIGTERM must flush every flow; a killed probe must leave no XDP program behind.
//!
//! Needs root (CI is root). Without it each test prints a loud SKIPPED line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapflow_capture::netns::{skip_unless_available, Lab, SendOptions};
use tapflow_probe::EngineConfig;
use tapflow_record::{Cause, FlowRecord, RecordReader};
use tapflow_tests::{bin, probe, repo_root, scratch};

// ---------------------------------------------------------------------------------------
// Helpers

/// The frames of a capture file, in order.
fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut cap = tapflow_capture::file::open(path.to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = cap.next_batch().unwrap() {
        for p in b.iter() {
            assert_eq!(p.data.len() as u32, p.wire_len, "replay needs whole frames");
            out.push(p.data.to_vec());
        }
    }
    out
}

fn demo() -> PathBuf {
    repo_root().join("tests/fixtures/demo.pcap")
}

/// The records the file backend makes of `path` with the live probe's timeouts.
fn file_records(path: &Path) -> Vec<FlowRecord> {
    let (_, recs) = probe(&[path], EngineConfig::default());
    recs
}

/// Per flow (unordered endpoints, protocol, VLAN): packets and bytes each endpoint sent, and
/// whether some record saw both directions. Summing over records makes the comparison
/// independent of how status intervals and timeouts cut a flow into records.
type FlowKeyT = (u8, u8, u16, u16, ([u8; 16], u16), ([u8; 16], u16));
fn per_flow(recs: &[FlowRecord]) -> BTreeMap<FlowKeyT, [u64; 5]> {
    let mut m = BTreeMap::new();
    for r in recs.iter().filter(|r| r.status.is_none()) {
        let a = (r.saddr.0, r.sport);
        let b = (r.daddr.0, r.dport);
        let (lo, hi, lo_is_src) = if a <= b { (a, b, true) } else { (b, a, false) };
        let k = (r.addr_kind as u8, r.proto, r.ethertype, r.vlan[0], lo, hi);
        let e: &mut [u64; 5] = m.entry(k).or_default();
        let (s, d) = if lo_is_src {
            (&r.src, &r.dst)
        } else {
            (&r.dst, &r.src)
        };
        e[0] += s.pkts;
        e[1] += s.bytes;
        e[2] += d.pkts;
        e[3] += d.bytes;
        if r.src.pkts > 0 && r.dst.pkts > 0 {
            e[4] = 1;
        }
    }
    m
}

fn read_records(path: &Path) -> Vec<FlowRecord> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RecordReader::new(f, &path.to_string_lossy())
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Asserts live records equal the file backend's, flow by flow.
fn assert_same_flows(live: &[FlowRecord], file: &[FlowRecord]) {
    let l = per_flow(live);
    let f = per_flow(file);
    let mut diffs = Vec::new();
    for (k, v) in &f {
        match l.get(k) {
            Some(w) if w == v => {}
            other => diffs.push(format!("{k:?}: file {v:?}, live {other:?}")),
        }
    }
    for k in l.keys().filter(|k| !f.contains_key(*k)) {
        diffs.push(format!("{k:?}: only live {:?}", l[k]));
    }
    assert!(
        diffs.is_empty(),
        "{} of {} flows differ:\n{}",
        diffs.len(),
        f.len(),
        diffs.join("\n")
    );
    // Every flow ends with exactly one final record (SIGTERM flushed them all).
    let finals = live
        .iter()
        .filter(|r| r.status.is_none() && r.cause != Cause::Status)
        .count();
    assert!(
        finals >= l.len(),
        "{finals} final records for {} flows",
        l.len()
    );
}

/// A running probe inside the capture namespace.
struct Probe {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Probe {
    /// Starts `tapflow-probe ARGS` in `ns` and waits until it says it is capturing (or exits).
    fn start(ns: &str, args: &[&str]) -> Result<Probe, (ExitStatus, String)> {
        Probe::start_wrapped(ns, &[], args)
    }

    /// As `start`, with `wrapper` (a command that execs the rest, like setpriv) before the
    /// probe.
    fn start_wrapped(
        ns: &str,
        wrapper: &[&str],
        args: &[&str],
    ) -> Result<Probe, (ExitStatus, String)> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(wrapper)
            .arg(bin("tapflow-probe"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if line.contains("capturing on") {
                    let _ = tx.send(());
                }
                let mut g = l2.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let t0 = Instant::now();
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(Probe { child, log });
            }
            if let Some(st) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((st, log.lock().unwrap().clone()));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "probe did not start: {}",
                log.lock().unwrap()
            );
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid (`ip netns exec` execs the probe).
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    /// SIGTERM, then wait for the exit; returns the status and the whole log.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let st = wait_timeout(&mut self.child, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        (st, log)
    }

    /// SIGTERM; the probe must exit 0. Returns its log.
    fn stop_ok(self) -> String {
        let (st, log) = self.stop();
        assert!(st.success(), "probe exit {st}: {log}");
        log
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test run's scratch directory, record file and stats file; removed on drop.
struct RunDir {
    dir: PathBuf,
    out: PathBuf,
    json: PathBuf,
}

impl RunDir {
    fn new(name: &str) -> RunDir {
        let dir = scratch(name);
        RunDir {
            out: dir.join("out.tfr"),
            json: dir.join("stats.json"),
            dir,
        }
    }

    /// Starts the probe in the lab's capture namespace with `args` plus this run's
    /// `-w OUT --stats-json JSON`.
    fn start(&self, lab: &Lab, args: &[&str]) -> Probe {
        let mut all = args.to_vec();
        all.extend([
            "-w",
            self.out.to_str().unwrap(),
            "--stats-json",
            self.json.to_str().unwrap(),
        ]);
        Probe::start(&lab.rx_ns, &all)
            .unwrap_or_else(|(st, log)| panic!("probe failed to start ({st}): {log}"))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_timeout(c: &mut Child, limit: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        assert!(t0.elapsed() < limit, "probe did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `--stats-json` summary: per-worker numbers by name.
struct Stats(String);
impl Stats {
    fn load(p: &Path) -> Stats {
        Stats(std::fs::read_to_string(p).unwrap())
    }
    /// Values of `"key":N` within the `section` array (workers or from_status), in order.
    fn worker_values(&self, section: &str, key: &str) -> Vec<i64> {
        let start = self.0.find(&format!("\"{section}\":[")).unwrap();
        let end = start + self.0[start..].find(']').unwrap();
        let s = &self.0[start..end];
        let pat = format!("\"{key}\":");
        s.match_indices(&pat)
            .map(|(i, _)| {
                let v = &s[i + pat.len()..];
                let e = v.find([',', '}']).unwrap();
                v[..e].parse().unwrap()
            })
            .collect()
    }
    fn sum(&self, key: &str) -> i64 {
        self.worker_values("workers", key).iter().sum()
    }
    fn flag(&self, key: &str) -> bool {
        self.0.contains(&format!("\"{key}\":true"))
    }
}

/// The accounting identities, per worker, and the status records agreeing with the workers.
fn assert_accounting(st: &Stats, sent: u64) {
    for w in 0..st.worker_values("workers", "seen").len() {
        for key in ["unaccounted", "undecoded", "records_dropped"] {
            assert_eq!(
                st.worker_values("workers", key)[w],
                0,
                "worker {w}: {key} != 0 in {}",
                st.0
            );
        }
    }
    for key in [
        "seen",
        "delivered",
        "ring_drops",
        "decoded",
        "malformed",
        "flows_admitted",
        "records_queued",
    ] {
        assert_eq!(
            st.worker_values("workers", key),
            st.worker_values("from_status", key),
            "status records disagree with the workers on {key}: {}",
            st.0
        );
    }
    assert_eq!(st.sum("delivered") as u64, sent, "{}", st.0);
    assert_eq!(st.sum("seen") as u64, sent, "{}", st.0);
}

fn xdp_attached(ns: &str, iface: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", iface])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// Which queue a frame is steered to in the two-queue test: a hash of its unordered MAC pair,
/// so both directions and every fragment of a conversation share a queue (what a symmetric,
/// address-only RSS hash gives on a real NIC).
fn pair_hash(frame: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let (a, b) = (&frame[0..6], &frame[6..12]);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if a < b { (a, b) } else { (b, a) }.hash(&mut h);
    h.finish()
}

// ---------------------------------------------------------------------------------------
// AF_PACKET

/// One worker, one interface: records equal the file backend's; the accounting balances;
/// SIGTERM flushes everything; archive rotation (timer and SIGHUP) completes files; the
/// probe runs as an unprivileged user once its socket is open.
/// The shipped systemd unit's way: started as an unprivileged user holding only the capture
/// capabilities as ambient ones (`User=` + `AmbientCapabilities=`), the probe opens its socket
/// and then gives every capability up, in every thread, and still captures.
#[test]
fn unprivileged_start_with_ambient_capabilities_drops_them_all() {
    if skip_unless_available("unprivileged_start_with_ambient_capabilities_drops_them_all") {
        return;
    }
    if Command::new("setpriv").arg("--help").output().is_err() {
        panic!("setpriv (util-linux) is needed to start the probe with ambient capabilities");
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-ambient");
    // nobody must be able to write the record file and the stats.
    std::fs::set_permissions(
        &run.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let caps = "+net_raw,+net_admin,+bpf,+ipc_lock";
    let mut args = vec![
        "-i",
        &lab.legs[0].rx_if,
        "--backend",
        "afpacket",
        "--stats-interval",
        "0.2s",
        "-w",
        run.out.to_str().unwrap(),
        "--stats-json",
        run.json.to_str().unwrap(),
    ];
    args.retain(|a| !a.is_empty());
    let p = Probe::start_wrapped(
        &lab.rx_ns,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
        ],
        &args,
    )
    .unwrap_or_else(|(st, log)| panic!("probe failed to start ({st}): {log}"));
    // Every thread: no capability in any set, uid nobody.
    let pid = p.child.id();
    let mut tasks = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            let line = status.lines().find(|l| l.starts_with(set)).unwrap();
            assert!(
                line.ends_with("0000000000000000"),
                "a thread kept capabilities: {line}"
            );
        }
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|u| u == "65534"),
            "{uid}"
        );
        tasks += 1;
    }
    assert!(tasks >= 3, "{tasks} threads: workers and output expected");
    let fr = frames(&demo());
    assert_eq!(
        lab.send(0, &fr, SendOptions::default()).unwrap(),
        fr.len() as u64
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = p.stop_ok();
    assert!(
        log.contains("running as uid 65534 with no capabilities"),
        "{log}"
    );
    assert_same_flows(&read_records(&run.out), &file_records(&demo()));
}

#[test]
fn afpacket_records_match_file_backend() {
    if skip_unless_available("afpacket_records_match_file_backend") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-afp");
    // The archive lives where the unprivileged user may write once the probe hands it over.
    std::fs::set_permissions(
        &run.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let archive = format!("{}/archive/%Y/probe.%s.tfr", run.dir.display());
    let p = run.start(
        &lab,
        &[
            "-i",
            &lab.legs[0].rx_if,
            "--backend",
            "afpacket",
            "--archive",
            &archive,
            "--rotate",
            "1h",
            "--stats-interval",
            "0.2s",
            "--user",
            "nobody",
        ],
    );
    let fr = frames(&demo());
    let half = fr.len() / 2;
    assert_eq!(
        lab.send(0, &fr[..half], SendOptions::default()).unwrap(),
        half as u64
    );
    // SIGHUP: the first archive file is completed now and a second one started.
    std::thread::sleep(Duration::from_millis(300));
    p.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.send(0, &fr[half..], SendOptions::default()).unwrap(),
        (fr.len() - half) as u64
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = p.stop_ok();
    assert!(
        log.contains("running as nobody") && log.contains("no capabilities"),
        "privileges not dropped: {log}"
    );

    let live = read_records(&run.out);
    assert_same_flows(&live, &file_records(&demo()));
    let stats = Stats::load(&run.json);
    assert_accounting(&stats, fr.len() as u64);
    // Status records are in the stream too, one per interval, and the last one is final.
    let status: Vec<_> = live.iter().filter_map(|r| r.status.as_ref()).collect();
    assert!(status.len() >= 2, "{} status records", status.len());
    assert!(status.last().unwrap().flags & tapflow_record::status_flags::FINAL != 0);

    // The archive: two complete files (SIGHUP rotated), no partial ones, and together they
    // hold exactly the records of the plain output file.
    let mut files = Vec::new();
    for e in walk(&run.dir.join("archive")) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".part"),
            "partial archive file left: {name}"
        );
        files.push(e);
    }
    files.sort();
    assert_eq!(files.len(), 2, "archive files: {files:?}\n{log}");
    let mut arch = Vec::new();
    for f in &files {
        arch.extend(read_records(f));
    }
    arch.sort_by_key(|r| r.seq);
    let mut live = live;
    live.sort_by_key(|r| r.seq);
    assert_eq!(arch, live, "archive and -w output differ");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Two fanout members: flows are split between the workers, none is split across them, and
/// the records still equal the file backend's.
#[test]
fn afpacket_fanout_two_workers() {
    if skip_unless_available("afpacket_fanout_two_workers") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-afp2");
    let p = run.start(
        &lab,
        &["-i", &lab.legs[0].rx_if, "--workers", "2", "--cores", "0,1"],
    );
    let fr = frames(&demo());
    lab.send(0, &fr, SendOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    p.stop_ok();
    assert_same_flows(&read_records(&run.out), &file_records(&demo()));
    let stats = Stats::load(&run.json);
    assert_accounting(&stats, fr.len() as u64);
    let per = stats.worker_values("workers", "delivered");
    assert!(per.iter().all(|&d| d > 0), "a worker got nothing: {per:?}");
}

/// Two tap legs into one probe: each flow's initiator→responder frames arrive on leg 0 and the
/// replies on leg 1. Both legs of a flow must reach the same worker (symmetric fanout), so
/// every flow is one bidirectional flow, exactly as the file backend sees it.
#[test]
fn afpacket_two_legs_make_bidirectional_records() {
    if skip_unless_available("afpacket_two_legs_make_bidirectional_records") {
        return;
    }
    two_legs("afpacket", 2);
}

fn two_legs(backend: &str, workers: usize) {
    let lab = Lab::new(2, 1).unwrap();
    let run = RunDir::new(&format!("live-legs-{backend}"));
    let ifs = format!("{},{}", lab.legs[0].rx_if, lab.legs[1].rx_if);
    let w = workers.to_string();
    let p = run.start(&lab, &["-i", &ifs, "--backend", backend, "--workers", &w]);
    // A tap leg carries one direction of the link: for each pair of MAC addresses, the frames
    // of the first-seen sender go out of leg 0 and the other side's out of leg 1 (so all the
    // fragments of a datagram travel together, as on a real link).
    let fr = frames(&demo());
    let mut first_src: BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>> = BTreeMap::new();
    let mut order = Vec::new();
    for f in &fr {
        let (dst, src) = (f[0..6].to_vec(), f[6..12].to_vec());
        let pair = if src < dst {
            (src.clone(), dst)
        } else {
            (dst, src.clone())
        };
        let a = first_src.entry(pair).or_insert_with(|| src.clone());
        order.push((usize::from(*a != src), f.clone()));
    }
    assert!(order.iter().any(|(l, _)| *l == 1));
    assert_eq!(lab.send_interleaved(&order).unwrap(), fr.len() as u64);
    std::thread::sleep(Duration::from_millis(300));
    p.stop_ok();
    let live = read_records(&run.out);
    let l = per_flow(&live);
    let f = per_flow(&file_records(&demo()));
    // Packet and byte totals per flow and direction.
    let strip = |m: &BTreeMap<FlowKeyT, [u64; 5]>| -> BTreeMap<FlowKeyT, [u64; 4]> {
        m.iter()
            .map(|(k, v)| (*k, [v[0], v[1], v[2], v[3]]))
            .collect()
    };
    let (l4, f4) = (strip(&l), strip(&f));
    let diffs: Vec<String> = f4
        .iter()
        .filter(|(k, v)| l4.get(*k) != Some(v))
        .map(|(k, v)| format!("{k:?}: file {v:?}, live {:?}", l4.get(k)))
        .chain(
            l4.iter()
                .filter(|(k, _)| !f4.contains_key(*k))
                .map(|(k, v)| format!("{k:?}: only live {v:?}")),
        )
        .collect();
    assert!(diffs.is_empty(), "flows differ:\n{}", diffs.join("\n"));
    // Bidirectional: every flow the file backend saw both ways has a record with both ways.
    for (k, v) in &f {
        if v[4] == 1 {
            assert_eq!(
                l[k][4], 1,
                "flow {k:?} split into one-way records: {live:#?}"
            );
        }
    }
    let stats = Stats::load(&run.json);
    assert_accounting(&stats, fr.len() as u64);
}

/// A reader that never reads is disconnected once it is `--client-buffer` behind; capture
/// loses nothing (the file output and the accounting are complete), and a reader that keeps
/// up (`tapflow read -S`) gets every flow record.
#[test]
fn slow_stream_reader_is_dropped_without_capture_loss() {
    if skip_unless_available("slow_stream_reader_is_dropped_without_capture_loss") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-stream");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let p = run.start(
        &lab,
        &[
            "-i",
            &lab.legs[0].rx_if,
            "--listen",
            &addr,
            "--client-buffer",
            "262144",
            "--flush-interval",
            "0.05s",
            "-S",
            "0",
            "--udp-timeout",
            "1",
        ],
    );

    // The good reader: the client binary, in the capture namespace, its output drained as it
    // comes (a full pipe would stall it).
    let mut reader = Command::new("ip")
        .args(["netns", "exec", &lab.rx_ns])
        .arg(bin("tapflow"))
        .args([
            "read",
            "-S",
            &addr,
            "--csv",
            "-s",
            "saddr,sport,daddr,dport,pkts",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out_pipe = reader.stdout.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(out_pipe).lines().count());
    // The stuck reader: connects with a tiny receive buffer and never reads.
    let ns = lab.rx_ns.clone();
    let a2 = addr.clone();
    let stuck = tapflow_capture::netns::in_netns(&ns, move || stuck_reader(&a2)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // Many one-packet UDP flows over ~2 s, expiring 1 s after their packet: a steady stream
    // of records that a live reader keeps up with and that overruns the stuck one.
    let n = 100_000u32;
    let fr: Vec<Vec<u8>> = (0..n).map(udp_frame).collect();
    lab.send(
        0,
        &fr,
        SendOptions {
            cpu: None,
            pace_us: 1000,
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let log = p.stop_ok();
    drop(stuck);
    assert!(
        log.contains("too slow") && log.contains("disconnected"),
        "stuck reader not dropped: {log}"
    );
    let stats = Stats::load(&run.json);
    assert_accounting(&stats, n as u64);
    assert!(stats.0.contains("\"readers_dropped\":1"), "{}", stats.0);
    let recs = read_records(&run.out);
    assert_eq!(per_flow(&recs).len(), n as usize);

    let o = reader.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = lines.join().unwrap();
    assert_eq!(lines, n as usize + 1, "header + one line per flow");
}

/// Connects with a small receive buffer and never reads; returns the socket (kept open).
fn stuck_reader(addr: &str) -> std::net::TcpStream {
    // SAFETY: plain socket calls on a fresh descriptor that the TcpStream then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let sz: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &sz as *const _ as *const libc::c_void,
            4,
        );
        let sa: std::net::SocketAddrV4 = addr.parse().unwrap();
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: sa.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*sa.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }
}

/// Flow `i`: one UDP packet 10.9.x.y:(1024+i%50000) → 10.8.0.1:53 with a 32-byte payload.
fn udp_frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 32];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&60u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 9 + (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    ip[16..20].copy_from_slice(&[10, 8, 0, 1]);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&1024u16.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&40u16.to_be_bytes());
    f
}

// ---------------------------------------------------------------------------------------
// AF_XDP

/// Two queues, two workers, native XDP in copy mode (veth has no zero-copy): each flow is
/// sent from the CPU whose queue its hash picks, so both workers get traffic; records equal
/// the file backend's and the accounting (XDP program counters included) balances.
#[test]
fn xdp_two_queues_two_workers_match_file_backend() {
    if skip_unless_available("xdp_two_queues_two_workers_match_file_backend") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("*** SKIPPED xdp_two_queues_two_workers: needs 2 CPUs to steer 2 queues ***");
        return;
    }
    let lab = Lab::new(1, 2).unwrap();
    let run = RunDir::new("live-xdp2");
    let p = run.start(
        &lab,
        &[
            "-i",
            &lab.legs[0].rx_if,
            "--backend",
            "xdp",
            "--xdp-mode",
            "copy",
            "--workers",
            "2",
        ],
    );
    assert!(xdp_attached(&lab.rx_ns, &lab.legs[0].rx_if));
    let fr = frames(&demo());
    let (q0, q1): (Vec<_>, Vec<_>) = fr
        .iter()
        .cloned()
        .partition(|f| pair_hash(f).is_multiple_of(2));
    lab.send(
        0,
        &q0,
        SendOptions {
            cpu: Some(0),
            pace_us: 0,
        },
    )
    .unwrap();
    lab.send(
        0,
        &q1,
        SendOptions {
            cpu: Some(1),
            pace_us: 0,
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    p.stop_ok();
    assert_same_flows(&read_records(&run.out), &file_records(&demo()));
    let stats = Stats::load(&run.json);
    assert_accounting(&stats, fr.len() as u64);
    assert_eq!(
        stats.worker_values("workers", "delivered"),
        vec![q0.len() as i64, q1.len() as i64],
        "frames did not land on their sender's queue"
    );
    // The program went away with the probe.
    assert!(!xdp_attached(&lab.rx_ns, &lab.legs[0].rx_if));
}

/// Two legs through AF_XDP (one queue each, one worker): bidirectional records.
#[test]
fn xdp_two_legs_make_bidirectional_records() {
    if skip_unless_available("xdp_two_legs_make_bidirectional_records") {
        return;
    }
    two_legs("xdp", 1);
}

/// `--xdp-mode zero-copy` on veth (no driver support) refuses to start and says why;
/// `auto` falls back to copy mode and says so loudly, in the log and in the stats.
#[test]
fn xdp_zero_copy_refused_and_auto_falls_back_loudly() {
    if skip_unless_available("xdp_zero_copy_refused_and_auto_falls_back_loudly") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-zc");
    let iface = lab.legs[0].rx_if.clone();
    match Probe::start(
        &lab.rx_ns,
        &[
            "-i",
            &iface,
            "--backend",
            "xdp",
            "--xdp-mode",
            "zero-copy",
            "-w",
            run.out.to_str().unwrap(),
        ],
    ) {
        Ok(p) => panic!("zero-copy on veth started: {}", p.log()),
        Err((st, log)) => {
            assert_eq!(st.code(), Some(1), "{log}");
            assert!(log.to_lowercase().contains("zero-copy"), "{log}");
            assert!(log.contains(&iface), "error must name the interface: {log}");
        }
    }
    assert!(
        !xdp_attached(&lab.rx_ns, &iface),
        "refusal left the program attached"
    );

    let p = run.start(
        &lab,
        &["-i", &iface, "--backend", "xdp", "--xdp-mode", "auto"],
    );
    let fr = frames(&demo());
    lab.send(0, &fr, SendOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = p.stop_ok();
    assert!(log.contains("COPY mode"), "fallback not said loudly: {log}");
    let stats = Stats::load(&run.json);
    assert!(
        stats.flag("copy_fallback") && !stats.flag("zero_copy"),
        "{}",
        stats.0
    );
    assert_accounting(&stats, fr.len() as u64);
    let status: Vec<_> = read_records(&run.out)
        .into_iter()
        .filter_map(|r| r.status)
        .collect();
    assert!(status
        .iter()
        .all(|s| s.flags & tapflow_record::status_flags::XDP_COPY_FALLBACK != 0));
}

/// SIGKILL gives the probe no chance to clean up: the XDP program must still go (it is held
/// through a bpf_link), and the next start must find nothing in its way.
#[test]
fn killed_probe_leaves_no_xdp_program() {
    if skip_unless_available("killed_probe_leaves_no_xdp_program") {
        return;
    }
    let lab = Lab::new(1, 1).unwrap();
    let run = RunDir::new("live-kill");
    let iface = lab.legs[0].rx_if.clone();
    let args = ["-i", &iface, "--backend", "xdp", "--xdp-mode", "copy"];
    let mut p = run.start(&lab, &args);
    assert!(xdp_attached(&lab.rx_ns, &iface));
    p.signal(libc::SIGKILL);
    wait_timeout(&mut p.child, Duration::from_secs(10));
    let t0 = Instant::now();
    while xdp_attached(&lab.rx_ns, &iface) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "XDP program still attached after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(p);
    // A restart works and captures.
    let p = run.start(&lab, &args);
    let fr = frames(&demo());
    lab.send(0, &fr, SendOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    p.stop_ok();
    assert_accounting(&Stats::load(&run.json), fr.len() as u64);
}
