//! The few kernel interfaces aya does not expose publicly: rtnetlink (which XDP program an
//! interface has, its queue count, removing a legacy attachment) and ethtool (driver name,
//! channel count). All of it runs at setup time, never on the packet path.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// rtnetlink numbers (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h): stable UAPI.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub(super) const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// One XDP program attached to an interface, as rtnetlink reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attached {
    pub prog_id: u32,
    /// `XDP_FLAGS_{DRV,SKB,HW}_MODE` of the attachment.
    pub mode_flags: u32,
}

impl Attached {
    pub fn mode_name(&self) -> &'static str {
        match self.mode_flags {
            XDP_FLAGS_SKB_MODE => "generic",
            XDP_FLAGS_HW_MODE => "offload",
            _ => "native",
        }
    }
}

/// What rtnetlink says about an interface.
#[derive(Debug, Default)]
pub(super) struct LinkInfo {
    pub num_rx_queues: Option<u32>,
    /// Attached XDP programs (several only in the rare driver+offload "multi" case).
    pub xdp: Vec<Attached>,
}

/// An rtnetlink socket. It belongs to the network namespace of the thread that opened it, so
/// keeping one lets a later call (a drop on another thread) reach the right interface.
pub(super) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub(super) fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 1 })
    }

    /// Sends one request (attributes already appended after the ifinfomsg) and returns the
    /// payload of the matching reply: the RTM_NEWLINK message, or `None` for a zero ack.
    fn request(&mut self, mut msg: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        // SAFETY: a zeroed sockaddr_nl addresses the kernel; `msg` is valid for its length.
        let r = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= NLMSG_HDRLEN {
                let mlen = u32_at(rest, 0) as usize;
                let mtype = u16_at(rest, 4);
                let mseq = u32_at(rest, 8);
                if mlen < NLMSG_HDRLEN || mlen > rest.len() {
                    return Err(io::Error::other("malformed rtnetlink reply"));
                }
                let body = &rest[NLMSG_HDRLEN..mlen];
                if mseq == seq {
                    match mtype {
                        NLMSG_ERROR => {
                            let err = if body.len() >= 4 { i32_at(body, 0) } else { 0 };
                            if err == 0 {
                                return Ok(None);
                            }
                            return Err(io::Error::from_raw_os_error(-err));
                        }
                        RTM_NEWLINK => return Ok(Some(body.to_vec())),
                        NLMSG_DONE => return Ok(None),
                        _ => {}
                    }
                }
                rest = &rest[align4(mlen).min(rest.len())..];
            }
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}

/// nlmsghdr (length and seq filled in by `request`) + ifinfomsg for `ifindex`.
fn link_msg(kind: u16, flags: u16, ifindex: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
    m.push(libc::AF_UNSPEC as u8); // ifi_family
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change
    m
}

fn put_attr(m: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    m.extend_from_slice(&(len as u16).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(align4(m.len()), 0);
}

/// Iterates `(type, payload)` over a run of netlink attributes, stopping at the first bad one.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16_at(b, 0) as usize;
        let kind = u16_at(b, 2) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, payload))
    })
}

/// Queue count and XDP attachments of `ifindex` (in `nl`'s netns).
pub(super) fn link_info(nl: &mut Netlink, ifindex: u32) -> io::Result<LinkInfo> {
    let mut m = link_msg(RTM_GETLINK, 0, ifindex);
    put_attr(
        &mut m,
        IFLA_EXT_MASK,
        &RTEXT_FILTER_SKIP_STATS.to_ne_bytes(),
    );
    let body = nl
        .request(m)?
        .ok_or_else(|| io::Error::other("rtnetlink sent no link message"))?;
    const IFINFOMSG_LEN: usize = 16;
    if body.len() < IFINFOMSG_LEN {
        return Err(io::Error::other("short rtnetlink link message"));
    }
    let mut info = LinkInfo::default();
    let mut attached_mode = 0u8;
    let (mut any, mut drv, mut skb, mut hw) = (0u32, 0u32, 0u32, 0u32);
    for (kind, p) in attrs(&body[IFINFOMSG_LEN..]) {
        match kind {
            IFLA_NUM_RX_QUEUES if p.len() >= 4 => info.num_rx_queues = Some(u32_at(p, 0)),
            IFLA_XDP => {
                for (k, v) in attrs(p) {
                    match k {
                        IFLA_XDP_ATTACHED if !v.is_empty() => attached_mode = v[0],
                        IFLA_XDP_PROG_ID if v.len() >= 4 => any = u32_at(v, 0),
                        IFLA_XDP_DRV_PROG_ID if v.len() >= 4 => drv = u32_at(v, 0),
                        IFLA_XDP_SKB_PROG_ID if v.len() >= 4 => skb = u32_at(v, 0),
                        IFLA_XDP_HW_PROG_ID if v.len() >= 4 => hw = u32_at(v, 0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // With one program the kernel reports only IFLA_XDP_PROG_ID and the mode in ATTACHED;
    // in "multi" mode it reports one id per mode.
    let single_mode = match attached_mode {
        XDP_ATTACHED_DRV => Some(XDP_FLAGS_DRV_MODE),
        XDP_ATTACHED_SKB => Some(XDP_FLAGS_SKB_MODE),
        XDP_ATTACHED_HW => Some(XDP_FLAGS_HW_MODE),
        _ => None,
    };
    match single_mode {
        Some(mode_flags) if any != 0 => info.xdp.push(Attached {
            prog_id: any,
            mode_flags,
        }),
        _ => {
            for (prog_id, mode_flags) in [
                (drv, XDP_FLAGS_DRV_MODE),
                (skb, XDP_FLAGS_SKB_MODE),
                (hw, XDP_FLAGS_HW_MODE),
            ] {
                if prog_id != 0 {
                    info.xdp.push(Attached {
                        prog_id,
                        mode_flags,
                    });
                }
            }
        }
    }
    Ok(info)
}

/// Removes the XDP program attached through netlink in `mode_flags` mode, only if it is still
/// `expected` (XDP_FLAGS_REPLACE). A program held by a bpf_link cannot be removed this way:
/// the kernel answers EBUSY.
pub(super) fn detach_legacy(
    nl: &mut Netlink,
    ifindex: u32,
    mode_flags: u32,
    expected: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut m = link_msg(RTM_SETLINK, NLM_F_ACK, ifindex);
    let mut xdp = Vec::with_capacity(32);
    put_attr(&mut xdp, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    put_attr(
        &mut xdp,
        IFLA_XDP_FLAGS,
        &(mode_flags | XDP_FLAGS_REPLACE).to_ne_bytes(),
    );
    put_attr(
        &mut xdp,
        IFLA_XDP_EXPECTED_FD,
        &expected.as_raw_fd().to_ne_bytes(),
    );
    put_attr(&mut m, IFLA_XDP | NLA_F_NESTED, &xdp);
    nl.request(m).map(|_| ())
}

// ethtool ioctl (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// SIOCETHTOOL on `iface` with `data` (a struct starting with its u32 command).
fn ethtool<T>(iface: &str, data: &mut T) -> io::Result<()> {
    let name = iface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: a datagram socket used only for the ioctl and closed by OwnedFd; `ifr` is a zeroed
    // ifreq with a NUL-terminated name and `ifru_data` pointing at `data`, which outlives the
    // call and has the layout the command expects.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, &s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (data as *mut T).cast();
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The driver behind `iface` ("veth", "mlx5_core", ...), if ethtool knows it.
pub(super) fn driver_name(iface: &str) -> Option<String> {
    let mut d = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    ethtool(iface, &mut d).ok()?;
    let end = d
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(d.driver.len());
    let s = String::from_utf8_lossy(&d.driver[..end]).into_owned();
    (!s.is_empty()).then_some(s)
}

/// Active RX queues (RX-only + combined channels), if the driver reports channels.
pub(super) fn rx_channels(iface: &str) -> Option<u32> {
    let mut c = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ethtool(iface, &mut c).ok()?;
    let n = c.rx_count.saturating_add(c.combined_count);
    (n > 0).then_some(n)
}

/// Identity (device, inode) of the calling thread's network namespace.
pub(super) fn current_netns() -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}
