//! Packet decoder: link layer → (VLAN/QinQ/MPLS/PPPoE) → IP (options, extension headers,
//! fragments) → transport, through tunnels (GRE/ERSPAN/TEB, VXLAN, GENEVE, GTP-U, IP-in-IP,
//! 6in4, Teredo) down to the innermost IP flow.
//!
//! The decoder is lax in the way a flow probe must be: a header that is odd but readable still
//! yields a flow (Argus does the same); only a packet whose flow cannot be named (no addresses,
//! no ports where the protocol has them) is counted as malformed, by reason. It never panics,
//! allocates or formats: every read is bounds-checked through [`Buf`].

mod frag;
pub mod ib;

pub use frag::FragCache;

use crate::key::{FlowKey, IB_KEY, KIND_IB};
use tapflow_capture::LinkType;
use tapflow_record::{encap, flags, ib_flags, tcp_opts, Addr, AddrKind, Encap};

/// How deep tunnels are followed; deeper encapsulation is reported as the outer flow.
const MAX_DEPTH: u8 = 6;

/// Why a packet could not be attributed to a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Malformed {
    /// The capture's link type is not decoded.
    UnsupportedLink = 0,
    /// The link-layer header is cut short.
    TruncatedLink,
    /// The IP header is cut short (or the packet ends inside an extension header).
    TruncatedIp,
    /// IP version nibble is neither 4 nor 6 where IP was announced.
    BadIpVersion,
    /// IPv4 header length below 20 bytes, or an extension header length beyond the packet.
    BadIpHeader,
    /// The transport header is too short to hold the ports.
    TruncatedTransport,
    /// An empty packet (caplen 0).
    Empty,
    /// The InfiniBand LRH, GRH or BTH is cut short.
    TruncatedIb,
}

impl Malformed {
    pub const COUNT: usize = 8;
    pub const ALL: [Malformed; Malformed::COUNT] = [
        Malformed::UnsupportedLink,
        Malformed::TruncatedLink,
        Malformed::TruncatedIp,
        Malformed::BadIpVersion,
        Malformed::BadIpHeader,
        Malformed::TruncatedTransport,
        Malformed::Empty,
        Malformed::TruncatedIb,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Malformed::UnsupportedLink => "unsupported-link-type",
            Malformed::TruncatedLink => "truncated-link-header",
            Malformed::TruncatedIp => "truncated-ip-header",
            Malformed::BadIpVersion => "bad-ip-version",
            Malformed::BadIpHeader => "bad-ip-header",
            Malformed::TruncatedTransport => "truncated-transport-header",
            Malformed::Empty => "empty-packet",
            Malformed::TruncatedIb => "truncated-infiniband-header",
        }
    }
}

/// Who the packet's sender probably is, from the packet alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Role {
    #[default]
    Unknown = 0,
    /// TCP SYN, ICMP request, or a client port talking to a well-known port.
    Initiator = 1,
    /// TCP SYN-ACK, ICMP reply, or a well-known port answering a client port.
    Responder = 2,
}

/// TCP header facts the flow engine needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub flags: u8,
    /// The whole header (incl. options) was captured, so flags/seq/window are valid.
    pub valid: bool,
    /// `tcp_opts::*` bits present in this segment.
    pub opts: u8,
    /// Window-scale shift from the option (valid when `opts & WSCALE`).
    pub wscale: u8,
}

pub mod tcpf {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Fragment position of the innermost IP packet.
pub mod fragpos {
    pub const NONE: u8 = 0;
    pub const FIRST: u8 = 1;
    pub const LATER: u8 = 2;
}

/// InfiniBand facts the flow engine needs (valid when the key is an IB key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IbPkt {
    /// Where the IB headers start in the captured bytes (the LRH, or the BTH for RoCEv2).
    pub off: u16,
    /// The headers start with an LRH (native IB).
    pub lrh: bool,
    /// A BTH was decoded: `opcode`, `psn` and `pkey` are valid.
    pub bth: bool,
    pub opcode: u8,
    pub psn: u32,
    pub pkey: u16,
    pub slid: u16,
    pub dlid: u16,
    /// AETH syndrome, valid when `aeth`.
    pub aeth: bool,
    pub syndrome: u8,
}

/// What the decoder tells the flow engine about one packet. `Copy`, no borrows.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketSummary {
    /// Directional key: `a`/`port_a` is the sender.
    pub key: FlowKey,
    pub ts_ns: u64,
    /// Bytes as Argus counts them (wire length minus a link pseudo-header).
    pub bytes: u32,
    /// Length of the innermost IP packet on the wire (IP header included).
    pub ip_len: u32,
    /// Transport payload length on the wire.
    pub app_len: u32,
    pub tcp: TcpInfo,
    pub ttl: u8,
    pub tos: u8,
    pub frag: u8,
    pub role: Role,
    /// `tapflow_record::flags` bits this packet contributes.
    pub flags: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub vlan: [u16; 2],
    pub mpls: [u32; 2],
    pub encap: Encap,
    /// Where the transport payload starts in the captured bytes, and how much of it was captured.
    pub payload_off: u32,
    pub payload_cap: u32,
    pub ib: IbPkt,
    nvlan: u8,
    nmpls: u8,
    have_mac: bool,
}

/// Decoder counters that are not malformed packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub malformed: [u64; Malformed::COUNT],
    pub malformed_bytes: u64,
    /// Bytes of link pseudo-headers (SLL, NULL, PPP) left out of flow byte counts.
    pub link_pseudo_bytes: u64,
    /// Tunnels whose inner packet did not decode: the packet was kept as the outer flow.
    pub tunnel_inner_bad: u64,
    /// Non-first fragments whose first fragment was not seen (ports unknown, kept as port 0).
    pub frag_unmatched: u64,
    /// Non-first fragments attributed to their flow through the fragment cache.
    pub frag_matched: u64,
    /// Packets cut short by the snap length.
    pub snaplen_truncated: u64,
    /// Link types that were not decoded, with their packet counts (first few kinds).
    pub unsupported_links: [(u16, u64); 4],
}

impl DecodeStats {
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// A bounds-checked view of the captured bytes (reads past the end return `None`).
#[derive(Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    #[inline]
    fn u8(&self, off: usize) -> Option<u8> {
        self.0.get(off).copied()
    }
    #[inline]
    fn u16(&self, off: usize) -> Option<u16> {
        let b = self.0.get(off..off + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    #[inline]
    fn u32(&self, off: usize) -> Option<u32> {
        let b = self.0.get(off..off + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let b = self.0.get(off..off + N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Some(a)
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Per-worker decoder: owns the fragment cache and the counters.
pub struct Decoder {
    pub frags: FragCache,
    pub stats: DecodeStats,
}

type R<T> = Result<T, Malformed>;

/// Decoding context for one packet.
struct Ctx<'a> {
    d: Buf<'a>,
    /// Wire length of the frame, to tell snap-length truncation from a lying length field.
    wire_len: usize,
    ts_ns: u64,
}

impl Ctx<'_> {
    /// Bytes of the packet on the wire from `off` on.
    #[inline]
    fn wire_rem(&self, off: usize) -> usize {
        self.wire_len.saturating_sub(off)
    }
}

impl Decoder {
    pub fn new(frag_capacity: usize) -> Decoder {
        Decoder {
            frags: FragCache::new(frag_capacity),
            stats: DecodeStats::default(),
        }
    }

    /// Decodes one packet into `out`. On error the packet is counted as malformed by reason
    /// (the caller need not count it again).
    #[inline]
    pub fn decode(
        &mut self,
        data: &[u8],
        wire_len: u32,
        link: LinkType,
        ts_ns: u64,
        out: &mut PacketSummary,
    ) -> Result<(), Malformed> {
        *out = PacketSummary::default();
        out.ts_ns = ts_ns;
        let wire_len = wire_len.max(data.len() as u32);
        if (data.len() as u32) < wire_len {
            self.stats.snaplen_truncated += 1;
            out.flags |= flags::TRUNCATED;
        }
        let ctx = Ctx {
            d: Buf(data),
            wire_len: wire_len as usize,
            ts_ns,
        };
        let mut pseudo = 0u32;
        let r = if data.is_empty() {
            Err(Malformed::Empty)
        } else {
            self.link(&ctx, link, &mut pseudo, out)
        };
        let counted = wire_len.saturating_sub(pseudo);
        self.stats.link_pseudo_bytes += (wire_len - counted) as u64;
        match r {
            Ok(()) => {
                out.bytes = counted;
                Ok(())
            }
            Err(m) => {
                if m == Malformed::UnsupportedLink {
                    self.note_unsupported(link.0);
                }
                self.stats.malformed[m as usize] += 1;
                self.stats.malformed_bytes += counted as u64;
                Err(m)
            }
        }
    }

    #[cold]
    fn note_unsupported(&mut self, link: u16) {
        let u = &mut self.stats.unsupported_links;
        if let Some(e) = u.iter_mut().find(|e| e.0 == link && e.1 > 0) {
            e.1 += 1;
        } else if let Some(e) = u.iter_mut().find(|e| e.1 == 0) {
            *e = (link, 1);
        }
    }

    fn link(
        &mut self,
        c: &Ctx,
        link: LinkType,
        pseudo: &mut u32,
        out: &mut PacketSummary,
    ) -> R<()> {
        match link.0 {
            1 => self.ether(c, 0, 0, out),
            // BSD loopback: a 4-byte address family in the writer's byte order (NULL) or network
            // order (LOOP). IPv6 has several AF values across BSDs (24, 28, 30) and Linux (10).
            0 | 108 => {
                let raw = c.d.bytes::<4>(0).ok_or(Malformed::TruncatedLink)?;
                *pseudo = 4;
                let le = u32::from_le_bytes(raw);
                let af = if le > 0xFFFF || link.0 == 108 {
                    u32::from_be_bytes(raw)
                } else {
                    le
                };
                match af {
                    2 => self.ipv4(c, 4, 0, out),
                    10 | 24 | 28 | 30 => self.ipv6(c, 4, 0, out),
                    _ => self.ip_by_version(c, 4, 0, out),
                }
            }
            // Linux cooked v1: 16-byte header, protocol (ethertype) at 14.
            113 => {
                let proto = c.d.u16(14).ok_or(Malformed::TruncatedLink)?;
                *pseudo = 16;
                if let Some(addr) = c.d.bytes::<6>(6) {
                    out.smac = addr;
                }
                self.ethertype(c, proto, 16, 0, out)
            }
            // Linux cooked v2: 20-byte header, protocol first.
            276 => {
                let proto = c.d.u16(0).ok_or(Malformed::TruncatedLink)?;
                if c.d.len() < 20 {
                    return Err(Malformed::TruncatedLink);
                }
                *pseudo = 20;
                if let Some(addr) = c.d.bytes::<6>(12) {
                    out.smac = addr;
                }
                self.ethertype(c, proto, 20, 0, out)
            }
            12 | 14 | 101 => self.ip_by_version(c, 0, 0, out),
            228 => self.ipv4(c, 0, 0, out),
            229 => self.ipv6(c, 0, 0, out),
            // PPP (RFC 1661/1662): optional address/control bytes ff 03, then the protocol.
            9 => {
                let off = if c.d.u16(0) == Some(0xff03) { 2 } else { 0 };
                let proto = c.d.u16(off).ok_or(Malformed::TruncatedLink)?;
                *pseudo = (off + 2) as u32;
                self.ppp(c, proto, off + 2, 0, out)
            }
            105 => self.wlan(c, 0, out),
            // Radiotap (radiotap.org): little-endian header length at byte 2, then 802.11.
            127 => {
                let b = c.d.bytes::<2>(2).ok_or(Malformed::TruncatedLink)?;
                let len = u16::from_le_bytes(b) as usize;
                if len < 8 || c.d.len() < len {
                    return Err(Malformed::TruncatedLink);
                }
                *pseudo = len as u32;
                self.wlan(c, len, out)
            }
            // NFLOG (Linux netfilter log): family, version, resource id, then TLVs in host
            // byte order; the packet is the NFULA_PAYLOAD (type 9) attribute.
            // InfiniBand from the LRH on (ibdump, ERF type 21).
            247 => self.infiniband(c, out),
            // ERF type 25: link-level packets (flow control), addressed to no QP.
            0xEF19 => {
                if c.d.len() < 4 {
                    return Err(Malformed::TruncatedIb);
                }
                out.key = FlowKey {
                    kind: KIND_IB,
                    proto: IB_KEY | ib_flags::LINK,
                    ..Default::default()
                };
                out.flags |= flags::INFINIBAND;
                Ok(())
            }
            // Cisco HDLC (ERF PoS records): address, control, then an ethertype.
            104 => {
                let proto = c.d.u16(2).ok_or(Malformed::TruncatedLink)?;
                *pseudo = 4;
                self.ethertype(c, proto, 4, 0, out)
            }
            239 => {
                let fam = c.d.u8(0).ok_or(Malformed::TruncatedLink)?;
                let mut p = 4;
                for _ in 0..64 {
                    let tl = c.d.bytes::<4>(p).ok_or(Malformed::TruncatedLink)?;
                    let len = u16::from_le_bytes([tl[0], tl[1]]) as usize;
                    let ty = u16::from_le_bytes([tl[2], tl[3]]) & 0x7fff;
                    if len < 4 {
                        return Err(Malformed::TruncatedLink);
                    }
                    if ty == 9 {
                        *pseudo = (p + 4) as u32;
                        return match fam {
                            2 => self.ipv4(c, p + 4, 0, out),
                            10 => self.ipv6(c, p + 4, 0, out),
                            _ => self.ip_by_version(c, p + 4, 0, out),
                        };
                    }
                    p += len.div_ceil(4) * 4;
                }
                Err(Malformed::TruncatedLink)
            }
            _ => Err(Malformed::UnsupportedLink),
        }
    }

    /// IEEE 802.11 MAC header (802.11-2020 §9.2): data frames carry LLC/SNAP then an ethertype;
    /// management and control frames become L2 flows between transmitter and receiver.
    fn wlan(&mut self, c: &Ctx, off: usize, out: &mut PacketSummary) -> R<()> {
        let fc = c.d.bytes::<2>(off).ok_or(Malformed::TruncatedLink)?;
        let ty = (fc[0] >> 2) & 3;
        let subtype = fc[0] >> 4;
        let ds = fc[1] & 3;
        let a1 = c.d.bytes::<6>(off + 4).ok_or(Malformed::TruncatedLink)?;
        let a2 = c.d.bytes::<6>(off + 10).unwrap_or(a1);
        if ty != 2 {
            return self.l2_flow(a2, a1, 0, out);
        }
        let a3 = c.d.bytes::<6>(off + 16).ok_or(Malformed::TruncatedLink)?;
        let mut hl = 24;
        let (src, dst) = match ds {
            0 => (a2, a1),
            1 => (a2, a3),
            2 => (a3, a1),
            _ => {
                hl += 6;
                (
                    c.d.bytes::<6>(off + 24).ok_or(Malformed::TruncatedLink)?,
                    a3,
                )
            }
        };
        if subtype & 0x8 != 0 {
            hl += 2; // QoS control
            if fc[1] & 0x80 != 0 {
                hl += 4; // HT control
            }
        }
        out.have_mac = true;
        out.smac = src;
        out.dmac = dst;
        // Null-data frames and protected (encrypted) payloads have no readable ethertype.
        if subtype & 0x4 != 0 || fc[1] & 0x40 != 0 {
            return self.l2_flow(src, dst, 0, out);
        }
        let p = off + hl;
        if c.d.bytes::<3>(p) == Some([0xaa, 0xaa, 0x03]) {
            if let Some(et) = c.d.u16(p + 6) {
                return self.ethertype_at(c, et, p + 8, 0, out, src, dst);
            }
        }
        self.l2_flow(src, dst, 0, out)
    }

    fn ether(&mut self, c: &Ctx, off: usize, depth: u8, out: &mut PacketSummary) -> R<()> {
        let dst = c.d.bytes::<6>(off).ok_or(Malformed::TruncatedLink)?;
        let src = c.d.bytes::<6>(off + 6).ok_or(Malformed::TruncatedLink)?;
        let et = c.d.u16(off + 12).ok_or(Malformed::TruncatedLink)?;
        if !out.have_mac {
            out.have_mac = true;
            out.smac = src;
            out.dmac = dst;
        }
        if et < 0x0600 {
            // IEEE 802.3 length field: LLC, possibly SNAP carrying an ethertype.
            if c.d.bytes::<3>(off + 14) == Some([0xaa, 0xaa, 0x03]) {
                if let Some(et2) = c.d.u16(off + 20) {
                    return self.ethertype_at(c, et2, off + 22, depth, out, src, dst);
                }
            }
            return self.l2_flow(src, dst, 0, out);
        }
        self.ethertype_at(c, et, off + 14, depth, out, src, dst)
    }

    /// Dispatch on an ethertype where no MACs are known (cooked captures).
    fn ethertype(
        &mut self,
        c: &Ctx,
        et: u16,
        off: usize,
        depth: u8,
        out: &mut PacketSummary,
    ) -> R<()> {
        let src = out.smac;
        self.ethertype_at(c, et, off, depth, out, src, [0; 6])
    }

    #[allow(clippy::too_many_arguments)]
    fn ethertype_at(
        &mut self,
        c: &Ctx,
        mut et: u16,
        mut off: usize,
        depth: u8,
        out: &mut PacketSummary,
        src: [u8; 6],
        dst: [u8; 6],
    ) -> R<()> {
        // VLAN tags (802.1Q, 802.1ad, and the pre-standard 0x9100 QinQ), any number.
        let mut tags = 0;
        while matches!(et, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
            let tci = c.d.u16(off).ok_or(Malformed::TruncatedLink)?;
            if (out.nvlan as usize) < 2 {
                out.vlan[out.nvlan as usize] = tci & 0x0fff;
            }
            out.nvlan = out.nvlan.saturating_add(1);
            tags += 1;
            out.encap.kinds |= if tags > 1 { encap::QINQ } else { encap::VLAN };
            et = c.d.u16(off + 2).ok_or(Malformed::TruncatedLink)?;
            off += 4;
            if tags > 8 {
                return Err(Malformed::TruncatedLink);
            }
        }
        match et {
            0x0800 => self.ipv4(c, off, depth, out),
            0x86dd => self.ipv6(c, off, depth, out),
            0x8847 | 0x8848 => self.mpls(c, off, depth, out, src, dst),
            0x8864 => {
                // PPPoE session (RFC 2516): 6-byte header, then the PPP protocol.
                out.encap.kinds |= encap::PPPOE;
                match c.d.u16(off + 6) {
                    Some(p @ (0x0021 | 0x0057 | 0x0281)) => self.ppp(c, p, off + 8, depth, out),
                    _ => self.l2_flow(src, dst, et, out),
                }
            }
            _ => self.l2_flow(src, dst, et, out),
        }
    }

    fn ppp(
        &mut self,
        c: &Ctx,
        proto: u16,
        off: usize,
        depth: u8,
        out: &mut PacketSummary,
    ) -> R<()> {
        match proto {
            0x0021 => self.ipv4(c, off, depth, out),
            0x0057 => self.ipv6(c, off, depth, out),
            0x0281 | 0x0283 => self.mpls(c, off, depth, out, out.smac, out.dmac),
            _ => {
                let (s, d) = (out.smac, out.dmac);
                self.l2_flow(s, d, 0x880b, out)
            }
        }
    }

    fn mpls(
        &mut self,
        c: &Ctx,
        mut off: usize,
        depth: u8,
        out: &mut PacketSummary,
        src: [u8; 6],
        dst: [u8; 6],
    ) -> R<()> {
        out.encap.kinds |= encap::MPLS;
        // Label stack entries (RFC 3032) until bottom-of-stack.
        for _ in 0..16 {
            let e = c.d.u32(off).ok_or(Malformed::TruncatedLink)?;
            if (out.nmpls as usize) < 2 {
                out.mpls[out.nmpls as usize] = e >> 12;
            }
            out.nmpls = out.nmpls.saturating_add(1);
            off += 4;
            if e & 0x100 != 0 {
                // No payload type in MPLS: guess from the first nibble (RFC 4928 practice).
                return match c.d.u8(off).map(|b| b >> 4) {
                    Some(4) => self.ipv4(c, off, depth, out),
                    Some(6) => self.ipv6(c, off, depth, out),
                    // Pseudowire control word (RFC 4385) followed by Ethernet.
                    Some(0) if c.d.len() >= off + 4 + 14 => self.ether(c, off + 4, depth + 1, out),
                    _ => self.l2_flow(src, dst, 0x8847, out),
                };
            }
        }
        self.l2_flow(src, dst, 0x8847, out)
    }

    fn l2_flow(&mut self, src: [u8; 6], dst: [u8; 6], et: u16, out: &mut PacketSummary) -> R<()> {
        out.key = FlowKey {
            a: Addr::from_mac(src).0,
            b: Addr::from_mac(dst).0,
            kind: AddrKind::L2 as u8,
            ethertype: et,
            ..Default::default()
        };
        Ok(())
    }

    fn ip_by_version(&mut self, c: &Ctx, off: usize, depth: u8, out: &mut PacketSummary) -> R<()> {
        match c.d.u8(off).map(|b| b >> 4) {
            Some(4) => self.ipv4(c, off, depth, out),
            Some(6) => self.ipv6(c, off, depth, out),
            Some(_) => Err(Malformed::BadIpVersion),
            None => Err(Malformed::TruncatedIp),
        }
    }

    fn ipv4(&mut self, c: &Ctx, off: usize, depth: u8, out: &mut PacketSummary) -> R<()> {
        let vihl = c.d.u8(off).ok_or(Malformed::TruncatedIp)?;
        if vihl >> 4 != 4 {
            return Err(Malformed::BadIpVersion);
        }
        let hl = ((vihl & 0x0f) as usize) * 4;
        if hl < 20 {
            return Err(Malformed::BadIpHeader);
        }
        if c.d.len() < off + hl {
            return Err(Malformed::TruncatedIp);
        }
        let total = c.d.u16(off + 2).unwrap_or(0) as usize;
        let wire_rem = c.wire_rem(off);
        // A total length that is below the header or beyond the frame is a lie: trust the frame.
        let ip_len = if total >= hl && total <= wire_rem {
            total
        } else {
            wire_rem
        };
        let tos = c.d.u8(off + 1).unwrap_or(0);
        let id = c.d.u16(off + 4).unwrap_or(0) as u32;
        let ff = c.d.u16(off + 6).unwrap_or(0);
        let ttl = c.d.u8(off + 8).unwrap_or(0);
        let proto = c.d.u8(off + 9).unwrap_or(0);
        let src = c.d.bytes::<4>(off + 12).ok_or(Malformed::TruncatedIp)?;
        let dst = c.d.bytes::<4>(off + 16).ok_or(Malformed::TruncatedIp)?;
        out.key = FlowKey {
            a: Addr::from_v4(src).0,
            b: Addr::from_v4(dst).0,
            proto,
            kind: AddrKind::Ipv4 as u8,
            ..Default::default()
        };
        out.ip_len = ip_len as u32;
        out.ttl = ttl;
        out.tos = tos;
        if tos & 3 == 3 {
            out.flags |= flags::ECN_CE;
        }
        if hl > 20 {
            out.flags |= flags::IP_OPTIONS;
        }
        let more = ff & 0x2000 != 0;
        let frag_off = (ff & 0x1fff) as usize * 8;
        let frag = (frag_off > 0 || more).then_some((id, frag_off));
        self.ip_payload(
            c,
            proto,
            off + hl,
            ip_len.saturating_sub(hl),
            frag,
            depth,
            out,
        )
    }

    fn ipv6(&mut self, c: &Ctx, off: usize, depth: u8, out: &mut PacketSummary) -> R<()> {
        let v = c.d.u32(off).ok_or(Malformed::TruncatedIp)?;
        if v >> 28 != 6 {
            return Err(Malformed::BadIpVersion);
        }
        if c.d.len() < off + 40 {
            return Err(Malformed::TruncatedIp);
        }
        let plen = c.d.u16(off + 4).unwrap_or(0) as usize;
        let mut next = c.d.u8(off + 6).unwrap_or(0);
        let hlim = c.d.u8(off + 7).unwrap_or(0);
        let src = c.d.bytes::<16>(off + 8).ok_or(Malformed::TruncatedIp)?;
        let dst = c.d.bytes::<16>(off + 24).ok_or(Malformed::TruncatedIp)?;
        let wire_rem = c.wire_rem(off);
        // Payload length 0 means a jumbogram (RFC 2675) or a lie: trust the frame then.
        let ip_len = if plen > 0 && 40 + plen <= wire_rem {
            40 + plen
        } else {
            wire_rem
        };
        let tclass = ((v >> 20) & 0xff) as u8;
        out.key = FlowKey {
            a: src,
            b: dst,
            kind: AddrKind::Ipv6 as u8,
            ..Default::default()
        };
        out.ip_len = ip_len as u32;
        out.ttl = hlim;
        out.tos = tclass;
        if tclass & 3 == 3 {
            out.flags |= flags::ECN_CE;
        }
        // Extension headers (RFC 8200 §4).
        let end = off + ip_len;
        let mut p = off + 40;
        let mut frag: Option<(u32, usize)> = None;
        for _ in 0..16 {
            match next {
                0 | 60 | 43 | 135 | 139 | 140 => {
                    if next != 43 {
                        out.flags |= flags::IP_OPTIONS;
                    }
                    let nh = c.d.u8(p).ok_or(Malformed::TruncatedIp)?;
                    let len = (c.d.u8(p + 1).ok_or(Malformed::TruncatedIp)? as usize + 1) * 8;
                    if p + len > end {
                        return Err(Malformed::BadIpHeader);
                    }
                    next = nh;
                    p += len;
                }
                44 => {
                    let nh = c.d.u8(p).ok_or(Malformed::TruncatedIp)?;
                    let fo = c.d.u16(p + 2).ok_or(Malformed::TruncatedIp)?;
                    let id = c.d.u32(p + 4).ok_or(Malformed::TruncatedIp)?;
                    let (more, at) = (fo & 1 != 0, (fo >> 3) as usize * 8);
                    // An atomic fragment (offset 0, no more) is a whole packet (RFC 6946).
                    frag = (more || at > 0).then_some((id, at));
                    next = nh;
                    p += 8;
                }
                51 => {
                    // AH (RFC 4302): authenticated, not encrypted, so decode through it.
                    out.flags |= flags::IPSEC_AH;
                    let nh = c.d.u8(p).ok_or(Malformed::TruncatedIp)?;
                    let len = (c.d.u8(p + 1).ok_or(Malformed::TruncatedIp)? as usize + 2) * 4;
                    next = nh;
                    p += len;
                }
                _ => break,
            }
        }
        out.key.proto = next;
        self.ip_payload(c, next, p, end.saturating_sub(p), frag, depth, out)
    }

    /// The payload of an IP packet: the transport header, or for a fragment (`frag` = IP id
    /// and offset) the first fragment's transport header remembered for the later ones.
    #[allow(clippy::too_many_arguments)]
    fn ip_payload(
        &mut self,
        c: &Ctx,
        proto: u8,
        l4: usize,
        l4_wire: usize,
        frag: Option<(u32, usize)>,
        depth: u8,
        out: &mut PacketSummary,
    ) -> R<()> {
        let Some((id, at)) = frag else {
            return self.transport(c, proto, l4, l4_wire, depth, out);
        };
        out.flags |= flags::FRAGMENTS;
        if at > 0 {
            return self.later_fragment(c, id, l4, l4_wire, out);
        }
        out.frag = fragpos::FIRST;
        self.transport(c, proto, l4, l4_wire, depth, out)?;
        self.frags.insert(&out.key, id, c.ts_ns, out.role);
        Ok(())
    }

    /// A non-first fragment has no transport header: its ports come from the fragment cache.
    fn later_fragment(
        &mut self,
        c: &Ctx,
        id: u32,
        l4: usize,
        l4_wire: usize,
        out: &mut PacketSummary,
    ) -> R<()> {
        out.frag = fragpos::LATER;
        out.app_len = l4_wire as u32;
        out.payload_off = l4 as u32;
        out.payload_cap = c.d.len().saturating_sub(l4) as u32;
        match self.frags.lookup(&out.key, id, c.ts_ns) {
            Some((pa, pb, role)) => {
                out.key.port_a = pa;
                out.key.port_b = pb;
                out.role = role;
                self.stats.frag_matched += 1;
            }
            None => self.stats.frag_unmatched += 1,
        }
        Ok(())
    }

    fn transport(
        &mut self,
        c: &Ctx,
        proto: u8,
        off: usize,
        wire: usize,
        depth: u8,
        out: &mut PacketSummary,
    ) -> R<()> {
        let cap = c.d.len().saturating_sub(off);
        match proto {
            6 => {
                let sp = c.d.u16(off).ok_or(Malformed::TruncatedTransport)?;
                let dp = c.d.u16(off + 2).ok_or(Malformed::TruncatedTransport)?;
                out.key.port_a = sp;
                out.key.port_b = dp;
                let doff = c.d.u8(off + 12).map(|b| (b >> 4) as usize * 4).unwrap_or(0);
                if doff >= 20 && cap >= doff {
                    let t = &mut out.tcp;
                    t.seq = c.d.u32(off + 4).unwrap_or(0);
                    t.ack = c.d.u32(off + 8).unwrap_or(0);
                    t.flags = c.d.u8(off + 13).unwrap_or(0);
                    t.win = c.d.u16(off + 14).unwrap_or(0);
                    t.valid = true;
                    tcp_options(c.d, off + 20, off + doff, t);
                    out.role = if t.flags & (tcpf::SYN | tcpf::ACK) == tcpf::SYN {
                        Role::Initiator
                    } else if t.flags & (tcpf::SYN | tcpf::ACK) == tcpf::SYN | tcpf::ACK {
                        Role::Responder
                    } else {
                        port_role(sp, dp)
                    };
                } else {
                    out.flags |= flags::TRUNCATED;
                    out.role = port_role(sp, dp);
                }
                let hdr = if doff >= 20 { doff } else { 20 };
                out.app_len = wire.saturating_sub(hdr) as u32;
                out.payload_off = (off + hdr) as u32;
                out.payload_cap = cap.saturating_sub(hdr) as u32;
                Ok(())
            }
            17 | 136 => {
                let sp = c.d.u16(off).ok_or(Malformed::TruncatedTransport)?;
                let dp = c.d.u16(off + 2).ok_or(Malformed::TruncatedTransport)?;
                out.key.port_a = sp;
                out.key.port_b = dp;
                out.role = port_role(sp, dp);
                let ulen = c.d.u16(off + 4).unwrap_or(0) as usize;
                let len = if proto == 17 && ulen >= 8 && ulen <= wire {
                    ulen
                } else {
                    wire
                };
                out.app_len = len.saturating_sub(8) as u32;
                out.payload_off = (off + 8) as u32;
                out.payload_cap = cap.saturating_sub(8) as u32;
                if proto == 17 && dp == ib::ROCEV2_PORT && out.frag == fragpos::NONE {
                    self.rocev2(c, off + 8, len.saturating_sub(8), out);
                } else if proto == 17 && depth < MAX_DEPTH && out.frag == fragpos::NONE {
                    self.udp_tunnel(c, sp, dp, off + 8, depth, out);
                }
                Ok(())
            }
            132 => {
                let sp = c.d.u16(off).ok_or(Malformed::TruncatedTransport)?;
                let dp = c.d.u16(off + 2).ok_or(Malformed::TruncatedTransport)?;
                out.key.port_a = sp;
                out.key.port_b = dp;
                out.role = port_role(sp, dp);
                out.app_len = wire.saturating_sub(12) as u32;
                out.payload_off = (off + 12) as u32;
                out.payload_cap = cap.saturating_sub(12) as u32;
                Ok(())
            }
            1 | 58 => {
                let ty = c.d.u8(off).ok_or(Malformed::TruncatedTransport)?;
                let code = c.d.u8(off + 1).ok_or(Malformed::TruncatedTransport)?;
                let (req_ty, role, query) = icmp_class(proto == 58, ty);
                out.key.port_a = (req_ty as u16) << 8 | if query { 0 } else { code as u16 };
                out.key.port_b = if query {
                    c.d.u16(off + 4).unwrap_or(0)
                } else {
                    0
                };
                out.role = role;
                out.app_len = wire.saturating_sub(8) as u32;
                out.payload_off = (off + 8) as u32;
                out.payload_cap = cap.saturating_sub(8) as u32;
                Ok(())
            }
            51 if out.key.kind == AddrKind::Ipv4 as u8 => {
                // AH over IPv4: decode through to the protected transport.
                out.flags |= flags::IPSEC_AH;
                let nh = c.d.u8(off).ok_or(Malformed::TruncatedTransport)?;
                let len = (c.d.u8(off + 1).ok_or(Malformed::TruncatedTransport)? as usize + 2) * 4;
                out.key.proto = nh;
                self.transport(c, nh, off + len, wire.saturating_sub(len), depth, out)
            }
            47 if depth < MAX_DEPTH && out.frag == fragpos::NONE => {
                self.gre(c, off, depth, out);
                Ok(())
            }
            4 | 41 if depth < MAX_DEPTH && out.frag == fragpos::NONE => {
                let kind = if proto == 41 && out.key.kind == AddrKind::Ipv4 as u8 {
                    encap::IP6IN4
                } else {
                    encap::IPIP
                };
                let inner = if proto == 4 { 4 } else { 6 };
                self.tunnel(c, off, depth, kind, 0, out, TunnelInner::Ip(inner));
                Ok(())
            }
            _ => {
                out.app_len = wire as u32;
                out.payload_off = off as u32;
                out.payload_cap = cap as u32;
                Ok(())
            }
        }
    }

    fn udp_tunnel(
        &mut self,
        c: &Ctx,
        sp: u16,
        dp: u16,
        off: usize,
        depth: u8,
        out: &mut PacketSummary,
    ) {
        let d = c.d;
        if dp == 4789 || dp == 8472 {
            // VXLAN (RFC 7348): flags byte with the I bit, 24-bit VNI, then Ethernet.
            if d.u8(off).map(|f| f & 0x08 != 0) == Some(true) {
                let vni = d.u32(off + 4).unwrap_or(0) >> 8;
                self.tunnel(
                    c,
                    off + 8,
                    depth,
                    encap::VXLAN,
                    vni,
                    out,
                    TunnelInner::Ether,
                );
            }
        } else if dp == 6081 {
            // GENEVE (RFC 8926): version 0, options length in 4-byte words, protocol type.
            let (Some(b0), Some(pt), Some(vni)) = (d.u8(off), d.u16(off + 2), d.u32(off + 4))
            else {
                return;
            };
            if b0 >> 6 != 0 {
                return;
            }
            let inner = off + 8 + (b0 & 0x3f) as usize * 4;
            let what = match pt {
                0x6558 => TunnelInner::Ether,
                0x0800 => TunnelInner::Ip(4),
                0x86dd => TunnelInner::Ip(6),
                _ => return,
            };
            self.tunnel(c, inner, depth, encap::GENEVE, vni >> 8, out, what);
        } else if dp == 2152 || sp == 2152 {
            // GTP-U (3GPP TS 29.281): version 1, PT 1, message type 255 (G-PDU).
            let (Some(fl), Some(mt), Some(teid)) = (d.u8(off), d.u8(off + 1), d.u32(off + 4))
            else {
                return;
            };
            if fl >> 5 != 1 || fl & 0x10 == 0 || mt != 0xff {
                return;
            }
            let mut p = off + 8;
            if fl & 0x07 != 0 {
                // Sequence number, N-PDU number, next extension header type.
                let mut next = d.u8(off + 11).unwrap_or(0);
                p = off + 12;
                // Extension headers: length in 4-byte units, last byte = next type.
                for _ in 0..8 {
                    if next == 0 {
                        break;
                    }
                    let Some(len) = d.u8(p).map(|l| l as usize * 4) else {
                        return;
                    };
                    if len == 0 {
                        return;
                    }
                    next = d.u8(p + len - 1).unwrap_or(0);
                    p += len;
                }
            }
            let v = d.u8(p).map(|b| b >> 4).unwrap_or(0);
            if v == 4 || v == 6 {
                self.tunnel(c, p, depth, encap::GTPU, teid, out, TunnelInner::Ip(v));
            }
        } else if dp == 3544 || sp == 3544 {
            // Teredo (RFC 4380): optional authentication and origin indication, then IPv6.
            let mut p = off;
            if d.u16(p) == Some(0x0001) {
                let id_len = d.u8(p + 2).unwrap_or(0) as usize;
                let au_len = d.u8(p + 3).unwrap_or(0) as usize;
                p += 4 + id_len + au_len + 9;
            }
            if d.u16(p) == Some(0x0000) {
                p += 8;
            }
            if d.u8(p).map(|b| b >> 4) == Some(6) && d.len() >= p + 40 {
                self.tunnel(c, p, depth, encap::TEREDO, 0, out, TunnelInner::Ip(6));
            }
        }
    }

    /// GRE (RFC 2784/2890), ERSPAN II/III, transparent Ethernet bridging.
    fn gre(&mut self, c: &Ctx, off: usize, depth: u8, out: &mut PacketSummary) {
        let d = c.d;
        let (Some(fl), Some(pt)) = (d.u16(off), d.u16(off + 2)) else {
            return;
        };
        if fl & 0x0007 != 0 {
            // Version 1 is PPTP's enhanced GRE: keep it as a GRE flow.
            return;
        }
        let mut p = off + 4;
        if fl & 0x8000 != 0 {
            p += 4; // checksum + reserved
        }
        let mut key = 0;
        if fl & 0x2000 != 0 {
            key = d.u32(p).unwrap_or(0);
            p += 4;
        }
        if fl & 0x1000 != 0 {
            p += 4; // sequence number
        }
        match pt {
            0x0800 => self.tunnel(c, p, depth, encap::GRE, key, out, TunnelInner::Ip(4)),
            0x86dd => self.tunnel(c, p, depth, encap::GRE, key, out, TunnelInner::Ip(6)),
            0x6558 => self.tunnel(
                c,
                p,
                depth,
                encap::GRE | encap::TEB,
                key,
                out,
                TunnelInner::Ether,
            ),
            0x8847 => self.tunnel(c, p, depth, encap::GRE, key, out, TunnelInner::Mpls),
            0x88be => {
                // ERSPAN type II: 8-byte header (version in the top nibble), session id.
                let session = d.u16(p + 2).unwrap_or(0) as u32 & 0x3ff;
                let kinds = encap::GRE | encap::ERSPAN;
                if fl & 0x1000 == 0 {
                    // ERSPAN type I has no header at all.
                    self.tunnel(c, p, depth, kinds, 0, out, TunnelInner::Ether);
                } else {
                    self.tunnel(c, p + 8, depth, kinds, session, out, TunnelInner::Ether);
                }
            }
            0x22eb => {
                // ERSPAN type III: 12-byte header, plus an 8-byte platform subheader when O is set.
                let session = d.u16(p + 2).unwrap_or(0) as u32 & 0x3ff;
                let o = d.u8(p + 11).map(|b| b & 0x01 != 0).unwrap_or(false);
                let inner = p + 12 + if o { 8 } else { 0 };
                let kinds = encap::GRE | encap::ERSPAN;
                self.tunnel(c, inner, depth, kinds, session, out, TunnelInner::Ether);
            }
            _ => {}
        }
    }

    /// Decodes the inner packet of a tunnel. If it does not decode, the packet stays the outer
    /// flow it already is (counted as `tunnel_inner_bad`), so nothing is lost.
    #[allow(clippy::too_many_arguments)]
    fn tunnel(
        &mut self,
        c: &Ctx,
        off: usize,
        depth: u8,
        kind: u16,
        id: u32,
        out: &mut PacketSummary,
        inner: TunnelInner,
    ) {
        let saved = *out;
        out.encap.kinds |= kind;
        out.encap.tunnel_id = id;
        out.encap.outer_kind = out.key.addr_kind();
        out.encap.outer_src = Addr(out.key.a);
        out.encap.outer_dst = Addr(out.key.b);
        out.flags &= !(flags::FRAGMENTS | flags::IP_OPTIONS);
        let r = match inner {
            TunnelInner::Ether => self.ether(c, off, depth + 1, out),
            TunnelInner::Ip(4) => self.ipv4(c, off, depth + 1, out),
            TunnelInner::Ip(_) => self.ipv6(c, off, depth + 1, out),
            TunnelInner::Mpls => self.mpls(c, off, depth + 1, out, out.smac, out.dmac),
        };
        if r.is_err() {
            *out = saved;
            self.stats.tunnel_inner_bad += 1;
        }
    }
}

impl Decoder {
    /// Decodes one packet with [`Decoder::decode`] and, when it is an InfiniBand flow, reads
    /// its IB headers again with the same parser from where the decoder found them: the
    /// per-packet view the tests compare with tshark (not used on the hot path).
    pub fn dissect_ib(
        &mut self,
        data: &[u8],
        wire_len: u32,
        link: LinkType,
        ts_ns: u64,
    ) -> Result<Option<(PacketSummary, ib::Hdrs)>, Malformed> {
        let mut s = PacketSummary::default();
        self.decode(data, wire_len, link, ts_ns, &mut s)?;
        if s.key.kind != KIND_IB || s.key.ib_flags() & ib_flags::LINK != 0 {
            return Ok(None);
        }
        let h = data
            .get(usize::from(s.ib.off)..)
            .and_then(|d| ib::parse(d, s.ib.lrh).ok())
            .unwrap_or_default();
        Ok(Some((s, h)))
    }

    /// Native InfiniBand: LRH [GRH] BTH … ICRC VCRC.
    fn infiniband(&mut self, c: &Ctx, out: &mut PacketSummary) -> R<()> {
        let h = ib::core(c.d.0, true).map_err(|_| Malformed::TruncatedIb)?;
        // The LRH packet length counts 4-byte words from the LRH through the ICRC; trust it
        // when it fits the frame (the VCRC follows), else take the frame.
        let words = usize::from(h.pktlen) * 4;
        let total = if words >= h.hdr_len && words + ib::VCRC_LEN <= c.wire_len {
            words
        } else {
            c.wire_len.saturating_sub(ib::VCRC_LEN)
        };
        let (a, b, fl) = if h.grh {
            let g = ib::GRH_GIDS;
            let sgid = c.d.bytes::<16>(g).ok_or(Malformed::TruncatedIb)?;
            let dgid = c.d.bytes::<16>(g + 16).ok_or(Malformed::TruncatedIb)?;
            (sgid, dgid, ib_flags::GRH)
        } else {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a[..2].copy_from_slice(&h.slid.to_be_bytes());
            b[..2].copy_from_slice(&h.dlid.to_be_bytes());
            (a, b, 0)
        };
        out.ttl = h.hoplmt;
        out.tos = h.tclass;
        self.ib_flow(c, &h, (a, b), fl, 0, total, out);
        Ok(())
    }

    /// RoCEv2: the BTH follows the UDP header (`off`); `udp_payload` bytes on the wire. The
    /// flow becomes an IB flow between the IP addresses as GIDs. A BTH that does not fit
    /// leaves the packet the UDP flow it already is.
    fn rocev2(&mut self, c: &Ctx, off: usize, udp_payload: usize, out: &mut PacketSummary) {
        let Some(d) = c.d.0.get(off..) else { return };
        let Ok(h) = ib::core(d, false) else {
            self.stats.tunnel_inner_bad += 1;
            return;
        };
        let (a, b) = if out.key.kind == AddrKind::Ipv4 as u8 {
            let mut x = [0u8; 4];
            let mut y = [0u8; 4];
            x.copy_from_slice(&out.key.a[..4]);
            y.copy_from_slice(&out.key.b[..4]);
            (ib::v4_mapped(x), ib::v4_mapped(y))
        } else {
            (out.key.a, out.key.b)
        };
        self.ib_flow(c, &h, (a, b), ib_flags::ROCEV2, off, udp_payload, out);
    }

    /// Names the IB flow and fills the packet's IB facts. `total` is the length of the IB
    /// part on the wire from the headers through the ICRC; `off` where the headers start.
    #[allow(clippy::too_many_arguments)]
    fn ib_flow(
        &mut self,
        c: &Ctx,
        h: &ib::Core,
        (a, b): ([u8; 16], [u8; 16]),
        mut fl: u8,
        off: usize,
        total: usize,
        out: &mut PacketSummary,
    ) {
        if h.ext & ib::ext::DETH != 0 {
            fl |= ib_flags::SQP;
        }
        let (sqp, dqp) = (h.sqp & 0xff_ffff, h.dqp & 0xff_ffff);
        out.key = FlowKey {
            a,
            b,
            port_a: sqp as u16,
            port_b: dqp as u16,
            proto: IB_KEY | fl,
            kind: KIND_IB,
            // The QPs' top bytes (24-bit QPs do not fit the ports).
            ethertype: ((sqp >> 16) << 8 | dqp >> 16) as u16,
        };
        out.flags |= flags::INFINIBAND;
        out.role = Role::Unknown;
        let app = total.saturating_sub(h.hdr_len + usize::from(h.padcnt) + ib::ICRC_LEN);
        out.app_len = app as u32;
        out.payload_off = (off + h.hdr_len) as u32;
        out.payload_cap = c.d.len().saturating_sub(off + h.hdr_len) as u32;
        out.ib = IbPkt {
            off: off as u16,
            lrh: h.lrh,
            bth: h.bth,
            opcode: h.opcode,
            psn: h.psn,
            pkey: h.pkey,
            slid: h.slid,
            dlid: h.dlid,
            aeth: h.ext & ib::ext::AETH != 0,
            syndrome: h.syndrome,
        };
    }
}

#[derive(Clone, Copy)]
enum TunnelInner {
    Ether,
    Ip(u8),
    Mpls,
}

/// Guess who is the client from the ports: a well-known port answering an ephemeral one.
#[inline]
fn port_role(sp: u16, dp: u16) -> Role {
    if sp < 1024 && dp >= 1024 {
        Role::Responder
    } else if dp < 1024 && sp >= 1024 {
        Role::Initiator
    } else {
        Role::Unknown
    }
}

/// Maps an ICMP type to (request type, role, is-query). Replies name their request type so
/// both halves of an exchange share a key.
#[inline]
fn icmp_class(v6: bool, ty: u8) -> (u8, Role, bool) {
    if v6 {
        match ty {
            128 => (128, Role::Initiator, true),
            129 => (128, Role::Responder, true),
            _ => (ty, Role::Initiator, false),
        }
    } else {
        match ty {
            8 | 13 | 15 | 17 => (ty, Role::Initiator, true),
            0 => (8, Role::Responder, true),
            14 | 16 | 18 => (ty - 1, Role::Responder, true),
            _ => (ty, Role::Initiator, false),
        }
    }
}

/// Walks TCP options (RFC 9293 §3.1, RFC 7323, RFC 2018).
fn tcp_options(d: Buf, mut p: usize, end: usize, t: &mut TcpInfo) {
    let mut n = 0;
    while p < end && n < 40 {
        n += 1;
        let Some(kind) = d.u8(p) else { return };
        match kind {
            0 => return,
            1 => {
                p += 1;
                continue;
            }
            _ => {}
        }
        let Some(len) = d.u8(p + 1).map(|l| l as usize) else {
            return;
        };
        if len < 2 || p + len > end {
            return;
        }
        match kind {
            2 => t.opts |= tcp_opts::MSS,
            3 => {
                t.opts |= tcp_opts::WSCALE;
                t.wscale = d.u8(p + 2).unwrap_or(0).min(14);
            }
            4 => t.opts |= tcp_opts::SACK_OK,
            5 => t.opts |= tcp_opts::SACK,
            8 => t.opts |= tcp_opts::TSTAMP,
            _ => {}
        }
        p += len;
    }
}

#[cfg(test)]
mod tests;
