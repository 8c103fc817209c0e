//! Filter expressions, tcpdump primitives plus argus field predicates and flag words:
//! `tcp and not port 22`, `src net 10.0.0.0/8 and pkts gt 10`, `syn and not synack`.
//!
//! An expression is parsed once into a small tree ([`Expr`]) evaluated on each record without
//! allocating. The full reference, with examples, is `docs/filter.md`.
//!
//! ```text
//! expr      := and (('or' | '||') and)*
//! and       := unary (('and' | '&&') unary)*
//! unary     := ('not' | '!') unary | '(' expr ')' | primitive        (at most 100 levels)
//! primitive := PROTO [qualified]                  tcp udp sctp esp gre icmp icmp6 ip ip6 arp
//!            | 'ip' | 'ip6' 'proto' (NUM | NAME) | 'proto' (NUM | NAME)
//!            | qualified
//!            | 'ether' ('host' | ('src' | 'dst') ['host']) MAC | 'ether' 'proto' TYPE
//!            | 'vlan' [ID] | 'mpls' [LABEL]       alone: tagged; with an id: either tag/label
//!            | [DIR] FLAG | ICMPTYPE | 'synack' | 'ecn'
//!            | [DIR] FIELD (OP VALUE | NUMBER)    a bare number means 'eq'
//!            | ID                                 the previous host/net/port/… qualifiers
//!                                                 again (`port 80 or 443`), else a host
//! qualified := [DIR] 'host' ADDR | [DIR] 'net' (CIDR | A.B.C.D 'mask' M.M.M.M | 10 | 172.16)
//!            | [DIR] 'port' (PORT | LO-HI) | [DIR] 'portrange' LO-HI | DIR ADDR
//! DIR       := 'src' | 'dst'                      src is the initiator, dst the responder
//! OP        := eq ne gt ge lt le (gte lte) | = == != > >= < <=
//! FLAG      := syn fin rst reset ack push psh urg ece cwr    TCP flags sent
//!            | retrans outoforder winshut loss frag           seen at least once
//! ICMPTYPE  := echo echoreply unreach srcquench redirect timxceed timexed paramprob parmprob
//! ```
//!
//! Field predicates compare what `tapflow read -s NAME` prints, in the printed unit. A field
//! with a `src`/`dst` form means, without one, the sum of both directions for a counter and
//! "either direction" for a gauge (argus: `pkts` is total packets, `src pkts` the
//! initiator's). A value that does not exist (the TTL of a side that sent nothing, the
//! handshake time of a flow without a handshake, the VLAN of an untagged flow) fails every
//! comparison, `ne` included.
//!
//! | field | `src`/`dst` | without them | unit |
//! |---|---|---|---|
//! | `pkts` `bytes` `appbytes` `ipbytes` | yes | sum | count |
//! | `retrans` `ooo`/`outoforder` `loss` `winshut` `frags`/`frag` | yes | sum | count |
//! | `ploss` | yes | both directions' loss ÷ (pkts + loss) | percent |
//! | `ttl` `tos` | yes | either side (absent if it sent nothing) | count |
//! | `jit`/`jitter` `intpkt` | yes | either side (absent if it sent nothing) | ms |
//! | `win`/`window` | yes | either side (TCP only) | bytes |
//! | `dur` | no | | s |
//! | `tcprtt` `synack` `ackdat` | no | absent when not measured | s |
//! | `vlan` `mpls` | no | either tag / label (absent: 0) | id |
//! | `icmptype` `icmpcode` | no | initiator's message (ICMP only) | count |
//! | `state` `cause` `observed` | no | `eq`/`ne` a printed name | name |
//! | any other numeric `-s` field (`spkts` `dttl` `sport` `tunid` `ivlan` …) | no | as printed | as printed |

mod ast;
mod field;
mod lex;
mod parse;
#[cfg(test)]
mod randomized;

use std::fmt;

pub use ast::{has_ports, Dir, Expr, HostAddr, Net, Prim, ICMP_TYPES, TCP_FLAGS};
pub use field::{Acc, Cmp, Guard, Op, Operand, Real, Side, Test, Unit};
pub(crate) use parse::short_v4;
pub use parse::MAX_DEPTH;
use tapflow_record::FlowRecord;

/// A syntax error at byte offset `pos` of the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub msg: String,
    pub pos: usize,
}

impl FilterError {
    pub fn new(msg: impl Into<String>, pos: usize) -> FilterError {
        FilterError {
            msg: msg.into(),
            pos,
        }
    }

    /// Three lines: the message, the expression and a caret under the offending position.
    pub fn render(&self, expr: &str) -> String {
        // Columns count characters, not bytes, so the caret lines up with non-ASCII input;
        // control characters (a tab, a newline from a quoted argument) print as spaces.
        let col = expr
            .get(..self.pos)
            .map_or(expr.chars().count(), |s| s.chars().count());
        let shown: String = expr
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{}\n  {shown}\n  {:col$}^", self.msg, "")
    }
}

/// A compiled filter.
#[derive(Clone, Debug)]
pub struct Filter {
    pub expr: Expr,
}

/// A filter that failed to parse, displayed with its caret line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFilter {
    pub source: String,
    pub error: FilterError,
}

impl fmt::Display for BadFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error.render(&self.source))
    }
}

impl std::error::Error for BadFilter {}

impl Filter {
    pub fn parse(src: &str) -> Result<Filter, BadFilter> {
        parse::parse(src)
            .map(|expr| Filter { expr })
            .map_err(|error| BadFilter {
                source: src.to_string(),
                error,
            })
    }

    #[inline]
    pub fn matches(&self, r: &FlowRecord) -> bool {
        self.expr.matches(r)
    }

    /// Whether the filter looks at the per-direction statistics (`src`/`dst`: counters, TCP
    /// flags, fragments …). When it does not, records can be filtered on a cheaper partial
    /// decode (`RecordReader::next_matching`). Conservative: anything not known to be
    /// top-level says yes.
    pub fn needs_dirs(&self) -> bool {
        fn walk(e: &Expr) -> bool {
            match e {
                Expr::All(v) | Expr::Any(v) => v.iter().any(walk),
                Expr::Not(e) => walk(e),
                Expr::Prim(p) => !matches!(
                    p,
                    Prim::Proto { .. }
                        | Prim::Family(_)
                        | Prim::Arp
                        | Prim::Host(..)
                        | Prim::Net(..)
                        | Prim::Port(..)
                        | Prim::PortRange(..)
                        | Prim::EtherProto(_)
                        | Prim::Vlan
                        | Prim::Mpls
                        | Prim::RecordFlag(_)
                        | Prim::IcmpType { .. }
                ),
            }
        }
        walk(&self.expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{encap, Addr, AddrKind, Cause, DirStats, FlowState};

    #[test]
    fn caret_rendering() {
        let e = Filter::parse("tcp and port x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a port number after 'port'\n  tcp and port x\n               ^"
        );
        let e = Filter::parse("tcp and").unwrap_err();
        assert!(e.to_string().ends_with("\n  tcp and\n         ^"));
        // Character columns, not bytes.
        let e = Filter::parse("hôst 1").unwrap_err();
        assert!(e.to_string().ends_with("\n  hôst 1\n  ^"));
        let e = Filter::parse("port é").unwrap_err();
        assert!(e.to_string().ends_with("\n  port é\n       ^"));
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
            src: DirStats {
                pkts: 1,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn v6(s: &str, sp: u16, d: &str, dp: u16, proto: u8) -> FlowRecord {
        let ip = |x: &str| Addr(x.parse::<std::net::Ipv6Addr>().unwrap().octets());
        FlowRecord {
            addr_kind: AddrKind::Ipv6,
            proto,
            ethertype: 0x86dd,
            saddr: ip(s),
            daddr: ip(d),
            sport: sp,
            dport: dp,
            ..Default::default()
        }
    }

    fn l2(ethertype: u16) -> FlowRecord {
        FlowRecord {
            addr_kind: AddrKind::L2,
            ethertype,
            saddr: Addr::from_mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
            daddr: Addr::from_mac([0xff; 6]),
            ..Default::default()
        }
    }

    fn m(expr: &str, r: &FlowRecord) -> bool {
        Filter::parse(expr).unwrap().matches(r)
    }

    #[test]
    fn ipv4_records() {
        let r = v4([10, 0, 0, 1], 40000, [192, 168, 1, 9], 443, 6);
        for yes in [
            "tcp",
            "ip",
            "proto 6",
            "proto tcp",
            "host 10.0.0.1",
            "host 192.168.1.9",
            "src host 10.0.0.1",
            "dst host 192.168.1.9",
            "net 10.0.0.0/8",
            "src net 10.0.0.0/24",
            "dst net 192.168.0.0/16",
            "net 0.0.0.0/0",
            "port 443",
            "port https",
            "dst port 443",
            "src port 40000",
            "tcp and host 10.0.0.1 and port 443",
            "udp or tcp",
            "not udp",
            "host 02:00:00:00:00:01",
            "src host 02:00:00:00:00:01",
            "dst host 02:00:00:00:00:02",
        ] {
            assert!(m(yes, &r), "{yes} should match");
        }
        for no in [
            "udp",
            "ip6",
            "arp",
            "icmp",
            "host 10.0.0.2",
            "dst host 10.0.0.1",
            "src host 192.168.1.9",
            "src net 192.168.0.0/16",
            "net 10.0.1.0/24",
            "net ::/0",
            "src port 443",
            "port 80",
            "not tcp",
            "tcp and not port 443",
            "dst host 02:00:00:00:00:01",
            "host ::1",
        ] {
            assert!(!m(no, &r), "{no} should not match");
        }
    }

    #[test]
    fn ipv6_records() {
        let r = v6("2001:db8::1", 5353, "ff02::fb", 5353, 17);
        assert!(m("udp and ip6", &r));
        assert!(m("src host 2001:db8::1", &r));
        assert!(m("dst host ff02::fb", &r));
        assert!(m("net 2001:db8::/32", &r));
        assert!(m("dst net ff00::/8", &r));
        assert!(m("port 5353", &r));
        assert!(!m("net 2001:db9::/32", &r));
        assert!(!m("dst net 2001:db8::/32", &r));
        assert!(!m("ip", &r));
        assert!(!m("net 0.0.0.0/0", &r));
        assert!(!m("host 0.0.0.0", &r));
        // The all-zero v6 net does match: it is still IPv6.
        assert!(m("net ::/0", &r));
    }

    #[test]
    fn icmp_records_have_no_ports() {
        let mut r = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 2], 77, 1);
        assert!(m("icmp", &r));
        assert!(m("proto icmp", &r));
        assert!(!m("icmp6", &r));
        assert!(!m("port 2048", &r));
        assert!(!m("port 77", &r));
        r = v6("::1", 0x8000, "::2", 1, 58);
        assert!(m("icmp6", &r));
        assert!(m("proto 58", &r));
        assert!(!m("icmp", &r));
    }

    #[test]
    fn l2_records() {
        let arp = l2(0x0806);
        assert!(m("arp", &arp));
        assert!(m("host 00:11:22:33:44:55", &arp));
        assert!(m("src host 00:11:22:33:44:55", &arp));
        assert!(m("dst host ff:ff:ff:ff:ff:ff", &arp));
        assert!(!m("dst host 00:11:22:33:44:55", &arp));
        for no in [
            "ip",
            "ip6",
            "tcp",
            "proto 0",
            "port 0",
            "net 0.0.0.0/0",
            "host 0.0.0.0",
        ] {
            assert!(!m(no, &arp), "{no}");
        }
        assert!(!m("arp", &l2(0x88cc)));
    }

    #[test]
    fn boolean_structure() {
        let r = v4([10, 0, 0, 1], 1, [10, 0, 0, 2], 22, 6);
        assert!(m("udp or tcp and port 22", &r));
        assert!(!m("(udp or tcp) and port 23", &r));
        assert!(m("not (udp or icmp)", &r));
        assert!(m("!udp && (port 22 || port 23)", &r));
        assert!(!m("not not udp", &r));
    }

    /// A closed TCP flow with every quantity the filter reads set to a known value.
    fn tcp_fixture() -> FlowRecord {
        let mut r = v4([10, 0, 0, 1], 40000, [192, 168, 1, 9], 443, 6);
        r.stime_ns = 1_000_000_000;
        r.ltime_ns = 61_500_000_000; // dur 60.5 s
        r.synack_ns = 4_000_000;
        r.ackdat_ns = 8_000_000; // tcprtt 0.012 s
        r.state = FlowState::Rst;
        r.cause = Cause::Close;
        r.vlan = [10, 20];
        r.encap.kinds = encap::VLAN | encap::QINQ;
        r.src = DirStats {
            pkts: 12,
            bytes: 1500,
            ip_bytes: 1300,
            app_bytes: 1000,
            ttl_max: 64,
            tos: 0x10,
            tcp_flags: 0x1b, // FIN PSH ACK SYN
            retrans: 2,
            loss_pkts: 1,
            ipt_n: 11,
            ipt_mean_ns: 10e6,
            ipt_std_ns: 6e6,
            window: 65535,
            ..Default::default()
        };
        r.dst = DirStats {
            pkts: 8,
            bytes: 900,
            ip_bytes: 800,
            ttl_max: 128,
            tcp_flags: 0x16, // ACK RST SYN
            out_of_order: 3,
            zero_win: 1,
            ipt_n: 7,
            ipt_mean_ns: 15e6,
            ipt_std_ns: 2e6,
            ..Default::default()
        };
        r
    }

    fn check(r: &FlowRecord, yes: &[&str], no: &[&str]) {
        for e in yes {
            assert!(m(e, r), "'{e}' should match");
        }
        for e in no {
            assert!(!m(e, r), "'{e}' should not match");
        }
    }

    #[test]
    fn ports_ranges_and_ethernet() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "portrange 400-500",
                "portrange 443-443",
                "dst portrange 1-1023",
                "src portrange 32768-65535",
                "port 440-450",
                "src port 40000-40000",
                "port 80 or 443",
                "tcp port 443",
                "tcp dst port 443",
                "ether host 02:00:00:00:00:01",
                "ether src 02:00:00:00:00:01",
                "ether dst 02:00:00:00:00:02",
                "ether dst host 2:0:0:0:0:2",
                "ether proto ip",
                "ether proto 0x0800",
                "net 10 and dst net 192.168.1",
                "src net 10.0.0.77 mask 255.255.255.0",
                "dst net 192.168.0.0 mask 255.255.0.0",
                "10.0.0.1",
                "dst 192.168.1.9",
            ],
            &[
                "portrange 1-442",
                "src portrange 1-1023",
                "dst portrange 444-65535",
                "udp port 443",
                "tcp src port 443",
                "ether src 02:00:00:00:00:02",
                "ether dst 02:00:00:00:00:01",
                "ether host 02:00:00:00:00:03",
                "ether proto ip6",
                "ether proto arp",
                "src net 10.0.1.0 mask 255.255.255.0",
                "src 192.168.1.9",
            ],
        );
        // Ports mean nothing for ICMP or ARP, ranges included.
        let icmp = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 2], 77, 1);
        check(&icmp, &[], &["portrange 0-65535", "port 0-65535"]);
        let arp = l2(0x0806);
        check(
            &arp,
            &[
                "ether proto arp",
                "ether proto 0x806",
                "ether src 00:11:22:33:44:55",
                "ether dst ff:ff:ff:ff:ff:ff",
            ],
            &[
                "portrange 0-65535",
                "ether proto ip",
                "ether dst 00:11:22:33:44:55",
            ],
        );
    }

    #[test]
    fn vlan_and_mpls() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "vlan",
                "vlan 10",
                "vlan 20",
                "vlan eq 20",
                "vlan gt 15",
                "vlan lt 15",
                "vlan ne 10",
                "ivlan eq 20",
                "not mpls",
            ],
            &[
                "vlan 30",
                "vlan gt 20",
                "ivlan eq 10",
                "mpls",
                "mpls 10",
                "mpls ge 0",
            ],
        );
        let mut t = v4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, 17);
        check(
            &t,
            &["not vlan", "not mpls"],
            &["vlan", "vlan ge 0", "vlan ne 1"],
        );
        t.mpls = [16, 0];
        t.encap.kinds = encap::MPLS;
        check(
            &t,
            &[
                "mpls",
                "mpls 16",
                "mpls lt 17",
                "mpls2 ne 5 or not mpls2 ge 0",
            ],
            &["mpls 17", "mpls2 ge 0", "vlan"],
        );
        // A priority tag (VLAN 0) still says VLAN.
        t.encap.kinds = encap::VLAN;
        check(&t, &["vlan"], &["vlan ge 0"]);
    }

    #[test]
    fn counters_sum_without_a_direction() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "pkts eq 20",
                "pkts gt 10",
                "src pkts eq 12",
                "dst pkts eq 8",
                "spkts = 12",
                "dpkts < 9",
                "bytes eq 2400",
                "src bytes ge 1500",
                "dst bytes lt 901",
                "appbytes eq 1000",
                "src appbytes eq 1000",
                "dst appbytes eq 0",
                "dst appbytes lt 1",
                "ipbytes eq 2100",
                "retrans eq 2",
                "src retrans eq 2",
                "dst retrans eq 0",
                "ooo eq 3",
                "outoforder eq 3",
                "loss eq 1",
                "winshut eq 1",
                "dst winshut eq 1",
                "frags eq 0",
                "pkts gt 19.5",
                "pkts lt 20.5",
                "pkts ne 20.5",
                "pkts ge -3",
                "pkts lt 100000000000000000000000",
                "pkts 20",
                "sbytes ne 0x10",
                "trans eq 1",
            ],
            &[
                "pkts gt 20",
                "pkts eq 12",
                "src pkts eq 20",
                "src bytes lt 1",
                "appbytes lt 1",
                "pkts eq 20.5",
                "pkts lt -1",
                "pkts gt 100000000000000000000000",
                "frags gt 0",
            ],
        );
    }

    #[test]
    fn gauges_and_times() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "ttl eq 64",
                "ttl eq 128",
                "ttl lt 100",
                "src ttl eq 64",
                "dst ttl gt 100",
                "sttl = 64",
                "ttl 128",
                "tos eq 16",
                "src tos eq 16",
                "dst tos eq 0",
                "jit gt 5",
                "src jit gt 5",
                "src jit eq 6",
                "dst jit lt 5",
                "jitter ge 2",
                "intpkt eq 15",
                "src intpkt lt 10.5",
                "sjit gt 5.999",
                "win eq 0",
                "src win eq 65535",
                "dst win lt 1",
                "dur ge 60",
                "dur gt 60.4999",
                "dur lt 60.500000001",
                "dur eq 60.5",
                "tcprtt gt 0.01",
                "tcprtt eq 0.012",
                "synack eq 0.004",
                "ackdat ge 0.008",
                "tcprtt lt 1",
            ],
            &[
                "ttl eq 65",
                "src ttl eq 128",
                "dst ttl eq 64",
                "dst jit gt 5",
                "jit gt 6",
                "src win eq 0",
                "dur ge 61",
                "dur eq 60",
                "tcprtt gt 0.012",
                "tcprtt lt 0.012",
            ],
        );
        // A silent responder has no TTL, TOS or jitter; a UDP flow no window and no
        // handshake times: every comparison on them is false, 'ne' and 'lt' included.
        let mut u = v4([10, 0, 0, 1], 53, [10, 0, 0, 2], 53, 17);
        u.src.ttl_max = 64;
        check(
            &u,
            &[
                "ttl eq 64",
                "src ttl eq 64",
                "not dst ttl eq 0",
                "ttl ne 0",
                "jit eq 0",
            ],
            &[
                "dst ttl eq 0",
                "dst ttl ne 64",
                "dst ttl lt 255",
                "ttl lt 64",
                "dst jit ge 0",
                "dst tos eq 0",
                "win ge 0",
                "src win ge 0",
                "tcprtt lt 1",
                "synack ge 0",
                "ackdat ne 1",
            ],
        );
    }

    #[test]
    fn percent_loss() {
        let r = tcp_fixture();
        // src: 1 lost of 13 = 7.69 %; both ways: 1 of 21 = 4.76 %; dst: 0 %.
        check(
            &r,
            &[
                "ploss gt 0",
                "ploss gt 4.7",
                "ploss lt 4.8",
                "src ploss gt 7.6",
                "src ploss lt 7.7",
                "dst ploss eq 0",
            ],
            &["ploss eq 0", "ploss gt 5", "dst ploss gt 0"],
        );
        let mut empty = r.clone();
        empty.src = DirStats::default();
        empty.dst = DirStats::default();
        check(&empty, &[], &["ploss eq 0", "ploss ge 0", "src ploss lt 1"]);
    }

    #[test]
    fn names() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "state eq RST",
                "state = rst",
                "state ne CON",
                "state != FIN",
                "cause eq close",
                "observed eq none",
            ],
            &["state eq CON", "state ne RST", "cause eq idle"],
        );
        // Derived states as `read` prints them.
        let mut u = v4([10, 0, 0, 1], 53, [10, 0, 0, 2], 53, 17);
        u.cause = Cause::Idle;
        check(&u, &["state eq INT"], &["state eq REQ", "state eq CON"]);
        u.dst.pkts = 1;
        check(&u, &["state eq CON"], &["state eq INT"]);
        let ping = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 2], 7, 1);
        check(&ping, &["state eq ECO"], &["state eq ECR"]);
    }

    #[test]
    fn tcp_flag_words() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "syn",
                "fin",
                "rst",
                "reset",
                "ack",
                "push",
                "psh",
                "src syn",
                "src fin",
                "src push",
                "dst rst",
                "dst syn",
                "synack",
                "syn and synack and not urg",
                "tcp src fin",
            ],
            &[
                "urg",
                "ece",
                "cwr",
                "src rst",
                "dst fin",
                "dst push",
                "udp and syn",
                "udp src fin",
            ],
        );
        let mut half = r.clone();
        half.dst.tcp_flags = 0x04; // RST only: no SYN-ACK
        check(&half, &["syn", "dst rst"], &["synack"]);
        // Flags mean nothing outside TCP.
        let mut u = v4([10, 0, 0, 1], 53, [10, 0, 0, 2], 53, 17);
        u.src.tcp_flags = 0xff;
        check(&u, &[], &["syn", "src fin", "synack"]);
    }

    #[test]
    fn behaviour_flag_words() {
        let r = tcp_fixture();
        check(
            &r,
            &[
                "retrans",
                "src retrans",
                "outoforder",
                "dst outoforder",
                "winshut",
                "dst winshut",
                "loss",
                "src loss",
                "retrans and outoforder and winshut and loss",
            ],
            &[
                "dst retrans",
                "src outoforder",
                "src winshut",
                "dst loss",
                "frag",
                "src frag",
                "ecn",
            ],
        );
        let mut f = v4([10, 0, 0, 1], 53, [10, 0, 0, 2], 53, 17);
        check(&f, &[], &["frag", "retrans", "loss"]);
        f.flags = tapflow_record::flags::FRAGMENTS | tapflow_record::flags::ECN_CE;
        check(&f, &["frag", "ecn"], &["src frag", "dst frag"]);
        f.dst.frags = 2;
        check(
            &f,
            &["dst frag", "frag gt 1", "dst frags eq 2"],
            &["src frag"],
        );
    }

    #[test]
    fn icmp_type_words() {
        let ping = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 2], 7, 1);
        check(
            &ping,
            &["echo", "icmp and echo", "icmptype eq 8", "icmpcode eq 0"],
            &["echoreply", "unreach", "redirect", "timxceed", "paramprob"],
        );
        let cases = [
            (0x0000, "echoreply"),
            (0x0303, "unreach"),
            (0x0400, "srcquench"),
            (0x0501, "redirect"),
            (0x0b00, "timxceed"),
            (0x0b01, "timexed"),
            (0x0c00, "paramprob"),
            (0x0c00, "parmprob"),
        ];
        for (tc, word) in cases {
            let r = v4([10, 0, 0, 1], tc, [10, 0, 0, 2], 0, 1);
            check(&r, &[word], &["echo"]);
        }
        let r = v4([10, 0, 0, 1], 0x0303, [10, 0, 0, 2], 0, 1);
        check(
            &r,
            &["icmptype 3 and icmpcode 3", "state eq URP"],
            &["icmpcode 1"],
        );
        let v6cases = [
            (0x8000, "echo"),
            (0x8100, "echoreply"),
            (0x0104, "unreach"),
            (0x8900, "redirect"),
            (0x0300, "timxceed"),
            (0x0400, "paramprob"),
        ];
        for (tc, word) in v6cases {
            let r = v6("2001:db8::1", tc, "2001:db8::2", 0, 58);
            check(&r, &[word, "icmp6"], &["srcquench", "icmp"]);
        }
        // The same numbers on a UDP flow are ports, not ICMP types.
        let u = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 2], 7, 17);
        check(&u, &[], &["echo", "icmptype ge 0", "icmpcode eq 0"]);
    }

    #[test]
    fn syntax_error_rendering() {
        let e = Filter::parse("tcp and pkts").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a comparison (eq, ne, gt, ge, lt, le, =, !=, >, >=, <, <=) after \
             'pkts'\n  tcp and pkts\n              ^"
        );
        let e = Filter::parse("src pkst gt 10").unwrap_err();
        assert!(e.to_string().starts_with("expected 'host'"), "{e}");
        assert!(e.to_string().contains("(did you mean 'pkts'?)"), "{e}");
        let e = Filter::parse("pkst gt 10").unwrap_err();
        assert_eq!(
            e.error.render("pkst gt 10"),
            "unknown field 'pkst' (did you mean 'pkts'?)\n  pkst gt 10\n  ^"
        );
        // Control characters keep the caret aligned.
        let e = Filter::parse("tcp\tand\nfoo").unwrap_err();
        assert!(
            e.to_string().ends_with("\n  tcp and foo\n          ^"),
            "{e}"
        );
        // A position past the end, or inside a character, still renders.
        assert_eq!(FilterError::new("m", 99).render("ab"), "m\n  ab\n    ^");
        assert_eq!(FilterError::new("m", 1).render("é"), "m\n  é\n   ^");
    }
}
