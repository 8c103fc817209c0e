//! `tapflow-bench records`: a synthetic archive of flow records (for the analysis CLI's
//! figures), and `tapflow-bench time`: whole-process timing of any command over it.
//!
//! The archive looks like a day at a site: a few thousand local hosts in 10.0.0.0/16 talking to
//! a long tail of remote hosts, a service-port mix, TCP/UDP/ICMP, long flows reported in status
//! records, and a sprinkling of scans and SMTP fan-out. Deterministic for a given seed.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use tapflow_record::{
    flags, Addr, AddrKind, Cause, DirStats, FileHeader, FlowRecord, FlowState, RecordWriter,
    WriterOptions, FORMAT_MAJOR, FORMAT_MINOR,
};

#[derive(clap::Args, Debug)]
pub struct RecordsArgs {
    /// Directory to write the archive into (one file per hour).
    #[arg(short = 'o')]
    pub out: PathBuf,
    /// Flow records in all.
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Hours the archive covers (starting 2024-03-01 00:00 UTC).
    #[arg(long, default_value_t = 24)]
    pub hours: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct TimeArgs {
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Records the command reads (for records/s).
    #[arg(long)]
    pub records: u64,
    /// The command and its arguments (stdout is discarded).
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64: fast, and good enough for synthetic traffic.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A heavy-tailed count ≥ 1 (most flows are small, a few are huge).
    fn tail(&mut self, scale: f64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (scale / (1.0 - u).max(1e-9).powf(0.7)).max(1.0) as u64
    }
}

const SERVICES: [(u8, u16, u32); 10] = [
    (6, 443, 40),
    (6, 80, 12),
    (17, 53, 14),
    (6, 25, 3),
    (6, 22, 3),
    (17, 123, 3),
    (6, 993, 3),
    (6, 3389, 2),
    (17, 443, 6),
    (1, 0, 4),
];

fn dir(rng: &mut Rng, pkts: u64, size: u64, first: u64, dur: u64) -> DirStats {
    DirStats {
        pkts,
        bytes: pkts * size,
        ip_bytes: pkts * (size - 14),
        app_bytes: pkts * size.saturating_sub(54),
        first_ns: first,
        last_ns: first + dur,
        ttl_min: 64 - rng.below(8) as u8,
        ttl_max: 64,
        retrans: (rng.below(100) < 3) as u32 * rng.below(4) as u32,
        ..DirStats::default()
    }
}

/// One synthetic record at time `t`.
fn record(rng: &mut Rng, t: u64, seq: u64) -> FlowRecord {
    let local = [10, 0, rng.below(20) as u8, rng.below(250) as u8 + 1];
    let roll = rng.below(1000);
    let (proto, port, remote) = if roll < 8 {
        // A scanner: one remote source, many local destinations, one packet each.
        (6, rng.below(1024) as u16 + 1, [198, 51, 100, 7])
    } else if roll < 12 {
        // SMTP fan-out from one local host.
        (6, 25, [203, 0, rng.below(256) as u8, rng.below(256) as u8])
    } else {
        let total: u32 = SERVICES.iter().map(|s| s.2).sum();
        let mut pick = rng.below(total as u64) as u32;
        let mut svc = SERVICES[0];
        for s in SERVICES {
            if pick < s.2 {
                svc = s;
                break;
            }
            pick -= s.2;
        }
        let r = rng.below(200_000) as u32 + 1;
        (
            svc.0,
            svc.1,
            [
                (r >> 16) as u8 + 20,
                (r >> 8) as u8,
                r as u8,
                (r % 251) as u8 + 1,
            ],
        )
    };
    let scan = roll < 8;
    let spam_host = [10, 0, 9, 9];
    let (saddr, daddr) = if scan {
        (remote, local)
    } else if roll < 12 {
        (spam_host, remote)
    } else {
        (local, remote)
    };
    let spkts = if scan {
        1
    } else {
        rng.tail(3.0).min(1_000_000)
    };
    let dpkts = if scan {
        (rng.below(2) == 0) as u64
    } else {
        rng.tail(3.0).min(1_000_000)
    };
    let dur = if spkts + dpkts <= 2 {
        rng.below(50_000_000)
    } else {
        rng.below(120_000_000_000)
    };
    let status = !scan && rng.below(10) < 3;
    let mut r = FlowRecord {
        probe_id: 1,
        seq,
        cause: if status {
            Cause::Status
        } else if proto == 6 {
            Cause::Close
        } else {
            Cause::Idle
        },
        addr_kind: AddrKind::Ipv4,
        proto,
        ethertype: 0x0800,
        saddr: Addr::from_v4(saddr),
        daddr: Addr::from_v4(daddr),
        sport: if proto == 1 {
            8
        } else if scan {
            40000 + rng.below(1000) as u16
        } else {
            1024 + rng.below(64000) as u16
        },
        dport: port,
        stime_ns: t,
        ltime_ns: t + dur,
        state: if proto != 6 {
            FlowState::None
        } else if scan {
            if dpkts > 0 {
                FlowState::Rst
            } else {
                FlowState::Req
            }
        } else if status {
            FlowState::Con
        } else {
            FlowState::Clo
        },
        observed: 3,
        ..FlowRecord::default()
    };
    let ssize = 60 + rng.below(600);
    let dsize = 60 + rng.below(1400);
    r.src = dir(rng, spkts, ssize, t, dur);
    if dpkts > 0 {
        r.dst = dir(rng, dpkts, dsize, t + 200_000, dur);
    }
    if proto == 6 {
        r.src.tcp_flags = 0x02 | if scan { 0 } else { 0x18 };
        if dpkts > 0 {
            r.dst.tcp_flags = if scan { 0x14 } else { 0x12 | 0x18 };
        }
    }
    if proto == 6 && !scan && rng.below(4) == 0 {
        r.synack_ns = 100_000 + rng.below(50_000_000);
        r.ackdat_ns = 50_000 + rng.below(1_000_000);
    }
    if status {
        r.flags |= flags::DIR_GUESSED * (rng.below(20) == 0) as u32;
    }
    r
}

/// Writes the archive; returns (records, bytes).
pub fn run_records(a: &RecordsArgs) -> Result<()> {
    fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let start = 1_709_251_200u64 * 1_000_000_000; // 2024-03-01T00:00:00Z
    let hour = 3_600_000_000_000u64;
    let per_hour = a.records / a.hours.max(1);
    let mut rng = Rng(a.seed);
    let mut seq = 0;
    let mut bytes = 0u64;
    let t0 = Instant::now();
    for h in 0..a.hours.max(1) {
        let n = if h + 1 == a.hours.max(1) {
            a.records - per_hour * (a.hours.max(1) - 1)
        } else {
            per_hour
        };
        let base = start + h * hour;
        let mut times: Vec<u64> = (0..n).map(|_| base + rng.below(hour)).collect();
        times.sort_unstable();
        let (y, mo, d, hh, _, _) = tapflow_record::time::utc(base / 1_000_000_000);
        let path = a
            .out
            .join(format!("records.{y:04}{mo:02}{d:02}.{hh:02}.tfr"));
        let header = FileHeader {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            probe_id: 1,
            created_ns: base,
            flags: 0,
        };
        let f = std::io::BufWriter::with_capacity(
            1 << 20,
            fs::File::create(&path).with_context(|| path.display().to_string())?,
        );
        let mut w = RecordWriter::new(f, &header, WriterOptions::default())?;
        for t in times {
            w.write(&record(&mut rng, t, seq))?;
            seq += 1;
        }
        w.finish()?;
        bytes += fs::metadata(&path)?.len();
    }
    println!(
        "records: {} records in {} files under {}, {} bytes ({:.1} B/record), {:.1} s",
        a.records,
        a.hours.max(1),
        a.out.display(),
        bytes,
        bytes as f64 / a.records.max(1) as f64,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn child_cpu_s() -> f64 {
    // SAFETY: getrusage with a valid out-pointer.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times a whole command (wall and CPU), median of `runs`.
pub fn run_time(a: &TimeArgs) -> Result<()> {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..a.runs.max(1) {
        let c0 = child_cpu_s();
        let t = Instant::now();
        let st = Command::new(&a.cmd[0])
            .args(&a.cmd[1..])
            .stdout(Stdio::null())
            .status()
            .with_context(|| a.cmd[0].clone())?;
        wall.push(t.elapsed().as_secs_f64());
        cpu.push(child_cpu_s() - c0);
        if !st.success() {
            bail!("{:?} failed: {st}", a.cmd);
        }
    }
    let (w, c) = (median(wall), median(cpu));
    let n = a.records as f64;
    println!(
        "time: {}\n  wall {:.3} s ({:.2} M records/s), CPU {:.3} s ({:.2} M records/s per CPU-second), median of {}",
        a.cmd.join(" "),
        w,
        n / w / 1e6,
        c,
        n / c / 1e6,
        a.runs.max(1)
    );
    Ok(())
}
