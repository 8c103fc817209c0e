//! `tapflow-merge`: joins the one-way records of the probes on the two legs of a split tap.
//!
//! Offline: `tapflow-merge -r a.tfr -r b.tfr -w merged.tfr`.
//! Live: `tapflow-merge --config merge.toml` (probes connect and stream their records).
//! Certificates: `tapflow-merge --gen-certs DIR --server-name merge.example --client leg-a …`.

use clap::Parser;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::process::ExitCode;

use tapflow_merge::{MergeConfig, MergeSink, Merger};
use tapflow_probe::EngineConfig;
use tapflow_record::{
    FileHeader, FlowRecord, RecordReader, RecordWriter, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR,
};

/// Joins the one-way records of two half-duplex probes (one per leg of a split tap) into the
/// bidirectional records one probe seeing both directions would have written.
///
/// The first `-r` is the clock reference: the other probes' offsets are estimated from TCP
/// handshakes split between them and applied. Records of flows only one probe saw are written
/// flagged one-sided; probe-status records pass through.
///
/// Exit status: 0 all input merged; 1 some input was damaged or unreadable (reported; every
/// good record was still merged); 2 usage error; 3 the output failed.
#[derive(Parser, Debug)]
#[command(name = "tapflow-merge", version, about, long_about = None)]
struct Args {
    /// Record file of one probe (repeat: one per leg). The first is the clock reference.
    #[arg(short = 'r', value_name = "RECORDS")]
    read: Vec<String>,
    /// Merged record output (`-` = stdout).
    #[arg(short = 'w', value_name = "OUT")]
    write: Option<String>,
    /// Live daemon: configuration file (TOML, see deploy/merge.example.toml).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["read", "write"])]
    config: Option<String>,
    /// Live daemon: stop after this long (seconds) [until SIGTERM/SIGINT].
    #[arg(long, value_name = "SECONDS", requires = "config")]
    duration: Option<f64>,
    /// Write a CA, a daemon certificate and probe certificates (PEM) into DIR, then exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["read", "write", "config"])]
    gen_certs: Option<String>,
    /// With --gen-certs: a name (DNS name or IP address) the daemon certificate carries; repeat.
    #[arg(long, value_name = "NAME", requires = "gen_certs")]
    server_name: Vec<String>,
    /// With --gen-certs: a probe certificate to make (its common name); repeat.
    #[arg(long, value_name = "NAME", requires = "gen_certs")]
    client: Vec<String>,
    /// Probe id written into merged records.
    #[arg(long, default_value_t = 0)]
    probe_id: u32,
    /// The probes' status interval, seconds.
    #[arg(short = 'S', long, default_value_t = 5.0)]
    status_interval: f64,
    /// TCP idle timeout, seconds (as the probes').
    #[arg(long, default_value_t = 60.0)]
    tcp_timeout: f64,
    /// UDP idle timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    udp_timeout: f64,
    /// ICMP idle timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    icmp_timeout: f64,
    /// Idle timeout of other protocols, seconds.
    #[arg(long = "ip-timeout", default_value_t = 30.0)]
    other_timeout: f64,
    /// TCP close linger, seconds.
    #[arg(long, default_value_t = 2.0)]
    linger: f64,
    /// Merged flows held at most.
    #[arg(long, default_value_t = 1 << 21)]
    max_flows: usize,
    /// Clock offset beyond which the skew alarm is raised, ms.
    #[arg(long, default_value_t = 100.0)]
    skew_limit_ms: f64,
    /// Merge-status record interval, seconds (0 = only the final ones).
    #[arg(long, default_value_t = 60.0)]
    stats_interval: f64,
    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<String>,
    /// Do not print the summary.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// The live daemon.
fn live(path: &str, duration: Option<f64>, stats_json: Option<&str>, quiet: bool) -> ExitCode {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let mut cfg = match tapflow_merge::daemon::read_config(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tapflow-merge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(d) = duration {
        cfg.duration = tapflow_probe::daemon::config::Dur::Secs(d);
    }
    if let Err(e) = cfg.validate() {
        eprintln!("tapflow-merge: {path}: {e}");
        return ExitCode::from(2);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("tapflow-merge: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    }
    match tapflow_merge::daemon::run(&cfg, stop) {
        Ok(s) => {
            if !quiet {
                eprintln!(
                    "tapflow-merge: {} chunks ({} duplicate, {} missing, {} damaged), {} records in, {} out; {} joined, {} one-sided; {} commits{}",
                    s.chunks,
                    s.duplicate_chunks,
                    s.missing_chunks,
                    s.damaged_chunks,
                    s.merge.records_in,
                    s.merge.records_out,
                    s.merge.joined,
                    s.merge.one_sided,
                    s.commits,
                    if s.restored { " (continued from committed state)" } else { "" }
                );
            }
            if let Some(p) = stats_json {
                if let Err(e) = std::fs::write(p, s.to_json()) {
                    eprintln!("tapflow-merge: {p}: {e}");
                    return ExitCode::from(3);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tapflow-merge: {e}");
            ExitCode::from(if e.starts_with("output") || e.starts_with("state") {
                3
            } else {
                2
            })
        }
    }
}

fn ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

struct Out<W: Write> {
    w: RecordWriter<W>,
    err: Option<io::Error>,
}

impl<W: Write> MergeSink for Out<W> {
    fn record(&mut self, rec: &FlowRecord) {
        if self.err.is_none() {
            if let Err(e) = self.w.write(rec) {
                self.err = Some(e);
            }
        }
    }
}

fn main() -> ExitCode {
    let a = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(dir) = &a.gen_certs {
        if a.server_name.is_empty() || a.client.is_empty() {
            eprintln!("tapflow-merge: --gen-certs needs --server-name and at least one --client");
            return ExitCode::from(2);
        }
        return match tapflow_probe::daemon::tls::generate(
            std::path::Path::new(dir),
            &a.server_name,
            &a.client,
        ) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tapflow-merge: {e}");
                ExitCode::from(3)
            }
        };
    }
    if let Some(path) = &a.config {
        return live(path, a.duration, a.stats_json.as_deref(), a.quiet);
    }
    let Some(write) = a.write.clone() else {
        eprintln!("tapflow-merge: give -w OUT (offline) or --config FILE (live daemon)");
        return ExitCode::from(2);
    };
    if a.read.len() < 2 {
        eprintln!("tapflow-merge: give one -r per probe (at least two)");
        return ExitCode::from(2);
    }
    if a.status_interval < 0.001 {
        eprintln!("tapflow-merge: --status-interval must be at least 0.001 s");
        return ExitCode::from(2);
    }
    let cfg = MergeConfig {
        probe_id: a.probe_id,
        flow: EngineConfig {
            status_interval_ns: ns(a.status_interval),
            tcp_idle_ns: ns(a.tcp_timeout),
            udp_idle_ns: ns(a.udp_timeout),
            icmp_idle_ns: ns(a.icmp_timeout),
            other_idle_ns: ns(a.other_timeout),
            close_linger_ns: ns(a.linger),
            ..EngineConfig::default()
        },
        max_flows: a.max_flows.max(1),
        skew_limit_ns: ns(a.skew_limit_ms / 1e3),
        stats_interval_ns: ns(a.stats_interval),
        ..MergeConfig::default()
    };
    let mut readers = Vec::new();
    let mut status = 0u8;
    for p in &a.read {
        match File::open(p)
            .map_err(|e| format!("{p}: {e}"))
            .and_then(|f| RecordReader::new(BufReader::new(f), p).map_err(|e| e.to_string()))
        {
            Ok(r) => readers.push(Some(r)),
            Err(e) => {
                // The merge goes on with the others: their flows come out one-sided.
                eprintln!("tapflow-merge: {e}");
                status = 1;
                readers.push(None);
            }
        }
    }
    let out: Box<dyn Write> = if write == "-" {
        Box::new(io::stdout().lock())
    } else {
        match File::create(&write) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("tapflow-merge: {}: {e}", write);
                return ExitCode::from(3);
            }
        }
    };
    let header = FileHeader {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        probe_id: a.probe_id,
        created_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        flags: 0,
    };
    let mut sink = match RecordWriter::new(BufWriter::new(out), &header, WriterOptions::default()) {
        Ok(w) => Out { w, err: None },
        Err(e) => {
            eprintln!("tapflow-merge: {}: {e}", write);
            return ExitCode::from(3);
        }
    };
    let t0 = std::time::Instant::now();
    let mut m = Merger::new(cfg, readers.len());
    for (i, r) in readers.iter().enumerate() {
        if r.is_none() {
            m.finish_input(i);
        }
    }
    // Read the input that is furthest behind in time, a chunk at a time, so that buffering
    // stays at about one interval of records.
    loop {
        let next = (0..readers.len())
            .filter(|&i| readers[i].is_some())
            .min_by_key(|&i| m.watermark_of(i));
        let Some(i) = next else { break };
        let rd = readers[i].as_mut().expect("filtered");
        let mut eof = false;
        for _ in 0..4096 {
            match rd.next_record() {
                Ok(Some(rec)) => m.push(i, rec, &mut sink),
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => {
                    eprintln!("tapflow-merge: {e}");
                    status = 1;
                    eof = true;
                    break;
                }
            }
        }
        for w in rd.take_warnings() {
            eprintln!("tapflow-merge: warning: {w}");
            status = 1;
        }
        if eof {
            readers[i] = None;
            m.finish_input(i);
        }
        m.advance(&mut sink);
        if let Some(e) = sink.err.take() {
            eprintln!("tapflow-merge: {}: {e}", write);
            return ExitCode::from(3);
        }
    }
    m.finish(&mut sink);
    let res = match sink.err.take() {
        Some(e) => Err(e),
        None => sink.w.finish().and_then(|mut w| w.flush()),
    };
    if let Err(e) = res {
        eprintln!("tapflow-merge: {}: {e}", write);
        return ExitCode::from(3);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s = m.stats();
    if !a.quiet {
        eprintln!(
            "tapflow-merge: {} records in ({} duplicates, {} missing by sequence, {} late, {} passed \
             through), {} out in {:.3} s",
            s.records_in, s.duplicates, s.gaps, s.late, s.passed_through, s.records_out, elapsed
        );
        eprintln!(
            "  flows: {} joined, {} one-sided, {} evicted; {} half-records overlapped (both probes \
             saw one direction)",
            s.joined, s.one_sided, s.evictions, s.overlaps
        );
        for (i, p) in a.read.iter().enumerate().skip(1) {
            let o = m.offset(i);
            match o.err_ns {
                Some(e) => eprintln!(
                    "  clock of {p}: {:+.3} ms ± {:.3} ms from {} handshake pairs{}",
                    o.offset_ns as f64 / 1e6,
                    e as f64 / 1e6,
                    o.pairs,
                    if o.inconsistent {
                        " (bounds inconsistent: clock moving)"
                    } else {
                        ""
                    }
                ),
                None if o.pairs > 0 => eprintln!(
                    "  clock of {p}: bounded on one side only, at {:+.3} ms ({} pairs)",
                    o.offset_ns as f64 / 1e6,
                    o.pairs
                ),
                None => eprintln!(
                    "  clock of {p}: no handshake split with {}: not corrected",
                    a.read[0]
                ),
            }
        }
    }
    if let Some(path) = &a.stats_json {
        let offsets: Vec<String> = (0..a.read.len())
            .map(|i| {
                let o = m.offset(i);
                format!(
                    "{{\"input\":{},\"offset_ns\":{},\"err_ns\":{},\"pairs\":{}}}",
                    i,
                    o.offset_ns,
                    o.err_ns.map_or("null".into(), |e| e.to_string()),
                    o.pairs
                )
            })
            .collect();
        let j = format!(
            "{{\"records_in\":{},\"duplicates\":{},\"gaps\":{},\"late\":{},\"passed_through\":{},\
             \"records_out\":{},\"joined\":{},\"one_sided\":{},\"evictions\":{},\"overlaps\":{},\
             \"peak_flows\":{},\"elapsed_s\":{:.6},\"offsets\":[{}]}}\n",
            s.records_in,
            s.duplicates,
            s.gaps,
            s.late,
            s.passed_through,
            s.records_out,
            s.joined,
            s.one_sided,
            s.evictions,
            s.overlaps,
            s.peak_flows,
            elapsed,
            offsets.join(",")
        );
        if let Err(e) = std::fs::write(path, j) {
            eprintln!("tapflow-merge: {path}: {e}");
            return ExitCode::from(3);
        }
    }
    ExitCode::from(status)
}
