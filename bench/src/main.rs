//! `tapflow-bench`: benchmarks and the synthetic capture generator.
//!
//! One enum variant and one function per subcommand: add new ones next to `Gen`.

use anyhow::Result;
use clap::{Parser, Subcommand};

use tapflow_bench::gen::cli::GenArgs;

#[derive(Parser, Debug)]
#[command(
    name = "tapflow-bench",
    version,
    about = "tapflow benchmarks and capture generator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate synthetic captures (demo, worst case, mix, test fixtures).
    Gen(GenArgs),
    /// Decoder + flow engine on one core over an in-memory 64-byte worst case.
    Engine(EngineArgs),
    /// Whole-process `tapflow-probe -r X -w Y` against `argus -r X -w Z` on the same capture.
    File(FileArgs),
    /// Live capture: tapflow-probe on a veth pair at fixed offered rates, per backend (root).
    Live(tapflow_bench::live::LiveArgs),
    /// Merge throughput: a capture's two split-tap legs through the merge core, one core.
    Merge(tapflow_bench::merge_bench::MergeArgs),
    /// Cut a capture into the two legs of a split tap (for tapflow-merge tests and benches).
    Split(tapflow_bench::split::SplitArgs),
    /// Write a synthetic archive of flow records (a day at a site) for the analysis CLI.
    Records(tapflow_bench::records_bench::RecordsArgs),
    /// Time a whole command (wall and CPU, median of runs) reading N records.
    Time(tapflow_bench::records_bench::TimeArgs),
    /// Per-packet InfiniBand fields as tapflow's decoder sees them, one tab-separated line per
    /// packet (the tests compare them with tshark's).
    DumpIb(DumpIbArgs),
}

#[derive(clap::Args, Debug)]
struct DumpIbArgs {
    /// Capture to read (pcap, pcapng, ERF).
    #[arg(short = 'r')]
    capture: String,
}

#[derive(clap::Args, Debug)]
struct EngineArgs {
    /// Packets per run.
    #[arg(long, default_value_t = 5_000_000)]
    packets: u64,
    /// Distinct flows (comma-separated list to sweep).
    #[arg(long, default_value = "10000,1000000", value_delimiter = ',')]
    flows: Vec<u64>,
    /// Runs per point (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Flow table capacity.
    #[arg(long, default_value_t = 1 << 21)]
    capacity: usize,
    /// Traffic: 64-byte TCP SYN/UDP (`tcp`), RoCEv2 RC SEND_ONLY in 60-byte Ethernet frames
    /// (`roce`), native InfiniBand LRH+BTH 62-byte packets (`ib`); comma-separated to compare.
    #[arg(long, default_value = "tcp", value_delimiter = ',')]
    kind: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct FileArgs {
    /// Capture to replay.
    #[arg(short = 'r')]
    capture: String,
    /// Runs per tool (median reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Path of tapflow-probe (default: next to this binary).
    #[arg(long)]
    probe: Option<String>,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen(a) => cmd_gen(a),
        Cmd::Engine(a) => cmd_engine(a),
        Cmd::File(a) => cmd_file(a),
        Cmd::Live(a) => tapflow_bench::live::run(a),
        Cmd::Merge(a) => tapflow_bench::merge_bench::run_merge(&a),
        Cmd::Records(a) => tapflow_bench::records_bench::run_records(&a),
        Cmd::Time(a) => tapflow_bench::records_bench::run_time(&a),
        Cmd::DumpIb(a) => tapflow_bench::engine_bench::dump_ib(&a.capture),
        Cmd::Split(a) => {
            let n = tapflow_bench::split::split(&a)?;
            println!(
                "split {}: leg A {} packets, leg B {} packets",
                a.input, n.a, n.b
            );
            Ok(())
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn cmd_engine(a: EngineArgs) -> Result<()> {
    use tapflow_bench::engine_bench::*;
    println!(
        "engine: decoder + flow engine, one core, {} packets of 64 B (60 B captured), batches of 256; table {} B/flow",
        a.packets,
        tapflow_probe::Engine::bytes_per_flow()
    );
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "kind", "flows", "Mpps", "ns/pkt", "min Mpps", "max Mpps"
    );
    for kind in &a.kind {
        for &flows in &a.flows {
            let (data, descs) = match kind.as_str() {
                "tcp" => build_worst(a.packets, flows, 1),
                "roce" => build_ib_worst(a.packets, flows, true),
                "ib" => build_ib_worst(a.packets, flows, false),
                k => anyhow::bail!("unknown --kind {k}: tcp, roce or ib"),
            };
            let runs: Vec<f64> = (0..a.runs.max(1))
                .map(|_| run_engine(&data, &descs, a.capacity).mpps())
                .collect();
            let med = median(runs.clone());
            let min = runs.iter().cloned().fold(f64::MAX, f64::min);
            let max = runs.iter().cloned().fold(0.0, f64::max);
            println!(
                "{kind:>6} {flows:>10} {med:>10.2} {:>10.1} {min:>10.2} {max:>10.2}",
                1000.0 / med
            );
        }
    }
    Ok(())
}

fn cmd_file(a: FileArgs) -> Result<()> {
    use std::process::Command;
    use tapflow_bench::engine_bench::*;
    let probe = a.probe.unwrap_or_else(|| {
        let me = std::env::current_exe().unwrap();
        me.with_file_name("tapflow-probe")
            .to_string_lossy()
            .into_owned()
    });
    let tmp = std::env::temp_dir().join(format!("tapflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let pkts = {
        let mut c = tapflow_capture::file::open(&a.capture).map_err(|e| anyhow::anyhow!("{e}"))?;
        while c
            .next_batch()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .is_some()
        {}
        c.stats().packets
    };
    println!(
        "file: {} ({} packets), median of {} runs, whole process",
        a.capture, pkts, a.runs
    );
    println!(
        "{:>14} {:>8} {:>8} {:>12} {:>10} {:>12}",
        "tool", "wall s", "CPU s", "Mpps/CPU-s", "peak RSS", "out bytes"
    );
    let mut results: Vec<(String, f64)> = vec![];
    type MakeCmd<'a> = Box<dyn Fn(&std::path::Path) -> Command + 'a>;
    let tools: Vec<(&str, MakeCmd)> = vec![
        (
            "tapflow-probe",
            Box::new(|out: &std::path::Path| {
                let mut c = Command::new(&probe);
                c.args(["-q", "-r", &a.capture, "-w"]).arg(out);
                c
            }),
        ),
        (
            "argus",
            Box::new(|out: &std::path::Path| {
                let mut c = Command::new("argus");
                c.args(["-X", "-r", &a.capture, "-w"]).arg(out);
                c
            }),
        ),
    ];
    for (name, mk) in &tools {
        let mut cpu = vec![];
        let mut wall = vec![];
        let mut rss = 0;
        let mut size = 0;
        let mut ok = true;
        for _ in 0..a.runs.max(1) {
            let out = tmp.join(format!("{name}.out"));
            let _ = std::fs::remove_file(&out);
            let r = time_command(&mut mk(&out));
            ok &= r.ok;
            cpu.push(r.cpu);
            wall.push(r.wall);
            rss = rss.max(r.max_rss_kb);
            size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        }
        if !ok {
            println!("{name:>14} (not available or failed)");
            continue;
        }
        let c = median(cpu);
        println!(
            "{name:>14} {:>8.3} {c:>8.3} {:>12.3} {:>7} MB {size:>12}",
            median(wall),
            pkts as f64 / c / 1e6,
            rss / 1024
        );
        results.push((name.to_string(), c));
    }
    if results.len() == 2 {
        println!(
            "ratio: tapflow-probe uses {:.1}x less CPU than argus",
            results[1].1 / results[0].1
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn cmd_gen(a: GenArgs) -> Result<()> {
    tapflow_bench::gen::cli::run(a)
}
