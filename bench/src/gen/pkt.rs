//! Packet builders: every header is written byte by byte from its specification, in network
//! byte order, with real checksums.
//!
//! Each builder takes the payload it wraps and returns the bytes of its layer followed by that
//! payload, so packets are built inside out: `eth(.., &ipv4(.., &tcp(.., data, &pair)))`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Ethertypes used here (IEEE registry).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS: u16 = 0x8847;
    pub const PPPOE_DISC: u16 = 0x8863;
    pub const PPPOE_SESS: u16 = 0x8864;
    /// Transparent Ethernet bridging (GRE/GENEVE payload type for an Ethernet frame).
    pub const TEB: u16 = 0x6558;
}

/// IP protocol numbers (IANA).
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const HOPOPT: u8 = 0;
}

/// TCP flag bits (RFC 793 §3.1, RFC 3168 for ECE/CWR).
pub mod tcpflag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Well-known UDP ports of the tunnels built here.
pub mod port {
    pub const DNS: u16 = 53;
    pub const GTPU: u16 = 2152;
    pub const VXLAN: u16 = 4789;
    pub const GENEVE: u16 = 6081;
}

/// Smallest Ethernet frame without the FCS (64 bytes on the wire with it, IEEE 802.3).
pub const ETH_MIN_FRAME: usize = 60;

// ---------------------------------------------------------------------------------------------
// Checksums

/// Adds `data` to a running one's-complement sum (RFC 1071), as big-endian 16-bit words; an odd
/// trailing byte is padded with zero.
pub fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        // Fold early so long buffers cannot overflow.
        if sum > 0xffff_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

/// Folds a running sum into the final complemented 16-bit checksum.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

/// The two IP addresses an upper-layer checksum covers (its pseudo-header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpPair {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl IpPair {
    /// Builds a pair from two addresses of the same family (panics on a mix).
    pub fn new(src: IpAddr, dst: IpAddr) -> IpPair {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => IpPair::V4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => IpPair::V6(s, d),
            _ => panic!("IpPair::new: mixed address families {src} / {dst}"),
        }
    }
    pub fn reversed(self) -> IpPair {
        match self {
            IpPair::V4(s, d) => IpPair::V4(d, s),
            IpPair::V6(s, d) => IpPair::V6(d, s),
        }
    }
    pub fn is_v6(&self) -> bool {
        matches!(self, IpPair::V6(..))
    }
    /// Sum of the pseudo-header: RFC 793 §3.1 / RFC 768 for IPv4 (src, dst, zero, proto,
    /// length), RFC 8200 §8.1 for IPv6 (src, dst, 32-bit length, 3 zero bytes, next header).
    pub fn pseudo_sum(&self, proto: u8, len: usize) -> u32 {
        match self {
            IpPair::V4(s, d) => {
                let mut sum = sum16(0, &s.octets());
                sum = sum16(sum, &d.octets());
                sum + proto as u32 + len as u32
            }
            IpPair::V6(s, d) => {
                let mut sum = sum16(0, &s.octets());
                sum = sum16(sum, &d.octets());
                sum = sum16(sum, &(len as u32).to_be_bytes());
                sum + proto as u32
            }
        }
    }
}

/// Checksum of an upper-layer segment including its pseudo-header (the checksum field in
/// `segment` must be zero).
pub fn l4_checksum(pair: &IpPair, proto: u8, segment: &[u8]) -> u16 {
    fold(sum16(pair.pseudo_sum(proto, segment.len()), segment))
}

// ---------------------------------------------------------------------------------------------
// Link layer

/// An Ethernet II frame (IEEE 802.3 / RFC 894) with optional VLAN tags. `vlans` lists TCIs
/// outermost first (PCP<<13 | DEI<<12 | VID): one tag is 802.1Q (0x8100); with two or more, the
/// outer tag is an 802.1ad S-tag (0x88a8) and the others C-tags (0x8100). The frame is padded
/// with zeros to the 60-byte minimum, as a tap sees it (the FCS is not included).
pub fn eth(src: Mac, dst: Mac, vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (i, tci) in vlans.iter().enumerate() {
        let tpid = if vlans.len() >= 2 && i == 0 {
            ethertype::QINQ
        } else {
            ethertype::VLAN
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < ETH_MIN_FRAME {
        f.resize(ETH_MIN_FRAME, 0);
    }
    f
}

/// ARP for IPv4 over Ethernet (RFC 826): `op` 1 = request (who-has), 2 = reply (is-at).
pub fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes()); // HTYPE Ethernet
    p.extend_from_slice(&ethertype::IPV4.to_be_bytes()); // PTYPE
    p.push(6); // HLEN
    p.push(4); // PLEN
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

/// One MPLS label stack entry (RFC 3032 §2.1): 20-bit label, 3-bit traffic class, TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MplsLabel {
    pub label: u32,
    pub tc: u8,
    pub ttl: u8,
}

/// An MPLS label stack (RFC 3032) over `payload`; the bottom-of-stack bit is set on the last
/// entry. Carried in Ethernet with ethertype 0x8847.
pub fn mpls(labels: &[MplsLabel], payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 * labels.len() + payload.len());
    for (i, l) in labels.iter().enumerate() {
        let bos = (i + 1 == labels.len()) as u32;
        let v = (l.label & 0xf_ffff) << 12 | (l.tc as u32 & 7) << 9 | bos << 8 | l.ttl as u32;
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}

/// PPP protocol numbers (RFC 1332 IPv4, RFC 5072 IPv6).
pub mod ppp {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// A PPPoE session-stage packet (RFC 2516 §4, ethertype 0x8864): VER=1, TYPE=1, CODE=0,
/// SESSION_ID, LENGTH (of the PPP payload, protocol field included), then the PPP protocol field
/// (RFC 1661) and the datagram.
pub fn pppoe_session(session: u16, ppp_proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(0x11);
    p.push(0x00);
    p.extend_from_slice(&session.to_be_bytes());
    p.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&ppp_proto.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

// ---------------------------------------------------------------------------------------------
// IPv4

/// IPv4 header fields (RFC 791 §3.1). Options are padded with zeros (End of Option List) to a
/// multiple of 4 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Hdr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub tos: u8,
    pub id: u16,
    /// Flags (bit 14 = DF, bit 13 = MF) and fragment offset in 8-byte units (low 13 bits).
    pub flags_frag: u16,
    pub options: Vec<u8>,
}

/// Don't Fragment flag in [`Ipv4Hdr::flags_frag`].
pub const IPV4_DF: u16 = 0x4000;
/// More Fragments flag in [`Ipv4Hdr::flags_frag`].
pub const IPV4_MF: u16 = 0x2000;

impl Ipv4Hdr {
    /// A header with TTL 64, TOS 0, ID 0, DF set and no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ipv4Hdr {
        Ipv4Hdr {
            src,
            dst,
            proto,
            ttl: 64,
            tos: 0,
            id: 0,
            flags_frag: IPV4_DF,
            options: Vec::new(),
        }
    }
    pub fn pair(&self) -> IpPair {
        IpPair::V4(self.src, self.dst)
    }
}

/// An IPv4 datagram (RFC 791) with a correct header checksum.
pub fn ipv4(h: &Ipv4Hdr, payload: &[u8]) -> Vec<u8> {
    let opt_len = h.options.len().div_ceil(4) * 4;
    let hlen = 20 + opt_len;
    assert!(hlen <= 60, "IPv4 options longer than 40 bytes");
    let total = hlen + payload.len();
    assert!(total <= 0xffff, "IPv4 datagram longer than 65535 bytes");
    let mut p = Vec::with_capacity(total);
    p.push(0x40 | (hlen / 4) as u8);
    p.push(h.tos);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&h.id.to_be_bytes());
    p.extend_from_slice(&h.flags_frag.to_be_bytes());
    p.push(h.ttl);
    p.push(h.proto);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&h.src.octets());
    p.extend_from_slice(&h.dst.octets());
    p.extend_from_slice(&h.options);
    p.resize(hlen, 0);
    let c = checksum(&p[..hlen]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Splits one IPv4 datagram into fragments (RFC 791 §2.3/§3.2): `payload` is the whole upper-
/// layer data (e.g. a UDP header and data with the checksum over all of it), `max_payload` the
/// largest fragment payload (rounded down to a multiple of 8). The first fragment carries all
/// options, later ones only the options whose "copied" bit is set. Returns the IP packets.
pub fn fragment_ipv4(h: &Ipv4Hdr, payload: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    let step = (max_payload / 8) * 8;
    assert!(step > 0, "fragment payload must be at least 8 bytes");
    let copied = copied_options(&h.options);
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() || out.is_empty() {
        let end = (off + step).min(payload.len());
        let mut fh = h.clone();
        let more = end < payload.len();
        fh.flags_frag = (h.flags_frag & !(IPV4_MF | 0x1fff) & !IPV4_DF)
            | if more { IPV4_MF } else { 0 }
            | (off / 8) as u16;
        if off > 0 {
            fh.options = copied.clone();
        }
        out.push(ipv4(&fh, &payload[off..end]));
        off = end;
    }
    out
}

/// The IPv4 options that must be copied into every fragment (type bit 0x80, RFC 791 §3.1).
fn copied_options(opts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let len = opts.get(i + 1).copied().unwrap_or(2).max(2) as usize;
                let end = (i + len).min(opts.len());
                if t & 0x80 != 0 {
                    out.extend_from_slice(&opts[i..end]);
                }
                i = end;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// IPv6

/// An IPv6 extension header (RFC 8200 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// Hop-by-Hop Options (RFC 8200 §4.3) with these option TLVs; padded with Pad1/PadN.
    HopByHop(Vec<u8>),
    /// Destination Options (RFC 8200 §4.6), padded like Hop-by-Hop.
    DestOpts(Vec<u8>),
    /// Routing header (RFC 8200 §4.4): routing type, segments left, type-specific data (the
    /// reserved word included), padded with zeros to 8-byte units.
    Routing {
        kind: u8,
        segments_left: u8,
        data: Vec<u8>,
    },
    /// Fragment header (RFC 8200 §4.5): offset in 8-byte units, M flag, identification.
    Fragment { offset: u16, more: bool, id: u32 },
}

impl Ipv6Ext {
    pub fn code(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop(_) => proto::HOPOPT,
            Ipv6Ext::DestOpts(_) => proto::IPV6_OPTS,
            Ipv6Ext::Routing { .. } => proto::IPV6_ROUTE,
            Ipv6Ext::Fragment { .. } => proto::IPV6_FRAG,
        }
    }
    fn write(&self, next: u8, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(next);
        match self {
            Ipv6Ext::HopByHop(opts) | Ipv6Ext::DestOpts(opts) => {
                out.push(0);
                out.extend_from_slice(opts);
                let len = 2 + opts.len();
                let padded = len.div_ceil(8) * 8;
                match padded - len {
                    0 => {}
                    1 => out.push(0), // Pad1
                    n => {
                        out.push(1); // PadN
                        out.push((n - 2) as u8);
                        out.extend(std::iter::repeat_n(0, n - 2));
                    }
                }
                out[start + 1] = (padded / 8 - 1) as u8;
            }
            Ipv6Ext::Routing {
                kind,
                segments_left,
                data,
            } => {
                out.push(0);
                out.push(*kind);
                out.push(*segments_left);
                out.extend_from_slice(data);
                let len = 4 + data.len();
                let padded = len.div_ceil(8) * 8;
                out.resize(start + padded, 0);
                out[start + 1] = (padded / 8 - 1) as u8;
            }
            Ipv6Ext::Fragment { offset, more, id } => {
                out.push(0);
                out.extend_from_slice(&((offset << 3) | *more as u16).to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// IPv6 header fields (RFC 8200 §3) plus extension headers in order. `next_header` is the
/// upper-layer protocol after the last extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Hdr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub tclass: u8,
    /// 20-bit flow label.
    pub flow_label: u32,
    pub ext: Vec<Ipv6Ext>,
}

impl Ipv6Hdr {
    /// A header with hop limit 64, traffic class 0, flow label 0 and no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8) -> Ipv6Hdr {
        Ipv6Hdr {
            src,
            dst,
            next_header,
            hop_limit: 64,
            tclass: 0,
            flow_label: 0,
            ext: Vec::new(),
        }
    }
    pub fn pair(&self) -> IpPair {
        IpPair::V6(self.src, self.dst)
    }
}

/// An IPv6 packet (RFC 8200) with its extension headers chained through their Next Header
/// fields.
pub fn ipv6(h: &Ipv6Hdr, payload: &[u8]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (i, e) in h.ext.iter().enumerate() {
        let next = h.ext.get(i + 1).map_or(h.next_header, Ipv6Ext::code);
        e.write(next, &mut ext);
    }
    let plen = ext.len() + payload.len();
    assert!(
        plen <= 0xffff,
        "IPv6 payload longer than 65535 bytes (no jumbograms)"
    );
    let mut p = Vec::with_capacity(40 + plen);
    let w = 6u32 << 28 | (h.tclass as u32) << 20 | (h.flow_label & 0xf_ffff);
    p.extend_from_slice(&w.to_be_bytes());
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.push(h.ext.first().map_or(h.next_header, Ipv6Ext::code));
    p.push(h.hop_limit);
    p.extend_from_slice(&h.src.octets());
    p.extend_from_slice(&h.dst.octets());
    p.extend_from_slice(&ext);
    p.extend_from_slice(payload);
    p
}

/// Splits an IPv6 packet into fragments (RFC 8200 §4.5): the extension headers of `h` form the
/// unfragmentable part, a Fragment header with `id` follows, and `payload` (the upper-layer
/// header and data, checksum already over all of it) is cut into pieces of at most
/// `max_payload` bytes (rounded down to a multiple of 8).
pub fn fragment_ipv6(h: &Ipv6Hdr, payload: &[u8], max_payload: usize, id: u32) -> Vec<Vec<u8>> {
    let step = (max_payload / 8) * 8;
    assert!(step > 0, "fragment payload must be at least 8 bytes");
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() || out.is_empty() {
        let end = (off + step).min(payload.len());
        let mut fh = h.clone();
        fh.ext.push(Ipv6Ext::Fragment {
            offset: (off / 8) as u16,
            more: end < payload.len(),
            id,
        });
        out.push(ipv6(&fh, &payload[off..end]));
        off = end;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Transport

/// TCP header fields (RFC 793 §3.1, RFC 9293).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TcpHdr {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// `tcpflag::*` bits.
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    /// Raw option bytes (see [`tcpopt`]); padded with zeros (End of Option List) to 4 bytes.
    pub options: Vec<u8>,
}

/// TCP option encoders.
pub mod tcpopt {
    /// No-Operation (RFC 793).
    pub const NOP: u8 = 1;
    /// Maximum Segment Size (RFC 793 / RFC 6691).
    pub fn mss(mss: u16) -> [u8; 4] {
        let m = mss.to_be_bytes();
        [2, 4, m[0], m[1]]
    }
    /// Window Scale (RFC 7323 §2), preceded by a NOP for alignment.
    pub fn wscale(shift: u8) -> [u8; 4] {
        [NOP, 3, 3, shift]
    }
    /// SACK-Permitted (RFC 2018), two NOPs before it for alignment.
    pub fn sack_perm() -> [u8; 4] {
        [NOP, NOP, 4, 2]
    }
    /// Timestamps (RFC 7323 §3), two NOPs before it for alignment.
    pub fn timestamps(val: u32, ecr: u32) -> [u8; 12] {
        let v = val.to_be_bytes();
        let e = ecr.to_be_bytes();
        [
            NOP, NOP, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3],
        ]
    }
    /// SACK blocks (RFC 2018), two NOPs before it for alignment.
    pub fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut o = vec![NOP, NOP, 5, (2 + 8 * blocks.len()) as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    }
}

/// A TCP segment (RFC 793) with its checksum over the pseudo-header of `pair`.
pub fn tcp(h: &TcpHdr, payload: &[u8], pair: &IpPair) -> Vec<u8> {
    let opt_len = h.options.len().div_ceil(4) * 4;
    let hlen = 20 + opt_len;
    assert!(hlen <= 60, "TCP options longer than 40 bytes");
    let mut s = Vec::with_capacity(hlen + payload.len());
    s.extend_from_slice(&h.sport.to_be_bytes());
    s.extend_from_slice(&h.dport.to_be_bytes());
    s.extend_from_slice(&h.seq.to_be_bytes());
    s.extend_from_slice(&h.ack.to_be_bytes());
    s.push(((hlen / 4) as u8) << 4);
    s.push(h.flags);
    s.extend_from_slice(&h.window.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&h.urgent.to_be_bytes());
    s.extend_from_slice(&h.options);
    s.resize(hlen, 0);
    s.extend_from_slice(payload);
    let c = l4_checksum(pair, proto::TCP, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A UDP datagram (RFC 768) with its checksum over the pseudo-header of `pair` (a computed zero
/// is sent as 0xffff; over IPv6 the checksum is mandatory, RFC 8200 §8.1).
pub fn udp(sport: u16, dport: u16, payload: &[u8], pair: &IpPair) -> Vec<u8> {
    let len = 8 + payload.len();
    assert!(len <= 0xffff, "UDP datagram longer than 65535 bytes");
    let mut s = Vec::with_capacity(len);
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&(len as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    let mut c = l4_checksum(pair, proto::UDP, &s);
    if c == 0 {
        c = 0xffff;
    }
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

/// An ICMP message (RFC 792): type, code, the 4 "rest of header" bytes and data, checksum over
/// the whole message (no pseudo-header).
pub fn icmpv4(ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.push(ty);
    s.push(code);
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&rest);
    s.extend_from_slice(payload);
    let c = checksum(&s);
    s[2..4].copy_from_slice(&c.to_be_bytes());
    s
}

/// An ICMPv6 message (RFC 4443 §2.1, checksum with the IPv6 pseudo-header, §2.3).
pub fn icmpv6(ty: u8, code: u8, rest: [u8; 4], payload: &[u8], pair: &IpPair) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.push(ty);
    s.push(code);
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&rest);
    s.extend_from_slice(payload);
    let c = l4_checksum(pair, proto::ICMPV6, &s);
    s[2..4].copy_from_slice(&c.to_be_bytes());
    s
}

/// The "rest of header" of an echo request/reply: identifier and sequence number (RFC 792,
/// RFC 4443 §4.1).
pub fn echo_rest(id: u16, seq: u16) -> [u8; 4] {
    let i = id.to_be_bytes();
    let s = seq.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

// ---------------------------------------------------------------------------------------------
// Tunnels

/// A GRE header (RFC 2784, with the Key and Sequence Number extensions of RFC 2890) over
/// `payload` of protocol type `proto_type` (an ethertype).
pub fn gre(proto_type: u16, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut flags = 0u16;
    if key.is_some() {
        flags |= 0x2000; // K
    }
    if seq.is_some() {
        flags |= 0x1000; // S
    }
    let mut p = Vec::with_capacity(12 + payload.len());
    p.extend_from_slice(&flags.to_be_bytes()); // C=0, version 0
    p.extend_from_slice(&proto_type.to_be_bytes());
    if let Some(k) = key {
        p.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        p.extend_from_slice(&s.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}

/// A VXLAN header (RFC 7348 §5): flags with the I bit, 24-bit VNI; `inner` is an Ethernet frame.
/// Carried in UDP to port 4789.
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + inner.len());
    p.extend_from_slice(&[0x08, 0, 0, 0]);
    p.extend_from_slice(&((vni & 0xff_ffff) << 8).to_be_bytes());
    p.extend_from_slice(inner);
    p
}

/// A GENEVE header (RFC 8926 §3.1): version 0, option length in 4-byte words, flags clear,
/// protocol type (0x6558 for Ethernet), 24-bit VNI, then the options (a multiple of 4 bytes).
/// Carried in UDP to port 6081.
pub fn geneve(vni: u32, proto_type: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert!(options.len() & 3 == 0 && options.len() <= 252);
    let mut p = Vec::with_capacity(8 + options.len() + payload.len());
    p.push((options.len() / 4) as u8);
    p.push(0);
    p.extend_from_slice(&proto_type.to_be_bytes());
    p.extend_from_slice(&((vni & 0xff_ffff) << 8).to_be_bytes());
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    p
}

/// A GTP-U header (3GPP TS 29.281 §5.1): version 1, PT=1, no optional fields, message type 255
/// (G-PDU), length of what follows the mandatory 8 bytes, TEID. Carried in UDP port 2152.
pub fn gtpu(teid: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(0x30);
    p.push(0xff);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&teid.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

// ---------------------------------------------------------------------------------------------
// Applications

/// A DNS name in wire format (RFC 1035 §3.1), without compression.
pub fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        assert!(label.len() < 64);
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

/// A DNS query (RFC 1035 §4.1) for one question of `qtype` (1 = A, 28 = AAAA) class IN, RD set.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1
    m.extend_from_slice(&dns_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// A DNS response to [`dns_query`] with one answer per entry of `rdata` (each an address of the
/// question's type), the owner name compressed to the question (pointer 0xc00c).
pub fn dns_response(id: u16, name: &str, qtype: u16, ttl: u32, rdata: &[Vec<u8>]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x8180u16.to_be_bytes()); // QR, RD, RA, NOERROR
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&dns_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for rd in rdata {
        m.extend_from_slice(&[0xc0, 0x0c]);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(rd);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: sum of 0001 f203 f4f5 f6f7 is ddf2 (before complement).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut h = Ipv4Hdr::new(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 2),
            17,
        );
        h.options = vec![0x94, 0x04, 0, 0];
        let p = ipv4(&h, &[1, 2, 3]);
        assert_eq!(p[0], 0x46);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 27);
        assert_eq!(checksum(&p[..24]), 0);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum 0xb861.
        let h = Ipv4Hdr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            proto: 17,
            ttl: 64,
            tos: 0,
            id: 0,
            flags_frag: IPV4_DF,
            options: vec![],
        };
        let p = ipv4(&h, &[0u8; 0x73 - 20]);
        assert_eq!(&p[10..12], &[0xb8, 0x61]);
    }

    #[test]
    fn ipv4_fragments_cover_payload() {
        let h = Ipv4Hdr::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 17);
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let frags = fragment_ipv4(&h, &payload, 1480);
        assert_eq!(frags.len(), 3);
        let mut re = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let ff = u16::from_be_bytes([f[6], f[7]]);
            assert_eq!((ff & 0x1fff) as usize * 8, re.len());
            assert_eq!(ff & IPV4_MF != 0, i < 2);
            assert_eq!(checksum(&f[..20]), 0);
            re.extend_from_slice(&f[20..]);
        }
        assert_eq!(re, payload);
    }

    #[test]
    fn ipv6_ext_chain_and_fragments() {
        let mut h = Ipv6Hdr::new(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            17,
        );
        h.ext.push(Ipv6Ext::DestOpts(vec![]));
        let p = ipv6(&h, &[0u8; 8]);
        assert_eq!(p[6], proto::IPV6_OPTS);
        assert_eq!(p[40], 17);
        assert_eq!(p[41], 0); // 8 bytes
        assert_eq!(&p[42..44], &[1, 4]); // PadN of 4 zero bytes
        let frags = fragment_ipv6(&Ipv6Hdr::new(h.src, h.dst, 17), &[7u8; 2000], 1232, 99);
        assert_eq!(frags.len(), 2);
        assert_eq!(frags[0][6], proto::IPV6_FRAG);
        assert_eq!(frags[0][40], 17);
        assert_eq!(u16::from_be_bytes([frags[0][42], frags[0][43]]), 1); // offset 0, M
        assert_eq!(
            u16::from_be_bytes([frags[1][42], frags[1][43]]),
            (1232 / 8) << 3
        );
        assert_eq!(frags[1].len(), 48 + 2000 - 1232);
    }

    #[test]
    fn udp_and_tcp_checksums_verify() {
        let pair = IpPair::V4(Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(10, 2, 2, 2));
        let u = udp(1234, 53, b"hello", &pair);
        assert_eq!(fold(sum16(pair.pseudo_sum(17, u.len()), &u)), 0);
        let t = tcp(
            &TcpHdr {
                sport: 1,
                dport: 2,
                seq: 3,
                flags: tcpflag::SYN,
                options: tcpopt::mss(1460).to_vec(),
                ..Default::default()
            },
            b"x",
            &pair,
        );
        assert_eq!(t[12] >> 4, 6);
        assert_eq!(fold(sum16(pair.pseudo_sum(6, t.len()), &t)), 0);
    }

    #[test]
    fn qinq_tags_and_padding() {
        let f = eth([2; 6], [4; 6], &[200, 300], ethertype::IPV4, &[0x45]);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[20..22], &[0x08, 0x00]);
    }

    #[test]
    fn mpls_bottom_of_stack() {
        let p = mpls(
            &[
                MplsLabel {
                    label: 1000,
                    tc: 0,
                    ttl: 64,
                },
                MplsLabel {
                    label: 2000,
                    tc: 5,
                    ttl: 63,
                },
            ],
            &[],
        );
        assert_eq!(
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            1000 << 12 | 64
        );
        assert_eq!(
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            2000 << 12 | 5 << 9 | 1 << 8 | 63
        );
    }
}
