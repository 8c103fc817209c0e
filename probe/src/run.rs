//! The offline driver: capture files → engine → native record output, with the end-of-run
//! summary. Kept out of `main.rs` so tests and the bench drive the exact same path.

use crate::decode::{DecodeStats, Malformed};
use crate::engine::{Engine, EngineConfig, EngineStats, RecordSink};
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};
use tapflow_capture::{file, CaptureStats, LinkType};
use tapflow_record::{
    FileHeader, FlowRecord, RecordWriter, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR,
};

/// What a run did: the numbers the summary prints and tests check (conservation).
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub inputs: Vec<InputSummary>,
    pub engine: EngineStats,
    pub decode: DecodeStats,
    /// Sum of packets and bytes over the records written.
    pub record_pkts: u64,
    pub record_bytes: u64,
    pub records_written: u64,
    pub output_bytes: u64,
    pub elapsed: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct InputSummary {
    pub name: String,
    pub capture: CaptureStats,
    pub warnings: Vec<String>,
    /// Fatal error for this input (it could not be opened, or reading stopped).
    pub error: Option<String>,
}

impl RunSummary {
    pub fn packets_in(&self) -> u64 {
        self.inputs.iter().map(|i| i.capture.packets).sum()
    }
    pub fn wire_bytes_in(&self) -> u64 {
        self.inputs.iter().map(|i| i.capture.wire_bytes).sum()
    }
    /// Every packet read is in a record or counted as malformed; every byte too (link
    /// pseudo-headers, which Argus leaves out of flow bytes, are counted apart).
    pub fn conserved(&self) -> bool {
        let d = &self.decode;
        self.record_pkts + d.malformed_total() == self.packets_in()
            && self.record_bytes + d.malformed_bytes + d.link_pseudo_bytes == self.wire_bytes_in()
    }
    pub fn had_errors(&self) -> bool {
        self.inputs.iter().any(|i| i.error.is_some())
            || self.decode.malformed[Malformed::UnsupportedLink as usize] > 0
    }

    /// The human summary printed at the end of a run.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let pk = self.packets_in();
        let _ = writeln!(
            s,
            "tapflow-probe: {} packets, {} bytes read from {} input(s) in {:.3} s ({:.2} Mpps)",
            pk,
            self.wire_bytes_in(),
            self.inputs.len(),
            secs,
            pk as f64 / secs / 1e6
        );
        let e = &self.engine;
        let _ = writeln!(
            s,
            "  flows: {} created, {} peak, {} evicted; records: {} written ({} bytes), \
             {} close, {} idle, {} status, {} evicted, {} shutdown",
            e.flows_created,
            e.peak_flows,
            e.evictions,
            self.records_written,
            self.output_bytes,
            e.records_by_cause[2],
            e.records_by_cause[3],
            e.records_by_cause[1],
            e.records_by_cause[4],
            e.records_by_cause[5]
        );
        if e.one_way {
            let _ = writeln!(
                s,
                "  link: one direction of a split tap ({} one-way vs {} two-way TCP flows); \
                 records are marked one-way for tapflow-merge",
                e.oneway_evidence, e.twoway_evidence
            );
        }
        let d = &self.decode;
        let _ = writeln!(
            s,
            "  in records: {} packets, {} bytes; malformed: {} packets, {} bytes{}",
            self.record_pkts,
            self.record_bytes,
            d.malformed_total(),
            d.malformed_bytes,
            if d.link_pseudo_bytes > 0 {
                format!(
                    "; link pseudo-headers left out of flow bytes: {}",
                    d.link_pseudo_bytes
                )
            } else {
                String::new()
            }
        );
        for m in Malformed::ALL {
            let n = d.malformed[m as usize];
            if n > 0 {
                let _ = writeln!(s, "    malformed {}: {}", m.name(), n);
            }
        }
        for &(l, n) in d.unsupported_links.iter().filter(|e| e.1 > 0) {
            let _ = writeln!(
                s,
                "    not decoded: link type {}: {} packets",
                LinkType(l),
                n
            );
        }
        if d.frag_matched + d.frag_unmatched > 0 {
            let _ = writeln!(
                s,
                "  fragments: {} attributed to their flow, {} without a first fragment",
                d.frag_matched, d.frag_unmatched
            );
        }
        if d.tunnel_inner_bad > 0 {
            let _ = writeln!(
                s,
                "  tunnels with an undecodable inner packet (kept as outer flow): {}",
                d.tunnel_inner_bad
            );
        }
        if d.snaplen_truncated > 0 {
            let _ = writeln!(
                s,
                "  packets cut by the snap length: {}",
                d.snaplen_truncated
            );
        }
        let lost: u64 = self.inputs.iter().map(|i| i.capture.drops).sum();
        if lost > 0 {
            // ERF loss counters: records the capture card could not deliver (not in the file).
            let _ = writeln!(
                s,
                "  lost before the file by the capture source (ERF loss counters): {lost} packets"
            );
        }
        if !self.conserved() {
            let _ = writeln!(
                s,
                "  WARNING: packet/byte conservation does not hold (a bug; please report)"
            );
        }
        s
    }

    pub fn to_json(&self) -> String {
        let d = &self.decode;
        let e = &self.engine;
        let malformed: Vec<String> = Malformed::ALL
            .iter()
            .map(|m| format!("\"{}\":{}", m.name(), d.malformed[*m as usize]))
            .collect();
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{{\"name\":{},\"packets\":{},\"wire_bytes\":{},\"bad_records\":{},\"warnings\":{},\"error\":{}}}",
                    json_str(&i.name),
                    i.capture.packets,
                    i.capture.wire_bytes,
                    i.capture.bad_records,
                    i.warnings.len(),
                    i.error.as_deref().map(json_str).unwrap_or_else(|| "null".into())
                )
            })
            .collect();
        format!(
            "{{\"packets_in\":{},\"wire_bytes_in\":{},\"record_pkts\":{},\"record_bytes\":{},\
             \"records\":{},\"output_bytes\":{},\"flows\":{},\"peak_flows\":{},\"evictions\":{},\
             \"malformed_pkts\":{},\"malformed_bytes\":{},\"link_pseudo_bytes\":{},\"malformed\":{{{}}},\
             \"frag_matched\":{},\"frag_unmatched\":{},\"tunnel_inner_bad\":{},\"conserved\":{},\
             \"one_way\":{},\"elapsed_s\":{:.6},\"inputs\":[{}]}}",
            self.packets_in(),
            self.wire_bytes_in(),
            self.record_pkts,
            self.record_bytes,
            self.records_written,
            self.output_bytes,
            e.flows_created,
            e.peak_flows,
            e.evictions,
            d.malformed_total(),
            d.malformed_bytes,
            d.link_pseudo_bytes,
            malformed.join(","),
            d.frag_matched,
            d.frag_unmatched,
            d.tunnel_inner_bad,
            self.conserved(),
            e.one_way,
            self.elapsed.as_secs_f64(),
            inputs.join(",")
        )
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Where records go: the native writer, counting what passed through it.
struct WriterSink<W: Write> {
    w: RecordWriter<W>,
    err: Option<io::Error>,
    pkts: u64,
    bytes: u64,
}

impl<W: Write> RecordSink for WriterSink<W> {
    fn record(&mut self, rec: &FlowRecord) {
        self.pkts += rec.pkts();
        self.bytes += rec.bytes();
        if self.err.is_none() {
            if let Err(e) = self.w.write(rec) {
                self.err = Some(e);
            }
        }
    }
}

pub struct RunOptions {
    pub inputs: Vec<String>,
    pub engine: EngineConfig,
    /// Show a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Print warnings as they come.
    pub warnings_to_stderr: bool,
}

/// Reads every input through one engine and writes the records to `out`. Input problems are
/// collected in the summary (the run goes on with the next input); an output error is fatal.
pub fn run<W: Write>(opts: &RunOptions, out: W) -> io::Result<(RunSummary, W)> {
    let t0 = Instant::now();
    let mut engine = Engine::new(opts.engine.clone());
    let header = FileHeader {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
        probe_id: opts.engine.probe_id,
        created_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        flags: 0,
    };
    let mut sink = WriterSink {
        w: RecordWriter::new(out, &header, WriterOptions::default())?,
        err: None,
        pkts: 0,
        bytes: 0,
    };
    let mut summary = RunSummary::default();
    let show_progress = opts.progress && io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    for name in &opts.inputs {
        let mut inp = InputSummary {
            name: name.clone(),
            ..Default::default()
        };
        match file::open(name) {
            Err(e) => inp.error = Some(e.to_string()),
            Ok(mut cap) => {
                loop {
                    match cap.next_batch() {
                        Ok(Some(batch)) => engine.process_batch(&batch, &mut sink),
                        Ok(None) => break,
                        Err(e) => {
                            inp.error = Some(e.to_string());
                            break;
                        }
                    }
                    if let Some(e) = sink.err.take() {
                        return Err(e);
                    }
                    if show_progress && last_progress.elapsed() > Duration::from_millis(250) {
                        last_progress = Instant::now();
                        let (done, total) = cap.progress();
                        let pct = total.map(|t| done as f64 * 100.0 / t.max(1) as f64);
                        let st = engine.stats();
                        eprint!(
                            "\r{}: {}{} packets, {} flows active, {} records  ",
                            name,
                            pct.map(|p| format!("{p:5.1}%, ")).unwrap_or_default(),
                            st.packets,
                            st.active_flows,
                            st.records
                        );
                    }
                    for w in cap.take_warnings() {
                        if opts.warnings_to_stderr {
                            eprintln!("tapflow-probe: warning: {w}");
                        }
                        inp.warnings.push(w.to_string());
                    }
                }
                for w in cap.take_warnings() {
                    if opts.warnings_to_stderr {
                        eprintln!("tapflow-probe: warning: {w}");
                    }
                    inp.warnings.push(w.to_string());
                }
                inp.capture = cap.stats();
            }
        }
        if show_progress {
            eprint!("\r\x1b[K");
        }
        summary.inputs.push(inp);
    }
    engine.flush(&mut sink);
    if let Some(e) = sink.err.take() {
        return Err(e);
    }
    sink.w.flush_block()?;
    summary.records_written = sink.w.records_written();
    summary.output_bytes = sink.w.bytes_written();
    let w = sink.w.finish()?;
    summary.engine = engine.stats();
    summary.decode = engine.decoder.stats.clone();
    summary.record_pkts = sink.pkts;
    summary.record_bytes = sink.bytes;
    summary.elapsed = t0.elapsed();
    Ok((summary, w))
}
