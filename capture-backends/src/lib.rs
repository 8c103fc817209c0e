//! Capture backends behind one batch-oriented, zero-copy trait.
//!
//! A backend fills a [`Batch`] of packet descriptors that point into memory it owns (a file
//! mapping, a decompression window, later an AF_PACKET block, AF_XDP UMEM or a DAG stream). The
//! batch borrows the backend mutably, so no packet view can outlive the next `next_batch` call:
//! that is the moment a live backend hands its frames back to the kernel.

#![deny(unsafe_code)]

pub mod afpacket;
#[cfg(feature = "dag")]
pub mod dag;
pub mod erf;
pub mod file;
pub mod live;
pub mod netns;
pub mod xdp;

pub use live::{LiveCapture, LiveStats};

use std::fmt;

/// Link-layer header type (LINKTYPE_* numbers from the pcap/pcapng registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    /// LINKTYPE_RAW (also DLT_RAW 12 and 14 on some systems).
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL",
            1 => "ETHERNET",
            9 => "PPP",
            12 | 14 | 101 => "RAW",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            127 => "IEEE802_11_RADIOTAP",
            197 => "ERF",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            247 => "INFINIBAND",
            276 => "LINUX_SLL2",
            104 => "C_HDLC",
            0xEF19 => "INFINIBAND_LINK (ERF type 25)",
            0xEF00..=0xEF7F => "ERF record type not decoded",
            _ => "unknown",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0xEF00..=0xEF7F if self.0 != 0xEF19 => write!(f, "ERF type {}", self.0 & 0x7f),
            _ => write!(f, "{} ({})", self.name(), self.0),
        }
    }
}

/// One packet in a batch: where its bytes are in the batch's backing memory and what the capture
/// said about it. `Copy` and small, so batches are plain slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketDesc {
    /// Byte offset of the captured bytes in the batch's backing memory.
    pub offset: usize,
    /// Captured length (bytes present).
    pub caplen: u32,
    /// Length on the wire (>= caplen when the snap length cut the packet).
    pub wire_len: u32,
    /// Timestamp, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Link type of this packet (pcapng interfaces may differ).
    pub link: u16,
    /// Interface (pcapng IDB index) or NIC queue id.
    pub iface: u16,
}

/// A packet view borrowed from a batch.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub data: &'a [u8],
    pub wire_len: u32,
    pub ts_ns: u64,
    pub link: LinkType,
    pub iface: u16,
}

/// A batch of packets over one backing region.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub data: &'a [u8],
    pub descs: &'a [PacketDesc],
}

impl<'a> Batch<'a> {
    pub fn len(&self) -> usize {
        self.descs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }
    /// The packet at `i`. Descriptors are produced by the backend and always lie inside `data`.
    #[inline]
    pub fn get(&self, i: usize) -> Packet<'a> {
        let d = &self.descs[i];
        let end = d.offset + d.caplen as usize;
        Packet {
            data: &self.data[d.offset..end],
            wire_len: d.wire_len,
            ts_ns: d.ts_ns,
            link: LinkType(d.link),
            iface: d.iface,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = Packet<'a>> + '_ {
        (0..self.descs.len()).map(move |i| self.get(i))
    }
}

/// Counters a backend keeps about what it read (or what the kernel/NIC says it dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets delivered in batches.
    pub packets: u64,
    /// Sum of wire lengths of delivered packets.
    pub wire_bytes: u64,
    /// Packets whose caplen < wire_len (snap length).
    pub snaplen_truncated: u64,
    /// Packet records that could not be delivered (a cut-short last record, a corrupt block):
    /// each one also produced a warning.
    pub bad_records: u64,
    /// Packets the kernel or NIC reports as dropped (live backends).
    pub drops: u64,
}

/// A non-fatal problem with the input: it is reported and reading goes on (or ends cleanly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureWarning {
    /// Source name (file path).
    pub source: String,
    /// Byte offset in the (decompressed) capture stream where the problem starts.
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for CaptureWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: offset {}: {}",
            self.source, self.offset, self.message
        )
    }
}

/// A fatal capture error: the source cannot be read at all (or any further).
#[derive(Debug)]
pub enum CaptureError {
    Io {
        source: String,
        err: std::io::Error,
    },
    /// Not a capture format we know (bad magic), or a header we refuse.
    Format {
        source: String,
        offset: u64,
        message: String,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { source, err } => write!(f, "{source}: {err}"),
            CaptureError::Format {
                source,
                offset,
                message,
            } => write!(f, "{source}: offset {offset}: {message}"),
        }
    }
}

impl std::error::Error for CaptureError {}

/// A capture source. `next_batch` returns `Ok(None)` at the end of a file.
pub trait Capture {
    /// The next batch of packets; the borrow ends before the next call.
    fn next_batch(&mut self) -> Result<Option<Batch<'_>>, CaptureError>;
    /// Counters so far.
    fn stats(&self) -> CaptureStats;
    /// Takes the warnings produced since the last call.
    fn take_warnings(&mut self) -> Vec<CaptureWarning>;
    /// Name of the source, for messages.
    fn source_name(&self) -> &str;
    /// Bytes of input consumed so far and the total, if known (for progress display).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }
}
