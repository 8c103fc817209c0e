//! Output fields: argus names, column titles and widths, and how each is taken from a record.

use tapflow_record::{encap, flags, observed, Addr, AddrKind, FlowRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One field's metadata. `width` is a minimum: wider values (IPv6 addresses) push the line.
pub struct FieldInfo {
    pub name: &'static str,
    pub title: &'static str,
    pub width: usize,
    pub align: Align,
    pub help: &'static str,
}

macro_rules! fields {
    ($($v:ident $name:literal $title:literal $w:literal $a:ident $help:literal;)*) => {
        /// An output field, by its argus name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Field { $($v),* }

        pub const FIELDS: &[(Field, FieldInfo)] = &[
            $((Field::$v, FieldInfo {
                name: $name, title: $title, width: $w, align: Align::$a, help: $help,
            })),*
        ];
    };
}

fields! {
    Seq "seq" "Seq" 8 Right "per-probe record sequence number";
    Probe "probe" "ProbeId" 7 Right "id of the probe that made the record";
    Stime "stime" "StartTime" 26 Left "time of the first packet";
    Ltime "ltime" "LastTime" 26 Left "time of the last packet";
    Dur "dur" "Dur" 10 Right "ltime - stime, seconds";
    Trans "trans" "Trans" 5 Right "number of records aggregated (1 unless made by agg)";
    Flgs "flgs" "Flgs" 9 Left "argus-style flag string";
    Proto "proto" "Proto" 6 Left "protocol name";
    Saddr "saddr" "SrcAddr" 18 Right "source (initiator) address";
    Sport "sport" "Sport" 6 Left "source port (ICMP: 0xTTCC type/code)";
    Dir "dir" "Dir" 4 Right "direction of traffic seen";
    Daddr "daddr" "DstAddr" 18 Right "destination (responder) address";
    Dport "dport" "Dport" 6 Left "destination port (ICMP: 0xIIII identifier)";
    Pkts "pkts" "TotPkts" 8 Right "packets, both directions";
    Bytes "bytes" "TotBytes" 10 Right "bytes, both directions";
    Spkts "spkts" "SrcPkts" 8 Right "packets sent by src";
    Dpkts "dpkts" "DstPkts" 8 Right "packets sent by dst";
    Sbytes "sbytes" "SrcBytes" 10 Right "bytes sent by src";
    Dbytes "dbytes" "DstBytes" 10 Right "bytes sent by dst";
    Sipbytes "sipbytes" "SIpBytes" 10 Right "IP-layer bytes sent by src";
    Dipbytes "dipbytes" "DIpBytes" 10 Right "IP-layer bytes sent by dst";
    Sappbytes "sappbytes" "SAppBytes" 10 Right "payload bytes sent by src";
    Dappbytes "dappbytes" "DAppBytes" 10 Right "payload bytes sent by dst";
    State "state" "State" 5 Left "argus connection state";
    Cause "cause" "Cause" 8 Left "why the record was emitted";
    Observed "observed" "Obs" 4 Left "directions seen by the probe (s2d, d2s, both)";
    Smac "smac" "SrcMac" 17 Left "source MAC address";
    Dmac "dmac" "DstMac" 17 Left "destination MAC address";
    Sttl "sttl" "sTtl" 4 Right "largest TTL/hop limit sent by src";
    Dttl "dttl" "dTtl" 4 Right "largest TTL/hop limit sent by dst";
    Stos "stos" "sTos" 4 Right "TOS byte of src's last packet";
    Dtos "dtos" "dTos" 4 Right "TOS byte of dst's last packet";
    Sflags "sflags" "sTcpF" 8 Left "TCP flags sent by src (CEUAPRSF)";
    Dflags "dflags" "dTcpF" 8 Left "TCP flags sent by dst (CEUAPRSF)";
    Synack "synack" "SynAck" 9 Right "SYN to SYN-ACK time, seconds";
    Ackdat "ackdat" "AckDat" 9 Right "SYN-ACK to ACK time, seconds";
    Tcprtt "tcprtt" "TcpRtt" 9 Right "synack + ackdat, seconds";
    Sjit "sjit" "SrcJitter" 10 Right "src inter-packet time stddev, ms";
    Djit "djit" "DstJitter" 10 Right "dst inter-packet time stddev, ms";
    Sintpkt "sintpkt" "SIntPkt" 10 Right "src mean inter-packet time, ms";
    Dintpkt "dintpkt" "DIntPkt" 10 Right "dst mean inter-packet time, ms";
    Sretrans "sretrans" "SRetrans" 8 Right "TCP retransmissions by src";
    Dretrans "dretrans" "DRetrans" 8 Right "TCP retransmissions by dst";
    Sooo "sooo" "SOoo" 6 Right "out-of-order TCP segments from src";
    Dooo "dooo" "DOoo" 6 Right "out-of-order TCP segments from dst";
    Sloss "sloss" "SrcLoss" 7 Right "segments missing before the tap, src";
    Dloss "dloss" "DstLoss" 7 Right "segments missing before the tap, dst";
    Swin "swin" "SrcWin" 8 Right "last TCP window advertised by src";
    Dwin "dwin" "DstWin" 8 Right "last TCP window advertised by dst";
    Vlan "vlan" "Vlan" 4 Right "outer VLAN id";
    Ivlan "ivlan" "IVlan" 5 Right "inner VLAN id (QinQ)";
    Mpls "mpls" "Mpls" 7 Right "top MPLS label";
    Mpls2 "mpls2" "Mpls2" 7 Right "second MPLS label";
    Encap "encap" "Encap" 8 Left "encapsulations, '+' separated";
    Tunid "tunid" "TunId" 8 Right "tunnel id (VNI, TEID, GRE key, ERSPAN session)";
    Osaddr "osaddr" "OSrcAddr" 15 Right "outer (tunnel) source address";
    Odaddr "odaddr" "ODstAddr" 15 Right "outer (tunnel) destination address";
    Slid "slid" "SLid" 6 Right "InfiniBand source (initiator) LID";
    Dlid "dlid" "DLid" 6 Right "InfiniBand destination LID";
    Sgid "sgid" "SrcGid" 18 Right "InfiniBand source GID (RoCEv2: the IP address as GID)";
    Dgid "dgid" "DstGid" 18 Right "InfiniBand destination GID";
    Sqp "sqp" "SQP" 8 Right "InfiniBand source QP (when a DETH names it)";
    Dqp "dqp" "DQP" 8 Right "InfiniBand destination QP";
    Pkey "pkey" "PKey" 6 Right "InfiniBand partition key";
    Opcodes "opcodes" "Opcodes" 16 Left "InfiniBand BTH opcodes seen, SVC_NAME ','-separated";
    Ibsvc "ibsvc" "IbSvc" 6 Left "InfiniBand transport services seen (RC UC RD UD CNP XRC)";
    Naks "naks" "Naks" 5 Right "InfiniBand AETH NAKs";
    Rnrnaks "rnrnaks" "RnrNaks" 7 Right "InfiniBand AETH RNR NAKs";
}

/// The default columns, as `ra` prints them.
pub const DEFAULT_FIELDS: &[Field] = &[
    Field::Stime,
    Field::Flgs,
    Field::Proto,
    Field::Saddr,
    Field::Sport,
    Field::Dir,
    Field::Daddr,
    Field::Dport,
    Field::Pkts,
    Field::Bytes,
    Field::State,
];

impl Field {
    pub fn info(self) -> &'static FieldInfo {
        // The table is declared in enum order, so the discriminant is the index.
        &FIELDS[self as usize].1
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn by_name(name: &str) -> Option<Field> {
        let name = name.to_ascii_lowercase();
        FIELDS.iter().find(|(_, i)| i.name == name).map(|&(f, _)| f)
    }

    pub fn all_names() -> String {
        FIELDS
            .iter()
            .map(|(_, i)| i.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses `-s` arguments. Each argument is a comma- or space-separated list; a bare name
/// builds an explicit list, `+name` appends to it and `-name` removes from it. A selection made
/// only of `+`/`-` items edits the default columns (like `ra -s +dur`).
pub fn parse_selection(args: &[String]) -> Result<Vec<Field>, String> {
    parse_selection_from(args, DEFAULT_FIELDS)
}

/// [`parse_selection`] with other default columns (`tapflow agg` shows its key).
pub fn parse_selection_from(args: &[String], defaults: &[Field]) -> Result<Vec<Field>, String> {
    let items: Vec<&str> = args
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Ok(defaults.to_vec());
    }
    let explicit = items.iter().any(|s| !s.starts_with(['+', '-']));
    let mut out = if explicit {
        Vec::new()
    } else {
        defaults.to_vec()
    };
    for item in items {
        let (op, name) = match item.as_bytes()[0] {
            b'+' | b'-' => (item.as_bytes()[0], &item[1..]),
            _ => (b'+', item),
        };
        let f = Field::by_name(name).ok_or_else(|| {
            format!(
                "unknown field '{name}' in -s; valid fields: {}",
                Field::all_names()
            )
        })?;
        if op == b'+' {
            out.push(f);
        } else {
            out.retain(|&x| x != f);
        }
    }
    if out.is_empty() {
        return Err("-s leaves no fields to print".into());
    }
    Ok(out)
}

/// `FlowRecord::flags` bit set on the records `tapflow agg` makes: their `seq` holds the
/// number of records aggregated (`trans`). The record format has no count of its own, and a
/// probe never sets this bit (its bits grow from 0), so the count survives `agg -w | sort`.
pub const AGGREGATED: u32 = 1 << 31;

/// Bits of an aggregate's `flags` (with `AGGREGATED`): non-key fields whose records disagreed.
/// Such a field is zeroed in the aggregate and printed blank, not as a misleading 0 or
/// 0.0.0.0. Probes use the low bits of `flags` (up to bit 9 in 1.2), so these stay clear.
pub mod mixed {
    pub const PROBE: u32 = 1 << 16;
    pub const SADDR: u32 = 1 << 17;
    pub const DADDR: u32 = 1 << 18;
    pub const PROTO: u32 = 1 << 19;
    pub const SPORT: u32 = 1 << 20;
    pub const DPORT: u32 = 1 << 21;
    pub const SMAC: u32 = 1 << 22;
    pub const DMAC: u32 = 1 << 23;
    pub const VLAN: u32 = 1 << 24;
    pub const MPLS: u32 = 1 << 25;
    pub const ENCAP: u32 = 1 << 26;
    pub const KIND: u32 = 1 << 27;
    pub const IVLAN: u32 = 1 << 28;
    pub const ALL: u32 = 0x1fff << 16;
}

/// The `mixed` bit that blanks field `f` in an aggregate (0: never blanked).
fn mixed_bit(f: Field) -> u32 {
    match f {
        Field::Probe => mixed::PROBE,
        Field::Saddr => mixed::SADDR | mixed::KIND,
        Field::Daddr => mixed::DADDR | mixed::KIND,
        Field::Proto => mixed::PROTO,
        Field::Sport => mixed::SPORT | mixed::PROTO,
        Field::Dport => mixed::DPORT | mixed::PROTO,
        Field::Smac => mixed::SMAC,
        Field::Dmac => mixed::DMAC,
        Field::Vlan => mixed::VLAN,
        Field::Ivlan => mixed::IVLAN,
        Field::Mpls | Field::Mpls2 => mixed::MPLS,
        Field::Encap | Field::Tunid | Field::Osaddr | Field::Odaddr => mixed::ENCAP,
        _ => 0,
    }
}

/// How many records `r` stands for: 1, or for an aggregate the count it carries.
#[inline]
pub fn trans(r: &FlowRecord) -> u64 {
    if r.flags & AGGREGATED != 0 {
        r.seq.max(1)
    } else {
        1
    }
}

/// A field's value, borrowed or copied from the record without allocating. Rendering depends
/// on the output mode (see `format`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// Not applicable to this record (ports of an ARP flow, VLAN 0 …): blank / empty / null.
    Empty,
    U64(u64),
    /// Nanoseconds since the epoch.
    Time(u64),
    /// A duration in nanoseconds, shown in seconds.
    Secs(u64),
    /// A duration in nanoseconds, shown in milliseconds.
    Millis(f64),
    Str(&'static str),
    Addr(Addr, AddrKind),
    Mac([u8; 6]),
    /// A transport port: may be shown by service name.
    Port(u16),
    /// ICMP type/code or identifier: `0x%04x` in text, a number in JSON.
    Hex16(u16),
    Proto(AddrKind, u8, u16),
    Flgs([u8; 9]),
    TcpFlags(u8),
    Encap(u16),
    /// InfiniBand opcode set (bit `op` of word `op / 64`).
    IbOps([u64; 4]),
    /// InfiniBand transport services (bit = opcode >> 5).
    IbSvc(u8),
}

/// Argus-like 9-character flag string.
///
/// `[1]` encapsulation: `e` Ethernet only, `v` VLAN/QinQ, `m` MPLS, `p` PPPoE, `G` GRE,
/// `E` ERSPAN, `X` VXLAN, `N` GENEVE, `U` GTP-U, `P` IP-in-IP, `6` 6in4, `T` Teredo, `*` several
/// (Ethernet itself does not count once there is anything else; TEB is implied by its carrier).
/// `[3]` `s`/`d`/`*` retransmissions, else `g` loss gaps, else `i`/`r`/`&` out of order.
/// `[4]` `S`/`D`/`@` zero window. `[5]` `E` ECN CE. `[6]` `F` fragments. `[7]` `O` IP options.
pub fn flgs(r: &FlowRecord) -> [u8; 9] {
    const ENCAP_CHARS: &[(u16, u8)] = &[
        (encap::VLAN | encap::QINQ, b'v'),
        (encap::MPLS, b'm'),
        (encap::PPPOE, b'p'),
        (encap::GRE, b'G'),
        (encap::ERSPAN, b'E'),
        (encap::VXLAN, b'X'),
        (encap::GENEVE, b'N'),
        (encap::GTPU, b'U'),
        (encap::IPIP, b'P'),
        (encap::IP6IN4, b'6'),
        (encap::TEREDO, b'T'),
    ];
    let mut f = [b' '; 9];
    let mut seen = ENCAP_CHARS.iter().filter(|(m, _)| r.encap.kinds & m != 0);
    f[1] = match (seen.next(), seen.next()) {
        (Some(&(_, c)), None) => c,
        (Some(_), Some(_)) => b'*',
        (None, _) if r.smac != [0; 6] || r.dmac != [0; 6] => b'e',
        (None, _) => b' ',
    };
    let both = |s: bool, d: bool, cs: u8, cd: u8, cb: u8| match (s, d) {
        (true, true) => Some(cb),
        (true, false) => Some(cs),
        (false, true) => Some(cd),
        (false, false) => None,
    };
    let (s, d) = (&r.src, &r.dst);
    f[3] = both(s.retrans > 0, d.retrans > 0, b's', b'd', b'*')
        .or((s.loss_pkts > 0 || d.loss_pkts > 0).then_some(b'g'))
        .or(both(
            s.out_of_order > 0,
            d.out_of_order > 0,
            b'i',
            b'r',
            b'&',
        ))
        .unwrap_or(b' ');
    f[4] = both(s.zero_win > 0, d.zero_win > 0, b'S', b'D', b'@').unwrap_or(b' ');
    if r.flags & flags::ECN_CE != 0 {
        f[5] = b'E';
    }
    if r.flags & flags::FRAGMENTS != 0 || s.frags > 0 || d.frags > 0 {
        f[6] = b'F';
    }
    if r.flags & flags::IP_OPTIONS != 0 {
        f[7] = b'O';
    }
    f
}

fn port(r: &FlowRecord, p: u16, icmp_val: u16) -> Value {
    if r.is_icmp() {
        Value::Hex16(icmp_val)
    } else if crate::filter::has_ports(r) {
        Value::Port(p)
    } else if r.addr_kind == AddrKind::L2 || (r.sport == 0 && r.dport == 0) {
        Value::Empty
    } else {
        Value::U64(p as u64)
    }
}

fn nonzero(v: u64) -> Value {
    if v == 0 {
        Value::Empty
    } else {
        Value::U64(v)
    }
}

fn outer(r: &FlowRecord, a: Addr) -> Value {
    if r.encap.outer_kind == AddrKind::L2 && a.0 == [0; 16] {
        Value::Empty
    } else {
        Value::Addr(a, r.encap.outer_kind)
    }
}

fn tcp_only(r: &FlowRecord, v: Value) -> Value {
    if r.addr_kind != AddrKind::L2 && r.proto == 6 {
        v
    } else {
        Value::Empty
    }
}

/// The new InfiniBand fields (absent on other records).
pub fn is_ib_field(f: Field) -> bool {
    (f as usize) >= Field::Slid as usize && (f as usize) <= Field::Rnrnaks as usize
}

/// What a field shows for an InfiniBand record where it differs from IP records (`None`:
/// as usual). Addresses are the GIDs (GRH or RoCEv2), else the LIDs; ports are the QPs.
fn ib_value(f: Field, r: &FlowRecord) -> Option<Value> {
    use tapflow_record::ib_flags;
    let x = &r.ib;
    let gids = x.flags & (ib_flags::GRH | ib_flags::ROCEV2) != 0;
    let link = x.flags & ib_flags::LINK != 0;
    let lid = |l: u16| {
        if gids || link {
            Value::Empty
        } else {
            nonzero(l.into())
        }
    };
    let gid = |a: Addr| {
        if gids {
            Value::Addr(a, AddrKind::Ipv6)
        } else {
            Value::Empty
        }
    };
    let sqp = if x.flags & ib_flags::SQP != 0 {
        Value::U64(x.sqp.into())
    } else {
        Value::Empty
    };
    let dqp = if link {
        Value::Empty
    } else {
        Value::U64(x.dqp.into())
    };
    Some(match f {
        Field::Proto if link => Value::Str("iblink"),
        Field::Proto if x.flags & ib_flags::ROCEV2 != 0 => Value::Str("roce"),
        Field::Proto => Value::Str("ib"),
        Field::Saddr if !gids => lid(x.slid),
        Field::Daddr if !gids => lid(x.dlid),
        Field::Sport => sqp,
        Field::Dport => dqp,
        Field::Slid => nonzero(x.slid.into()),
        Field::Dlid => nonzero(x.dlid.into()),
        Field::Sgid => gid(r.saddr),
        Field::Dgid => gid(r.daddr),
        Field::Sqp => sqp,
        Field::Dqp => dqp,
        Field::Pkey if link => Value::Empty,
        Field::Pkey => Value::U64(x.pkey.into()),
        Field::Opcodes => Value::IbOps(x.opcodes),
        Field::Ibsvc => Value::IbSvc(x.services()),
        Field::Naks => Value::U64(x.naks.into()),
        Field::Rnrnaks => Value::U64(x.rnr_naks.into()),
        _ => return None,
    })
}

pub fn value(f: Field, r: &FlowRecord) -> Value {
    use Value::*;
    if r.flags & AGGREGATED != 0 && r.flags & mixed_bit(f) != 0 {
        return Empty;
    }
    if r.is_ib() {
        if let Some(v) = ib_value(f, r) {
            return v;
        }
    } else if is_ib_field(f) {
        return Empty;
    }
    let (s, d) = (&r.src, &r.dst);
    match f {
        Field::Seq => U64(r.seq),
        Field::Probe => U64(r.probe_id as u64),
        Field::Stime => Time(r.stime_ns),
        Field::Ltime => Time(r.ltime_ns),
        Field::Dur => Secs(r.dur_ns()),
        Field::Trans => U64(trans(r)),
        Field::Flgs => Flgs(flgs(r)),
        Field::Proto => Proto(r.addr_kind, r.proto, r.ethertype),
        Field::Saddr => Addr(r.saddr, r.addr_kind),
        Field::Daddr => Addr(r.daddr, r.addr_kind),
        Field::Sport => port(r, r.sport, r.sport),
        Field::Dport => port(r, r.dport, r.dport),
        Field::Dir => Str(r.dir_str()),
        Field::Pkts => U64(r.pkts()),
        Field::Bytes => U64(r.bytes()),
        Field::Spkts => U64(s.pkts),
        Field::Dpkts => U64(d.pkts),
        Field::Sbytes => U64(s.bytes),
        Field::Dbytes => U64(d.bytes),
        Field::Sipbytes => U64(s.ip_bytes),
        Field::Dipbytes => U64(d.ip_bytes),
        Field::Sappbytes => U64(s.app_bytes),
        Field::Dappbytes => U64(d.app_bytes),
        Field::State => Str(r.state_name()),
        Field::Cause => Str(r.cause.name()),
        Field::Observed => Str(
            match r.observed & (observed::SRC_TO_DST | observed::DST_TO_SRC) {
                observed::SRC_TO_DST => "s2d",
                observed::DST_TO_SRC => "d2s",
                0 => "none",
                _ => "both",
            },
        ),
        Field::Smac => Mac(r.smac),
        Field::Dmac => Mac(r.dmac),
        Field::Sttl => U64(s.ttl_max as u64),
        Field::Dttl => U64(d.ttl_max as u64),
        Field::Stos => U64(s.tos as u64),
        Field::Dtos => U64(d.tos as u64),
        Field::Sflags => tcp_only(r, TcpFlags(s.tcp_flags)),
        Field::Dflags => tcp_only(r, TcpFlags(d.tcp_flags)),
        Field::Synack => Secs(r.synack_ns),
        Field::Ackdat => Secs(r.ackdat_ns),
        Field::Tcprtt => Secs(r.synack_ns.saturating_add(r.ackdat_ns)),
        Field::Sjit => Millis(s.ipt_std_ns),
        Field::Djit => Millis(d.ipt_std_ns),
        Field::Sintpkt => Millis(s.ipt_mean_ns),
        Field::Dintpkt => Millis(d.ipt_mean_ns),
        Field::Sretrans => U64(s.retrans as u64),
        Field::Dretrans => U64(d.retrans as u64),
        Field::Sooo => U64(s.out_of_order as u64),
        Field::Dooo => U64(d.out_of_order as u64),
        Field::Sloss => U64(s.loss_pkts as u64),
        Field::Dloss => U64(d.loss_pkts as u64),
        Field::Swin => U64(s.window as u64),
        Field::Dwin => U64(d.window as u64),
        Field::Vlan => nonzero(r.vlan[0] as u64),
        Field::Ivlan => nonzero(r.vlan[1] as u64),
        Field::Mpls => nonzero(r.mpls[0] as u64),
        Field::Mpls2 => nonzero(r.mpls[1] as u64),
        Field::Encap if r.encap.kinds == 0 => Empty,
        Field::Encap => Encap(r.encap.kinds),
        Field::Tunid => nonzero(r.encap.tunnel_id as u64),
        Field::Osaddr => outer(r, r.encap.outer_src),
        Field::Odaddr => outer(r, r.encap.outer_dst),
        // InfiniBand fields: answered by `ib_value` for IB records.
        Field::Slid
        | Field::Dlid
        | Field::Sgid
        | Field::Dgid
        | Field::Sqp
        | Field::Dqp
        | Field::Pkey
        | Field::Opcodes
        | Field::Ibsvc
        | Field::Naks
        | Field::Rnrnaks => Empty,
    }
}
