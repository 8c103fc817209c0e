//! Argus 3 record files (as Debian's argus-client 3.0.8 reads them) to and from tapflow flow
//! records.
//!
//! Shared by `tapflow convert --to argus`, the client's sources (an Argus file is read like a
//! record file) and, later, the probe's port-561 server. Pure functions over bytes: everything
//! is big-endian, one output `Vec` is reused, nothing is allocated per record. The byte
//! layout follows `../shared/research/argus-format.md`; the mapping is in `docs/interop.md`.
//!
//! * [`encode_far`] / [`encode_mar`]: one flow record / management record as bytes.
//! * [`ArgusWriter`]: a file (START MAR, one FAR per flow record, STOP MAR).
//! * [`decode_far`], [`ArgusReader`]: the inverse; damage is reported as warnings with the
//!   byte offset, every good record is kept, nothing panics.
//! * [`carried`]: what of a record survives the trip through Argus (the round-trip contract).
#![deny(unsafe_code)]

mod read;
mod write;

pub use read::{decode_far, is_argus, ArgusReader, DecodeError};
pub use write::{encode_far, encode_mar, ArgusWriter, MarKind};

use tapflow_record::{encap, flags, tcp_opts, AddrKind, Cause, FlowRecord, FlowState};

/// The START MAR's cookie at offset 8 (version 3 data).
pub const COOKIE: u32 = 0xE571_2DCB;
/// Every MAR is 128 bytes (32 words).
pub const MAR_LEN: usize = 128;

// Record types (high nibble of byte 0) and the version nibble we write.
pub(crate) const TYPE_MAR: u8 = 0x80;
pub(crate) const TYPE_FAR: u8 = 0x10;
pub(crate) const VERSION: u8 = 0x03;

// Causes (high nibble of byte 1).
pub(crate) const CAUSE_START: u8 = 0x10;
pub(crate) const CAUSE_STATUS: u8 = 0x20;
pub(crate) const CAUSE_STOP: u8 = 0x30;
pub(crate) const CAUSE_TIMEOUT: u8 = 0x40;
pub(crate) const CAUSE_FLUSH: u8 = 0x50;
pub(crate) const CAUSE_SHUTDOWN: u8 = 0x60;
pub(crate) const CAUSE_CLOSED: u8 = 0x70;

// DSR types.
pub(crate) const DSR_TRANSPORT: u8 = 0x01;
pub(crate) const DSR_FLOW: u8 = 0x02;
pub(crate) const DSR_TIME: u8 = 0x03;
pub(crate) const DSR_METRIC: u8 = 0x10;
pub(crate) const DSR_ENCAPS: u8 = 0x20;
pub(crate) const DSR_NETWORK: u8 = 0x30;
pub(crate) const DSR_VLAN: u8 = 0x40;
pub(crate) const DSR_MAC: u8 = 0x42;
pub(crate) const DSR_MPLS: u8 = 0x44;
pub(crate) const DSR_JITTER: u8 = 0x46;
pub(crate) const DSR_IPATTR: u8 = 0x48;
pub(crate) const DSR_USER: u8 = 0x50;

// Network DSR subtypes.
pub(crate) const NET_TCP_INIT: u8 = 0x03;
pub(crate) const NET_TCP_STATUS: u8 = 0x04;
pub(crate) const NET_TCP_PERF: u8 = 0x05;
pub(crate) const NET_FRAG: u8 = 0x45;

/// TCP status bits of the network DSR (argus-format.md §4.5).
pub mod tcp_status {
    pub const SAW_SYN: u32 = 0x01;
    pub const SAW_SYN_SENT: u32 = 0x02;
    pub const CON_ESTABLISHED: u32 = 0x04;
    pub const FIN: u32 = 0x08;
    pub const FIN_ACK: u32 = 0x10;
    pub const NORMAL_CLOSE: u32 = 0x20;
    pub const SRC_RETRANS: u32 = 0x100;
    pub const DST_RETRANS: u32 = 0x200;
    pub const SRC_WINDOW_SHUT: u32 = 0x400;
    pub const DST_WINDOW_SHUT: u32 = 0x800;
    pub const SRC_RESET: u32 = 0x1000;
    pub const DST_RESET: u32 = 0x2000;
    pub const SRC_ECN: u32 = 0x4000;
    pub const DST_ECN: u32 = 0x8000;
    pub const SRC_OUTOFORDER: u32 = 0x10000;
    pub const DST_OUTOFORDER: u32 = 0x20000;
    pub const RESET: u32 = SRC_RESET | DST_RESET;
    pub const SYN_BITS: u32 = SAW_SYN | SAW_SYN_SENT;
}

/// TCP option bits of the TCP_PERF DSR, paired with tapflow's `tcp_opts` bits.
pub(crate) const TCP_OPTS: [(u8, u32); 6] = [
    (tcp_opts::MSS, 0x0010_0000),
    (tcp_opts::WSCALE, 0x0020_0000),
    (tcp_opts::SACK_OK, 0x0040_0000),
    (tcp_opts::SACK, 0x0080_0000),
    (tcp_opts::TSTAMP, 0x0400_0000),
    (tcp_opts::ECN, 0x4000_0000),
];

/// Encapsulation DSR bits paired with tapflow's `encap` kinds, for the kinds both know.
/// Read back one to one; `QINQ` is written as 802.1Q and reads back as `VLAN`.
pub(crate) const ENCAPS: [(u16, u32); 6] = [
    (encap::MPLS, 0x1),
    (encap::VLAN, 0x4),
    (encap::GRE, 0x40),
    (encap::IPIP, 0x100),
    (encap::IP6IN4, 0x200),
    (encap::TEREDO, 0x40_0000),
];
/// Ethernet, and the IPsec AH bit that carries `flags::IPSEC_AH`.
pub(crate) const ENCAPS_ETHER: u32 = 0x2;
pub(crate) const ENCAPS_8021Q: u32 = 0x4;
pub(crate) const ENCAPS_AH: u32 = 0x80;

/// The FAR cause byte for a tapflow cause. The cause decides `ra`'s state of one-way flows
/// (INT when bit 0x10 is set, else REQ) and TCP's `TIM` (bit 0x40), so every final cause is
/// written as STOP (0x30: INT, never TIM), as tapflow prints them; which final cause it was
/// goes in the option nibble, which the clients read only for ERROR records.
pub(crate) fn cause_byte(c: Cause) -> u8 {
    match c {
        Cause::Start => CAUSE_START,
        Cause::Status => CAUSE_STATUS,
        Cause::Close => CAUSE_STOP,
        Cause::Idle => CAUSE_STOP | 1,
        Cause::Evicted => CAUSE_STOP | 2,
        Cause::Shutdown => CAUSE_STOP | 3,
    }
}

/// The tapflow cause of a FAR cause byte (ours, or argus's own).
pub(crate) fn cause_of(b: u8) -> Cause {
    match (b & 0xf0, b & 0x0f) {
        (CAUSE_START, _) => Cause::Start,
        (CAUSE_STOP, 1) => Cause::Idle,
        (CAUSE_STOP, 2) => Cause::Evicted,
        (CAUSE_STOP, 3) => Cause::Shutdown,
        (CAUSE_STOP | CAUSE_CLOSED, _) => Cause::Close,
        (CAUSE_TIMEOUT, _) => Cause::Idle,
        (CAUSE_FLUSH, _) => Cause::Evicted,
        (CAUSE_SHUTDOWN, _) => Cause::Shutdown,
        _ => Cause::Status,
    }
}

pub(crate) fn is_tcp(r: &FlowRecord) -> bool {
    r.proto == 6 && r.addr_kind != AddrKind::L2
}

/// TCP flag bits (as in the TCP header).
const TH_FIN: u8 = 0x01;
const TH_SYN: u8 = 0x02;
const TH_RST: u8 = 0x04;

/// The TCP status word for a TCP record, chosen so that `ra` derives tapflow's `state` and
/// `dir` from it (argus-format.md §6): RST > FIN > CON > ACC > REQ by the bits ra tests first,
/// and no SYN bit when tapflow guessed the direction (ra then prints `?`).
pub(crate) fn tcp_status_of(r: &FlowRecord) -> u32 {
    use tcp_status::*;
    let guessed = r.flags & flags::DIR_GUESSED != 0;
    let (s, d) = (&r.src, &r.dst);
    let handshake = if guessed {
        0
    } else {
        SAW_SYN | SAW_SYN_SENT | CON_ESTABLISHED
    };
    let mut st = match r.state {
        // Nothing TCP-specific: ra then decides CON/INT from the packet counts, as tapflow.
        FlowState::None => return 0,
        FlowState::Req => SAW_SYN,
        FlowState::Acc => SAW_SYN | SAW_SYN_SENT,
        FlowState::Con => handshake | CON_ESTABLISHED,
        FlowState::Fin => {
            let both = s.tcp_flags & TH_FIN != 0 && d.tcp_flags & TH_FIN != 0;
            handshake | CON_ESTABLISHED | FIN | if both { FIN_ACK } else { 0 }
        }
        // Argus prints FIN for a closed connection too (its CLO is never reached).
        FlowState::Clo => handshake | CON_ESTABLISHED | FIN | FIN_ACK | NORMAL_CLOSE,
        FlowState::Rst => {
            let mut b = if guessed { 0 } else { SAW_SYN };
            if !guessed && (d.tcp_flags & TH_SYN != 0 || r.synack_ns != 0) {
                b |= SAW_SYN_SENT;
            }
            if r.ackdat_ns != 0 {
                b |= CON_ESTABLISHED;
            }
            let rs = if s.tcp_flags & TH_RST != 0 {
                SRC_RESET
            } else {
                0
            };
            let rd = if d.tcp_flags & TH_RST != 0 {
                DST_RESET
            } else {
                0
            };
            // The reset may have been in an earlier interval: still a reset.
            b | if rs | rd == 0 { SRC_RESET } else { rs | rd }
        }
    };
    if s.retrans > 0 {
        st |= SRC_RETRANS;
    }
    if d.retrans > 0 {
        st |= DST_RETRANS;
    }
    if s.zero_win > 0 {
        st |= SRC_WINDOW_SHUT;
    }
    if d.zero_win > 0 {
        st |= DST_WINDOW_SHUT;
    }
    if s.out_of_order > 0 {
        st |= SRC_OUTOFORDER;
    }
    if d.out_of_order > 0 {
        st |= DST_OUTOFORDER;
    }
    if r.flags & flags::ECN_CE != 0 {
        // tapflow does not say which side saw congestion marks: both (ra's `E`).
        st |= SRC_ECN | DST_ECN;
    }
    st
}

/// The tapflow state of a TCP status word, by the rules `ra` uses to print `state` (its
/// `TIM`, which depends on the cause, has no tapflow state: such a flow reads as CON).
pub(crate) fn state_of_status(st: u32) -> FlowState {
    use tcp_status::*;
    if st & RESET != 0 {
        FlowState::Rst
    } else if st & (FIN | FIN_ACK) != 0 {
        FlowState::Fin
    } else if st & NORMAL_CLOSE != 0 {
        FlowState::Clo
    } else if st & CON_ESTABLISHED != 0 {
        FlowState::Con
    } else if st & SAW_SYN_SENT != 0 {
        FlowState::Acc
    } else if st & SAW_SYN != 0 {
        FlowState::Req
    } else if st != 0 {
        FlowState::Con
    } else {
        FlowState::None
    }
}

/// The window as Argus stores it: a u16 and a shift (the shift only when the value needs it).
pub(crate) fn window_parts(w: u32) -> (u16, u8) {
    let mut shift = 0u8;
    while (w >> shift) > 0xffff {
        shift += 1;
    }
    ((w >> shift) as u16, shift)
}

/// f64 nanoseconds as the f32 microseconds of the jitter DSR and back.
pub(crate) fn ns_to_us_f32(ns: f64) -> f32 {
    (ns / 1000.0) as f32
}
pub(crate) fn us_f32_to_ns(us: f32) -> f64 {
    f64::from(us) * 1000.0
}

/// The record as it reads back after a trip through an Argus file: what Argus can carry is
/// kept, the rest is at its default or reduced as the format forces (see docs/interop.md).
/// `decode_far(encode_far(r)) == carried(r)` for every flow record `r`.
pub fn carried(r: &FlowRecord) -> FlowRecord {
    let tcp = is_tcp(r);
    let ip = r.addr_kind != AddrKind::L2;
    let mut c = FlowRecord {
        probe_id: r.probe_id,
        seq: r.seq & 0xffff_ffff,
        cause: r.cause,
        addr_kind: r.addr_kind,
        proto: if ip { r.proto } else { 0 },
        ethertype: match r.addr_kind {
            AddrKind::Ipv4 => 0x0800,
            AddrKind::Ipv6 => 0x86dd,
            AddrKind::L2 if r.ethertype < 0x0600 => 0,
            AddrKind::L2 => r.ethertype,
        },
        saddr: r.saddr,
        daddr: r.daddr,
        sport: if ip { r.sport } else { 0 },
        dport: if ip { r.dport } else { 0 },
        stime_ns: r.stime_ns,
        ltime_ns: r.ltime_ns,
        ..FlowRecord::default()
    };
    if r.addr_kind == AddrKind::L2 {
        // The flow key holds MAC addresses.
        c.saddr = tapflow_record::Addr::from_mac(r.saddr.mac());
        c.daddr = tapflow_record::Addr::from_mac(r.daddr.mac());
    } else if r.addr_kind == AddrKind::Ipv4 {
        c.saddr = tapflow_record::Addr::from_v4(r.saddr.0[..4].try_into().unwrap_or([0; 4]));
        c.daddr = tapflow_record::Addr::from_v4(r.daddr.0[..4].try_into().unwrap_or([0; 4]));
    }
    // Times: per direction when it has packets; a record without packets keeps its range.
    let has = [r.src.pkts > 0, r.dst.pkts > 0];
    for (i, (from, to)) in [(&r.src, &mut c.src), (&r.dst, &mut c.dst)]
        .into_iter()
        .enumerate()
    {
        to.pkts = from.pkts;
        to.bytes = from.bytes;
        to.app_bytes = from.app_bytes;
        if has[i] {
            to.first_ns = from.first_ns;
            to.last_ns = from.last_ns;
            if ip {
                to.ttl_min = from.ttl_max;
                to.ttl_max = from.ttl_max;
                to.tos = from.tos;
            }
        }
        if tcp {
            to.tcp_flags = from.tcp_flags;
            to.retrans = from.retrans;
            let (w, s) = window_parts(from.window);
            to.window = u32::from(w) << s;
            to.isn = from.isn;
            to.last_seq = from.last_seq;
            to.last_ack = from.last_ack;
            if r.state != FlowState::None {
                to.out_of_order = u32::from(from.out_of_order > 0);
                to.zero_win = u32::from(from.zero_win > 0);
            }
        }
        if from.ipt_n > 0 {
            to.ipt_n = from.ipt_n;
            to.ipt_mean_ns = us_f32_to_ns(ns_to_us_f32(from.ipt_mean_ns));
            to.ipt_std_ns = us_f32_to_ns(ns_to_us_f32(from.ipt_std_ns));
        }
        if ip && (has[0] || has[1]) {
            to.frags = u32::from(from.frags > 0);
        }
    }
    // Fragments are a per-direction IP attribute: only a record with packets has them.
    if ip
        && (has[0] || has[1])
        && r.flags & flags::FRAGMENTS != 0
        && c.src.frags == 0
        && c.dst.frags == 0
    {
        c.src.frags = 1;
    }
    if !has[0] && !has[1] {
        c.src.first_ns = r.stime_ns;
        c.src.last_ns = r.ltime_ns;
    } else {
        // The record's range is read back as the span of its directions' times.
        let dirs = [&c.src, &c.dst];
        let live = || dirs.iter().zip(has).filter(|(_, h)| *h).map(|(d, _)| *d);
        c.stime_ns = live().map(|d| d.first_ns).min().unwrap_or(0);
        c.ltime_ns = live().map(|d| d.last_ns).max().unwrap_or(0);
    }
    c.observed = u8::from(has[0]) | u8::from(has[1]) << 1;
    let status = if tcp { tcp_status_of(r) } else { 0 };
    if tcp {
        c.state = state_of_status(status);
        let mut o = 0;
        for (bit, _) in TCP_OPTS {
            o |= r.tcp_opts & bit;
        }
        c.tcp_opts = o;
        c.synack_ns = r.synack_ns / 1000 * 1000;
        c.ackdat_ns = r.ackdat_ns / 1000 * 1000;
    }
    let mut fl = 0;
    if tcp && status & tcp_status::SYN_BITS == 0 {
        fl |= flags::DIR_GUESSED;
    }
    if tcp && status & (tcp_status::SRC_ECN | tcp_status::DST_ECN) != 0 {
        fl |= flags::ECN_CE;
    }
    if c.src.frags > 0 || c.dst.frags > 0 {
        fl |= flags::FRAGMENTS;
    }
    if r.flags & flags::IPSEC_AH != 0 {
        fl |= flags::IPSEC_AH;
    }
    let sp = clip_payload(&r.src_payload);
    let dp = clip_payload(&r.dst_payload);
    if !sp.is_empty() || !dp.is_empty() {
        fl |= flags::PAYLOAD;
    }
    c.src_payload = sp.to_vec();
    c.dst_payload = dp.to_vec();
    c.flags = fl;
    c.smac = r.smac;
    c.dmac = r.dmac;
    c.vlan = [r.vlan[0] & 0x0fff, 0];
    c.mpls = [r.mpls[0] & 0xf_ffff, 0];
    let mut kinds = 0;
    for (k, _) in ENCAPS {
        if r.encap.kinds & k != 0 {
            kinds |= k;
        }
    }
    if r.encap.kinds & encap::QINQ != 0 {
        kinds |= encap::VLAN;
    }
    if r.vlan[0] != 0 {
        kinds |= encap::VLAN;
    }
    if r.mpls[0] != 0 {
        kinds |= encap::MPLS;
    }
    // The encapsulation DSR has a mask per direction and a direction without packets has
    // none: a record without packets loses its kinds.
    if !has[0] && !has[1] {
        kinds = 0;
    }
    c.encap.kinds = kinds;
    c
}

/// Payload bytes written per direction: two such user-data DSRs and the rest of a FAR stay
/// well within a record's u16 count of words.
pub(crate) const MAX_USER: usize = 64 * 1024;

pub(crate) fn clip_payload(p: &[u8]) -> &[u8] {
    &p[..p.len().min(MAX_USER)]
}

#[cfg(test)]
mod tests;
