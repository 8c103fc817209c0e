//! What live backends (AF_PACKET, AF_XDP, later DAG) add to [`Capture`]: a descriptor to wait
//! on, and the kernel's/NIC's own counters so every packet the wire delivered is accounted for.
//!
//! A live `next_batch` never blocks: it returns an empty batch when nothing is ready, and the
//! worker then waits on [`LiveCapture::poll_fd`] of all its sources at once (one `poll` per idle
//! period, never one per packet). It never returns `Ok(None)`; a live source ends when its owner
//! drops it.

#![allow(unsafe_code)]

use crate::Capture;
use std::io;
use std::os::fd::RawFd;

/// A live capture source owned by one worker thread.
pub trait LiveCapture: Capture + Send {
    /// Becomes readable (POLLIN) when `next_batch` may have packets.
    fn poll_fd(&self) -> RawFd;
    /// Counters from the kernel / NIC / XDP program for this source, cumulative since open.
    /// Reading them may cost a syscall or a map lookup: call it per interval, not per batch.
    fn live_stats(&mut self) -> LiveStats;
}

/// Where every packet the source saw went. Cumulative since the source was opened.
///
/// Identity (exact once traffic stopped and the ring was drained, approximate while packets
/// are in flight): `seen = delivered + ring_drops + filtered + passed + in_ring`, with
/// `delivered` the packets user space took out of the ring (`CaptureStats::packets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets the kernel/NIC/XDP program saw for this source (before any drop).
    pub seen: u64,
    /// Packets user space took out of the ring.
    pub delivered: u64,
    /// Lost because the ring was full (AF_PACKET `tp_drops`; AF_XDP `rx_dropped` +
    /// `rx_ring_full`: in copy mode a fill-ring miss is already counted in `rx_dropped`).
    pub ring_drops: u64,
    /// Dropped on purpose by the configured early-drop prefixes (XDP).
    pub filtered: u64,
    /// Handed on to the kernel stack instead of the socket (XDP: no socket on the queue).
    pub passed: u64,
    /// Ring descriptors the kernel rejected as invalid (AF_XDP).
    pub invalid: u64,
}

impl LiveStats {
    /// Packets seen but not yet accounted for (in the ring, or lost without a counter).
    pub fn unaccounted(&self) -> i64 {
        self.seen as i64
            - (self.delivered + self.ring_drops + self.filtered + self.passed + self.invalid) as i64
    }
}

impl std::ops::AddAssign for LiveStats {
    fn add_assign(&mut self, o: LiveStats) {
        self.seen += o.seen;
        self.delivered += o.delivered;
        self.ring_drops += o.ring_drops;
        self.filtered += o.filtered;
        self.passed += o.passed;
        self.invalid += o.invalid;
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes. Returns whether any is ready.
/// `EINTR` counts as "not ready" so a signal wakes the worker to look at its stop flag.
pub fn wait_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 16];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `pfds[..n]` is a valid, initialised pollfd array for the duration of the call.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// CLOCK_REALTIME in ns since the epoch: used once per idle wake-up to move a worker's timers
/// on when no packets arrive (packets carry their own kernel timestamps).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to `cpu` (capture workers, test and bench senders).
pub fn pin_thread(cpu: usize) -> io::Result<()> {
    // CPU_SET indexes a fixed-size mask: refuse what it cannot hold.
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} out of range"),
        ));
    }
    // SAFETY: a zeroed cpu_set_t is valid and `cpu` is within it (checked above).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Interface index for a name in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface {name:?}"),
        ));
    }
    Ok(i)
}
