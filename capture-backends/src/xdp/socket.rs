//! One AF_XDP socket: its UMEM, FILL and RX rings, and the batch loop over them.
//!
//! Frame life cycle: a frame address is in exactly one place at a time — the FILL ring (the
//! kernel may write it), the RX ring (filled, waiting for us), the current batch (lent to the
//! caller), or `free` (ours, waiting for room in the FILL ring). The batch borrows the socket,
//! so when `next_batch` runs again the previous batch's frames are unreachable and go back to
//! `free`, then to the FILL ring.

use super::{CounterMap, XdpError, XdpErrorKind, XskMode, C_FILTERED, C_PASSED, C_SEEN};
use crate::live::realtime_ns;

/// The XDP program's per-packet metadata: `{ ts: u64 (CLOCK_MONOTONIC ns), magic: u64 }`
/// right before the frame data (ebpf/tapflow_xdp.c, struct tf_meta).
const META_LEN: usize = 16;
const META_MAGIC: u64 = 0x7466_746d_6574_6131;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
use crate::{
    Batch, Capture, CaptureError, CaptureStats, CaptureWarning, LinkType, LiveCapture, LiveStats,
    PacketDesc,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

const HUGE_PAGE: usize = 2 << 20;
/// The completion ring is only for TX, which we never do, but bind requires one.
const COMPLETION_RING_SIZE: u32 = 64;

/// An anonymous or socket mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn map(len: usize, prot: i32, flags: i32, fd: RawFd, off: libc::off_t) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping request; the kernel picks the address and we check the result.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

// SAFETY: a mapping is plain memory owned by this value; moving the owner to another thread
// moves the only handle to it.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The packet buffer area shared with the kernel.
pub(super) struct Umem {
    map: Mapping,
    pub hugepages: bool,
}

impl Umem {
    /// `len` bytes of page-aligned memory, on 2 MiB pages when asked and possible. Returns the
    /// fallback reason when hugepages were asked for but not available.
    pub fn new(len: usize, hugepages: bool) -> io::Result<(Umem, Option<io::Error>)> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let mut fallback = None;
        if hugepages {
            let huge_len = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            let flags = anon | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB | libc::MAP_POPULATE;
            match Mapping::map(huge_len, prot, flags, -1, 0) {
                Ok(map) => {
                    return Ok((
                        Umem {
                            map,
                            hugepages: true,
                        },
                        None,
                    ))
                }
                Err(e) => fallback = Some(e),
            }
        }
        let map = Mapping::map(len, prot, anon, -1, 0)?;
        if hugepages {
            // Transparent huge pages are the next best thing (THP is often in madvise mode);
            // best effort, the registration below faults the pages in either way.
            // SAFETY: advice on a mapping we own.
            unsafe { libc::madvise(map.ptr.cast(), map.len, libc::MADV_HUGEPAGE) };
        }
        Ok((
            Umem {
                map,
                hugepages: false,
            },
            fallback,
        ))
    }

    pub fn len(&self) -> usize {
        self.map.len
    }
}

/// A single-producer/single-consumer ring mapped from the socket.
struct RingPtrs {
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    mask: u32,
}

// SAFETY: the pointers point into `_map`, owned by the same value, and are only used by
// whoever owns it (the socket's `&mut self` methods); the kernel side is synchronised through
// the atomics.
unsafe impl Send for RingPtrs {}

impl RingPtrs {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        desc_size: usize,
        pgoff: libc::off_t,
    ) -> io::Result<RingPtrs> {
        let len = off.desc as usize + size as usize * desc_size;
        let map = Mapping::map(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            pgoff,
        )?;
        // SAFETY: the kernel's offsets lie inside the mapping it just sized for them, and the
        // ring header fields are naturally aligned u32s.
        unsafe {
            Ok(RingPtrs {
                producer: map.ptr.add(off.producer as usize).cast(),
                consumer: map.ptr.add(off.consumer as usize).cast(),
                flags: map.ptr.add(off.flags as usize).cast(),
                descs: map.ptr.add(off.desc as usize),
                mask: size - 1,
                _map: map,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `_map`, which lives as long as `self`; the kernel accesses it
        // atomically too.
        unsafe { &*self.producer }
    }
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.flags }
    }
}

/// Everything that belongs to one socket descriptor (a failed zero-copy bind throws it all
/// away: rings can only be mapped before bind, so a retry needs a new socket).
struct Xsk {
    fill: RingPtrs,
    rx: RingPtrs,
    /// Declared after the rings so they are unmapped before the socket closes.
    fd: OwnedFd,
}

fn setsockopt<T>(fd: RawFd, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is valid for reads of size_of::<T>() bytes.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt<T>(fd: RawFd, opt: i32, val: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is valid for writes of `len` bytes.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (val as *mut T).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Socket setup parameters shared by both bind attempts.
pub(super) struct XskParams<'a> {
    pub iface: &'a str,
    pub ifindex: u32,
    pub queue: u32,
    pub ring_size: u32,
    pub frame_size: u32,
}

impl Xsk {
    /// `open_once`, retried for a while when bind says EBUSY: the kernel releases a closed
    /// socket's hold on its queue from a work queue, so reopening a queue right after closing
    /// its socket (a restart) can briefly find it still taken.
    fn open(umem: &Umem, p: &XskParams, bind_flags: u16) -> Result<Xsk, (&'static str, io::Error)> {
        const TRIES: u32 = 100;
        for _ in 1..TRIES {
            match Self::open_once(umem, p, bind_flags) {
                Err(("bind", e)) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
        match Self::open_once(umem, p, bind_flags) {
            Err(("bind", e)) if e.raw_os_error() == Some(libc::EBUSY) => Err((
                "bind (the queue already has an AF_XDP socket: another capture process?)",
                e,
            )),
            other => other,
        }
    }

    /// socket → UMEM_REG → ring sizes → mmap rings → bind. Returns which step failed.
    fn open_once(
        umem: &Umem,
        p: &XskParams,
        bind_flags: u16,
    ) -> Result<Xsk, (&'static str, io::Error)> {
        // SAFETY: plain socket(2), checked before it is owned.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(("socket(AF_XDP)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let reg = libc::xdp_umem_reg {
            addr: umem.map.ptr as u64,
            len: umem.len() as u64,
            chunk_size: p.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg).map_err(|e| ("register UMEM", e))?;
        setsockopt(raw, libc::XDP_UMEM_FILL_RING, &p.ring_size)
            .map_err(|e| ("size FILL ring", e))?;
        setsockopt(raw, libc::XDP_UMEM_COMPLETION_RING, &COMPLETION_RING_SIZE)
            .map_err(|e| ("size COMPLETION ring", e))?;
        setsockopt(raw, libc::XDP_RX_RING, &p.ring_size).map_err(|e| ("size RX ring", e))?;
        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(raw, libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| ("get XDP_MMAP_OFFSETS", e))?;
        let fill = RingPtrs::map(
            raw,
            &off.fr,
            p.ring_size,
            8,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        )
        .map_err(|e| ("mmap FILL ring", e))?;
        let rx = RingPtrs::map(
            raw,
            &off.rx,
            p.ring_size,
            std::mem::size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING,
        )
        .map_err(|e| ("mmap RX ring", e))?;
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: bind_flags,
            sxdp_ifindex: p.ifindex,
            sxdp_queue_id: p.queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp for the duration of the call.
        let r = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(("bind", io::Error::last_os_error()));
        }
        Ok(Xsk { fill, rx, fd })
    }
}

/// Counters the kernel keeps for one AF_XDP socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    /// Dropped for lack of a frame (FILL ring empty) or because the packet did not fit a frame.
    pub rx_dropped: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the FILL ring empty. In copy mode every such packet is also in
    /// `rx_dropped`; in zero-copy mode it counts driver refill attempts, not packets.
    pub rx_fill_ring_empty: u64,
    pub rx_invalid_descs: u64,
}

/// An AF_XDP socket bound to one queue, with its own UMEM. Made by
/// [`XdpProgram::open_socket`](super::XdpProgram::open_socket).
pub struct XdpSocket {
    xsk: Xsk,
    /// Declared after `xsk`: the kernel's pin on the pages is released when the socket closes.
    umem: Umem,
    /// Frames that are ours and not lent out, waiting for room in the FILL ring.
    free: Vec<u64>,
    /// The current batch (offsets are the frames' UMEM addresses).
    descs: Vec<PacketDesc>,
    batch: u32,
    fill_size: u32,
    /// Local copies of the ring indexes we produce/consume (only we write them).
    fill_prod: u32,
    fill_cons_cached: u32,
    rx_cons: u32,
    frame_mask: u64,
    frame_size: u32,
    counters: Arc<CounterMap>,
    /// XDP counters of this queue when the socket was opened (live stats are since open).
    baseline: [u64; super::NCOUNTERS],
    last_live: LiveStats,
    _queue_token: Arc<()>,
    packets: u64,
    wire_bytes: u64,
    bad_descs: u64,
    name: String,
    iface: String,
    queue: u32,
    iface_tag: u16,
    zero_copy: bool,
    fell_back: bool,
    warnings: Vec<CaptureWarning>,
}

/// What `XdpProgram::open_socket` hands over to build a socket.
pub(super) struct SocketParts {
    pub iface: String,
    pub queue: u32,
    pub iface_tag: u16,
    pub batch: u32,
    pub frame_size: u32,
    pub counters: Arc<CounterMap>,
    pub queue_token: Arc<()>,
}

/// Outcome of the bind attempts (before the XSKMAP entry is set).
pub(super) struct Bound {
    xsk: Xsk,
    pub zero_copy: bool,
    /// Zero-copy was tried (Auto) and failed with this error.
    pub zc_error: Option<io::Error>,
}

/// Binds a socket to `p.queue` in the mode asked. Zero-copy refusals become
/// [`XdpErrorKind::ZeroCopyUnsupported`] naming the driver.
pub(super) fn bind(
    umem: &Umem,
    p: &XskParams,
    mode: XskMode,
    driver: &str,
) -> Result<Bound, XdpError> {
    let wake = libc::XDP_USE_NEED_WAKEUP;
    let err = |what: &str, e: io::Error, kind| {
        XdpError::new(p.iface, Some(p.queue), kind, what.to_string(), Some(e))
    };
    let (xsk, zc_error) = match mode {
        XskMode::Copy => (
            Xsk::open(umem, p, libc::XDP_COPY | wake)
                .map_err(|(w, e)| err(w, e, XdpErrorKind::Socket))?,
            None,
        ),
        XskMode::ZeroCopy => match Xsk::open(umem, p, libc::XDP_ZEROCOPY | wake) {
            Ok(x) => (x, None),
            Err(("bind", e)) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                return Err(err(
                    &format!(
                        "driver {driver} cannot do zero-copy on {} (bind with XDP_ZEROCOPY); \
                         use copy or auto mode",
                        p.iface
                    ),
                    e,
                    XdpErrorKind::ZeroCopyUnsupported,
                ));
            }
            Err((w, e)) => return Err(err(&format!("{w} (zero-copy)"), e, XdpErrorKind::Socket)),
        },
        XskMode::Auto => match Xsk::open(umem, p, libc::XDP_ZEROCOPY | wake) {
            Ok(x) => (x, None),
            // Whatever stopped zero-copy, copy mode may still work; a real problem (bad
            // queue, no permission) fails again below and is reported then.
            Err((_, zc)) => match Xsk::open(umem, p, libc::XDP_COPY | wake) {
                Ok(x) => (x, Some(zc)),
                Err((w, e)) => return Err(err(w, e, XdpErrorKind::Socket)),
            },
        },
    };
    // SAFETY: all-zero is a valid xdp_options.
    let mut opts: libc::xdp_options = unsafe { std::mem::zeroed() };
    getsockopt(xsk.fd.as_raw_fd(), libc::XDP_OPTIONS, &mut opts)
        .map_err(|e| err("get XDP_OPTIONS", e, XdpErrorKind::Socket))?;
    Ok(Bound {
        xsk,
        zero_copy: opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0,
        zc_error,
    })
}

impl Bound {
    pub fn fd(&self) -> RawFd {
        self.xsk.fd.as_raw_fd()
    }
}

impl XdpSocket {
    /// Builds the socket around a bound descriptor and fills the FILL ring. The caller sets
    /// the XSKMAP entry afterwards (packets only arrive from then on).
    pub(super) fn new(
        bound: Bound,
        umem: Umem,
        parts: SocketParts,
        fell_back: bool,
        baseline: [u64; super::NCOUNTERS],
        warnings: Vec<CaptureWarning>,
    ) -> XdpSocket {
        let frames = (umem.len() / parts.frame_size as usize) as u64;
        let fill_size = bound.xsk.fill.mask + 1;
        // Lowest addresses last so they are handed out first (no functional reason, just
        // predictable for debugging).
        let free: Vec<u64> = (0..frames)
            .rev()
            .map(|i| i * parts.frame_size as u64)
            .collect();
        let mut s = XdpSocket {
            name: format!("xdp:{}/{}", parts.iface, parts.queue),
            zero_copy: bound.zero_copy,
            xsk: bound.xsk,
            umem,
            free,
            descs: Vec::with_capacity(parts.batch as usize),
            batch: parts.batch,
            fill_size,
            fill_prod: 0,
            fill_cons_cached: 0,
            rx_cons: 0,
            frame_mask: !(parts.frame_size as u64 - 1),
            frame_size: parts.frame_size,
            counters: parts.counters,
            baseline,
            last_live: LiveStats::default(),
            _queue_token: parts.queue_token,
            packets: 0,
            wire_bytes: 0,
            bad_descs: 0,
            iface: parts.iface,
            queue: parts.queue,
            iface_tag: parts.iface_tag,
            fell_back,
            warnings,
        };
        s.fill_prod = s.xsk.fill.producer().load(Ordering::Relaxed);
        s.fill_cons_cached = s.xsk.fill.consumer().load(Ordering::Acquire);
        s.rx_cons = s.xsk.rx.consumer().load(Ordering::Relaxed);
        s.refill();
        s
    }

    /// Queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }
    pub fn iface(&self) -> &str {
        &self.iface
    }
    /// Whether the kernel runs this socket in zero-copy mode (XDP_OPTIONS).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }
    /// Auto mode asked for zero-copy, the driver refused, and the socket runs in copy mode.
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }
    /// Whether the UMEM is on 2 MiB pages.
    pub fn hugepages(&self) -> bool {
        self.umem.hugepages
    }
    /// UMEM size in bytes.
    pub fn umem_len(&self) -> usize {
        self.umem.len()
    }

    /// The kernel's counters for this socket (one getsockopt).
    pub fn xsk_statistics(&self) -> io::Result<XskStatistics> {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        getsockopt(self.xsk.fd.as_raw_fd(), libc::XDP_STATISTICS, &mut st)?;
        Ok(XskStatistics {
            rx_dropped: st.rx_dropped,
            rx_ring_full: st.rx_ring_full,
            rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
            rx_invalid_descs: st.rx_invalid_descs,
        })
    }

    /// Moves free frames into the FILL ring, as many as fit.
    fn refill(&mut self) {
        let mut room = self.fill_size - self.fill_prod.wrapping_sub(self.fill_cons_cached);
        if room < self.free.len() as u32 {
            // Only look at the kernel's index when the cached one says we are short.
            self.fill_cons_cached = self.xsk.fill.consumer().load(Ordering::Acquire);
            room = self.fill_size - self.fill_prod.wrapping_sub(self.fill_cons_cached);
        }
        let n = room.min(self.free.len() as u32);
        if n == 0 {
            return;
        }
        let ring = self.xsk.fill.descs.cast::<u64>();
        let mask = self.xsk.fill.mask;
        for i in 0..n {
            // `n <= free.len()`, so pop always yields.
            let addr = self.free.pop().unwrap_or_default();
            // SAFETY: the index is masked into the ring, whose slots between our producer and
            // the kernel's consumer are ours to write.
            unsafe {
                ring.add((self.fill_prod.wrapping_add(i) & mask) as usize)
                    .write(addr)
            };
        }
        self.fill_prod = self.fill_prod.wrapping_add(n);
        // Release: the addresses are visible before the kernel sees the new producer.
        self.xsk
            .fill
            .producer()
            .store(self.fill_prod, Ordering::Release);
    }

    /// Wakes the driver when it asked for it (need_wakeup) after we refilled.
    fn kick_if_needed(&mut self) -> io::Result<()> {
        // Full barrier between publishing the FILL producer and reading the flag, so we and
        // the kernel cannot both miss each other's update.
        fence(Ordering::SeqCst);
        if self.xsk.fill.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP == 0 {
            return Ok(());
        }
        // SAFETY: a zero-length non-blocking receive on our socket: only triggers the wakeup.
        let r = unsafe {
            libc::recvfrom(
                self.xsk.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // Transient: the next batch kicks again.
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR | libc::ENETDOWN) => {
                    Ok(())
                }
                _ => Err(e),
            };
        }
        Ok(())
    }

    fn read_counters(&self) -> Option<[u64; super::NCOUNTERS]> {
        self.counters.read(self.queue).ok()
    }
}

impl Capture for XdpSocket {
    fn next_batch(&mut self) -> Result<Option<Batch<'_>>, CaptureError> {
        // The previous batch's borrow has ended: its frames are ours again.
        let mask = self.frame_mask;
        self.free
            .extend(self.descs.iter().map(|d| d.offset as u64 & mask));
        self.descs.clear();
        self.refill();
        if let Err(err) = self.kick_if_needed() {
            return Err(CaptureError::Io {
                source: self.name.clone(),
                err: io::Error::new(err.kind(), format!("AF_XDP wakeup: {err}")),
            });
        }

        let prod = self.xsk.rx.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.rx_cons).min(self.batch);
        if n > 0 {
            // The XDP program stamps each packet (CLOCK_MONOTONIC) in the metadata just
            // before the frame; convert with one realtime/monotonic pair per batch. A packet
            // without a stamp (the driver has no metadata room) gets the batch time.
            let ts_ns = realtime_ns();
            let mono = monotonic_ns();
            let umem = self.umem.map.ptr;
            let ring = self.xsk.rx.descs.cast::<libc::xdp_desc>();
            let umem_len = self.umem.len() as u64;
            for i in 0..n {
                let idx = (self.rx_cons.wrapping_add(i) & self.xsk.rx.mask) as usize;
                // SAFETY: masked index into the RX ring; slots between our consumer and the
                // kernel's producer (read with Acquire above) are filled and ours to read.
                let d = unsafe { ring.add(idx).read() };
                let in_frame = (d.addr & !mask) + d.len as u64 <= self.frame_size as u64;
                if d.addr >= umem_len || !in_frame {
                    // Never trust an offset blindly: a bad one would make Batch::get panic.
                    self.bad_descs += 1;
                    if d.addr < umem_len {
                        self.free.push(d.addr & mask);
                    }
                    continue;
                }
                let mut ts = ts_ns;
                if d.addr & !mask >= META_LEN as u64 {
                    // SAFETY: the 16 bytes before the frame data lie inside the same UMEM
                    // chunk (checked above), which is ours until it goes back to the FILL ring.
                    unsafe {
                        let m = umem.add(d.addr as usize - META_LEN);
                        let magic = m.add(8).cast::<u64>().read_unaligned();
                        if magic == META_MAGIC {
                            let t = m.cast::<u64>().read_unaligned();
                            // Clear the mark so a stale stamp is never read twice.
                            m.add(8).cast::<u64>().write_unaligned(0);
                            ts = ts_ns.wrapping_sub(mono.wrapping_sub(t));
                        }
                    }
                }
                self.descs.push(PacketDesc {
                    offset: d.addr as usize,
                    caplen: d.len,
                    wire_len: d.len,
                    ts_ns: ts,
                    link: LinkType::ETHERNET.0,
                    iface: self.iface_tag,
                });
                self.wire_bytes += d.len as u64;
            }
            self.packets += self.descs.len() as u64;
            self.rx_cons = self.rx_cons.wrapping_add(n);
            // Release: we are done reading the descriptors before the kernel may reuse them.
            self.xsk
                .rx
                .consumer()
                .store(self.rx_cons, Ordering::Release);
        }

        // SAFETY: the UMEM mapping lives as long as `self`, which the batch borrows. The
        // frames named by `descs` are ours until the next call (not in the FILL ring), so the
        // kernel does not write them while the batch is alive; other frames may change, but
        // the batch only exposes the described ranges.
        let data = unsafe { std::slice::from_raw_parts(self.umem.map.ptr, self.umem.len()) };
        Ok(Some(Batch {
            data,
            descs: &self.descs,
        }))
    }

    fn stats(&self) -> CaptureStats {
        let drops = self
            .xsk_statistics()
            .map(|s| s.rx_dropped + s.rx_ring_full)
            .unwrap_or(self.last_live.ring_drops);
        CaptureStats {
            packets: self.packets,
            wire_bytes: self.wire_bytes,
            snaplen_truncated: 0,
            bad_records: self.bad_descs,
            drops,
        }
    }

    fn take_warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.warnings)
    }

    fn source_name(&self) -> &str {
        &self.name
    }
}

impl LiveCapture for XdpSocket {
    fn poll_fd(&self) -> RawFd {
        self.xsk.fd.as_raw_fd()
    }

    fn live_stats(&mut self) -> LiveStats {
        let mut st = self.last_live;
        st.delivered = self.packets;
        if let Some(c) = self.read_counters() {
            let since = |i: usize| c[i].wrapping_sub(self.baseline[i]);
            st.seen = since(C_SEEN);
            st.passed = since(C_PASSED);
            st.filtered = since(C_FILTERED);
        }
        if let Ok(x) = self.xsk_statistics() {
            // Not rx_fill_ring_empty: in copy mode those packets are already in rx_dropped,
            // in zero-copy mode it counts refill attempts (see XskStatistics).
            st.ring_drops = x.rx_dropped + x.rx_ring_full;
            st.invalid = x.rx_invalid_descs + self.bad_descs;
        }
        self.last_live = st;
        st
    }
}
