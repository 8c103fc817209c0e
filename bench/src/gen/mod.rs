//! tapflow's own deterministic synthetic capture generator.
//!
//! Every packet is built byte by byte from its specification ([`pkt`]), conversations
//! ([`conv`]) turn those into realistic exchanges while recording what a flow probe should
//! report about them ([`truth`]), scenarios ([`scenario`]) put conversations together, and
//! [`write`] stores the result as pcap or pcapng. The same seed always gives the same bytes.
//!
//! The project's demo capture and test fixtures are made with this module (see
//! [`fixtures::write_all`] and `tapflow-bench gen`), never copied from elsewhere.

pub mod cli;
pub mod conv;
pub mod fixtures;
pub mod ib;
pub mod link;
pub mod pkt;
pub mod rng;
pub mod scenario;
pub mod truth;
pub mod write;

pub use conv::{Capture, Encap, Endpoint, Path, TcpConv};
pub use rng::Rng;
pub use scenario::{demo, demo_two_ifaces, mix, worst, Worst};
pub use truth::{End, FlowTruth, Truth};
pub use write::{write_pcap, write_pcapng, Interface, PcapWriter, PcapngWriter};

/// One captured frame as the generator makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Capture timestamp, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The bytes captured, from the link-layer header on (no FCS).
    pub data: Vec<u8>,
    /// Length on the wire (the pcap "original length"); `>= data.len()`.
    pub wire_len: u32,
    /// Interface (pcapng IDB index; always 0 in pcap files).
    pub iface: u16,
    /// Which ground-truth flow the frame belongs to, and what it carries.
    pub tag: Tag,
}

/// Ground-truth bookkeeping attached to each generated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Index into [`Truth::flows`], or [`Tag::NO_FLOW`].
    pub flow: u32,
    /// True when sent by the responder (dst → src).
    pub reverse: bool,
    /// Length of the innermost IP packet (header included), 0 for non-IP frames.
    pub ip_len: u32,
    /// Transport payload bytes in this frame (after the TCP/UDP/ICMP header).
    pub app_len: u32,
    /// The innermost IP packet is a fragment.
    pub frag: bool,
}

impl Tag {
    pub const NO_FLOW: u32 = u32::MAX;
    pub const NONE: Tag = Tag {
        flow: Tag::NO_FLOW,
        reverse: false,
        ip_len: 0,
        app_len: 0,
        frag: false,
    };
}

impl Frame {
    /// A frame captured whole (`wire_len == data.len()`), on interface 0, with no truth tag.
    pub fn new(ts_ns: u64, data: Vec<u8>) -> Frame {
        let wire_len = data.len() as u32;
        Frame {
            ts_ns,
            data,
            wire_len,
            iface: 0,
            tag: Tag::NONE,
        }
    }
}

/// Link-layer header type numbers (tcpdump.org LINKTYPE_* registry).
pub mod linktype {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const LINUX_SLL2: u16 = 276;
}

/// 2024-03-01T12:00:00Z, the start time of generated captures, in ns since the epoch.
pub const EPOCH_NS: u64 = 1_709_294_400 * 1_000_000_000;
