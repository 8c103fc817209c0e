//! One packet of any bytes under every link type the decoder knows (the first byte picks it):
//! decoding must not panic, and a failure is counted as exactly one malformed packet.
//!
//! `cargo +nightly fuzz run packet`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapflow_capture::LinkType;
use tapflow_probe::decode::{Decoder, PacketSummary};

const LINKS: [u16; 12] = [0, 1, 9, 101, 108, 113, 197, 228, 229, 247, 276, 12];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let link = LinkType(LINKS[usize::from(sel) % LINKS.len()]);
    let mut d = Decoder::new(16);
    let mut out = PacketSummary::default();
    let wire = u32::from(sel).wrapping_mul(7).max(pkt.len() as u32);
    let before = d.stats.malformed_total();
    let res = d.decode(pkt, wire, link, 1_700_000_000_000_000_000, &mut out);
    let counted = d.stats.malformed_total() - before;
    assert_eq!(counted, u64::from(res.is_err()), "{res:?}");
});
