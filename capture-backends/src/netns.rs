//! Network-namespace test labs: a capture namespace and a sender namespace joined by veth pairs,
//! so live backends are tested on real kernel sockets without touching the host's interfaces.
//!
//! Used by the tests of this crate, the probe and the `tests` crate. Everything it creates has a
//! unique name (prefix, pid, counter) and is deleted when the [`Lab`] drops (deleting a netns
//! deletes its veth ends).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why netns tests cannot run here, or `Ok` if they can (root, `ip`, netns support).
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("iproute2 `ip` not found".into()),
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err("kernel without network namespaces".into());
    }
    Ok(())
}

/// Prints a loud skip line and returns true when netns tests cannot run.
pub fn skip_unless_available(test: &str) -> bool {
    match available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("*** SKIPPED {test}: live capture test needs root and netns ({why}) ***");
            true
        }
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn sysctl_in(ns: &str, kv: &str) -> io::Result<()> {
    ip(&["netns", "exec", ns, "sysctl", "-qw", kv])
}

/// One veth pair: `rx_if` lives in the capture namespace, `tx_if` in the sender namespace.
#[derive(Clone, Debug)]
pub struct Leg {
    pub rx_if: String,
    pub tx_if: String,
}

/// A capture namespace and a sender namespace with `legs` veth pairs between them.
#[derive(Debug)]
pub struct Lab {
    pub rx_ns: String,
    pub tx_ns: String,
    pub legs: Vec<Leg>,
}

impl Lab {
    /// Creates the namespaces and `legs` veth pairs with `queues` rx/tx queues each, all up,
    /// IPv6 off (no ND/MLD noise) and no addresses on the capture side.
    pub fn new(legs: usize, queues: u32) -> io::Result<Lab> {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            rx_ns: format!("tfrx{id}"),
            tx_ns: format!("tftx{id}"),
            legs: Vec::new(),
        };
        // From here on Drop cleans up whatever was made.
        let mut lab = lab;
        for ns in [lab.rx_ns.clone(), lab.tx_ns.clone()] {
            ip(&["netns", "add", &ns])?;
            sysctl_in(&ns, "net.ipv6.conf.all.disable_ipv6=1")?;
            sysctl_in(&ns, "net.ipv6.conf.default.disable_ipv6=1")?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let q = queues.to_string();
        for i in 0..legs {
            // Interface names are at most 15 bytes.
            let leg = Leg {
                rx_if: format!("tr{id}{i}"),
                tx_if: format!("tt{id}{i}"),
            };
            ip(&[
                "link",
                "add",
                &leg.rx_if,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &leg.tx_if,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ])?;
            let r = ip(&["link", "set", &leg.rx_if, "netns", &lab.rx_ns])
                .and_then(|_| ip(&["link", "set", &leg.tx_if, "netns", &lab.tx_ns]));
            if let Err(e) = r {
                let _ = ip(&["link", "del", &leg.rx_if]);
                return Err(e);
            }
            // Room for the test captures' largest frames (tunnels, VLANs) and still within what
            // native XDP on veth allows (about 3.5 KB with 4 KiB pages).
            ip(&[
                "-n", &lab.rx_ns, "link", "set", &leg.rx_if, "mtu", "3000", "up",
            ])?;
            ip(&[
                "-n", &lab.tx_ns, "link", "set", &leg.tx_if, "mtu", "3000", "up",
            ])?;
            lab.legs.push(leg);
        }
        lab.wait_links_up()?;
        Ok(lab)
    }

    /// Waits until both ends of every leg are operationally up. The kernel turns the carrier on
    /// asynchronously (linkwatch); until then a device's qdisc is `noop`, which drops whatever
    /// is sent on it while `sendto` still succeeds, so a test sending at once could lose frames.
    fn wait_links_up(&self) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for leg in &self.legs {
            for (ns, ifname) in [(&self.rx_ns, &leg.rx_if), (&self.tx_ns, &leg.tx_if)] {
                loop {
                    let out = Command::new("ip")
                        .args(["-n", ns, "-o", "link", "show", "dev", ifname])
                        .output()?;
                    let s = String::from_utf8_lossy(&out.stdout);
                    if s.contains("state UP") && !s.contains("qdisc noop") {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(io::Error::other(format!(
                            "{ifname} in {ns} did not come up: {}",
                            s.trim()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on a thread that has entered the capture namespace (sockets, interface
    /// indexes and XDP attachments made there belong to that namespace).
    pub fn in_rx<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        in_netns(&self.rx_ns, f)
    }

    /// Sends `frames` out of leg `leg`'s sender end (they arrive on its `rx_if`).
    pub fn send(&self, leg: usize, frames: &[Vec<u8>], opts: SendOptions) -> io::Result<u64> {
        let ifname = self.legs[leg].tx_if.clone();
        in_netns(&self.tx_ns, move || send_frames(&ifname, frames, opts))?
    }
}

impl Lab {
    /// Sends frames in the given order, each out of the sender end of its leg: the two
    /// directions of a tap interleaved as on the wire.
    pub fn send_interleaved(&self, frames: &[(usize, Vec<u8>)]) -> io::Result<u64> {
        let names: Vec<String> = self.legs.iter().map(|l| l.tx_if.clone()).collect();
        in_netns(&self.tx_ns, move || -> io::Result<u64> {
            let socks = names
                .iter()
                .map(|n| PacketSender::open(n, SendOptions::default()))
                .collect::<io::Result<Vec<_>>>()?;
            let mut sent = 0;
            for (leg, f) in frames {
                socks[*leg].send(f)?;
                sent += 1;
            }
            Ok(sent)
        })?
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.rx_ns, &self.tx_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a new thread inside network namespace `ns` (a name under /run/netns).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path)?;
            // SAFETY: a valid netns fd; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
    })
}

/// How [`send_frames`] sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// Pin the sending thread to this CPU and bypass the qdisc, so on a multi-queue veth every
    /// frame goes out of (and arrives on) queue `cpu % queues`. `None`: the kernel's flow hash
    /// picks the queue.
    pub cpu: Option<usize>,
    /// Pause this many microseconds every 64 frames (0 = as fast as the socket takes them).
    pub pace_us: u64,
}

/// An AF_PACKET socket bound to one interface, for sending raw frames.
pub struct PacketSender {
    fd: CloseFd,
    sll: libc::sockaddr_ll,
}

impl PacketSender {
    /// Opens the sender on `ifname` (in the calling thread's namespace).
    pub fn open(ifname: &str, opts: SendOptions) -> io::Result<PacketSender> {
        let idx = crate::live::ifindex(ifname)?;
        // SAFETY: plain socket syscalls on a descriptor this value owns.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = CloseFd(fd);
            if opts.cpu.is_some() {
                let one: libc::c_int = 1;
                libc::setsockopt(
                    fd.0,
                    libc::SOL_PACKET,
                    libc::PACKET_QDISC_BYPASS,
                    &one as *const _ as *const libc::c_void,
                    std::mem::size_of_val(&one) as libc::socklen_t,
                );
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = idx as i32;
            sll.sll_halen = 6;
            Ok(PacketSender { fd, sll })
        }
    }

    /// Sends one frame; a full device queue is waited out, not dropped.
    pub fn send(&self, f: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `f` and `sll` are valid for the call.
            let r = unsafe {
                libc::sendto(
                    self.fd.0,
                    f.as_ptr() as *const libc::c_void,
                    f.len(),
                    0,
                    &self.sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                _ => return Err(e),
            }
        }
    }
}

/// Sends raw Ethernet frames out of `ifname` (in the calling thread's namespace) through an
/// AF_PACKET socket. Returns the number sent; a full device queue is waited out, not dropped.
pub fn send_frames(ifname: &str, frames: &[Vec<u8>], opts: SendOptions) -> io::Result<u64> {
    if let Some(cpu) = opts.cpu {
        crate::live::pin_thread(cpu)?;
    }
    let s = PacketSender::open(ifname, opts)?;
    let mut sent = 0u64;
    for (i, f) in frames.iter().enumerate() {
        s.send(f)?;
        sent += 1;
        if opts.pace_us > 0 && i % 64 == 63 {
            std::thread::sleep(std::time::Duration::from_micros(opts.pace_us));
        }
    }
    Ok(sent)
}

struct CloseFd(libc::c_int);
impl Drop for CloseFd {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this guard.
        unsafe { libc::close(self.0) };
    }
}
