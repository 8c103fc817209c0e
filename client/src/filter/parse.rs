//! Recursive-descent parser for tcpdump/argus-like filter expressions (grammar in `mod.rs`).

use std::net::{Ipv4Addr, Ipv6Addr};

use tapflow_record::{flags, proto_by_name, AddrKind};

use super::ast::{Dir, Expr, HostAddr, Net, Prim, ICMP_TYPES, TCP_FLAGS};
use super::field::{self, Cmp, Def, LitError, Op, Test, Unit};
use super::lex::{tokenize, TokKind, Token};
use super::FilterError;
use crate::services::port_by_name;

/// Parentheses and `not`s allowed around one primitive: keeps recursion (here and in
/// evaluation) far from the stack limit whatever the input.
pub const MAX_DEPTH: usize = 100;

const PRIMITIVES: &str = "tcp, udp, icmp, ip, ip6, arp, proto, [src|dst] host/net/port/portrange, \
     ether, vlan, mpls, a flag like syn or retrans, or a comparison like 'pkts gt 10'";

const COMPARISONS: &str = "eq, ne, gt, ge, lt, le, =, !=, >, >=, <, <=";

/// Words that are not protocol names, fields or flags, for suggestions.
const KEYWORDS: &[&str] = &[
    "not",
    "and",
    "or",
    "proto",
    "src",
    "dst",
    "host",
    "net",
    "port",
    "portrange",
    "ether",
    "vlan",
    "mpls",
    "synack",
    "ecn",
    "retrans",
    "outoforder",
    "winshut",
    "loss",
    "frag",
];

/// Counter fields that are also flag words: alone they mean "more than zero".
const COUNTER_FLAGS: &[&str] = &["retrans", "outoforder", "winshut", "loss"];

pub fn parse(src: &str) -> Result<Expr, FilterError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        last: None,
    };
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

/// The kind of id an address-like primitive takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
    Ether,
}

/// The qualifiers of the last address-like primitive: tcpdump and argus reuse them for a
/// bare id (`port 80 or 443`, `tcp dst port ftp or ftp-data`).
#[derive(Clone, Debug)]
struct Qual {
    proto: Option<Prim>,
    dir: Dir,
    kind: Kind,
}

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    i: usize,
    depth: usize,
    last: Option<Qual>,
}

fn proto_word(w: &str) -> Option<Prim> {
    let proto = |proto, kind| Some(Prim::Proto { proto, kind });
    match w {
        "tcp" => proto(6, None),
        "udp" => proto(17, None),
        "sctp" => proto(132, None),
        "esp" => proto(50, None),
        "gre" => proto(47, None),
        "icmp" => proto(1, Some(AddrKind::Ipv4)),
        "icmp6" | "icmpv6" => proto(58, Some(AddrKind::Ipv6)),
        "ip" => Some(Prim::Family(AddrKind::Ipv4)),
        "ip6" => Some(Prim::Family(AddrKind::Ipv6)),
        "arp" => Some(Prim::Arp),
        // InfiniBand flows, native or RoCEv2 (format 1.3 records).
        "ib" | "infiniband" => Some(Prim::RecordFlag(flags::INFINIBAND)),
        _ => None,
    }
}

fn kind_word(w: &str) -> Option<Kind> {
    Some(match w {
        "host" => Kind::Host,
        "net" => Kind::Net,
        "port" => Kind::Port,
        "portrange" => Kind::PortRange,
        _ => return None,
    })
}

fn tcp_flag(w: &str) -> Option<u8> {
    TCP_FLAGS.iter().find(|(n, _)| *n == w).map(|&(_, b)| b)
}

/// Edit distance counting a swap of neighbours as one edit (`pkst` is one from `pkts`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let mut v = (d[(i - 1) * w + j - 1] + (a[i - 1] != b[j - 1]) as usize)
                    .min(d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate closest to `w`, if close enough to be a likely typo.
fn nearest<'c>(w: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    if w.len() > 64 {
        return None;
    }
    let w = w.to_ascii_lowercase();
    let n = w.chars().count();
    let limit = |c: &str| (n.max(c.len()) / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| n.abs_diff(c.len()) <= limit(c))
        .map(|c| (distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= limit(c) && d < n)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map_or(String::new(), |s| format!(" (did you mean '{s}'?)"))
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

    fn lower(t: &Token<'_>) -> String {
        if t.kind == TokKind::Word {
            t.text.to_ascii_lowercase()
        } else {
            String::new()
        }
    }

    /// `and` and `or` have equal precedence and group left to right, as in tcpdump and
    /// argus `ra`: `a or b and c` is `(a or b) and c`. (`not` binds tightest.)
    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut acc = self.unary()?;
        loop {
            let t = self.peek();
            let and = t.kind == TokKind::And || Self::is_word(&t, "and");
            let or = t.kind == TokKind::Or || Self::is_word(&t, "or");
            if !and && !or {
                break;
            }
            self.bump();
            let rhs = self.unary()?;
            acc = match (acc, and) {
                (Expr::All(mut v), true) => {
                    v.push(rhs);
                    Expr::All(v)
                }
                (Expr::Any(mut v), false) => {
                    v.push(rhs);
                    Expr::Any(v)
                }
                (a, true) => Expr::All(vec![a, rhs]),
                (a, false) => Expr::Any(vec![a, rhs]),
            };
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let t = self.peek();
        let not = t.kind == TokKind::Not || Self::is_word(&t, "not");
        if not || t.kind == TokKind::LParen {
            if self.depth >= MAX_DEPTH {
                return Err(FilterError::new(
                    format!("expression nested too deeply (more than {MAX_DEPTH} levels of '(' and 'not')"),
                    t.pos,
                ));
            }
            self.bump();
            self.depth += 1;
            let e = if not {
                self.unary().map(|e| Expr::Not(Box::new(e)))
            } else {
                self.group(t)
            };
            self.depth -= 1;
            return e;
        }
        match t.kind {
            TokKind::Word if !Self::is_word(&t, "and") && !Self::is_word(&t, "or") => {
                self.bump();
                let last = self.last.take();
                self.primitive(t, last)
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

    /// The rest of `( expr )` once `open` is consumed.
    fn group(&mut self, open: Token<'a>) -> Result<Expr, FilterError> {
        let e = self.expr()?;
        let c = self.peek();
        if c.kind != TokKind::RParen {
            return Err(FilterError::new(
                format!("expected ')' to close the '(' at column {}", open.pos + 1),
                c.pos,
            ));
        }
        self.bump();
        Ok(e)
    }

    /// A primitive starting with the word `t` (consumed); `last` is the previous
    /// address-like primitive's qualifiers. Sets `self.last` when this one is address-like.
    fn primitive(&mut self, t: Token<'a>, last: Option<Qual>) -> Result<Expr, FilterError> {
        let w = t.text.to_ascii_lowercase();
        let prim = |p| Ok(Expr::Prim(p));
        if let Some(p) = proto_word(&w) {
            // A protocol qualifier: `tcp port 80`, `udp src port 53`, `ip proto 89`.
            let k = self.peek();
            let kw = Self::lower(&k);
            if kw == "proto" && matches!(p, Prim::Family(_)) {
                self.bump();
                return Ok(Expr::All(vec![Expr::Prim(p), Expr::Prim(self.proto()?)]));
            }
            if kind_word(&kw).is_some() || kw == "src" || kw == "dst" {
                self.bump();
                return self.qualified(Some(p), k);
            }
            return prim(p);
        }
        match w.as_str() {
            "proto" => return self.proto().map(Expr::Prim),
            "src" | "dst" => return self.qualified(None, t),
            "ether" => return self.ether(t),
            "vlan" | "mpls" => return self.tag(t),
            // Alone a flag word, with a comparison the handshake time.
            "synack" if !self.at_value() => return prim(Prim::SynAck),
            "ecn" => return prim(Prim::RecordFlag(flags::ECN_CE)),
            _ => {}
        }
        if kind_word(&w).is_some() {
            return self.qualified(None, t);
        }
        if let Some(e) = self.flag(Dir::Either, &w)? {
            return Ok(e);
        }
        if let Some(&(_, v4, v6)) = ICMP_TYPES.iter().find(|(n, ..)| *n == w) {
            return prim(Prim::IcmpType { v4, v6 });
        }
        if let Some(def) = field::lookup(&w) {
            return self.predicate(Dir::Either, def, t).map(Expr::Prim);
        }
        // A bare id: the last qualifiers again, or a host.
        let q = last.unwrap_or(Qual {
            proto: None,
            dir: Dir::Either,
            kind: Kind::Host,
        });
        let save = self.i;
        if let Ok(e) = self.endpoint(q, "", t) {
            return Ok(e);
        }
        self.i = save;
        Err(self.unknown(t))
    }

    /// `[src|dst] host|net|port|portrange ID` or `src`/`dst` with a field or flag, once the
    /// first word (`t`) is consumed; `proto` is a protocol qualifier before it.
    fn qualified(&mut self, proto: Option<Prim>, t: Token<'a>) -> Result<Expr, FilterError> {
        let w = t.text.to_ascii_lowercase();
        match kind_word(&w) {
            Some(kind) => {
                let v = self.bump();
                let dir = Dir::Either;
                self.endpoint(Qual { proto, dir, kind }, &w, v)
            }
            None => {
                let dir = if w == "src" { Dir::Src } else { Dir::Dst };
                let e = self.directed(dir, t, proto.clone())?;
                Ok(match (proto, e) {
                    // Address-like primitives carry the protocol already.
                    (_, e @ Expr::All(_)) | (None, e) => e,
                    (Some(p), e) => Expr::All(vec![Expr::Prim(p), e]),
                })
            }
        }
    }

    fn unknown(&self, t: Token<'a>) -> FilterError {
        if self.at_comparison() {
            let names = field::all_names();
            let hint = match nearest(t.text, names.iter().copied()) {
                Some(s) => format!(" (did you mean '{s}'?)"),
                None => format!("; fields: {}", names.join(", ")),
            };
            return FilterError::new(format!("unknown field '{}'{hint}", t.text), t.pos);
        }
        let mut words: Vec<&str> = KEYWORDS.to_vec();
        words.extend([
            "tcp", "udp", "sctp", "esp", "gre", "icmp", "icmp6", "ip", "ip6", "arp",
        ]);
        words.extend(TCP_FLAGS.iter().map(|(n, _)| *n));
        words.extend(ICMP_TYPES.iter().map(|(n, ..)| *n));
        words.extend(field::all_names());
        let hint = match nearest(t.text, words) {
            Some(s) => format!(" (did you mean '{s}'?)"),
            None => format!(" (expected {PRIMITIVES})"),
        };
        FilterError::new(
            format!("unknown filter primitive '{}'{hint}", t.text),
            t.pos,
        )
    }

    /// True when the next token is a comparison operator.
    fn at_comparison(&self) -> bool {
        self.comparison().is_some()
    }

    fn comparison(&self) -> Option<Op> {
        let t = self.peek();
        Some(match t.kind {
            TokKind::Eq => Op::Eq,
            TokKind::Ne => Op::Ne,
            TokKind::Gt => Op::Gt,
            TokKind::Ge => Op::Ge,
            TokKind::Lt => Op::Lt,
            TokKind::Le => Op::Le,
            TokKind::Word => Op::from_word(t.text)?,
            _ => return None,
        })
    }

    /// True when the next token starts a comparison or is a bare number (argus `ttl 1`).
    fn at_value(&self) -> bool {
        let t = self.peek();
        self.at_comparison()
            || (t.kind == TokKind::Word
                && t.text
                    .starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')))
    }

    /// Flag words: TCP flags, `frag` and the counters `retrans`, `outoforder`, `winshut`,
    /// `loss` (unless a comparison follows, which makes them field predicates).
    fn flag(&mut self, dir: Dir, w: &str) -> Result<Option<Expr>, FilterError> {
        if let Some(bit) = tcp_flag(w) {
            return Ok(Some(Expr::Prim(Prim::TcpFlags(dir, bit))));
        }
        if (w == "frag" || COUNTER_FLAGS.contains(&w)) && !self.at_value() {
            if w == "frag" {
                return Ok(Some(Expr::Prim(Prim::Frag(dir))));
            }
            let Some((def, operand)) = field::lookup(w).and_then(|d| Some((d, d.operand(dir)?)))
            else {
                return Ok(None);
            };
            return Ok(Some(Expr::Prim(Prim::Cmp(Cmp {
                operand,
                test: Test::Int(Op::Gt, 0),
                dir,
                name: def.name(),
                unit: Unit::Count,
            }))));
        }
        Ok(None)
    }

    /// After `src`/`dst` (`t`): an address-like primitive, a field predicate or a flag.
    fn directed(
        &mut self,
        dir: Dir,
        t: Token<'a>,
        proto: Option<Prim>,
    ) -> Result<Expr, FilterError> {
        let k = self.peek();
        let w = Self::lower(&k);
        if let Some(kind) = kind_word(&w) {
            self.bump();
            let v = self.bump();
            return self.endpoint(Qual { proto, dir, kind }, &w, v);
        }
        if k.kind == TokKind::Word {
            if let Some(e) = self.flag_after_bump(dir, &w)? {
                return Ok(e);
            }
            if let Some(def) = field::lookup(&w) {
                self.bump();
                return self.predicate(dir, def, k).map(Expr::Prim);
            }
            if parse_host(k.text).is_some() {
                self.bump();
                return self.endpoint(
                    Qual {
                        proto,
                        dir,
                        kind: Kind::Host,
                    },
                    "host",
                    k,
                );
            }
            let known = proto_word(&w).is_some()
                || KEYWORDS.contains(&w.as_str())
                || ICMP_TYPES.iter().any(|(n, ..)| *n == w);
            if known {
                return Err(FilterError::new(
                    format!("'{}' cannot follow '{}'", k.text, t.text),
                    k.pos,
                ));
            }
        }
        let mut words: Vec<&str> = vec!["host", "net", "port", "portrange", "frag"];
        words.extend(field::directional_names());
        words.extend(TCP_FLAGS.iter().map(|(n, _)| *n));
        Err(FilterError::new(
            format!(
                "expected 'host', 'net', 'port', 'portrange', a field (pkts, bytes, ttl, …) or a \
                 flag (syn, retrans, …) after '{}'{}",
                t.text,
                did_you_mean(
                    (k.kind == TokKind::Word)
                        .then(|| nearest(k.text, words))
                        .flatten()
                )
            ),
            k.pos,
        ))
    }

    /// `flag` for the next token, consuming it when it is one.
    fn flag_after_bump(&mut self, dir: Dir, w: &str) -> Result<Option<Expr>, FilterError> {
        let save = self.i;
        self.bump();
        match self.flag(dir, w)? {
            Some(e) => Ok(Some(e)),
            None => {
                self.i = save;
                Ok(None)
            }
        }
    }

    /// `[src|dst] NAME OP VALUE` once NAME (`t`) is consumed.
    fn predicate(&mut self, dir: Dir, def: Def, t: Token<'a>) -> Result<Prim, FilterError> {
        let Some(operand) = def.operand(dir) else {
            let which = if dir == Dir::Src { "src" } else { "dst" };
            return Err(FilterError::new(
                format!(
                    "'{}' has no {which} form ({which} applies to {})",
                    t.text,
                    field::directional_names().join(", ")
                ),
                t.pos,
            ));
        };
        let op_tok = self.peek();
        let op = match self.comparison() {
            Some(op) => {
                self.bump();
                op
            }
            None if self.at_value() => Op::Eq,
            None => {
                return Err(FilterError::new(
                    format!("expected a comparison ({COMPARISONS}) after '{}'", t.text),
                    op_tok.pos,
                ))
            }
        };
        let v = self.bump();
        let unit = def.unit();
        let what = match unit {
            Unit::Count => "a number",
            Unit::Secs => "a number of seconds",
            Unit::Millis => "a number of milliseconds",
            Unit::Real => "a number (percent)",
            Unit::Name(_) => "a name",
        };
        let after = if v.pos == op_tok.pos {
            t.text
        } else {
            op_tok.text
        };
        let expected = || FilterError::new(format!("expected {what} after '{after}'"), v.pos);
        if v.kind != TokKind::Word {
            return Err(expected());
        }
        let test = field::test(unit, op, v.text).map_err(|e| match e {
            LitError::NotNumber => expected(),
            LitError::Ordered => FilterError::new(
                format!("'{}' can only be compared with eq or ne", def.name()),
                op_tok.pos,
            ),
            LitError::UnknownName(all) => {
                let hint = match nearest(v.text, all.iter().copied()) {
                    Some(s) => format!(" (did you mean '{s}'?)"),
                    None => format!(" (expected one of {})", all.join(", ")),
                };
                FilterError::new(format!("unknown {} '{}'{hint}", def.name(), v.text), v.pos)
            }
        })?;
        Ok(Prim::Cmp(Cmp {
            operand,
            test,
            dir,
            name: def.name(),
            unit,
        }))
    }

    fn proto(&mut self) -> Result<Prim, FilterError> {
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
            Some(proto) => Ok(Prim::Proto { proto, kind: None }),
            None => Err(FilterError::new(
                "expected a protocol number (0-255) or name after 'proto'",
                a.pos,
            )),
        }
    }

    /// `ether host|src|dst [host] MAC`, `ether proto TYPE`, once `ether` (`t`) is consumed.
    fn ether(&mut self, t: Token<'a>) -> Result<Expr, FilterError> {
        let k = self.bump();
        let dir = match Self::lower(&k).as_str() {
            "host" => Dir::Either,
            "src" => Dir::Src,
            "dst" => Dir::Dst,
            "proto" => {
                let v = self.bump();
                let w = Self::lower(&v);
                let ty = match w.as_str() {
                    "ip" => Some(0x0800),
                    "ip6" | "ipv6" => Some(0x86dd),
                    "arp" => Some(0x0806),
                    "rarp" => Some(0x8035),
                    "lldp" => Some(0x88cc),
                    _ => match w.strip_prefix("0x") {
                        Some(h) => u16::from_str_radix(h, 16).ok(),
                        None => w.parse().ok(),
                    },
                };
                return ty
                    .map(|ty| Expr::Prim(Prim::EtherProto(ty)))
                    .ok_or_else(|| {
                        FilterError::new(
                            "expected an ethertype (a number like 0x0806, or ip, ip6, arp, rarp, \
                         lldp) after 'proto'",
                            v.pos,
                        )
                    });
            }
            _ => {
                return Err(FilterError::new(
                    format!(
                        "expected 'host', 'src', 'dst' or 'proto' after '{}'",
                        t.text
                    ),
                    k.pos,
                ))
            }
        };
        let kw = format!("ether {}", Self::lower(&k));
        if dir != Dir::Either && Self::is_word(&self.peek(), "host") {
            self.bump();
        }
        let v = self.bump();
        self.endpoint(
            Qual {
                proto: None,
                dir,
                kind: Kind::Ether,
            },
            &kw,
            v,
        )
    }

    /// `vlan [ID]`, `mpls [LABEL]` or a comparison on them, once the word (`t`) is consumed.
    fn tag(&mut self, t: Token<'a>) -> Result<Expr, FilterError> {
        let vlan = t.text.eq_ignore_ascii_case("vlan");
        let Some((def, operand)) =
            field::lookup(t.text).and_then(|d| Some((d, d.operand(Dir::Either)?)))
        else {
            return Err(self.unknown(t));
        };
        if self.at_comparison() {
            return self.predicate(Dir::Either, def, t).map(Expr::Prim);
        }
        let v = self.peek();
        if v.kind != TokKind::Word || !v.text.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(Expr::Prim(if vlan { Prim::Vlan } else { Prim::Mpls }));
        }
        self.bump();
        let max = if vlan { 4095 } else { 0xf_ffff };
        let id = match v.text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                let what = if vlan {
                    "a VLAN id (1-4095; untagged is 'not vlan')"
                } else {
                    "an MPLS label (1-1048575)"
                };
                return Err(FilterError::new(
                    format!("expected {what} after '{}'", t.text),
                    v.pos,
                ));
            }
        };
        Ok(Expr::Prim(Prim::Cmp(Cmp {
            operand,
            test: Test::Int(Op::Eq, id),
            dir: Dir::Either,
            name: def.name(),
            unit: Unit::Count,
        })))
    }

    /// The id `v` of an address-like primitive with qualifiers `q`; `kw` names the keyword in
    /// messages. Remembers `q` for a following bare id.
    fn endpoint(&mut self, q: Qual, kw: &str, v: Token<'a>) -> Result<Expr, FilterError> {
        let word = (v.kind == TokKind::Word).then_some(v.text);
        let err = |m: &str| FilterError::new(format!("expected {m} after '{kw}'"), v.pos);
        let p = match q.kind {
            Kind::Host => word
                .and_then(parse_host)
                .map(|h| Prim::Host(q.dir, h))
                .ok_or_else(|| err("an IPv4, IPv6 or MAC address"))?,
            Kind::Ether => word
                .and_then(parse_mac)
                .map(|m| Prim::Host(q.dir, HostAddr::Mac(m)))
                .ok_or_else(|| err("a MAC address"))?,
            Kind::Net => {
                let w = word.ok_or_else(|| err(NET_EXPECTED))?;
                let mut net = parse_net(w, v.pos, kw)?;
                if Self::is_word(&self.peek(), "mask") {
                    let m = self.bump();
                    net = self.mask(net, w, m)?;
                }
                Prim::Net(q.dir, net)
            }
            Kind::Port => match word.map(port_or_range) {
                Some(Ok((lo, hi))) if lo == hi => Prim::Port(q.dir, lo),
                Some(Ok((lo, hi))) => Prim::PortRange(q.dir, lo, hi),
                Some(Err(e)) => return Err(FilterError::new(e, v.pos)),
                None => return Err(err("a port number")),
            },
            Kind::PortRange => match word.map(port_range) {
                Some(Some(Ok((lo, hi)))) => Prim::PortRange(q.dir, lo, hi),
                Some(Some(Err(e))) => return Err(FilterError::new(e, v.pos)),
                _ => return Err(err("a port range like 1024-65535")),
            },
        };
        let e = match &q.proto {
            Some(proto) => Expr::All(vec![Expr::Prim(proto.clone()), Expr::Prim(p)]),
            None => Expr::Prim(p),
        };
        self.last = Some(q);
        Ok(e)
    }

    /// `net A mask M` once `mask` (`m`) is consumed; `a` is the network as written.
    fn mask(&mut self, net: Net, a: &str, m: Token<'a>) -> Result<Net, FilterError> {
        if net.kind != AddrKind::Ipv4 || a.contains('/') {
            return Err(FilterError::new(
                "'mask' goes after an IPv4 network written without '/len'",
                m.pos,
            ));
        }
        let v = self.bump();
        let mask = (v.kind == TokKind::Word)
            .then(|| v.text.parse::<Ipv4Addr>().ok())
            .flatten()
            .ok_or_else(|| {
                FilterError::new("expected a netmask like 255.255.0.0 after 'mask'", v.pos)
            })?;
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(FilterError::new(
                format!("netmask {mask} is not contiguous"),
                v.pos,
            ));
        }
        Ok(Net::new(
            AddrKind::Ipv4,
            net.addr,
            bits.leading_ones() as u8,
        ))
    }
}

const NET_EXPECTED: &str = "a network (like 10.0.0.0/8 or 2001:db8::/32)";

fn parse_port(w: &str) -> Option<u16> {
    w.parse::<u16>()
        .ok()
        .or_else(|| port_by_name(&w.to_ascii_lowercase()))
}

/// `LO-HI`: `None` if not of that shape, an error if backwards.
fn port_range(w: &str) -> Option<Result<(u16, u16), String>> {
    let (lo, hi) = w.split_once('-')?;
    let (lo, hi) = (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?);
    Some(if lo <= hi {
        Ok((lo, hi))
    } else {
        Err(format!("port range {lo}-{hi} ends below its start"))
    })
}

/// A port (number or name) or, as argus allows after `port`, a range.
fn port_or_range(w: &str) -> Result<(u16, u16), String> {
    if let Some(p) = parse_port(w) {
        return Ok((p, p));
    }
    port_range(w).unwrap_or_else(|| Err("expected a port number after 'port'".into()))
}

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

/// tcpdump's short IPv4 networks: `10` is 10.0.0.0/8, `172.16` is 172.16.0.0/16.
pub(crate) fn short_v4(s: &str) -> Option<([u8; 4], u8)> {
    let mut b = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 3 || part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        b[n] = part.parse().ok()?;
        n += 1;
    }
    Some((b, 8 * n as u8))
}

/// `A/len`, `A` (a host network) or a short IPv4 network. `pos` is the word's offset and `kw`
/// the keyword before it, for errors.
fn parse_net(s: &str, pos: usize, kw: &str) -> Result<Net, FilterError> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some((l, pos + a.len() + 1))),
        None => (s, None),
    };
    let (kind, bytes, max, implied) = if let Ok(v4) = a.parse::<Ipv4Addr>() {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&v4.octets());
        (AddrKind::Ipv4, b, 32, 32)
    } else if let Ok(v6) = a.parse::<Ipv6Addr>() {
        (AddrKind::Ipv6, v6.octets(), 128, 128)
    } else if let Some((v4, implied)) = short_v4(a) {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&v4);
        (AddrKind::Ipv4, b, 32, implied)
    } else {
        return Err(FilterError::new(
            format!("expected {NET_EXPECTED} after '{kw}'"),
            pos,
        ));
    };
    let prefix = match len {
        None => implied,
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
    fn new_endpoints() {
        assert_eq!(canon("portrange 1024-65535"), "portrange 1024-65535");
        assert_eq!(canon("src portrange 0-0"), "src portrange 0-0");
        assert_eq!(canon("dst port 53-215"), "dst portrange 53-215");
        assert_eq!(canon("port ftp-data"), "port 20");
        assert_eq!(canon("net 10"), "net 10.0.0.0/8");
        assert_eq!(canon("net 172.16"), "net 172.16.0.0/16");
        assert_eq!(canon("net 192.168.1"), "net 192.168.1.0/24");
        assert_eq!(canon("net 10.1/16"), "net 10.1.0.0/16");
        assert_eq!(
            canon("src net 192.168.77.1 mask 255.255.255.0"),
            "src net 192.168.77.0/24"
        );
        assert_eq!(canon("net 10.0.0.0 mask 0.0.0.0"), "net 0.0.0.0/0");
        assert_eq!(canon("net 172.16 mask 255.240.0.0"), "net 172.16.0.0/12");
        assert_eq!(canon("ether host 0:1:2:3:4:5"), "host 00:01:02:03:04:05");
        assert_eq!(canon("ether src 0:1:2:3:4:5"), "src host 00:01:02:03:04:05");
        assert_eq!(
            canon("ether dst host 0:1:2:3:4:5"),
            "dst host 00:01:02:03:04:05"
        );
        assert_eq!(canon("ether proto arp"), "ether proto 0x0806");
        assert_eq!(canon("ether proto 0x86DD"), "ether proto 0x86dd");
        assert_eq!(canon("ether proto 2048"), "ether proto 0x0800");
        // Bare ids: tcpdump's default 'host', and the previous qualifiers again.
        assert_eq!(canon("10.0.0.1"), "host 10.0.0.1");
        assert_eq!(canon("src 10.0.0.1"), "src host 10.0.0.1");
        assert_eq!(canon("port 80 or 443"), "(port 80 or port 443)");
        assert_eq!(
            canon("dst port 80 or 443 or 8000-8080"),
            "(dst port 80 or dst port 443 or dst portrange 8000-8080)"
        );
        assert_eq!(
            canon("not host 10.0.0.1 and 10.0.0.2"),
            "(not host 10.0.0.1 and host 10.0.0.2)"
        );
        assert_eq!(
            canon("net 10 or (172.16 or 192.168)"),
            "(net 10.0.0.0/8 or (net 172.16.0.0/16 or net 192.168.0.0/16))"
        );
        assert_eq!(
            canon("ether src 0:1:2:3:4:5 or 0:1:2:3:4:6"),
            "(src host 00:01:02:03:04:05 or src host 00:01:02:03:04:06)"
        );
        // Another primitive in between forgets the qualifiers.
        assert!(err("port 80 or tcp or 443")
            .0
            .starts_with("unknown filter primitive '443'"));
    }

    #[test]
    fn protocol_qualifiers() {
        assert_eq!(canon("tcp port 80"), "(proto 6 and port 80)");
        assert_eq!(canon("udp src port 53"), "(proto 17 and src port 53)");
        assert_eq!(canon("ip host 10.0.0.1"), "(ip and host 10.0.0.1)");
        assert_eq!(canon("ip proto 89"), "(ip and proto 89)");
        assert_eq!(canon("tcp src syn"), "(proto 6 and src syn)");
        assert_eq!(
            canon("tcp dst port ftp or ftp-data or domain"),
            "((proto 6 and dst port 21) or (proto 6 and dst port 20) or (proto 6 and dst port 53))"
        );
        assert_eq!(
            canon("tcp src 10.0.0.1 or 10.0.0.2"),
            "((proto 6 and src host 10.0.0.1) or (proto 6 and src host 10.0.0.2))"
        );
    }

    #[test]
    fn tags_flags_and_icmp() {
        assert_eq!(canon("vlan"), "vlan");
        assert_eq!(canon("vlan 10"), "vlan eq 10");
        assert_eq!(canon("vlan gt 100"), "vlan gt 100");
        assert_eq!(canon("mpls"), "mpls");
        assert_eq!(canon("mpls 1048575"), "mpls eq 1048575");
        assert_eq!(canon("vlan and tcp"), "(vlan and proto 6)");
        assert_eq!(canon("syn"), "syn");
        assert_eq!(canon("src RST"), "src rst");
        assert_eq!(canon("dst reset"), "dst rst");
        assert_eq!(canon("push or psh"), "(push or push)");
        assert_eq!(canon("synack"), "synack");
        assert_eq!(canon("ecn"), "flag 0x10");
        assert_eq!(canon("frag"), "frag");
        assert_eq!(canon("src frag"), "src frag");
        assert_eq!(canon("retrans"), "retrans gt 0");
        assert_eq!(canon("dst outoforder"), "dst ooo gt 0");
        assert_eq!(canon("src winshut"), "src winshut gt 0");
        assert_eq!(canon("loss"), "loss gt 0");
        assert_eq!(canon("retrans ge 3"), "retrans ge 3");
        assert_eq!(canon("frag gt 2"), "frags gt 2");
        assert_eq!(canon("echo"), "icmptype 8/128");
        assert_eq!(canon("srcquench"), "icmptype 4/-");
        assert_eq!(
            canon("timexed or timxceed"),
            "(icmptype 11/3 or icmptype 11/3)"
        );
    }

    #[test]
    fn field_predicates() {
        assert_eq!(canon("pkts gt 10"), "pkts gt 10");
        assert_eq!(canon("pkts > 10"), "pkts gt 10");
        assert_eq!(canon("pkts>10"), "pkts gt 10");
        assert_eq!(canon("src bytes lt 1"), "src bytes lt 1");
        assert_eq!(canon("dst bytes <= 1"), "dst bytes le 1");
        assert_eq!(canon("dur ge 60"), "dur ge 60");
        assert_eq!(canon("dur >= 0.5"), "dur ge 0.5");
        assert_eq!(canon("tcprtt gt 0.01"), "tcprtt gt 0.01");
        assert_eq!(canon("ploss gt 0"), "ploss gt 0");
        assert_eq!(canon("src jit gt 5"), "src jit gt 5");
        assert_eq!(canon("state eq RST"), "state eq RST");
        assert_eq!(canon("state != con"), "state ne CON");
        assert_eq!(canon("cause = idle"), "cause eq idle");
        assert_eq!(canon("ttl 1"), "ttl eq 1");
        assert_eq!(canon("src ttl lte 64"), "src ttl le 64");
        assert_eq!(canon("appbytes == 0"), "appbytes eq 0");
        assert_eq!(canon("sbytes ne 0x10"), "sbytes ne 16");
        assert_eq!(canon("pkts gt 2.5"), "pkts gt 2");
        assert_eq!(canon("pkts lt 2.5"), "pkts le 2");
        assert_eq!(canon("pkts eq 2.5"), "pkts is never");
        assert_eq!(canon("pkts gt -1"), "pkts is present");
        assert_eq!(canon("jitter gt 0.25"), "jit gt 0.25");
        assert_eq!(canon("window eq 0"), "win eq 0");
        assert_eq!(canon("icmptype eq 3"), "icmptype eq 3");
        assert_eq!(canon("Pkts GT 10"), "pkts gt 10");
        assert_eq!(
            canon("pkts gt 10 and not (src bytes lt 1 or dst ttl eq 64)"),
            "(pkts gt 10 and not (src bytes lt 1 or dst ttl eq 64))"
        );
    }

    #[test]
    fn precedence_and_associativity() {
        // Equal precedence, left to right (tcpdump, ra).
        assert_eq!(
            canon("tcp or udp and icmp"),
            "((proto 6 or proto 17) and proto 1/ip4)"
        );
        assert_eq!(
            canon("tcp and udp or icmp"),
            "((proto 6 and proto 17) or proto 1/ip4)"
        );
        assert_eq!(
            canon("tcp || udp && ip6"),
            "((proto 6 or proto 17) and ip6)"
        );
        assert_eq!(
            canon("tcp and udp or icmp and ip"),
            "(((proto 6 and proto 17) or proto 1/ip4) and ip)"
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
        assert_eq!(
            err("net foo"),
            (
                "expected a network (like 10.0.0.0/8 or 2001:db8::/32) after 'net'".into(),
                4
            )
        );
        assert_eq!(err("src bogus").1, 4);
        assert!(err("src bogus").0.starts_with(
            "expected 'host', 'net', 'port', 'portrange', a field (pkts, bytes, ttl, …) or a \
             flag (syn, retrans, …) after 'src'"
        ));
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
        assert_eq!(err("tcp and > 10").1, 8);
    }

    #[test]
    fn new_errors_say_what_was_expected() {
        assert_eq!(
            err("pkts"),
            (
                format!("expected a comparison ({COMPARISONS}) after 'pkts'"),
                4
            )
        );
        assert_eq!(err("tcp and pkts and udp").1, 13);
        assert_eq!(err("pkts gt"), ("expected a number after 'gt'".into(), 7));
        assert_eq!(err("pkts > ten"), ("expected a number after '>'".into(), 7));
        assert_eq!(
            err("dur ge 1m"),
            ("expected a number of seconds after 'ge'".into(), 7)
        );
        assert_eq!(
            err("src jit gt x"),
            ("expected a number of milliseconds after 'gt'".into(), 11)
        );
        assert_eq!(
            err("pkst gt 10"),
            ("unknown field 'pkst' (did you mean 'pkts'?)".into(), 0)
        );
        assert_eq!(
            err("tcprt > 0.1").0,
            "unknown field 'tcprt' (did you mean 'tcprtt'?)"
        );
        assert!(err("zzzzzz > 1")
            .0
            .starts_with("unknown field 'zzzzzz'; fields: pkts, bytes"));
        assert_eq!(
            err("retrnas").0,
            "unknown filter primitive 'retrnas' (did you mean 'retrans'?)"
        );
        assert!(err("qqqqqq")
            .0
            .starts_with("unknown filter primitive 'qqqqqq' (expected tcp,"));
        assert!(err("src pktz gt 1").0.ends_with("(did you mean 'pkts'?)"));
        assert_eq!(
            err("state gt RST"),
            ("'state' can only be compared with eq or ne".into(), 6)
        );
        let (m, p) = err("state eq CONN");
        assert_eq!(p, 9);
        assert_eq!(m, "unknown state 'CONN' (did you mean 'CON'?)");
        let (m, p) = err("state eq XXXXXX");
        assert_eq!(p, 9);
        assert!(m.starts_with("unknown state 'XXXXXX' (expected one of REQ, ACC,"));
        assert!(m.contains("URH"));
        assert_eq!(
            err("src dur gt 1"),
            (
                format!(
                    "'dur' has no src form (src applies to {})",
                    field::directional_names().join(", ")
                ),
                4
            )
        );
        assert_eq!(err("dst vlan 3").1, 4);
        assert_eq!(err("src echo"), ("'echo' cannot follow 'src'".into(), 4));
        assert_eq!(err("vlan 0").1, 5);
        assert!(err("vlan 4096").0.contains("1-4095"));
        assert!(err("mpls 1048576").0.contains("MPLS label"));
        assert_eq!(
            err("portrange 80"),
            (
                "expected a port range like 1024-65535 after 'portrange'".into(),
                10
            )
        );
        assert_eq!(
            err("port 9-1"),
            ("port range 9-1 ends below its start".into(), 5)
        );
        assert_eq!(
            err("net 10.0.0.0/8 mask 255.0.0.0"),
            (
                "'mask' goes after an IPv4 network written without '/len'".into(),
                15
            )
        );
        assert_eq!(
            err("net 10.0.0.0 mask 255.0.255.0"),
            ("netmask 255.0.255.0 is not contiguous".into(), 18)
        );
        assert_eq!(err("net 10.0.0.0 mask x").1, 18);
        assert_eq!(err("ether 1:2:3:4:5:6").1, 6);
        assert_eq!(
            err("ether src 10.0.0.1"),
            ("expected a MAC address after 'ether src'".into(), 10)
        );
        assert_eq!(err("ether proto foo").1, 12);
        let deep = "(".repeat(MAX_DEPTH) + "tcp" + &")".repeat(MAX_DEPTH);
        assert!(parse(&deep).is_ok());
        let deeper = "(".repeat(MAX_DEPTH + 1) + "tcp" + &")".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&deeper).1, MAX_DEPTH);
        assert!(err(&deeper).0.starts_with("expression nested too deeply"));
        assert_eq!(err(&"not ".repeat(100_000)).1, 4 * MAX_DEPTH);
    }

    #[test]
    fn suggestions() {
        assert_eq!(nearest("pkst", ["pkts", "bytes"]), Some("pkts"));
        assert_eq!(nearest("x", ["pkts", "bytes"]), None);
        assert_eq!(nearest("tpc", ["tcp", "udp"]), Some("tcp"));
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", "acb"), 1);
        assert_eq!(distance("héllo", "hello"), 1);
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
