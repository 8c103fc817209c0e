//! ERF (Endace Extensible Record Format): the record walk shared by every ERF source — ERF
//! files and pipes (`file`), ERF records inside pcap/pcapng (LINKTYPE_ERF 197) and the DAG
//! stream (`dag`, feature `dag`). One function, [`parse`], turns the bytes of one record into a
//! packet descriptor, so all three read records the same way.
//!
//! Layout (Endace "ERF types" reference): a 16-byte header — 64-bit little-endian fixed-point
//! timestamp (seconds << 32 | binary fraction), type (bit 7: an extension header follows),
//! flags (bits 0-1 interface, 2 varying length, 3 truncated, 4 RX error, 5 DS error), then
//! big-endian `rlen` (whole record), `lctr` (loss counter, or colour for the colour types) and
//! `wlen` (length on the wire) — then 8-byte extension headers while bit 7 of the previous
//! type byte is set, then for the Ethernet types a 2-byte pad (offset, pad), then the packet.
//! The captured length is `min(wlen, rlen - header - extensions - pad)`, as in Wireshark.

use crate::{LinkType, PacketDesc};
use std::fmt;

/// Fixed header length.
pub const HEADER_LEN: usize = 16;
/// Extension header length.
pub const EXT_LEN: usize = 8;
/// Bytes of the Ethernet FCS that ERF Ethernet records carry (DAG cards capture it); tapflow
/// counts frames without it, as a pcap of the same link would.
pub const ETH_FCS: u32 = 4;

/// ERF record types (the type byte without its extension bit).
pub mod types {
    pub const HDLC_POS: u8 = 1;
    pub const ETH: u8 = 2;
    pub const ATM: u8 = 3;
    pub const AAL5: u8 = 4;
    pub const COLOR_HDLC_POS: u8 = 10;
    pub const COLOR_ETH: u8 = 11;
    pub const DSM_COLOR_HDLC_POS: u8 = 15;
    pub const DSM_COLOR_ETH: u8 = 16;
    pub const COLOR_MC_HDLC_POS: u8 = 17;
    pub const COLOR_HASH_POS: u8 = 19;
    pub const COLOR_HASH_ETH: u8 = 20;
    pub const INFINIBAND: u8 = 21;
    pub const IPV4: u8 = 22;
    pub const IPV6: u8 = 23;
    pub const RAW_LINK: u8 = 24;
    pub const INFINIBAND_LINK: u8 = 25;
    pub const META: u8 = 27;
    pub const PAD: u8 = 48;
}

/// Link types tapflow uses for ERF payloads that have no LINKTYPE of their own.
impl LinkType {
    /// LINKTYPE_C_HDLC: Cisco HDLC (ERF HDLC/PoS records that are not PPP).
    pub const C_HDLC: LinkType = LinkType(104);
    /// LINKTYPE_ERF: a whole ERF record per packet (pcap/pcapng).
    pub const ERF: LinkType = LinkType(197);
    /// LINKTYPE_INFINIBAND: an InfiniBand packet from its LRH on (ibdump, ERF type 21).
    pub const INFINIBAND: LinkType = LinkType(247);
    /// tapflow-internal: an InfiniBand link-level packet (flow control; ERF type 25).
    pub const ERF_INFINIBAND_LINK: LinkType = LinkType(0xEF19);
    /// tapflow-internal: the payload of ERF type `t` that tapflow does not decode (ATM,
    /// multichannel, raw link …); the decoder counts it as an unsupported link type.
    pub const fn erf_other(t: u8) -> LinkType {
        LinkType(0xEF00 | t as u16)
    }
}

/// Whether the type byte (without bit 7) is a type this walk knows, and what its packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Carries a packet of this link type after `pad` bytes.
    Packet {
        link: LinkType,
        pad: usize,
    },
    /// Not a packet (padding, provenance metadata).
    NoPacket,
    Unknown,
}

fn kind(t: u8, first: Option<u8>) -> Kind {
    use types::*;
    let p = |link, pad| Kind::Packet { link, pad };
    match t {
        ETH | COLOR_ETH | DSM_COLOR_ETH | COLOR_HASH_ETH => p(LinkType::ETHERNET, 2),
        IPV4 => p(LinkType::IPV4, 0),
        IPV6 => p(LinkType::IPV6, 0),
        INFINIBAND => p(LinkType::INFINIBAND, 0),
        INFINIBAND_LINK => p(LinkType::ERF_INFINIBAND_LINK, 0),
        // PoS: Cisco HDLC starts 0x0f/0x8f (unicast/multicast address), PPP anything else
        // (Wireshark guesses the same way).
        HDLC_POS | COLOR_HDLC_POS | DSM_COLOR_HDLC_POS | COLOR_HASH_POS => match first {
            Some(0x0f | 0x8f) => p(LinkType::C_HDLC, 0),
            _ => p(LinkType::PPP, 0),
        },
        // Defined types tapflow does not decode: delivered, counted as unsupported by the
        // decoder (multichannel types carry a 4-byte subheader we do not strip).
        ATM
        | AAL5
        | 5..=9
        | 12..=14
        | COLOR_MC_HDLC_POS
        | 18
        | RAW_LINK
        | 26
        | 28
        | 29
        | 32..=47 => p(LinkType::erf_other(t), 0),
        PAD | META => Kind::NoPacket,
        _ => Kind::Unknown,
    }
}

/// Whether `lctr` is a loss counter for this type (the colour types reuse it).
fn has_loss_counter(t: u8) -> bool {
    use types::*;
    !matches!(
        t,
        COLOR_HDLC_POS
            | COLOR_ETH
            | DSM_COLOR_HDLC_POS
            | DSM_COLOR_ETH
            | COLOR_MC_HDLC_POS
            | COLOR_HASH_POS
            | COLOR_HASH_ETH
    )
}

/// Why a record cannot be delivered. `Copy` and allocation-free; formatted only when reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErfError {
    /// `rlen` below the 16-byte header: the framing is lost.
    ShortRlen(u16),
    /// The record runs past the end of the input.
    Truncated { rlen: usize, have: usize },
    /// The extension-header chain (or the Ethernet pad) runs past `rlen`.
    ExtChain { rlen: usize, exts: usize },
    /// A type this reader does not know (the record is skipped by its `rlen`).
    UnknownType(u8),
}

impl fmt::Display for ErfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErfError::ShortRlen(r) => write!(
                f,
                "record length {r} is below the {HEADER_LEN}-byte ERF header: corrupt record \
                 header"
            ),
            ErfError::Truncated { rlen, have } => write!(
                f,
                "record length {rlen} but only {have} bytes remain (truncated record)"
            ),
            ErfError::ExtChain { rlen, exts } => write!(
                f,
                "extension header chain ({exts} header(s) announced) runs past the record \
                 length {rlen}"
            ),
            ErfError::UnknownType(t) => write!(f, "unknown ERF record type {t}"),
        }
    }
}

/// What [`parse`] found at the start of a byte slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// A packet; `desc.offset` is relative to the record start. `loss` is the record's loss
    /// counter (0 for the colour types). `rlen` bytes make the record.
    Packet {
        rlen: usize,
        desc: PacketDesc,
        loss: u16,
    },
    /// A record without a packet (padding, metadata) of `rlen` bytes.
    Skip(usize),
    /// The record is this long but the slice is shorter.
    Need(usize),
    /// A record that cannot be delivered; `skip` is its length when the framing is intact
    /// (reading can go on after it), `None` when it is not.
    Bad { err: ErfError, skip: Option<usize> },
}

/// Converts an ERF timestamp to ns since the epoch, rounding the binary fraction to the
/// nearest ns (as Wireshark does, so both tools print the same times).
#[inline]
pub fn ts_ns(ts: u64) -> u64 {
    let secs = ts >> 32;
    let frac = (ts & 0xffff_ffff) * 1_000_000_000;
    let ns = (frac + 0x8000_0000) >> 32;
    secs * 1_000_000_000 + ns
}

#[inline]
fn be16(d: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([d[off], d[off + 1]])
}

/// Parses the ERF record at the start of `d`. With `partial`, `d` may hold only a prefix of the
/// record (an ERF record inside a pcap record cut by the snap length): the packet is what is
/// there. Never panics, never allocates.
#[inline]
pub fn parse(d: &[u8], partial: bool) -> Walk {
    if d.len() < HEADER_LEN {
        return Walk::Need(HEADER_LEN);
    }
    let rlen16 = be16(d, 10);
    let rlen = usize::from(rlen16);
    if rlen < HEADER_LEN {
        return Walk::Bad {
            err: ErfError::ShortRlen(rlen16),
            skip: None,
        };
    }
    if d.len() < rlen && !partial {
        return Walk::Need(rlen);
    }
    let avail = rlen.min(d.len());
    let ty = d[8];
    // Extension headers: each one's first byte says whether another follows.
    let mut off = HEADER_LEN;
    let mut more = ty & 0x80 != 0;
    let mut exts = 0;
    while more {
        exts += 1;
        if off + EXT_LEN > avail {
            return Walk::Bad {
                err: ErfError::ExtChain { rlen, exts },
                skip: Some(rlen),
            };
        }
        more = d[off] & 0x80 != 0;
        off += EXT_LEN;
    }
    let t = ty & 0x7f;
    let (link, pad) = match kind(t, d.get(off).copied()) {
        Kind::Packet { link, pad } => (link, pad),
        Kind::NoPacket => return Walk::Skip(rlen),
        Kind::Unknown => {
            return Walk::Bad {
                err: ErfError::UnknownType(t),
                skip: Some(rlen),
            }
        }
    };
    if off + pad > avail {
        return Walk::Bad {
            err: ErfError::ExtChain { rlen, exts },
            skip: Some(rlen),
        };
    }
    off += pad;
    let mut wire = u32::from(be16(d, 14));
    if link == LinkType::ETHERNET {
        wire = wire.saturating_sub(ETH_FCS);
    }
    // Records shorter than the snap length are padded up to it unless "varying length" is set:
    // never deliver the padding as packet bytes.
    let caplen = ((avail - off) as u32).min(wire);
    let ts = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    Walk::Packet {
        rlen,
        desc: PacketDesc {
            offset: off,
            caplen,
            wire_len: wire,
            ts_ns: ts_ns(ts),
            link: link.0,
            iface: u16::from(d[9] & 0x03),
        },
        loss: if has_loss_counter(t) { be16(d, 12) } else { 0 },
    }
}

/// Whether `d` plausibly starts with ERF records (ERF has no magic number): the first record
/// has a known type, a sane length and extension chain, a timestamp after 1990, and the next
/// record (if `d` holds its header) passes the same checks with a timestamp not more than a
/// day earlier.
pub fn looks_like(d: &[u8]) -> bool {
    let first = match plausible(d) {
        Some(r) => r,
        None => return false,
    };
    match d.get(first..) {
        Some(rest) if rest.len() >= HEADER_LEN => {
            plausible(rest).is_some() && {
                let t0 = u64::from_le_bytes(d[0..8].try_into().unwrap_or([0; 8])) >> 32;
                let t1 = u64::from_le_bytes(rest[0..8].try_into().unwrap_or([0; 8])) >> 32;
                t1 + 86_400 >= t0
            }
        }
        _ => true,
    }
}

/// The record length if the header at the start of `d` looks like ERF.
fn plausible(d: &[u8]) -> Option<usize> {
    if d.len() < HEADER_LEN {
        return None;
    }
    let t = d[8] & 0x7f;
    if t == 0 || kind(t, None) == Kind::Unknown {
        return None;
    }
    let secs = u64::from_le_bytes(d[0..8].try_into().ok()?) >> 32;
    if t != types::PAD && secs < 631_152_000 {
        return None;
    }
    match parse(d, true) {
        Walk::Packet { rlen, .. } | Walk::Skip(rlen) => Some(rlen),
        // Only part of the record is here (a stream's first read): its header must do.
        Walk::Bad {
            err: ErfError::ExtChain { rlen, .. },
            ..
        } if d.len() < rlen => Some(rlen),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ERF record: `ty` (with bit 7 set when `exts` is non-empty), `payload` after the
    /// extension headers (and the 2-byte pad for Ethernet).
    pub(crate) fn record(
        ty: u8,
        flags: u8,
        lctr: u16,
        wlen: u16,
        exts: usize,
        p: &[u8],
    ) -> Vec<u8> {
        let pad = if matches!(ty, 2 | 11 | 16 | 20) { 2 } else { 0 };
        let rlen = HEADER_LEN + exts * EXT_LEN + pad + p.len();
        let mut v = Vec::new();
        v.extend_from_slice(&((1_700_000_000u64 << 32) | 0x8000_0000).to_le_bytes());
        v.push(ty | if exts > 0 { 0x80 } else { 0 });
        v.push(flags);
        v.extend_from_slice(&(rlen as u16).to_be_bytes());
        v.extend_from_slice(&lctr.to_be_bytes());
        v.extend_from_slice(&wlen.to_be_bytes());
        for i in 0..exts {
            let more = if i + 1 < exts { 0x80 } else { 0 };
            v.extend_from_slice(&[more | 0x04, 0, 0, 0, 0, 0, 0, i as u8]);
        }
        v.extend(std::iter::repeat_n(0, pad));
        v.extend_from_slice(p);
        v
    }

    #[test]
    fn timestamp_rounds_like_wireshark() {
        assert_eq!(ts_ns(1 << 32), 1_000_000_000);
        assert_eq!(ts_ns((5 << 32) | 0x8000_0000), 5_500_000_000);
        // 1 ns is 4.295 fraction units: 4 rounds down to 1 ns, 2 rounds up to 0.47 → 0.
        assert_eq!(ts_ns(4), 1);
        assert_eq!(ts_ns(2), 0);
        assert_eq!(ts_ns(0xffff_ffff), 1_000_000_000);
    }

    #[test]
    fn ethernet_with_extensions_and_fcs() {
        let frame = [0xabu8; 64]; // 60 bytes of frame + 4 of FCS
        let r = record(types::ETH, 0x05, 3, 64, 2, &frame);
        match parse(&r, false) {
            Walk::Packet { rlen, desc, loss } => {
                assert_eq!(rlen, r.len());
                assert_eq!(desc.offset, 16 + 16 + 2);
                assert_eq!(desc.wire_len, 60);
                assert_eq!(desc.caplen, 60);
                assert_eq!(desc.link, LinkType::ETHERNET.0);
                assert_eq!(desc.iface, 1);
                assert_eq!(desc.ts_ns, 1_700_000_000_500_000_000);
                assert_eq!(loss, 3);
            }
            w => panic!("{w:?}"),
        }
        // A colour type: lctr is not a loss counter.
        let r = record(types::COLOR_ETH, 0, 3, 64, 0, &frame);
        assert!(matches!(parse(&r, false), Walk::Packet { loss: 0, .. }));
    }

    #[test]
    fn infiniband_ip_and_padding_types() {
        let p = [1u8; 40];
        for (ty, link) in [
            (types::INFINIBAND, LinkType::INFINIBAND),
            (types::INFINIBAND_LINK, LinkType::ERF_INFINIBAND_LINK),
            (types::IPV4, LinkType::IPV4),
            (types::IPV6, LinkType::IPV6),
        ] {
            let r = record(ty, 0, 0, 40, 0, &p);
            match parse(&r, false) {
                Walk::Packet { desc, .. } => {
                    assert_eq!((desc.link, desc.offset, desc.caplen), (link.0, 16, 40))
                }
                w => panic!("{ty}: {w:?}"),
            }
        }
        // Fixed-length records padded beyond wlen: the padding is not packet data.
        let r = record(types::INFINIBAND, 0, 0, 30, 0, &p);
        assert!(matches!(parse(&r, false), Walk::Packet { desc, .. } if desc.caplen == 30));
        let r = record(types::PAD, 0, 0, 0, 0, &[0; 24]);
        assert_eq!(parse(&r, false), Walk::Skip(40));
        let r = record(types::META, 0, 0, 0, 1, &[0; 24]);
        assert_eq!(parse(&r, false), Walk::Skip(48));
    }

    #[test]
    fn damage_is_reported_not_panicked_on() {
        let good = record(types::IPV4, 0, 0, 20, 0, &[0x45; 20]);
        // rlen below the header.
        let mut bad = good.clone();
        bad[10..12].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(
            parse(&bad, false),
            Walk::Bad {
                err: ErfError::ShortRlen(8),
                skip: None
            }
        );
        // Needs more.
        assert_eq!(parse(&good[..20], false), Walk::Need(36));
        assert_eq!(parse(&good[..3], false), Walk::Need(16));
        // Extension chain past rlen: two announced, room for one.
        let mut r = record(types::IPV4, 0, 0, 4, 1, &[0x45; 4]);
        r[16] |= 0x80;
        assert_eq!(
            parse(&r, false),
            Walk::Bad {
                err: ErfError::ExtChain { rlen: 28, exts: 2 },
                skip: Some(28)
            }
        );
        // Unknown type.
        let r = record(99, 0, 0, 4, 0, &[0; 4]);
        assert_eq!(
            parse(&r, false),
            Walk::Bad {
                err: ErfError::UnknownType(99),
                skip: Some(20)
            }
        );
        // Every prefix and every byte value at every header position: no panic.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], false);
            let _ = parse(&good[..cut], true);
        }
        for at in 0..good.len() {
            for v in [0u8, 0x80, 0xff, 0x7f, 0x10] {
                let mut x = good.clone();
                x[at] = v;
                let _ = parse(&x, false);
                let _ = parse(&x, true);
            }
        }
    }

    #[test]
    fn sniffing() {
        let a = record(types::INFINIBAND, 0, 0, 40, 0, &[0; 40]);
        let b = record(types::ETH, 0, 0, 64, 1, &[0; 64]);
        assert!(looks_like(&a));
        assert!(looks_like(&[a.clone(), b.clone()].concat()));
        assert!(!looks_like(&[0u8; 32]));
        assert!(!looks_like(
            b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        ));
        let mut bad = a.clone();
        bad[8] = 99;
        assert!(!looks_like(&bad));
    }
}
