//! The flow record: what a probe says about one flow over one reporting interval.
//!
//! A record is bidirectional. `src` is the initiator (TCP SYN sender, or the best guess for a
//! flow picked up mid-stream) and `dst` the responder; `src_stats`/`dst_stats` hold what each of
//! them sent. Counters are deltas since the flow's previous record, so records of one flow sum.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of endpoint addresses a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AddrKind {
    /// Non-IP frame: addresses are MAC addresses (first 6 bytes), `ethertype` says what it was.
    #[default]
    L2 = 0,
    Ipv4 = 4,
    Ipv6 = 6,
}

impl AddrKind {
    pub fn from_u8(v: u8) -> Option<AddrKind> {
        match v {
            0 => Some(AddrKind::L2),
            4 => Some(AddrKind::Ipv4),
            6 => Some(AddrKind::Ipv6),
            _ => None,
        }
    }
}

/// An endpoint address stored in 16 bytes: IPv4 in the first 4, MAC in the first 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub fn from_v4(b: [u8; 4]) -> Addr {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&b);
        Addr(a)
    }
    pub fn from_mac(b: [u8; 6]) -> Addr {
        let mut a = [0u8; 16];
        a[..6].copy_from_slice(&b);
        Addr(a)
    }
    pub fn to_ip(&self, kind: AddrKind) -> Option<IpAddr> {
        match kind {
            AddrKind::Ipv4 => Some(IpAddr::V4(Ipv4Addr::new(
                self.0[0], self.0[1], self.0[2], self.0[3],
            ))),
            AddrKind::Ipv6 => Some(IpAddr::V6(Ipv6Addr::from(self.0))),
            AddrKind::L2 => None,
        }
    }
    pub fn mac(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.0[..6]);
        m
    }
    /// Formats the address as the given kind (dotted quad, RFC 5952 IPv6, or colon MAC).
    pub fn display(&self, kind: AddrKind) -> AddrDisplay {
        AddrDisplay(*self, kind)
    }
}

pub struct AddrDisplay(Addr, AddrKind);

impl fmt::Display for AddrDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.to_ip(self.1) {
            Some(ip) => write!(f, "{ip}"),
            None => fmt_mac(f, &self.0.mac()),
        }
    }
}

pub fn fmt_mac(f: &mut fmt::Formatter<'_>, m: &[u8; 6]) -> fmt::Result {
    write!(
        f,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Why a record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Cause {
    /// First report of a flow that is still active (only when start records are enabled).
    Start = 0,
    /// Periodic status record of a live flow.
    #[default]
    Status = 1,
    /// The flow ended (FIN exchange or RST) and its linger time passed.
    Close = 2,
    /// The flow saw no packet for its idle timeout.
    Idle = 3,
    /// The flow was pushed out of a full table to make room.
    Evicted = 4,
    /// The probe stopped (end of capture file, or SIGTERM) with the flow still open.
    Shutdown = 5,
}

impl Cause {
    pub fn from_u8(v: u8) -> Option<Cause> {
        Some(match v {
            0 => Cause::Start,
            1 => Cause::Status,
            2 => Cause::Close,
            3 => Cause::Idle,
            4 => Cause::Evicted,
            5 => Cause::Shutdown,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Status => "status",
            Cause::Close => "close",
            Cause::Idle => "idle",
            Cause::Evicted => "evicted",
            Cause::Shutdown => "shutdown",
        }
    }
    /// True when this is the flow's last record.
    pub fn is_final(self) -> bool {
        !matches!(self, Cause::Start | Cause::Status)
    }
}

/// Connection state as Argus names it (`state` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FlowState {
    /// Nothing TCP-specific: see `derived_state` for the Argus-style INT/REQ/RSP/CON.
    #[default]
    None = 0,
    /// TCP: SYN seen, no SYN-ACK yet.
    Req = 1,
    /// TCP: SYN-ACK seen, handshake not completed.
    Acc = 2,
    /// TCP: established (handshake done, or data both ways mid-stream).
    Con = 3,
    /// TCP: FIN seen.
    Fin = 4,
    /// TCP: both FINs acknowledged.
    Clo = 5,
    /// TCP: reset.
    Rst = 6,
}

impl FlowState {
    pub fn from_u8(v: u8) -> Option<FlowState> {
        Some(match v {
            0 => FlowState::None,
            1 => FlowState::Req,
            2 => FlowState::Acc,
            3 => FlowState::Con,
            4 => FlowState::Fin,
            5 => FlowState::Clo,
            6 => FlowState::Rst,
            _ => return None,
        })
    }
}

/// Which directions were observed by the probe that made the record.
pub mod observed {
    /// Packets from src to dst were seen.
    pub const SRC_TO_DST: u8 = 1;
    /// Packets from dst to src were seen.
    pub const DST_TO_SRC: u8 = 2;
}

/// Encapsulation kinds (bit set, `encap.kinds`).
pub mod encap {
    pub const VLAN: u16 = 1 << 0;
    pub const QINQ: u16 = 1 << 1;
    pub const MPLS: u16 = 1 << 2;
    pub const PPPOE: u16 = 1 << 3;
    pub const GRE: u16 = 1 << 4;
    pub const ERSPAN: u16 = 1 << 5;
    pub const VXLAN: u16 = 1 << 6;
    pub const GENEVE: u16 = 1 << 7;
    pub const GTPU: u16 = 1 << 8;
    pub const IPIP: u16 = 1 << 9;
    pub const IP6IN4: u16 = 1 << 10;
    pub const TEREDO: u16 = 1 << 11;
    pub const TEB: u16 = 1 << 12;
    pub const NAMES: [(u16, &str); 13] = [
        (VLAN, "vlan"),
        (QINQ, "qinq"),
        (MPLS, "mpls"),
        (PPPOE, "pppoe"),
        (GRE, "gre"),
        (ERSPAN, "erspan"),
        (VXLAN, "vxlan"),
        (GENEVE, "geneve"),
        (GTPU, "gtpu"),
        (IPIP, "ipip"),
        (IP6IN4, "6in4"),
        (TEREDO, "teredo"),
        (TEB, "teb"),
    ];
}

/// Per-record flag bits (`FlowRecord::flags`).
pub mod flags {
    /// IP fragments were seen.
    pub const FRAGMENTS: u32 = 1 << 0;
    /// IPv4 options (or IPv6 hop-by-hop/destination options) were seen.
    pub const IP_OPTIONS: u32 = 1 << 1;
    /// A packet of this flow was cut short by the capture snap length.
    pub const TRUNCATED: u32 = 1 << 2;
    /// The src/dst orientation is a guess (no handshake seen).
    pub const DIR_GUESSED: u32 = 1 << 3;
    /// ECN congestion-experienced marks were seen.
    pub const ECN_CE: u32 = 1 << 4;
    /// Payload bytes were captured into this record.
    pub const PAYLOAD: u32 = 1 << 5;
    /// Made by a probe that sees only one direction of the link (half-duplex tap leg).
    pub const ONE_WAY: u32 = 1 << 6;
    /// IPsec AH was decoded through (the flow is the protected transport's).
    pub const IPSEC_AH: u32 = 1 << 7;
    /// Written by the merge daemon for a flow only one probe reported (no partner half
    /// arrived within the flow's lifetime plus the hold time).
    pub const ONE_SIDED: u32 = 1 << 8;
    /// Written by the merge daemon: the record joins the halves of two one-way probes.
    pub const MERGED: u32 = 1 << 9;
    /// An InfiniBand flow (native IB or RoCEv2, format 1.3): `addr_kind` is `Ipv6` and the
    /// addresses are the GIDs (zero without a GRH), `proto` is [`IBA_TRANSPORT`](crate::IBA_TRANSPORT)
    /// and the IB fields are in `FlowRecord::ib`.
    pub const INFINIBAND: u32 = 1 << 10;
}

/// `proto` of InfiniBand records: the GRH next-header value of the IBA transport (0x1B).
pub const IBA_TRANSPORT: u8 = 0x1b;

/// `IbInfo::flags` bits.
pub mod ib_flags {
    /// Keyed by GIDs: the packets carried a GRH (native IB).
    pub const GRH: u8 = 1 << 0;
    /// RoCEv2 (BTH in UDP port 4791): the GIDs are the IP addresses (IPv4 as `::ffff:a.b.c.d`).
    pub const ROCEV2: u8 = 1 << 1;
    /// `sqp` is known (a DETH named the source QP); without it `sqp` is 0.
    pub const SQP: u8 = 1 << 2;
    /// Link-level packets (flow control, ERF type 25), not addressed to any QP.
    pub const LINK: u8 = 1 << 3;
}

/// What an InfiniBand record carries beyond the common fields (format 1.3).
///
/// An IB flow is keyed by (SLID, DLID), or by the GIDs when a GRH is present (RoCEv2: the IP
/// addresses), plus the destination QP and, when a DETH names it, the source QP. PSN-based
/// loss, retransmissions and reordering go in the common `DirStats` counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IbInfo {
    /// Local identifiers of the initiator and responder (0 for RoCEv2).
    pub slid: u16,
    pub dlid: u16,
    /// Source QP (when `ib_flags::SQP`) and destination QP, 24 bits each.
    pub sqp: u32,
    pub dqp: u32,
    /// Partition key of the last packet.
    pub pkey: u16,
    /// `ib_flags::*`.
    pub flags: u8,
    /// BTH opcodes seen, a 256-bit set (bit `op` of word `op / 64`). The transport service is
    /// the opcode's top three bits.
    pub opcodes: [u64; 4],
    /// AETH NAKs (syndrome 011) and RNR NAKs (syndrome 001) seen.
    pub naks: u32,
    pub rnr_naks: u32,
}

impl IbInfo {
    pub fn is_empty(&self) -> bool {
        *self == IbInfo::default()
    }
    /// Adds opcode `op` to the set.
    #[inline]
    pub fn add_opcode(&mut self, op: u8) {
        self.opcodes[usize::from(op >> 6)] |= 1u64 << (op & 63);
    }
    pub fn has_opcode(&self, op: u8) -> bool {
        self.opcodes[usize::from(op >> 6)] & (1u64 << (op & 63)) != 0
    }
    /// The opcode set as 32 bytes (bit `op % 8` of byte `op / 8`), the record encoding.
    pub fn opcode_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, w) in self.opcodes.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }
    pub fn set_opcode_bytes(&mut self, b: &[u8; 32]) {
        for (i, w) in self.opcodes.iter_mut().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *w = u64::from_le_bytes(x);
        }
    }
    /// Transport services seen (bit = opcode >> 5: 0 RC, 1 UC, 2 RD, 3 UD, 4 CNP, 5 XRC).
    pub fn services(&self) -> u8 {
        let mut s = 0u8;
        for svc in 0..8u8 {
            let w = self.opcodes[usize::from(svc >> 1)] >> ((svc & 1) * 32);
            if w & 0xffff_ffff != 0 {
                s |= 1 << svc;
            }
        }
        s
    }
}

/// InfiniBand transport service names, by the opcode's top three bits.
pub const IB_SERVICES: [&str; 8] = ["RC", "UC", "RD", "UD", "CNP", "XRC", "svc6", "svc7"];

/// The IBA opcode name (vol. 1 §9.2.1, table 38) without its service prefix, or `None` for a
/// reserved code.
pub fn ib_opcode_name(op: u8) -> Option<&'static str> {
    const OPS: [&str; 26] = [
        "SEND_FIRST",
        "SEND_MIDDLE",
        "SEND_LAST",
        "SEND_LAST_IMM",
        "SEND_ONLY",
        "SEND_ONLY_IMM",
        "WRITE_FIRST",
        "WRITE_MIDDLE",
        "WRITE_LAST",
        "WRITE_LAST_IMM",
        "WRITE_ONLY",
        "WRITE_ONLY_IMM",
        "READ_REQ",
        "READ_RESP_FIRST",
        "READ_RESP_MIDDLE",
        "READ_RESP_LAST",
        "READ_RESP_ONLY",
        "ACK",
        "ATOMIC_ACK",
        "CMP_SWAP",
        "FETCH_ADD",
        "",
        "SEND_LAST_INV",
        "SEND_ONLY_INV",
        "",
        "",
    ];
    let (svc, m) = (op >> 5, (op & 0x1f) as usize);
    let name = match svc {
        // RC and XRC share the table (XRC adds the XRCETH).
        0 | 5 => OPS.get(m).copied(),
        // UC: sends and RDMA writes only.
        1 if m <= 0x0b => Some(OPS[m]),
        // RD: everything RC has except the invalidate sends.
        2 if m <= 0x14 => Some(OPS[m]),
        3 if m == 4 || m == 5 => Some(OPS[m]),
        4 if m == 1 => Some("CNP"),
        _ => None,
    };
    name.filter(|n| !n.is_empty())
}

/// TCP options seen in the handshake (`FlowRecord::tcp_opts`).
pub mod tcp_opts {
    pub const MSS: u8 = 1 << 0;
    pub const WSCALE: u8 = 1 << 1;
    pub const SACK_OK: u8 = 1 << 2;
    pub const SACK: u8 = 1 << 3;
    pub const TSTAMP: u8 = 1 << 4;
    pub const ECN: u8 = 1 << 5;
}

/// What one side of the flow sent during the record's interval.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DirStats {
    /// Packets.
    pub pkts: u64,
    /// Bytes as Argus counts them: wire length of the frame, link header included
    /// (for SLL/NULL/PPP the link pseudo-header is left out, as Argus does).
    pub bytes: u64,
    /// Bytes of the (innermost) IP packet, IP header included.
    pub ip_bytes: u64,
    /// Transport payload bytes (TCP/UDP/SCTP/ICMP data after its header).
    pub app_bytes: u64,
    /// Time of the first and last packet in this interval, ns since the epoch (0 if none).
    pub first_ns: u64,
    pub last_ns: u64,
    /// Smallest and largest TTL / hop limit seen.
    pub ttl_min: u8,
    pub ttl_max: u8,
    /// TOS/traffic-class byte of the last packet (DSCP << 2 | ECN).
    pub tos: u8,
    /// OR of the TCP flags seen.
    pub tcp_flags: u8,
    /// TCP segments that repeated data already seen.
    pub retrans: u32,
    /// TCP segments that arrived below the highest sequence seen but filled a gap.
    pub out_of_order: u32,
    /// TCP segments advertising a zero window.
    pub zero_win: u32,
    /// Sequence gaps (segments missing before the tap) and the bytes they covered.
    pub loss_pkts: u32,
    pub loss_bytes: u64,
    /// Last advertised TCP window, scaled when window scaling was negotiated.
    pub window: u32,
    /// TCP: ISN (from the SYN), first and last sequence number, last ack number seen.
    pub isn: u32,
    pub first_seq: u32,
    pub last_seq: u32,
    pub last_ack: u32,
    /// Inter-packet intervals: count, mean and standard deviation in ns (jitter = stddev).
    pub ipt_n: u32,
    pub ipt_mean_ns: f64,
    pub ipt_std_ns: f64,
    /// IP fragments sent.
    pub frags: u32,
}

/// The encapsulation a flow was seen in: kinds (bit set), a tunnel id and the outer addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Encap {
    pub kinds: u16,
    /// VXLAN/GENEVE VNI, GTP-U TEID, GRE key or ERSPAN session, 0 if none.
    pub tunnel_id: u32,
    /// Outer (tunnel endpoint) addresses of the innermost tunnel, `outer_kind` says which family.
    pub outer_kind: AddrKind,
    pub outer_src: Addr,
    pub outer_dst: Addr,
}

/// Where a worker's packets went during one interval (counters are deltas over the interval).
///
/// Identities a reader can check (exact over a whole run; within an interval up to the packets
/// still in the kernel ring at its end): `seen = delivered + ring_drops + filtered + passed +
/// invalid`, `delivered = decoded + malformed`, `records = records_queued + records_dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProbeStatus {
    /// Worker index (one per NIC queue / fanout member).
    pub worker: u32,
    /// `status_flags::*`.
    pub flags: u32,
    /// Packets the NIC/kernel/XDP program saw for this worker's sockets.
    pub seen: u64,
    /// Packets taken out of the capture ring by the worker.
    pub delivered: u64,
    /// Lost because a kernel ring was full (AF_PACKET tp_drops, AF_XDP ring/fill drops).
    pub ring_drops: u64,
    /// Dropped on purpose by the early-drop prefixes.
    pub filtered: u64,
    /// Left to the kernel stack (XDP: no socket on the queue).
    pub passed: u64,
    /// Descriptors the kernel called invalid.
    pub invalid: u64,
    /// Packets decoded and applied to a flow.
    pub decoded: u64,
    /// Packets that did not decode.
    pub malformed: u64,
    /// New flows admitted to the table.
    pub flows_admitted: u64,
    /// Flows pushed out of a full table.
    pub evictions: u64,
    /// Flow records handed to the output thread.
    pub records_queued: u64,
    /// Flow records lost because the output queue was full.
    pub records_dropped: u64,
    /// Flows in the table at the end of the interval (a level, not a delta).
    pub active_flows: u64,
}

impl ProbeStatus {
    /// Adds another record's deltas (`active_flows`, a level, takes the newer value).
    pub fn add(&mut self, d: &ProbeStatus) {
        self.seen += d.seen;
        self.delivered += d.delivered;
        self.ring_drops += d.ring_drops;
        self.filtered += d.filtered;
        self.passed += d.passed;
        self.invalid += d.invalid;
        self.decoded += d.decoded;
        self.malformed += d.malformed;
        self.flows_admitted += d.flows_admitted;
        self.evictions += d.evictions;
        self.records_queued += d.records_queued;
        self.records_dropped += d.records_dropped;
        self.active_flows = d.active_flows;
    }

    /// `self - earlier` for cumulative counters (a counter that went back gives 0, not a
    /// wrap); `worker`, `flags` and `active_flows` are `self`'s.
    pub fn delta(&self, e: &ProbeStatus) -> ProbeStatus {
        ProbeStatus {
            worker: self.worker,
            flags: self.flags,
            seen: self.seen.saturating_sub(e.seen),
            delivered: self.delivered.saturating_sub(e.delivered),
            ring_drops: self.ring_drops.saturating_sub(e.ring_drops),
            filtered: self.filtered.saturating_sub(e.filtered),
            passed: self.passed.saturating_sub(e.passed),
            invalid: self.invalid.saturating_sub(e.invalid),
            decoded: self.decoded.saturating_sub(e.decoded),
            malformed: self.malformed.saturating_sub(e.malformed),
            flows_admitted: self.flows_admitted.saturating_sub(e.flows_admitted),
            evictions: self.evictions.saturating_sub(e.evictions),
            records_queued: self.records_queued.saturating_sub(e.records_queued),
            records_dropped: self.records_dropped.saturating_sub(e.records_dropped),
            active_flows: self.active_flows,
        }
    }

    /// Packets seen but in no class: `seen - (delivered + every drop class)`; 0 when every
    /// packet is accounted for.
    pub fn unaccounted(&self) -> i64 {
        self.seen as i64
            - (self.delivered + self.ring_drops + self.filtered + self.passed + self.invalid) as i64
    }

    /// `delivered - (decoded + malformed)`: 0 when every delivered packet reached the engine.
    pub fn undecoded(&self) -> i64 {
        self.delivered as i64 - (self.decoded + self.malformed) as i64
    }
}

/// `ProbeStatus::flags` bits.
pub mod status_flags {
    /// The last status record of a worker (probe shutting down).
    pub const FINAL: u32 = 0x01;
    /// AF_XDP asked for zero-copy in `auto` mode and fell back to copy mode.
    pub const XDP_COPY_FALLBACK: u32 = 0x02;
    /// The sockets run AF_XDP in zero-copy mode.
    pub const XDP_ZERO_COPY: u32 = 0x04;
}

/// TCP handshake evidence a one-way probe keeps so that the merge daemon can pair the halves
/// of a connection seen by two probes, fix the initiator and estimate the probes' clock offset
/// (format 1.2). Times are ns since the epoch on the clock of the probe that saw the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Handshake {
    /// The initiator's (last) SYN, 0 if not seen.
    pub syn_ns: u64,
    /// The responder's first SYN-ACK, 0 if not seen.
    pub synack_ns: u64,
    /// The initiator's first ACK after its SYN (the third packet of the handshake), 0 if not
    /// seen.
    pub ack_ns: u64,
    /// Acknowledgment number of that SYN-ACK (the initiator's ISN + 1).
    pub synack_ack: u32,
    /// Acknowledgment number of that ACK (the responder's ISN + 1).
    pub ack_ack: u32,
}

impl Handshake {
    pub fn is_empty(&self) -> bool {
        *self == Handshake::default()
    }
}

/// The merge daemon's own accounting for one input probe and interval (format 1.2), written
/// as a merge-status record into the merged stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MergeStatus {
    /// Probe id of the input this entry is about.
    pub probe: u32,
    /// `merge_flags::*`.
    pub flags: u32,
    /// Half-records received from this probe (duplicates included).
    pub records_in: u64,
    /// Records dropped because their sequence number was already received (spool replay).
    pub duplicates: u64,
    /// Records missing: sequence numbers skipped in the probe's stream.
    pub gaps: u64,
    /// Records that arrived after their interval had been merged (applied late).
    pub late: u64,
    /// Estimated clock offset of this probe: its clock minus the reference probe's, ns.
    pub offset_ns: i64,
    /// Half-width of the interval the offset is known to lie in, ns (0 with no evidence).
    pub offset_err_ns: u64,
    /// Handshake packet pairs the estimate rests on (cumulative).
    pub offset_pairs: u64,
    /// Merged flows that ended with halves from both probes (all inputs; delta).
    pub joined: u64,
    /// Merged flows that ended with one probe's halves only (all inputs; delta).
    pub one_sided: u64,
    /// Merged flow records written (all inputs; delta).
    pub records_out: u64,
    /// Merged flows pushed out of the full merge table (all inputs; delta).
    pub evictions: u64,
    /// Merged flows held at the end of the interval (a level).
    pub active_flows: u64,
}

/// `MergeStatus::flags` bits.
pub mod merge_flags {
    /// This probe's clock is the reference the others are corrected to.
    pub const REFERENCE: u32 = 0x01;
    /// |offset| exceeds the configured limit: the probes' clocks need attention.
    pub const SKEW_ALARM: u32 = 0x02;
    /// No offset evidence yet (no handshake split between this probe and the reference).
    pub const NO_OFFSET: u32 = 0x04;
    /// Reserved (live daemon): the probe's stream fell behind by more than the hold time.
    pub const STALLED: u32 = 0x08;
    /// The merge daemon's last status record (shutting down).
    pub const FINAL: u32 = 0x10;
    /// Reserved (live daemon): the probe is disconnected.
    pub const DISCONNECTED: u32 = 0x20;
}

/// One flow record.
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FlowRecord {
    /// Probe that made the record and its per-probe sequence number (gaps mean lost records).
    pub probe_id: u32,
    pub seq: u64,
    pub cause: Cause,
    /// `observed::*` bits.
    pub observed: u8,
    pub addr_kind: AddrKind,
    /// IP protocol number (0 for L2 flows).
    pub proto: u8,
    /// Ethertype for L2 flows (ARP 0x0806 …), of the IP layer otherwise.
    pub ethertype: u16,
    pub saddr: Addr,
    pub daddr: Addr,
    /// Ports; for ICMP/ICMPv6 `sport` = type << 8 | code of the initiator's message and
    /// `dport` = identifier for query messages (echo, timestamp …), 0 otherwise.
    pub sport: u16,
    pub dport: u16,
    /// Time of the first and last packet of this record, ns since the epoch.
    pub stime_ns: u64,
    pub ltime_ns: u64,
    pub state: FlowState,
    /// `flags::*` bits.
    pub flags: u32,
    /// `tcp_opts::*` bits seen in the handshake.
    pub tcp_opts: u8,
    /// SYN → SYN-ACK and SYN-ACK → ACK times (ns, 0 if not seen). tcprtt = their sum.
    pub synack_ns: u64,
    pub ackdat_ns: u64,
    /// MAC addresses of the initiator and responder (from the outermost Ethernet header).
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// Outer and inner VLAN id (0 = none).
    pub vlan: [u16; 2],
    /// Top MPLS label stack entries (label values), 0 = none.
    pub mpls: [u32; 2],
    pub encap: Encap,
    pub src: DirStats,
    pub dst: DirStats,
    /// First payload bytes each way, when payload capture is on.
    pub src_payload: Vec<u8>,
    pub dst_payload: Vec<u8>,
    /// Set on probe-status records (format 1.1): the probe's own accounting for one worker
    /// and interval (`stime_ns..ltime_ns`), the role Argus's MAR records play. Such a record
    /// describes no flow; its flow fields stay at their defaults.
    pub status: Option<Box<ProbeStatus>>,
    /// Handshake evidence for the merge (one-way probes only, format 1.2; carried by the
    /// record whose interval saw the handshake packets).
    pub hs: Handshake,
    /// Set on merge-status records (format 1.2); like `status`, such a record describes no
    /// flow.
    pub merge: Option<Box<MergeStatus>>,
    /// InfiniBand fields (format 1.3), on records with `flags::INFINIBAND`.
    pub ib: IbInfo,
}

impl FlowRecord {
    /// Back to the default record, keeping the payload buffers' capacity (for decoding many
    /// records into one).
    pub fn reset(&mut self) {
        let mut sp = std::mem::take(&mut self.src_payload);
        let mut dp = std::mem::take(&mut self.dst_payload);
        sp.clear();
        dp.clear();
        *self = FlowRecord {
            src_payload: sp,
            dst_payload: dp,
            ..FlowRecord::default()
        };
    }

    /// True for probe-status and merge-status records (they describe no flow).
    pub fn is_meta(&self) -> bool {
        self.status.is_some() || self.merge.is_some()
    }
    // Saturating: records come from files, and a damaged or hostile one may hold anything.
    pub fn pkts(&self) -> u64 {
        self.src.pkts.saturating_add(self.dst.pkts)
    }
    pub fn bytes(&self) -> u64 {
        self.src.bytes.saturating_add(self.dst.bytes)
    }
    pub fn dur_ns(&self) -> u64 {
        self.ltime_ns.saturating_sub(self.stime_ns)
    }
    /// True for InfiniBand / RoCEv2 flow records.
    pub fn is_ib(&self) -> bool {
        self.flags & flags::INFINIBAND != 0
    }
    pub fn is_icmp(&self) -> bool {
        matches!(
            (self.addr_kind, self.proto),
            (AddrKind::Ipv4, 1) | (AddrKind::Ipv6, 58)
        )
    }
    /// The Argus `state` string for this record.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            FlowState::Req => return "REQ",
            FlowState::Acc => return "ACC",
            FlowState::Con => return "CON",
            FlowState::Fin => return "FIN",
            FlowState::Clo => return "CLO",
            FlowState::Rst => return "RST",
            FlowState::None => {}
        }
        if self.is_icmp() {
            if let Some(s) = icmp_state(self.addr_kind, (self.sport >> 8) as u8, self.sport as u8) {
                return s;
            }
        }
        match (self.src.pkts > 0, self.dst.pkts > 0) {
            (true, true) => "CON",
            (true, false) if self.cause == Cause::Status => "REQ",
            (true, false) => "INT",
            (false, true) => "RSP",
            (false, false) => "INT",
        }
    }
    /// The Argus `dir` column.
    pub fn dir_str(&self) -> &'static str {
        if self.addr_kind == AddrKind::L2 && self.ethertype == 0x0806 {
            return " who";
        }
        let guessed = self.flags & flags::DIR_GUESSED != 0;
        match (self.src.pkts > 0, self.dst.pkts > 0, guessed) {
            (true, true, false) => "<->",
            (true, true, true) => "<?>",
            (true, false, false) => " ->",
            (true, false, true) => " ?>",
            (false, true, false) => "<- ",
            (false, true, true) => "<? ",
            (false, false, _) => "   ",
        }
    }
}

/// Argus-style state names for ICMP message types.
pub fn icmp_state(kind: AddrKind, ty: u8, code: u8) -> Option<&'static str> {
    match kind {
        AddrKind::Ipv4 => Some(match ty {
            0 => "ECR",
            3 => match code {
                0 => "URN",
                1 => "URH",
                2 => "URO",
                3 => "URP",
                4 => "URF",
                5 => "URS",
                _ => "UR",
            },
            4 => "SRC",
            5 => "RED",
            8 => "ECO",
            9 => "RTA",
            10 => "RTS",
            11 => "TXD",
            12 => "PAR",
            13 => "TST",
            14 => "TSR",
            15 => "IRQ",
            16 => "IRR",
            17 => "MAS",
            18 => "MSR",
            _ => return None,
        }),
        AddrKind::Ipv6 => Some(match ty {
            1 => "UR",
            2 => "PTB",
            3 => "TXD",
            4 => "PAR",
            128 => "ECO",
            129 => "ECR",
            130 => "MRQ",
            131 => "MRP",
            132 => "MRD",
            133 => "NRS",
            134 => "NRA",
            135 => "NNS",
            136 => "NNA",
            137 => "RED",
            143 => "MHR",
            _ => return None,
        }),
        AddrKind::L2 => None,
    }
}

/// IANA protocol names as Argus prints them.
pub fn proto_name(kind: AddrKind, proto: u8, ethertype: u16) -> String {
    if kind == AddrKind::L2 {
        return match ethertype {
            0x0806 => "arp".into(),
            0x8035 => "rarp".into(),
            0x8863 | 0x8864 => "pppoe".into(),
            0x88cc => "lldp".into(),
            0x9000 => "loop".into(),
            e if e < 0x0600 => "llc".into(),
            e => format!("0x{e:04x}"),
        };
    }
    match proto_name_static(proto) {
        Some(n) => n.into(),
        None => proto.to_string(),
    }
}

pub fn proto_name_static(proto: u8) -> Option<&'static str> {
    Some(match proto {
        0 => "hopopt",
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        59 => "ipv6-no",
        60 => "ipv6-opts",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}

/// Protocol number for a name accepted by filters (`tcp`, `udp`, `icmp`, …).
pub fn proto_by_name(name: &str) -> Option<u8> {
    (0u8..=255)
        .find(|&p| proto_name_static(p) == Some(name))
        .or(match name {
            "icmp6" | "icmpv6" => Some(58),
            _ => None,
        })
}
