//! The live probe: capture sockets → pinned per-queue workers (each with its own flow table) →
//! lock-free queues → one output thread (file, rotated archive, TCP stream).
//!
//! Start-up order matters: sockets are opened, the XDP program loaded and the stream port bound
//! while the process still has its privileges; then it drops to the configured user with no
//! capabilities left, and only then starts the threads.

pub mod config;
pub mod output;
mod sources;
pub mod spool;
mod sys;
pub mod tls;
pub mod transport;
pub mod worker;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapflow_record::ProbeStatus;

pub use config::Config;

/// One log line on stderr (the journal, under systemd), prefixed with the program's name.
pub fn log(msg: &str) {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let name = NAME.get_or_init(|| {
        std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "tapflow".into())
    });
    eprintln!("{name}: {msg}");
}

/// One worker's totals as JSON (for `--stats-json`), identities included.
fn totals_json(worker: usize, t: &ProbeStatus, status_records: Option<u64>) -> String {
    format!(
        "{{\"worker\":{worker},\"seen\":{},\"delivered\":{},\"ring_drops\":{},\"filtered\":{},\"passed\":{},\"invalid\":{},\"decoded\":{},\"malformed\":{},\"flows_admitted\":{},\"evictions\":{},\"records_queued\":{},\"records_dropped\":{},{}\"unaccounted\":{},\"undecoded\":{}}}",
        t.seen,
        t.delivered,
        t.ring_drops,
        t.filtered,
        t.passed,
        t.invalid,
        t.decoded,
        t.malformed,
        t.flows_admitted,
        t.evictions,
        t.records_queued,
        t.records_dropped,
        status_records.map_or(String::new(), |n| format!("\"status_records\":{n},")),
        t.unaccounted(),
        t.undecoded()
    )
}

/// What a live run did, for the exit summary and `--stats-json`.
#[derive(Debug, Default)]
pub struct LiveSummary {
    pub elapsed: Duration,
    pub backend: String,
    pub zero_copy: bool,
    pub copy_fallback: bool,
    /// Final counters as each worker kept them (the same, summed from the status records
    /// the output thread wrote, are in `output.workers`).
    pub workers: Vec<ProbeStatus>,
    pub output: output::OutputStats,
    /// The merge spool and sender (split-tap legs).
    pub spool: Option<spool::SpoolStats>,
    pub errors: Vec<String>,
}

impl LiveSummary {
    pub fn to_json(&self) -> String {
        let w: Vec<String> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, t)| totals_json(i, t, None))
            .collect();
        let s: Vec<String> = self
            .output
            .workers
            .iter()
            .zip(&self.output.status_records_per_worker)
            .enumerate()
            .map(|(i, (t, &n))| totals_json(i, t, Some(n)))
            .collect();
        let e: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let sp = self.spool.as_ref().map_or(String::new(), |s| {
            format!(
                "\"spool\":{{\"chunks\":{},\"dropped_chunks\":{},\"dropped_bytes\":{},\"write_errors\":{},\"pending_bytes\":{},\"connections\":{}}},",
                s.chunks, s.dropped_chunks, s.dropped_bytes, s.write_errors, s.pending_bytes, s.connections
            )
        });
        format!(
            "{{{sp}\"elapsed_s\":{:.3},\"backend\":\"{}\",\"zero_copy\":{},\"copy_fallback\":{},\"flow_records\":{},\"status_records\":{},\"bytes\":{},\"archive_files\":{},\"archive_errors\":{},\"readers_served\":{},\"readers_dropped\":{},\"workers\":[{}],\"from_status\":[{}],\"errors\":[{}]}}\n",
            self.elapsed.as_secs_f64(),
            self.backend,
            self.zero_copy,
            self.copy_fallback,
            self.output.flow_records,
            self.output.status_records,
            self.output.bytes,
            self.output.archive_files,
            self.output.archive_errors,
            self.output.readers_served,
            self.output.readers_dropped,
            w.join(","),
            s.join(","),
            e.join(",")
        )
    }

    /// One line per worker: the accounting identity, checked.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} backend{}, {:.1} s, {} flow records, {} status records, {} bytes\n",
            self.backend,
            if self.zero_copy {
                " (zero-copy)"
            } else if self.copy_fallback {
                " (copy mode: zero-copy unavailable)"
            } else {
                ""
            },
            self.elapsed.as_secs_f64(),
            self.output.flow_records,
            self.output.status_records,
            self.output.bytes
        );
        for (i, t) in self.workers.iter().enumerate() {
            out.push_str(&format!(
                "worker {i}: seen {} = delivered {} + ring drops {} + filtered {} + passed {} + invalid {} ({}); delivered = decoded {} + malformed {} ({}); flows {} (evicted {}); records {} queued, {} dropped\n",
                t.seen,
                t.delivered,
                t.ring_drops,
                t.filtered,
                t.passed,
                t.invalid,
                if t.unaccounted() == 0 { "balanced".to_string() } else { format!("{} unaccounted", t.unaccounted()) },
                t.decoded,
                t.malformed,
                if t.undecoded() == 0 { "balanced".to_string() } else { format!("{} missing", t.undecoded()) },
                t.flows_admitted,
                t.evictions,
                t.records_queued,
                t.records_dropped
            ));
        }
        out
    }
}

/// Runs a live probe until SIGTERM/SIGINT (or `duration`). `stop` may also be set by the caller.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<LiveSummary, String> {
    cfg.validate()?;
    let t0 = Instant::now();
    let rotate = Arc::new(AtomicBool::new(false));
    sys::install_signals(&stop, &rotate)?;

    // Privileged set-up: sockets, XDP program, listening port, output files.
    let opened = sources::open(cfg)?;
    let workers = opened.per_worker.len();
    let listener = match &cfg.output.listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("listen {addr}: {e}"))?;
            log(&format!(
                "serving the record stream on {}",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            ));
            Some(l)
        }
        None => None,
    };
    let file: Option<Box<dyn Write + Send>> = match cfg.output.file.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::with_capacity(1 << 20, io::stdout()))),
        Some(p) => Some(Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).map_err(|e| format!("{p}: {e}"))?,
        ))),
    };
    let mut own_dirs = Vec::new();
    let mut spool = None;
    let mut sender_cfg = None;
    if let Some(m) = &cfg.output.merge {
        let run = tapflow_capture::live::realtime_ns();
        let sp = spool::Spool::open(std::path::Path::new(&m.spool), m.spool_max, run)?;
        own_dirs.push(std::path::PathBuf::from(&m.spool));
        let tls = match &m.tls {
            Some(t) => Some(tls::client_config(t)?),
            None => None,
        };
        sender_cfg = Some(spool::SenderConfig {
            to: m.to.clone(),
            server_name: m
                .server_name
                .clone()
                .unwrap_or_else(|| spool::host_of(&m.to)),
            tls,
            probe_id: cfg.probe_id,
            drain: Duration::from_secs_f64(m.drain.secs()),
        });
        log(&format!(
            "split-tap leg: records go to the merge daemon {} (run {}, spool {})",
            m.to,
            sp.run(),
            m.spool
        ));
        spool = Some(sp);
    }
    if let Some(t) = &cfg.output.archive {
        let base = output::template_base_dir(t);
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        own_dirs.push(base);
    }
    let euid = sys::euid();
    if euid != 0 {
        // Started unprivileged (systemd User= with AmbientCapabilities=): already the right
        // user, so only the capabilities go. A `user` naming someone else cannot be honoured.
        if let Some(user) = &cfg.user {
            if sys::uid_of(user)? != euid {
                return Err(format!(
                    "started as uid {euid}, not root: cannot switch to user {user:?} (drop \
                     `user` from the configuration, or start the probe as {user})"
                ));
            }
        }
        sys::drop_capabilities()?;
        log(&format!(
            "running as uid {euid} with no capabilities (dropped after setup)"
        ));
    } else if let Some(user) = &cfg.user {
        let (uid, gid) = sys::drop_privileges(user, &own_dirs)?;
        let caps = match sys::effective_caps() {
            Some(0) => "no capabilities".to_string(),
            Some(c) => format!("capabilities {c:#x}"),
            None => "capabilities unknown".to_string(),
        };
        log(&format!(
            "running as {user} (uid {uid}, gid {gid}) with {caps}"
        ));
    }

    // Threads.
    let mut producers = Vec::with_capacity(workers);
    let mut consumers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (p, c) = rtrb::RingBuffer::new(cfg.queue_records);
        producers.push(p);
        consumers.push(c);
    }
    let ocfg = output::OutputConfig {
        probe_id: cfg.probe_id,
        file,
        archive: cfg.output.archive.clone(),
        rotate_ns: cfg.output.rotate.ns(),
        listener,
        client_buffer: cfg.output.client_buffer,
        flush_ns: cfg.output.flush_interval.ns().max(10_000_000),
        zstd_level: cfg.output.zstd_level,
        spool: spool.clone(),
        resume: None,
    };
    let sender = match (spool.clone(), sender_cfg) {
        (Some(sp), Some(sc)) => Some(
            std::thread::Builder::new()
                .name("tapflow-sender".into())
                .spawn(move || spool::run_sender(sp, sc))
                .map_err(|e| format!("cannot start the merge sender: {e}"))?,
        ),
        _ => None,
    };
    let rot = rotate.clone();
    let out_thread = std::thread::Builder::new()
        .name("tapflow-output".into())
        .spawn(move || output::run(ocfg, consumers, rot))
        .map_err(|e| format!("cannot start the output thread: {e}"))?;
    let mut flags = 0;
    if opened.zero_copy {
        flags |= tapflow_record::status_flags::XDP_ZERO_COPY;
    }
    if opened.copy_fallback {
        flags |= tapflow_record::status_flags::XDP_COPY_FALLBACK;
    }
    let mut handles = Vec::with_capacity(workers);
    for (i, (srcs, q)) in opened.per_worker.into_iter().zip(producers).enumerate() {
        let w = worker::Worker {
            id: i,
            core: (!cfg.cores.is_empty()).then(|| cfg.cores[i % cfg.cores.len()]),
            sources: srcs,
            engine: cfg.engine.engine_config(cfg.probe_id, workers, i),
            queue: q,
            stop: stop.clone(),
            stats_interval_ns: cfg.stats_interval.ns(),
            flags,
        };
        let h = std::thread::Builder::new()
            .name(format!("tapflow-w{i}"))
            .spawn(move || w.run())
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        handles.push(h);
    }
    log(&format!(
        "capturing on {} with {} ({workers} worker{})",
        cfg.interfaces.join(","),
        opened.describe,
        if workers == 1 { "" } else { "s" }
    ));

    // Wait for a signal, the duration, or a worker that gave up.
    let limit = (cfg.duration.secs() > 0.0).then(|| Duration::from_secs_f64(cfg.duration.secs()));
    while !stop.load(Ordering::Relaxed) {
        if limit.is_some_and(|l| t0.elapsed() >= l) || handles.iter().any(|h| h.is_finished()) {
            break;
        }
        if rotate.load(Ordering::Relaxed) {
            log("SIGHUP: rotating the archive");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    log("stopping: flushing every flow");

    let mut summary = LiveSummary {
        backend: opened.backend.to_string(),
        zero_copy: opened.zero_copy,
        copy_fallback: opened.copy_fallback,
        ..LiveSummary::default()
    };
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(t)) => summary.workers.push(t),
            Ok(Err(e)) => {
                log(&e);
                summary.errors.push(e);
                summary.workers.push(ProbeStatus::default());
            }
            Err(_) => {
                let e = format!("worker {i} panicked");
                log(&e);
                summary.errors.push(e);
                summary.workers.push(ProbeStatus::default());
            }
        }
    }
    match out_thread.join() {
        Ok(Ok(st)) => summary.output = st,
        Ok(Err(e)) => summary.errors.push(format!("output: {e}")),
        Err(_) => summary.errors.push("output thread panicked".into()),
    }
    if let Some(sp) = &spool {
        sp.close();
    }
    if let Some(h) = sender {
        match h.join() {
            Ok(s) => summary.spool = Some(s),
            Err(_) => summary.errors.push("merge sender panicked".into()),
        }
    }
    if let Some(e) = &summary.output.file_error {
        summary.errors.push(format!("record file: {e}"));
    }
    // The XDP program detaches here (and on any exit: it is held through a bpf_link).
    drop(opened.keep);
    summary.elapsed = t0.elapsed();
    Ok(summary)
}
