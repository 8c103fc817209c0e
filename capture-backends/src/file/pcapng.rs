//! pcapng: a sequence of self-framed blocks (type, total length, body, total length again).
//! Sections start with a Section Header Block that fixes the byte order; Interface Description
//! Blocks give each packet's link type and timestamp resolution.

use super::{u16_at, u32_at, u64_at, Ctx, Step};
use crate::PacketDesc;

pub(crate) const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const MIN_SHB_LEN: usize = 28;
/// Largest block we accept; longer ones are treated as corrupt (libpcap uses 16 MiB).
const MAX_BLOCK_LEN: u32 = 64 << 20;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

pub(crate) fn is_magic(b: &[u8]) -> bool {
    b.starts_with(&SHB.to_be_bytes())
}

fn is_packet_block(t: u32) -> bool {
    matches!(t, EPB | SPB | OPB)
}

fn block_name(t: u32) -> String {
    match t {
        SHB => "section header block".into(),
        IDB => "interface description block".into(),
        OPB => "packet block".into(),
        SPB => "simple packet block".into(),
        EPB => "enhanced packet block".into(),
        _ => format!("block type {t:#x}"),
    }
}

/// Timestamp resolution from `if_tsresol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resol {
    /// Units of 10^-n s.
    Pow10(u8),
    /// Units of 2^-n s.
    Pow2(u8),
}

#[derive(Clone, Debug)]
struct Iface {
    link: u16,
    snaplen: u32,
    resol: Resol,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_s: i64,
}

impl Iface {
    /// Converts a 64-bit timestamp in interface units to ns since the epoch, in u128/i128
    /// arithmetic so no resolution or offset can overflow; clamps to the u64 range.
    fn ts_ns(&self, units: u64) -> u64 {
        let u = u128::from(units);
        let ns: u128 = match self.resol {
            Resol::Pow10(e) if e <= 9 => u * 10u128.pow(u32::from(9 - e)),
            Resol::Pow10(e) => {
                let d = u32::from(e - 9);
                if d > 38 {
                    0
                } else {
                    u / 10u128.pow(d)
                }
            }
            Resol::Pow2(e) => {
                if e >= 127 {
                    0
                } else {
                    (u * 1_000_000_000) >> e
                }
            }
        };
        // ns < 2^64 * 1e9 < 2^94, so it fits an i128 with room for the offset.
        let total = ns as i128 + i128::from(self.offset_s) * 1_000_000_000;
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }
}

/// What a section header says, or why it cannot be used.
enum ShbHead {
    Ok { big: bool, len: usize },
    Need(usize),
    Bad(String),
}

/// Checks the framing of a section header block at the start of `d` (stream offset `off`).
fn shb_head(d: &[u8], off: u64) -> ShbHead {
    if d.len() < 12 {
        return ShbHead::Need(12);
    }
    let big = if u32_at(d, 8, true) == BYTE_ORDER_MAGIC {
        true
    } else if u32_at(d, 8, false) == BYTE_ORDER_MAGIC {
        false
    } else {
        return ShbHead::Bad(format!(
            "section header block at offset {off} has a bad byte-order magic {:02x?}",
            d.get(8..12).unwrap_or(&[])
        ));
    };
    let len = u32_at(d, 4, big);
    if len & 3 != 0 || !(MIN_SHB_LEN as u32..=MAX_BLOCK_LEN).contains(&len) {
        return ShbHead::Bad(format!(
            "section header block at offset {off} has invalid total length {len}"
        ));
    }
    let len = len as usize;
    if d.len() < len {
        return ShbHead::Need(len);
    }
    let trailer = u32_at(d, len - 4, big);
    if trailer as usize != len {
        return ShbHead::Bad(format!(
            "section header block at offset {off}: trailing length {trailer} does not match \
             leading length {len}"
        ));
    }
    let major = u16_at(d, 12, big);
    let minor = u16_at(d, 14, big);
    if major != 1 {
        return ShbHead::Bad(format!(
            "unsupported pcapng version {major}.{minor} in section header at offset {off}"
        ));
    }
    ShbHead::Ok { big, len }
}

/// Result of reading the first section header when opening a file.
pub(crate) enum First {
    Ok(Pcapng, usize),
    Need(usize),
    Bad(String),
}

/// State of a pcapng reader: the current section's byte order and interfaces.
#[derive(Debug)]
pub(crate) struct Pcapng {
    big: bool,
    ifaces: Vec<Iface>,
    /// Timestamp of the previous packet, for Simple Packet Blocks (which carry none).
    last_ts: u64,
    warned_wire: bool,
}

impl Pcapng {
    /// Reads the section header that must start the file.
    pub(crate) fn first(d: &[u8]) -> First {
        match shb_head(d, 0) {
            ShbHead::Ok { big, len } => First::Ok(
                Pcapng {
                    big,
                    ifaces: Vec::new(),
                    last_ts: 0,
                    warned_wire: false,
                },
                len,
            ),
            ShbHead::Need(n) => First::Need(n),
            ShbHead::Bad(m) => First::Bad(m),
        }
    }

    /// Parses the block at the start of `d` (stream offset `off`). `eof` says no bytes will
    /// follow `d`. Framing damage ends the file (nothing reliable follows it); a packet block
    /// that is framed correctly but unusable is skipped.
    pub(crate) fn step(&mut self, d: &[u8], eof: bool, off: u64, cx: &mut Ctx) -> Step {
        if d.len() < 12 {
            if !eof {
                return Step::Need(12);
            }
            if !d.is_empty() {
                let msg = format!(
                    "{} trailing bytes at offset {off} are too short for a block; stopping",
                    d.len()
                );
                if d.len() >= 4 && is_packet_block(u32_at(d, 0, self.big)) {
                    cx.bad(off, msg);
                } else {
                    cx.warn(off, msg);
                }
            }
            return Step::End;
        }
        let btype = u32_at(d, 0, self.big);
        if btype == SHB {
            return self.section(d, eof, off, cx);
        }
        let big = self.big;
        let blen = u32_at(d, 4, big);
        if blen & 3 != 0 || !(12..=MAX_BLOCK_LEN).contains(&blen) {
            cx.bad(
                off,
                format!(
                    "{} at offset {off} has invalid total length {blen}; stopping",
                    block_name(btype)
                ),
            );
            return Step::End;
        }
        let blen = blen as usize;
        if d.len() < blen {
            if !eof {
                return Step::Need(blen);
            }
            let msg = format!(
                "{} at offset {off} claims length {blen} but only {} bytes remain; stopping",
                block_name(btype),
                d.len()
            );
            if is_packet_block(btype) {
                cx.bad(off, msg);
            } else {
                cx.warn(off, msg);
            }
            return Step::End;
        }
        let trailer = u32_at(d, blen - 4, big);
        if trailer as usize != blen {
            cx.bad(
                off,
                format!(
                    "{} at offset {off}: trailing length {trailer} does not match leading \
                     length {blen}; stopping",
                    block_name(btype)
                ),
            );
            return Step::End;
        }
        let body = d.get(8..blen - 4).unwrap_or(&[]);
        match btype {
            IDB => self.interface(body, blen, off, cx),
            EPB | OPB => self.packet(btype, body, blen, off, cx),
            SPB => self.simple_packet(body, blen, off, cx),
            // NRB, ISB, DSB, custom and unknown blocks carry nothing we need.
            _ => Step::Skip(blen),
        }
    }

    /// A later section header: new byte order, new interfaces.
    fn section(&mut self, d: &[u8], eof: bool, off: u64, cx: &mut Ctx) -> Step {
        match shb_head(d, off) {
            ShbHead::Ok { big, len } => {
                self.big = big;
                self.ifaces.clear();
                Step::Skip(len)
            }
            ShbHead::Need(n) if !eof && d.len() < n => Step::Need(n),
            ShbHead::Need(n) => {
                cx.warn(
                    off,
                    format!(
                        "section header block at offset {off} claims length {n} but only {} \
                         bytes remain; stopping",
                        d.len()
                    ),
                );
                Step::End
            }
            ShbHead::Bad(m) => {
                cx.warn(off, format!("{m}; stopping"));
                Step::End
            }
        }
    }

    fn interface(&mut self, body: &[u8], blen: usize, off: u64, cx: &mut Ctx) -> Step {
        if body.len() < 8 {
            cx.warn(
                off,
                format!(
                    "interface description block at offset {off} is too short ({blen} bytes); \
                     stopping"
                ),
            );
            return Step::End;
        }
        let big = self.big;
        let mut iface = Iface {
            link: u16_at(body, 0, big),
            snaplen: u32_at(body, 4, big),
            resol: Resol::Pow10(6),
            offset_s: 0,
        };
        // Options: code, length, value padded to 4 bytes. A malformed list just ends it.
        let mut opts = body.get(8..).unwrap_or(&[]);
        while opts.len() >= 4 {
            let code = u16_at(opts, 0, big);
            let len = usize::from(u16_at(opts, 2, big));
            if code == OPT_END {
                break;
            }
            let Some(val) = opts.get(4..4 + len) else {
                break;
            };
            match (code, val) {
                (OPT_IF_TSRESOL, [v, ..]) => {
                    iface.resol = if v & 0x80 == 0 {
                        Resol::Pow10(*v)
                    } else {
                        Resol::Pow2(v & 0x7f)
                    };
                }
                (OPT_IF_TSOFFSET, v) if v.len() == 8 => {
                    iface.offset_s = u64_at(v, 0, big) as i64;
                }
                _ => {}
            }
            opts = opts.get(4 + len.next_multiple_of(4)..).unwrap_or(&[]);
        }
        self.ifaces.push(iface);
        Step::Skip(blen)
    }

    /// Enhanced (type 6) and obsolete (type 2) packet blocks share a layout apart from the
    /// interface id width.
    fn packet(&mut self, btype: u32, body: &[u8], blen: usize, off: u64, cx: &mut Ctx) -> Step {
        let big = self.big;
        let name = block_name(btype);
        if body.len() < 20 {
            cx.bad(
                off,
                format!("{name} at offset {off} is too short ({blen} bytes); skipping it"),
            );
            return Step::Skip(blen);
        }
        let id = if btype == EPB {
            u32_at(body, 0, big)
        } else {
            u32::from(u16_at(body, 0, big))
        };
        let caplen = u32_at(body, 12, big);
        let wire_len = u32_at(body, 16, big);
        if caplen as usize > body.len() - 20 {
            cx.bad(
                off,
                format!(
                    "{name} at offset {off} claims caplen {caplen} but the block holds only {} \
                     bytes; skipping it",
                    body.len() - 20
                ),
            );
            return Step::Skip(blen);
        }
        let Some(iface) = self.ifaces.get(id as usize) else {
            cx.bad(
                off,
                format!(
                    "{name} at offset {off} refers to interface {id} but the section has {} \
                     interface(s); skipping it",
                    self.ifaces.len()
                ),
            );
            return Step::Skip(blen);
        };
        let units = (u64::from(u32_at(body, 4, big)) << 32) | u64::from(u32_at(body, 8, big));
        let ts_ns = iface.ts_ns(units);
        let link = iface.link;
        self.last_ts = ts_ns;
        let wire_len = self.fix_wire(caplen, wire_len, off, cx);
        Step::Packet {
            consumed: blen,
            desc: PacketDesc {
                offset: 8 + 20,
                caplen,
                wire_len,
                ts_ns,
                link,
                iface: u16::try_from(id).unwrap_or(u16::MAX),
            },
        }
    }

    /// Simple packet block: interface 0, no timestamp (we reuse the previous packet's), and a
    /// captured length implied by the original length, the snaplen and the block size.
    fn simple_packet(&mut self, body: &[u8], blen: usize, off: u64, cx: &mut Ctx) -> Step {
        if body.len() < 4 {
            cx.bad(
                off,
                format!("simple packet block at offset {off} is too short; skipping it"),
            );
            return Step::Skip(blen);
        }
        let Some(iface) = self.ifaces.first() else {
            cx.bad(
                off,
                format!(
                    "simple packet block at offset {off} but the section has no interface; \
                     skipping it"
                ),
            );
            return Step::Skip(blen);
        };
        let wire_len = u32_at(body, 0, self.big);
        let room = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
        let mut caplen = wire_len.min(room);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        Step::Packet {
            consumed: blen,
            desc: PacketDesc {
                offset: 8 + 4,
                caplen,
                wire_len,
                ts_ns: self.last_ts,
                link: iface.link,
                iface: 0,
            },
        }
    }

    fn fix_wire(&mut self, caplen: u32, wire_len: u32, off: u64, cx: &mut Ctx) -> u32 {
        if caplen <= wire_len {
            return wire_len;
        }
        if !self.warned_wire {
            self.warned_wire = true;
            cx.warn(
                off,
                format!(
                    "packet at offset {off} has caplen {caplen} > wire length {wire_len}; using \
                     caplen as wire length (warning once)"
                ),
            );
        }
        caplen
    }
}
