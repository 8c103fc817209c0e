//! IPFIX and NetFlow v9 export against real peers: Debian's `nfcapd` receives `tapflow convert
//! --to ipfix|netflow9 -w udp://…` and `nfdump` reads it back (flows, packets and bytes per
//! direction, totals); `tshark` decodes the exported datagrams (and the RFC 5655 file) without
//! errors and with the values tapflow sent; the TCP transport is checked message by message;
//! a dead collector is a clear error. Captures: tests/fixtures always, ../shared/corpus when
//! present. What is exported, and why, is docs/interop.md §3.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tapflow_record::{flags, AddrKind, FlowRecord};
use tapflow_tests::*;

fn have(cmd: &str, arg: &str, pkg: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("*** {cmd} not installed (apt-get install {pkg}): its checks SKIPPED ***");
    }
    ok
}

fn tapflow(args: &[&str]) -> Output {
    Command::new(bin("tapflow"))
        .args(args)
        .output()
        .expect("run tapflow")
}

/// The probe's records of a capture as probe `id`; `None` when it yields no flow record.
fn probe_records(capture: &Path, tfr: &Path, id: u32) -> Option<Vec<FlowRecord>> {
    probe_to_tfr(capture, tfr, Some(id)).filter(|r| !r.is_empty())
}

/// Records an IPFIX/NetFlow template carries (docs/interop.md §3: non-IP and InfiniBand are
/// skipped and counted).
fn exported(r: &FlowRecord) -> bool {
    r.addr_kind != AddrKind::L2 && r.flags & flags::INFINIBAND == 0
}

fn ip(r: &FlowRecord, src: bool) -> IpAddr {
    let a = if src { r.saddr } else { r.daddr };
    a.to_ip(r.addr_kind).unwrap()
}

/// One exported data record as the collector should see it: addresses, ports, whether the
/// ports are compared (TCP and UDP: nfdump 1.7 shows 0 or the ICMP type/code in the others'
/// destination port), [fwd pkts, rev pkts, fwd IP bytes, rev IP bytes].
#[derive(Clone, Debug, PartialEq)]
struct Flow {
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    ported: bool,
    n: [u64; 4],
}

/// What tapflow's records become: one biflow each, or the uniflow split (the initiator's
/// direction when it sent packets or neither did, the responder's when it sent any).
fn expected(recs: &[FlowRecord], uniflow: bool) -> Vec<Flow> {
    let mut v = vec![];
    for r in recs.iter().filter(|r| exported(r)) {
        let ported = matches!(r.proto, 6 | 17);
        let f = Flow {
            src: ip(r, true),
            sport: r.sport,
            dst: ip(r, false),
            dport: r.dport,
            ported,
            n: [r.src.pkts, r.dst.pkts, r.src.ip_bytes, r.dst.ip_bytes],
        };
        if !uniflow {
            v.push(f);
            continue;
        }
        if r.src.pkts > 0 || r.dst.pkts == 0 {
            v.push(Flow {
                n: [r.src.pkts, 0, r.src.ip_bytes, 0],
                ..f.clone()
            });
        }
        if r.dst.pkts > 0 {
            v.push(Flow {
                src: f.dst,
                sport: f.dport,
                dst: f.src,
                dport: f.sport,
                ported,
                n: [r.dst.pkts, 0, r.dst.ip_bytes, 0],
            });
        }
    }
    v
}

/// Sums per flow: the unordered endpoint pair (with ports for TCP and UDP), oriented by the
/// lower endpoint: [lo→hi pkts, hi→lo pkts, lo→hi bytes, hi→lo bytes]. Records a flow was cut
/// into sum, on both sides alike.
fn group(flows: &[Flow]) -> BTreeMap<String, [u64; 4]> {
    let mut m: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for f in flows {
        let (a, b) = if !f.ported {
            (format!("{}", f.src), format!("{}", f.dst))
        } else {
            (
                format!("{}.{}", f.src, f.sport),
                format!("{}.{}", f.dst, f.dport),
            )
        };
        let swap = a > b;
        let key = if swap {
            format!("{b} {a}")
        } else {
            format!("{a} {b}")
        };
        let [p0, p1, b0, b1] = f.n;
        let add = if swap {
            [p1, p0, b1, b0]
        } else {
            [p0, p1, b0, b1]
        };
        let g = m.entry(key).or_default();
        for (t, x) in g.iter_mut().zip(add) {
            *t += x;
        }
    }
    m
}

fn totals(flows: &[Flow]) -> [u64; 4] {
    flows.iter().fold([0; 4], |mut t, f| {
        for (a, b) in t.iter_mut().zip(f.n) {
            *a += b;
        }
        t
    })
}

/// A free local UDP port (bound, read, released: the peer binds it next).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nfcapd {
    child: Child,
}

impl Nfcapd {
    fn start(dir: &Path, port: u16) -> Nfcapd {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("nfcapd")
            .arg("-w")
            .arg(dir)
            .args(["-p", &port.to_string(), "-b", "127.0.0.1", "-B", "4194304"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nfcapd");
        // It is listening once it has created its current file.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let started = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("nfcapd."))
                })
                .unwrap_or(false);
            if started {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        Nfcapd { child }
    }

    /// SIGTERM (nfcapd flushes and closes its file), then its log.
    fn stop(mut self) -> String {
        // Let it drain its socket first.
        std::thread::sleep(Duration::from_millis(500));
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let mut out = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        let _ = self.child.wait();
        out
    }
}

/// `nfdump -R DIR -o csv`: one Flow per data line.
fn nfdump_flows(dir: &Path) -> Vec<Flow> {
    {
        let out = Command::new("nfdump")
            .arg("-R")
            .arg(dir)
            .args(["-q", "-o", "csv"])
            .output()
            .expect("run nfdump");
        assert!(
            out.status.success(),
            "nfdump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v = vec![];
        for line in text.lines() {
            let c: Vec<&str> = line.split(',').map(str::trim).collect();
            // ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,…
            if c.len() < 15 {
                continue;
            }
            let (Ok(src), Ok(dst)) = (c[3].parse::<IpAddr>(), c[4].parse::<IpAddr>()) else {
                continue;
            };
            let n = |i: usize| c[i].parse::<u64>().expect("nfdump counter");
            let ported = c[7] == "TCP" || c[7] == "UDP";
            v.push(Flow {
                src,
                sport: c[5].parse().unwrap(),
                dst,
                dport: c[6].parse().unwrap(),
                ported,
                n: [n(11), n(13), n(12), n(14)],
            });
        }
        v
    }
}

/// One export mode through nfcapd/nfdump: every capture's records sent, then per flow group
/// and in total nfdump must show what tapflow sent.
fn nfdump_round(mode: &str, tfrs: &[(PathBuf, Vec<FlowRecord>)], dir: &Path) -> String {
    let (to, uniflow) = match mode {
        "ipfix" => ("ipfix", false),
        "ipfix-uniflow" => ("ipfix", true),
        _ => ("netflow9", true),
    };
    let port = free_udp_port();
    let cap = Nfcapd::start(&dir.join(mode), port);
    let dest = format!("udp://127.0.0.1:{port}");
    let mut want = vec![];
    let mut messages = 0u64;
    for (tfr, recs) in tfrs {
        let mut args = vec!["convert", "--to", to, "-v", "-r", tfr.to_str().unwrap()];
        if uniflow && to == "ipfix" {
            args.push("--uniflow");
        }
        args.extend(["-w", &dest]);
        let out = tapflow(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode} {}: {err}", tfr.display());
        messages += err
            .split(" in ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        want.extend(expected(recs, uniflow));
    }
    let log = cap.stop();
    let got = nfdump_flows(&dir.join(mode));
    assert!(
        log.contains("Sequence Errors: 0") || !log.contains("Sequence Errors"),
        "{mode}: nfcapd saw sequence errors:\n{log}"
    );
    assert_eq!(
        got.len(),
        want.len(),
        "{mode}: nfdump shows {} flows, tapflow sent {} data records ({messages} messages)\n{log}",
        got.len(),
        want.len()
    );
    assert_eq!(totals(&got), totals(&want), "{mode}: totals");
    let (g, w) = (group(&got), group(&want));
    let mut diffs = vec![];
    for (k, n) in &w {
        if g.get(k) != Some(n) {
            diffs.push(format!("  {k}: tapflow {n:?} nfdump {:?}", g.get(k)));
        }
    }
    for k in g.keys().filter(|k| !w.contains_key(*k)) {
        diffs.push(format!("  {k}: only in nfdump {:?}", g[k]));
    }
    assert!(diffs.is_empty(), "{mode}:\n{}", diffs.join("\n"));
    let t = totals(&want);
    format!(
        "{mode}: {} flows ({} flow groups), packets {}+{}, bytes {}+{} equal in nfdump ({messages} \
         messages)",
        want.len(),
        w.len(),
        t[0],
        t[1],
        t[2],
        t[3]
    )
}

/// The probe's records of every capture, numbered as probe `id`s from 1.
fn all_tfrs(dir: &Path) -> Vec<(PathBuf, Vec<FlowRecord>)> {
    let mut v = vec![];
    for (i, c) in captures().iter().enumerate() {
        let tfr = dir.join(format!("c{i}.tfr"));
        if let Some(recs) = probe_records(c, &tfr, i as u32 + 1) {
            v.push((tfr, recs));
        }
    }
    v
}

#[test]
fn nfdump_reads_tapflow_ipfix_and_netflow9() {
    if !have("nfcapd", "-V", "nfdump") || !have("nfdump", "-V", "nfdump") {
        return;
    }
    let dir = scratch("interop-ipfix-nfdump");
    let tfrs = all_tfrs(&dir);
    assert!(!tfrs.is_empty());
    let version = Command::new("nfdump").arg("-V").output().unwrap();
    eprintln!(
        "{} captures, {}",
        tfrs.len(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    // RFC 5103 biflows: nfdump decodes the reverse counters as its out packets/bytes.
    for mode in ["ipfix", "ipfix-uniflow", "netflow9"] {
        eprintln!("  {}", nfdump_round(mode, &tfrs, &dir));
    }
}

/// Receives every datagram `tapflow convert … -w udp://127.0.0.1:PORT` sends.
fn capture_udp(args: &[&str]) -> (Vec<Vec<u8>>, Output) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let dest = format!("udp://{}", sock.local_addr().unwrap());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-w", &dest]);
    let mut child = Command::new(bin("tapflow"))
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut msgs = vec![];
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => msgs.push(buf[..n].to_vec()),
            Err(_) => {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
            }
        }
    }
    (msgs, child.wait_with_output().unwrap())
}

/// A pcap of the datagrams as UDP/IPv4 frames to `port`.
fn pcap(msgs: &[Vec<u8>], port: u16) -> Vec<u8> {
    let mut f = vec![];
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, m) in msgs.iter().enumerate() {
        let udp_len = 8 + m.len();
        let ip_len = 20 + udp_len;
        let mut fr = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        let mut iph = vec![0x45, 0];
        iph.extend_from_slice(&(ip_len as u16).to_be_bytes());
        iph.extend_from_slice(&(i as u16).to_be_bytes());
        iph.extend_from_slice(&[0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = iph
            .chunks(2)
            .fold(0u32, |s, c| s + u32::from(u16::from_be_bytes([c[0], c[1]])));
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        iph[10..12].copy_from_slice(&sum.to_be_bytes());
        fr.extend_from_slice(&iph);
        fr.extend_from_slice(&40000u16.to_be_bytes());
        fr.extend_from_slice(&port.to_be_bytes());
        fr.extend_from_slice(&(udp_len as u16).to_be_bytes());
        fr.extend_from_slice(&[0, 0]);
        fr.extend_from_slice(m);
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&fr);
    }
    f
}

fn tshark(file: &Path, decode: Option<u16>, extra: &[&str]) -> String {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file);
    if let Some(p) = decode {
        c.args(["-d", &format!("udp.port=={p},cflow")]);
    }
    let out = c.args(extra).output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Per frame, `tshark -T fields` values of `fields` (occurrences split on ',').
fn tshark_fields(file: &Path, decode: Option<u16>, fields: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut args = vec!["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"];
    for f in fields {
        args.extend(["-e", f]);
    }
    tshark(file, decode, &args)
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|c| {
                    c.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The data records' packet and octet values in the order tshark shows them: for a biflow
/// template the reverse elements come first (the template puts them before the forward ones).
fn wire_counts(recs: &[FlowRecord], uniflow: bool) -> (Vec<u64>, Vec<u64>) {
    let (mut p, mut b) = (vec![], vec![]);
    for f in expected(recs, uniflow) {
        if uniflow {
            p.push(f.n[0]);
            b.push(f.n[2]);
        } else {
            p.extend([f.n[1], f.n[0]]);
            b.extend([f.n[3], f.n[2]]);
        }
    }
    (p, b)
}

fn nums(v: &[String]) -> Vec<u64> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn tshark_decodes_ipfix_and_netflow9() {
    if !have("tshark", "-v", "tshark") {
        return;
    }
    let dir = scratch("interop-ipfix-tshark");
    let tfrs = all_tfrs(&dir);
    let mut failures = vec![];
    let mut summary = vec![];
    // Per mode, every capture's datagrams in one pcap (the probe id, and so the domain,
    // differs per capture): one tshark run per mode.
    for (to, uniflow, port) in [
        ("ipfix", false, 4739u16),
        ("ipfix", true, 4739),
        ("netflow9", true, 2055),
    ] {
        let name = format!("--to {to} uniflow={uniflow}");
        let (mut msgs, mut domains) = (vec![], vec![]);
        let (mut want_p, mut want_b) = (vec![], vec![]);
        for (tfr, recs) in &tfrs {
            let mut args = vec!["convert", "--to", to, "-r", tfr.to_str().unwrap()];
            if uniflow && to == "ipfix" {
                args.push("--uniflow");
            }
            let (m, out) = capture_udp(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (p, b) = wire_counts(recs, uniflow);
            assert_eq!(m.is_empty(), p.is_empty(), "{name} {}", tfr.display());
            domains.resize(domains.len() + m.len(), recs[0].probe_id);
            msgs.extend(m);
            want_p.extend(p);
            want_b.extend(b);
        }
        let file = dir.join(format!("{to}-{uniflow}.pcap"));
        std::fs::write(&file, pcap(&msgs, port)).unwrap();
        let rows = tshark_fields(
            &file,
            Some(port),
            &[
                "cflow.od_id",
                "cflow.source_id",
                "cflow.sequence",
                "cflow.count",
                "cflow.template_id",
                "cflow.packets",
                "cflow.octets",
                "cflow.srcaddr",
                "cflow.srcaddrv6",
                "_ws.malformed",
                "_ws.expert.severity",
            ],
        );
        assert_eq!(rows.len(), msgs.len(), "{name}: one frame per message");
        let (mut got_p, mut got_b) = (vec![], vec![]);
        let mut before: HashMap<u32, (u64, u64)> = HashMap::new();
        let mut flows = 0;
        for (i, r) in rows.iter().enumerate() {
            if !r[9].is_empty() || !r[10].is_empty() {
                failures.push(format!("{name}: frame {}: malformed/expert {r:?}", i + 1));
            }
            let n_flows = (r[7].len() + r[8].len()) as u64;
            let domain = if to == "ipfix" { &r[0] } else { &r[1] };
            if domain != &[domains[i].to_string()] {
                failures.push(format!("{name}: frame {}: domain {domain:?}", i + 1));
            }
            let (data, packets) = before.entry(domains[i]).or_default();
            let seq: u64 = r[2][0].parse().unwrap();
            // IPFIX: data records of the domain before this message; v9: export packets.
            let want_seq = if to == "ipfix" { *data } else { *packets };
            if seq != want_seq {
                failures.push(format!(
                    "{name}: frame {}: sequence {seq}, want {want_seq}",
                    i + 1
                ));
            }
            if to == "netflow9" {
                let count: u64 = r[3][0].parse().unwrap();
                if count != n_flows + r[4].len() as u64 {
                    failures.push(format!("{name}: frame {}: count {count}", i + 1));
                }
            }
            *data += n_flows;
            *packets += 1;
            flows += n_flows;
            got_p.extend(nums(&r[5]));
            got_b.extend(nums(&r[6]));
        }
        if got_p != want_p || got_b != want_b {
            failures.push(format!(
                "{name}: tshark's packet/octet values differ from tapflow's ({} / {} values, \
                 want {} / {})",
                got_p.len(),
                got_b.len(),
                want_p.len(),
                want_b.len()
            ));
        }
        summary.push(format!(
            "{name}: {} messages, {flows} data records, {} packets, {} octets",
            msgs.len(),
            got_p.iter().sum::<u64>(),
            got_b.iter().sum::<u64>()
        ));
    }
    // The RFC 5655 file form, every capture's export back to back: tshark reads IPFIX files.
    let file = dir.join("all.ipfix");
    let mut all = vec![];
    let mut want = vec![];
    for (tfr, recs) in &tfrs {
        let one = dir.join("x.ipfix");
        let out = tapflow(&[
            "convert",
            "--to",
            "ipfix",
            "-r",
            tfr.to_str().unwrap(),
            "-w",
            one.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        all.extend(std::fs::read(&one).unwrap());
        want.extend(wire_counts(recs, false).0);
    }
    std::fs::write(&file, all).unwrap();
    let rows = tshark_fields(
        &file,
        None,
        &["cflow.packets", "_ws.malformed", "_ws.expert.severity"],
    );
    if rows.iter().any(|r| !r[1].is_empty() || !r[2].is_empty()) {
        failures.push("IPFIX file: malformed or expert frames".into());
    }
    let got: Vec<u64> = rows.iter().flat_map(|r| nums(&r[0])).collect();
    if got != want {
        failures.push(format!(
            "IPFIX file: {} packet values, want {}",
            got.len(),
            want.len()
        ));
    }
    summary.push(format!("IPFIX file: {} messages read back", rows.len()));
    eprintln!(
        "tshark, {} captures:\n  {}",
        tfrs.len(),
        summary.join("\n  ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Splits an IPFIX stream into messages and decodes the data records' packet counts.
struct Stream {
    messages: usize,
    template_messages: usize,
    /// (sequence, data records) per message.
    seqs: Vec<(u32, u64)>,
    packets: u64,
    octets: u64,
}

fn parse_stream(b: &[u8]) -> Stream {
    let mut s = Stream {
        messages: 0,
        template_messages: 0,
        seqs: vec![],
        packets: 0,
        octets: 0,
    };
    let be16 = |x: &[u8]| u16::from_be_bytes([x[0], x[1]]) as usize;
    let be32 = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
    let mut tpl: HashMap<usize, Vec<(u16, usize)>> = HashMap::new();
    let mut p = 0;
    while p < b.len() {
        assert_eq!(be16(&b[p..]), 10, "version at {p}");
        let len = be16(&b[p + 2..]);
        let m = &b[p..p + len];
        let mut n = 0u64;
        let mut q = 16;
        let mut had_tpl = false;
        while q < m.len() {
            let (id, sl) = (be16(&m[q..]), be16(&m[q + 2..]));
            let body = &m[q + 4..q + sl];
            if id == 2 {
                had_tpl = true;
                let mut k = 0;
                while k < body.len() {
                    let (tid, cnt) = (be16(&body[k..]), be16(&body[k + 2..]));
                    k += 4;
                    let mut f = vec![];
                    for _ in 0..cnt {
                        let (ie, l) = (be16(&body[k..]) as u16, be16(&body[k + 2..]));
                        k += if ie & 0x8000 != 0 { 8 } else { 4 };
                        f.push((ie, l));
                    }
                    tpl.insert(tid, f);
                }
            } else {
                let f = &tpl[&id];
                let rl: usize = f.iter().map(|x| x.1).sum();
                let mut k = 0;
                while body.len() - k >= rl {
                    for &(ie, l) in f {
                        let v = body[k..k + l]
                            .iter()
                            .fold(0u64, |a, &x| (a << 8) | u64::from(x));
                        // Forward and reverse (enterprise bit) counters alike.
                        match ie & 0x7fff {
                            2 => s.packets += v,
                            1 => s.octets += v,
                            _ => {}
                        }
                        k += l;
                    }
                    n += 1;
                }
            }
            q += sl;
        }
        s.seqs.push((be32(&m[8..]), n));
        s.messages += 1;
        s.template_messages += usize::from(had_tpl);
        p += len;
    }
    s
}

#[test]
fn ipfix_over_tcp_and_to_a_file() {
    let dir = scratch("interop-ipfix-tcp");
    let mut checked = 0;
    for (tfr, recs) in all_tfrs(&dir) {
        let want = totals(&expected(&recs, false));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rx = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut v = vec![];
            c.read_to_end(&mut v).unwrap();
            v
        });
        let out = tapflow(&[
            "convert",
            "--to",
            "ipfix",
            "-r",
            tfr.to_str().unwrap(),
            "-w",
            &format!("tcp://{addr}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stream = rx.join().unwrap();
        let file = dir.join("x.ipfix");
        let out = tapflow(&[
            "convert",
            "--to",
            "ipfix",
            "-r",
            tfr.to_str().unwrap(),
            "-w",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        for (what, bytes) in [("tcp", stream), ("file", std::fs::read(&file).unwrap())] {
            let s = parse_stream(&bytes);
            assert_eq!(
                (s.packets, s.octets),
                (want[0] + want[1], want[2] + want[3]),
                "{what} {}",
                tfr.display()
            );
            // Templates once per connection; sequence numbers count data records.
            if s.messages > 0 {
                assert_eq!(s.template_messages, 1, "{what}");
            }
            let mut before = 0;
            for (seq, n) in &s.seqs {
                assert_eq!(u64::from(*seq), before, "{what}");
                before += n;
            }
        }
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn dead_collector_and_bad_destinations() {
    let dir = scratch("interop-ipfix-dead");
    let tfr = dir.join("demo.tfr");
    probe_records(&repo_root().join("tests/fixtures/demo.pcap"), &tfr, 1).unwrap();
    let t = tfr.to_str().unwrap();
    // A port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = tapflow(&[
        "convert",
        "--to",
        "ipfix",
        "-r",
        t,
        "-w",
        &format!("tcp://127.0.0.1:{port}"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect to tcp://127.0.0.1:"), "{err}");
    assert!(!err.contains("panicked"));
    // UDP: the kernel's port unreachable is reported.
    let out = tapflow(&[
        "convert",
        "--to",
        "netflow9",
        "-r",
        t,
        "-w",
        &format!("udp://127.0.0.1:{}", free_udp_port()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
    // NetFlow v9 has no stream or file form; unparsable destinations; parquet still absent.
    for (to, dest) in [
        ("netflow9", "x.nf9"),
        ("netflow9", "tcp://127.0.0.1:9"),
        ("ipfix", "udp://nohostport"),
        ("parquet", "x.parquet"),
    ] {
        let out = tapflow(&["convert", "--to", to, "-r", t, "-w", dest]);
        assert_eq!(out.status.code(), Some(2), "{to} {dest}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    // A collector that goes away mid-stream: a clear error, no panic.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = std::thread::spawn(move || {
        let (c, _) = listener.accept().unwrap();
        drop(c);
    });
    let big = dir.join("big.tfr");
    // Many copies of the demo records make a stream larger than the socket buffers.
    let mut args = vec!["read".to_string(), "-w".into(), big.display().to_string()];
    for _ in 0..400 {
        args.extend(["-r".to_string(), t.to_string()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(tapflow(&a).status.success());
    let out = tapflow(&[
        "convert",
        "--to",
        "ipfix",
        "-r",
        big.to_str().unwrap(),
        "-w",
        &format!("tcp://{addr}"),
    ]);
    closer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("writing tcp://"), "{err}");
    }
}
