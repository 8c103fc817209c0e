//! Filter expressions: `tcp and not port 22`, `src net 10.0.0.0/8 or host ::1`.
//!
//! An expression is parsed once into a small tree ([`Expr`]) evaluated on each record.

mod ast;
mod lex;
mod parse;

use std::fmt;

pub use ast::{has_ports, Dir, Expr, HostAddr, Net, Prim};
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

    /// The message, the expression and a caret under the offending position.
    pub fn render(&self, expr: &str) -> String {
        // Columns count characters, not bytes, so the caret lines up with non-ASCII input.
        let col = expr
            .get(..self.pos)
            .map_or(expr.chars().count(), |s| s.chars().count());
        format!("{}\n  {expr}\n  {:col$}^", self.msg, "")
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{Addr, AddrKind, DirStats};

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
}
