//! A bounded cache that attributes non-first IP fragments to their flow.
//!
//! The first fragment carries the transport header; later ones carry only the IP header. The
//! cache remembers (addresses, protocol, IP id) → ports from the first fragment. It is
//! direct-mapped and fixed-size: a collision overwrites (the later fragment then counts as
//! unmatched and keeps port 0), so memory stays bounded under a fragment flood.

use super::Role;
use crate::key::FlowKey;

/// Fragments of one datagram arrive within this time (RFC 791 suggests 15 s reassembly timeout;
/// Linux uses 30 s).
const FRAG_TTL_NS: u64 = 30_000_000_000;

#[derive(Clone, Copy, Default)]
struct Entry {
    a: [u8; 16],
    b: [u8; 16],
    id: u32,
    proto: u8,
    kind: u8,
    role: u8,
    valid: bool,
    port_a: u16,
    port_b: u16,
    ts_ns: u64,
}

pub struct FragCache {
    slots: Vec<Entry>,
    mask: usize,
}

impl FragCache {
    pub fn new(capacity: usize) -> FragCache {
        let n = capacity.max(16).next_power_of_two();
        FragCache {
            slots: vec![Entry::default(); n],
            mask: n - 1,
        }
    }

    #[inline]
    fn slot(&self, k: &FlowKey, id: u32) -> usize {
        let mut h = (id as u64) ^ ((k.proto as u64) << 32);
        for c in k.a.chunks_exact(8).chain(k.b.chunks_exact(8)) {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 31;
        }
        (h as usize) & self.mask
    }

    pub fn insert(&mut self, k: &FlowKey, id: u32, ts_ns: u64, role: Role) {
        let i = self.slot(k, id);
        self.slots[i] = Entry {
            a: k.a,
            b: k.b,
            id,
            proto: k.proto,
            kind: k.kind,
            role: role as u8,
            valid: true,
            port_a: k.port_a,
            port_b: k.port_b,
            ts_ns,
        };
    }

    /// Ports (and role) for a later fragment of datagram `id` between `k.a` and `k.b`.
    pub fn lookup(&self, k: &FlowKey, id: u32, ts_ns: u64) -> Option<(u16, u16, Role)> {
        let e = &self.slots[self.slot(k, id)];
        let fresh = ts_ns.saturating_sub(e.ts_ns) <= FRAG_TTL_NS;
        if e.valid
            && fresh
            && e.id == id
            && e.proto == k.proto
            && e.kind == k.kind
            && e.a == k.a
            && e.b == k.b
        {
            let role = match e.role {
                1 => Role::Initiator,
                2 => Role::Responder,
                _ => Role::Unknown,
            };
            Some((e.port_a, e.port_b, role))
        } else {
            None
        }
    }
}
