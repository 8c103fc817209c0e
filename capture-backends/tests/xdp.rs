//! AF_XDP backend on veth pairs in throwaway network namespaces (needs root; skips loudly
//! otherwise). Every assertion counts exact frames of the test's own pattern: a magic, a test
//! tag and a sequence number in the UDP payload.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};
use tapflow_capture::live::wait_readable;
use tapflow_capture::netns::{self, Lab, SendOptions};
use tapflow_capture::xdp::{
    AttachMode, XdpConfig, XdpErrorKind, XdpProgram, XdpSocket, XskMode, PROGRAM_NAME,
};
use tapflow_capture::{Capture, LinkType, LiveCapture, LiveStats};

const MAGIC: &[u8; 6] = b"TFXDP!";

/// A frame's addressing: IPv4 or IPv6 endpoints, UDP ports, VLAN tags (outer first).
#[derive(Clone)]
struct Flow {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    vlans: Vec<(u16, u16)>, // (TPID, VID)
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn flow4(src: [u8; 4], dst: [u8; 4], sport: u16) -> Flow {
    Flow {
        src: v4(src),
        dst: v4(dst),
        sport,
        dport: 4739,
        vlans: Vec::new(),
    }
}

/// Ethernet [+ VLANs] + IPv4/IPv6 + UDP + MAGIC, tag, seq (big-endian u32).
fn frame(f: &Flow, tag: u8, seq: u32) -> Vec<u8> {
    sized_frame(f, tag, seq, 0)
}

/// `frame`, padded to `total` bytes (Ethernet header included, no FCS) if it is shorter.
fn sized_frame(f: &Flow, tag: u8, seq: u32, total: usize) -> Vec<u8> {
    let headers = 14 + 4 * f.vlans.len() + if f.src.is_ipv4() { 20 } else { 40 } + 8;
    let mut payload = Vec::with_capacity(total);
    payload.extend_from_slice(MAGIC);
    payload.push(tag);
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.resize(total.saturating_sub(headers).max(24), 0xa5);
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&f.sport.to_be_bytes());
    udp.extend_from_slice(&f.dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&0u16.to_be_bytes()); // "no checksum": nothing here verifies it
    udp.extend_from_slice(&payload);

    let mut out = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    for &(tpid, vid) in &f.vlans {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&vid.to_be_bytes());
    }
    match (f.src, f.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let mut total: u32 = ip
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                .sum();
            while total > 0xffff {
                total = (total & 0xffff) + (total >> 16);
            }
            ip[10..12].copy_from_slice(&(!(total as u16)).to_be_bytes());
            out.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&0x86DDu16.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(udp_len as u16).to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => unreachable!("mixed address families"),
    }
    out.extend_from_slice(&udp);
    out
}

/// (tag, seq, sport) of one of our frames, wherever the headers put the payload.
fn ours(data: &[u8]) -> Option<(u8, u32)> {
    let at = data.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let p = data.get(at + MAGIC.len()..at + MAGIC.len() + 5)?;
    Some((p[0], u32::from_be_bytes([p[1], p[2], p[3], p[4]])))
}

/// Frames of the test's pattern each socket received: (tag, seq) → count.
type Got = Vec<BTreeMap<(u8, u32), u32>>;

/// Reads all sockets until `want` of our frames arrived (or 15 s passed: a failure bound, not
/// an assertion), then keeps reading until every ring stays empty for a short settle, so
/// duplicates or strays would be seen. Checks every packet's metadata on the way.
fn collect(socks: &mut [&mut XdpSocket], want: usize, tags: &[u16]) -> Got {
    let mut got: Got = vec![BTreeMap::new(); socks.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut total = 0usize;
    let mut quiet_rounds = 0;
    loop {
        let mut any = false;
        for (i, s) in socks.iter_mut().enumerate() {
            let b = s
                .next_batch()
                .expect("next_batch")
                .expect("live source never ends");
            any |= !b.is_empty();
            for p in b.iter() {
                assert_eq!(p.link, LinkType::ETHERNET);
                assert_eq!(p.iface, tags[i]);
                assert_eq!(p.wire_len as usize, p.data.len());
                assert!(p.ts_ns > 1_600_000_000_000_000_000, "timestamp {}", p.ts_ns);
                if let Some(k) = ours(p.data) {
                    *got[i].entry(k).or_default() += 1;
                    total += 1;
                }
            }
        }
        if any {
            quiet_rounds = 0;
            continue;
        }
        if total >= want {
            quiet_rounds += 1;
            if quiet_rounds >= 3 {
                return got;
            }
        }
        if Instant::now() > deadline {
            return got;
        }
        let fds: Vec<_> = socks.iter().map(|s| s.poll_fd()).collect();
        wait_readable(&fds, 50).expect("poll");
    }
}

fn assert_identity(st: &LiveStats, what: &str) {
    assert_eq!(
        st.seen,
        st.delivered + st.ring_drops + st.filtered + st.passed + st.invalid,
        "{what}: seen != delivered + ring_drops + filtered + passed + invalid: {st:?}"
    );
}

fn ip_link_show(lab: &Lab, iface: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", &lab.rx_ns, "link", "show", iface])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the capture interface ends up with no XDP program. Closing the link fd detaches at
/// once, unless a child process forked by another test thread (`ip ...`) still holds a copy of
/// the fd until it execs: hence a bounded wait, not a timing assertion.
fn assert_no_xdp(lab: &Lab, iface: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ip_link_show(lab, iface);
        if !out.contains("xdp") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: XDP program left behind: {out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cfg(lab: &Lab, mode: XskMode, attach: AttachMode) -> XdpConfig {
    XdpConfig {
        iface: lab.legs[0].rx_if.clone(),
        mode,
        attach,
        ring_size: 4096,
        ..Default::default()
    }
}

/// `n` frames over `flows` flows (sport 10000 + flow), tagged `tag`, seq 0..n.
fn frames(n: u32, flows: u16, tag: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let fl = (i % flows as u32) as u16;
            frame(&flow4([10, 1, 0, 1], [10, 2, 0, 1], 10000 + fl), tag, i)
        })
        .collect()
}

/// Asserts socket `got` holds exactly seqs 0..n of `tag`, once each.
fn assert_exactly(got: &BTreeMap<(u8, u32), u32>, tag: u8, n: u32, what: &str) {
    let mine: Vec<_> = got.iter().filter(|((t, _), _)| *t == tag).collect();
    let dups: Vec<_> = mine.iter().filter(|(_, &c)| c != 1).collect();
    assert!(dups.is_empty(), "{what}: duplicates {dups:?}");
    assert_eq!(
        mine.len() as u32,
        n,
        "{what}: got {} of {n} frames",
        mine.len()
    );
    assert!(
        mine.iter().all(|((_, s), _)| *s < n),
        "{what}: unexpected sequence numbers"
    );
}

#[test]
fn copy_native_receives_every_frame() {
    if netns::skip_unless_available("copy_native_receives_every_frame") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    let c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    let (mut prog, mut sock) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load");
            let sock = prog.open_socket(0, 7).expect("open_socket");
            (prog, sock)
        })
        .expect("netns");
    assert!(!sock.zero_copy() && !sock.fell_back());
    assert_eq!(prog.queue_count(), 1);
    // Sockets must be bound in the interface's namespace (this thread is not in it).
    let e = prog
        .open_socket(0, 7)
        .err()
        .expect("open outside the netns");
    assert_eq!(e.kind, XdpErrorKind::Config, "{e}");
    assert_eq!(prog.driver(), "veth");
    assert!(ip_link_show(&lab, &c.iface).contains("xdp"));

    let n = 2000;
    let sent = lab
        .send(0, &frames(n, 16, 1), SendOptions::default())
        .expect("send");
    assert_eq!(sent, n as u64);
    let got = collect(&mut [&mut sock], n as usize, &[7]);
    assert_exactly(&got[0], 1, n, "copy/native");
    // Every flow got its share (the pattern survived intact).
    let st = sock.live_stats();
    assert_identity(&st, "copy/native");
    assert_eq!((st.ring_drops, st.filtered, st.passed), (0, 0, 0), "{st:?}");
    assert_eq!(st.delivered, sock.stats().packets);
    let c0 = prog.counters(0).expect("counters");
    assert!(c0.seen >= n as u64 && c0.redirected >= n as u64, "{c0:?}");
    drop(sock);
    drop(prog);
    assert_no_xdp(&lab, &c.iface, "after drop");
}

#[test]
fn generic_mode_receives_every_frame() {
    if netns::skip_unless_available("generic_mode_receives_every_frame") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    let c = cfg(&lab, XskMode::Copy, AttachMode::Generic);
    let (prog, mut sock) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load generic");
            let sock = prog.open_socket(0, 0).expect("open_socket");
            (prog, sock)
        })
        .expect("netns");
    assert!(ip_link_show(&lab, &c.iface).contains("xdpgeneric"));
    let n = 1000;
    lab.send(0, &frames(n, 8, 2), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut sock], n as usize, &[0]);
    assert_exactly(&got[0], 2, n, "copy/generic");
    let st = sock.live_stats();
    assert_identity(&st, "copy/generic");
    assert_eq!(st.ring_drops, 0);
    drop(prog);
    assert_no_xdp(&lab, &c.iface, "after drop");
}

#[test]
fn zero_copy_refused_and_auto_falls_back() {
    if netns::skip_unless_available("zero_copy_refused_and_auto_falls_back") {
        return;
    }
    let lab = Lab::new(1, 2).expect("lab");
    let c = cfg(&lab, XskMode::ZeroCopy, AttachMode::Native);
    let (err, prog, mut s0, mut s1) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load");
            let err = prog
                .open_socket(0, 0)
                .err()
                .expect("zero-copy on veth must fail");
            // The same program then serves Auto sockets: the failed attempt left nothing behind.
            let mut auto = c.clone();
            auto.mode = XskMode::Auto;
            assert!(
                XdpProgram::load(&auto).is_err(),
                "a second program on a busy interface must be refused"
            );
            drop(prog);
            let mut prog = XdpProgram::load(&auto).expect("load auto");
            let s0 = prog.open_socket(0, 0).expect("auto q0");
            let s1 = prog.open_socket(1, 1).expect("auto q1");
            (err, prog, s0, s1)
        })
        .expect("netns");
    assert_eq!(err.kind, XdpErrorKind::ZeroCopyUnsupported);
    let msg = err.to_string();
    assert!(
        msg.contains("driver veth cannot do zero-copy on") && msg.contains(&c.iface),
        "{msg}"
    );
    assert!(msg.contains("queue 0"), "{msg}");
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));

    for s in [&s0, &s1] {
        assert!(!s.zero_copy() && s.fell_back());
    }
    // One loud warning per program, not one per queue.
    let w0 = s0.take_warnings();
    let w1 = s1.take_warnings();
    assert_eq!(
        w0.iter()
            .filter(|w| w.message.contains("ZERO-COPY UNAVAILABLE"))
            .count(),
        1,
        "{w0:?}"
    );
    assert!(
        w1.iter().all(|w| !w.message.contains("ZERO-COPY")),
        "{w1:?}"
    );

    // Unpinned sender: the flow hash spreads the frames over both queues.
    let n = 1000;
    lab.send(0, &frames(n, 32, 3), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut s0, &mut s1], n as usize, &[0, 1]);
    let mut all = got[0].clone();
    for (k, v) in &got[1] {
        *all.entry(*k).or_default() += v;
    }
    assert_exactly(&all, 3, n, "auto fallback");
    for s in [&mut s0, &mut s1] {
        let st = s.live_stats();
        assert_identity(&st, "auto fallback");
    }
    drop(prog);
}

#[test]
fn multi_queue_native_steers_by_sender_cpu() {
    if netns::skip_unless_available("multi_queue_native_steers_by_sender_cpu") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lab = Lab::new(1, 2).expect("lab");
    let c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    let (prog, mut s0, mut s1) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load");
            assert_eq!(prog.queue_count(), 2);
            let s0 = prog.open_socket(0, 100).expect("q0");
            let s1 = prog.open_socket(1, 101).expect("q1");
            assert!(prog.open_socket(1, 101).is_err(), "queue 1 is taken");
            (prog, s0, s1)
        })
        .expect("netns");
    let n = 1000;
    let used: Vec<usize> = if cpus >= 2 { vec![0, 1] } else { vec![0] };
    if cpus < 2 {
        eprintln!("*** multi_queue: only 1 CPU, checking queue 0 only ***");
    }
    for &cpu in &used {
        let opts = SendOptions {
            cpu: Some(cpu),
            pace_us: 0,
        };
        lab.send(0, &frames(n, 16, 10 + cpu as u8), opts)
            .expect("send");
    }
    let got = collect(
        &mut [&mut s0, &mut s1],
        n as usize * used.len(),
        &[100, 101],
    );
    for &cpu in &used {
        let q = cpu % 2;
        assert_exactly(
            &got[q],
            10 + cpu as u8,
            n,
            &format!("cpu {cpu} → queue {q}"),
        );
        assert_eq!(
            got[q].len() as u32,
            n,
            "queue {q} got someone else's frames"
        );
    }
    if used.len() == 1 {
        assert!(got[1].is_empty());
    }
    for (q, s) in [&mut s0, &mut s1].into_iter().enumerate() {
        let st = s.live_stats();
        assert_identity(&st, &format!("queue {q}"));
        assert_eq!(st.ring_drops, 0);
        assert_eq!(prog.counters(q as u32).expect("counters").seen, st.seen);
    }
}

#[test]
fn drop_prefixes_are_filtered_in_xdp() {
    if netns::skip_unless_available("drop_prefixes_are_filtered_in_xdp") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    let mut c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    c.drop_prefixes = vec![
        (v4([10, 99, 7, 7]), 16), // host bits set on purpose: the loader masks them
        (IpAddr::V6("2001:db8:99::".parse::<Ipv6Addr>().unwrap()), 48),
    ];
    let (prog, mut sock) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load");
            let sock = prog.open_socket(0, 0).expect("open");
            (prog, sock)
        })
        .expect("netns");

    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let vlan = |f: &Flow, tags: &[(u16, u16)]| Flow {
        vlans: tags.to_vec(),
        ..f.clone()
    };
    let kept4 = flow4([10, 1, 0, 1], [10, 98, 255, 255], 1);
    let src_in = flow4([10, 99, 1, 2], [10, 2, 0, 1], 2);
    let dst_in = flow4([10, 1, 0, 1], [10, 99, 200, 1], 3);
    let kept6 = Flow {
        src: v6("2001:db8:98::1"),
        dst: v6("2001:db8:100::1"),
        sport: 4,
        dport: 53,
        vlans: vec![],
    };
    let in6 = Flow {
        src: v6("2001:db8:1::1"),
        dst: v6("2001:db8:99:abcd::1"),
        sport: 5,
        dport: 53,
        vlans: vec![],
    };
    // (flow, count, dropped?)
    let plan: Vec<(Flow, u32, bool)> = vec![
        (kept4.clone(), 300, false),
        (src_in.clone(), 200, true),
        (dst_in.clone(), 200, true),
        (vlan(&src_in, &[(0x8100, 5)]), 100, true),
        (vlan(&dst_in, &[(0x88a8, 100), (0x8100, 5)]), 100, true),
        (vlan(&kept4, &[(0x88a8, 100), (0x8100, 5)]), 100, false),
        (kept6.clone(), 100, false),
        (in6.clone(), 100, true),
        (vlan(&in6, &[(0x8100, 9)]), 50, true),
        (vlan(&kept6, &[(0x8100, 9)]), 50, false),
        // Three tags: past what the program parses, so it is not filtered (documented limit).
        (
            vlan(&src_in, &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]),
            20,
            false,
        ),
    ];
    let mut all = Vec::new();
    let (mut kept, mut dropped) = (0u32, 0u32);
    for (i, (f, count, drop)) in plan.iter().enumerate() {
        for _ in 0..*count {
            // seq encodes the plan line, so a wrongly kept frame names its line.
            let seq = (i as u32) << 16 | all.len() as u32 & 0xffff;
            all.push(frame(f, 4, seq));
        }
        if *drop {
            dropped += count;
        } else {
            kept += count;
        }
    }
    lab.send(0, &all, SendOptions::default()).expect("send");
    let got = collect(&mut [&mut sock], kept as usize, &[0]);
    let mut per_line = BTreeMap::<u32, u32>::new();
    for ((_, seq), c) in &got[0] {
        assert_eq!(*c, 1);
        *per_line.entry(seq >> 16).or_default() += 1;
    }
    for (i, (_, count, drop)) in plan.iter().enumerate() {
        let n = per_line.get(&(i as u32)).copied().unwrap_or(0);
        assert_eq!(n, if *drop { 0 } else { *count }, "plan line {i}");
    }
    let st = sock.live_stats();
    assert_identity(&st, "filtered");
    assert_eq!(st.filtered, dropped as u64, "{st:?}");
    assert_eq!(prog.counters(0).expect("counters").filtered, dropped as u64);
}

/// Restores /proc/sys/vm/nr_hugepages on drop (also when an assertion fails).
struct HugepagesGuard(String);
impl Drop for HugepagesGuard {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", &self.0);
    }
}

#[test]
fn hugepage_umem_and_fallback() {
    if netns::skip_unless_available("hugepage_umem_and_fallback") {
        return;
    }
    const NR: &str = "/proc/sys/vm/nr_hugepages";
    let old = std::fs::read_to_string(NR).expect("read nr_hugepages");
    let _guard = HugepagesGuard(old.trim().to_string());
    let old_n: u64 = old.trim().parse().expect("nr_hugepages");

    let lab = Lab::new(1, 1).expect("lab");
    let mut c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    c.ring_size = 1024; // UMEM 2048 × 2 KiB = 4 MiB = 2 huge pages
    c.hugepages = true;
    let mut prog = lab
        .in_rx(|| XdpProgram::load(&c).expect("load"))
        .expect("netns");

    // Reserve enough pages on top of whatever is configured.
    std::fs::write(NR, (old_n + 4).to_string()).expect("write nr_hugepages");
    let have: u64 = std::fs::read_to_string(NR).unwrap().trim().parse().unwrap();
    if have < old_n + 2 {
        eprintln!("*** hugepage_umem: kernel could only reserve {have} pages; skipping the hugepage half ***");
    } else {
        let mut s = lab
            .in_rx(|| prog.open_socket(0, 0).expect("open"))
            .expect("netns");
        assert!(s.hugepages(), "UMEM should be on 2 MiB pages");
        assert!(
            s.take_warnings()
                .iter()
                .all(|w| !w.message.contains("hugepages")),
            "no fallback warning expected"
        );
        let n = 500;
        lab.send(0, &frames(n, 4, 5), SendOptions::default())
            .expect("send");
        let got = collect(&mut [&mut s], n as usize, &[0]);
        assert_exactly(&got[0], 5, n, "hugepages");
        assert_identity(&s.live_stats(), "hugepages");
    }

    // No pages left: the socket falls back to normal pages, says so, and still works.
    std::fs::write(NR, "0").expect("write nr_hugepages");
    let mut s = lab
        .in_rx(|| prog.open_socket(0, 0).expect("open"))
        .expect("netns");
    assert!(!s.hugepages());
    let w = s.take_warnings();
    assert!(
        w.iter().any(|w| w.message.contains("no 2 MiB hugepages")),
        "{w:?}"
    );
    let n = 500;
    lab.send(0, &frames(n, 4, 6), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut s], n as usize, &[0]);
    assert_exactly(&got[0], 6, n, "hugepage fallback");
}

#[test]
fn detach_on_drop_reload_and_stale_legacy_program() {
    if netns::skip_unless_available("detach_on_drop_reload_and_stale_legacy_program") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    let c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    let iface = c.iface.clone();

    // Load, drop, load again: nothing stale in the way, nothing left behind.
    for round in 0..2 {
        let prog = lab
            .in_rx(|| XdpProgram::load(&c).expect("load"))
            .expect("netns");
        assert!(ip_link_show(&lab, &iface).contains("xdp"), "round {round}");
        // A second tapflow on the same interface is refused, naming the program.
        let e = lab.in_rx(|| XdpProgram::load(&c).err()).expect("netns");
        let e = e.expect("second load must fail");
        assert_eq!(e.kind, XdpErrorKind::Busy);
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("id {}", prog.program_id())) && msg.contains("bpf_link"),
            "{msg}"
        );
        drop(prog);
        assert_no_xdp(&lab, &iface, &format!("round {round}"));
    }

    // A tapflow program attached the legacy way (by hand, or by a crashed old version) is
    // replaced, with a warning.
    let obj = std::env::temp_dir().join(format!("tapflow_xdp_{}.o", std::process::id()));
    std::fs::write(&obj, tapflow_capture::xdp::program_object()).expect("write object");
    let out = Command::new("ip")
        .args([
            "-n", &lab.rx_ns, "link", "set", "dev", &iface, "xdpdrv", "obj",
        ])
        .arg(&obj)
        .args(["sec", "xdp"])
        .output()
        .expect("ip link set xdp");
    let _ = std::fs::remove_file(&obj);
    assert!(
        out.status.success(),
        "ip link set xdpdrv obj: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ip_link_show(&lab, &iface).contains("xdp"));
    let (mut prog, mut sock) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load over a stale program");
            let sock = prog.open_socket(0, 0).expect("open");
            (prog, sock)
        })
        .expect("netns");
    // The load warning travels with the first socket.
    assert!(prog.take_warnings().is_empty());
    let w = sock.take_warnings();
    assert!(
        w.iter()
            .any(|w| w.message.contains("removed a stale tapflow XDP program")),
        "{w:?}"
    );
    let n = 300;
    lab.send(0, &frames(n, 4, 7), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut sock], n as usize, &[0]);
    assert_exactly(&got[0], 7, n, "after replacing the stale program");
    drop(prog);
    assert_no_xdp(&lab, &iface, "after replacing the stale program");
    assert_eq!(PROGRAM_NAME, "tapflow_xdp");
}

#[test]
fn ring_overflow_is_accounted_and_recovers() {
    if netns::skip_unless_available("ring_overflow_is_accounted_and_recovers") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    let mut c = cfg(&lab, XskMode::Copy, AttachMode::Native);
    c.ring_size = 64;
    c.umem_frames = Some(128);
    c.batch = 32;
    let (_prog, mut sock) = lab
        .in_rx(|| {
            let mut prog = XdpProgram::load(&c).expect("load");
            let sock = prog.open_socket(0, 0).expect("open");
            (prog, sock)
        })
        .expect("netns");
    // Nobody reads while 1000 frames arrive: 64 fit, the rest are dropped for lack of frames.
    let n = 1000;
    lab.send(0, &frames(n, 4, 8), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut sock], 1, &[0]);
    let first = got[0].len() as u64;
    let st = sock.live_stats();
    assert_identity(&st, "overflow");
    assert!(st.ring_drops > 0, "{st:?}");
    assert_eq!(st.delivered, first);
    assert!(first >= 64 && first < n as u64, "{first}");
    let x = sock.xsk_statistics().expect("XDP_STATISTICS");
    assert!(x.rx_fill_ring_empty > 0, "{x:?}");

    // The frames came back: a second round, read as it arrives, is complete.
    let n2 = 50;
    lab.send(0, &frames(n2, 4, 9), SendOptions::default())
        .expect("send");
    let got = collect(&mut [&mut sock], n2 as usize, &[0]);
    assert_exactly(&got[0], 9, n2, "after overflow");
    assert_identity(&sock.live_stats(), "after overflow");
}

#[test]
fn oversized_frames_are_counted_not_delivered() {
    if netns::skip_unless_available("oversized_frames_are_counted_not_delivered") {
        return;
    }
    let lab = Lab::new(1, 1).expect("lab");
    for (ns, ifc) in [
        (&lab.rx_ns, &lab.legs[0].rx_if),
        (&lab.tx_ns, &lab.legs[0].tx_if),
    ] {
        let ok = Command::new("ip")
            .args(["-n", ns, "link", "set", ifc, "mtu", "3000"])
            .status()
            .expect("ip link set mtu");
        assert!(ok.success());
    }
    let f = flow4([10, 1, 0, 1], [10, 2, 0, 1], 7000);
    // A 2 KiB frame holds 2048 - 256 (kernel headroom) = 1792 bytes of packet.
    let sizes = [1792usize, 1793, 3014];
    let mut all = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        for k in 0..10u32 {
            let fr = sized_frame(&f, 11, (i as u32) << 16 | k, len);
            assert_eq!(fr.len(), len);
            all.push(fr);
        }
    }
    for (frame_size, delivered) in [(2048u32, 10usize), (4096, 30)] {
        let mut c = cfg(&lab, XskMode::Copy, AttachMode::Native);
        c.frame_size = frame_size;
        let (prog, mut sock) = lab
            .in_rx(|| {
                let mut prog = XdpProgram::load(&c).expect("load");
                let sock = prog.open_socket(0, 0).expect("open");
                (prog, sock)
            })
            .expect("netns");
        lab.send(0, &all, SendOptions::default()).expect("send");
        let got = collect(&mut [&mut sock], delivered, &[0]);
        let lens: Vec<u32> = got[0].keys().map(|(_, seq)| seq >> 16).collect();
        let want: Vec<u32> = (0..delivered as u32).map(|i| i / 10).collect();
        assert_eq!(
            lens, want,
            "frame_size {frame_size}: size classes delivered"
        );
        let st = sock.live_stats();
        assert_identity(&st, "oversized");
        assert_eq!(
            st.ring_drops,
            30 - delivered as u64,
            "frame_size {frame_size}: {st:?}"
        );
        drop(prog);
    }
}
