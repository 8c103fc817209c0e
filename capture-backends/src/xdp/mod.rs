//! AF_XDP capture: an XDP program (`ebpf/tapflow_xdp.c`, built by build.rs, loaded with aya)
//! steers each RX queue's packets to an AF_XDP socket bound to that queue; each socket has
//! its own UMEM and is read in batches without a syscall per packet.
//!
//! ```text
//! // in the interface's network namespace:
//! let mut prog = XdpProgram::load(&XdpConfig { iface: "eth1".into(), ..Default::default() })?;
//! let socks = (0..prog.queue_count().min(MAX_QUEUES))
//!     .map(|q| prog.open_socket(q, q as u16))
//!     .collect::<Result<Vec<XdpSocket>, _>>()?;
//! // hand each socket to a worker thread; keep `prog` alive (dropping it detaches the program)
//! ```
//!
//! The program is attached through a bpf_link, so it goes away when [`XdpProgram`] drops or the
//! process dies. A tapflow program left behind by a legacy (netlink) attachment is replaced;
//! any other XDP program on the interface makes `load` refuse.

#![allow(unsafe_code)]

mod socket;
mod sys;

pub use socket::{XdpSocket, XskStatistics};

use crate::CaptureWarning;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{MapData, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{loaded_programs, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Weak};

/// The compiled XDP program (an ELF BPF object).
static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tapflow_xdp.o"));

/// The embedded XDP object file, e.g. to attach it by hand with `ip link set ... xdp obj`.
pub fn program_object() -> &'static [u8] {
    PROGRAM_OBJECT
}

/// Kernel name of the program (the C function name); used to recognise our own leftovers.
pub const PROGRAM_NAME: &str = "tapflow_xdp";
/// Queues the program can steer (XSKMAP size); must match MAX_QUEUES in the C source.
pub const MAX_QUEUES: u32 = 64;
/// Counters per queue, in this order (must match the C source).
const NCOUNTERS: usize = 4;
const C_SEEN: usize = 0;
const C_REDIRECTED: usize = 1;
const C_PASSED: usize = 2;
const C_FILTERED: usize = 3;

/// How the AF_XDP sockets get packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XskMode {
    /// The NIC DMAs into the UMEM; `open_socket` fails if the driver cannot.
    ZeroCopy,
    /// The kernel copies each packet into the UMEM (works on every driver).
    Copy,
    /// Zero-copy if the driver can, else copy with a loud warning.
    #[default]
    Auto,
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fast; needs driver support).
    #[default]
    Native,
    /// In the generic network stack (any interface, slower; on veth every packet reports
    /// queue 0).
    Generic,
}

/// AF_XDP capture settings.
#[derive(Clone, Debug)]
pub struct XdpConfig {
    pub iface: String,
    pub mode: XskMode,
    pub attach: AttachMode,
    /// FILL and RX ring entries (power of two). Deep rings absorb consumer stalls: each entry
    /// holds a whole frame, so 4k entries are only milliseconds of traffic.
    pub ring_size: u32,
    /// UMEM frame (chunk) size: a power of two from 2048 to the page size. A packet must fit
    /// in a frame minus the kernel's 256-byte headroom, or it is dropped (`ring_drops`).
    pub frame_size: u32,
    /// UMEM frames per socket; `None` = 2 × `ring_size` (the FILL ring stays full while the
    /// RX ring and the current batch hold the rest).
    pub umem_frames: Option<u32>,
    /// Put the UMEM on 2 MiB pages (falls back to normal pages with a warning).
    pub hugepages: bool,
    /// Packets whose IPv4/IPv6 source or destination is in one of these prefixes are dropped
    /// in the XDP program and counted as `filtered` (e.g. the management network).
    pub drop_prefixes: Vec<(IpAddr, u8)>,
    /// Most packets per batch.
    pub batch: u32,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            iface: String::new(),
            mode: XskMode::Auto,
            attach: AttachMode::Native,
            ring_size: 16384,
            frame_size: 2048,
            umem_frames: None,
            hugepages: false,
            drop_prefixes: Vec::new(),
            batch: 256,
        }
    }
}

impl XdpConfig {
    /// UMEM frames per socket after applying the default.
    pub fn frames(&self) -> u32 {
        self.umem_frames
            .unwrap_or_else(|| self.ring_size.saturating_mul(2))
    }

    fn validate(&self) -> Result<(), String> {
        if self.iface.is_empty() {
            return Err("no interface given".into());
        }
        if !self.ring_size.is_power_of_two() || !(64..=1 << 20).contains(&self.ring_size) {
            return Err(format!(
                "ring_size {} must be a power of two from 64 to 1048576",
                self.ring_size
            ));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
        if !self.frame_size.is_power_of_two() || !(2048..=page).contains(&self.frame_size) {
            return Err(format!(
                "frame_size {} must be a power of two from 2048 to the page size {page}",
                self.frame_size
            ));
        }
        let frames = self.frames();
        if frames < self.ring_size {
            return Err(format!(
                "umem_frames {frames} is smaller than ring_size {}",
                self.ring_size
            ));
        }
        if frames as u64 * self.frame_size as u64 > 1 << 36 {
            return Err(format!(
                "UMEM of {frames} × {} bytes is too large",
                self.frame_size
            ));
        }
        if self.batch == 0 || self.batch > self.ring_size {
            return Err(format!(
                "batch {} must be from 1 to ring_size {}",
                self.batch, self.ring_size
            ));
        }
        for &(addr, len) in &self.drop_prefixes {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(format!("drop prefix {addr}/{len}: length over {max}"));
            }
        }
        Ok(())
    }
}

/// What went wrong, for callers that react differently (e.g. retry in copy mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XdpErrorKind {
    /// Invalid configuration.
    Config,
    /// The interface does not exist (in the calling thread's network namespace).
    NoInterface,
    /// Another XDP program (or a live tapflow) holds the interface, or the queue is taken.
    Busy,
    /// `XskMode::ZeroCopy` and the driver cannot do zero-copy.
    ZeroCopyUnsupported,
    /// Loading or attaching the XDP program, or updating its maps.
    Program,
    /// Creating, sizing, mapping or binding the AF_XDP socket.
    Socket,
}

/// An AF_XDP setup error: always names the interface, the queue (or the whole program) and
/// the step that failed.
#[derive(Debug)]
pub struct XdpError {
    pub iface: String,
    /// `None` for program-wide steps (load, attach, maps).
    pub queue: Option<u32>,
    pub kind: XdpErrorKind,
    /// What failed, e.g. "bind" or "attach the XDP program in native mode".
    pub what: String,
    source: Option<io::Error>,
}

impl XdpError {
    fn new(
        iface: &str,
        queue: Option<u32>,
        kind: XdpErrorKind,
        what: String,
        source: Option<io::Error>,
    ) -> XdpError {
        XdpError {
            iface: iface.to_string(),
            queue,
            kind,
            what,
            source,
        }
    }

    /// The OS error number behind the failure, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(|e| e.raw_os_error())
    }
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.queue {
            Some(q) => write!(f, "AF_XDP on {} queue {q}: {}", self.iface, self.what)?,
            None => write!(f, "AF_XDP on {} (all queues): {}", self.iface, self.what)?,
        }
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for XdpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// An error and its sources on one line (aya's verifier log hides in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

// Sockets move to worker threads; the program may be made on a setup thread in another netns.
const _: () = {
    const fn send<T: Send>() {}
    send::<XdpSocket>();
    send::<XdpProgram>();
};

/// The per-CPU counter map, shared by the program and its sockets (reads only).
pub(crate) struct CounterMap(PerCpuArray<MapData, u64>);

impl CounterMap {
    /// Counters of `queue` summed over CPUs (queues past MAX_QUEUES share the last slot).
    fn read(&self, queue: u32) -> Result<[u64; NCOUNTERS], aya::maps::MapError> {
        let slot = queue.min(MAX_QUEUES);
        let mut out = [0u64; NCOUNTERS];
        for (i, o) in out.iter_mut().enumerate() {
            let idx = slot * NCOUNTERS as u32 + i as u32;
            let vals = self.0.get(&idx, 0)?;
            *o = vals.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        }
        Ok(out)
    }
}

/// What the XDP program did with one queue's packets, since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    pub seen: u64,
    /// Handed to the queue's socket (the socket may still drop them: see its statistics).
    pub redirected: u64,
    /// No socket on the queue: passed on to the kernel stack.
    pub passed: u64,
    /// Dropped by the drop prefixes.
    pub filtered: u64,
}

/// How the program is attached, so it is removed the same way.
enum Attachment {
    /// Detached when the link fd closes (drop, or process death).
    Link(#[allow(dead_code)] FdLink),
    /// Kernel without XDP bpf_link: aya fell back to netlink; removed explicitly on drop
    /// through this socket (opened in the interface's netns).
    Netlink { nl: sys::Netlink, mode_flags: u32 },
}

/// The loaded and attached XDP program for one interface. Dropping it detaches the program;
/// sockets opened from it stay valid but receive nothing more.
pub struct XdpProgram {
    /// First field: dropped (detached) before the program and maps go.
    attachment: Option<Attachment>,
    cfg: XdpConfig,
    ifindex: u32,
    queues: u32,
    driver: String,
    prog_id: u32,
    xsks: XskMap<MapData>,
    counters: Arc<CounterMap>,
    /// One token per queue with an open socket (the socket holds the Arc).
    open_queues: Vec<Weak<()>>,
    warnings: Vec<String>,
    zc_fallback_warned: bool,
    /// Network namespace `load` ran in: sockets must be bound there too.
    netns: Option<(u64, u64)>,
    ebpf: Ebpf,
}

impl XdpProgram {
    /// Loads the program, fills its drop-prefix maps and attaches it to `cfg.iface` (in the
    /// calling thread's network namespace).
    pub fn load(cfg: &XdpConfig) -> Result<XdpProgram, XdpError> {
        let iface = cfg.iface.as_str();
        let err =
            |kind, what: String, e: Option<io::Error>| XdpError::new(iface, None, kind, what, e);
        cfg.validate()
            .map_err(|m| err(XdpErrorKind::Config, m, None))?;
        let ifindex = crate::live::ifindex(iface).map_err(|e| {
            err(
                XdpErrorKind::NoInterface,
                "look up the interface".into(),
                Some(e),
            )
        })?;
        let netns = sys::current_netns().ok();
        let mut nl = sys::Netlink::open().map_err(|e| {
            err(
                XdpErrorKind::Program,
                "open an rtnetlink socket".into(),
                Some(e),
            )
        })?;
        let link = sys::link_info(&mut nl, ifindex).map_err(|e| {
            err(
                XdpErrorKind::Program,
                "query the interface over rtnetlink".into(),
                Some(e),
            )
        })?;
        let mut warnings = Vec::new();
        for a in &link.xdp {
            remove_stale(&mut nl, iface, ifindex, a, &mut warnings)?;
        }
        let queues = sys::rx_channels(iface)
            .or(link.num_rx_queues)
            .unwrap_or(1)
            .max(1);
        let driver = sys::driver_name(iface).unwrap_or_else(|| "(unknown)".into());
        if queues > MAX_QUEUES {
            warnings.push(format!(
                "*** {iface} has {queues} RX queues but tapflow steers only the first \
                 {MAX_QUEUES}: packets on the others go to the kernel stack, uncaptured \
                 (reduce the queue count with ethtool -L) ***"
            ));
        }

        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(addr, len) in &cfg.drop_prefixes {
            match addr {
                IpAddr::V4(a) => {
                    let bits = u32::from(a) & u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
                    v4.push(Key::new(len as u32, bits.to_be_bytes()));
                }
                IpAddr::V6(a) => {
                    let m = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                    let bits = u128::from(a) & m;
                    v6.push(Key::new(len as u32, bits.to_be_bytes()));
                }
            }
        }
        let (f4, f6) = (u32::from(!v4.is_empty()), u32::from(!v6.is_empty()));
        let mut ebpf = EbpfLoader::new()
            .override_global("tf_filter_v4", &f4, true)
            .override_global("tf_filter_v6", &f6, true)
            .load(PROGRAM_OBJECT)
            .map_err(|e| {
                err(
                    XdpErrorKind::Program,
                    format!("load the XDP object: {}", chain(&e)),
                    None,
                )
            })?;
        let map_err = |name: &str, e: &dyn std::error::Error| {
            err(
                XdpErrorKind::Program,
                format!("map {name}: {}", chain(e)),
                None,
            )
        };
        let missing = |name: &str| {
            err(
                XdpErrorKind::Program,
                format!("map {name} missing from the XDP object"),
                None,
            )
        };
        {
            let m = ebpf
                .map_mut("tf_drop_v4")
                .ok_or_else(|| missing("tf_drop_v4"))?;
            let mut t: LpmTrie<_, [u8; 4], u8> =
                LpmTrie::try_from(m).map_err(|e| map_err("tf_drop_v4", &e))?;
            for k in &v4 {
                t.insert(k, 1, 0).map_err(|e| map_err("tf_drop_v4", &e))?;
            }
        }
        {
            let m = ebpf
                .map_mut("tf_drop_v6")
                .ok_or_else(|| missing("tf_drop_v6"))?;
            let mut t: LpmTrie<_, [u8; 16], u8> =
                LpmTrie::try_from(m).map_err(|e| map_err("tf_drop_v6", &e))?;
            for k in &v6 {
                t.insert(k, 1, 0).map_err(|e| map_err("tf_drop_v6", &e))?;
            }
        }
        let xsks = ebpf
            .take_map("xsks_map")
            .ok_or_else(|| missing("xsks_map"))?;
        let xsks: XskMap<MapData> = XskMap::try_from(xsks).map_err(|e| map_err("xsks_map", &e))?;
        let counters = ebpf
            .take_map("tf_counters")
            .ok_or_else(|| missing("tf_counters"))?;
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(counters).map_err(|e| map_err("tf_counters", &e))?;

        let (mode, mode_name, mode_flags) = match cfg.attach {
            AttachMode::Native => (XdpMode::Driver, "native", sys::XDP_FLAGS_DRV_MODE),
            AttachMode::Generic => (XdpMode::Skb, "generic", sys::XDP_FLAGS_SKB_MODE),
        };
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| {
                err(
                    XdpErrorKind::Program,
                    format!("program {PROGRAM_NAME} missing from the XDP object"),
                    None,
                )
            })?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                err(XdpErrorKind::Program, chain(&e), None)
            })?;
        prog.load().map_err(|e| {
            err(
                XdpErrorKind::Program,
                format!("load {PROGRAM_NAME} into the kernel: {}", chain(&e)),
                None,
            )
        })?;
        let prog_id = prog.info().map(|i| i.id()).unwrap_or(0);
        let link_id = prog.attach_to_if_index(ifindex, mode).map_err(|e| {
            let busy = matches!(&e, aya::programs::ProgramError::SyscallError(s)
                if matches!(s.io_error.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)));
            let kind = if busy {
                XdpErrorKind::Busy
            } else {
                XdpErrorKind::Program
            };
            let hint = if cfg.attach == AttachMode::Native {
                " (if the driver has no native XDP support, use generic mode)"
            } else {
                ""
            };
            err(
                kind,
                format!(
                    "attach the XDP program in {mode_name} mode{hint}: {}",
                    chain(&e)
                ),
                None,
            )
        })?;
        let link = prog.take_link(link_id).map_err(|e| {
            err(
                XdpErrorKind::Program,
                format!("take the XDP link: {}", chain(&e)),
                None,
            )
        })?;
        let attachment = match FdLink::try_from(link) {
            Ok(fd_link) => Attachment::Link(fd_link),
            Err(_) => {
                // aya only falls back to netlink when the kernel has no XDP bpf_link (< 5.9).
                warnings.push(format!(
                    "{iface}: XDP program attached through netlink (kernel without XDP bpf_link): \
                     it stays on the interface if this process dies; the next start replaces it"
                ));
                Attachment::Netlink { nl, mode_flags }
            }
        };
        Ok(XdpProgram {
            attachment: Some(attachment),
            cfg: cfg.clone(),
            ifindex,
            queues,
            driver,
            prog_id,
            xsks,
            counters: Arc::new(CounterMap(counters)),
            open_queues: (0..queues.min(MAX_QUEUES)).map(|_| Weak::new()).collect(),
            warnings,
            zc_fallback_warned: false,
            netns,
            ebpf,
        })
    }

    /// Creates the UMEM and rings for `queue`, binds an AF_XDP socket to it and points the
    /// program's XSKMAP slot at it. `iface_tag` goes into every packet's `iface`. Call it in
    /// the network namespace `load` ran in; the socket then works from any thread.
    pub fn open_socket(&mut self, queue: u32, iface_tag: u16) -> Result<XdpSocket, XdpError> {
        let iface = self.cfg.iface.clone();
        let err = |kind, what: String, e: Option<io::Error>| {
            XdpError::new(&iface, Some(queue), kind, what, e)
        };
        // bind() resolves the ifindex in the calling thread's namespace: elsewhere it would
        // name another interface (or none).
        if self.netns.is_some() && sys::current_netns().ok() != self.netns {
            return Err(err(
                XdpErrorKind::Config,
                "open_socket called outside the network namespace the program was loaded in".into(),
                None,
            ));
        }
        if queue >= self.queues.min(MAX_QUEUES) {
            return Err(err(
                XdpErrorKind::Config,
                format!(
                    "no such queue: the interface has {} RX queue(s), tapflow steers at most {MAX_QUEUES}",
                    self.queues
                ),
                None,
            ));
        }
        let slot = &mut self.open_queues[queue as usize];
        if slot.upgrade().is_some() {
            return Err(err(
                XdpErrorKind::Busy,
                "the queue already has an open socket".into(),
                None,
            ));
        }
        let token = Arc::new(());
        *slot = Arc::downgrade(&token);

        let frames = self.cfg.frames() as usize;
        let len = frames * self.cfg.frame_size as usize;
        let (umem, huge_err) = socket::Umem::new(len, self.cfg.hugepages).map_err(|e| {
            err(
                XdpErrorKind::Socket,
                format!("allocate the {len}-byte UMEM"),
                Some(e),
            )
        })?;
        let source = format!("xdp:{iface}/{queue}");
        let warn = |message: String| CaptureWarning {
            source: source.clone(),
            offset: 0,
            message,
        };
        let mut warnings: Vec<CaptureWarning> = self.warnings.drain(..).map(&warn).collect();
        if let Some(e) = huge_err {
            warnings.push(warn(format!(
                "no 2 MiB hugepages for the {} MiB UMEM ({e}); using normal pages \
                 (reserve pages with /proc/sys/vm/nr_hugepages)",
                len >> 20
            )));
        }
        let params = socket::XskParams {
            iface: &iface,
            ifindex: self.ifindex,
            queue,
            ring_size: self.cfg.ring_size,
            frame_size: self.cfg.frame_size,
        };
        let bound = socket::bind(&umem, &params, self.cfg.mode, &self.driver)?;
        let fell_back = bound.zc_error.is_some();
        if let Some(e) = &bound.zc_error {
            if !self.zc_fallback_warned {
                self.zc_fallback_warned = true;
                warnings.push(warn(format!(
                    "*** ZERO-COPY UNAVAILABLE: driver {} cannot do AF_XDP zero-copy on {iface} \
                     ({e}); capturing in COPY mode, which costs a copy per packet ***",
                    self.driver
                )));
            }
        }
        // Before the XSKMAP entry exists every packet of the queue is counted `passed`, so the
        // baseline taken here keeps seen = delivered + drops + filtered + passed exact.
        let baseline = self.counters.read(queue).map_err(|e| {
            err(
                XdpErrorKind::Program,
                format!("read map tf_counters: {}", chain(&e)),
                None,
            )
        })?;
        let fd = bound.fd();
        let parts = socket::SocketParts {
            iface: iface.clone(),
            queue,
            iface_tag,
            batch: self.cfg.batch,
            frame_size: self.cfg.frame_size,
            counters: self.counters.clone(),
            queue_token: token,
        };
        let sock = XdpSocket::new(bound, umem, parts, fell_back, baseline, warnings);
        // Last step: the kernel only accepts a bound socket in the map.
        self.xsks.set(queue, fd, 0).map_err(|e| {
            err(
                XdpErrorKind::Program,
                format!("set XSKMAP entry: {}", chain(&e)),
                None,
            )
        })?;
        Ok(sock)
    }

    /// RX queues of the interface (sockets can be opened on `0..queue_count().min(MAX_QUEUES)`).
    pub fn queue_count(&self) -> u32 {
        self.queues
    }
    pub fn iface(&self) -> &str {
        &self.cfg.iface
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// Driver name as ethtool reports it ("(unknown)" if it does not).
    pub fn driver(&self) -> &str {
        &self.driver
    }
    /// The kernel's id of the loaded program (as `bpftool prog` shows it).
    pub fn program_id(&self) -> u32 {
        self.prog_id
    }
    pub fn attach_mode(&self) -> AttachMode {
        self.cfg.attach
    }
    pub fn config(&self) -> &XdpConfig {
        &self.cfg
    }

    /// What the program did with `queue`'s packets since it was loaded, summed over CPUs.
    pub fn counters(&self, queue: u32) -> Result<XdpCounters, XdpError> {
        let c = self.counters.read(queue).map_err(|e| {
            XdpError::new(
                &self.cfg.iface,
                Some(queue),
                XdpErrorKind::Program,
                format!("read map tf_counters: {}", chain(&e)),
                None,
            )
        })?;
        Ok(XdpCounters {
            seen: c[C_SEEN],
            redirected: c[C_REDIRECTED],
            passed: c[C_PASSED],
            filtered: c[C_FILTERED],
        })
    }

    /// Warnings from `load` not yet handed on (the next `open_socket` passes them to its
    /// socket's `take_warnings`).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Some(Attachment::Netlink { mut nl, mode_flags }) = self.attachment.take() {
            // Only remove it if it is still ours (expected fd).
            if let Some(Ok(fd)) = self
                .ebpf
                .program(PROGRAM_NAME)
                .and_then(|p| <&Xdp>::try_from(p).ok())
                .map(|p| p.fd())
            {
                let _ = sys::detach_legacy(&mut nl, self.ifindex, mode_flags, fd.as_fd());
            }
        }
        // A bpf_link attachment detaches when its fd closes (field drop).
    }
}

/// Deals with an XDP program already on the interface: a tapflow program attached the legacy
/// way (a crashed old version, or by hand) is removed; anything else is refused.
fn remove_stale(
    nl: &mut sys::Netlink,
    iface: &str,
    ifindex: u32,
    a: &sys::Attached,
    warnings: &mut Vec<String>,
) -> Result<(), XdpError> {
    let info = loaded_programs().find_map(|p| p.ok().filter(|p| p.id() == a.prog_id));
    let name = info
        .as_ref()
        .and_then(|p| p.name_as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let busy = |what: String| XdpError::new(iface, None, XdpErrorKind::Busy, what, None);
    if name != PROGRAM_NAME {
        return Err(busy(format!(
            "the interface already has XDP program id {} \"{name}\" ({} mode); \
             remove it first (e.g. `ip link set dev {iface} xdp off`)",
            a.prog_id,
            a.mode_name()
        )));
    }
    let fd = info.and_then(|p| p.fd().ok()).ok_or_else(|| {
        busy(format!(
            "cannot open the tapflow XDP program id {} already on the interface",
            a.prog_id
        ))
    })?;
    match sys::detach_legacy(nl, ifindex, a.mode_flags, fd.as_fd()) {
        Ok(()) => {
            warnings.push(format!(
                "{iface}: removed a stale tapflow XDP program (id {}, {} mode, attached through \
                 netlink) before attaching a new one",
                a.prog_id,
                a.mode_name()
            ));
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(busy(format!(
            "tapflow XDP program id {} is attached through a live bpf_link: another tapflow \
             process is capturing on this interface",
            a.prog_id
        ))),
        Err(e) => Err(XdpError::new(
            iface,
            None,
            XdpErrorKind::Busy,
            format!(
                "remove the stale tapflow XDP program id {} ({} mode)",
                a.prog_id,
                a.mode_name()
            ),
            Some(e),
        )),
    }
}
