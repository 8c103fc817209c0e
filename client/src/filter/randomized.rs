//! Randomized tests: the parser never panics, and compiled filters agree with a separate,
//! deliberately naive evaluator that walks the generated expression on the record's fields.

use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use tapflow_record::{encap, flags, Addr, AddrKind, Cause, DirStats, FlowRecord, FlowState};

use super::{Filter, MAX_DEPTH};

/// SplitMix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, s: &[T]) -> T {
        s[self.below(s.len())]
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

const V4: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [192, 168, 1, 9],
    [172, 16, 5, 4],
];
const V6: [&str; 3] = ["2001:db8::1", "2001:db8::2", "fe80::1"];
const MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [0xff; 6]];
const PORTS: [u16; 6] = [22, 53, 80, 443, 40000, 65535];
const ICMP4: [u8; 7] = [8, 0, 3, 4, 5, 11, 12];
const ICMP6: [u8; 7] = [128, 129, 1, 137, 3, 4, 2];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn side(rng: &mut Rng) -> DirStats {
    let pkts = rng.pick(&[0, 0, 1, 5, 12, 100]);
    DirStats {
        pkts,
        bytes: pkts * rng.pick(&[0, 60, 1500]),
        ip_bytes: pkts * rng.pick(&[0, 40, 1480]),
        app_bytes: pkts * rng.pick(&[0, 0, 100]),
        ttl_max: rng.pick(&[0, 1, 64, 128, 255]),
        tos: rng.pick(&[0, 16]),
        tcp_flags: rng.next() as u8,
        retrans: rng.pick(&[0, 0, 2]),
        out_of_order: rng.pick(&[0, 0, 3]),
        zero_win: rng.pick(&[0, 0, 1]),
        loss_pkts: rng.pick(&[0, 0, 1, 3]),
        frags: rng.pick(&[0, 0, 2]),
        ipt_std_ns: rng.pick(&[0.0, 2e6, 6e6, 1_234_567.0]),
        ipt_mean_ns: rng.pick(&[0.0, 10e6, 10.5e6]),
        window: rng.pick(&[0, 65535]),
        ..Default::default()
    }
}

fn record(rng: &mut Rng) -> FlowRecord {
    let mut r = FlowRecord {
        smac: rng.pick(&MACS),
        dmac: rng.pick(&MACS),
        vlan: [rng.pick(&[0, 0, 10, 20]), rng.pick(&[0, 0, 30])],
        mpls: [rng.pick(&[0, 0, 16]), rng.pick(&[0, 17])],
        stime_ns: 1_000_000_000,
        state: FlowState::from_u8(rng.below(7) as u8).unwrap(),
        cause: Cause::from_u8(rng.below(6) as u8).unwrap(),
        observed: rng.below(4) as u8,
        synack_ns: rng.pick(&[0, 4_000_000, 4_300_000]),
        ackdat_ns: rng.pick(&[0, 8_000_000]),
        flags: rng.next() as u32 & (flags::FRAGMENTS | flags::ECN_CE),
        src: side(rng),
        dst: side(rng),
        ..Default::default()
    };
    r.encap.kinds = rng.next() as u16 & (encap::VLAN | encap::QINQ | encap::MPLS);
    r.ltime_ns =
        r.stime_ns + rng.pick(&[0, 500_000_000, 60_000_000_000, 60_500_000_000, 12_300_000]);
    match rng.below(7) {
        0 => {
            r.addr_kind = AddrKind::L2;
            r.ethertype = rng.pick(&[0x0806, 0x88cc]);
            r.saddr = Addr::from_mac(rng.pick(&MACS));
            r.daddr = Addr::from_mac(rng.pick(&MACS));
        }
        k => {
            let ipv4 = k <= 4;
            r.addr_kind = if ipv4 { AddrKind::Ipv4 } else { AddrKind::Ipv6 };
            r.ethertype = if ipv4 { 0x0800 } else { 0x86dd };
            if ipv4 {
                r.saddr = Addr::from_v4(rng.pick(&V4));
                r.daddr = Addr::from_v4(rng.pick(&V4));
            } else {
                r.saddr = Addr(v6(rng.pick(&V6)));
                r.daddr = Addr(v6(rng.pick(&V6)));
            }
            let icmp = if ipv4 { 1 } else { 58 };
            r.proto = rng.pick(&[6, 6, 17, icmp, 132, 47, if ipv4 { 58 } else { 1 }]);
            if r.proto == icmp {
                let ty = rng.pick(if ipv4 { &ICMP4 } else { &ICMP6 });
                r.sport = (ty as u16) << 8 | rng.below(4) as u16;
                r.dport = rng.below(3) as u16;
            } else if rng.one_in(8) {
                (r.sport, r.dport) = (0, 0);
            } else {
                r.sport = rng.pick(&PORTS);
                r.dport = rng.pick(&PORTS);
            }
        }
    }
    r
}

// ---- the generated expression and its reference semantics ----

#[derive(Clone, Copy, Debug, PartialEq)]
enum D {
    Src,
    Dst,
    Any,
}

#[derive(Clone, Debug)]
enum L {
    Proto(&'static str),
    HostV4(D, [u8; 4]),
    HostV6(D, &'static str),
    Mac(D, [u8; 6], bool),
    Net4(D, [u8; 4], u32, bool),
    Port(D, u16),
    Range(D, u16, u16, bool),
    EtherProto(&'static str, u16),
    Vlan(Option<u16>),
    Mpls(Option<u32>),
    TcpFlag(D, &'static str, u8),
    SynAck,
    Ecn,
    Behaviour(D, &'static str),
    Icmp(&'static str, Option<u8>, Option<u8>),
    Cmp(D, &'static str, &'static str, String),
    /// `tcp dst port N`
    ProtoPort(&'static str, D, u16),
}

#[derive(Clone, Debug)]
enum G {
    And(Vec<G>),
    Or(Vec<G>),
    Not(Box<G>),
    Leaf(L),
}

fn dir(rng: &mut Rng) -> D {
    rng.pick(&[D::Src, D::Dst, D::Any, D::Any])
}

/// Fields the reference knows, with literals near the generated values.
const FIELDS: &[(&str, bool, &[&str])] = &[
    // (name, has src/dst, literals)
    (
        "pkts",
        true,
        &["0", "1", "5", "12", "17", "100", "2.5", "-1"],
    ),
    ("bytes", true, &["0", "60", "1500", "7500", "0x3c"]),
    ("appbytes", true, &["0", "100", "500", "99.9"]),
    ("ipbytes", true, &["0", "40", "1480"]),
    ("retrans", true, &["0", "1", "2", "4"]),
    ("ooo", true, &["0", "3"]),
    ("outoforder", true, &["0", "3"]),
    ("loss", true, &["0", "1", "3", "4"]),
    ("winshut", true, &["0", "1"]),
    ("frags", true, &["0", "2", "4"]),
    ("ploss", true, &["0", "4.5", "50", "16.666", "100"]),
    ("ttl", true, &["0", "1", "64", "100", "128", "255"]),
    ("tos", true, &["0", "16"]),
    ("jit", true, &["0", "1.234567", "2", "5", "6"]),
    ("intpkt", true, &["0", "10", "10.5"]),
    ("win", true, &["0", "1", "65535"]),
    ("dur", false, &["0", "0.5", "60", "60.5", "0.0123", "61"]),
    ("tcprtt", false, &["0", "0.004", "0.012", "0.0123", "0.01"]),
    ("synack", false, &["0.004", "0.0043", "0"]),
    ("ackdat", false, &["0.008", "0"]),
    ("vlan", false, &["0", "10", "20", "30", "15"]),
    ("mpls", false, &["16", "17", "0"]),
    ("icmptype", false, &["0", "3", "8", "128", "129"]),
    ("icmpcode", false, &["0", "1", "3"]),
    ("spkts", false, &["0", "5"]),
    ("dttl", false, &["0", "64"]),
    ("sport", false, &["0", "53", "443", "2048", "32768"]),
    (
        "state",
        false,
        &["RST", "con", "INT", "REQ", "ECO", "URN", "RSP"],
    ),
    ("cause", false, &["close", "idle", "STATUS"]),
];

const OPS: &[(&str, &str)] = &[
    ("eq", "eq"),
    ("=", "eq"),
    ("==", "eq"),
    ("ne", "ne"),
    ("!=", "ne"),
    ("gt", "gt"),
    (">", "gt"),
    ("ge", "ge"),
    ("gte", "ge"),
    (">=", "ge"),
    ("lt", "lt"),
    ("<", "lt"),
    ("le", "le"),
    ("lte", "le"),
    ("<=", "le"),
];

fn leaf(rng: &mut Rng) -> L {
    match rng.below(17) {
        0 => L::Proto(rng.pick(&[
            "tcp", "udp", "icmp", "icmp6", "ip", "ip6", "arp", "sctp", "gre",
        ])),
        1 => L::HostV4(dir(rng), rng.pick(&V4)),
        2 => L::HostV6(dir(rng), rng.pick(&V6)),
        3 => L::Mac(dir(rng), rng.pick(&MACS), rng.one_in(2)),
        4 => L::Net4(
            dir(rng),
            rng.pick(&V4),
            rng.pick(&[0, 8, 12, 16, 24, 31, 32]),
            rng.one_in(2),
        ),
        5 => L::Port(dir(rng), rng.pick(&PORTS)),
        6 => {
            let a = rng.pick(&[0, 22, 80, 443, 1024, 40000]);
            let b = rng.pick(&[80, 443, 1023, 65535]);
            L::Range(dir(rng), a.min(b), a.max(b), rng.one_in(2))
        }
        7 => {
            let (n, t) = rng.pick(&[
                ("ip", 0x0800),
                ("ip6", 0x86dd),
                ("arp", 0x0806),
                ("0x88cc", 0x88cc),
            ]);
            L::EtherProto(n, t)
        }
        8 => L::Vlan(rng.pick(&[None, Some(10), Some(20), Some(30), Some(4095)])),
        9 => L::Mpls(rng.pick(&[None, Some(16), Some(17)])),
        10 => {
            let (n, b) = rng.pick(&[
                ("syn", 2),
                ("fin", 1),
                ("rst", 4),
                ("reset", 4),
                ("ack", 16),
                ("push", 8),
                ("urg", 32),
                ("ece", 64),
                ("cwr", 128),
            ]);
            L::TcpFlag(dir(rng), n, b)
        }
        11 if rng.one_in(2) => L::SynAck,
        11 => L::Ecn,
        12 => L::Behaviour(
            dir(rng),
            rng.pick(&["retrans", "outoforder", "winshut", "loss", "frag"]),
        ),
        13 => {
            let (n, a, b) = rng.pick(&[
                ("echo", Some(8), Some(128)),
                ("echoreply", Some(0), Some(129)),
                ("unreach", Some(3), Some(1)),
                ("srcquench", Some(4), None),
                ("redirect", Some(5), Some(137)),
                ("timxceed", Some(11), Some(3)),
                ("paramprob", Some(12), Some(4)),
            ]);
            L::Icmp(n, a, b)
        }
        14 => L::ProtoPort(rng.pick(&["tcp", "udp"]), dir(rng), rng.pick(&PORTS)),
        _ => {
            let (name, directional, lits) = rng.pick(FIELDS);
            let d = if directional { dir(rng) } else { D::Any };
            let op = if name == "state" || name == "cause" {
                rng.pick(&["eq", "ne", "=", "!="])
            } else {
                rng.pick(OPS).0
            };
            // argus's bare number means 'eq' (not for vlan/mpls, where it is the tag form).
            let op = if !matches!(name, "state" | "cause" | "vlan" | "mpls") && rng.one_in(10) {
                ""
            } else {
                op
            };
            L::Cmp(d, name, op, rng.pick(lits).to_string())
        }
    }
}

fn gen(rng: &mut Rng, depth: usize) -> G {
    if depth == 0 || rng.one_in(3) {
        return G::Leaf(leaf(rng));
    }
    match rng.below(3) {
        0 => G::Not(Box::new(gen(rng, depth - 1))),
        k => {
            let v = (0..2 + rng.below(3)).map(|_| gen(rng, depth - 1)).collect();
            if k == 1 {
                G::And(v)
            } else {
                G::Or(v)
            }
        }
    }
}

fn dq(d: D) -> &'static str {
    match d {
        D::Src => "src ",
        D::Dst => "dst ",
        D::Any => "",
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn render_leaf(l: &L, rng: &mut Rng, out: &mut String) {
    let ip4 = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    let s = match l {
        L::Proto(p) => p.to_string(),
        L::HostV4(d, a) => format!("{}host {}", dq(*d), ip4(*a)),
        L::HostV6(d, a) => format!("{}host {a}", dq(*d)),
        L::Mac(d, m, true) => format!("{}host {}", dq(*d), mac(*m)),
        L::Mac(D::Any, m, false) => format!("ether host {}", mac(*m)),
        L::Mac(d, m, false) => format!("ether {}{}", dq(*d), mac(*m)),
        L::Net4(d, a, len, false) => format!("{}net {}/{len}", dq(*d), ip4(*a)),
        L::Net4(d, a, len, true) => {
            let m = (u32::MAX.checked_shl(32 - len).unwrap_or(0)).to_be_bytes();
            format!("{}net {} mask {}", dq(*d), ip4(*a), ip4(m))
        }
        L::Port(d, p) => format!("{}port {p}", dq(*d)),
        L::Range(d, a, b, true) => format!("{}portrange {a}-{b}", dq(*d)),
        L::Range(d, a, b, false) => format!("{}port {a}-{b}", dq(*d)),
        L::EtherProto(n, _) => format!("ether proto {n}"),
        L::Vlan(v) => v.map_or("vlan".into(), |v| format!("vlan {v}")),
        L::Mpls(v) => v.map_or("mpls".into(), |v| format!("mpls {v}")),
        L::TcpFlag(d, n, _) => format!("{}{n}", dq(*d)),
        L::SynAck => "synack".into(),
        L::Ecn => "ecn".into(),
        L::Behaviour(d, n) => format!("{}{n}", dq(*d)),
        L::Icmp(n, ..) => n.to_string(),
        L::Cmp(d, n, "", lit) => format!("{}{n} {lit}", dq(*d)),
        L::Cmp(d, n, op, lit) => {
            // Symbols may touch their operands; words may not.
            let sp = if op.chars().all(|c| c.is_ascii_alphabetic()) || rng.one_in(2) {
                " "
            } else {
                ""
            };
            format!("{}{n}{sp}{op}{sp}{lit}", dq(*d))
        }
        L::ProtoPort(p, d, port) => format!("{p} {}port {port}", dq(*d)),
    };
    // Keywords are case-insensitive.
    if rng.one_in(10) {
        out.push_str(&s.to_ascii_uppercase());
    } else {
        out.push_str(&s);
    }
}

fn render(g: &G, rng: &mut Rng, out: &mut String) {
    let child = |c: &G, rng: &mut Rng, out: &mut String| {
        let wrap = !matches!(c, G::Leaf(_)) || rng.one_in(8);
        if wrap {
            out.push('(');
        }
        render(c, rng, out);
        if wrap {
            out.push(')');
        }
    };
    match g {
        G::Leaf(l) => render_leaf(l, rng, out),
        G::Not(c) => {
            out.push_str(rng.pick(&["not ", "!", "NOT "]));
            child(c, rng, out);
        }
        G::And(v) | G::Or(v) => {
            let words: &[&str] = if matches!(g, G::And(_)) {
                &[" and ", " && ", "&&", " AND "]
            } else {
                &[" or ", " || ", "||", " Or "]
            };
            for (i, c) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(rng.pick(words));
                }
                child(c, rng, out);
            }
        }
    }
}

fn has_ports(r: &FlowRecord) -> bool {
    r.addr_kind != AddrKind::L2 && [6, 17, 33, 132, 136].contains(&r.proto)
}

fn tcp(r: &FlowRecord) -> bool {
    r.addr_kind != AddrKind::L2 && r.proto == 6
}

fn icmp(r: &FlowRecord) -> bool {
    (r.addr_kind == AddrKind::Ipv4 && r.proto == 1)
        || (r.addr_kind == AddrKind::Ipv6 && r.proto == 58)
}

/// True if `f` holds for the side(s) `d` names: src, dst or either.
fn sides(d: D, f: impl Fn(bool) -> bool) -> bool {
    match d {
        D::Src => f(true),
        D::Dst => f(false),
        D::Any => f(true) || f(false),
    }
}

fn ref_mac(r: &FlowRecord, d: D, m: [u8; 6]) -> bool {
    sides(d, |s| {
        let a = if r.addr_kind == AddrKind::L2 {
            (if s { r.saddr.0 } else { r.daddr.0 })[..6].to_vec()
        } else {
            (if s { r.smac } else { r.dmac }).to_vec()
        };
        a == m
    })
}

/// The values a field predicate looks at (any one satisfying the comparison is enough).
fn ref_values(r: &FlowRecord, d: D, name: &str) -> Vec<f64> {
    let st = |s: bool| if s { &r.src } else { &r.dst };
    let per = |f: &dyn Fn(&DirStats) -> f64| -> Vec<f64> {
        match d {
            D::Src => vec![f(&r.src)],
            D::Dst => vec![f(&r.dst)],
            D::Any => vec![f(&r.src) + f(&r.dst)],
        }
    };
    let gauge = |f: &dyn Fn(&DirStats) -> f64, only_tcp: bool| -> Vec<f64> {
        [true, false]
            .into_iter()
            .filter(|&s| match d {
                D::Src => s,
                D::Dst => !s,
                D::Any => true,
            })
            .filter(|&s| st(s).pkts > 0 && (!only_tcp || tcp(r)))
            .map(|s| f(st(s)))
            .collect()
    };
    let secs = |ns: u64| {
        if ns == 0 {
            vec![]
        } else {
            vec![ns as f64 / 1e9]
        }
    };
    match name {
        "pkts" => per(&|x| x.pkts as f64),
        "bytes" => per(&|x| x.bytes as f64),
        "appbytes" => per(&|x| x.app_bytes as f64),
        "ipbytes" => per(&|x| x.ip_bytes as f64),
        "retrans" => per(&|x| x.retrans as f64),
        "ooo" | "outoforder" => per(&|x| x.out_of_order as f64),
        "loss" => per(&|x| x.loss_pkts as f64),
        "winshut" => per(&|x| x.zero_win as f64),
        "frags" => per(&|x| x.frags as f64),
        "ploss" => {
            let loss = per(&|x| x.loss_pkts as f64)[0];
            let pkts = per(&|x| x.pkts as f64)[0];
            if pkts + loss == 0.0 {
                vec![]
            } else {
                vec![loss * 100.0 / (pkts + loss)]
            }
        }
        "ttl" => gauge(&|x| x.ttl_max as f64, false),
        "tos" => gauge(&|x| x.tos as f64, false),
        "jit" => gauge(&|x| x.ipt_std_ns / 1e6, false),
        "intpkt" => gauge(&|x| x.ipt_mean_ns / 1e6, false),
        "win" => gauge(&|x| x.window as f64, true),
        "dur" => vec![(r.ltime_ns - r.stime_ns) as f64 / 1e9],
        "tcprtt" => secs(r.synack_ns + r.ackdat_ns),
        "synack" => secs(r.synack_ns),
        "ackdat" => secs(r.ackdat_ns),
        "vlan" => r
            .vlan
            .iter()
            .filter(|&&v| v != 0)
            .map(|&v| v as f64)
            .collect(),
        "mpls" => r
            .mpls
            .iter()
            .filter(|&&v| v != 0)
            .map(|&v| v as f64)
            .collect(),
        "icmptype" if icmp(r) => vec![(r.sport >> 8) as f64],
        "icmpcode" if icmp(r) => vec![(r.sport & 0xff) as f64],
        "icmptype" | "icmpcode" => vec![],
        "spkts" => vec![r.src.pkts as f64],
        "dttl" if r.dst.pkts > 0 => vec![r.dst.ttl_max as f64],
        "dttl" => vec![],
        "sport" => {
            let blank = r.addr_kind == AddrKind::L2
                || (!icmp(r) && !has_ports(r) && r.sport == 0 && r.dport == 0);
            if blank {
                vec![]
            } else {
                vec![r.sport as f64]
            }
        }
        _ => unreachable!("{name}"),
    }
}

fn ref_leaf(l: &L, r: &FlowRecord) -> bool {
    let ip = r.addr_kind != AddrKind::L2;
    match *l {
        L::Proto(p) => match p {
            "tcp" => ip && r.proto == 6,
            "udp" => ip && r.proto == 17,
            "sctp" => ip && r.proto == 132,
            "gre" => ip && r.proto == 47,
            "icmp" => r.addr_kind == AddrKind::Ipv4 && r.proto == 1,
            "icmp6" => r.addr_kind == AddrKind::Ipv6 && r.proto == 58,
            "ip" => r.addr_kind == AddrKind::Ipv4,
            "ip6" => r.addr_kind == AddrKind::Ipv6,
            "arp" => !ip && r.ethertype == 0x0806,
            _ => unreachable!(),
        },
        L::HostV4(d, a) => {
            r.addr_kind == AddrKind::Ipv4
                && sides(d, |s| if s { r.saddr.0 } else { r.daddr.0 }[..4] == a)
        }
        L::HostV6(d, a) => {
            r.addr_kind == AddrKind::Ipv6
                && sides(d, |s| if s { r.saddr.0 } else { r.daddr.0 } == v6(a))
        }
        L::Mac(d, m, _) => ref_mac(r, d, m),
        L::Net4(d, a, len, _) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            r.addr_kind == AddrKind::Ipv4
                && sides(d, |s| {
                    let x = if s { r.saddr.0 } else { r.daddr.0 };
                    u32::from_be_bytes([x[0], x[1], x[2], x[3]]) & mask
                        == u32::from_be_bytes(a) & mask
                })
        }
        L::Port(d, p) => has_ports(r) && sides(d, |s| if s { r.sport } else { r.dport } == p),
        L::ProtoPort(p, d, port) => {
            ip && r.proto == if p == "tcp" { 6 } else { 17 }
                && sides(d, |s| if s { r.sport } else { r.dport } == port)
        }
        L::Range(d, a, b, _) => {
            has_ports(r)
                && sides(d, |s| {
                    let p = if s { r.sport } else { r.dport };
                    a <= p && p <= b
                })
        }
        L::EtherProto(_, t) => r.ethertype == t,
        L::Vlan(None) => {
            r.vlan[0] != 0 || r.vlan[1] != 0 || r.encap.kinds & (encap::VLAN | encap::QINQ) != 0
        }
        L::Vlan(Some(v)) => r.vlan.contains(&v),
        L::Mpls(None) => r.mpls[0] != 0 || r.mpls[1] != 0 || r.encap.kinds & encap::MPLS != 0,
        L::Mpls(Some(v)) => r.mpls.contains(&v),
        L::TcpFlag(d, _, bit) => {
            tcp(r)
                && sides(
                    d,
                    |s| if s { r.src.tcp_flags } else { r.dst.tcp_flags } & bit != 0,
                )
        }
        L::SynAck => tcp(r) && r.dst.tcp_flags & 0x12 == 0x12,
        L::Ecn => r.flags & flags::ECN_CE != 0,
        L::Behaviour(d, n) => {
            let st = |s: bool| if s { &r.src } else { &r.dst };
            match n {
                "retrans" => sides(d, |s| st(s).retrans > 0),
                "outoforder" => sides(d, |s| st(s).out_of_order > 0),
                "winshut" => sides(d, |s| st(s).zero_win > 0),
                "loss" => sides(d, |s| st(s).loss_pkts > 0),
                "frag" if d == D::Any => {
                    r.flags & flags::FRAGMENTS != 0 || r.src.frags > 0 || r.dst.frags > 0
                }
                "frag" => sides(d, |s| st(s).frags > 0),
                _ => unreachable!(),
            }
        }
        L::Icmp(_, a, b) => {
            let ty = Some((r.sport >> 8) as u8);
            icmp(r)
                && if r.addr_kind == AddrKind::Ipv4 {
                    a == ty
                } else {
                    b == ty
                }
        }
        L::Cmp(_, name @ ("state" | "cause"), op, ref lit) => {
            let v = if name == "state" {
                r.state_name()
            } else {
                r.cause.name()
            };
            let eq = v.eq_ignore_ascii_case(lit);
            if op.contains('!') || op == "ne" {
                !eq
            } else {
                eq
            }
        }
        L::Cmp(d, name, op, ref lit) => {
            let x: f64 = match lit.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).unwrap() as f64,
                None => lit.parse().unwrap(),
            };
            let op = OPS.iter().find(|(s, _)| *s == op).map_or("eq", |(_, w)| *w);
            ref_values(r, d, name).into_iter().any(|v| match op {
                "eq" => v == x,
                "ne" => v != x,
                "gt" => v > x,
                "ge" => v >= x,
                "lt" => v < x,
                "le" => v <= x,
                _ => unreachable!(),
            })
        }
    }
}

fn ref_eval(g: &G, r: &FlowRecord) -> bool {
    match g {
        G::And(v) => v.iter().all(|c| ref_eval(c, r)),
        G::Or(v) => v.iter().any(|c| ref_eval(c, r)),
        G::Not(c) => !ref_eval(c, r),
        G::Leaf(l) => ref_leaf(l, r),
    }
}

#[test]
fn compiled_filters_agree_with_the_reference_evaluator() {
    let mut rng = Rng(7);
    let records: Vec<FlowRecord> = (0..300).map(|_| record(&mut rng)).collect();
    let (mut trues, mut total) = (0usize, 0usize);
    let mut leaf_hits = [0usize; 2];
    for i in 0..3000 {
        let g = gen(&mut rng, 4);
        let mut text = String::new();
        render(&g, &mut rng, &mut text);
        let f = Filter::parse(&text).unwrap_or_else(|e| panic!("#{i} did not parse:\n{e}"));
        for (j, r) in records.iter().enumerate() {
            let want = ref_eval(&g, r);
            assert_eq!(
                f.matches(r),
                want,
                "#{i} '{text}' (parsed as {}) on record {j}: {r:#?}",
                f.expr
            );
            trues += want as usize;
            total += 1;
            if let G::Leaf(_) = g {
                leaf_hits[want as usize] += 1;
            }
        }
    }
    // The comparison means something only if both outcomes are common.
    let share = trues as f64 / total as f64;
    assert!((0.15..0.85).contains(&share), "{share}");
    assert!(
        leaf_hits[0] > 10_000 && leaf_hits[1] > 10_000,
        "{leaf_hits:?}"
    );
}

/// Every leaf kind must be exercised by the agreement test above.
#[test]
fn the_generator_covers_every_leaf_kind() {
    let mut rng = Rng(11);
    let mut seen = [false; 17];
    let mut fields = Vec::new();
    for _ in 0..20_000 {
        let l = leaf(&mut rng);
        let k = match &l {
            L::Proto(_) => 0,
            L::HostV4(..) => 1,
            L::HostV6(..) => 2,
            L::Mac(..) => 3,
            L::Net4(..) => 4,
            L::Port(..) => 5,
            L::Range(..) => 6,
            L::EtherProto(..) => 7,
            L::Vlan(_) => 8,
            L::Mpls(_) => 9,
            L::TcpFlag(..) => 10,
            L::SynAck | L::Ecn => 11,
            L::Behaviour(..) => 12,
            L::Icmp(..) => 13,
            L::ProtoPort(..) => 14,
            L::Cmp(_, n, ..) => {
                fields.push(*n);
                15 + fields.len() % 2
            }
        };
        seen[k] = true;
    }
    assert!(seen.iter().all(|&s| s));
    for (n, ..) in FIELDS {
        assert!(fields.contains(n), "{n}");
    }
}

// ---- the parser never panics ----

const VOCAB: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "sctp",
    "proto",
    "src",
    "dst",
    "host",
    "net",
    "port",
    "portrange",
    "mask",
    "ether",
    "vlan",
    "mpls",
    "syn",
    "fin",
    "rst",
    "ack",
    "push",
    "urg",
    "synack",
    "ecn",
    "retrans",
    "outoforder",
    "winshut",
    "loss",
    "frag",
    "echo",
    "unreach",
    "redirect",
    "timxceed",
    "pkts",
    "bytes",
    "appbytes",
    "dur",
    "ploss",
    "jit",
    "ttl",
    "tcprtt",
    "state",
    "cause",
    "vlan",
    "sbytes",
    "icmptype",
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "gt",
    "ge",
    "gte",
    "lt",
    "le",
    "(",
    ")",
    "!",
    "&&",
    "||",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&",
    "|",
    "10",
    "-1",
    "0",
    "0x1f",
    "0x",
    "1.5",
    ".",
    "-",
    "99999999999999999999999999999",
    "1e5",
    "10.0.0.1",
    "10.0.0.0/8",
    "10/33",
    "10.1",
    "::1",
    "2001:db8::/32",
    "2001:db8::/999",
    "0:1:2:3:4:5",
    "0-1-2-3-4-5",
    "1-2",
    "65535-0",
    "1-2-3",
    "255.255.0.0",
    "255.0.255.0",
    "ftp-data",
    "https",
    "RST",
    "CON",
    "close",
    "é",
    "日本",
    "\u{0}",
    "🙂",
    "\t",
    "\n",
    "\u{202e}",
    "ﬀ",
    "İ",
];

fn check_no_panic(input: &str, records: &[FlowRecord]) {
    let run = || match Filter::parse(input) {
        Ok(f) => {
            let _ = f.expr.to_string();
            for r in records {
                f.matches(r);
            }
        }
        Err(e) => {
            assert!(e.error.pos <= input.len(), "{input:?}: {:?}", e.error);
            assert!(
                input.is_char_boundary(e.error.pos),
                "{input:?}: {:?}",
                e.error
            );
            assert!(!e.error.msg.is_empty());
            let shown = e.to_string();
            assert_eq!(shown.lines().count(), 3, "{input:?}: {shown}");
        }
    };
    if catch_unwind(AssertUnwindSafe(run)).is_err() {
        panic!("the filter parser panicked on {input:?}");
    }
}

#[test]
fn parser_never_panics_on_token_soup_or_bytes() {
    let mut rng = Rng(3);
    let records: Vec<FlowRecord> = (0..8).map(|_| record(&mut rng)).collect();
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..rng.below(12) {
            s.push_str(rng.pick(VOCAB));
            if !rng.one_in(4) {
                s.push(' ');
            }
        }
        ok += Filter::parse(&s).is_ok() as usize;
        check_no_panic(&s, &records);
    }
    // Soup made of real words parses now and then, so evaluation is exercised too.
    assert!(ok > 200, "{ok}");
    const BIASED: &[u8] = b"()!&|<>= -.:/0123456789abcdefx\t";
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..rng.below(48))
            .map(|_| {
                if rng.one_in(3) {
                    rng.next() as u8
                } else {
                    rng.pick(BIASED)
                }
            })
            .collect();
        check_no_panic(&String::from_utf8_lossy(&bytes), &records);
        let chars: String = (0..rng.below(16))
            .filter_map(|_| char::from_u32(rng.below(0x11_0000) as u32))
            .collect();
        check_no_panic(&chars, &records);
    }
}

#[test]
fn parser_survives_extremes() {
    let mut rng = Rng(5);
    let records: Vec<FlowRecord> = (0..4).map(|_| record(&mut rng)).collect();
    let mut cases = vec![
        "(".repeat(100_000),
        ")".repeat(100_000),
        "!".repeat(100_000),
        "not ".repeat(MAX_DEPTH) + "tcp",
        "not ".repeat(MAX_DEPTH + 1) + "tcp",
        "(".repeat(MAX_DEPTH) + "tcp" + &")".repeat(MAX_DEPTH),
        "(!".repeat(MAX_DEPTH / 2) + "tcp" + &")".repeat(MAX_DEPTH / 2),
        "(!".repeat(MAX_DEPTH) + "tcp" + &")".repeat(MAX_DEPTH),
        format!("tcp{}", " or tcp".repeat(50_000)),
        format!("port 1{}", " or 2".repeat(50_000)),
        format!("pkts gt {}", "9".repeat(10_000)),
        format!("dur gt 0.{}1", "0".repeat(10_000)),
        format!("jit gt {}", "9".repeat(400)),
        format!("jit gt 0x{}", "f".repeat(100)),
        format!("host {}", "a".repeat(100_000)),
        format!("{} gt 1", "p".repeat(100_000)),
        format!("state eq {}", "R".repeat(100_000)),
        "\u{feff}tcp".into(),
        "tcp\u{0}".into(),
        "".into(),
    ];
    let mut s = String::new();
    for i in 0..MAX_DEPTH * 3 {
        let _ = write!(s, "{}", if i % 2 == 0 { "(" } else { "not " });
    }
    cases.push(s + "tcp");
    for c in &cases {
        check_no_panic(c, &records);
    }
    let long_or = Filter::parse(&cases[8]).unwrap();
    assert!(records
        .iter()
        .any(|r| long_or.matches(r) == (r.proto == 6 && r.addr_kind != AddrKind::L2)));
}

/// `cargo test --release -p tapflow-client -- --ignored filter_evaluation_speed --nocapture`
#[test]
#[ignore]
fn filter_evaluation_speed() {
    let mut rng = Rng(9);
    let records: Vec<FlowRecord> = (0..4096).map(|_| record(&mut rng)).collect();
    for text in [
        "tcp and not port 443",
        "src net 10.0.0.0/8 and pkts gt 10",
        "tcp and (syn and not synack) or retrans or ploss gt 1",
        "src jit gt 5 or dur ge 60 or state eq RST or tcprtt gt 0.01",
        "not (vlan 10 or portrange 1-1023 or ether src 2:0:0:0:0:1) and bytes lt 1000",
    ] {
        let f = Filter::parse(text).unwrap();
        let n = 20_000_000usize;
        let t = std::time::Instant::now();
        let mut hits = 0usize;
        for i in 0..n {
            hits += f.matches(std::hint::black_box(&records[i & 4095])) as usize;
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{ns:6.2} ns/record  {:>5.1} M/s  {hits:>9} hits  {text}",
            1e3 / ns
        );
    }
}
