//! Classic pcap: a 24-byte file header, then 16-byte record headers each followed by `caplen`
//! bytes. There is no framing to resync on, so a damaged record ends the file.

use super::{u16_at, u32_at, Ctx, Step};
use crate::PacketDesc;

pub(crate) const HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// libpcap's largest snapshot length for nearly every link type: a record claiming more than
/// this (or more than the header's snaplen, whichever is larger) is garbage, not a packet.
const MAX_SANE_CAPLEN: u32 = 262_144;
/// Cap on what a (possibly bogus) snaplen may raise the limit to.
const MAX_SNAPLEN_LIMIT: u32 = 64 << 20;

/// State of a pcap reader after its file header.
#[derive(Debug)]
pub(crate) struct Pcap {
    big: bool,
    nanos: bool,
    link: u16,
    max_caplen: u32,
    /// Records consumed so far (the next one is number `records + 1`).
    records: u64,
    warned_wire: bool,
}

/// Magic numbers as they appear in the first four bytes: (bytes, big endian, nanoseconds).
const MAGICS: [([u8; 4], bool, bool); 4] = [
    ([0xd4, 0xc3, 0xb2, 0xa1], false, false),
    ([0xa1, 0xb2, 0xc3, 0xd4], true, false),
    ([0x4d, 0x3c, 0xb2, 0xa1], false, true),
    ([0xa1, 0xb2, 0x3c, 0x4d], true, true),
];

pub(crate) fn is_magic(b: &[u8]) -> bool {
    MAGICS.iter().any(|(m, _, _)| b.starts_with(m))
}

impl Pcap {
    /// Parses the file header; `Err` is a message for a `CaptureError::Format` at offset 0.
    pub(crate) fn parse_header(d: &[u8]) -> Result<Pcap, String> {
        let Some(&(_, big, nanos)) = MAGICS.iter().find(|(m, _, _)| d.starts_with(m)) else {
            return Err("not a pcap file header".into());
        };
        if d.len() < HEADER_LEN {
            return Err(format!(
                "truncated pcap file header: {} of {HEADER_LEN} bytes",
                d.len()
            ));
        }
        let major = u16_at(d, 4, big);
        let minor = u16_at(d, 6, big);
        if major != 2 {
            return Err(format!("unsupported pcap version {major}.{minor}"));
        }
        let snaplen = u32_at(d, 16, big);
        // The upper bits of the link type field carry FCS information we do not use.
        let link = (u32_at(d, 20, big) & 0xffff) as u16;
        let max_caplen = snaplen.clamp(MAX_SANE_CAPLEN, MAX_SNAPLEN_LIMIT);
        Ok(Pcap {
            big,
            nanos,
            link,
            max_caplen,
            records: 0,
            warned_wire: false,
        })
    }

    /// Parses the record at the start of `d` (stream offset `off`). `eof` says no bytes will
    /// follow `d`.
    pub(crate) fn step(&mut self, d: &[u8], eof: bool, off: u64, cx: &mut Ctx) -> Step {
        let n = self.records + 1;
        if d.len() < RECORD_HEADER_LEN {
            if !eof {
                return Step::Need(RECORD_HEADER_LEN);
            }
            if !d.is_empty() {
                cx.bad(
                    off,
                    format!(
                        "packet record {n} at offset {off}: only {} of {RECORD_HEADER_LEN} \
                         record header bytes remain; stopping",
                        d.len()
                    ),
                );
            }
            return Step::End;
        }
        let big = self.big;
        let caplen = u32_at(d, 8, big);
        let mut wire_len = u32_at(d, 12, big);
        if caplen > self.max_caplen {
            cx.bad(
                off,
                format!(
                    "packet record {n} at offset {off} claims caplen {caplen}, above the limit \
                     {}: corrupt record header; stopping",
                    self.max_caplen
                ),
            );
            return Step::End;
        }
        let total = RECORD_HEADER_LEN + caplen as usize;
        if d.len() < total {
            if !eof {
                return Step::Need(total);
            }
            cx.bad(
                off,
                format!(
                    "packet record {n} at offset {off} claims caplen {caplen} but only {} bytes \
                     remain; stopping",
                    d.len() - RECORD_HEADER_LEN
                ),
            );
            return Step::End;
        }
        if caplen > wire_len {
            if !self.warned_wire {
                self.warned_wire = true;
                cx.warn(
                    off,
                    format!(
                        "packet record {n} at offset {off} has caplen {caplen} > wire length \
                         {wire_len}; using caplen as wire length (warning once)"
                    ),
                );
            }
            wire_len = caplen;
        }
        let secs = u64::from(u32_at(d, 0, big));
        let frac = u64::from(u32_at(d, 4, big));
        // u32 seconds * 1e9 + u32 * 1000 stays far below u64::MAX.
        let ts_ns = secs * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        self.records += 1;
        Step::Packet {
            consumed: total,
            desc: PacketDesc {
                offset: RECORD_HEADER_LEN,
                caplen,
                wire_len,
                ts_ns,
                link: self.link,
                iface: 0,
            },
        }
    }
}
