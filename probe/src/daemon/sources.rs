//! Opens the capture sockets of every worker.
//!
//! Worker `i` gets one socket on each interface: NIC queue `i` (AF_XDP) or fanout member `i`
//! (AF_PACKET). Both legs of a tap must send a flow to the same worker, or its two directions
//! would land in different tables: AF_PACKET's fanout hash is flow-symmetric and every group
//! is joined in worker order, so member `i` of each leg's group gets the same flows; for AF_XDP
//! the NICs need the same symmetric RSS key (`scripts/tune-nic.sh`).

use std::any::Any;

use tapflow_capture::afpacket::{AfPacket, AfPacketConfig, FanoutHash};
use tapflow_capture::xdp::{AttachMode, XdpConfig, XdpProgram, XskMode};
use tapflow_capture::{Capture, LiveCapture};

use super::config::{Backend, Config, XdpAttach, XdpMode};
use super::log;

pub struct Opened {
    pub per_worker: Vec<Vec<Box<dyn LiveCapture>>>,
    /// What must live as long as the sockets (the XDP programs).
    pub keep: Vec<Box<dyn Any + Send>>,
    pub backend: &'static str,
    pub describe: String,
    pub zero_copy: bool,
    pub copy_fallback: bool,
}

/// Receive queues of an interface (1 if sysfs does not say).
pub fn rx_queues(iface: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0)
        .max(1)
}

pub fn open(cfg: &Config) -> Result<Opened, String> {
    let workers = cfg.workers.unwrap_or_else(|| rx_queues(&cfg.interfaces[0]));
    match cfg.backend {
        Backend::Afpacket => open_afpacket(cfg, workers),
        Backend::Xdp => open_xdp(cfg, workers),
        Backend::Dag => open_dag(cfg, workers),
    }
}

/// Worker `w` reads receive stream `2w` of every DAG device (receive streams are even).
#[cfg(feature = "dag")]
fn open_dag(cfg: &Config, workers: usize) -> Result<Opened, String> {
    use tapflow_capture::dag::DagCapture;
    let mut per_worker: Vec<Vec<Box<dyn LiveCapture>>> = (0..workers).map(|_| Vec::new()).collect();
    for (w, srcs) in per_worker.iter_mut().enumerate() {
        for dev in &cfg.interfaces {
            let s = DagCapture::open(dev, 2 * w as u32, &cfg.dag_config)
                .map_err(|e| format!("worker {w}: {e}"))?;
            srcs.push(Box::new(s));
        }
    }
    Ok(Opened {
        per_worker,
        keep: Vec::new(),
        backend: "dag",
        describe: format!("Endace DAG, {workers} receive stream(s) per device"),
        zero_copy: true,
        copy_fallback: false,
    })
}

#[cfg(not(feature = "dag"))]
fn open_dag(_cfg: &Config, _workers: usize) -> Result<Opened, String> {
    Err("backend dag: this tapflow-probe was built without DAG support (cargo feature dag)".into())
}

fn open_afpacket(cfg: &Config, workers: usize) -> Result<Opened, String> {
    // Fanout group ids are per network namespace; derive them from the pid so two probes on
    // one host do not join each other's groups.
    let base = (std::process::id() as u16).wrapping_mul(8);
    let mut per_worker: Vec<Vec<Box<dyn LiveCapture>>> = (0..workers).map(|_| Vec::new()).collect();
    for (w, srcs) in per_worker.iter_mut().enumerate() {
        for (leg, iface) in cfg.interfaces.iter().enumerate() {
            let mut c = AfPacketConfig {
                iface: iface.clone(),
                fanout: (workers > 1).then(|| base.wrapping_add(leg as u16)),
                // Address-only and symmetric: every fragment of a datagram, and both
                // directions, reach the same worker, and fragments stay as on the wire (the
                // kernel's 5-tuple hash needs DEFRAG, which reassembles them).
                fanout_hash: FanoutHash::HostPair,
                snaplen: cfg.snaplen,
                iface_tag: leg as u16,
                ..AfPacketConfig::default()
            };
            if cfg.afpacket_blocks > 0 {
                c.block_count = cfg.afpacket_blocks;
            }
            let s = AfPacket::open(&c).map_err(|e| format!("worker {w}: {e}"))?;
            srcs.push(Box::new(s));
        }
    }
    Ok(Opened {
        per_worker,
        keep: Vec::new(),
        backend: "afpacket",
        describe: format!(
            "AF_PACKET TPACKET_V3{} (snaplen {})",
            if workers > 1 {
                ", host-pair fanout"
            } else {
                ""
            },
            cfg.snaplen
        ),
        zero_copy: false,
        copy_fallback: false,
    })
}

fn open_xdp(cfg: &Config, workers: usize) -> Result<Opened, String> {
    let mut per_worker: Vec<Vec<Box<dyn LiveCapture>>> = (0..workers).map(|_| Vec::new()).collect();
    let mut keep: Vec<Box<dyn Any + Send>> = Vec::new();
    let mut zero_copy = true;
    let mut fell_back = false;
    for (leg, iface) in cfg.interfaces.iter().enumerate() {
        let mut xc = XdpConfig {
            iface: iface.clone(),
            mode: match cfg.xdp_mode {
                XdpMode::Auto => XskMode::Auto,
                XdpMode::Copy => XskMode::Copy,
                XdpMode::ZeroCopy => XskMode::ZeroCopy,
            },
            attach: match cfg.xdp_attach {
                XdpAttach::Native => AttachMode::Native,
                XdpAttach::Generic => AttachMode::Generic,
            },
            hugepages: cfg.hugepages,
            drop_prefixes: cfg.drop_prefixes.iter().map(|p| (p.addr, p.len)).collect(),
            ..XdpConfig::default()
        };
        if cfg.xdp_ring > 0 {
            xc.ring_size = cfg.xdp_ring;
        }
        let mut prog = XdpProgram::load(&xc).map_err(|e| e.to_string())?;
        for (q, srcs) in per_worker.iter_mut().enumerate() {
            let mut s = prog
                .open_socket(q as u32, leg as u16)
                .map_err(|e| e.to_string())?;
            for w in s.take_warnings() {
                log(&format!("warning: {w}"));
            }
            zero_copy &= s.zero_copy();
            fell_back |= s.fell_back();
            srcs.push(Box::new(s));
        }
        keep.push(Box::new(prog));
    }
    if fell_back {
        log("*** AF_XDP: zero-copy is not available on this driver; running in COPY mode (slower). Status records carry the fallback flag. ***");
    }
    Ok(Opened {
        per_worker,
        keep,
        backend: "xdp",
        describe: format!(
            "AF_XDP {} mode, {} XDP",
            if zero_copy { "zero-copy" } else { "copy" },
            match cfg.xdp_attach {
                XdpAttach::Native => "native",
                XdpAttach::Generic => "generic",
            }
        ),
        zero_copy,
        copy_fallback: fell_back,
    })
}
