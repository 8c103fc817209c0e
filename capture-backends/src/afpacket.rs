//! AF_PACKET TPACKET_V3 backend: a memory-mapped ring of blocks the kernel fills with packets
//! and hands over a block at a time, optionally one socket of a fanout group.
//!
//! Batches point straight into the ring. A block the batch came from goes back to the kernel at
//! the next [`Capture::next_batch`] call (the batch's borrow has ended by then), so the RX path
//! makes no syscall, allocation or lock: it reads block headers, writes block statuses and, for
//! VLAN-tagged frames, moves 12 bytes inside the ring.
//!
//! * **Snap length.** TPACKET_V3 has no per-socket snap length (frames are variable-sized inside
//!   a block), so a one-instruction classic BPF program (`ret #snaplen`) makes the kernel copy
//!   only the first `snaplen` bytes; `tp_len` still gives the wire length.
//! * **VLAN tags.** The kernel's receive path takes the outermost 802.1Q/802.1ad tag off every
//!   frame (in software when the NIC does not) and reports it beside the frame. The socket asks
//!   for 4 bytes of headroom (`PACKET_RESERVE`) and the tag is written back in place, so the flow
//!   engine sees the frame as it was on the wire.
//! * **Fanout.** Sockets of one group on one interface share its traffic by a flow-symmetric
//!   hash: both directions of a flow, even across two tap legs with one group each, land on the
//!   same group index when the sockets joined in the same order. [`FanoutHash`] chooses between
//!   the kernel's 5-tuple hash (IPv4 fragments reassembled first) and a host-pair hash (a small
//!   classic BPF program) that keeps fragments as they were on the wire.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, size_of_val};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::live::{ifindex, LiveCapture, LiveStats};
use crate::{Batch, Capture, CaptureError, CaptureStats, CaptureWarning, LinkType, PacketDesc};

/// Most packets in one batch. A block holding more is handed out over several calls.
pub const BATCH_MAX: usize = 1024;
/// Warnings kept per socket (a kernel/ring bug should not flood the log; counters still count).
const MAX_WARNINGS: u64 = 100;
/// Headroom the kernel leaves before every frame: room to write a 4-byte VLAN tag back.
const RESERVE: u32 = 4;
/// Nominal frame size. TPACKET_V3 packs variable-sized frames into blocks, so this only has to
/// satisfy the kernel's `tp_frame_nr` bookkeeping (block_size / frame_size frames per block).
const FRAME_SIZE: u32 = 2048;
/// ARPHRD_RAWIP (not in libc): IP without a link header (e.g. some cellular modems).
const ARPHRD_RAWIP: u16 = 519;
/// Offset of `block_status` in `tpacket_block_desc` (after `version` and `offset_to_priv`).
const BLOCK_STATUS_OFF: usize = 8;
/// `tpacket_hdr_v1` lies 8 bytes into the block descriptor.
const BLOCK_HDR_V1_OFF: usize = 8;
/// Size of the block descriptor: no packet starts before it.
const BLOCK_HDR_LEN: usize = size_of::<libc::tpacket_block_desc>();

/// How a fanout group spreads packets over its sockets. Both are symmetric (A→B and B→A go to
/// the same socket) and deterministic, so groups on two tap legs agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FanoutHash {
    /// The kernel's flow hash over addresses and ports (`PACKET_FANOUT_HASH`): the finest
    /// spread. Fragments carry no ports, so IPv4 datagrams are reassembled before hashing
    /// (`PACKET_FANOUT_FLAG_DEFRAG`): the socket gets one packet per datagram instead of the
    /// wire's fragments, and fragments that never complete are lost without a count. IPv6
    /// fragments are not reassembled and hash on the addresses only, so they may reach another
    /// socket than the rest of their flow.
    #[default]
    Flow,
    /// A hash of the IPv4/IPv6 source and destination addresses only (after up to one VLAN
    /// tag left in the frame), computed by a classic BPF program (`PACKET_FANOUT_CBPF`). Every
    /// packet, fragments included, reaches the socket of its host pair unchanged and counted;
    /// the spread is coarser (one busy host pair loads one socket). Non-IP frames all go to
    /// the first socket.
    HostPair,
}

/// Configuration of one AF_PACKET socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name in the calling thread's network namespace.
    pub iface: String,
    /// Fanout group id (per network namespace). `None`: this socket gets all the interface's
    /// packets. Every socket of a group must be opened on the same interface with the same
    /// `ignore_outgoing` and `fanout_hash`; a socket's index in the group is its place in the
    /// order of joining.
    pub fanout: Option<u16>,
    /// How the group spreads packets (see [`FanoutHash`]).
    pub fanout_hash: FanoutHash,
    /// Bytes of each packet copied into the ring (0 = whole packets). Re-inserted VLAN tags come
    /// on top: a tagged frame has up to `snaplen + 4` bytes.
    pub snaplen: u32,
    /// Bytes per ring block: a power of two, at least the page size.
    pub block_size: u32,
    /// Blocks in the ring (at least 2). Ring memory = `block_size * block_count`.
    pub block_count: u32,
    /// A block that is not full is handed over after this many ms (0: the kernel picks from
    /// the link speed). Bounds the latency of a quiet link.
    pub retire_ms: u32,
    /// Skip packets this host sends on the interface (a tap port should send none; this keeps
    /// the probe host's own traffic out of the flow records).
    pub ignore_outgoing: bool,
    /// Written to every [`PacketDesc::iface`] (e.g. the tap leg number).
    pub iface_tag: u16,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            iface: String::new(),
            fanout: None,
            fanout_hash: FanoutHash::Flow,
            snaplen: 128,
            block_size: 1 << 20,
            block_count: 64,
            retire_ms: 10,
            ignore_outgoing: true,
            iface_tag: 0,
        }
    }
}

/// One TPACKET_V3 socket with its mapped ring. See the module documentation.
pub struct AfPacket {
    fd: OwnedFd,
    /// Start of the ring mapping (`ring_len` bytes, `block_count` blocks of `block_size`).
    ring: *mut u8,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    link: LinkType,
    iface_tag: u16,
    name: String,
    /// The block being read, or the next one to wait for.
    cur: usize,
    /// Packets of `cur` not yet handed out; `None` when `cur` is not ours yet.
    left_in_block: Option<u32>,
    /// Offset in `cur` of the next packet's header.
    pkt_off: usize,
    /// Blocks finished by the last batch, to give back at the next call: `release_n` blocks
    /// starting at `release_from` (consecutive, modulo the ring).
    release_from: usize,
    release_n: usize,
    descs: Vec<PacketDesc>,
    stats: CaptureStats,
    /// Sums of the kernel's reset-on-read PACKET_STATISTICS.
    kernel_seen: u64,
    kernel_drops: u64,
    warnings: Vec<CaptureWarning>,
    warned: u64,
}

// SAFETY: `AfPacket` exclusively owns its socket and ring mapping; the raw pointer is only an
// address into that mapping, which stays valid on any thread. Nothing is thread-affine.
unsafe impl Send for AfPacket {}

impl std::fmt::Debug for AfPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacket")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("ring_len", &self.ring_len)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// An `io::Error` that names the interface and the setup step.
fn step_err(iface: &str, step: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("AF_PACKET on {iface}: {step}: {e}"))
}

fn invalid(iface: &str, msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("AF_PACKET on {iface}: {msg}"),
    )
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised `T` of exactly the length passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            val as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches `ret #k`: accept every packet, copying at most `k` bytes (0 drops everything).
fn attach_snap_filter(fd: RawFd, k: u32) -> io::Result<()> {
    let mut insn = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    }];
    let prog = libc::sock_fprog {
        len: insn.len() as libc::c_ushort,
        filter: insn.as_mut_ptr(),
    };
    // The kernel copies the program during the call; `insn` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// The classic BPF program of [`FanoutHash::HostPair`]: a hash of the source and destination
/// addresses that is the same both ways (their sum and xor, word by word, then mixed). Loads
/// are relative to the network header, which the kernel has set for every received packet
/// (after taking the outer VLAN tag off); one more tag left in the frame is looked through.
/// The kernel takes the result modulo the group size; a frame too short for a load gets 0.
fn host_pair_program() -> Vec<libc::sock_filter> {
    const NET: i32 = libc::SKF_NET_OFF;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld_net =
        |off: i32, size: u32| stmt(libc::BPF_LD | size | libc::BPF_ABS, (NET + off) as u32);
    let (tax, st, ld_mem) = (
        stmt(libc::BPF_MISC | libc::BPF_TAX, 0),
        |m: u32| stmt(libc::BPF_ST, m),
        |m: u32| stmt(libc::BPF_LD | libc::BPF_MEM, m),
    );
    let alu_x = |op: u32| stmt(libc::BPF_ALU | op | libc::BPF_X, 0);
    let alu_k = |op: u32, k: u32| stmt(libc::BPF_ALU | op | libc::BPF_K, k);

    // Labels are patched into the `ja` instructions at the end.
    #[derive(Clone, Copy, PartialEq)]
    enum L {
        Tag,
        V4(i32),
        V6(i32),
        Mix,
        Zero,
    }
    let mut p: Vec<libc::sock_filter> = Vec::with_capacity(200);
    let mut jumps: Vec<(usize, L)> = Vec::new();
    let mut labels: Vec<(L, usize)> = Vec::new();
    let mut ja = |p: &mut Vec<libc::sock_filter>, to: L| {
        jumps.push((p.len(), to));
        p.push(stmt(libc::BPF_JMP | libc::BPF_JA, 0));
    };

    // M[1] = sum, M[2] = xor of the address words (scratch memory must be written first).
    p.push(stmt(libc::BPF_LD | libc::BPF_IMM, 0));
    p.push(st(1));
    p.push(st(2));
    p.push(stmt(
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32,
    ));
    p.push(jeq(0x0800, 0, 1));
    ja(&mut p, L::V4(0));
    p.push(jeq(0x86dd, 0, 1));
    ja(&mut p, L::V6(0));
    p.push(jeq(0x8100, 1, 0));
    p.push(jeq(0x88a8, 0, 1));
    ja(&mut p, L::Tag);
    ja(&mut p, L::Zero);
    labels.push((L::Tag, p.len()));
    p.push(ld_net(2, libc::BPF_H));
    p.push(jeq(0x0800, 0, 1));
    ja(&mut p, L::V4(4));
    p.push(jeq(0x86dd, 0, 1));
    ja(&mut p, L::V6(4));
    ja(&mut p, L::Zero);
    for (label, src, dst, words) in [
        (L::V4(0), 12, 16, 1),
        (L::V6(0), 8, 24, 4),
        (L::V4(4), 16, 20, 1),
        (L::V6(4), 12, 28, 4),
    ] {
        labels.push((label, p.len()));
        for w in 0..words {
            let (s, d) = (src + 4 * w, dst + 4 * w);
            p.extend([
                ld_net(s, libc::BPF_W),
                tax,
                ld_net(d, libc::BPF_W),
                st(0),
                alu_x(libc::BPF_ADD),
                tax,
                ld_mem(1),
                alu_x(libc::BPF_ADD),
                st(1),
                ld_net(s, libc::BPF_W),
                tax,
                ld_mem(0),
                alu_x(libc::BPF_XOR),
                tax,
                ld_mem(2),
                alu_x(libc::BPF_XOR),
                st(2),
            ]);
        }
        ja(&mut p, L::Mix);
    }
    labels.push((L::Mix, p.len()));
    p.extend([
        ld_mem(2),
        alu_k(libc::BPF_MUL, 0x9e37_79b1),
        tax,
        ld_mem(1),
        alu_x(libc::BPF_ADD),
        tax,
        alu_k(libc::BPF_RSH, 15),
        alu_x(libc::BPF_XOR),
        alu_k(libc::BPF_MUL, 0x85eb_ca6b),
        tax,
        alu_k(libc::BPF_RSH, 13),
        alu_x(libc::BPF_XOR),
        stmt(libc::BPF_RET | libc::BPF_A, 0),
    ]);
    labels.push((L::Zero, p.len()));
    p.push(stmt(libc::BPF_RET | libc::BPF_K, 0));
    for (at, to) in jumps {
        let target = labels
            .iter()
            .find(|(l, _)| *l == to)
            .map_or(at + 1, |&(_, i)| i);
        p[at].k = (target - at - 1) as u32;
    }
    p
}

/// The interface's ARPHRD_* type, from SIOCGIFHWADDR on `fd` (the caller's namespace).
fn hw_type(fd: RawFd, iface: &str) -> io::Result<u16> {
    // SAFETY: an all-zero ifreq is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= ifr.ifr_name.len() || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a valid interface name",
        ));
    }
    for (d, &s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name and writes the ifreq we own.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    Ok(unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family })
}

impl AfPacket {
    /// The capture state over a mapped ring of `block_count` blocks (Drop unmaps it).
    fn over_ring(
        fd: OwnedFd,
        ring: *mut u8,
        block_size: usize,
        block_count: usize,
        link: LinkType,
        iface_tag: u16,
        name: String,
    ) -> AfPacket {
        AfPacket {
            fd,
            ring,
            ring_len: block_size * block_count,
            block_size,
            block_count,
            link,
            iface_tag,
            name,
            cur: 0,
            left_in_block: None,
            pkt_off: 0,
            release_from: 0,
            release_n: 0,
            descs: Vec::with_capacity(BATCH_MAX),
            stats: CaptureStats::default(),
            kernel_seen: 0,
            kernel_drops: 0,
            warnings: Vec::new(),
            warned: 0,
        }
    }

    /// Opens a TPACKET_V3 socket on `cfg.iface` (in the calling thread's network namespace),
    /// maps its ring and, with `cfg.fanout`, joins the fanout group. The socket works from any
    /// thread afterwards. Needs CAP_NET_RAW (the ring is kernel memory: no RLIMIT_MEMLOCK).
    pub fn open(cfg: &AfPacketConfig) -> io::Result<AfPacket> {
        let iface = cfg.iface.as_str();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
        if !cfg.block_size.is_power_of_two() || cfg.block_size < page {
            return Err(invalid(
                iface,
                format!(
                    "block size {} must be a power of two of at least the page size ({page})",
                    cfg.block_size
                ),
            ));
        }
        if cfg.block_count < 2 {
            return Err(invalid(
                iface,
                format!("block count {} must be at least 2", cfg.block_count),
            ));
        }
        let ring_len = cfg.block_size as usize * cfg.block_count as usize;
        let frames_per_block = cfg.block_size / FRAME_SIZE;
        let frame_nr = frames_per_block
            .checked_mul(cfg.block_count)
            .ok_or_else(|| {
                invalid(
                    iface,
                    format!(
                        "ring of {} x {} bytes is too large",
                        cfg.block_count, cfg.block_size
                    ),
                )
            })?;
        let idx = ifindex(iface).map_err(|e| step_err(iface, "interface index", e))?;

        // Protocol 0: the socket receives nothing until bind, so the ring never holds packets
        // of other interfaces.
        // SAFETY: plain socket creation; the fd is owned right after.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(step_err(iface, "socket", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let hatype = hw_type(s, iface).map_err(|e| step_err(iface, "link type", e))?;
        let link = match hatype {
            libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => LinkType::ETHERNET,
            libc::ARPHRD_NONE | ARPHRD_RAWIP => LinkType::RAW,
            other => {
                return Err(invalid(
                    iface,
                    format!("link type ARPHRD {other} is not supported (Ethernet or raw IP)"),
                ))
            }
        };

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| step_err(iface, "PACKET_VERSION TPACKET_V3", e))?;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RESERVE, &RESERVE)
            .map_err(|e| step_err(iface, "PACKET_RESERVE", e))?;
        let ignore: libc::c_int = cfg.ignore_outgoing.into();
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &ignore)
            .map_err(|e| step_err(iface, "PACKET_IGNORE_OUTGOING", e))?;
        // Drop everything until the socket has joined its fanout group: otherwise, between
        // bind and join, it would get (and the probe count twice) packets the group also gets.
        // The price: what the group hands this socket in the one syscall between joining and
        // the snap-length filter below is dropped uncounted (start-up only).
        attach_snap_filter(s, 0).map_err(|e| step_err(iface, "SO_ATTACH_FILTER", e))?;

        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: frame_nr,
            tp_retire_blk_tov: cfg.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(|e| {
            step_err(
                iface,
                &format!(
                    "PACKET_RX_RING ({} blocks of {} bytes)",
                    cfg.block_count, cfg.block_size
                ),
                e,
            )
        })?;

        // SAFETY: maps the ring the kernel just allocated for this socket; length as requested.
        let ring = unsafe {
            libc::mmap(
                ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                s,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(step_err(iface, "mmap ring", io::Error::last_os_error()));
        }
        // From here on Drop unmaps the ring.
        let cap = AfPacket::over_ring(
            fd,
            ring as *mut u8,
            cfg.block_size as usize,
            cfg.block_count as usize,
            link,
            cfg.iface_tag,
            format!("afpacket:{iface}"),
        );

        // SAFETY: an all-zero sockaddr_ll is valid; we set the fields bind reads.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = idx as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
        let r = unsafe {
            libc::bind(
                s,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of_val(&sll) as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(step_err(iface, "bind", io::Error::last_os_error()));
        }

        if let Some(group) = cfg.fanout {
            let (kind, mut flags) = match cfg.fanout_hash {
                FanoutHash::Flow => (libc::PACKET_FANOUT_HASH, libc::PACKET_FANOUT_FLAG_DEFRAG),
                FanoutHash::HostPair => (libc::PACKET_FANOUT_CBPF, 0),
            };
            // A fanout group has one kernel hook; the per-socket PACKET_IGNORE_OUTGOING does not
            // apply to it, the group flag does.
            if cfg.ignore_outgoing {
                flags |= libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
            }
            let arg: u32 = u32::from(group) | ((kind | flags) << 16);
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|e| {
                step_err(
                    iface,
                    &format!(
                        "PACKET_FANOUT group {group} (all members need the same interface, \
                         ignore_outgoing and fanout hash)"
                    ),
                    e,
                )
            })?;
            if cfg.fanout_hash == FanoutHash::HostPair {
                // The group has one program; every member sets the same one (until the first
                // does, the group sends everything to its index 0: only during start-up).
                let mut prog = host_pair_program();
                let fprog = libc::sock_fprog {
                    len: prog.len() as libc::c_ushort,
                    filter: prog.as_mut_ptr(),
                };
                setsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog)
                    .map_err(|e| step_err(iface, "PACKET_FANOUT_DATA (host-pair program)", e))?;
            }
        }
        // u32::MAX: the kernel copies min(packet length, filter result).
        let snap = if cfg.snaplen == 0 {
            u32::MAX
        } else {
            cfg.snaplen
        };
        attach_snap_filter(s, snap).map_err(|e| step_err(iface, "SO_ATTACH_FILTER snaplen", e))?;
        Ok(cap)
    }

    /// Link type of the packets (from the interface's hardware type).
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The `block_status` word of block `b`, shared with the kernel: TP_STATUS_USER hands the
    /// block to us (load with Acquire so its contents are visible), TP_STATUS_KERNEL hands it
    /// back (store with Release so our accesses are done first).
    #[inline]
    fn block_status(&self, b: usize) -> &AtomicU32 {
        // SAFETY: `b < block_count`, so the word lies inside the mapping; blocks are
        // page-aligned, so it is 4-byte aligned. The kernel and we only access it atomically.
        unsafe { &*(self.ring.add(b * self.block_size + BLOCK_STATUS_OFF) as *const AtomicU32) }
    }

    /// Gives the blocks finished by the last batch back to the kernel.
    #[inline]
    fn release(&mut self) {
        for i in 0..self.release_n {
            let b = (self.release_from + i) % self.block_count;
            // Release: our reads (and VLAN writes) of the block happen before the kernel may
            // refill it.
            self.block_status(b)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.release_n = 0;
    }

    fn warn(&mut self, message: String) {
        self.warned += 1;
        if self.warned <= MAX_WARNINGS {
            self.warnings.push(CaptureWarning {
                source: self.name.clone(),
                offset: 0,
                message,
            });
        }
    }

    /// Marks block `cur` as finished (to be released at the next call) and moves on.
    #[inline]
    fn finish_block(&mut self) {
        if self.release_n == 0 {
            self.release_from = self.cur;
        }
        self.release_n += 1;
        self.left_in_block = None;
        self.cur = (self.cur + 1) % self.block_count;
    }

    /// Fills `self.descs` from ready blocks, up to [`BATCH_MAX`] packets.
    fn fill(&mut self) {
        let bs = self.block_size;
        while self.descs.len() < BATCH_MAX {
            let left = match self.left_in_block {
                Some(n) => n,
                None => {
                    // Every block is ours and finished in this batch: `cur` is the first of
                    // them again, still marked TP_STATUS_USER until the next call releases it.
                    if self.release_n == self.block_count {
                        break;
                    }
                    if self.block_status(self.cur).load(Ordering::Acquire) & libc::TP_STATUS_USER
                        == 0
                    {
                        break;
                    }
                    // SAFETY: the block is ours (TP_STATUS_USER); the descriptor lies at its
                    // start, inside the mapping. Unaligned reads: no layout assumption.
                    let (num, first) = unsafe {
                        let h = self.ring.add(self.cur * bs + BLOCK_HDR_V1_OFF)
                            as *const libc::tpacket_hdr_v1;
                        (
                            ptr::addr_of!((*h).num_pkts).read_unaligned(),
                            ptr::addr_of!((*h).offset_to_first_pkt).read_unaligned(),
                        )
                    };
                    self.pkt_off = first as usize;
                    num
                }
            };
            if left == 0 {
                self.finish_block();
                continue;
            }
            let n = (left as usize).min(BATCH_MAX - self.descs.len()) as u32;
            let (done, damaged) = self.read_packets(n, left);
            if damaged {
                self.stats.bad_records += u64::from(left - done);
                self.finish_block();
            } else if done == left {
                self.finish_block();
            } else {
                self.left_in_block = Some(left - done);
            }
        }
    }

    /// Reads `n` of the `left` remaining packets of block `cur`, from `pkt_off`, into `descs`.
    /// Returns how many it read and whether the block is damaged (a warning says where), in
    /// which case the rest of it is abandoned.
    #[inline]
    fn read_packets(&mut self, n: u32, left: u32) -> (u32, bool) {
        let bs = self.block_size;
        let base = self.cur * bs;
        let hdr_len = size_of::<libc::tpacket3_hdr>();
        for i in 0..n {
            let off = self.pkt_off;
            if off < BLOCK_HDR_LEN || off > bs - hdr_len {
                let m = format!(
                    "block {}: packet header at {off} outside the block",
                    self.cur
                );
                self.warn(m);
                return (i, true);
            }
            // SAFETY: `off + hdr_len <= block_size` (checked), so the header lies in our block.
            let h: libc::tpacket3_hdr = unsafe {
                (self.ring.add(base + off) as *const libc::tpacket3_hdr).read_unaligned()
            };
            let mut mac = off + usize::from(h.tp_mac);
            let mut caplen = h.tp_snaplen;
            let mut wire_len = h.tp_len;
            // No overflow: mac < block_size + 64 KiB and caplen < 4 GiB.
            if mac + caplen as usize > bs {
                let m = format!(
                    "block {}: packet at {off} ({caplen} bytes at +{}) outside the block",
                    self.cur, h.tp_mac
                );
                self.warn(m);
                return (i, true);
            }
            if h.tp_status & libc::TP_STATUS_VLAN_VALID != 0
                && self.link == LinkType::ETHERNET
                && caplen >= 12
                // PACKET_RESERVE guarantees the headroom; checked so a surprise cannot make us
                // write over this packet's header or sockaddr_ll.
                && usize::from(h.tp_mac) >= libc::TPACKET3_HDRLEN + RESERVE as usize
            {
                let tpid = if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    h.hv1.tp_vlan_tpid
                } else {
                    0x8100
                };
                let tci = h.hv1.tp_vlan_tci as u16;
                // SAFETY: [mac - 4, mac + caplen) lies in our block (checked above); the
                // kernel does not touch a TP_STATUS_USER block and no batch borrows it now.
                unsafe {
                    let p = self.ring.add(base + mac);
                    ptr::copy(p, p.sub(4), 12);
                    let [t0, t1] = tpid.to_be_bytes();
                    let [c0, c1] = tci.to_be_bytes();
                    ptr::copy_nonoverlapping([t0, t1, c0, c1].as_ptr(), p.add(8), 4);
                }
                mac -= 4;
                caplen += 4;
                wire_len = wire_len.saturating_add(4);
            }
            self.stats.packets += 1;
            self.stats.wire_bytes += u64::from(wire_len);
            if caplen < wire_len {
                self.stats.snaplen_truncated += 1;
            }
            self.descs.push(PacketDesc {
                offset: base + mac,
                caplen,
                wire_len,
                ts_ns: u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec),
                link: self.link.0,
                iface: self.iface_tag,
            });
            // The last packet's tp_next_offset is 0; only the ones before it are followed.
            self.pkt_off = off.saturating_add(h.tp_next_offset as usize);
            if h.tp_next_offset == 0 && i + 1 < left {
                let m = format!("block {}: packet at {off} has no successor", self.cur);
                self.warn(m);
                return (i + 1, true);
            }
        }
        (n, false)
    }
}

impl Capture for AfPacket {
    /// Never blocks and never ends: an empty batch means nothing is ready (wait on
    /// [`LiveCapture::poll_fd`]).
    fn next_batch(&mut self) -> Result<Option<Batch<'_>>, CaptureError> {
        self.release();
        self.descs.clear();
        self.fill();
        // SAFETY: the mapping is `ring_len` bytes and lives as long as `self`. Descriptors only
        // point into blocks we own (TP_STATUS_USER, not released until the next call, which
        // needs `&mut self` and so ends this borrow). The kernel writes only blocks it owns,
        // bytes this batch never reads.
        let data = unsafe { std::slice::from_raw_parts(self.ring as *const u8, self.ring_len) };
        Ok(Some(Batch {
            data,
            descs: &self.descs,
        }))
    }

    fn stats(&self) -> CaptureStats {
        self.stats.clone()
    }

    fn take_warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.warnings)
    }

    fn source_name(&self) -> &str {
        &self.name
    }
}

impl LiveCapture for AfPacket {
    fn poll_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// One `getsockopt(PACKET_STATISTICS)`. The kernel resets its counters on every read and,
    /// for TPACKET_V3, already counts drops in `tp_packets`; the sums are kept here. The
    /// kernel's counters are 32-bit: call this at least every minute or two at line rate.
    fn live_stats(&mut self) -> LiveStats {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is a writable tpacket_stats_v3 and `len` its size.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut st as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if r == 0 {
            self.kernel_seen += u64::from(st.tp_packets);
            self.kernel_drops += u64::from(st.tp_drops);
            self.stats.drops = self.kernel_drops;
        } else {
            let e = io::Error::last_os_error();
            self.warn(format!("PACKET_STATISTICS: {e}"));
        }
        LiveStats {
            seen: self.kernel_seen,
            delivered: self.stats.packets,
            ring_drops: self.kernel_drops,
            ..LiveStats::default()
        }
    }
}

impl Drop for AfPacket {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `open` with this length and nothing borrows it now
        // (batches borrow `self`). The socket closes after this, when `fd` drops.
        unsafe { libc::munmap(self.ring as *mut libc::c_void, self.ring_len) };
    }
}

#[cfg(test)]
mod tests {
    //! The ring walk on a synthetic ring (anonymous memory laid out like the kernel's), so
    //! batching, release and damaged blocks are tested without a socket. Live behaviour is in
    //! tests/afpacket.rs.

    use super::*;

    const BS: usize = 1 << 18;
    const MAC: u16 = 88;

    fn synthetic(blocks: usize) -> AfPacket {
        // SAFETY: a fresh private anonymous mapping; AfPacket's Drop unmaps it.
        let ring = unsafe {
            libc::mmap(
                ptr::null_mut(),
                BS * blocks,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ring, libc::MAP_FAILED);
        AfPacket::over_ring(
            std::fs::File::open("/dev/null").unwrap().into(),
            ring as *mut u8,
            BS,
            blocks,
            LinkType::ETHERNET,
            3,
            "afpacket:test".into(),
        )
    }

    fn put32(c: &AfPacket, at: usize, v: u32) {
        assert!(at + 4 <= c.ring_len);
        // SAFETY: in bounds (asserted); test-only access, no batch alive.
        unsafe { (c.ring.add(at) as *mut u32).write_unaligned(v) }
    }
    fn put16(c: &AfPacket, at: usize, v: u16) {
        assert!(at + 2 <= c.ring_len);
        // SAFETY: as above.
        unsafe { (c.ring.add(at) as *mut u16).write_unaligned(v) }
    }
    fn put(c: &AfPacket, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= c.ring_len);
        // SAFETY: as above.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), c.ring.add(at), bytes.len()) }
    }

    /// Writes a block of `frames` (status word, VLAN TCI, TPID) and hands it to "user space".
    fn fill_block(c: &AfPacket, b: usize, frames: &[(Vec<u8>, u32, u16, u16)]) {
        let base = b * BS;
        put32(c, base + BLOCK_HDR_V1_OFF + 4, frames.len() as u32);
        put32(c, base + BLOCK_HDR_V1_OFF + 8, BLOCK_HDR_LEN as u32);
        let mut off = BLOCK_HDR_LEN;
        for (i, (f, status, tci, tpid)) in frames.iter().enumerate() {
            let next = if i + 1 == frames.len() {
                0
            } else {
                (usize::from(MAC) + f.len()).next_multiple_of(16)
            };
            let p = base + off;
            put32(c, p, next as u32);
            put32(c, p + 4, 1_700_000_000);
            put32(c, p + 8, i as u32);
            put32(c, p + 12, f.len() as u32);
            put32(c, p + 16, f.len() as u32 + 1000);
            put32(c, p + 20, *status);
            put16(c, p + 24, MAC);
            put32(c, p + 32, u32::from(*tci));
            put16(c, p + 36, *tpid);
            put(c, p + usize::from(MAC), f);
            off += next;
        }
        c.block_status(b)
            .store(libc::TP_STATUS_USER, Ordering::Release);
    }

    fn eth(i: u32) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14..18].copy_from_slice(&i.to_be_bytes());
        f
    }

    #[test]
    fn ready_blocks_come_in_one_batch_and_go_back_at_the_next_call() {
        let mut c = synthetic(4);
        let per = 300usize; // 300 slots of 160 B fit a block
        for b in 0..3 {
            let frames: Vec<_> = (0..per)
                .map(|i| (eth((b * per + i) as u32), libc::TP_STATUS_USER, 0, 0))
                .collect();
            fill_block(&c, b, &frames);
        }
        let mut seen = Vec::new();
        let b = c.next_batch().unwrap().unwrap();
        assert_eq!(b.len(), 3 * per); // under BATCH_MAX: all ready blocks at once
        for p in b.iter() {
            seen.push(u32::from_be_bytes(p.data[14..18].try_into().unwrap()));
            assert_eq!((p.wire_len, p.iface, p.link), (1060, 3, LinkType::ETHERNET));
            assert_eq!(p.data.len(), 60);
        }
        assert_eq!(seen, (0..3 * per as u32).collect::<Vec<_>>());
        // Still ours while the batch may be in use; the kernel gets them at the next call.
        assert_eq!(
            c.block_status(0).load(Ordering::Relaxed),
            libc::TP_STATUS_USER
        );
        assert!(c.next_batch().unwrap().unwrap().is_empty());
        for b in 0..3 {
            assert_eq!(
                c.block_status(b).load(Ordering::Relaxed),
                libc::TP_STATUS_KERNEL
            );
        }
        assert_eq!(c.stats().packets, 3 * per as u64);
        assert_eq!(c.stats().snaplen_truncated, 3 * per as u64);
    }

    #[test]
    fn a_block_larger_than_a_batch_is_read_in_parts() {
        let mut c = synthetic(2);
        // 2053 frames of 4 bytes in 96-byte slots fill one block; the next block follows.
        let n = 2 * BATCH_MAX as u32 + 5;
        let small = |i: u32| (i.to_be_bytes().to_vec(), libc::TP_STATUS_USER, 0, 0);
        fill_block(&c, 0, &(0..n).map(small).collect::<Vec<_>>());
        fill_block(&c, 1, &(n..n + 10).map(small).collect::<Vec<_>>());
        let mut got = Vec::new();
        loop {
            let b = c.next_batch().unwrap().unwrap();
            if b.is_empty() {
                break;
            }
            assert!(b.len() <= BATCH_MAX);
            got.extend(
                b.iter()
                    .map(|p| u32::from_be_bytes(p.data.try_into().unwrap())),
            );
        }
        assert_eq!(got, (0..n + 10).collect::<Vec<_>>());
        assert!(c.take_warnings().is_empty());
        assert_eq!(c.stats().bad_records, 0);
    }

    #[test]
    fn vlan_tag_is_written_back_before_the_frame() {
        let mut c = synthetic(2);
        let v = libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID;
        let frames = vec![
            (eth(0), v | libc::TP_STATUS_VLAN_TPID_VALID, 0x2064, 0x88a8),
            (eth(1), v, 0x0064, 0), // no TPID reported: 802.1Q
            (eth(2), libc::TP_STATUS_USER, 0x0064, 0x8100), // not valid: left alone
            (eth(3)[..10].to_vec(), v, 0x0064, 0x8100), // too short to hold MACs: left alone
        ];
        fill_block(&c, 0, &frames);
        let b = c.next_batch().unwrap().unwrap();
        let p: Vec<_> = b.iter().collect();
        assert_eq!(p[0].data.len(), 64);
        assert_eq!(p[0].wire_len, 1064);
        assert_eq!(&p[0].data[..12], &frames[0].0[..12]);
        assert_eq!(&p[0].data[12..16], &[0x88, 0xa8, 0x20, 0x64]);
        assert_eq!(&p[0].data[16..], &frames[0].0[12..]);
        assert_eq!(&p[1].data[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(p[2].data, &frames[2].0[..]);
        assert_eq!(p[3].data, &frames[3].0[..]);
    }

    #[test]
    fn damaged_blocks_are_abandoned_with_a_warning() {
        let mut c = synthetic(4);
        let u = libc::TP_STATUS_USER;
        // Block 0: the second packet claims more bytes than the block holds.
        fill_block(
            &c,
            0,
            &[(eth(0), u, 0, 0), (eth(1), u, 0, 0), (eth(2), u, 0, 0)],
        );
        let second = BLOCK_HDR_LEN + (usize::from(MAC) + 60).next_multiple_of(16);
        put32(&c, second + 12, BS as u32);
        // Block 1: three packets announced, the first says it is the last.
        fill_block(&c, 1, &[(eth(10), u, 0, 0), (eth(11), u, 0, 0)]);
        put32(&c, BS + BLOCK_HDR_V1_OFF + 4, 3);
        put32(&c, BS + BLOCK_HDR_LEN, 0);
        // Block 2: first packet offset outside the block.
        fill_block(&c, 2, &[(eth(20), u, 0, 0)]);
        put32(&c, 2 * BS + BLOCK_HDR_V1_OFF + 8, BS as u32 - 8);
        // Block 3: fine.
        fill_block(&c, 3, &[(eth(30), u, 0, 0)]);
        let b = c.next_batch().unwrap().unwrap();
        let ids: Vec<u32> = b
            .iter()
            .map(|p| u32::from_be_bytes(p.data[14..18].try_into().unwrap()))
            .collect();
        assert_eq!(ids, [0, 10, 30]);
        assert_eq!(c.stats().bad_records, 2 + 2 + 1);
        assert_eq!(c.take_warnings().len(), 3);
        assert!(c.next_batch().unwrap().unwrap().is_empty());
    }

    #[test]
    fn garbage_never_panics_and_descs_stay_in_bounds() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut c = synthetic(3);
        for round in 0..200 {
            for b in 0..3 {
                // Random header words, a plausible first offset now and then.
                for w in (b * BS..(b + 1) * BS)
                    .step_by(4)
                    .take(64 + (rnd() % 512) as usize)
                {
                    put32(&c, w, rnd() as u32 & if round % 2 == 0 { 0xff } else { !0 });
                }
                if rnd() % 2 == 0 {
                    put32(&c, b * BS + BLOCK_HDR_V1_OFF + 8, BLOCK_HDR_LEN as u32);
                }
                c.block_status(b)
                    .store(libc::TP_STATUS_USER, Ordering::Release);
            }
            let len = c.ring_len;
            for _ in 0..8 {
                let b = c.next_batch().unwrap().unwrap();
                for d in b.descs {
                    assert!(d.offset + d.caplen as usize <= len);
                }
                let _ = b.iter().count();
            }
            c.take_warnings();
        }
    }
}
