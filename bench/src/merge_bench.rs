//! `tapflow-bench merge`: throughput of the merge core on the one-way records of a capture's
//! two split-tap legs.
//!
//! The capture is split into legs, each leg runs through the flow engine in-process (as one
//! `tapflow-probe` per leg would), and the records are decoded once into memory. The timed part
//! is `Merger::push`/`advance`/`finish` over both legs, so the figure is the merge's own cost per
//! record on one core; `decode` gives the native-format reader's cost for the same records.

use anyhow::Result;
use std::time::Instant;

use crate::split::{split, SplitArgs};
use tapflow_merge::{MergeConfig, Merger};
use tapflow_probe::run::{run, RunOptions};
use tapflow_probe::EngineConfig;
use tapflow_record::{FlowRecord, RecordReader};

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Capture to split into two legs.
    #[arg(short = 'r')]
    pub capture: String,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn leg_records(path: &str) -> Result<(Vec<u8>, Vec<FlowRecord>)> {
    let opts = RunOptions {
        inputs: vec![path.to_string()],
        engine: EngineConfig::default(),
        progress: false,
        warnings_to_stderr: false,
    };
    let (_, buf) = run(&opts, Vec::new())?;
    let recs = RecordReader::new(&buf[..], path)?.collect::<Result<Vec<_>, _>>()?;
    Ok((buf, recs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run_merge(a: &MergeArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tapflow-merge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    let n = split(&SplitArgs {
        input: a.capture.clone(),
        a: pa.to_string_lossy().into(),
        b: pb.to_string_lossy().into(),
        shift_b_ns: 0,
    })?;
    let (ba, ra) = leg_records(&pa.to_string_lossy())?;
    let (bb, rb) = leg_records(&pb.to_string_lossy())?;
    let _ = std::fs::remove_dir_all(&dir);
    let total = (ra.len() + rb.len()) as f64;
    let mut merge_s = Vec::new();
    let mut decode_s = Vec::new();
    let mut out = 0u64;
    let mut joined = 0u64;
    // The daemon's commit cost: the merger state at its fullest (before the final flush).
    let mut snap: Option<(usize, usize, f64)> = None;
    for run in 0..a.runs.max(1) {
        let t = Instant::now();
        let mut count = 0u64;
        for buf in [&ba, &bb] {
            for r in RecordReader::new(&buf[..], "memory")? {
                count += r?.pkts();
            }
        }
        std::hint::black_box(count);
        decode_s.push(t.elapsed().as_secs_f64());

        let (ca, cb) = (ra.clone(), rb.clone());
        let t = Instant::now();
        let mut m = Merger::new(MergeConfig::default(), 2);
        let mut sink = |r: &FlowRecord| {
            std::hint::black_box(r);
        };
        // Interleaved in chunks, as tapflow-merge reads two files.
        let (mut ia, mut ib) = (ca.into_iter(), cb.into_iter());
        loop {
            let mut any = false;
            for r in ia.by_ref().take(4096) {
                m.push(0, r, &mut sink);
                any = true;
            }
            for r in ib.by_ref().take(4096) {
                m.push(1, r, &mut sink);
                any = true;
            }
            m.advance(&mut sink);
            if !any {
                break;
            }
        }
        let mut snap_s = 0.0;
        if run == 0 {
            let ts = Instant::now();
            let mut v = Vec::new();
            m.snapshot(&mut v)?;
            snap_s = ts.elapsed().as_secs_f64();
            snap = Some((v.len(), m.active_flows(), snap_s));
        }
        m.finish(&mut sink);
        merge_s.push(t.elapsed().as_secs_f64() - snap_s);
        let s = m.stats();
        out = s.records_out;
        joined = s.joined;
    }
    let (ms, ds) = (median(merge_s), median(decode_s));
    println!(
        "merge: {} (legs {} + {} packets), {} + {} one-way records in, {} merged out ({} flows joined)",
        a.capture,
        n.a,
        n.b,
        ra.len(),
        rb.len(),
        out,
        joined
    );
    println!(
        "  merge core, one core: {:.2} M records/s in ({:.0} ns/record), median of {}",
        total / ms / 1e6,
        ms * 1e9 / total,
        a.runs.max(1)
    );
    println!(
        "  native-format decode of the same records: {:.2} M records/s ({:.0} ns/record)",
        total / ds / 1e6,
        ds * 1e9 / total
    );
    if let Some((bytes, flows, secs)) = snap {
        println!(
            "  state snapshot (a live daemon's commit) with {} flows held: {:.1} MB in {:.0} ms ({:.0} B per flow)",
            flows,
            bytes as f64 / 1e6,
            secs * 1e3,
            bytes as f64 / flows.max(1) as f64
        );
    }
    Ok(())
}
