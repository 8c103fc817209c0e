//! `tapflow-bench engine` and `tapflow-bench file`: the first figures.

use crate::gen::scenario::worst;
use std::process::Command;
use std::time::Instant;
use tapflow_capture::{Batch, PacketDesc};
use tapflow_probe::{Engine, EngineConfig};
use tapflow_record::FlowRecord;

/// Result of one in-memory engine run.
pub struct EngineResult {
    pub packets: u64,
    pub flows: u64,
    pub secs: f64,
    pub records: u64,
}

impl EngineResult {
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.secs / 1e6
    }
    pub fn ns_per_packet(&self) -> f64 {
        self.secs * 1e9 / self.packets as f64
    }
}

/// Packs the worst-case frames into one buffer with descriptors, as a capture backend would.
pub fn build_worst(packets: u64, flows: u64, seed: u64) -> (Vec<u8>, Vec<PacketDesc>) {
    let mut data = Vec::with_capacity(packets as usize * 64);
    let mut descs = Vec::with_capacity(packets as usize);
    for f in worst(packets, flows, seed, 0.2) {
        descs.push(PacketDesc {
            offset: data.len(),
            caplen: f.data.len() as u32,
            wire_len: f.wire_len,
            ts_ns: f.ts_ns,
            link: 1,
            iface: 0,
        });
        data.extend_from_slice(&f.data);
    }
    (data, descs)
}

/// Replays the packets through decoder + engine on this thread, in batches of 256.
pub fn run_engine(data: &[u8], descs: &[PacketDesc], capacity: usize) -> EngineResult {
    let mut e = Engine::new(EngineConfig {
        capacity,
        ..EngineConfig::default()
    });
    let mut records = 0u64;
    let mut sink = |_: &FlowRecord| records += 1;
    let t0 = Instant::now();
    for chunk in descs.chunks(256) {
        e.process_batch(&Batch { data, descs: chunk }, &mut sink);
    }
    let secs = t0.elapsed().as_secs_f64();
    let flows = e.stats().flows_created;
    e.flush(&mut sink);
    EngineResult {
        packets: descs.len() as u64,
        flows,
        secs,
        records,
    }
}

/// Whole-process CPU seconds (user + sys) and peak RSS of a child command.
pub struct ProcResult {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kb: i64,
    pub ok: bool,
}

pub fn time_command(cmd: &mut Command) -> ProcResult {
    let t0 = Instant::now();
    let out = cmd.output();
    let wall = t0.elapsed().as_secs_f64();
    let ok = out
        .map(|o| o.status.success() || o.status.code() == Some(1))
        .unwrap_or(false);
    let ru = rusage_children();
    ProcResult {
        wall,
        cpu: ru.0,
        max_rss_kb: ru.1,
        ok,
    }
}

static LAST_CPU: std::sync::Mutex<f64> = std::sync::Mutex::new(0.0);

/// CPU time of children since the previous call, and the children's max RSS.
fn rusage_children() -> (f64, i64) {
    let mut ru = std::mem::MaybeUninit::<libc_rusage::Rusage>::zeroed();
    // SAFETY: getrusage writes a plain struct we own.
    #[allow(unsafe_code)]
    let ru = unsafe {
        libc_rusage::getrusage(libc_rusage::RUSAGE_CHILDREN, ru.as_mut_ptr());
        ru.assume_init()
    };
    let total = ru.utime.sec as f64
        + ru.utime.usec as f64 / 1e6
        + ru.stime.sec as f64
        + ru.stime.usec as f64 / 1e6;
    let mut last = LAST_CPU.lock().unwrap();
    let d = total - *last;
    *last = total;
    (d, ru.maxrss)
}

/// Minimal getrusage binding (avoids a libc dependency for one call).
mod libc_rusage {
    #[repr(C)]
    pub struct Timeval {
        pub sec: i64,
        pub usec: i64,
    }
    #[repr(C)]
    pub struct Rusage {
        pub utime: Timeval,
        pub stime: Timeval,
        pub maxrss: i64,
        pub rest: [i64; 13],
    }
    pub const RUSAGE_CHILDREN: i32 = -1;
    extern "C" {
        pub fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
}
