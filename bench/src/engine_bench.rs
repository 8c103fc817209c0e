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

/// The IB/RoCEv2 worst case ([`crate::gen::ib::worst`]) packed like [`build_worst`].
pub fn build_ib_worst(packets: u64, flows: u64, roce: bool) -> (Vec<u8>, Vec<PacketDesc>) {
    let mut data = Vec::with_capacity(packets as usize * 64);
    let mut descs = Vec::with_capacity(packets as usize);
    let link = if roce { 1 } else { 247 };
    for (i, f) in crate::gen::ib::worst(packets, flows, roce)
        .into_iter()
        .enumerate()
    {
        descs.push(PacketDesc {
            offset: data.len(),
            caplen: f.len() as u32,
            wire_len: f.len() as u32,
            ts_ns: 1_700_000_000_000_000_000 + i as u64 * 67,
            link,
            iface: 0,
        });
        data.extend_from_slice(&f);
    }
    (data, descs)
}

/// `tapflow-bench dump-ib`: one line per packet of `path`, tab-separated, in the order of
/// `DUMP_FIELDS` (tshark field names), decoded by the probe's decoder. Non-IB packets give
/// only their time, undecodable ones `malformed`; numbers are decimal (ImmDt and IETH hex, as
/// tshark prints byte fields), GIDs IPv6 text.
pub fn dump_ib(path: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use tapflow_probe::decode::{ib::ext, Decoder};
    let mut cap = tapflow_capture::file::open(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut dec = Decoder::new(64);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    while let Some(b) = cap.next_batch().map_err(|e| anyhow::anyhow!("{e}"))? {
        for p in b.iter() {
            let line = match dec.dissect_ib(p.data, p.wire_len, p.link, p.ts_ns) {
                Err(_) => "malformed".to_string(),
                // Not InfiniBand: the time and empty fields, as tshark prints such a frame.
                Ok(None) => format!(
                    "{}.{:09}{}",
                    p.ts_ns / 1_000_000_000,
                    p.ts_ns % 1_000_000_000,
                    "\t".repeat(DUMP_FIELDS.len() - 1)
                ),
                Ok(Some((_, h))) => {
                    let opt = |on: bool, v: String| if on { v } else { String::new() };
                    let gid = |g: [u8; 16]| std::net::Ipv6Addr::from(g).to_string();
                    let f = [
                        format!("{}.{:09}", p.ts_ns / 1_000_000_000, p.ts_ns % 1_000_000_000),
                        opt(h.lrh, h.vl.to_string()),
                        opt(h.lrh, h.lver.to_string()),
                        opt(h.lrh, h.sl.to_string()),
                        opt(h.lrh, h.lnh.to_string()),
                        opt(h.lrh, h.dlid.to_string()),
                        opt(h.lrh, h.pktlen.to_string()),
                        opt(h.lrh, h.slid.to_string()),
                        opt(h.grh, h.tclass.to_string()),
                        opt(h.grh, h.flow_label.to_string()),
                        opt(h.grh, h.paylen.to_string()),
                        opt(h.grh, h.nxthdr.to_string()),
                        opt(h.grh, h.hoplmt.to_string()),
                        opt(h.grh, gid(h.sgid)),
                        opt(h.grh, gid(h.dgid)),
                        opt(h.bth, h.opcode.to_string()),
                        opt(h.bth, (h.se as u8).to_string()),
                        opt(h.bth, (h.mig as u8).to_string()),
                        opt(h.bth, h.padcnt.to_string()),
                        opt(h.bth, h.tver.to_string()),
                        opt(h.bth, h.pkey.to_string()),
                        opt(h.bth, h.dqp.to_string()),
                        opt(h.bth, (h.ackreq as u8).to_string()),
                        opt(h.bth, h.psn.to_string()),
                        opt(h.ext & ext::DETH != 0, h.qkey.to_string()),
                        opt(h.ext & ext::DETH != 0, h.sqp.to_string()),
                        opt(h.ext & ext::RETH != 0, h.va.to_string()),
                        opt(h.ext & ext::RETH != 0, h.rkey.to_string()),
                        opt(h.ext & ext::RETH != 0, h.dmalen.to_string()),
                        opt(h.ext & ext::AETH != 0, h.syndrome.to_string()),
                        opt(h.ext & ext::AETH != 0, h.msn.to_string()),
                        // Byte fields: hex, as tshark prints them.
                        opt(h.ext & ext::IMMDT != 0, format!("{:08x}", h.imm)),
                        opt(h.ext & ext::IETH != 0, format!("{:08x}", h.ieth_rkey)),
                    ];
                    f.join("\t")
                }
            };
            writeln!(out, "{line}")?;
        }
    }
    for w in cap.take_warnings() {
        eprintln!("{w}");
    }
    Ok(())
}

/// The tshark fields `dump_ib` prints, in order.
pub const DUMP_FIELDS: [&str; 33] = [
    "frame.time_epoch",
    "infiniband.lrh.vl",
    "infiniband.lrh.lver",
    "infiniband.lrh.sl",
    "infiniband.lrh.lnh",
    "infiniband.lrh.dlid",
    "infiniband.lrh.pktlen",
    "infiniband.lrh.slid",
    "infiniband.grh.tclass",
    "infiniband.grh.flowlabel",
    "infiniband.grh.paylen",
    "infiniband.grh.nxthdr",
    "infiniband.grh.hoplmt",
    "infiniband.grh.sgid",
    "infiniband.grh.dgid",
    "infiniband.bth.opcode",
    "infiniband.bth.se",
    "infiniband.bth.m",
    "infiniband.bth.padcnt",
    "infiniband.bth.tver",
    "infiniband.bth.p_key",
    "infiniband.bth.destqp",
    "infiniband.bth.a",
    "infiniband.bth.psn",
    "infiniband.deth.q_key",
    "infiniband.deth.srcqp",
    "infiniband.reth.va",
    "infiniband.reth.r_key",
    "infiniband.reth.dmalen",
    "infiniband.aeth.syndrome",
    "infiniband.aeth.msn",
    "infiniband.immdt",
    "infiniband.ieth",
];

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
