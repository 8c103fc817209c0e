//! Link-layer rewriting: the same IP packets under the other link types a capture can have
//! (tcpdump.org LINKTYPE_* registry): Linux "cooked" SLL and SLL2, raw IP, IPV4/IPV6, and BSD
//! loopback NULL/LOOP.

use super::linktype;
use super::pkt::{ethertype, Mac};
use super::Frame;

/// Address families as NULL/LOOP headers carry them.
pub mod af {
    pub const INET: u32 = 2;
    /// AF_INET6 on NetBSD/OpenBSD (also what LINKTYPE_LOOP uses on OpenBSD).
    pub const INET6_BSD: u32 = 24;
    /// AF_INET6 on FreeBSD/DragonFly.
    pub const INET6_FREEBSD: u32 = 28;
    /// AF_INET6 on Darwin (macOS).
    pub const INET6_DARWIN: u32 = 30;
}

/// Options for [`relink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelinkOpts {
    /// MAC of the capturing host: SLL/SLL2 mark frames it sent as outgoing (4), others as
    /// unicast to us (0).
    pub local_mac: Mac,
    /// LINKTYPE_NULL: write the AF value big-endian (the capturing host's byte order).
    pub null_big_endian: bool,
    /// AF value used for IPv6 by NULL/LOOP.
    pub af_inet6: u32,
    /// SLL2 interface index.
    pub ifindex: u32,
}

impl Default for RelinkOpts {
    fn default() -> Self {
        RelinkOpts {
            local_mac: [0; 6],
            null_big_endian: false,
            af_inet6: af::INET6_DARWIN,
            ifindex: 2,
        }
    }
}

/// Size of the link header [`relink`] writes for `lt` (what a probe leaves out of byte counts
/// for pseudo-headers).
pub fn header_len(lt: u16) -> usize {
    match lt {
        linktype::ETHERNET => 14,
        linktype::LINUX_SLL => 16,
        linktype::LINUX_SLL2 => 20,
        linktype::NULL | linktype::LOOP => 4,
        _ => 0,
    }
}

/// Rewrites an untagged Ethernet II frame carrying IPv4/IPv6 (Ethernet padding removed) under
/// link type `lt`. Returns `None` for frames that are not plain IP over Ethernet, or IP of the
/// wrong version for LINKTYPE_IPV4/IPV6.
pub fn relink(eth: &[u8], lt: u16, o: &RelinkOpts) -> Option<Vec<u8>> {
    if eth.len() < 14 + 20 {
        return None;
    }
    let src: Mac = eth[6..12].try_into().unwrap();
    let et = u16::from_be_bytes([eth[12], eth[13]]);
    let ip = &eth[14..];
    let (v6, ip_len) = match et {
        ethertype::IPV4 if ip[0] >> 4 == 4 => (false, u16::from_be_bytes([ip[2], ip[3]]) as usize),
        ethertype::IPV6 if ip[0] >> 4 == 6 => {
            (true, 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize)
        }
        _ => return None,
    };
    let ip = &ip[..ip_len.min(ip.len())];
    let outgoing = src == o.local_mac;
    let af = if v6 { o.af_inet6 } else { af::INET };
    let mut out = Vec::with_capacity(20 + ip.len());
    match lt {
        linktype::ETHERNET => out.extend_from_slice(&eth[..14]),
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
        linktype::LINUX_SLL => {
            out.extend_from_slice(&(if outgoing { 4u16 } else { 0 }).to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.extend_from_slice(&6u16.to_be_bytes());
            out.extend_from_slice(&src);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&et.to_be_bytes());
        }
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
        linktype::LINUX_SLL2 => {
            out.extend_from_slice(&et.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&o.ifindex.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.push(if outgoing { 4 } else { 0 });
            out.push(6);
            out.extend_from_slice(&src);
            out.extend_from_slice(&[0, 0]);
        }
        // https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html: AF in the host's byte order.
        linktype::NULL => {
            if o.null_big_endian {
                out.extend_from_slice(&af.to_be_bytes());
            } else {
                out.extend_from_slice(&af.to_le_bytes());
            }
        }
        // LINKTYPE_LOOP: AF always in network byte order.
        linktype::LOOP => out.extend_from_slice(&af.to_be_bytes()),
        linktype::RAW => {}
        linktype::IPV4 if !v6 => {}
        linktype::IPV6 if v6 => {}
        _ => return None,
    }
    out.extend_from_slice(ip);
    Some(out)
}

/// [`relink`] for a whole frame (timestamp and truth tag kept, wire length = new length).
pub fn relink_frame(f: &Frame, lt: u16, o: &RelinkOpts) -> Option<Frame> {
    let data = relink(&f.data, lt, o)?;
    Some(Frame {
        ts_ns: f.ts_ns,
        wire_len: data.len() as u32,
        data,
        iface: f.iface,
        tag: f.tag,
    })
}
