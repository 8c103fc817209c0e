//! pcap and pcapng writers.
//!
//! pcap: the libpcap savefile format (draft-ietf-opsawg-pcap): a 24-byte file header with magic
//! 0xa1b2c3d4 (µs timestamps) or 0xa1b23c4d (ns timestamps), then 16-byte record headers.
//! pcapng: draft-ietf-opsawg-pcapng: Section Header Block, one Interface Description Block per
//! interface (with `if_tsresol` = 9 for ns), Enhanced Packet Blocks.
//!
//! Both are written little-endian unless [`Endian::Big`] is asked for (readers must handle
//! either; the big-endian option exists for fixtures).

use std::borrow::Borrow;
use std::io::{self, Write};

use super::Frame;

/// Byte order of the written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl Endian {
    fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    fn u64(self, v: u64) -> [u8; 8] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// pcap magic for microsecond timestamps.
pub const PCAP_MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// pcap magic for nanosecond timestamps.
pub const PCAP_MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Default snap length written in headers.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Options of a pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapOpts {
    pub linktype: u16,
    /// Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds.
    pub nsec: bool,
    /// Frames longer than this are cut (the record keeps the wire length).
    pub snaplen: u32,
    pub endian: Endian,
}

impl PcapOpts {
    pub fn new(linktype: u16, nsec: bool) -> PcapOpts {
        PcapOpts {
            linktype,
            nsec,
            snaplen: DEFAULT_SNAPLEN,
            endian: Endian::Little,
        }
    }
}

/// Streaming pcap writer.
pub struct PcapWriter<W: Write> {
    w: W,
    o: PcapOpts,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut w: W, o: PcapOpts) -> io::Result<PcapWriter<W>> {
        let e = o.endian;
        let magic = if o.nsec {
            PCAP_MAGIC_NSEC
        } else {
            PCAP_MAGIC_USEC
        };
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&e.u32(magic));
        h.extend_from_slice(&e.u16(2)); // version 2.4
        h.extend_from_slice(&e.u16(4));
        h.extend_from_slice(&e.u32(0)); // thiszone (reserved)
        h.extend_from_slice(&e.u32(0)); // sigfigs (reserved)
        h.extend_from_slice(&e.u32(o.snaplen));
        h.extend_from_slice(&e.u32(o.linktype as u32)); // FCS bits and LinkType
        w.write_all(&h)?;
        Ok(PcapWriter { w, o })
    }
    /// Writes one record (the frame's interface is ignored).
    pub fn write(&mut self, f: &Frame) -> io::Result<()> {
        let e = self.o.endian;
        let cap = f.data.len().min(self.o.snaplen as usize);
        let sec = f.ts_ns / 1_000_000_000;
        let sub = f.ts_ns % 1_000_000_000;
        let frac = if self.o.nsec { sub } else { sub / 1000 };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&e.u32(sec as u32));
        h[4..8].copy_from_slice(&e.u32(frac as u32));
        h[8..12].copy_from_slice(&e.u32(cap as u32));
        h[12..16].copy_from_slice(&e.u32(f.wire_len.max(cap as u32)));
        self.w.write_all(&h)?;
        self.w.write_all(&f.data[..cap])
    }
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Writes `frames` as a pcap file of link type `linktype` (µs or ns timestamps).
pub fn write_pcap<W, I, F>(w: W, frames: I, linktype: u16, nsec: bool) -> io::Result<W>
where
    W: Write,
    I: IntoIterator<Item = F>,
    F: Borrow<Frame>,
{
    write_pcap_opts(w, frames, PcapOpts::new(linktype, nsec))
}

/// [`write_pcap`] with all options.
pub fn write_pcap_opts<W, I, F>(w: W, frames: I, o: PcapOpts) -> io::Result<W>
where
    W: Write,
    I: IntoIterator<Item = F>,
    F: Borrow<Frame>,
{
    let mut pw = PcapWriter::new(w, o)?;
    for f in frames {
        pw.write(f.borrow())?;
    }
    pw.finish()
}

/// One pcapng interface (IDB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub linktype: u16,
    pub snaplen: u32,
    /// `if_name` option.
    pub name: Option<String>,
    /// ns timestamps (`if_tsresol` = 9); otherwise the default µs (option left out).
    pub nsec: bool,
}

impl Interface {
    pub fn new(linktype: u16, name: &str) -> Interface {
        Interface {
            linktype,
            snaplen: DEFAULT_SNAPLEN,
            name: Some(name.to_string()),
            nsec: true,
        }
    }
}

/// Streaming pcapng writer (one section).
pub struct PcapngWriter<W: Write> {
    w: W,
    e: Endian,
    ifaces: Vec<Interface>,
}

fn push_opt(b: &mut Vec<u8>, e: Endian, code: u16, val: &[u8]) {
    b.extend_from_slice(&e.u16(code));
    b.extend_from_slice(&e.u16(val.len() as u16));
    b.extend_from_slice(val);
    b.resize(b.len().div_ceil(4) * 4, 0);
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the SHB (with `shb_userappl`) and one IDB per interface.
    pub fn new(w: W, ifaces: &[Interface], e: Endian) -> io::Result<PcapngWriter<W>> {
        let mut pw = PcapngWriter {
            w,
            e,
            ifaces: ifaces.to_vec(),
        };
        // Section Header Block: byte-order magic, version 1.0, section length unknown (-1).
        let mut body = Vec::new();
        body.extend_from_slice(&e.u32(0x1a2b_3c4d));
        body.extend_from_slice(&e.u16(1));
        body.extend_from_slice(&e.u16(0));
        body.extend_from_slice(&e.u64(u64::MAX));
        push_opt(&mut body, e, 4, b"tapflow-bench gen"); // shb_userappl
        push_opt(&mut body, e, 0, &[]); // opt_endofopt
        pw.block(0x0a0d_0d0a, &body)?;
        for i in ifaces {
            let mut body = Vec::new();
            body.extend_from_slice(&e.u16(i.linktype));
            body.extend_from_slice(&e.u16(0));
            body.extend_from_slice(&e.u32(i.snaplen));
            if let Some(n) = &i.name {
                push_opt(&mut body, e, 2, n.as_bytes()); // if_name
            }
            if i.nsec {
                push_opt(&mut body, e, 9, &[9]); // if_tsresol: 10^-9
            }
            push_opt(&mut body, e, 0, &[]);
            pw.block(1, &body)?;
        }
        Ok(pw)
    }

    fn block(&mut self, ty: u32, body: &[u8]) -> io::Result<()> {
        let total = (12 + body.len()) as u32;
        let e = self.e;
        self.w.write_all(&e.u32(ty))?;
        self.w.write_all(&e.u32(total))?;
        self.w.write_all(body)?;
        self.w.write_all(&e.u32(total))
    }

    /// Writes one Enhanced Packet Block on the frame's interface.
    pub fn write(&mut self, f: &Frame) -> io::Result<()> {
        let e = self.e;
        let iface = self.ifaces.get(f.iface as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame on interface {} but only {} described",
                    f.iface,
                    self.ifaces.len()
                ),
            )
        })?;
        let cap = f.data.len().min(iface.snaplen as usize);
        let ts = if iface.nsec { f.ts_ns } else { f.ts_ns / 1000 };
        let mut body = Vec::with_capacity(20 + cap + 3);
        body.extend_from_slice(&e.u32(f.iface as u32));
        body.extend_from_slice(&e.u32((ts >> 32) as u32));
        body.extend_from_slice(&e.u32(ts as u32));
        body.extend_from_slice(&e.u32(cap as u32));
        body.extend_from_slice(&e.u32(f.wire_len.max(cap as u32)));
        body.extend_from_slice(&f.data[..cap]);
        body.resize(body.len().div_ceil(4) * 4, 0);
        self.block(6, &body)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Writes `frames` as a little-endian pcapng file with the given interfaces.
pub fn write_pcapng<W, I, F>(w: W, ifaces: &[Interface], frames: I) -> io::Result<W>
where
    W: Write,
    I: IntoIterator<Item = F>,
    F: Borrow<Frame>,
{
    write_pcapng_endian(w, ifaces, frames, Endian::Little)
}

/// [`write_pcapng`] in either byte order.
pub fn write_pcapng_endian<W, I, F>(
    w: W,
    ifaces: &[Interface],
    frames: I,
    e: Endian,
) -> io::Result<W>
where
    W: Write,
    I: IntoIterator<Item = F>,
    F: Borrow<Frame>,
{
    let mut pw = PcapngWriter::new(w, ifaces, e)?;
    for f in frames {
        pw.write(f.borrow())?;
    }
    pw.finish()
}
