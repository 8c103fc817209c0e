//! `tapflow-bench live`: the real `tapflow-probe` capturing on a veth lab, fed 64-byte UDP
//! frames at fixed offered rates, per capture backend.
//!
//! The generator is one AF_PACKET socket (`sendto`, one thread on CPU 0, qdisc bypass); the
//! probe's worker is pinned to CPU 1. veth runs the receiving side's kernel path on the
//! sender's CPU, so the probe CPU figures are the probe process alone.

#![allow(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tapflow_capture::netns::{self, Lab, PacketSender, SendOptions};

use crate::gen::pkt::{self, Ipv4Hdr};

/// CPU the generator thread is pinned to.
const SENDER_CPU: usize = 0;
/// CPU the probe's worker is pinned to (`--cores`).
const PROBE_CPU: usize = 1;
/// Frames between two looks at the clock when pacing.
const PACE_BATCH: u64 = 64;
/// Time left for the probe to empty its rings after the last frame (AF_XDP polls every 20 ms,
/// AF_PACKET retires a block after 10 ms).
const DRAIN: Duration = Duration::from_millis(300);

/// Live capture: the probe on a veth pair at fixed offered rates (needs root).
#[derive(clap::Args, Debug)]
pub struct LiveArgs {
    /// Capture backends to measure.
    #[arg(long, default_value = "xdp,afpacket", value_delimiter = ',',
          value_parser = ["xdp", "afpacket"])]
    pub backend: Vec<String>,
    /// Offered rates in packets/s; `max` = unpaced.
    #[arg(long, default_value = "50000,100000,200000,max", value_delimiter = ',',
          value_parser = parse_rate)]
    pub rates: Vec<Rate>,
    /// Packets per run.
    #[arg(long, default_value_t = 500_000)]
    pub packets: u64,
    /// Distinct flows (UDP, round robin).
    #[arg(long, default_value_t = 1000)]
    pub flows: u32,
    /// Runs per point (the median of each column is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Path of tapflow-probe (default: next to this binary).
    #[arg(long)]
    pub probe: Option<String>,
    /// Extra argument for the probe, repeatable (e.g. `--probe-arg=--xdp-ring=65536`).
    #[arg(long = "probe-arg", allow_hyphen_values = true)]
    pub probe_args: Vec<String>,
}

/// An offered rate in packets/s; `None` = as fast as the socket takes them.
#[derive(Clone, Copy, Debug)]
pub struct Rate(pub Option<f64>);

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{r:.0}"),
            None => f.write_str("max"),
        }
    }
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s == "max" {
        return Ok(Rate(None));
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 1.0 => Ok(Rate(Some(r))),
        _ => Err(format!("not a rate in packets/s or `max`: {s}")),
    }
}

/// Set by SIGINT so a run stops between frame batches and the lab is still deleted.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// One run's figures.
#[derive(Clone, Copy, Debug, Default)]
struct RunResult {
    sent: u64,
    send_secs: f64,
    seen: u64,
    delivered: u64,
    ring_drops: u64,
    /// Probe user + sys CPU seconds over its whole life (wait4).
    cpu_total: f64,
    /// Probe CPU seconds from "capturing on" to just before SIGTERM (start-up and the final
    /// flush excluded).
    cpu_window: Option<f64>,
    /// Voluntary context switches of the probe over the same window: how often it slept.
    wakeups: Option<u64>,
}

impl RunResult {
    fn loss_pct(&self) -> f64 {
        100.0 * self.sent.saturating_sub(self.delivered) as f64 / self.sent.max(1) as f64
    }
}

/// Runs the benchmark; exits with status 2 when it cannot run here (not root, no netns).
pub fn run(a: LiveArgs) -> Result<()> {
    if let Err(why) = netns::available() {
        eprintln!("tapflow-bench live: needs root, iproute2 and network namespaces ({why})");
        std::process::exit(2);
    }
    if a.runs == 0 || a.packets == 0 || a.flows == 0 || a.flows > (1 << 24) {
        bail!("--runs and --packets must be at least 1, --flows in 1..=16777216");
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) <= PROBE_CPU {
        bail!("needs at least 2 CPUs (sender on CPU {SENDER_CPU}, probe on CPU {PROBE_CPU})");
    }
    let probe = match &a.probe {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.with_file_name("tapflow-probe"),
    };
    if !probe.exists() {
        bail!(
            "{} not found (build it: cargo build --release -p tapflow-probe, or give --probe)",
            probe.display()
        );
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };

    let frames = build_frames(a.flows);
    let tmp = std::env::temp_dir().join(format!("tapflow-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let res = run_all(&a, &probe, &frames, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    if INTERRUPTED.load(Ordering::Relaxed) {
        // The lab and the probe are gone by now; exit as a shell expects after ^C.
        eprintln!("tapflow-bench live: interrupted");
        std::process::exit(130);
    }
    res
}

fn run_all(a: &LiveArgs, probe: &Path, frames: &[Vec<u8>], tmp: &Path) -> Result<()> {
    // One lab for every run: creating and deleting namespaces costs more than a run at high
    // rates, and netns teardown runs in the background where it would disturb the next run.
    let lab = Lab::new(1, 1).context("creating the veth lab")?;
    let mut rows = vec![];
    let mut described = vec![];
    for backend in &a.backend {
        for &rate in &a.rates {
            let mut runs = vec![];
            for r in 0..a.runs {
                let json = tmp.join(format!("{backend}-{rate}-{r}.json"));
                let (res, desc) = one_run(a, &lab, probe, backend, rate, frames, &json)?;
                eprintln!(
                    "{backend} {rate} pps run {}/{}: sent {} in {:.2} s ({:.3} Mpps), delivered {}, ring drops {}",
                    r + 1,
                    a.runs,
                    res.sent,
                    res.send_secs,
                    res.sent as f64 / res.send_secs / 1e6,
                    res.delivered,
                    res.ring_drops
                );
                if !described.iter().any(|(b, _)| b == backend) {
                    described.push((backend.clone(), desc));
                }
                runs.push(res);
            }
            rows.push((backend.clone(), rate, runs));
        }
    }
    print_table(a, &described, &rows);
    Ok(())
}

/// `flows` distinct 60-byte Ethernet/IPv4/UDP frames (64 B on the wire with the FCS): flow k
/// comes from 10.0.0.0/8 address k+1 and port 1024 + k % 60000, to 198.18.0.1:9.
fn build_frames(flows: u32) -> Vec<Vec<u8>> {
    // Unicast to a MAC the capture interface does not own: the kernel's IP stack drops the
    // frame as soon as it sees that, so the receive side costs little beyond the capture.
    let src_mac = [0x02, 0, 0, 0, 0, 0x01];
    let dst_mac = [0x02, 0, 0, 0, 0, 0x02];
    let dst = Ipv4Addr::new(198, 18, 0, 1);
    (0..flows)
        .map(|k| {
            let src = Ipv4Addr::from(0x0a00_0001 + k);
            let h = Ipv4Hdr::new(src, dst, pkt::proto::UDP);
            let udp = pkt::udp(1024 + (k % 60_000) as u16, 9, &[0x5a; 18], &h.pair());
            let f = pkt::eth(
                src_mac,
                dst_mac,
                &[],
                pkt::ethertype::IPV4,
                &pkt::ipv4(&h, &udp),
            );
            debug_assert_eq!(f.len(), pkt::ETH_MIN_FRAME);
            f
        })
        .collect()
}

/// Starts the probe, sends, stops it; returns the figures and how the probe described its
/// capture.
fn one_run(
    a: &LiveArgs,
    lab: &Lab,
    probe: &Path,
    backend: &str,
    rate: Rate,
    frames: &[Vec<u8>],
    json: &Path,
) -> Result<(RunResult, String)> {
    let mut p = ProbeProc::start(lab, probe, backend, json, &a.probe_args)?;
    let w0 = task_stats(p.pid);
    let tx_if = lab.legs[0].tx_if.clone();
    let packets = a.packets;
    let sent = netns::in_netns(&lab.tx_ns, move || {
        send_paced(&tx_if, frames, packets, rate)
    })
    .context("entering the sender namespace")??;
    std::thread::sleep(DRAIN);
    let w1 = task_stats(p.pid);
    let (status, ru) = p.stop()?;
    check_interrupted()?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "{} exited with status {status:#x}:\n{}",
            probe.display(),
            p.log()
        );
    }
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("reading {} (probe log:\n{})", json.display(), p.log()))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("parsing the stats JSON")?;
    if let Some(e) = v["errors"].as_array().filter(|e| !e.is_empty()) {
        bail!("the probe reported errors: {e:?}");
    }
    let mut r = RunResult {
        sent: sent.0,
        send_secs: sent.1,
        cpu_total: tv(ru.ru_utime) + tv(ru.ru_stime),
        cpu_window: w0.zip(w1).map(|(a, b)| (b.0 - a.0) as f64 / 1e9),
        wakeups: w0.zip(w1).map(|(a, b)| b.1 - a.1),
        ..RunResult::default()
    };
    let (mut malformed, mut flows) = (0, 0);
    for w in v["workers"].as_array().into_iter().flatten() {
        let n = |k: &str| w[k].as_u64().unwrap_or(0);
        r.seen += n("seen");
        r.delivered += n("delivered");
        r.ring_drops += n("ring_drops");
        malformed += n("malformed");
        flows += n("flows_admitted");
    }
    let other = r.seen.saturating_sub(r.delivered + r.ring_drops);
    if other != 0 {
        eprintln!("note: {other} packets seen but neither delivered nor ring-dropped (filtered, passed or invalid)");
    }
    // Guards the generator: every frame decodes, and the flows are the ones we made.
    let want = (a.flows as u64).min(a.packets);
    if malformed != 0 || (r.delivered == r.sent && flows != want) {
        eprintln!("note: {malformed} malformed packets, {flows} flows (expected 0 and {want})");
    }
    Ok((r, p.describe()))
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Sends `packets` frames round robin over `frames` out of `ifname`, paced to `rate` by
/// checking the clock every [`PACE_BATCH`] frames. Returns (sent, seconds).
fn send_paced(ifname: &str, frames: &[Vec<u8>], packets: u64, rate: Rate) -> Result<(u64, f64)> {
    if let Err(e) = tapflow_capture::live::pin_thread(SENDER_CPU) {
        bail!("pinning the sender to CPU {SENDER_CPU}: {e}");
    }
    // `cpu` set: qdisc bypass, so sendto hands the frame straight to the veth.
    let s = PacketSender::open(
        ifname,
        SendOptions {
            cpu: Some(SENDER_CPU),
            pace_us: 0,
        },
    )?;
    let n = frames.len();
    let t0 = Instant::now();
    for i in 0..packets {
        if i % PACE_BATCH == 0 && i > 0 {
            check_interrupted()?;
            if let Some(r) = rate.0 {
                wait_until(t0 + Duration::from_secs_f64(i as f64 / r));
            }
        }
        s.send(&frames[(i % n as u64) as usize])?;
    }
    Ok((packets, t0.elapsed().as_secs_f64()))
}

/// Sleeps while the deadline is far (a timer wake-up can be ~100 µs late on this VM), then
/// spins the rest.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// CPU time in ns and voluntary context switches summed over the live threads of `pid`.
/// CPU comes from /proc/PID/task/*/schedstat: ns precise, unlike the tick-based utime/stime
/// of /proc/PID/stat. `None` without schedstat.
fn task_stats(pid: i32) -> Option<(u64, u64)> {
    let (mut cpu, mut sw) = (0, 0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = t.ok()?.path();
        let s = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        cpu += s.split_whitespace().next()?.parse::<u64>().ok()?;
        let st = std::fs::read_to_string(dir.join("status")).ok()?;
        sw += st
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse::<u64>()
            .ok()?;
    }
    Some((cpu, sw))
}

/// The probe running in the capture namespace. `ip netns exec` execs the probe (no fork), so
/// the child's pid is the probe's: signals and wait4's rusage reach it directly.
struct ProbeProc {
    pid: i32,
    reaped: bool,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ProbeProc {
    fn start(
        lab: &Lab,
        probe: &Path,
        backend: &str,
        json: &Path,
        extra: &[String],
    ) -> Result<ProbeProc> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.rx_ns]).arg(probe).args([
            "-i",
            &lab.legs[0].rx_if,
            "--backend",
            backend,
        ]);
        if backend == "xdp" {
            // veth has no AF_XDP zero-copy.
            cmd.args(["--xdp-mode", "copy"]);
        }
        cmd.args(["-w", "/dev/null", "--stats-json"])
            .arg(json)
            .args(["-q", "--stats-interval", "1s", "--cores"])
            .arg(PROBE_CPU.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting ip netns exec")?;
        let mut p = ProbeProc {
            pid: child.id() as i32,
            reaped: false,
            log: Default::default(),
        };
        let err = child.stderr.take().expect("piped stderr");
        // `child` is dropped without waiting: the pid is reaped with wait4 (for its rusage).
        drop(child);
        let (tx, rx) = mpsc::channel();
        let log = p.log.clone();
        // Keeps draining stderr for the probe's whole life so it never blocks on the pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if line.contains("capturing on") {
                    let _ = tx.send(());
                }
                let mut g = log.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let t0 = Instant::now();
        loop {
            if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                return Ok(p);
            }
            if let Some((st, _)) = p.try_wait()? {
                std::thread::sleep(Duration::from_millis(50));
                bail!(
                    "{} exited before capturing (status {st:#x}):\n{}",
                    probe.display(),
                    p.log()
                );
            }
            check_interrupted()?;
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("the probe did not start within 30 s:\n{}", p.log());
            }
        }
    }

    fn try_wait(&mut self) -> Result<Option<(i32, libc::rusage)>> {
        let mut st = 0;
        // SAFETY: wait4 on our own child with out-pointers to locals.
        let (r, ru) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            let r = libc::wait4(self.pid, &mut st, libc::WNOHANG, &mut ru);
            (r, ru)
        };
        match r {
            0 => Ok(None),
            r if r == self.pid => {
                self.reaped = true;
                Ok(Some((st, ru)))
            }
            _ => Err(std::io::Error::last_os_error()).context("wait4"),
        }
    }

    /// SIGTERM (the probe flushes every flow and writes its stats), then waits for the exit.
    fn stop(&mut self) -> Result<(i32, libc::rusage)> {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(x) = self.try_wait()? {
                return Ok(x);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the probe did not exit within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The probe's own description of its capture ("capturing on IF with ...").
    fn describe(&self) -> String {
        let log = self.log();
        log.lines()
            .find_map(|l| l.split_once("capturing on ").map(|(_, d)| d.to_string()))
            .unwrap_or_default()
    }
}

impl Drop for ProbeProc {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own child, not yet reaped, so the pid cannot have been reused.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_table(
    a: &LiveArgs,
    described: &[(String, String)],
    rows: &[(String, Rate, Vec<RunResult>)],
) {
    println!(
        "live: {} packets per run, 60 B UDP frames (64 B on the wire), {} flows round robin, median of {} runs per column",
        a.packets, a.flows, a.runs
    );
    println!(
        "generator: AF_PACKET sendto, 1 thread (CPU {SENDER_CPU}, qdisc bypass) on a veth pair; probe worker on CPU {PROBE_CPU}"
    );
    for (b, d) in described {
        println!("{b}: capturing on {d}");
    }
    println!(
        "veth runs the receive path in the sender's softirq on CPU {SENDER_CPU}: probe CPU is the probe process only, per delivered packet"
    );
    println!();
    println!("| backend | offered pps | sent Mpps | rx Mpps | delivered | sent − seen | ring drops | loss % | probe CPU ns/pkt, process | probe CPU ns/pkt, capturing | probe wakeups / 1k pkts |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (backend, rate, runs) in rows {
        let m = |f: &dyn Fn(&RunResult) -> f64| median(runs.iter().map(f).collect());
        let per_pkt = |x: f64, r: &RunResult| x / r.delivered.max(1) as f64;
        let window = |f: &dyn Fn(&RunResult) -> Option<f64>, scale: f64| {
            if runs.iter().all(|r| f(r).is_some()) {
                format!("{:.0}", m(&|r| per_pkt(f(r).unwrap_or(0.0) * scale, r)))
            } else {
                "n/a".into()
            }
        };
        println!(
            "| {backend} | {rate} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {} |",
            m(&|r| r.sent as f64 / r.send_secs / 1e6),
            m(&|r| r.delivered as f64 / r.send_secs / 1e6),
            m(&|r| r.delivered as f64),
            m(&|r| r.sent.saturating_sub(r.seen) as f64),
            m(&|r| r.ring_drops as f64),
            m(&|r| r.loss_pct()),
            m(&|r| per_pkt(r.cpu_total * 1e9, r)),
            window(&|r| r.cpu_window, 1e9),
            window(&|r| r.wakeups.map(|w| w as f64), 1e3),
        );
    }
    println!();
    println!(
        "rx Mpps = delivered / send time. loss = (sent − delivered) / sent. sent − seen: lost before the probe's counters (veth/XDP). \
         process = the probe's whole life (wait4: start-up, XDP load and final flush included); \
         capturing = from \"capturing on\" to SIGTERM ({} ms drain included); wakeups = the probe's voluntary context switches in that window.",
        DRAIN.as_millis()
    );
}
