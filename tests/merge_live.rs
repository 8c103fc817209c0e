//! The live split-tap path, for real: two probes in two network namespaces, each capturing one
//! direction of the link on its own veth, stream their records over TLS (client certificates,
//! a non-loopback address) to `tapflow-merge --config` in the root namespace. The merged
//! archive must hold exactly the packets and bytes per flow and direction that one probe on
//! the whole capture counts, also when a probe is restarted and when the daemon is killed
//! (`kill -9`) mid-run while the probes keep capturing and spool.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapflow_capture::netns::{in_netns, skip_unless_available, Lab, PacketSender, SendOptions};
use tapflow_probe::key::FlowKey;
use tapflow_probe::EngineConfig;
use tapflow_record::{FlowRecord, RecordReader};
use tapflow_tests::{bin, probe, repo_root, scratch};

static NET: AtomicU32 = AtomicU32::new(0);

fn demo() -> PathBuf {
    repo_root().join("tests/fixtures/demo.pcap")
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut cap = tapflow_capture::file::open(path.to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = cap.next_batch().unwrap() {
        for p in b.iter() {
            out.push(p.data.to_vec());
        }
    }
    out
}

/// Per flow (canonical key) the packets and bytes endpoint a sent, then endpoint b: how
/// records cut a flow (restarts, status intervals, orientation) does not change these sums.
fn totals(recs: &[FlowRecord]) -> BTreeMap<String, [u64; 4]> {
    let mut m: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for r in recs.iter().filter(|r| !r.is_meta()) {
        let (k, swapped) = FlowKey::of_record(r).canonical();
        let (a, b) = if swapped {
            (&r.dst, &r.src)
        } else {
            (&r.src, &r.dst)
        };
        let e = m.entry(format!("{k:?}")).or_default();
        e[0] += a.pkts;
        e[1] += b.pkts;
        e[2] += a.bytes;
        e[3] += b.bytes;
    }
    m
}

fn read_dir_records(dir: &Path) -> Vec<FlowRecord> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        let Ok(mut rd) = RecordReader::new(BufReader::new(file), &f.to_string_lossy()) else {
            continue;
        };
        while let Ok(Some(r)) = rd.next_record() {
            out.push(r);
        }
    }
    out
}

fn diff(want: &BTreeMap<String, [u64; 4]>, got: &BTreeMap<String, [u64; 4]>) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: one probe {v:?}, merged {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| format!("{k}: only merged {v:?}")),
        )
        .collect()
}

/// A child process with its stderr collected.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
    name: String,
}

impl Proc {
    /// Starts `cmd` (in `ns` if given) and waits for `ready` in its log.
    fn start(name: &str, ns: Option<&str>, program: &Path, args: &[String], ready: &str) -> Proc {
        let mut c = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = c
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut g = l2.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let p = Proc {
            child,
            log,
            name: name.to_string(),
        };
        p.wait_log(ready, Duration::from_secs(30));
        p
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_log(&self, what: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t0.elapsed() < limit,
                "{}: no {what:?} within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child (`ip netns exec` execs the program).
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return st;
            }
            assert!(
                t0.elapsed() < limit,
                "{} did not exit within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; must exit 0. Returns the log.
    fn stop_ok(mut self) -> String {
        self.signal(libc::SIGTERM);
        let st = self.wait(Duration::from_secs(60));
        let log = self.log();
        assert!(st.success(), "{} exit {st}:\n{log}", self.name);
        log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} failed");
}

/// One leg: its own lab (capture and sender namespaces), and a management link from the
/// capture namespace to the root namespace, where the daemon listens.
struct Leg {
    lab: Lab,
    mgmt: String,
    daemon_ip: String,
}

impl Leg {
    fn new(net: u32, half: u32) -> Leg {
        let lab = Lab::new(1, 1).unwrap();
        let mgmt = format!("tfm{}{}{}", std::process::id() % 10_000, net, half);
        let peer = format!("{mgmt}p");
        let base = half * 4;
        let daemon_ip = format!("172.31.{net}.{}", base + 1);
        let probe_ip = format!("172.31.{net}.{}", base + 2);
        ip(&["link", "add", &mgmt, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &lab.rx_ns]);
        ip(&["addr", "add", &format!("{daemon_ip}/30"), "dev", &mgmt]);
        ip(&["link", "set", &mgmt, "up"]);
        ip(&[
            "-n",
            &lab.rx_ns,
            "addr",
            "add",
            &format!("{probe_ip}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &lab.rx_ns, "link", "set", &peer, "up"]);
        Leg {
            lab,
            mgmt,
            daemon_ip,
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.mgmt])
            .status();
    }
}

struct Setup {
    dir: PathBuf,
    legs: [Leg; 2],
    port: u16,
    frames: Vec<(usize, Vec<u8>)>,
    want: BTreeMap<String, [u64; 4]>,
}

const TIMEOUTS: [&str; 8] = [
    "--tcp-timeout",
    "2",
    "--udp-timeout",
    "2",
    "--icmp-timeout",
    "2",
    "--ip-timeout",
    "2",
];

impl Setup {
    fn new(name: &str) -> Setup {
        let net = 100 + NET.fetch_add(1, Ordering::Relaxed) + (std::process::id() % 50) * 3;
        let dir = scratch(name);
        let legs = [Leg::new(net, 0), Leg::new(net, 1)];
        let port = {
            let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Certificates for the daemon (both of its addresses) and the two probes.
        let st = Command::new(bin("tapflow-merge"))
            .args(["--gen-certs", dir.join("pki").to_str().unwrap()])
            .args(["--server-name", &legs[0].daemon_ip])
            .args(["--server-name", &legs[1].daemon_ip])
            .args(["--client", "leg-a", "--client", "leg-b"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        // One direction of the link per leg: for each MAC pair, the first sender's frames go
        // out of leg 0 and the other side's out of leg 1.
        let fr = frames(&demo());
        let mut first: BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>> = BTreeMap::new();
        let mut order = Vec::new();
        for f in fr {
            let (d, s) = (f[0..6].to_vec(), f[6..12].to_vec());
            let pair = if s < d {
                (s.clone(), d)
            } else {
                (d, s.clone())
            };
            let a = first.entry(pair).or_insert_with(|| s.clone());
            order.push((usize::from(*a != s), f));
        }
        let cfg = EngineConfig {
            tcp_idle_ns: 2_000_000_000,
            udp_idle_ns: 2_000_000_000,
            icmp_idle_ns: 2_000_000_000,
            other_idle_ns: 2_000_000_000,
            ..EngineConfig::default()
        };
        let (_, recs) = probe(&[&demo()], cfg);
        Setup {
            want: totals(&recs),
            dir,
            legs,
            port,
            frames: order,
        }
    }

    fn pki(&self, f: &str) -> String {
        self.dir.join("pki").join(f).to_string_lossy().into_owned()
    }

    fn archive(&self) -> PathBuf {
        self.dir.join("archive")
    }

    fn start_daemon(&self, rotate: u32) -> Proc {
        let cfg = format!(
            r#"
probe_id = 9
listen = "0.0.0.0:{port}"
probes = [1, 2]
names = ["leg-a", "leg-b"]
state_dir = "{state}"
commit_interval = 0.3
hold = 4
stats_interval = 2
[tls]
ca = "{ca}"
cert = "{cert}"
key = "{key}"
[engine]
status_interval = 1
tcp_timeout = 2
udp_timeout = 2
icmp_timeout = 2
ip_timeout = 2
[output]
archive = "{archive}/merged.%s.tfr"
rotate = {rotate}
flush_interval = 0.2
"#,
            port = self.port,
            state = self.dir.join("state").display(),
            ca = self.pki("ca.pem"),
            cert = self.pki("server.pem"),
            key = self.pki("server.key"),
            archive = self.archive().display(),
        );
        let path = self.dir.join("merge.toml");
        std::fs::write(&path, cfg).unwrap();
        Proc::start(
            "tapflow-merge",
            None,
            &bin("tapflow-merge"),
            &[
                "--config".into(),
                path.to_string_lossy().into_owned(),
                "--stats-json".into(),
                self.dir.join("merge.json").to_string_lossy().into_owned(),
            ],
            "listening for probes",
        )
    }

    fn start_probe(&self, leg: usize) -> Proc {
        self.start_probe_as(leg, ["leg-a", "leg-b"][leg], "")
    }

    /// A probe on `leg` presenting certificate `name`, spooling in `spool-NAME{tag}`.
    fn start_probe_as(&self, leg: usize, name: &str, tag: &str) -> Proc {
        let l = &self.legs[leg];
        let mut args: Vec<String> = vec![
            "-i".into(),
            l.lab.legs[0].rx_if.clone(),
            "--probe-id".into(),
            (leg + 1).to_string(),
            "--merge-to".into(),
            format!("{}:{}", l.daemon_ip, self.port),
            "--spool".into(),
            self.dir
                .join(format!("spool-{name}{tag}"))
                .to_string_lossy()
                .into_owned(),
            "--tls-ca".into(),
            self.pki("ca.pem"),
            "--tls-cert".into(),
            self.pki(&format!("{name}.pem")),
            "--tls-key".into(),
            self.pki(&format!("{name}.key")),
            "-S".into(),
            "1".into(),
            "--stats-interval".into(),
            "1s".into(),
            "--flush-interval".into(),
            "0.2s".into(),
            "--merge-drain".into(),
            "20s".into(),
        ];
        args.extend(TIMEOUTS.iter().map(|s| s.to_string()));
        Proc::start(
            name,
            Some(&l.lab.rx_ns),
            &bin("tapflow-probe"),
            &args,
            "capturing on",
        )
    }

    /// Sends frames `range` in capture order, each out of its leg's sender end.
    fn send(&self, range: std::ops::Range<usize>) {
        let senders: Vec<PacketSender> = (0..2)
            .map(|i| {
                let l = &self.legs[i].lab;
                let ifn = l.legs[0].tx_if.clone();
                in_netns(&l.tx_ns, move || {
                    PacketSender::open(&ifn, SendOptions::default())
                })
                .unwrap()
                .unwrap()
            })
            .collect();
        for (n, (leg, f)) in self.frames[range].iter().enumerate() {
            senders[*leg].send(f).unwrap();
            if n % 64 == 63 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    }

    /// Waits until the merged archive holds every packet (flows end by their idle timeouts
    /// on both probes and then in the merge), or `limit`.
    fn wait_merged(&self, limit: Duration) -> BTreeMap<String, [u64; 4]> {
        let t0 = Instant::now();
        loop {
            let got = totals(&read_dir_records(&self.archive()));
            if got == self.want || t0.elapsed() >= limit {
                return got;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Setup {
    /// After everything stopped: the archive still holds what `got` saw (nothing was written
    /// twice while stopping, e.g. by the probes' drain), and that equals one probe's totals.
    fn assert_merged(&self, got: &BTreeMap<String, [u64; 4]>, logs: &[(&str, &str)]) {
        let logs: String = logs
            .iter()
            .map(|(name, log)| format!("\n--- {name}\n{log}"))
            .collect();
        assert_eq!(
            got,
            &totals(&read_dir_records(&self.archive())),
            "changed while stopping{logs}"
        );
        let d = diff(&self.want, got);
        assert!(
            d.is_empty(),
            "{} flows differ:\n{}{logs}",
            d.len(),
            d.join("\n")
        );
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json_u64(text: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = text.find(&pat).unwrap_or_else(|| panic!("{key} in {text}")) + pat.len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn live_split_tap_over_tls_matches_one_probe() {
    if skip_unless_available("live_split_tap_over_tls_matches_one_probe") {
        return;
    }
    let s = Setup::new("merge-live-plain");
    let daemon = s.start_daemon(3600);
    // A valid certificate of the other leg cannot speak for this one.
    let impostor = s.start_probe_as(0, "leg-b", "-impostor");
    daemon.wait_log(
        "must present certificate \"leg-a\"",
        Duration::from_secs(20),
    );
    drop(impostor);
    let a = s.start_probe(0);
    let b = s.start_probe(1);
    a.wait_log("connected (TLS)", Duration::from_secs(20));
    b.wait_log("connected (TLS)", Duration::from_secs(20));
    s.send(0..s.frames.len());
    let got = s.wait_merged(Duration::from_secs(40));
    let la = a.stop_ok();
    let lb = b.stop_ok();
    let ld = daemon.stop_ok();
    s.assert_merged(&got, &[("daemon", &ld), ("a", &la), ("b", &lb)]);
    assert!(ld.contains("(TLS, client certificates required)"), "{ld}");
    assert!(la.contains("every chunk acknowledged"), "{la}");
    assert!(lb.contains("every chunk acknowledged"), "{lb}");
    // The records really were joined (not passed through one-sided), and the daemon's own
    // counters came out as merge-status records.
    let recs = read_dir_records(&s.archive());
    let merged = recs
        .iter()
        .filter(|r| r.flags & tapflow_record::flags::MERGED != 0)
        .count();
    assert!(
        merged * 2 >= s.want.len(),
        "{merged} merged records for {} flows",
        s.want.len()
    );
    assert!(
        recs.iter().any(|r| r.merge.is_some()),
        "no merge-status records"
    );
    // `tapflow read --status` shows them, with the clock offset of the second leg.
    let mut cmd = Command::new(bin("tapflow"));
    cmd.args(["read", "--status"]);
    for e in std::fs::read_dir(s.archive()).unwrap().flatten() {
        cmd.arg("-r").arg(e.path());
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.contains("input probe 2") && l.contains("offset_ns")),
        "{text}"
    );
    assert!(
        text.contains("input probe 1") && text.contains("reference"),
        "{text}"
    );
    let j = std::fs::read_to_string(s.dir.join("merge.json")).unwrap();
    assert_eq!(json_u64(&j, "missing_chunks"), 0, "{j}");
    assert_eq!(json_u64(&j, "damaged_chunks"), 0, "{j}");
    assert_eq!(json_u64(&j, "gaps"), 0, "{j}");
}

#[test]
fn live_merge_loses_nothing_across_probe_and_daemon_restarts() {
    if skip_unless_available("live_merge_loses_nothing_across_probe_and_daemon_restarts") {
        return;
    }
    let s = Setup::new("merge-live-restarts");
    // Archive files of 2 s: rotations fall between the commits, the kill and the restart.
    let mut daemon = s.start_daemon(2);
    let a = s.start_probe(0);
    let b = s.start_probe(1);
    a.wait_log("connected (TLS)", Duration::from_secs(20));
    b.wait_log("connected (TLS)", Duration::from_secs(20));
    let n = s.frames.len();
    s.send(0..n / 3);
    // Probe A restarts (its spool and the daemon's state carry its first run).
    std::thread::sleep(Duration::from_millis(700));
    let la1 = a.stop_ok();
    let a = s.start_probe(0);
    a.wait_log("connected (TLS)", Duration::from_secs(20));
    s.send(n / 3..2 * n / 3);
    // The daemon dies without warning after some commits; the probes keep capturing and
    // spool until it is back.
    std::thread::sleep(Duration::from_millis(700));
    daemon.signal(libc::SIGKILL);
    daemon.wait(Duration::from_secs(10));
    let ld1 = daemon.log();
    drop(daemon);
    s.send(2 * n / 3..n);
    std::thread::sleep(Duration::from_secs(1));
    let daemon = s.start_daemon(2);
    daemon.wait_log("restored the committed state", Duration::from_secs(5));
    let got = s.wait_merged(Duration::from_secs(60));
    let la = a.stop_ok();
    let lb = b.stop_ok();
    let ld = daemon.stop_ok();
    s.assert_merged(
        &got,
        &[
            ("daemon (first run)", &ld1),
            ("daemon", &ld),
            ("a (first run)", &la1),
            ("a", &la),
            ("b", &lb),
        ],
    );
    // The restarted daemon went on from its last commit: the archive file was cut back to
    // the committed length and what followed was made again from the probes' replays.
    assert!(ld.contains("continued at the committed"), "{ld}");
    let files = std::fs::read_dir(s.archive()).unwrap().count();
    assert!(
        files >= 3,
        "{files} archive files: the rotations were not exercised"
    );
    // The spools were replayed: probe B reconnected, and A's first run was delivered.
    assert!(lb.matches("connected (TLS)").count() >= 2, "{lb}");
    let j = std::fs::read_to_string(s.dir.join("merge.json")).unwrap();
    assert_eq!(json_u64(&j, "missing_chunks"), 0, "{j}");
    assert_eq!(json_u64(&j, "gaps"), 0, "{j}");
    assert!(j.contains("\"restored\":true"), "{j}");
}
