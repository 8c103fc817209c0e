//! Field predicates (`pkts gt 10`, `src jit gt 5`, `state eq RST`): which record quantity a
//! filter field names, in what unit its literal is written, and the per-record comparison.
//!
//! Values are taken with [`crate::fields::value`], so a predicate compares exactly what
//! `tapflow read -s` prints under the same name; the unit comes from the printed kind (seconds,
//! milliseconds, counts). The filter only adds argus's `[src|dst] NAME` forms, a few derived
//! quantities the printer has no column for, and "absent" values (see [`Guard`]).

use std::fmt;

use tapflow_record::{icmp_state, AddrKind, Cause, DirStats, FlowRecord, FlowState};

use crate::fields::{self, Field, Value};

use super::ast::Dir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
}

/// When a value exists. An absent value fails every comparison (`ne` included), so
/// `dst ttl lt 5` does not select flows whose responder never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Always,
    /// That side sent at least one packet (TTL, TOS, jitter of a silent side mean nothing).
    Sent(Side),
    /// As `Sent`, and the flow is TCP (windows).
    TcpSent(Side),
    /// 0 means "not measured" (handshake times).
    NonZero,
}

/// One quantity of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acc {
    /// A printed field (`crate::fields`).
    Field(Field, Guard),
    /// TCP segments advertising a zero window.
    ZeroWin(Side),
    /// IP fragments sent.
    Frags(Side),
    /// Percent of packets lost before the tap: loss / (pkts + loss) × 100; `None` = both ways.
    Ploss(Option<Side>),
    /// ICMP/ICMPv6 type and code of the initiator's message (absent for other protocols).
    IcmpType,
    IcmpCode,
}

/// What a predicate compares: one quantity, the sum of two (counters without `src`/`dst`),
/// or either of two (gauges without `src`/`dst`, the two VLAN tags, the two MPLS labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    One(Acc),
    Sum(Acc, Acc),
    Either(Acc, Acc),
}

/// How a field's literal is written and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Integer count (exact comparison).
    Count,
    /// Seconds in the expression, whole nanoseconds in the record (exact comparison).
    Secs,
    /// Milliseconds in the expression, fractional nanoseconds in the record.
    Millis,
    /// A real number as is (percent).
    Real,
    /// One of a fixed set of names (`state`, `cause`, `observed`).
    Name(Field),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    /// `eq ne gt ge gte lt le lte` (any case) or the symbol tokens, mapped by the parser.
    pub fn from_word(w: &str) -> Option<Op> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" | "gte" => Op::Ge,
            "lt" => Op::Lt,
            "le" | "lte" => Op::Le,
            _ => return None,
        })
    }

    #[inline]
    fn holds<T: PartialOrd>(self, v: T, t: T) -> bool {
        match self {
            Op::Eq => v == t,
            Op::Ne => v != t,
            Op::Gt => v > t,
            Op::Ge => v >= t,
            Op::Lt => v < t,
            Op::Le => v <= t,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// An `f64` compared bitwise, so the filter tree stays `Eq`.
#[derive(Clone, Copy, Debug)]
pub struct Real(pub f64);

impl PartialEq for Real {
    fn eq(&self, o: &Real) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}
impl Eq for Real {}

/// The comparison with its threshold already in the record's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// Decided at parse time (`pkts gt -1`, `pkts eq 1.5`) for every present value.
    Const(bool),
    Int(Op, u64),
    Float(Op, Real),
    Name {
        eq: bool,
        name: &'static str,
    },
}

/// A compiled field predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmp {
    pub operand: Operand,
    pub test: Test,
    /// For display: the qualifier, the field name and its unit.
    pub dir: Dir,
    pub name: &'static str,
    pub unit: Unit,
}

#[derive(Clone, Copy, Debug)]
enum Num {
    Int(u64),
    Float(f64),
    Name(&'static str),
    Absent,
}

#[inline]
fn stats(r: &FlowRecord, s: Side) -> &DirStats {
    match s {
        Side::Src => &r.src,
        Side::Dst => &r.dst,
    }
}

impl Guard {
    #[inline]
    fn holds(self, r: &FlowRecord) -> bool {
        match self {
            Guard::Always | Guard::NonZero => true,
            Guard::Sent(s) => stats(r, s).pkts > 0,
            Guard::TcpSent(s) => is_tcp(r) && stats(r, s).pkts > 0,
        }
    }
}

#[inline]
pub fn is_tcp(r: &FlowRecord) -> bool {
    r.addr_kind != AddrKind::L2 && r.proto == 6
}

impl Acc {
    #[inline]
    fn get(self, r: &FlowRecord) -> Num {
        match self {
            Acc::Field(f, g) => {
                if !g.holds(r) {
                    return Num::Absent;
                }
                match (fields::value(f, r), g) {
                    (Value::U64(0) | Value::Secs(0), Guard::NonZero) => Num::Absent,
                    (Value::U64(v) | Value::Secs(v), _) => Num::Int(v),
                    (Value::Port(p) | Value::Hex16(p), _) => Num::Int(p as u64),
                    (Value::Millis(v), _) if v.is_finite() => Num::Float(v),
                    (Value::Str(s), _) => Num::Name(s),
                    _ => Num::Absent,
                }
            }
            Acc::ZeroWin(s) => Num::Int(stats(r, s).zero_win as u64),
            Acc::Frags(s) => Num::Int(stats(r, s).frags as u64),
            Acc::Ploss(side) => {
                let (loss, pkts) = match side {
                    Some(s) => (stats(r, s).loss_pkts as u64, stats(r, s).pkts),
                    None => (
                        r.src.loss_pkts as u64 + r.dst.loss_pkts as u64,
                        r.src.pkts.saturating_add(r.dst.pkts),
                    ),
                };
                let all = pkts.saturating_add(loss);
                if all == 0 {
                    Num::Absent
                } else {
                    Num::Float(loss as f64 * 100.0 / all as f64)
                }
            }
            Acc::IcmpType if r.is_icmp() => Num::Int((r.sport >> 8) as u64),
            Acc::IcmpCode if r.is_icmp() => Num::Int((r.sport & 0xff) as u64),
            Acc::IcmpType | Acc::IcmpCode => Num::Absent,
        }
    }
}

impl Test {
    #[inline]
    fn holds(self, n: Num) -> bool {
        match (self, n) {
            (_, Num::Absent) => false,
            (Test::Const(b), _) => b,
            (Test::Int(op, t), Num::Int(v)) => op.holds(v, t),
            (Test::Float(op, t), Num::Float(v)) => op.holds(v, t.0),
            (Test::Name { eq, name }, Num::Name(s)) => (s == name) == eq,
            _ => false,
        }
    }
}

impl Cmp {
    #[inline]
    pub fn matches(&self, r: &FlowRecord) -> bool {
        match self.operand {
            Operand::One(a) => self.test.holds(a.get(r)),
            Operand::Either(a, b) => self.test.holds(a.get(r)) || self.test.holds(b.get(r)),
            Operand::Sum(a, b) => self.test.holds(match (a.get(r), b.get(r)) {
                (Num::Int(x), Num::Int(y)) => Num::Int(x.saturating_add(y)),
                (Num::Absent, n) | (n, Num::Absent) => n,
                _ => Num::Absent,
            }),
        }
    }
}

/// A field name as the filter knows it.
#[derive(Clone, Copy, Debug)]
pub enum Def {
    /// Has `src`/`dst` forms; without a qualifier, counters sum and gauges match either side.
    Directional {
        name: &'static str,
        src: Acc,
        dst: Acc,
        sum: bool,
    },
    /// No `src`/`dst` form.
    Plain {
        name: &'static str,
        operand: Operand,
    },
}

/// Argus names with a `src`/`dst` form: (name, aliases, src, dst, counter?).
const DIRECTIONAL: &[(&str, &[&str], Acc, Acc, bool)] = {
    use Field::*;
    const fn f(x: Field) -> Acc {
        Acc::Field(x, Guard::Always)
    }
    const fn g(x: Field, s: Side) -> Acc {
        Acc::Field(x, Guard::Sent(s))
    }
    use Side::{Dst as D, Src as S};
    &[
        ("pkts", &[], f(Spkts), f(Dpkts), true),
        ("bytes", &[], f(Sbytes), f(Dbytes), true),
        ("appbytes", &[], f(Sappbytes), f(Dappbytes), true),
        ("ipbytes", &[], f(Sipbytes), f(Dipbytes), true),
        ("retrans", &[], f(Sretrans), f(Dretrans), true),
        ("ooo", &["outoforder"], f(Sooo), f(Dooo), true),
        ("loss", &[], f(Sloss), f(Dloss), true),
        ("winshut", &[], Acc::ZeroWin(S), Acc::ZeroWin(D), true),
        ("frags", &["frag"], Acc::Frags(S), Acc::Frags(D), true),
        (
            "ploss",
            &[],
            Acc::Ploss(Some(S)),
            Acc::Ploss(Some(D)),
            false,
        ),
        ("ttl", &[], g(Sttl, S), g(Dttl, D), false),
        ("tos", &[], g(Stos, S), g(Dtos, D), false),
        ("jit", &["jitter"], g(Sjit, S), g(Djit, D), false),
        ("intpkt", &[], g(Sintpkt, S), g(Dintpkt, D), false),
        (
            "win",
            &["window"],
            Acc::Field(Swin, Guard::TcpSent(S)),
            Acc::Field(Dwin, Guard::TcpSent(D)),
            false,
        ),
    ]
};

/// Filter-only names without a qualifier (they override a printed field of the same name).
const PLAIN: &[(&str, Operand)] = &[
    (
        "vlan",
        Operand::Either(
            Acc::Field(Field::Vlan, Guard::Always),
            Acc::Field(Field::Ivlan, Guard::Always),
        ),
    ),
    (
        "mpls",
        Operand::Either(
            Acc::Field(Field::Mpls, Guard::Always),
            Acc::Field(Field::Mpls2, Guard::Always),
        ),
    ),
    ("icmptype", Operand::One(Acc::IcmpType)),
    ("icmpcode", Operand::One(Acc::IcmpCode)),
];

/// The guard of a printed field used directly (`sttl`, `tcprtt`).
fn guard(f: Field) -> Guard {
    use Field::*;
    match f {
        Sttl | Stos | Sjit | Sintpkt => Guard::Sent(Side::Src),
        Dttl | Dtos | Djit | Dintpkt => Guard::Sent(Side::Dst),
        Swin => Guard::TcpSent(Side::Src),
        Dwin => Guard::TcpSent(Side::Dst),
        Synack | Ackdat | Tcprtt => Guard::NonZero,
        _ => Guard::Always,
    }
}

/// Looks a field name up (case-insensitive).
pub fn lookup(name: &str) -> Option<Def> {
    let w = name.to_ascii_lowercase();
    for &(n, aliases, src, dst, sum) in DIRECTIONAL {
        if n == w || aliases.contains(&w.as_str()) {
            return Some(Def::Directional {
                name: n,
                src,
                dst,
                sum,
            });
        }
    }
    if let Some(&(n, operand)) = PLAIN.iter().find(|(n, _)| *n == w) {
        return Some(Def::Plain { name: n, operand });
    }
    let f = Field::by_name(&w)?;
    unit(Acc::Field(f, Guard::Always))?;
    Some(Def::Plain {
        name: f.name(),
        operand: Operand::One(Acc::Field(f, guard(f))),
    })
}

impl Def {
    pub fn name(&self) -> &'static str {
        match *self {
            Def::Directional { name, .. } | Def::Plain { name, .. } => name,
        }
    }

    /// The operand for a qualifier; `None` when the field has no `src`/`dst` form.
    pub fn operand(&self, dir: Dir) -> Option<Operand> {
        match (*self, dir) {
            (Def::Plain { operand, .. }, Dir::Either) => Some(operand),
            (Def::Plain { .. }, _) => None,
            (Def::Directional { src, .. }, Dir::Src) => Some(Operand::One(src)),
            (Def::Directional { dst, .. }, Dir::Dst) => Some(Operand::One(dst)),
            (
                Def::Directional {
                    src: Acc::Ploss(_), ..
                },
                Dir::Either,
            ) => Some(Operand::One(Acc::Ploss(None))),
            (Def::Directional { src, dst, sum, .. }, Dir::Either) => Some(if sum {
                Operand::Sum(src, dst)
            } else {
                Operand::Either(src, dst)
            }),
        }
    }

    pub fn unit(&self) -> Unit {
        let a = match *self {
            Def::Directional { src, .. } => src,
            Def::Plain { operand, .. } => match operand {
                Operand::One(a) | Operand::Sum(a, _) | Operand::Either(a, _) => a,
            },
        };
        unit(a).unwrap_or(Unit::Count)
    }
}

/// A record with every field set, so `fields::value` shows each field's printed kind.
fn specimen() -> FlowRecord {
    let side = DirStats {
        pkts: 2,
        bytes: 2,
        ip_bytes: 2,
        app_bytes: 2,
        ttl_max: 1,
        retrans: 1,
        ..Default::default()
    };
    FlowRecord {
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        sport: 1,
        dport: 1,
        stime_ns: 1,
        ltime_ns: 2,
        state: FlowState::Con,
        synack_ns: 1,
        ackdat_ns: 1,
        vlan: [1, 1],
        mpls: [1, 1],
        src: side,
        dst: side,
        ..Default::default()
    }
}

/// An InfiniBand record with every IB field set (their printed kinds).
fn ib_specimen() -> FlowRecord {
    let mut r = specimen();
    r.flags = tapflow_record::flags::INFINIBAND;
    r.ib.flags = tapflow_record::ib_flags::SQP;
    r.ib.slid = 1;
    r.ib.dlid = 1;
    r
}

/// The unit of a quantity; `None` if it cannot be compared (addresses, flag strings, times).
fn unit(a: Acc) -> Option<Unit> {
    let specimen = |f: Field| {
        if fields::is_ib_field(f) {
            ib_specimen()
        } else {
            specimen()
        }
    };
    Some(match a {
        Acc::Field(f, _) => match fields::value(f, &specimen(f)) {
            Value::U64(_) | Value::Port(_) | Value::Hex16(_) => Unit::Count,
            Value::Secs(_) => Unit::Secs,
            Value::Millis(_) => Unit::Millis,
            Value::Str(_) if matches!(f, Field::State | Field::Cause | Field::Observed) => {
                Unit::Name(f)
            }
            _ => return None,
        },
        Acc::ZeroWin(_) | Acc::Frags(_) | Acc::IcmpType | Acc::IcmpCode => Unit::Count,
        Acc::Ploss(_) => Unit::Real,
    })
}

/// The values a name field can print.
pub fn names(f: Field) -> Vec<&'static str> {
    let all: Vec<&'static str> = match f {
        Field::State => {
            let mut v = vec!["REQ", "ACC", "CON", "FIN", "CLO", "RST", "INT", "RSP"];
            for kind in [AddrKind::Ipv4, AddrKind::Ipv6] {
                for ty in 0..=255u8 {
                    for code in 0..16u8 {
                        v.extend(icmp_state(kind, ty, code));
                    }
                }
            }
            v
        }
        Field::Cause => (0..=255u8)
            .filter_map(Cause::from_u8)
            .map(Cause::name)
            .collect(),
        // Keep in step with `unit`.
        Field::Observed => vec!["s2d", "d2s", "both", "none"],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for n in all {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Every field name the filter accepts, for suggestions.
pub fn all_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = DIRECTIONAL
        .iter()
        .flat_map(|(n, a, ..)| std::iter::once(*n).chain(a.iter().copied()))
        .collect();
    v.extend(PLAIN.iter().map(|(n, _)| *n));
    for (f, info) in fields::FIELDS {
        if !v.contains(&info.name) && unit(Acc::Field(*f, Guard::Always)).is_some() {
            v.push(info.name);
        }
    }
    v
}

/// Names with a `src`/`dst` form, aliases included.
pub fn directional_names() -> Vec<&'static str> {
    DIRECTIONAL
        .iter()
        .flat_map(|(n, a, ..)| std::iter::once(*n).chain(a.iter().copied()))
        .collect()
}

/// Why a literal does not fit a field.
#[derive(Debug)]
pub enum LitError {
    NotNumber,
    /// Not one of these names.
    UnknownName(Vec<&'static str>),
    /// Names compare with `eq`/`ne` only.
    Ordered,
}

/// Compiles `OP LITERAL` for a field of unit `unit`.
pub fn test(unit: Unit, op: Op, lit: &str) -> Result<Test, LitError> {
    let num = |scale, hex| Scaled::parse(lit, scale, hex).ok_or(LitError::NotNumber);
    Ok(match unit {
        Unit::Count => num(0, true)?.int_test(op),
        Unit::Secs => num(9, false)?.int_test(op),
        Unit::Millis => Test::Float(op, Real(num(6, false)?.real())),
        Unit::Real => Test::Float(op, Real(num(0, false)?.real())),
        Unit::Name(f) => {
            let eq = match op {
                Op::Eq => true,
                Op::Ne => false,
                _ => return Err(LitError::Ordered),
            };
            let all = names(f);
            match all.iter().find(|n| n.eq_ignore_ascii_case(lit)) {
                Some(&name) => Test::Name { eq, name },
                None => return Err(LitError::UnknownName(all)),
            }
        }
    })
}

/// A decimal literal with its point moved `scale` places right, so seconds become whole
/// nanoseconds without rounding.
struct Scaled {
    neg: bool,
    /// The whole part; `None` past `u64::MAX`.
    int: Option<u64>,
    /// A nonzero fraction remains.
    frac: bool,
    /// The shifted literal, for the floating-point parse.
    text: String,
}

impl Scaled {
    /// `[+-]DIGITS[.DIGITS]`, or `[+-]0xHEX` when `hex`.
    fn parse(lit: &str, scale: usize, hex: bool) -> Option<Scaled> {
        let (neg, body) = match lit.as_bytes().first()? {
            b'-' => (true, &lit[1..]),
            b'+' => (false, &lit[1..]),
            _ => (false, lit),
        };
        if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            if !hex || h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let int = h.bytes().try_fold(0u64, |a, b| {
                a.checked_mul(16)?
                    .checked_add((b as char).to_digit(16)? as u64)
            });
            return Some(Scaled {
                neg,
                int,
                frac: false,
                text: String::new(),
            });
        }
        let (ip, fp) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (ip.is_empty() && fp.is_empty()) || !digits(ip) || !digits(fp) {
            return None;
        }
        let k = scale.min(fp.len());
        let mut whole = String::with_capacity(ip.len() + scale);
        whole.push_str(ip);
        whole.push_str(&fp[..k]);
        for _ in k..scale {
            whole.push('0');
        }
        let rest = &fp[k..];
        let int = whole.bytes().try_fold(0u64, |a, b| {
            a.checked_mul(10)?.checked_add((b - b'0') as u64)
        });
        Some(Scaled {
            neg,
            int,
            frac: rest.bytes().any(|b| b != b'0'),
            text: format!("{}0{whole}.{rest}0", if neg { "-" } else { "" }),
        })
    }

    fn real(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// The exact integer comparison: record values are whole numbers `0..=u64::MAX`.
    fn int_test(&self, op: Op) -> Test {
        if self.neg && (self.int != Some(0) || self.frac) {
            return Test::Const(matches!(op, Op::Ne | Op::Gt | Op::Ge));
        }
        let Some(n) = self.int else {
            return Test::Const(matches!(op, Op::Ne | Op::Lt | Op::Le));
        };
        if !self.frac {
            return Test::Int(op, n);
        }
        // n < literal < n + 1
        match op {
            Op::Eq => Test::Const(false),
            Op::Ne => Test::Const(true),
            Op::Gt | Op::Ge => Test::Int(Op::Gt, n),
            Op::Lt | Op::Le => Test::Int(Op::Le, n),
        }
    }
}

/// `NAME OP VALUE` as the parser understood it, values in the expression's units.
impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} ", self.dir, self.name)?;
        match self.test {
            Test::Const(b) => write!(f, "is {}", if b { "present" } else { "never" }),
            Test::Int(op, n) if self.unit == Unit::Secs => {
                let frac = format!("{:09}", n % 1_000_000_000);
                let frac = frac.trim_end_matches('0');
                write!(f, "{} {}", op.name(), n / 1_000_000_000)?;
                if !frac.is_empty() {
                    write!(f, ".{frac}")?;
                }
                Ok(())
            }
            Test::Int(op, n) => write!(f, "{} {n}", op.name()),
            Test::Float(op, v) if self.unit == Unit::Millis => {
                write!(f, "{} {}", op.name(), v.0 / 1e6)
            }
            Test::Float(op, v) => write!(f, "{} {}", op.name(), v.0),
            Test::Name { eq, name } => write!(f, "{} {name}", if eq { "eq" } else { "ne" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(unit: Unit, op: Op, lit: &str) -> Test {
        test(unit, op, lit).unwrap_or_else(|e| panic!("{lit}: {e:?}"))
    }

    #[test]
    fn printed_kinds_give_units() {
        let u = |n: &str| lookup(n).unwrap().unit();
        assert_eq!(u("pkts"), Unit::Count);
        assert_eq!(u("sbytes"), Unit::Count);
        assert_eq!(u("dur"), Unit::Secs);
        assert_eq!(u("tcprtt"), Unit::Secs);
        assert_eq!(u("jit"), Unit::Millis);
        assert_eq!(u("dintpkt"), Unit::Millis);
        assert_eq!(u("ploss"), Unit::Real);
        assert_eq!(u("state"), Unit::Name(Field::State));
        assert_eq!(u("cause"), Unit::Name(Field::Cause));
        assert_eq!(u("sport"), Unit::Count);
        assert_eq!(u("vlan"), Unit::Count);
        for not_comparable in ["saddr", "smac", "stime", "flgs", "proto", "dir", "encap"] {
            assert!(lookup(not_comparable).is_none(), "{not_comparable}");
        }
        assert!(lookup("bogus").is_none());
        assert!(all_names().contains(&"tcprtt"));
        assert!(all_names().contains(&"outoforder"));
    }

    #[test]
    fn exact_integer_thresholds() {
        use Op::*;
        assert_eq!(t(Unit::Count, Gt, "10"), Test::Int(Gt, 10));
        assert_eq!(t(Unit::Count, Gt, "+10"), Test::Int(Gt, 10));
        assert_eq!(t(Unit::Count, Eq, "0x1f"), Test::Int(Eq, 31));
        assert_eq!(t(Unit::Count, Ge, "10.5"), Test::Int(Gt, 10));
        assert_eq!(t(Unit::Count, Lt, "10.5"), Test::Int(Le, 10));
        assert_eq!(t(Unit::Count, Eq, "10.5"), Test::Const(false));
        assert_eq!(t(Unit::Count, Ne, "10.5"), Test::Const(true));
        assert_eq!(t(Unit::Count, Eq, "10.000"), Test::Int(Eq, 10));
        assert_eq!(t(Unit::Count, Gt, "-1"), Test::Const(true));
        assert_eq!(t(Unit::Count, Lt, "-0.5"), Test::Const(false));
        assert_eq!(t(Unit::Count, Eq, "-0"), Test::Int(Eq, 0));
        assert_eq!(
            t(Unit::Count, Lt, "18446744073709551616"),
            Test::Const(true)
        );
        assert_eq!(
            t(Unit::Count, Le, "18446744073709551615"),
            Test::Int(Le, u64::MAX)
        );
        assert!(test(Unit::Count, Gt, "0x1_0000").is_err());
        assert_eq!(
            t(Unit::Count, Gt, "0x10000000000000000"),
            Test::Const(false)
        );
        assert_eq!(t(Unit::Secs, Ge, "60"), Test::Int(Ge, 60_000_000_000));
        assert_eq!(t(Unit::Secs, Gt, "0.01"), Test::Int(Gt, 10_000_000));
        assert_eq!(t(Unit::Secs, Gt, ".5"), Test::Int(Gt, 500_000_000));
        assert_eq!(
            t(Unit::Secs, Gt, "1.0000000001"),
            Test::Int(Gt, 1_000_000_000)
        );
        assert_eq!(t(Unit::Millis, Gt, "5"), Test::Float(Gt, Real(5e6)));
        assert_eq!(t(Unit::Millis, Gt, "0.1"), Test::Float(Gt, Real(1e5)));
        assert_eq!(t(Unit::Real, Lt, "2.5"), Test::Float(Lt, Real(2.5)));
        for bad in [
            "", "-", ".", "1.2.3", "1e5", "0x", "x", "5ms", "inf", "NaN", "١",
        ] {
            assert!(test(Unit::Count, Eq, bad).is_err(), "{bad}");
            assert!(test(Unit::Millis, Eq, bad).is_err(), "{bad}");
        }
        assert!(test(Unit::Secs, Eq, "0x10").is_err());
    }

    #[test]
    fn names_compare_with_eq_and_ne() {
        let st = Unit::Name(Field::State);
        assert_eq!(
            t(st, Op::Eq, "rst"),
            Test::Name {
                eq: true,
                name: "RST"
            }
        );
        assert_eq!(
            t(st, Op::Ne, "ECO"),
            Test::Name {
                eq: false,
                name: "ECO"
            }
        );
        assert!(matches!(test(st, Op::Gt, "RST"), Err(LitError::Ordered)));
        assert!(matches!(
            test(st, Op::Eq, "BOGUS"),
            Err(LitError::UnknownName(v)) if v.contains(&"URH") && v.contains(&"RSP")
        ));
        assert!(names(Field::Cause).contains(&"evicted"));
    }
}
