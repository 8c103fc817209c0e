//! `tapflow-probe`: capture → bidirectional flow records.

use clap::Parser;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tapflow_probe::daemon::{
    self,
    config::{parse_duration, Backend, Config, Dur, Link, Prefix, XdpAttach, XdpMode},
};
use tapflow_probe::run::{run, RunOptions};
use tapflow_probe::EngineConfig;

const S: f64 = 1e9;

/// Turns packets into bidirectional flow audit records.
///
/// File mode: `tapflow-probe -r CAPTURE… -w OUT`. Live mode: `tapflow-probe -i IFACE[,IFACE]
/// [--backend afpacket|xdp] -w OUT` or `tapflow-probe --config probe.toml` (every config key is
/// also a flag; flags win).
///
/// Exit status: 0 all input processed (live: stopped by SIGTERM/SIGINT or --duration); 1 some
/// input could not be read or decoded (its error was printed, every good record was still
/// written), or a live worker failed; 2 usage or configuration error; 3 the output failed.
#[derive(Parser, Debug)]
#[command(name = "tapflow-probe", version, about, long_about = None)]
struct Args {
    /// Capture file to read (pcap or pcapng, optionally gzip/zstd compressed; `-` = stdin).
    /// Repeat for several files: they are read in order through one flow table.
    #[arg(short = 'r', value_name = "CAPTURE")]
    read: Vec<String>,
    /// Record output file (`-` = stdout).
    #[arg(short = 'w', value_name = "OUT")]
    write: Option<String>,
    /// Probe id written into every record.
    #[arg(long)]
    probe_id: Option<u32>,
    /// Status record interval in seconds (0 = only final records). Boundaries are aligned to
    /// multiples of the interval since the epoch, so two probes' intervals line up.
    #[arg(short = 'S', long = "status-interval")]
    status_interval: Option<f64>,
    /// TCP idle timeout, seconds [60].
    #[arg(long)]
    tcp_timeout: Option<f64>,
    /// UDP idle timeout, seconds [30].
    #[arg(long)]
    udp_timeout: Option<f64>,
    /// ICMP/ICMPv6 idle timeout, seconds [5].
    #[arg(long)]
    icmp_timeout: Option<f64>,
    /// Idle timeout for every other protocol (and non-IP flows), seconds [30].
    #[arg(long = "ip-timeout")]
    other_timeout: Option<f64>,
    /// How long a TCP flow stays after FIN both ways or RST, to catch stragglers, seconds [2].
    #[arg(long)]
    linger: Option<f64>,
    /// Flow table capacity (live: of the whole probe, split over the workers) [1048576].
    /// When full, a flow is evicted (see docs/flow-engine.md).
    #[arg(long)]
    max_flows: Option<usize>,
    /// Keep the first N payload bytes of each direction in records (0 = off).
    #[arg(long)]
    payload: Option<usize>,
    /// Which directions of the link the capture holds: auto (decide from the traffic: a
    /// split-tap leg is recognised by itself and its records are marked one-way for
    /// tapflow-merge), both, or one-way.
    #[arg(long, value_parser = ["auto", "both", "one-way"])]
    link: Option<String>,
    /// Do not print the summary.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<String>,

    // Live capture.
    /// Live: interfaces to capture on; two (comma-separated) are the two legs of a tap.
    #[arg(short = 'i', value_name = "IFACE[,IFACE]", value_delimiter = ',')]
    interfaces: Vec<String>,
    /// Live: configuration file (TOML, see deploy/probe.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Live: capture backend.
    #[arg(long, value_parser = ["afpacket", "xdp", "dag"])]
    backend: Option<String>,
    /// Live: AF_XDP mode (zero-copy refuses to start without driver support; auto falls back
    /// to copy and says so).
    #[arg(long, value_parser = ["zero-copy", "copy", "auto"])]
    xdp_mode: Option<String>,
    /// Live: run the XDP program in the driver (native) or on the generic skb path.
    #[arg(long, value_parser = ["native", "generic"])]
    xdp_attach: Option<String>,
    /// Live: workers (XDP: NIC queues 0..N; AF_PACKET: fanout members) [rx queue count].
    #[arg(long)]
    workers: Option<usize>,
    /// Live: cores to pin the workers to (worker i → cores[i % n]).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Live: bytes kept per packet (AF_PACKET) [128: headers only].
    #[arg(long)]
    snaplen: Option<u32>,
    /// Live (XDP): drop packets from or to this prefix in the XDP program; repeatable.
    #[arg(long = "drop-prefix", value_name = "PREFIX")]
    drop_prefixes: Vec<String>,
    /// Live (XDP): ring entries per socket.
    #[arg(long)]
    xdp_ring: Option<u32>,
    /// Live (AF_PACKET): 1 MiB ring blocks per socket.
    #[arg(long)]
    afpacket_blocks: Option<u32>,
    /// Live (XDP): do not try 2 MiB hugepages for the UMEM.
    #[arg(long)]
    no_hugepages: bool,
    /// Live: rotated archive path template (%Y %m %d %H %M %S, UTC).
    #[arg(long, value_name = "TEMPLATE")]
    archive: Option<String>,
    /// Live: archive file length (e.g. 3600, "1h", "5m") [1h].
    #[arg(long, value_name = "DURATION")]
    rotate: Option<String>,
    /// Live: serve the record stream on HOST:PORT (`tapflow read -S HOST:PORT`).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Live: bytes a stream reader may fall behind before it is disconnected [16 MiB].
    #[arg(long)]
    client_buffer: Option<usize>,
    /// Live: push partly filled record blocks out this often [1s].
    #[arg(long, value_name = "DURATION")]
    flush_interval: Option<String>,
    /// Live: drop privileges to this user once the sockets are open.
    #[arg(long)]
    user: Option<String>,
    /// Live: probe-status record interval [60s].
    #[arg(long, value_name = "DURATION")]
    stats_interval: Option<String>,
    /// Live: stop after this long [run until SIGTERM/SIGINT].
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Live, split-tap leg: stream records to tapflow-merge at HOST:PORT (through the spool).
    #[arg(long, value_name = "HOST:PORT")]
    merge_to: Option<String>,
    /// Live: spool directory for --merge-to [/var/lib/tapflow/spool].
    #[arg(long, value_name = "DIR")]
    spool: Option<String>,
    /// Live: spool size limit in bytes [4 GiB].
    #[arg(long, value_name = "BYTES")]
    spool_max: Option<u64>,
    /// Live: at shutdown, keep delivering the spool this long [30s].
    #[arg(long, value_name = "DURATION")]
    merge_drain: Option<String>,
    /// Live: TLS to the merge daemon: CA certificate (PEM) that signed the daemon's certificate.
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<String>,
    /// Live: TLS: this probe's certificate (PEM).
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<String>,
    /// Live: TLS: this probe's private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<String>,
    /// Live: TLS: name the daemon's certificate must carry [host of --merge-to].
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
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
    let d = EngineConfig::default();
    let max_flows = a.max_flows.unwrap_or(d.capacity);
    if max_flows == 0 {
        return Err("--max-flows must be at least 1".into());
    }
    let payload = a.payload.unwrap_or(0);
    if payload > 4096 {
        return Err("--payload is limited to 4096 bytes per direction".into());
    }
    let t = |name: &str, v: Option<f64>, def: u64| v.map_or(Ok(def), |v| secs(name, v));
    Ok(EngineConfig {
        probe_id: a.probe_id.unwrap_or(0),
        capacity: max_flows,
        tcp_idle_ns: t("tcp-timeout", a.tcp_timeout, d.tcp_idle_ns)?,
        udp_idle_ns: t("udp-timeout", a.udp_timeout, d.udp_idle_ns)?,
        icmp_idle_ns: t("icmp-timeout", a.icmp_timeout, d.icmp_idle_ns)?,
        other_idle_ns: t("ip-timeout", a.other_timeout, d.other_idle_ns)?,
        status_interval_ns: t("status-interval", a.status_interval, d.status_interval_ns)?,
        close_linger_ns: t("linger", a.linger, d.close_linger_ns)?,
        payload_bytes: payload,
        direction: match &a.link {
            Some(l) => Link::parse(l)?.direction(),
            None => d.direction,
        },
        ..d
    })
}

fn dur(flag: &str, v: &Option<String>) -> Result<Option<Dur>, String> {
    v.as_deref()
        .map(|s| {
            parse_duration(s)
                .map(Dur::Secs)
                .map_err(|e| format!("--{flag}: {e}"))
        })
        .transpose()
}

/// The live configuration: the config file (if any), then every flag given on top.
fn live_config(a: &Args) -> Result<Config, String> {
    let mut c = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
            Config::from_toml(&text, p)?
        }
        None => Config::default(),
    };
    if !a.interfaces.is_empty() {
        c.interfaces = a.interfaces.clone();
    }
    if let Some(v) = a.probe_id {
        c.probe_id = v;
    }
    if let Some(b) = &a.backend {
        c.backend = match b.as_str() {
            "xdp" => Backend::Xdp,
            "dag" => Backend::Dag,
            _ => Backend::Afpacket,
        };
    }
    if let Some(m) = &a.xdp_mode {
        c.xdp_mode = match m.as_str() {
            "zero-copy" => XdpMode::ZeroCopy,
            "copy" => XdpMode::Copy,
            _ => XdpMode::Auto,
        };
    }
    if let Some(m) = &a.xdp_attach {
        c.xdp_attach = if m == "generic" {
            XdpAttach::Generic
        } else {
            XdpAttach::Native
        };
    }
    if a.workers.is_some() {
        c.workers = a.workers;
    }
    if !a.cores.is_empty() {
        c.cores = a.cores.clone();
    }
    if let Some(v) = a.snaplen {
        c.snaplen = v;
    }
    if !a.drop_prefixes.is_empty() {
        c.drop_prefixes = a
            .drop_prefixes
            .iter()
            .map(|p| {
                p.parse::<Prefix>()
                    .map_err(|e| format!("--drop-prefix: {e}"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = a.xdp_ring {
        c.xdp_ring = v;
    }
    if let Some(v) = a.afpacket_blocks {
        c.afpacket_blocks = v;
    }
    if a.no_hugepages {
        c.hugepages = false;
    }
    if let Some(w) = &a.write {
        c.output.file = Some(w.clone());
    }
    if let Some(t) = &a.archive {
        c.output.archive = Some(t.clone());
    }
    if let Some(v) = dur("rotate", &a.rotate)? {
        c.output.rotate = v;
    }
    if let Some(l) = &a.listen {
        c.output.listen = Some(l.clone());
    }
    if let Some(v) = a.client_buffer {
        c.output.client_buffer = v;
    }
    if let Some(v) = dur("flush-interval", &a.flush_interval)? {
        c.output.flush_interval = v;
    }
    if let Some(u) = &a.user {
        c.user = Some(u.clone());
    }
    if let Some(t) = &a.merge_to {
        c.output.merge.get_or_insert_with(Default::default).to = t.clone();
    }
    let any_merge_flag = a.spool.is_some()
        || a.spool_max.is_some()
        || a.merge_drain.is_some()
        || a.tls_ca.is_some()
        || a.tls_cert.is_some()
        || a.tls_key.is_some()
        || a.server_name.is_some();
    if any_merge_flag {
        let Some(m) = c.output.merge.as_mut() else {
            return Err("--spool, --tls-* and --server-name need --merge-to".into());
        };
        if let Some(v) = &a.spool {
            m.spool = v.clone();
        }
        if let Some(v) = a.spool_max {
            m.spool_max = v;
        }
        if let Some(v) = dur("merge-drain", &a.merge_drain)? {
            m.drain = v;
        }
        if let Some(v) = &a.server_name {
            m.server_name = Some(v.clone());
        }
        match (&a.tls_ca, &a.tls_cert, &a.tls_key) {
            (None, None, None) => {}
            (Some(ca), Some(cert), Some(key)) => {
                m.tls = Some(tapflow_probe::daemon::tls::TlsFiles {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            _ => return Err("TLS needs all of --tls-ca, --tls-cert and --tls-key".into()),
        }
    }
    if let Some(v) = dur("stats-interval", &a.stats_interval)? {
        c.stats_interval = v;
    }
    if let Some(v) = dur("duration", &a.duration)? {
        c.duration = v;
    }
    let e = &mut c.engine;
    if let Some(v) = a.max_flows {
        e.max_flows = v;
    }
    if let Some(v) = a.payload {
        e.payload = v;
    }
    if let Some(l) = &a.link {
        e.link = Link::parse(l)?;
    }
    for (v, slot) in [
        (a.status_interval, &mut e.status_interval),
        (a.tcp_timeout, &mut e.tcp_timeout),
        (a.udp_timeout, &mut e.udp_timeout),
        (a.icmp_timeout, &mut e.icmp_timeout),
        (a.other_timeout, &mut e.ip_timeout),
        (a.linger, &mut e.linger),
    ] {
        if let Some(v) = v {
            *slot = Dur::Secs(v);
        }
    }
    Ok(c)
}

fn live_main(args: &Args) -> ExitCode {
    let cfg = match live_config(args).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tapflow-probe: {e}");
            return ExitCode::from(2);
        }
    };
    // Created now, while the probe may still write anywhere: it drops privileges later.
    let stats_file = match &args.stats_json {
        Some(p) => match File::create(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("tapflow-probe: cannot create {p}: {e}");
                return ExitCode::from(3);
            }
        },
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let summary = match daemon::run(&cfg, stop) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tapflow-probe: {e}");
            return ExitCode::from(1);
        }
    };
    if !args.quiet {
        for l in summary.render().lines() {
            eprintln!("tapflow-probe: {l}");
        }
    }
    if let Some(mut f) = stats_file {
        if let Err(e) = f.write_all(summary.to_json().as_bytes()) {
            eprintln!("tapflow-probe: cannot write the stats: {e}");
            return ExitCode::from(3);
        }
    }
    if summary.output.file_error.is_some() {
        ExitCode::from(3)
    } else if !summary.errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.read.is_empty() {
        if args.interfaces.is_empty() && args.config.is_none() {
            eprintln!(
                "tapflow-probe: nothing to do: give -r CAPTURE -w OUT, -i IFACE -w OUT, or --config FILE (see --help)"
            );
            return ExitCode::from(2);
        }
        return live_main(&args);
    }
    if !args.interfaces.is_empty() || args.config.is_some() {
        eprintln!("tapflow-probe: -r (file mode) cannot be combined with -i/--config (live mode)");
        return ExitCode::from(2);
    }
    let Some(write) = args.write.clone() else {
        eprintln!("tapflow-probe: -w OUT is required with -r");
        return ExitCode::from(2);
    };
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
    let result = if write == "-" {
        let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        run(&opts, out).and_then(|(s, mut w)| w.flush().map(|_| s))
    } else {
        match File::create(&write) {
            Ok(f) => run(&opts, BufWriter::with_capacity(1 << 20, f)).and_then(|(s, w)| {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .map(|_| s)
            }),
            Err(e) => {
                eprintln!("tapflow-probe: cannot create {write}: {e}");
                return ExitCode::from(3);
            }
        }
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tapflow-probe: writing {write}: {e}");
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
