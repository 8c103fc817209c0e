//! Flow keys: a directional key from the decoder, canonicalised so both directions of a flow
//! hit the same table entry with one lookup.

use tapflow_record::{ib_flags, AddrKind};

/// `FlowKey::kind` of InfiniBand flows (AF_IB). Internal to the probe: records carry
/// `AddrKind::Ipv6` and `flags::INFINIBAND` (the GIDs are IPv6-format addresses).
pub const KIND_IB: u8 = 27;
/// Set in `FlowKey::proto` of IB keys, whose low bits are `ib_flags` (variant, source QP
/// known): keeps IB protos apart from every value the IP rules look at (1, 6, 17, 58).
pub const IB_KEY: u8 = 0x80;

/// A fixed-size, `Copy` flow key (40 bytes). In canonical form endpoint `a` is the smaller one.
/// Serde: the merge daemon's snapshots carry keys. Ord: a layout-independent order for
/// anything that must not depend on a hash table's iteration order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(C)]
pub struct FlowKey {
    pub a: [u8; 16],
    pub b: [u8; 16],
    pub port_a: u16,
    pub port_b: u16,
    pub proto: u8,
    pub kind: u8,
    /// Ethertype for L2 flows, 0 for IP flows.
    pub ethertype: u16,
}

impl FlowKey {
    pub fn addr_kind(&self) -> AddrKind {
        AddrKind::from_u8(self.kind).unwrap_or_default()
    }

    /// True for protocols whose "ports" are not per-endpoint (ICMP type/id): only the
    /// addresses are ordered when canonicalising.
    #[inline]
    pub fn ports_symmetric(&self) -> bool {
        matches!((self.kind, self.proto), (4, 1) | (6, 58)) || self.kind == 0
    }

    /// IB key: the source and destination QP (24 bits each; the low 16 bits are the ports,
    /// the top 8 bits the two bytes of `ethertype`).
    #[inline]
    pub fn ib_qps(&self) -> (u32, u32) {
        let hi = self.ethertype;
        (
            u32::from(hi >> 8) << 16 | u32::from(self.port_a),
            u32::from(hi & 0xff) << 16 | u32::from(self.port_b),
        )
    }

    /// IB key: `ib_flags` bits.
    #[inline]
    pub fn ib_flags(&self) -> u8 {
        self.proto & !IB_KEY
    }

    /// The `ethertype` a record of this flow carries: the frame's for L2 flows, the IP
    /// version's otherwise.
    pub fn record_ethertype(&self) -> u16 {
        if self.kind == KIND_IB {
            // RoCEv2 over IPv4 or IPv6; native IB has no ethertype.
            return match (self.ib_flags() & ib_flags::ROCEV2 != 0, mapped_v4(&self.a)) {
                (false, _) => 0,
                (true, true) => 0x0800,
                (true, false) => 0x86dd,
            };
        }
        match self.addr_kind() {
            AddrKind::L2 => self.ethertype,
            AddrKind::Ipv6 => 0x86dd,
            AddrKind::Ipv4 => 0x0800,
        }
    }

    /// The (directional) key of a record: its initiator as endpoint `a`. Canonicalise it to
    /// meet the probe's own key for the flow.
    pub fn of_record(r: &tapflow_record::FlowRecord) -> FlowKey {
        if r.is_ib() {
            return FlowKey::of_ib_record(r);
        }
        FlowKey {
            a: r.saddr.0,
            b: r.daddr.0,
            port_a: r.sport,
            port_b: r.dport,
            proto: r.proto,
            kind: r.addr_kind as u8,
            ethertype: if r.addr_kind == AddrKind::L2 {
                r.ethertype
            } else {
                0
            },
        }
    }

    /// The key of an InfiniBand record, as the decoder builds it for its initiator's packets.
    fn of_ib_record(r: &tapflow_record::FlowRecord) -> FlowKey {
        let fl = r.ib.flags;
        let (mut a, mut b) = (r.saddr.0, r.daddr.0);
        if fl & (ib_flags::GRH | ib_flags::ROCEV2) == 0 {
            a = [0; 16];
            b = [0; 16];
            if fl & ib_flags::LINK == 0 {
                a[..2].copy_from_slice(&r.ib.slid.to_be_bytes());
                b[..2].copy_from_slice(&r.ib.dlid.to_be_bytes());
            }
        }
        let (sqp, dqp) = (r.ib.sqp & 0xff_ffff, r.ib.dqp & 0xff_ffff);
        FlowKey {
            a,
            b,
            port_a: sqp as u16,
            port_b: dqp as u16,
            proto: IB_KEY | (fl & 0x0f),
            kind: KIND_IB,
            ethertype: ((sqp >> 16) << 8 | dqp >> 16) as u16,
        }
    }

    /// Orders the endpoints. Returns the canonical key and `true` when the packet travels from
    /// `b` to `a` (i.e. the directional key's source became `b`).
    #[inline]
    pub fn canonical(mut self) -> (FlowKey, bool) {
        if self.kind == KIND_IB {
            return self.canonical_ib();
        }
        let swap = if self.ports_symmetric() {
            self.a > self.b
        } else {
            (self.a, self.port_a) > (self.b, self.port_b)
        };
        if swap {
            std::mem::swap(&mut self.a, &mut self.b);
            if !self.ports_symmetric() {
                std::mem::swap(&mut self.port_a, &mut self.port_b);
            }
        }
        (self, swap)
    }

    /// IB keys: only a key that names both QPs (a DETH gave the source QP) has two endpoints
    /// to order; without it the BTH names the destination QP only, so the key is one
    /// direction (an RC connection is two flows: requests to the responder's QP, responses
    /// and acknowledgements to the requester's).
    #[inline]
    fn canonical_ib(mut self) -> (FlowKey, bool) {
        if self.ib_flags() & ib_flags::SQP == 0 {
            return (self, false);
        }
        let (sqp, dqp) = self.ib_qps();
        let swap = (self.a, sqp) > (self.b, dqp);
        if swap {
            std::mem::swap(&mut self.a, &mut self.b);
            std::mem::swap(&mut self.port_a, &mut self.port_b);
            self.ethertype = self.ethertype.rotate_left(8);
        }
        (self, swap)
    }

    /// 64-bit hash of the key (multiply-xorshift over the five 8-byte words). Fast, and good
    /// enough for an open-addressing table whose home bucket uses the high bits.
    #[inline]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let w = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let tail = (self.port_a as u64)
            | (self.port_b as u64) << 16
            | (self.proto as u64) << 32
            | (self.kind as u64) << 40
            | (self.ethertype as u64) << 48;
        let mut h = 0x243F_6A88_85A3_08D3u64;
        for x in [
            w(&self.a[0..8]),
            w(&self.a[8..16]),
            w(&self.b[0..8]),
            w(&self.b[8..16]),
            tail,
        ] {
            h = (h ^ x).wrapping_mul(K);
            h ^= h >> 29;
        }
        h ^= h >> 32;
        h.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (h >> 31)
    }
}

/// Whether a GID is an IPv4-mapped address (`::ffff:a.b.c.d`).
fn mapped_v4(g: &[u8; 16]) -> bool {
    g[..10] == [0; 10] && g[10] == 0xff && g[11] == 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4], pa: u16, b: [u8; 4], pb: u16, proto: u8) -> FlowKey {
        let mut k = FlowKey {
            port_a: pa,
            port_b: pb,
            proto,
            kind: 4,
            ..Default::default()
        };
        k.a[..4].copy_from_slice(&a);
        k.b[..4].copy_from_slice(&b);
        k
    }

    #[test]
    fn both_directions_share_one_canonical_key() {
        let fwd = v4([10, 0, 0, 2], 40000, [10, 0, 0, 1], 80, 6);
        let rev = v4([10, 0, 0, 1], 80, [10, 0, 0, 2], 40000, 6);
        let (cf, sf) = fwd.canonical();
        let (cr, sr) = rev.canonical();
        assert_eq!(cf, cr);
        assert_ne!(sf, sr);
        assert_eq!(cf.hash(), cr.hash());
    }

    #[test]
    fn same_host_pair_different_ports_differ() {
        let a = v4([10, 0, 0, 1], 1000, [10, 0, 0, 1], 2000, 17)
            .canonical()
            .0;
        let b = v4([10, 0, 0, 1], 2000, [10, 0, 0, 1], 1000, 17)
            .canonical()
            .0;
        assert_eq!(a, b, "self-talk on one host is one flow");
        let c = v4([10, 0, 0, 1], 1000, [10, 0, 0, 1], 2001, 17)
            .canonical()
            .0;
        assert_ne!(a, c);
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn icmp_orders_addresses_only() {
        // Echo request and reply carry the same (type, id) "ports" both ways.
        let req = v4([10, 0, 0, 9], 0x0800, [10, 0, 0, 1], 77, 1);
        let rep = v4([10, 0, 0, 1], 0x0800, [10, 0, 0, 9], 77, 1);
        let (a, sa) = req.canonical();
        let (b, sb) = rep.canonical();
        assert_eq!(a, b);
        assert_eq!(a.port_a, 0x0800);
        assert_eq!(a.port_b, 77);
        assert_ne!(sa, sb);
    }
}
