//! IPFIX (RFC 7011) and NetFlow v9 (RFC 3954) export of tapflow flow records.
//!
//! [`Encoder`] turns records into export messages in one reused buffer (no allocation per
//! record) and hands each finished message to a sink; [`net`] has the UDP and TCP senders.
//! Used by `tapflow convert --to ipfix|netflow9` and meant for the probe as an extra output.
//!
//! * IPFIX: one RFC 5103 biflow record per tapflow record (forward = the initiator, reverse
//!   information elements under PEN 29305 for the responder), or two uniflow records with
//!   [`Config::uniflow`] for collectors that do not decode RFC 5103. Times are
//!   `flowStartNanoseconds`/`flowEndNanoseconds` (NTP format, RFC 7011 §6.1.10).
//! * NetFlow v9: uniflows only (no reverse elements exist), times as FIRST_SWITCHED/
//!   LAST_SWITCHED milliseconds of sysUptime (see [`Encoder`] for the boot time).
//!
//! Observation domain (IPFIX) / source id (v9) = the record's probe id. Non-IP (L2) and
//! InfiniBand records are not exported and are counted in [`Stats`]. Field tables and the
//! mapping: docs/interop.md §3.

pub mod net;

#[cfg(test)]
mod tests;

use tapflow_record::{flags, AddrKind, Cause, DirStats, FlowRecord};

/// Which export protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// IPFIX, RFC 7011 (version 10).
    Ipfix,
    /// NetFlow version 9, RFC 3954.
    Netflow9,
}

/// When templates are (re)sent within one transport session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Once per observation domain (TCP connection, file): RFC 7011 §8 — templates are
    /// reliable on a stream and live as long as the session.
    Once,
    /// UDP (RFC 7011 §8.4; NetFlow v9 likewise): again before a message when `messages`
    /// messages of that domain went out since the last templates, or `seconds` passed (wall
    /// clock).
    Every { messages: u32, seconds: u64 },
}

/// Default UDP template refresh: every 20 messages (Cisco's NetFlow v9 `refresh-rate`
/// default) or 600 s (RFC 6728's `templateRefreshTimeout` default), whichever comes first.
pub const UDP_REFRESH: Refresh = Refresh::Every {
    messages: 20,
    seconds: 600,
};

/// Default largest message on UDP: fits a 1500-byte MTU with IPv4/IPv6 and UDP headers and
/// room for tunnels, so no export datagram is fragmented (RFC 7011 §10.3.3).
pub const UDP_MAX_MESSAGE: usize = 1400;

/// Largest message on a stream: the IPFIX length field's limit.
pub const STREAM_MAX_MESSAGE: usize = 65535;

/// The smallest `max_message` accepted: room for the header, both templates and one record.
pub const MIN_MESSAGE: usize = 576;

/// Encoder settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub dialect: Dialect,
    /// Two uniflow records per biflow instead of one RFC 5103 biflow record (always on for
    /// NetFlow v9).
    pub uniflow: bool,
    /// Largest message in bytes, [`MIN_MESSAGE`]..=65535.
    pub max_message: usize,
    pub refresh: Refresh,
}

impl Config {
    /// For UDP: MTU-sized messages, periodic templates.
    pub fn udp(dialect: Dialect) -> Config {
        Config {
            dialect,
            uniflow: dialect == Dialect::Netflow9,
            max_message: UDP_MAX_MESSAGE,
            refresh: UDP_REFRESH,
        }
    }
    /// For TCP or a file: large messages, templates once per domain.
    pub fn stream(dialect: Dialect) -> Config {
        Config {
            dialect,
            uniflow: dialect == Dialect::Netflow9,
            max_message: STREAM_MAX_MESSAGE,
            refresh: Refresh::Once,
        }
    }
}

/// IANA IPFIX information element numbers used here (RFC 7012 and the IANA registry; the
/// NetFlow v9 field type numbers of RFC 3954 §8 are the same for these).
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const IP_CLASS_OF_SERVICE: u16 = 5;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    /// NetFlow v9 LAST_SWITCHED (sysUptime ms).
    pub const NF9_LAST_SWITCHED: u16 = 21;
    /// NetFlow v9 FIRST_SWITCHED (sysUptime ms).
    pub const NF9_FIRST_SWITCHED: u16 = 22;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    /// icmpTypeCodeIPv4; NetFlow v9 ICMP_TYPE (type × 256 + code).
    pub const ICMP_TYPE_CODE_IPV4: u16 = 32;
    pub const MINIMUM_TTL: u16 = 52;
    pub const MAXIMUM_TTL: u16 = 53;
    pub const SOURCE_MAC_ADDRESS: u16 = 56;
    pub const VLAN_ID: u16 = 58;
    pub const DESTINATION_MAC_ADDRESS: u16 = 80;
    pub const FLOW_END_REASON: u16 = 136;
    pub const ICMP_TYPE_CODE_IPV6: u16 = 139;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const FLOW_START_NANOSECONDS: u16 = 156;
    pub const FLOW_END_NANOSECONDS: u16 = 157;
    pub const BIFLOW_DIRECTION: u16 = 239;
    pub const LAYER2_OCTET_DELTA_COUNT: u16 = 352;
}

/// RFC 5103 §6.1: reverse information elements are the forward ones under this Private
/// Enterprise Number.
pub const REVERSE_PEN: u32 = 29305;

/// Template ids (data set ids). IPFIX biflow and uniflow templates differ so that a collector
/// that kept the other's never misreads a record; NetFlow v9 uses the uniflow numbering.
pub mod template {
    pub const IPV4_BIFLOW: u16 = 256;
    pub const IPV6_BIFLOW: u16 = 257;
    pub const IPV4_UNIFLOW: u16 = 258;
    pub const IPV6_UNIFLOW: u16 = 259;
}

/// flowEndReason values (RFC 7012 / IANA).
pub mod end_reason {
    pub const IDLE_TIMEOUT: u8 = 1;
    pub const ACTIVE_TIMEOUT: u8 = 2;
    pub const END_OF_FLOW: u8 = 3;
    pub const FORCED_END: u8 = 4;
    pub const LACK_OF_RESOURCES: u8 = 5;
}

/// biflowDirection values (RFC 5103 §6.3).
pub mod biflow_direction {
    pub const ARBITRARY: u8 = 0;
    pub const INITIATOR: u8 = 1;
}

/// What one field of a template carries. The value comes from a [`Row`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    IcmpV4,
    IcmpV6,
    /// NetFlow v9 ICMP_TYPE (one field for both families).
    Nf9Icmp,
    /// flowStartMilliseconds/flowEndMilliseconds beside the ns elements: many collectors
    /// (nfdump 1.7) decode only these.
    StartMs,
    EndMs,
    Start,
    End,
    Nf9First,
    Nf9Last,
    Octets,
    Packets,
    L2Octets,
    TcpFlags,
    /// NetFlow v9 TCP_FLAGS is one byte (IPFIX's tcpControlBits is unsigned16, RFC 7125).
    Nf9TcpFlags,
    Tos,
    MinTtl,
    MaxTtl,
    SrcMac,
    DstMac,
    Vlan,
    EndReason,
    BiflowDir,
    RStart,
    REnd,
    ROctets,
    RPackets,
    RL2Octets,
    RTcpFlags,
    RTos,
    RMinTtl,
    RMaxTtl,
}

impl F {
    /// (element id, length, reverse?)
    fn spec(self) -> (u16, u16, bool) {
        use ie::*;
        match self {
            F::SrcV4 => (SOURCE_IPV4_ADDRESS, 4, false),
            F::DstV4 => (DESTINATION_IPV4_ADDRESS, 4, false),
            F::SrcV6 => (SOURCE_IPV6_ADDRESS, 16, false),
            F::DstV6 => (DESTINATION_IPV6_ADDRESS, 16, false),
            F::SrcPort => (SOURCE_TRANSPORT_PORT, 2, false),
            F::DstPort => (DESTINATION_TRANSPORT_PORT, 2, false),
            F::Proto => (PROTOCOL_IDENTIFIER, 1, false),
            F::IcmpV4 | F::Nf9Icmp => (ICMP_TYPE_CODE_IPV4, 2, false),
            F::IcmpV6 => (ICMP_TYPE_CODE_IPV6, 2, false),
            F::StartMs => (FLOW_START_MILLISECONDS, 8, false),
            F::EndMs => (FLOW_END_MILLISECONDS, 8, false),
            F::Start => (FLOW_START_NANOSECONDS, 8, false),
            F::End => (FLOW_END_NANOSECONDS, 8, false),
            F::Nf9First => (NF9_FIRST_SWITCHED, 4, false),
            F::Nf9Last => (NF9_LAST_SWITCHED, 4, false),
            F::Octets => (OCTET_DELTA_COUNT, 8, false),
            F::Packets => (PACKET_DELTA_COUNT, 8, false),
            F::L2Octets => (LAYER2_OCTET_DELTA_COUNT, 8, false),
            F::TcpFlags => (TCP_CONTROL_BITS, 2, false),
            F::Nf9TcpFlags => (TCP_CONTROL_BITS, 1, false),
            F::Tos => (IP_CLASS_OF_SERVICE, 1, false),
            F::MinTtl => (MINIMUM_TTL, 1, false),
            F::MaxTtl => (MAXIMUM_TTL, 1, false),
            F::SrcMac => (SOURCE_MAC_ADDRESS, 6, false),
            F::DstMac => (DESTINATION_MAC_ADDRESS, 6, false),
            F::Vlan => (VLAN_ID, 2, false),
            F::EndReason => (FLOW_END_REASON, 1, false),
            F::BiflowDir => (BIFLOW_DIRECTION, 1, false),
            F::RStart => (FLOW_START_NANOSECONDS, 8, true),
            F::REnd => (FLOW_END_NANOSECONDS, 8, true),
            F::ROctets => (OCTET_DELTA_COUNT, 8, true),
            F::RPackets => (PACKET_DELTA_COUNT, 8, true),
            F::RL2Octets => (LAYER2_OCTET_DELTA_COUNT, 8, true),
            F::RTcpFlags => (TCP_CONTROL_BITS, 2, true),
            F::RTos => (IP_CLASS_OF_SERVICE, 1, true),
            F::RMinTtl => (MINIMUM_TTL, 1, true),
            F::RMaxTtl => (MAXIMUM_TTL, 1, true),
        }
    }
}

/// A template: id and fields in order.
struct Template {
    id: u16,
    fields: &'static [F],
}

impl Template {
    /// Bytes of one data record.
    fn record_len(&self) -> usize {
        self.fields.iter().map(|f| f.spec().1 as usize).sum()
    }
}

// Biflow templates put the reverse elements before the forward ones: a collector that reads a
// reverse element as its forward twin (nfdump 1.7 does, for all but the counters) then ends
// with the forward value. Field order is free in a template (RFC 7011 §3.4.1).
const V4_BI: &[F] = &[
    F::SrcV4,
    F::DstV4,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::IcmpV4,
    F::RStart,
    F::REnd,
    F::ROctets,
    F::RPackets,
    F::RL2Octets,
    F::RTcpFlags,
    F::RTos,
    F::RMinTtl,
    F::RMaxTtl,
    F::StartMs,
    F::EndMs,
    F::Start,
    F::End,
    F::Octets,
    F::Packets,
    F::L2Octets,
    F::TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
    F::EndReason,
    F::BiflowDir,
];
const V6_BI: &[F] = &[
    F::SrcV6,
    F::DstV6,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::IcmpV6,
    F::RStart,
    F::REnd,
    F::ROctets,
    F::RPackets,
    F::RL2Octets,
    F::RTcpFlags,
    F::RTos,
    F::RMinTtl,
    F::RMaxTtl,
    F::StartMs,
    F::EndMs,
    F::Start,
    F::End,
    F::Octets,
    F::Packets,
    F::L2Octets,
    F::TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
    F::EndReason,
    F::BiflowDir,
];
const V4_UNI: &[F] = &[
    F::SrcV4,
    F::DstV4,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::IcmpV4,
    F::StartMs,
    F::EndMs,
    F::Start,
    F::End,
    F::Octets,
    F::Packets,
    F::L2Octets,
    F::TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
    F::EndReason,
];
const V6_UNI: &[F] = &[
    F::SrcV6,
    F::DstV6,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::IcmpV6,
    F::StartMs,
    F::EndMs,
    F::Start,
    F::End,
    F::Octets,
    F::Packets,
    F::L2Octets,
    F::TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
    F::EndReason,
];
// NetFlow v9 (RFC 3954 §8): no ns times, no layer-2 octets, no end reason (not in the v9
// field list); IN_DST_MAC (80) with IN_SRC_MAC (56).
const V4_NF9: &[F] = &[
    F::SrcV4,
    F::DstV4,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::Nf9Icmp,
    F::Nf9First,
    F::Nf9Last,
    F::Octets,
    F::Packets,
    F::Nf9TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
];
const V6_NF9: &[F] = &[
    F::SrcV6,
    F::DstV6,
    F::SrcPort,
    F::DstPort,
    F::Proto,
    F::Nf9Icmp,
    F::Nf9First,
    F::Nf9Last,
    F::Octets,
    F::Packets,
    F::Nf9TcpFlags,
    F::Tos,
    F::MinTtl,
    F::MaxTtl,
    F::SrcMac,
    F::DstMac,
    F::Vlan,
];

/// The two templates (IPv4, IPv6) of a configuration.
fn templates(cfg: &Config) -> [Template; 2] {
    match (cfg.dialect, cfg.uniflow) {
        (Dialect::Netflow9, _) => [
            Template {
                id: template::IPV4_BIFLOW,
                fields: V4_NF9,
            },
            Template {
                id: template::IPV6_BIFLOW,
                fields: V6_NF9,
            },
        ],
        (Dialect::Ipfix, false) => [
            Template {
                id: template::IPV4_BIFLOW,
                fields: V4_BI,
            },
            Template {
                id: template::IPV6_BIFLOW,
                fields: V6_BI,
            },
        ],
        (Dialect::Ipfix, true) => [
            Template {
                id: template::IPV4_UNIFLOW,
                fields: V4_UNI,
            },
            Template {
                id: template::IPV6_UNIFLOW,
                fields: V6_UNI,
            },
        ],
    }
}

/// One direction's values of an exported record.
#[derive(Clone, Copy, Debug, Default)]
struct Dir {
    start_ns: u64,
    end_ns: u64,
    octets: u64,
    l2_octets: u64,
    pkts: u64,
    tcp_flags: u8,
    tos: u8,
    ttl_min: u8,
    ttl_max: u8,
}

/// One exported data record, on the stack.
#[derive(Clone, Copy, Debug)]
struct Row {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
    icmp: u16,
    smac: [u8; 6],
    dmac: [u8; 6],
    vlan: u16,
    end_reason: u8,
    biflow_dir: u8,
    f: Dir,
    r: Dir,
}

/// A direction's values; a direction without packets gets the record's times (it has none of
/// its own, and a collector needs some).
fn dir(d: &DirStats, r: &FlowRecord) -> Dir {
    let has = d.pkts > 0 && d.first_ns != 0;
    Dir {
        start_ns: if has { d.first_ns } else { r.stime_ns },
        end_ns: if has { d.last_ns } else { r.ltime_ns },
        octets: d.ip_bytes,
        l2_octets: d.bytes,
        pkts: d.pkts,
        tcp_flags: d.tcp_flags,
        tos: d.tos,
        ttl_min: d.ttl_min,
        ttl_max: d.ttl_max,
    }
}

fn end_reason(c: Cause) -> u8 {
    match c {
        Cause::Idle => end_reason::IDLE_TIMEOUT,
        // A record of a flow still alive: the active timeout (status interval) cut it.
        Cause::Start | Cause::Status => end_reason::ACTIVE_TIMEOUT,
        Cause::Close => end_reason::END_OF_FLOW,
        Cause::Shutdown => end_reason::FORCED_END,
        Cause::Evicted => end_reason::LACK_OF_RESOURCES,
    }
}

/// The responder's ICMP type/code of a query flow (its packets are the replies); other
/// messages keep the flow's own.
fn icmp_reply(v6: bool, tc: u16) -> u16 {
    let (ty, code) = ((tc >> 8) as u8, tc & 0xff);
    let reply: u8 = match (v6, ty) {
        (false, 8) => 0,
        (false, 13) => 14,
        (false, 15) => 16,
        (false, 17) => 18,
        (true, 128) => 129,
        _ => return tc,
    };
    (u16::from(reply) << 8) | code
}

/// Why a record was not exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Non-IP flow: no template carries MAC-keyed flows.
    NonIp,
    /// InfiniBand / RoCEv2: its keys (LIDs, QPs, GIDs) have no IPFIX elements here.
    Infiniband,
}

/// Counters of one encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flow records given to [`Encoder::add`].
    pub records: u64,
    /// Data records written (two per biflow with uniflow split, one direction if only one
    /// sent packets).
    pub data_records: u64,
    /// Messages finished and handed to the sink.
    pub messages: u64,
    /// Messages that carried the templates.
    pub template_messages: u64,
    pub bytes: u64,
    pub skipped_non_ip: u64,
    pub skipped_ib: u64,
}

/// Per observation domain state.
#[derive(Clone, Copy, Debug)]
struct Domain {
    id: u32,
    /// IPFIX: data records sent (the next message's sequence number, mod 2^32).
    records: u64,
    /// NetFlow v9: export packets sent (the next packet's sequence number).
    messages: u64,
    templates_sent: bool,
    since_templates: u32,
    templates_ns: u64,
}

/// The message being filled.
#[derive(Clone, Copy, Debug)]
struct Open {
    domain: usize,
    /// Offset of the open data set's header, and its template id.
    set: Option<(usize, u16)>,
    data_records: u32,
    /// NetFlow v9 header count: template and data records.
    count: u32,
    /// NetFlow v9: latest end time of the message's records, ms (the fallback export time).
    max_end_ms: u64,
}

const IPFIX_HEADER: usize = 16;
const NF9_HEADER: usize = 20;
/// Seconds between 1900-01-01 (the NTP era) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// NetFlow v9 boot time: this far before the first record, so records a little out of order
/// still have non-negative uptimes.
const BOOT_SLACK_MS: u64 = 3_600_000;
/// Uptimes must stay below 2^32 ms (32-bit sysUptime); keep a margin for the export time.
const UPTIME_LIMIT_MS: u64 = u32::MAX as u64 - BOOT_SLACK_MS;

/// `dateTimeNanoseconds`: NTP timestamp format (RFC 7011 §6.1.10), seconds since 1900 in 32
/// bits (wrapping in 2036, NTP era 1, as the format does) and a 2^-32 s fraction, rounded up
/// so that a reader truncating back to nanoseconds gets the original.
pub fn ntp_timestamp(unix_ns: u64) -> u64 {
    let secs = (unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = ((unix_ns % 1_000_000_000) << 32).div_ceil(1_000_000_000);
    (secs << 32) | frac
}

/// Records in, export messages out.
///
/// Each message holds the records of one observation domain (the probe id); a record of
/// another domain, a full message or [`Encoder::flush`] finishes it. Templates go first in a
/// domain's first message and, with [`Refresh::Every`], again when due. The export time in a
/// header is `now_ns` of the call that finished the message (the wall clock of sending).
///
/// NetFlow v9 times are milliseconds of sysUptime since a boot time B of tapflow's choosing:
/// B is set by the first record to one hour before the earlier of its start and `now`, and is
/// moved (between messages) to one hour before a record that starts before B or ends more
/// than 49 days after it. The header's sysUptime is `unix_secs × 1000 − B`, so a collector
/// recovers every time to the millisecond. When the wall clock is more than 49 days after B
/// (converting an old archive), `unix_secs` is the latest end time in the message, rounded up
/// to the second, instead of the wall clock: 32-bit uptimes cannot span more.
pub struct Encoder {
    cfg: Config,
    tpl: [Template; 2],
    buf: Vec<u8>,
    open: Option<Open>,
    domains: Vec<Domain>,
    boot_ms: Option<u64>,
    stats: Stats,
}

impl Encoder {
    /// An encoder; `max_message` is clamped to [`MIN_MESSAGE`]..=65535 and NetFlow v9 is
    /// always uniflow.
    pub fn new(mut cfg: Config) -> Encoder {
        cfg.max_message = cfg.max_message.clamp(MIN_MESSAGE, STREAM_MAX_MESSAGE);
        if cfg.dialect == Dialect::Netflow9 {
            cfg.uniflow = true;
        }
        Encoder {
            tpl: templates(&cfg),
            cfg,
            buf: Vec::with_capacity(cfg.max_message),
            open: None,
            domains: Vec::new(),
            boot_ms: None,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Forget which templates were sent: the next message of every domain carries them again
    /// (a new TCP connection). Call after [`Encoder::flush`].
    pub fn reset_templates(&mut self) {
        for d in &mut self.domains {
            d.templates_sent = false;
        }
    }

    /// Adds one record; finished messages go to `sink`. `Ok(Some(skip))` when the record
    /// cannot be exported (counted in [`Stats`]); errors are the sink's.
    pub fn add<E>(
        &mut self,
        r: &FlowRecord,
        now_ns: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Option<Skip>, E> {
        self.stats.records += 1;
        if r.flags & flags::INFINIBAND != 0 {
            self.stats.skipped_ib += 1;
            return Ok(Some(Skip::Infiniband));
        }
        let v6 = match r.addr_kind {
            AddrKind::Ipv4 => false,
            AddrKind::Ipv6 => true,
            AddrKind::L2 => {
                self.stats.skipped_non_ip += 1;
                return Ok(Some(Skip::NonIp));
            }
        };
        let icmp = r.is_icmp();
        let (sport, dport, tc) = if icmp {
            (0, 0, r.sport)
        } else {
            (r.sport, r.dport, 0)
        };
        let fwd = Row {
            v6,
            src: r.saddr.0,
            dst: r.daddr.0,
            sport,
            dport,
            proto: r.proto,
            icmp: tc,
            smac: r.smac,
            dmac: r.dmac,
            vlan: r.vlan[0] & 0x0fff,
            end_reason: end_reason(r.cause),
            biflow_dir: if r.flags & flags::DIR_GUESSED != 0 {
                biflow_direction::ARBITRARY
            } else {
                biflow_direction::INITIATOR
            },
            f: dir(&r.src, r),
            r: dir(&r.dst, r),
        };
        if !self.cfg.uniflow {
            self.put(r.probe_id, &fwd, now_ns, sink)?;
            return Ok(None);
        }
        // Uniflow split: the initiator's flow (also for a record without packets, so that
        // every record shows up), then the responder's with addresses, ports and MACs swapped.
        if r.src.pkts > 0 || r.dst.pkts == 0 {
            self.put(r.probe_id, &fwd, now_ns, sink)?;
        }
        if r.dst.pkts > 0 {
            let rev = Row {
                src: fwd.dst,
                dst: fwd.src,
                sport: fwd.dport,
                dport: fwd.sport,
                icmp: if icmp { icmp_reply(v6, tc) } else { 0 },
                smac: fwd.dmac,
                dmac: fwd.smac,
                f: fwd.r,
                r: fwd.f,
                ..fwd
            };
            self.put(r.probe_id, &rev, now_ns, sink)?;
        }
        Ok(None)
    }

    /// Finishes the open message, if any.
    pub fn flush<E>(
        &mut self,
        now_ns: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.finish(now_ns, sink)
    }

    fn domain(&mut self, id: u32) -> usize {
        match self.domains.iter().position(|d| d.id == id) {
            Some(i) => i,
            None => {
                self.domains.push(Domain {
                    id,
                    records: 0,
                    messages: 0,
                    templates_sent: false,
                    since_templates: 0,
                    templates_ns: 0,
                });
                self.domains.len() - 1
            }
        }
    }

    fn put<E>(
        &mut self,
        domain_id: u32,
        row: &Row,
        now_ns: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let nf9 = self.cfg.dialect == Dialect::Netflow9;
        let t = usize::from(row.v6);
        let (tid, rec_len) = (self.tpl[t].id, self.tpl[t].record_len());
        let d = self.domain(domain_id);
        if let Some(o) = self.open {
            if self.domains[o.domain].id != domain_id {
                self.finish(now_ns, sink)?;
            }
        }
        if nf9 {
            let (start, end) = (
                row.f.start_ns / 1_000_000,
                row.f.end_ns.max(row.f.start_ns) / 1_000_000,
            );
            let fits = |b: u64| start >= b && end - b <= UPTIME_LIMIT_MS;
            match self.boot_ms {
                Some(b) if fits(b) => {}
                Some(_) => {
                    // Uptimes of one message share one boot time: move it between messages.
                    self.finish(now_ns, sink)?;
                    self.boot_ms = Some(start.saturating_sub(BOOT_SLACK_MS));
                }
                None => {
                    let now_ms = now_ns / 1_000_000;
                    let b = start.min(now_ms).saturating_sub(BOOT_SLACK_MS);
                    self.boot_ms = Some(if fits(b) {
                        b
                    } else {
                        start.saturating_sub(BOOT_SLACK_MS)
                    });
                }
            }
        }
        // Room: a new set header when the template changes, the record, and the padding.
        if let Some(o) = self.open {
            // The previous set's padding and the new set's header, the record, its padding.
            let new_set = o.set.map(|s| s.1) != Some(tid);
            let need = rec_len + 3 + if new_set { 3 + 4 } else { 0 };
            if self.buf.len() + need > self.cfg.max_message {
                self.finish(now_ns, sink)?;
            }
        }
        if self.open.is_none() {
            self.start(d, now_ns);
        }
        let o = self.open.as_mut().expect("message open");
        if o.set.map(|s| s.1) != Some(tid) {
            close_set(&mut self.buf, o.set.take());
            o.set = Some((self.buf.len(), tid));
            self.buf.extend_from_slice(&tid.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        o.data_records += 1;
        o.count += 1;
        if nf9 {
            o.max_end_ms = o
                .max_end_ms
                .max(row.f.end_ns.max(row.f.start_ns) / 1_000_000);
        }
        let boot = self.boot_ms.unwrap_or(0);
        write_row(&mut self.buf, self.tpl[t].fields, row, boot);
        Ok(())
    }

    /// Opens a message for domain `d`: header placeholder and, when due, the templates.
    fn start(&mut self, d: usize, now_ns: u64) {
        let nf9 = self.cfg.dialect == Dialect::Netflow9;
        self.buf.clear();
        self.buf
            .resize(if nf9 { NF9_HEADER } else { IPFIX_HEADER }, 0);
        let dom = &mut self.domains[d];
        let due = !dom.templates_sent
            || match self.cfg.refresh {
                Refresh::Once => false,
                Refresh::Every { messages, seconds } => {
                    dom.since_templates >= messages
                        || now_ns.saturating_sub(dom.templates_ns)
                            >= seconds.saturating_mul(1_000_000_000)
                }
            };
        let mut count = 0;
        if due {
            dom.templates_sent = true;
            dom.since_templates = 0;
            dom.templates_ns = now_ns;
            let set_start = self.buf.len();
            // Set id 2 (IPFIX template set) / FlowSet id 0 (v9 template FlowSet).
            let set_id: u16 = if nf9 { 0 } else { 2 };
            self.buf.extend_from_slice(&set_id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            for t in &self.tpl {
                self.buf.extend_from_slice(&t.id.to_be_bytes());
                self.buf
                    .extend_from_slice(&(t.fields.len() as u16).to_be_bytes());
                for f in t.fields {
                    let (id, len, rev) = f.spec();
                    let id = if rev { id | 0x8000 } else { id };
                    self.buf.extend_from_slice(&id.to_be_bytes());
                    self.buf.extend_from_slice(&len.to_be_bytes());
                    if rev {
                        self.buf.extend_from_slice(&REVERSE_PEN.to_be_bytes());
                    }
                }
                count += 1;
            }
            // Template records are whole 32-bit words: no padding.
            let len = (self.buf.len() - set_start) as u16;
            self.buf[set_start + 2..set_start + 4].copy_from_slice(&len.to_be_bytes());
            self.stats.template_messages += 1;
        }
        self.open = Some(Open {
            domain: d,
            set: None,
            data_records: 0,
            count,
            max_end_ms: 0,
        });
    }

    fn finish<E>(
        &mut self,
        now_ns: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        close_set(&mut self.buf, o.set);
        let dom = &mut self.domains[o.domain];
        let len = self.buf.len();
        let h = &mut self.buf;
        let mut secs = now_ns / 1_000_000_000;
        match self.cfg.dialect {
            Dialect::Ipfix => {
                h[0..2].copy_from_slice(&10u16.to_be_bytes());
                h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                h[4..8].copy_from_slice(&(secs as u32).to_be_bytes());
                // RFC 7011 §3.1: data records sent in this domain before this message.
                h[8..12].copy_from_slice(&(dom.records as u32).to_be_bytes());
                h[12..16].copy_from_slice(&dom.id.to_be_bytes());
            }
            Dialect::Netflow9 => {
                let boot = self.boot_ms.unwrap_or(0);
                let now_ms = secs * 1000;
                if now_ms < boot || now_ms - boot > u64::from(u32::MAX) {
                    secs = o.max_end_ms.div_ceil(1000);
                }
                let uptime = (secs * 1000).saturating_sub(boot) as u32;
                h[0..2].copy_from_slice(&9u16.to_be_bytes());
                h[2..4].copy_from_slice(&(o.count as u16).to_be_bytes());
                h[4..8].copy_from_slice(&uptime.to_be_bytes());
                h[8..12].copy_from_slice(&(secs as u32).to_be_bytes());
                // RFC 3954 §5.1: export packets sent from this source id before this one.
                h[12..16].copy_from_slice(&(dom.messages as u32).to_be_bytes());
                h[16..20].copy_from_slice(&dom.id.to_be_bytes());
            }
        }
        dom.records += u64::from(o.data_records);
        dom.messages += 1;
        dom.since_templates += 1;
        self.stats.data_records += u64::from(o.data_records);
        self.stats.messages += 1;
        self.stats.bytes += len as u64;
        let res = sink(&self.buf);
        self.buf.clear();
        res
    }
}

/// Pads the open data set to a 32-bit boundary (RFC 7011 §3.3.1, RFC 3954 §5.3: zero octets,
/// fewer than a record) and writes its length.
fn close_set(buf: &mut Vec<u8>, set: Option<(usize, u16)>) {
    let Some((start, _)) = set else { return };
    while (buf.len() - start) % 4 != 0 {
        buf.push(0);
    }
    let len = (buf.len() - start) as u16;
    buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn write_row(buf: &mut Vec<u8>, fields: &[F], r: &Row, boot_ms: u64) {
    let uptime = |ns: u64| ((ns / 1_000_000).saturating_sub(boot_ms) as u32).to_be_bytes();
    for f in fields {
        match f {
            F::SrcV4 => buf.extend_from_slice(&r.src[..4]),
            F::DstV4 => buf.extend_from_slice(&r.dst[..4]),
            F::SrcV6 => buf.extend_from_slice(&r.src),
            F::DstV6 => buf.extend_from_slice(&r.dst),
            F::SrcPort => buf.extend_from_slice(&r.sport.to_be_bytes()),
            F::DstPort => buf.extend_from_slice(&r.dport.to_be_bytes()),
            F::Proto => buf.push(r.proto),
            F::IcmpV4 | F::IcmpV6 | F::Nf9Icmp => buf.extend_from_slice(&r.icmp.to_be_bytes()),
            F::StartMs => buf.extend_from_slice(&(r.f.start_ns / 1_000_000).to_be_bytes()),
            F::EndMs => buf.extend_from_slice(&(r.f.end_ns / 1_000_000).to_be_bytes()),
            F::Start => buf.extend_from_slice(&ntp_timestamp(r.f.start_ns).to_be_bytes()),
            F::End => buf.extend_from_slice(&ntp_timestamp(r.f.end_ns).to_be_bytes()),
            F::Nf9First => buf.extend_from_slice(&uptime(r.f.start_ns)),
            F::Nf9Last => buf.extend_from_slice(&uptime(r.f.end_ns.max(r.f.start_ns))),
            F::Octets => buf.extend_from_slice(&r.f.octets.to_be_bytes()),
            F::Packets => buf.extend_from_slice(&r.f.pkts.to_be_bytes()),
            F::L2Octets => buf.extend_from_slice(&r.f.l2_octets.to_be_bytes()),
            F::TcpFlags => buf.extend_from_slice(&u16::from(r.f.tcp_flags).to_be_bytes()),
            F::Nf9TcpFlags => buf.push(r.f.tcp_flags),
            F::Tos => buf.push(r.f.tos),
            F::MinTtl => buf.push(r.f.ttl_min),
            F::MaxTtl => buf.push(r.f.ttl_max),
            F::SrcMac => buf.extend_from_slice(&r.smac),
            F::DstMac => buf.extend_from_slice(&r.dmac),
            F::Vlan => buf.extend_from_slice(&r.vlan.to_be_bytes()),
            F::EndReason => buf.push(r.end_reason),
            F::BiflowDir => buf.push(r.biflow_dir),
            F::RStart => buf.extend_from_slice(&ntp_timestamp(r.r.start_ns).to_be_bytes()),
            F::REnd => buf.extend_from_slice(&ntp_timestamp(r.r.end_ns).to_be_bytes()),
            F::ROctets => buf.extend_from_slice(&r.r.octets.to_be_bytes()),
            F::RPackets => buf.extend_from_slice(&r.r.pkts.to_be_bytes()),
            F::RL2Octets => buf.extend_from_slice(&r.r.l2_octets.to_be_bytes()),
            F::RTcpFlags => buf.extend_from_slice(&u16::from(r.r.tcp_flags).to_be_bytes()),
            F::RTos => buf.push(r.r.tos),
            F::RMinTtl => buf.push(r.r.ttl_min),
            F::RMaxTtl => buf.push(r.r.ttl_max),
        }
    }
}
