//! `tapflow-bench split`: cut one bidirectional capture into the two legs of a split tap.
//!
//! A split tap hands each direction of a link to a different port. For a capture we do not
//! know the link's sides, so the packet's (innermost) addresses decide: packets from the
//! smaller address to the larger go to leg A, the others to leg B. Every flow is then seen
//! half by each leg, and initiators sit on both sides, as they do on a real link. Packets the
//! decoder rejects are split by their Ethernet addresses when they have any, else go to leg A.
//! Leg B's timestamps can be shifted to give it a wrong clock.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::BufWriter;

use crate::gen::write::{PcapOpts, PcapWriter};
use crate::gen::{Frame, Tag};
use tapflow_probe::decode::{Decoder, PacketSummary};

#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    /// Capture to split (pcap or pcapng).
    #[arg(short = 'r')]
    pub input: String,
    /// Leg A output (pcap, ns timestamps).
    #[arg(long)]
    pub a: String,
    /// Leg B output.
    #[arg(long)]
    pub b: String,
    /// Add this many ns to leg B's timestamps (negative: subtract), as a probe with a wrong
    /// clock would stamp them.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub shift_b_ns: i64,
}

/// What a split wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SplitCounts {
    pub a: u64,
    pub b: u64,
}

/// True when the packet belongs to leg B.
fn leg_b(
    dec: &mut Decoder,
    data: &[u8],
    wire_len: u32,
    link: tapflow_capture::LinkType,
    ts: u64,
) -> bool {
    let mut s = PacketSummary::default();
    match dec.decode(data, wire_len, link, ts, &mut s) {
        // Same host both ends (loopback): the ports decide.
        Ok(()) => (s.key.a, s.key.port_a) > (s.key.b, s.key.port_b),
        Err(_) if link.0 == 1 && data.len() >= 12 => data[6..12] < data[0..6],
        Err(_) => false,
    }
}

pub fn split(a: &SplitArgs) -> Result<SplitCounts> {
    let mut cap = tapflow_capture::file::open(&a.input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.input))?;
    let mut dec = Decoder::new(4096);
    let mut legs: [Option<PcapWriter<BufWriter<File>>>; 2] = [None, None];
    let mut link = None;
    let mut n = SplitCounts::default();
    loop {
        let batch = match cap.next_batch() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                // Like the probe: keep every good packet, say where the capture broke.
                eprintln!("split: {e}; the legs hold the packets before it");
                break;
            }
        };
        for p in batch.iter() {
            match link {
                None => {
                    link = Some(p.link.0);
                    for (i, path) in [&a.a, &a.b].into_iter().enumerate() {
                        let f = File::create(path).with_context(|| path.clone())?;
                        legs[i] = Some(PcapWriter::new(
                            BufWriter::new(f),
                            PcapOpts::new(p.link.0, true),
                        )?);
                    }
                }
                Some(l) if l != p.link.0 => bail!(
                    "{}: link types {} and {} in one capture; split writes pcap, one link type",
                    a.input,
                    l,
                    p.link.0
                ),
                _ => {}
            }
            let b = leg_b(&mut dec, p.data, p.wire_len, p.link, p.ts_ns);
            let ts = if b {
                p.ts_ns.saturating_add_signed(a.shift_b_ns)
            } else {
                p.ts_ns
            };
            let frame = Frame {
                ts_ns: ts,
                data: p.data.to_vec(),
                wire_len: p.wire_len,
                iface: 0,
                tag: Tag::NONE,
            };
            legs[b as usize]
                .as_mut()
                .expect("opened on the first packet")
                .write(&frame)?;
            if b {
                n.b += 1;
            } else {
                n.a += 1;
            }
        }
    }
    for w in legs.into_iter().flatten() {
        w.finish()?;
    }
    if link.is_none() {
        // An empty capture still gives two (empty) legs.
        for path in [&a.a, &a.b] {
            let f = File::create(path).with_context(|| path.clone())?;
            PcapWriter::new(BufWriter::new(f), PcapOpts::new(1, true))?.finish()?;
        }
    }
    Ok(n)
}
