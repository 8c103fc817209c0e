//! `tapflow-probe`: capture → bidirectional flow records.

use clap::Parser;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use tapflow_probe::run::{run, RunOptions};
use tapflow_probe::EngineConfig;

const S: f64 = 1e9;

/// Turns packets into bidirectional flow audit records.
///
/// Exit status: 0 all input processed; 1 some input could not be read or decoded (its error
/// was printed, every good record was still written); 2 usage error; 3 the output failed.
#[derive(Parser, Debug)]
#[command(name = "tapflow-probe", version, about, long_about = None)]
struct Args {
    /// Capture file to read (pcap or pcapng, optionally gzip/zstd compressed; `-` = stdin).
    /// Repeat for several files: they are read in order through one flow table.
    #[arg(short = 'r', value_name = "CAPTURE", required = true)]
    read: Vec<String>,
    /// Record output file (`-` = stdout).
    #[arg(short = 'w', value_name = "OUT", required = true)]
    write: String,
    /// Probe id written into every record.
    #[arg(long, default_value_t = 0)]
    probe_id: u32,
    /// Status record interval in seconds (0 = only final records). Boundaries are aligned to
    /// multiples of the interval since the epoch, so two probes' intervals line up.
    #[arg(short = 'S', long = "status-interval", default_value_t = 5.0)]
    status_interval: f64,
    /// TCP idle timeout, seconds.
    #[arg(long, default_value_t = 60.0)]
    tcp_timeout: f64,
    /// UDP idle timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    udp_timeout: f64,
    /// ICMP/ICMPv6 idle timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    icmp_timeout: f64,
    /// Idle timeout for every other protocol (and non-IP flows), seconds.
    #[arg(long = "ip-timeout", default_value_t = 30.0)]
    other_timeout: f64,
    /// How long a TCP flow stays after FIN both ways or RST, to catch stragglers, seconds.
    #[arg(long, default_value_t = 2.0)]
    linger: f64,
    /// Flow table capacity. When full, a flow is evicted (see docs/flow-engine.md).
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
    /// Keep the first N payload bytes of each direction in records (0 = off).
    #[arg(long, default_value_t = 0)]
    payload: usize,
    /// Do not print the summary.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<String>,
}

fn secs(name: &str, v: f64) -> Result<u64, String> {
    if !(0.0..=1e7).contains(&v) || !v.is_finite() {
        return Err(format!(
            "--{name} must be between 0 and 10000000 seconds, not {v}"
        ));
    }
    Ok((v * S) as u64)
}

fn config(a: &Args) -> Result<EngineConfig, String> {
    if a.max_flows == 0 {
        return Err("--max-flows must be at least 1".into());
    }
    if a.payload > 4096 {
        return Err("--payload is limited to 4096 bytes per direction".into());
    }
    Ok(EngineConfig {
        probe_id: a.probe_id,
        capacity: a.max_flows,
        tcp_idle_ns: secs("tcp-timeout", a.tcp_timeout)?,
        udp_idle_ns: secs("udp-timeout", a.udp_timeout)?,
        icmp_idle_ns: secs("icmp-timeout", a.icmp_timeout)?,
        other_idle_ns: secs("ip-timeout", a.other_timeout)?,
        status_interval_ns: secs("status-interval", a.status_interval)?,
        close_linger_ns: secs("linger", a.linger)?,
        payload_bytes: a.payload,
        ..EngineConfig::default()
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tapflow-probe: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        inputs: args.read.clone(),
        engine: cfg,
        progress: !args.quiet,
        warnings_to_stderr: true,
    };
    let result = if args.write == "-" {
        let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        run(&opts, out).and_then(|(s, mut w)| w.flush().map(|_| s))
    } else {
        match File::create(&args.write) {
            Ok(f) => run(&opts, BufWriter::with_capacity(1 << 20, f)).and_then(|(s, w)| {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .map(|_| s)
            }),
            Err(e) => {
                eprintln!("tapflow-probe: cannot create {}: {e}", args.write);
                return ExitCode::from(3);
            }
        }
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tapflow-probe: writing {}: {e}", args.write);
            return ExitCode::from(3);
        }
    };
    for inp in &summary.inputs {
        if let Some(e) = &inp.error {
            eprintln!("tapflow-probe: error: {e}");
        }
    }
    for &(l, n) in summary.decode.unsupported_links.iter().filter(|e| e.1 > 0) {
        eprintln!(
            "tapflow-probe: error: unsupported link type {}: {n} packets not decoded",
            tapflow_capture::LinkType(l)
        );
    }
    if !args.quiet {
        eprint!("{}", summary.render());
    }
    if let Some(path) = &args.stats_json {
        if let Err(e) = std::fs::write(path, summary.to_json()) {
            eprintln!("tapflow-probe: cannot write {path}: {e}");
            return ExitCode::from(3);
        }
    }
    if summary.had_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
