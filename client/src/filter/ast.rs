//! The compiled filter tree and its evaluation against one record. Evaluation only reads the
//! record: no allocation, no formatting.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use tapflow_record::{encap, flags, AddrKind, FlowRecord};

use super::field::{is_tcp, Cmp};

/// Which endpoint a primitive looks at: `src` is the record's initiator (`saddr`/`sport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostAddr {
    V4([u8; 4]),
    V6([u8; 16]),
    Mac([u8; 6]),
}

/// A network with its mask pre-expanded so matching is a byte-wise AND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub kind: AddrKind,
    pub addr: [u8; 16],
    pub mask: [u8; 16],
    pub prefix: u8,
}

impl Net {
    /// Builds a network; host bits in `addr` are cleared.
    pub fn new(kind: AddrKind, addr: [u8; 16], prefix: u8) -> Net {
        let mut mask = [0u8; 16];
        for (i, m) in mask.iter_mut().enumerate() {
            let bits = (prefix as usize).saturating_sub(i * 8).min(8);
            *m = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        let mut a = [0u8; 16];
        for i in 0..16 {
            a[i] = addr[i] & mask[i];
        }
        Net {
            kind,
            addr: a,
            mask,
            prefix,
        }
    }

    fn contains(&self, kind: AddrKind, addr: &[u8; 16]) -> bool {
        kind == self.kind && (0..16).all(|i| addr[i] & self.mask[i] == self.addr[i])
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prim {
    /// An IP protocol number, optionally restricted to one address family (`icmp` is IPv4 only).
    Proto {
        proto: u8,
        kind: Option<AddrKind>,
    },
    /// `ip` / `ip6`.
    Family(AddrKind),
    /// `arp`: an L2 record with ethertype 0x0806.
    Arp,
    Host(Dir, HostAddr),
    Net(Dir, Net),
    Port(Dir, u16),
    /// `portrange LO-HI` (inclusive).
    PortRange(Dir, u16, u16),
    /// `ether proto N`: the record's ethertype (of the IP layer for IP flows).
    EtherProto(u16),
    /// `vlan` alone: a VLAN tag was seen.
    Vlan,
    /// `mpls` alone: an MPLS label was seen.
    Mpls,
    /// TCP flags (any bit of the mask) sent by the side(s).
    TcpFlags(Dir, u8),
    /// `synack`: the responder sent a SYN-ACK.
    SynAck,
    /// `frag`: fragments seen (the record flag, or the side's fragment count).
    Frag(Dir),
    /// A `flags::*` bit of the record (`ecn`).
    RecordFlag(u32),
    /// The ICMP type of the initiator's message, per family (`None`: no such type there).
    IcmpType {
        v4: Option<u8>,
        v6: Option<u8>,
    },
    /// A field predicate (`pkts gt 10`).
    Cmp(Cmp),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
    Prim(Prim),
}

/// Protocols whose `sport`/`dport` are real ports (tcp, udp, dccp, sctp, udplite).
pub fn has_ports(r: &FlowRecord) -> bool {
    r.addr_kind != AddrKind::L2 && matches!(r.proto, 6 | 17 | 33 | 132 | 136)
}

fn either(dir: Dir, f: impl Fn(bool) -> bool) -> bool {
    match dir {
        Dir::Src => f(true),
        Dir::Dst => f(false),
        Dir::Either => f(true) || f(false),
    }
}

impl Prim {
    #[inline]
    pub fn matches(&self, r: &FlowRecord) -> bool {
        match *self {
            Prim::Proto { proto, kind } => {
                r.addr_kind != AddrKind::L2
                    && r.proto == proto
                    && kind.map_or(true, |k| k == r.addr_kind)
            }
            Prim::Family(k) => r.addr_kind == k,
            Prim::Arp => r.addr_kind == AddrKind::L2 && r.ethertype == 0x0806,
            Prim::Host(dir, HostAddr::V4(a)) => {
                r.addr_kind == AddrKind::Ipv4
                    && either(dir, |s| (if s { &r.saddr } else { &r.daddr }).0[..4] == a)
            }
            Prim::Host(dir, HostAddr::V6(a)) => {
                r.addr_kind == AddrKind::Ipv6
                    && either(dir, |s| (if s { &r.saddr } else { &r.daddr }).0 == a)
            }
            // A MAC matches an L2 record's addresses, or the Ethernet addresses of an IP record.
            Prim::Host(dir, HostAddr::Mac(m)) => either(dir, |s| {
                if r.addr_kind == AddrKind::L2 {
                    (if s { &r.saddr } else { &r.daddr }).mac() == m
                } else {
                    (if s { r.smac } else { r.dmac }) == m
                }
            }),
            Prim::Net(dir, ref net) => either(dir, |s| {
                net.contains(r.addr_kind, if s { &r.saddr.0 } else { &r.daddr.0 })
            }),
            Prim::Port(dir, p) => {
                has_ports(r) && either(dir, |s| (if s { r.sport } else { r.dport }) == p)
            }
            Prim::PortRange(dir, lo, hi) => {
                has_ports(r)
                    && either(dir, |s| {
                        (lo..=hi).contains(&if s { r.sport } else { r.dport })
                    })
            }
            Prim::EtherProto(t) => r.ethertype == t,
            Prim::Vlan => r.vlan != [0, 0] || r.encap.kinds & (encap::VLAN | encap::QINQ) != 0,
            Prim::Mpls => r.mpls != [0, 0] || r.encap.kinds & encap::MPLS != 0,
            Prim::TcpFlags(dir, mask) => {
                is_tcp(r)
                    && either(dir, |s| {
                        (if s { r.src.tcp_flags } else { r.dst.tcp_flags }) & mask != 0
                    })
            }
            Prim::SynAck => is_tcp(r) && r.dst.tcp_flags & 0x12 == 0x12,
            Prim::Frag(dir) => match dir {
                Dir::Src => r.src.frags > 0,
                Dir::Dst => r.dst.frags > 0,
                Dir::Either => {
                    r.flags & flags::FRAGMENTS != 0 || r.src.frags > 0 || r.dst.frags > 0
                }
            },
            Prim::RecordFlag(bit) => r.flags & bit != 0,
            Prim::IcmpType { v4, v6 } => {
                let ty = Some((r.sport >> 8) as u8);
                match (r.addr_kind, r.proto) {
                    (AddrKind::Ipv4, 1) => v4 == ty,
                    (AddrKind::Ipv6, 58) => v6 == ty,
                    _ => false,
                }
            }
            Prim::Cmp(ref c) => c.matches(r),
        }
    }
}

/// TCP flag words and their bits.
pub const TCP_FLAGS: &[(&str, u8)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("reset", 0x04),
    ("push", 0x08),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

/// ICMP type words: (name, IPv4 type, ICMPv6 type).
pub const ICMP_TYPES: &[(&str, Option<u8>, Option<u8>)] = &[
    ("echo", Some(8), Some(128)),
    ("echoreply", Some(0), Some(129)),
    ("unreach", Some(3), Some(1)),
    ("srcquench", Some(4), None),
    ("redirect", Some(5), Some(137)),
    ("timxceed", Some(11), Some(3)),
    ("timexed", Some(11), Some(3)),
    ("paramprob", Some(12), Some(4)),
    ("parmprob", Some(12), Some(4)),
];

impl Expr {
    #[inline]
    pub fn matches(&self, r: &FlowRecord) -> bool {
        match self {
            Expr::All(v) => v.iter().all(|e| e.matches(r)),
            Expr::Any(v) => v.iter().any(|e| e.matches(r)),
            Expr::Not(e) => !e.matches(r),
            Expr::Prim(p) => p.matches(r),
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::Src => "src ",
            Dir::Dst => "dst ",
            Dir::Either => "",
        })
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostAddr::V4(a) => write!(f, "{}", Ipv4Addr::from(*a)),
            HostAddr::V6(a) => write!(f, "{}", Ipv6Addr::from(*a)),
            HostAddr::Mac(m) => tapflow_record::fmt_mac(f, m),
        }
    }
}

/// Canonical, fully parenthesised form: what the parser understood (used by tests and `-v`-ish
/// diagnostics).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, v: &[Expr], op: &str| {
            f.write_str("(")?;
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::All(v) => list(f, v, "and"),
            Expr::Any(v) => list(f, v, "or"),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::Prim(p) => match p {
                Prim::Proto { proto, kind: None } => write!(f, "proto {proto}"),
                Prim::Proto {
                    proto,
                    kind: Some(k),
                } => write!(f, "proto {proto}/ip{}", *k as u8),
                Prim::Family(AddrKind::Ipv6) => f.write_str("ip6"),
                Prim::Family(_) => f.write_str("ip"),
                Prim::Arp => f.write_str("arp"),
                Prim::Host(d, a) => write!(f, "{d}host {a}"),
                Prim::Net(d, n) => {
                    let a = if n.kind == AddrKind::Ipv4 {
                        Ipv4Addr::new(n.addr[0], n.addr[1], n.addr[2], n.addr[3]).to_string()
                    } else {
                        Ipv6Addr::from(n.addr).to_string()
                    };
                    write!(f, "{d}net {a}/{}", n.prefix)
                }
                Prim::Port(d, p) => write!(f, "{d}port {p}"),
                Prim::PortRange(d, lo, hi) => write!(f, "{d}portrange {lo}-{hi}"),
                Prim::EtherProto(t) => write!(f, "ether proto 0x{t:04x}"),
                Prim::Vlan => f.write_str("vlan"),
                Prim::Mpls => f.write_str("mpls"),
                Prim::TcpFlags(d, m) => {
                    let names: Vec<&str> =
                        ["fin", "syn", "rst", "push", "ack", "urg", "ece", "cwr"]
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| m & (1 << i) != 0)
                            .map(|(_, n)| *n)
                            .collect();
                    write!(f, "{d}{}", names.join("|"))
                }
                Prim::SynAck => f.write_str("synack"),
                Prim::Frag(d) => write!(f, "{d}frag"),
                Prim::RecordFlag(flags::INFINIBAND) => f.write_str("ib"),
                Prim::RecordFlag(b) => write!(f, "flag 0x{b:x}"),
                Prim::IcmpType { v4, v6 } => {
                    let t = |t: &Option<u8>| t.map_or("-".to_string(), |t| t.to_string());
                    write!(f, "icmptype {}/{}", t(v4), t(v6))
                }
                Prim::Cmp(c) => write!(f, "{c}"),
            },
        }
    }
}
