use super::*;
use tapflow_record::ProbeStatus;

/// 2026-11-24 10:00:00 UTC, in ns: aligned to the hop and to the hour.
const T0: u64 = (1_795_478_400 + 10 * 3600) * NS;
const MIN: u64 = 60 * NS;

fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 4] {
    [a, b, c, d]
}

/// A record: src sends `sp` packets / `sb` bytes, dst `dp` / `db`.
#[allow(clippy::too_many_arguments)]
fn rec(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    dport: u16,
    (sp, sb): (u64, u64),
    (dp, db): (u64, u64),
    t: u64,
) -> FlowRecord {
    let mut r = FlowRecord {
        addr_kind: AddrKind::Ipv4,
        proto,
        saddr: Addr::from_v4(src),
        daddr: Addr::from_v4(dst),
        sport: 40000,
        dport,
        stime_ns: t,
        ltime_ns: t.saturating_add(NS),
        ..FlowRecord::default()
    };
    r.src.pkts = sp;
    r.src.bytes = sb;
    r.dst.pkts = dp;
    r.dst.bytes = db;
    if proto == 6 {
        // The initiator's SYN: a record that starts a connection.
        r.src.tcp_flags = 0x02;
    }
    r
}

/// An answered TCP flow: the responder sent payload, so it is never a probe.
fn answered(src: [u8; 4], dst: [u8; 4], dport: u16, t: u64) -> FlowRecord {
    let mut r = rec(src, dst, 6, dport, (10, 1000), (8, 2000), t);
    r.dst.app_bytes = 500;
    r.dst.tcp_flags = 0x12;
    r
}

fn opts_local() -> ReportOptions {
    ReportOptions {
        local: parse_local_nets("10.0.0.0/8").unwrap(),
        ..ReportOptions::default()
    }
}

fn report(recs: Vec<FlowRecord>, o: &ReportOptions) -> Report {
    build(&mut recs.into_iter(), o)
}

fn near(got: u64, want: u64, pct: f64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * pct / 100.0
}

// ---- sketches ----

#[test]
fn distinct_is_exact_then_estimates() {
    let mut d = Distinct::default();
    for i in 0..DISTINCT_EXACT_CAP as u64 {
        d.insert(mix64(i));
        d.insert(mix64(i)); // duplicates do not count
    }
    assert!(d.is_exact());
    assert_eq!(d.estimate(), DISTINCT_EXACT_CAP as u64);
    for &n in &[1_000u64, 10_000, 100_000] {
        let mut d = Distinct::default();
        for i in 0..n {
            d.insert(mix64(i ^ 0x5555));
        }
        assert!(!d.is_exact());
        assert!(near(d.estimate(), n, 6.0), "{n}: {}", d.estimate());
        assert!(d.heap_bytes() <= 1024);
    }
}

#[test]
fn distinct_merge_is_union() {
    let (mut a, mut b) = (Distinct::default(), Distinct::default());
    for i in 0..60u64 {
        a.insert(mix64(i));
        b.insert(mix64(i + 30)); // 30 shared
    }
    a.merge(&b);
    assert!(a.is_exact());
    assert_eq!(a.estimate(), 90);
    let mut big = Distinct::default();
    for i in 0..5000u64 {
        big.insert(mix64(i));
    }
    a.merge(&big); // 0..90 ⊂ 0..5000
    assert!(near(a.estimate(), 5000, 6.0), "{}", a.estimate());
}

#[test]
fn space_saving_exact_below_capacity() {
    let mut ss: SpaceSaving<u32, ()> = SpaceSaving::new(10);
    for i in 0..10u32 {
        for _ in 0..=i {
            ss.add(i, 2);
        }
    }
    let top: Vec<(u32, u64, u64)> = ss
        .sorted()
        .iter()
        .map(|s| (s.key, s.count, s.err))
        .collect();
    assert_eq!(top[0], (9, 20, 0));
    assert_eq!(top[9], (0, 2, 0));
    assert_eq!(ss.len(), 10);
}

#[test]
fn space_saving_keeps_heavy_hitters_and_bounds_errors() {
    let mut ss: SpaceSaving<u64, ()> = SpaceSaving::new(50);
    let mut truth: HashMap<u64, u64> = HashMap::new();
    let mut x = 1u64;
    let total = 200_000u64;
    for i in 0..total {
        // 3 heavy keys get a quarter of the stream; the rest are (almost all) distinct.
        let key = if i % 4 == 0 {
            i % 3
        } else {
            1000 + mix64(i) % 1_000_000
        };
        x = x.wrapping_add(1);
        *truth.entry(key).or_default() += 1;
        ss.add(key, 1);
    }
    assert_eq!(ss.len(), 50);
    for k in 0..3 {
        let s = ss.get(&k).expect("a key above total/cap is kept");
        let t = truth[&k];
        assert!(
            s.count - s.err <= t && t <= s.count,
            "{k}: {} {} {t}",
            s.count,
            s.err
        );
    }
    for s in ss.iter() {
        let t = truth[&s.key];
        assert!(s.count - s.err <= t && t <= s.count);
    }
    let top: Vec<u64> = ss.sorted().iter().take(3).map(|s| s.key).collect();
    let mut top_sorted = top.clone();
    top_sorted.sort();
    assert_eq!(top_sorted, vec![0, 1, 2]);
}

// ---- top hosts ----

#[test]
fn top_hosts_in_out_split_hand_checked() {
    let recs = vec![
        // 10.0.0.1 asks 8.8.8.8 (udp/53): sent 1/80, received 1/200.
        rec(
            v4(10, 0, 0, 1),
            v4(8, 8, 8, 8),
            17,
            53,
            (1, 80),
            (1, 200),
            T0,
        ),
        // 93.184.216.34 connects to 10.0.0.1's ssh: the local host is dst and sends 20/30000.
        rec(
            v4(93, 184, 216, 34),
            v4(10, 0, 0, 1),
            6,
            22,
            (10, 1000),
            (20, 30000),
            T0 + NS,
        ),
        // Internal: 10.0.0.1 → 10.0.0.2 smb, counted for both.
        rec(
            v4(10, 0, 0, 1),
            v4(10, 0, 0, 2),
            6,
            445,
            (5, 5000),
            (5, 500),
            T0 + 2 * NS,
        ),
        // 10.0.0.2 downloads from 1.1.1.1.
        rec(
            v4(10, 0, 0, 2),
            v4(1, 1, 1, 1),
            6,
            443,
            (100, 10_000),
            (200, 300_000),
            T0 + 3 * NS,
        ),
        // Transit, and a status record: neither is a local host's traffic.
        rec(
            v4(192, 0, 2, 1),
            v4(192, 0, 2, 2),
            6,
            80,
            (1, 100),
            (1, 100),
            T0 + 4 * NS,
        ),
        FlowRecord {
            status: Some(Box::new(ProbeStatus::default())),
            ..FlowRecord::default()
        },
    ];
    let r = report(recs, &opts_local());
    assert_eq!(r.totals.records, 5);
    assert_eq!(r.totals.meta_records_skipped, 1);
    assert_eq!(r.top_hosts.len(), 2);

    let h2 = &r.top_hosts[0];
    assert_eq!(h2.host, "10.0.0.2");
    assert_eq!(
        h2.traffic,
        Traffic {
            out_bytes: 500 + 10_000,
            in_bytes: 5000 + 300_000,
            out_pkts: 5 + 100,
            in_pkts: 5 + 200,
            records: 2,
        }
    );
    assert_eq!(h2.error, 0);

    let h1 = &r.top_hosts[1];
    assert_eq!(h1.host, "10.0.0.1");
    assert_eq!(
        h1.traffic,
        Traffic {
            out_bytes: 80 + 30_000 + 5000,
            in_bytes: 200 + 1000 + 500,
            out_pkts: 1 + 20 + 5,
            in_pkts: 1 + 10 + 5,
            records: 3,
        }
    );
    assert_eq!((h1.peers_distinct, h1.peers_exact), (3, true));
    let peers: Vec<(&str, u64)> = h1
        .peers
        .iter()
        .map(|p| (p.name.as_str(), p.traffic.bytes()))
        .collect();
    assert_eq!(
        peers,
        vec![
            ("93.184.216.34", 31_000),
            ("10.0.0.2", 5500),
            ("8.8.8.8", 280)
        ]
    );
    let ports: Vec<(&str, u64)> = h1
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.traffic.bytes()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("tcp/22 (served)", 31_000),
            ("tcp/445", 5500),
            ("udp/53", 280)
        ]
    );
    // The served ssh connection: the local host sent 30000 of it.
    assert_eq!(h1.peers[0].traffic.out_bytes, 30_000);

    let t = &r.totals;
    assert_eq!(t.outbound.out_bytes, 80 + 30_000 + 10_000);
    assert_eq!(t.outbound.in_bytes, 200 + 1000 + 300_000);
    assert_eq!(t.internal.bytes(), 5500);
    assert_eq!(t.transit.bytes(), 200);
    assert_eq!((t.local_hosts, t.remote_hosts), (2, 5));
}

#[test]
fn closing_records_and_icmp_errors_are_not_probes() {
    // The last record of an ordinary connection (FIN exchange, no SYN, no payload back) and
    // ICMP errors a router sends to many hosts: neither is a scan.
    let mut recs = Vec::new();
    for i in 0..300u32 {
        let dst = [20, 0, (i >> 8) as u8, i as u8];
        let mut close = rec(v4(10, 0, 0, 5), dst, 6, 443, (2, 120), (1, 60), T0);
        close.src.tcp_flags = 0x11;
        close.dst.tcp_flags = 0x11;
        recs.push(close);
        let mut err = rec(v4(10, 0, 0, 254), dst, 1, 0, (1, 70), (0, 0), T0);
        err.sport = 11 << 8; // time exceeded
        recs.push(err);
        let mut echo = rec(v4(10, 0, 0, 7), dst, 1, 0, (1, 70), (1, 70), T0);
        echo.sport = 8 << 8; // echo request: a ping sweep is a scan
        recs.push(echo);
    }
    let r = report(recs, &opts_local());
    let scanners: Vec<&str> = r.scans.scanners.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(scanners, vec!["10.0.0.7"], "{scanners:?}");
}

#[test]
fn rank_by_packets_and_top_limits() {
    let recs = vec![
        rec(
            v4(10, 0, 0, 1),
            v4(8, 8, 8, 8),
            6,
            443,
            (1, 90_000),
            (1, 90_000),
            T0,
        ),
        rec(
            v4(10, 0, 0, 2),
            v4(8, 8, 8, 8),
            6,
            443,
            (50, 100),
            (50, 100),
            T0,
        ),
        rec(
            v4(10, 0, 0, 3),
            v4(8, 8, 8, 8),
            6,
            443,
            (5, 100),
            (5, 100),
            T0,
        ),
    ];
    let mut o = opts_local();
    o.rank = Rank::Pkts;
    o.top = 2;
    let r = report(recs, &o);
    let hosts: Vec<&str> = r.top_hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, vec!["10.0.0.2", "10.0.0.3"]);
}

// ---- fan-out ----

fn remote(i: u32) -> [u8; 4] {
    let b = (i + 1).to_be_bytes();
    [198, b[1], b[2], b[3]]
}

#[test]
fn spam_fanout_detected_and_normal_hosts_not() {
    let mut recs = Vec::new();
    // A: 300 distinct remotes on port 25 within 25 minutes.
    for i in 0..300 {
        recs.push(answered(
            v4(10, 0, 0, 66),
            remote(i),
            25,
            T0 + u64::from(i) * 5 * NS,
        ));
    }
    // B: 50 remotes, below K = 100.
    for i in 0..50 {
        recs.push(answered(
            v4(10, 0, 0, 77),
            remote(i),
            25,
            T0 + u64::from(i) * NS,
        ));
    }
    // C: 150 remotes in all, but spread over 5 hours (30 an hour).
    for i in 0..150 {
        recs.push(answered(
            v4(10, 0, 0, 88),
            remote(1000 + i),
            25,
            T0 + u64::from(i) * 2 * MIN,
        ));
    }
    // E: 300 remotes, but on 443.
    for i in 0..300 {
        recs.push(answered(
            v4(10, 0, 0, 99),
            remote(i),
            443,
            T0 + u64::from(i) * NS,
        ));
    }
    // A remote mail sender to 300 local hosts: inbound, not a local host's fan-out.
    for i in 0..300u32 {
        let b = i.to_be_bytes();
        recs.push(answered(v4(203, 0, 113, 5), v4(10, 9, b[2], b[3]), 25, T0));
    }
    // F: 300 contacts but only 20 distinct remotes.
    for i in 0..300 {
        recs.push(answered(
            v4(10, 0, 0, 55),
            remote(i % 20),
            25,
            T0 + u64::from(i) * NS,
        ));
    }
    let r = report(recs, &opts_local());
    let hosts: Vec<&str> = r.fanout.alerts.iter().map(|a| a.host.as_str()).collect();
    assert_eq!(hosts, vec!["10.0.0.66"]);
    let a = &r.fanout.alerts[0];
    assert!(!a.exact, "300 distinct is past the exact set");
    assert!(near(a.remotes, 300, 6.0), "{}", a.remotes);
    assert_eq!(a.contacts, 300);
    assert_eq!(a.window_start, (T0 / NS) as f64);
    assert_eq!(a.window_end - a.window_start, 3600.0);
    assert_eq!(a.first_seen, (T0 / NS) as f64);
    assert_eq!(a.last_seen, (T0 / NS + 299 * 5) as f64);
    assert!(r.scans.scanners.is_empty(), "answered mail is not a scan");
}

/// 60 remotes at 10:40–10:59 and 60 more at 11:00–11:19.
fn straddling(shuffle: bool) -> Vec<FlowRecord> {
    let start = T0 + 40 * MIN;
    let mut recs: Vec<FlowRecord> = (0..120u32)
        .map(|i| {
            answered(
                v4(10, 0, 0, 44),
                remote(i),
                25,
                start + u64::from(i) * 20 * NS,
            )
        })
        .collect();
    if shuffle {
        // Out of time order, as records of flows that ended at different times arrive.
        recs.reverse();
        recs.rotate_left(37);
    }
    recs
}

#[test]
fn fanout_hopping_windows_catch_a_burst_across_the_hour() {
    let mut o = opts_local();
    o.fanout_k = 100;
    for shuffle in [false, true] {
        let r = report(straddling(shuffle), &o);
        assert_eq!(r.fanout.alerts.len(), 1, "shuffle {shuffle}");
        let a = &r.fanout.alerts[0];
        assert_eq!((a.remotes, a.exact), (120, true));
        assert_eq!(a.window_start, ((T0 + 40 * MIN) / NS) as f64);
    }
    // Per clock hour (hop = window): 60 + 60, never more than 100 in one hour.
    o.fanout_hop_ns = o.fanout_window_ns;
    let r = report(straddling(false), &o);
    assert!(r.fanout.alerts.is_empty());
}

#[test]
fn fanout_port_set_is_configurable() {
    let recs: Vec<FlowRecord> = (0..120u32)
        .map(|i| answered(v4(10, 0, 0, 66), remote(i), 587, T0 + u64::from(i) * NS))
        .collect();
    let r = report(recs.clone(), &opts_local());
    assert!(r.fanout.alerts.is_empty());
    let mut o = opts_local();
    o.fanout_ports = parse_ports("25,submission").unwrap();
    let r = report(recs, &o);
    assert_eq!(r.fanout.alerts.len(), 1);
    assert_eq!(r.fanout.alerts[0].remotes, 120);
}

#[test]
fn fanout_buckets_bounded_over_a_long_run() {
    // One host contacting a new remote every minute for two days: never an alert (60/h),
    // and its per-host state stays at most a window plus lateness.
    let mut rep = Reporter::new(&opts_local());
    for i in 0..2880u32 {
        rep.add(&answered(
            v4(10, 0, 0, 66),
            remote(i),
            25,
            T0 + u64::from(i) * MIN,
        ));
        assert!(rep.stats().max_buckets_per_fanout_host <= 6 + 1 + 1);
    }
    assert!(rep.finish().fanout.alerts.is_empty());
}

// ---- scans ----

#[test]
fn scan_detector_on_synthetic_scans_and_normal_traffic() {
    let mut recs = Vec::new();
    // S: a horizontal SYN scan of 5000 local hosts on port 22, one packet each, no answer.
    for i in 0..5000u32 {
        let b = i.to_be_bytes();
        recs.push(rec(
            v4(203, 0, 113, 9),
            v4(10, 1, b[2], b[3]),
            6,
            22,
            (1, 60),
            (0, 0),
            T0 + u64::from(i) * NS / 10,
        ));
    }
    // V: a vertical scan of 1000 ports of one host, answered by RSTs (no payload).
    for p in 1..=1000u16 {
        recs.push(rec(
            v4(10, 0, 0, 99),
            v4(10, 0, 0, 200),
            6,
            p,
            (1, 60),
            (1, 60),
            T0,
        ));
    }
    // A web client: 20 servers, 10 flows each, 20 packets a flow.
    for i in 0..200u32 {
        recs.push(rec(
            v4(10, 0, 0, 5),
            remote(i % 20),
            6,
            443,
            (20, 3000),
            (20, 30_000),
            T0,
        ));
    }
    // A resolver: 500 servers, one packet each way, answered with payload.
    for i in 0..500u32 {
        let mut r = rec(v4(10, 0, 0, 53), remote(i), 17, 53, (1, 80), (1, 300), T0);
        r.dst.app_bytes = 250;
        recs.push(r);
    }
    // A small prober below the threshold.
    for i in 0..50u32 {
        recs.push(rec(
            v4(10, 0, 0, 7),
            remote(i),
            6,
            3389,
            (1, 60),
            (0, 0),
            T0,
        ));
    }
    let r = report(recs, &opts_local());
    let s = &r.scans.scanners;
    let names: Vec<&str> = s.iter().map(|x| x.source.as_str()).collect();
    assert_eq!(names, vec!["203.0.113.9", "10.0.0.99"]);

    assert_eq!(s[0].kind, "horizontal");
    assert!(near(s[0].targets, 5000, 6.0), "{}", s[0].targets);
    assert!(near(s[0].hosts, 5000, 6.0), "{}", s[0].hosts);
    assert_eq!(s[0].ports, 1);
    assert_eq!(s[0].probes, 5000);
    assert_eq!(s[0].top_ports, vec!["tcp/22".to_string()]);
    assert!(!s[0].targets_exact && !s[0].hosts_exact && s[0].ports_exact);

    assert_eq!(s[1].kind, "vertical");
    assert_eq!((s[1].hosts, s[1].hosts_exact), (1, true));
    assert!(near(s[1].ports, 1000, 6.0), "{}", s[1].ports);
    assert_eq!(s[1].probes, 1000);
}

#[test]
fn scan_thresholds_are_configurable() {
    let recs: Vec<FlowRecord> = (0..60u32)
        .map(|i| rec(v4(10, 0, 0, 7), remote(i), 6, 80, (3, 180), (0, 0), T0))
        .collect();
    let mut o = opts_local();
    assert!(report(recs.clone(), &o).scans.scanners.is_empty());
    o.scan_min_targets = 50;
    assert_eq!(report(recs.clone(), &o).scans.scanners.len(), 1);
    o.scan_max_pkts = 2; // 3-packet flows are no longer probes
    assert!(report(recs, &o).scans.scanners.is_empty());
}

// ---- bounded memory ----

#[test]
fn a_million_distinct_sources_stay_within_the_caps() {
    let o = opts_local();
    let mut rep = Reporter::new(&o);
    let (mut scanner_probes, mut spam_contacts) = (0u32, 0u32);
    for i in 0..1_000_000u32 {
        let t = T0 + u64::from(i) * 3_600_000; // the whole run spans one hour
        if i % 250 == 0 {
            // A real scanner hidden in the flood.
            let b = scanner_probes.to_be_bytes();
            rep.add(&rec(
                v4(198, 18, 0, 1),
                v4(10, 2, b[2], b[3]),
                6,
                23,
                (1, 60),
                (0, 0),
                t,
            ));
            scanner_probes += 1;
        } else if i % 300 == 1 {
            // A real spammer hidden in the flood.
            rep.add(&answered(v4(10, 99, 0, 1), remote(spam_contacts), 25, t));
            spam_contacts += 1;
        } else {
            // A distinct local source (an odd multiplier permutes 2^24) to a random remote,
            // one packet on port 25: it hits the talkers, the fan-out and the scan tables.
            let s = (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff).to_be_bytes();
            let d = (mix64(u64::from(i)) as u32).to_be_bytes();
            rep.add(&rec(
                v4(10, s[1], s[2], s[3]),
                v4(203, d[1], d[2], d[3]),
                6,
                25,
                (1, 60),
                (0, 0),
                t,
            ));
        }
    }
    let st = rep.stats();
    assert!(st.talkers <= o.talker_capacity, "{st:?}");
    assert!(st.fanout_hosts <= o.fanout_capacity, "{st:?}");
    assert!(st.scan_sources <= o.scan_capacity, "{st:?}");
    assert!(st.alerts <= o.max_alerts, "{st:?}");
    assert!(st.max_peers_per_talker <= o.peer_capacity, "{st:?}");
    assert!(st.max_buckets_per_fanout_host <= 6 + 1 + 1, "{st:?}");
    assert_eq!(st.talkers, o.talker_capacity, "the flood filled the table");
    let bound = memory_bound(&o);
    assert!(
        st.approx_heap_bytes <= bound,
        "{} > {bound}",
        st.approx_heap_bytes
    );
    assert!(bound < 40 << 20, "default bound {bound} bytes");
    eprintln!("flood: heap ~{} bytes, bound {bound}", st.approx_heap_bytes);

    let r = rep.finish();
    assert!(r.limits.talker_evictions > 900_000);
    let sc: Vec<&Scanner> = r
        .scans
        .scanners
        .iter()
        .filter(|s| s.source == "198.18.0.1")
        .collect();
    assert_eq!(sc.len(), 1, "the scanner survives the flood");
    assert!(near(sc[0].targets, u64::from(scanner_probes), 6.0));
    let sp: Vec<&FanoutAlert> = r
        .fanout
        .alerts
        .iter()
        .filter(|a| a.host == "10.99.0.1")
        .collect();
    assert_eq!(sp.len(), 1, "the spammer survives the flood");
    assert!(
        near(sp[0].remotes, u64::from(spam_contacts), 6.0),
        "{}",
        sp[0].remotes
    );
}

#[test]
fn memory_bound_scales_with_options_not_input() {
    let small = ReportOptions {
        talker_capacity: 10,
        fanout_capacity: 10,
        scan_capacity: 10,
        ..ReportOptions::default()
    };
    assert!(memory_bound(&small) < memory_bound(&ReportOptions::default()));
    let mut rep = Reporter::new(&small);
    for i in 0..20_000u32 {
        let b = i.to_be_bytes();
        rep.add(&rec(
            v4(10, b[1], b[2], b[3]),
            v4(1, b[1], b[2], b[3]),
            6,
            25,
            (1, 60),
            (0, 0),
            T0,
        ));
    }
    let st = rep.stats();
    assert_eq!((st.talkers, st.fanout_hosts, st.scan_sources), (10, 10, 10));
    assert!(st.approx_heap_bytes <= memory_bound(&small));
}

// ---- output ----

#[test]
fn text_and_json_output() {
    let mut recs = vec![
        rec(
            v4(10, 0, 0, 1),
            v4(8, 8, 8, 8),
            17,
            53,
            (1, 80),
            (1, 200),
            T0,
        ),
        rec(
            v4(10, 0, 0, 2),
            v4(1, 1, 1, 1),
            6,
            443,
            (100, 10_000),
            (200, 300_000),
            T0 + NS,
        ),
    ];
    for i in 0..150 {
        recs.push(answered(
            v4(10, 0, 0, 66),
            remote(i),
            25,
            T0 + u64::from(i) * NS,
        ));
    }
    let mut o = opts_local();
    let mut text = Vec::new();
    run(&mut recs.clone().into_iter(), &o, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("period   2026-11-24 10:00:00 .. 2026-11-24 10:02:30 UTC"),
        "{text}"
    );
    assert!(text.contains("local    10.0.0.0/8"));
    let host_line = text
        .lines()
        .find(|l| l.contains(" 10.0.0.2 "))
        .expect(&text);
    // Columns: label, bytes, out, in, out pkts, in pkts, records, peers.
    let cols: Vec<&str> = host_line.split_whitespace().collect();
    assert_eq!(cols[2..], ["310K", "10.0K", "300K", "100", "200", "1", "1"]);
    assert!(text.contains("port tcp/443"));
    let alert = text
        .lines()
        .find(|l| l.trim_start().starts_with("10.0.0.66"))
        .expect(&text);
    assert!(
        alert.contains("~150") || alert.contains("~14") || alert.contains("~15"),
        "{alert}"
    );
    assert!(alert.contains("2026-11-24 10:00:00 +1h"), "{alert}");
    assert!(text.contains("Scans:"));

    o.format = ReportFormat::Json;
    let mut js = Vec::new();
    run(&mut recs.into_iter(), &o, &mut js).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
    assert_eq!(v["top_hosts"][1]["host"], "10.0.0.2");
    assert_eq!(v["top_hosts"][1]["out_bytes"], 10_000);
    assert_eq!(v["top_hosts"][1]["in_bytes"], 300_000);
    assert_eq!(v["top_hosts"][1]["ports"][0]["name"], "tcp/443");
    assert_eq!(v["fanout"]["alerts"][0]["host"], "10.0.0.66");
    assert_eq!(v["fanout"]["threshold"], 100);
    assert_eq!(v["local_networks"][0], "10.0.0.0/8");
    assert_eq!(v["totals"]["records"], 152);
}

#[test]
fn human_units() {
    assert_eq!(human(0), "0");
    assert_eq!(human(999), "999");
    assert_eq!(human(1000), "1.00K");
    assert_eq!(human(12_345), "12.3K");
    assert_eq!(human(310_000), "310K");
    assert_eq!(human(999_999), "1.00M");
    assert_eq!(human(u64::MAX), "18.4E");
}

#[test]
fn local_nets_and_ports_parse() {
    let n = parse_local_nets("10.1.2.3/8, 192.168.0.0/16,2001:db8::/32,172.16.5.4").unwrap();
    assert_eq!(n.len(), 4);
    assert_eq!(n[0].to_string(), "10.0.0.0/8", "host bits cleared");
    assert_eq!(n[3].to_string(), "172.16.5.4/32");
    assert!(n[0].contains(AddrKind::Ipv4, &Addr::from_v4([10, 255, 0, 1])));
    assert!(!n[0].contains(AddrKind::Ipv4, &Addr::from_v4([11, 0, 0, 1])));
    let v6: std::net::Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
    assert!(n[2].contains(AddrKind::Ipv6, &Addr(v6.octets())));
    assert!(!n[2].contains(AddrKind::Ipv4, &Addr(v6.octets())));
    let odd = parse_local_nets("10.0.0.0/12").unwrap();
    assert!(odd[0].contains(AddrKind::Ipv4, &Addr::from_v4([10, 15, 1, 1])));
    assert!(!odd[0].contains(AddrKind::Ipv4, &Addr::from_v4([10, 16, 1, 1])));
    // tcpdump's short forms.
    let short = parse_local_nets("10/8,172.16/12,192.168").unwrap();
    let shown: Vec<String> = short.iter().map(|n| n.to_string()).collect();
    assert_eq!(shown, ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]);
    assert!(parse_local_nets("10/33").is_err());
    assert!(parse_local_nets("10.0.0.0/33").is_err());
    assert!(parse_local_nets("bogus").is_err());
    assert!(parse_local_nets("::/129").is_err());
    assert_eq!(parse_ports("25, 465,smtp").unwrap(), vec![25, 465, 25]);
    assert!(parse_ports("70000").is_err());
    let wild = LocalNet {
        kind: AddrKind::Ipv6,
        addr: [0; 16],
        prefix: 200,
    };
    assert!(wild.contains(AddrKind::Ipv6, &Addr([0; 16])));
}

#[test]
fn odd_records_and_options_never_panic() {
    let o = ReportOptions {
        fanout_window_ns: 0,
        fanout_hop_ns: 0,
        fanout_lateness_ns: u64::MAX,
        talker_capacity: 0,
        peer_capacity: 0,
        fanout_capacity: 0,
        scan_capacity: 0,
        max_alerts: 0,
        fanout_k: 0,
        scan_min_targets: 0,
        local: parse_local_nets("0.0.0.0/0,::/0").unwrap(),
        ..ReportOptions::default()
    };
    let mut rep = Reporter::new(&o);
    let mut x = 99u64;
    for _ in 0..5000 {
        x = mix64(x);
        let mut r = rec(
            (x as u32).to_be_bytes(),
            ((x >> 32) as u32).to_be_bytes(),
            x as u8,
            (x >> 8) as u16,
            (x >> 60, u64::MAX),
            (x >> 62, u64::MAX - 1),
            if x % 7 == 0 { u64::MAX } else { x >> (x % 64) },
        );
        r.addr_kind = [AddrKind::Ipv4, AddrKind::Ipv6, AddrKind::L2][(x % 3) as usize];
        r.ltime_ns = x.rotate_left(7);
        rep.add(&r);
    }
    let r = rep.finish();
    let mut out = Vec::new();
    write_text(&r, &mut out).unwrap();
    write_json(&r, &mut out).unwrap();
    assert!(r.top_hosts.len() <= 1);
}

#[test]
fn fanout_records_later_than_the_allowance_count_in_the_oldest_open_window() {
    let mut recs = vec![answered(
        v4(10, 0, 0, 44),
        remote(0),
        25,
        T0 + 3 * 3600 * NS,
    )];
    // Stamped 09:00, arriving after a 13:00 record: four hours late, past the one-hop
    // allowance, so they count in the oldest bucket still open (12:00).
    for i in 1..=105u32 {
        recs.push(answered(v4(10, 0, 0, 44), remote(i), 25, T0 - 3600 * NS));
    }
    let r = report(recs, &opts_local());
    assert_eq!(r.fanout.alerts.len(), 1);
    let a = &r.fanout.alerts[0];
    assert_eq!((a.remotes, a.exact), (105, true));
    assert_eq!(a.window_start, ((T0 + 2 * 3600 * NS) / NS) as f64);
    assert_eq!(a.first_seen, ((T0 - 3600 * NS) / NS) as f64);
}

#[test]
fn answered_ping_sweep_is_a_scan() {
    let recs: Vec<FlowRecord> = (0..200u32)
        .map(|i| {
            let mut r = rec(v4(10, 0, 0, 8), remote(i), 1, 77, (1, 98), (1, 98), T0);
            r.sport = 0x0800; // echo request
            r.dst.app_bytes = 56; // the reply echoes the data
            r
        })
        .collect();
    let r = report(recs, &opts_local());
    assert_eq!(r.scans.scanners.len(), 1);
    let s = &r.scans.scanners[0];
    assert_eq!(
        (s.source.as_str(), s.kind, s.ports),
        ("10.0.0.8", "horizontal", 0)
    );
    assert_eq!(s.top_ports, vec!["icmp".to_string()]);
    assert!(near(s.targets, 200, 6.0));
}

#[test]
fn ranked_by_guaranteed_count() {
    // A 10, B 6, D 3; then C (4) replaces D and inherits 3: count 7 but only 4 known.
    let mut t: SpaceSaving<u32, ()> = SpaceSaving::new(3);
    t.add(1, 10);
    t.add(2, 6);
    t.add(4, 3);
    t.add(3, 4);
    let order: Vec<(u32, u64, u64)> = t.sorted().iter().map(|s| (s.key, s.count, s.err)).collect();
    assert_eq!(order, vec![(1, 10, 0), (2, 6, 0), (3, 7, 3)]);
}
