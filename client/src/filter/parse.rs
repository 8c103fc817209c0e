//! Recursive-descent parser for tcpdump/argus-like filter expressions.
//!
//! ```text
//! expr    := and (('or' | '||') and)*
//! and     := unary (('and' | '&&') unary)*
//! unary   := ('not' | '!') unary | '(' expr ')' | primitive
//! primitive := tcp | udp | icmp | icmp6 | sctp | esp | gre | ip | ip6 | arp
//!            | 'proto' (NUM | NAME)
//!            | [src | dst] host ADDR | [src | dst] net CIDR | [src | dst] port (NUM | NAME)
//! ```
//!
//! Field predicates (`pkts gt 10`, `src bytes lt 1`) slot in at `primitive` and after
//! `src`/`dst`; the tokenizer already yields comparison operators for them.

use std::net::{Ipv4Addr, Ipv6Addr};

use tapflow_record::{proto_by_name, AddrKind};

use super::ast::{Dir, Expr, HostAddr, Net, Prim};
use super::lex::{tokenize, TokKind, Token};
use super::FilterError;
use crate::services::port_by_name;

const PRIMITIVES: &str = "tcp, udp, icmp, ip, ip6, arp, proto, host, net, port, src, dst";

pub fn parse(src: &str) -> Result<Expr, FilterError> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, i: 0 };
    let e = p.expr()?;
    let t = p.peek();
    match t.kind {
        TokKind::End => Ok(e),
        TokKind::RParen => Err(FilterError::new("unmatched ')'", t.pos)),
        _ => Err(FilterError::new(
            format!(
                "expected 'and', 'or' or the end of the expression, found '{}'",
                t.text
            ),
            t.pos,
        )),
    }
}

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.toks[self.i]
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.toks[self.i];
        if t.kind != TokKind::End {
            self.i += 1;
        }
        t
    }

    /// The token before the current one, for "after 'x'" in messages.
    fn after(&self) -> String {
        match self.i.checked_sub(1) {
            Some(j) => format!(" after '{}'", self.toks[j].text),
            None => String::new(),
        }
    }

    fn is_word(t: &Token<'_>, w: &str) -> bool {
        t.kind == TokKind::Word && t.text.eq_ignore_ascii_case(w)
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut v = vec![self.and()?];
        loop {
            let t = self.peek();
            if t.kind == TokKind::Or || Self::is_word(&t, "or") {
                self.bump();
                v.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Expr::Any(v)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut v = vec![self.unary()?];
        loop {
            let t = self.peek();
            if t.kind == TokKind::And || Self::is_word(&t, "and") {
                self.bump();
                v.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Expr::All(v)
        })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let t = self.peek();
        match t.kind {
            TokKind::Not => {
                self.bump();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            TokKind::Word if Self::is_word(&t, "not") => {
                self.bump();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            TokKind::LParen => {
                self.bump();
                let e = self.expr()?;
                let c = self.peek();
                if c.kind != TokKind::RParen {
                    return Err(FilterError::new(
                        format!("expected ')' to close the '(' at column {}", t.pos + 1),
                        c.pos,
                    ));
                }
                self.bump();
                Ok(e)
            }
            TokKind::Word if !Self::is_word(&t, "and") && !Self::is_word(&t, "or") => {
                self.bump();
                self.primitive(t).map(Expr::Prim)
            }
            _ => Err(FilterError::new(
                format!(
                    "expected a filter primitive ({PRIMITIVES}) or '('{}",
                    self.after()
                ),
                t.pos,
            )),
        }
    }

    fn primitive(&mut self, t: Token<'a>) -> Result<Prim, FilterError> {
        let w = t.text.to_ascii_lowercase();
        let proto = |proto, kind| Ok(Prim::Proto { proto, kind });
        match w.as_str() {
            "tcp" => proto(6, None),
            "udp" => proto(17, None),
            "sctp" => proto(132, None),
            "esp" => proto(50, None),
            "gre" => proto(47, None),
            "icmp" => proto(1, Some(AddrKind::Ipv4)),
            "icmp6" | "icmpv6" => proto(58, Some(AddrKind::Ipv6)),
            "ip" => Ok(Prim::Family(AddrKind::Ipv4)),
            "ip6" => Ok(Prim::Family(AddrKind::Ipv6)),
            "arp" => Ok(Prim::Arp),
            "proto" => {
                let a = self.bump();
                let n = (a.kind == TokKind::Word)
                    .then(|| {
                        a.text
                            .parse::<u8>()
                            .ok()
                            .or_else(|| proto_by_name(&a.text.to_ascii_lowercase()))
                    })
                    .flatten();
                match n {
                    Some(p) => proto(p, None),
                    None => Err(FilterError::new(
                        "expected a protocol number (0-255) or name after 'proto'",
                        a.pos,
                    )),
                }
            }
            "src" | "dst" => {
                let dir = if w == "src" { Dir::Src } else { Dir::Dst };
                let k = self.peek();
                if ["host", "net", "port"]
                    .iter()
                    .any(|kw| Self::is_word(&k, kw))
                {
                    self.bump();
                    self.endpoint(dir, k)
                } else {
                    Err(FilterError::new(
                        format!("expected 'host', 'net' or 'port' after '{}'", t.text),
                        k.pos,
                    ))
                }
            }
            "host" | "net" | "port" => self.endpoint(Dir::Either, t),
            _ => Err(FilterError::new(
                format!(
                    "unknown filter primitive '{}' (expected one of {PRIMITIVES})",
                    t.text
                ),
                t.pos,
            )),
        }
    }

    /// `host A`, `net N`, `port P` once the keyword `kw` has been consumed.
    fn endpoint(&mut self, dir: Dir, kw: Token<'a>) -> Result<Prim, FilterError> {
        let a = self.bump();
        let word = (a.kind == TokKind::Word).then_some(a.text);
        match kw.text.to_ascii_lowercase().as_str() {
            "host" => word
                .and_then(parse_host)
                .map(|h| Prim::Host(dir, h))
                .ok_or_else(|| {
                    FilterError::new("expected an IPv4, IPv6 or MAC address after 'host'", a.pos)
                }),
            "net" => {
                let w = word.ok_or_else(|| FilterError::new(NET_EXPECTED, a.pos))?;
                parse_net(w, a.pos).map(|n| Prim::Net(dir, n))
            }
            _ => word
                .and_then(|w| {
                    w.parse::<u16>()
                        .ok()
                        .or_else(|| port_by_name(&w.to_ascii_lowercase()))
                })
                .map(|p| Prim::Port(dir, p))
                .ok_or_else(|| FilterError::new("expected a port number after 'port'", a.pos)),
        }
    }
}

const NET_EXPECTED: &str = "expected a network (like 10.0.0.0/8 or 2001:db8::/32) after 'net'";

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut m = [0u8; 6];
    let mut n = 0;
    for part in s.split(sep) {
        if n == 6 || part.is_empty() || part.len() > 2 {
            return None;
        }
        m[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(m)
}

fn parse_host(s: &str) -> Option<HostAddr> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(HostAddr::V4(a.octets()));
    }
    if let Some(m) = parse_mac(s) {
        return Some(HostAddr::Mac(m));
    }
    s.parse::<Ipv6Addr>().ok().map(|a| HostAddr::V6(a.octets()))
}

/// `A/len` or a bare address (a host network). `pos` is the word's offset, for errors.
fn parse_net(s: &str, pos: usize) -> Result<Net, FilterError> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some((l, pos + a.len() + 1))),
        None => (s, None),
    };
    let (kind, bytes, max) = if let Ok(v4) = a.parse::<Ipv4Addr>() {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&v4.octets());
        (AddrKind::Ipv4, b, 32)
    } else if let Ok(v6) = a.parse::<Ipv6Addr>() {
        (AddrKind::Ipv6, v6.octets(), 128)
    } else {
        return Err(FilterError::new(NET_EXPECTED, pos));
    };
    let prefix = match len {
        None => max,
        Some((l, lpos)) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                return Err(FilterError::new(
                    format!("expected a prefix length of 0 to {max}"),
                    lpos,
                ))
            }
        },
    };
    Ok(Net::new(kind, bytes, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .to_string()
    }

    fn err(s: &str) -> (String, usize) {
        let e = parse(s).unwrap_err();
        (e.msg, e.pos)
    }

    #[test]
    fn primitives() {
        assert_eq!(canon("tcp"), "proto 6");
        assert_eq!(canon("udp"), "proto 17");
        assert_eq!(canon("icmp"), "proto 1/ip4");
        assert_eq!(canon("icmp6"), "proto 58/ip6");
        assert_eq!(canon("sctp"), "proto 132");
        assert_eq!(canon("esp"), "proto 50");
        assert_eq!(canon("gre"), "proto 47");
        assert_eq!(canon("ip"), "ip");
        assert_eq!(canon("ip6"), "ip6");
        assert_eq!(canon("arp"), "arp");
        assert_eq!(canon("proto 89"), "proto 89");
        assert_eq!(canon("proto ospf"), "proto 89");
        assert_eq!(canon("proto icmp6"), "proto 58");
        assert_eq!(
            canon("TCP AND Host 10.0.0.1"),
            "(proto 6 and host 10.0.0.1)"
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(canon("host 10.0.0.1"), "host 10.0.0.1");
        assert_eq!(canon("src host 2001:db8::1"), "src host 2001:db8::1");
        assert_eq!(
            canon("dst host 00:11:22:AA:bb:cc"),
            "dst host 00:11:22:aa:bb:cc"
        );
        assert_eq!(canon("host 0-11-22-aa-bb-cc"), "host 00:11:22:aa:bb:cc");
        assert_eq!(canon("net 10.1.2.3/8"), "net 10.0.0.0/8");
        assert_eq!(canon("src net 2001:db8::/32"), "src net 2001:db8::/32");
        assert_eq!(canon("net 192.168.1.7"), "net 192.168.1.7/32");
        assert_eq!(canon("net 0.0.0.0/0"), "net 0.0.0.0/0");
        assert_eq!(canon("port 53"), "port 53");
        assert_eq!(canon("dst port https"), "dst port 443");
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            canon("tcp or udp and icmp"),
            "(proto 6 or (proto 17 and proto 1/ip4))"
        );
        assert_eq!(
            canon("tcp and udp or icmp"),
            "((proto 6 and proto 17) or proto 1/ip4)"
        );
        assert_eq!(
            canon("tcp || udp && ip6"),
            "(proto 6 or (proto 17 and ip6))"
        );
        assert_eq!(canon("tcp and udp and ip"), "(proto 6 and proto 17 and ip)");
        assert_eq!(
            canon("(tcp or udp) and ip"),
            "((proto 6 or proto 17) and ip)"
        );
    }

    #[test]
    fn negation_binds_tightest() {
        assert_eq!(canon("not tcp and udp"), "(not proto 6 and proto 17)");
        assert_eq!(canon("!tcp or !!udp"), "(not proto 6 or not not proto 17)");
        assert_eq!(canon("not (tcp or udp)"), "not (proto 6 or proto 17)");
        assert_eq!(canon("((((ip))))"), "ip");
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        assert_eq!(
            err("tcp and port x"),
            ("expected a port number after 'port'".into(), 13)
        );
        assert_eq!(
            err("port 70000"),
            ("expected a port number after 'port'".into(), 5)
        );
        assert_eq!(
            err("port"),
            ("expected a port number after 'port'".into(), 4)
        );
        assert_eq!(
            err("host 1.2.3"),
            (
                "expected an IPv4, IPv6 or MAC address after 'host'".into(),
                5
            )
        );
        assert_eq!(err("net 10.0.0.0/33").1, 13);
        assert!(err("net 10.0.0.0/33").0.contains("0 to 32"));
        assert_eq!(err("net 2001:db8::/129").1, 15);
        assert_eq!(err("net foo"), (NET_EXPECTED.into(), 4));
        assert_eq!(
            err("src 10.0.0.1"),
            ("expected 'host', 'net' or 'port' after 'src'".into(), 4)
        );
        assert_eq!(err("proto xyz").1, 6);
        assert_eq!(err("proto 256").1, 6);
        assert!(err("tcp and").0.starts_with("expected a filter primitive"));
        assert!(err("tcp and").0.ends_with("after 'and'"));
        assert_eq!(err("tcp and").1, 7);
        assert_eq!(err("").1, 0);
        assert_eq!(err("   ").1, 3);
        assert_eq!(
            err("(tcp or udp"),
            ("expected ')' to close the '(' at column 1".into(), 11)
        );
        assert_eq!(err("tcp)"), ("unmatched ')'".into(), 3));
        assert_eq!(err("tcp udp").1, 4);
        assert!(err("tcp udp").0.contains("found 'udp'"));
        assert_eq!(err("bogus").1, 0);
        assert!(err("bogus")
            .0
            .starts_with("unknown filter primitive 'bogus'"));
        assert_eq!(err("tcp and or udp").1, 8);
        assert_eq!(err("not").1, 3);
        assert_eq!(err("tcp & udp").1, 4);
        assert_eq!(err("pkts > 10").1, 0);
        assert_eq!(err("tcp and > 10").1, 8);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("0:1:2:a:b:c"), Some([0, 1, 2, 10, 11, 12]));
        assert_eq!(parse_mac("00:11:22:33:44"), None);
        assert_eq!(parse_mac("00:11:22:33:44:55:66"), None);
        assert_eq!(parse_mac("00:11:22:33:44:5g"), None);
        assert_eq!(parse_mac("001:1:22:33:44:55"), None);
    }
}
