//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use tapflow_probe::run::{run, RunOptions, RunSummary};
use tapflow_probe::EngineConfig;
use tapflow_record::{FlowRecord, RecordReader};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `../shared/corpus` beside the project, if present. Tests that need it say so loudly when
/// it is missing (the project must build and test without it).
pub fn corpus_dir() -> Option<PathBuf> {
    let d = repo_root().join("../shared/corpus");
    if d.join("manifest.tsv").exists() {
        Some(d)
    } else {
        eprintln!("*** ../shared/corpus not found: corpus checks SKIPPED (fixtures still run) ***");
        None
    }
}

/// Rows of `manifest.tsv` as (file, packets) pairs plus the link type column.
pub fn manifest(dir: &Path) -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((c[0].to_string(), c[4].to_string(), c[5].parse().ok()?))
        })
        .collect()
}

/// Runs the probe in-process on `inputs` with `cfg` and returns the summary and the records.
pub fn probe(inputs: &[&Path], cfg: EngineConfig) -> (RunSummary, Vec<FlowRecord>) {
    let opts = RunOptions {
        inputs: inputs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        engine: cfg,
        progress: false,
        warnings_to_stderr: false,
    };
    let (summary, buf) = run(&opts, Vec::new()).expect("writing to memory cannot fail");
    let reader = RecordReader::new(&buf[..], "memory").expect("own output must read back");
    let recs: Vec<FlowRecord> = reader.map(|r| r.expect("own output must decode")).collect();
    (summary, recs)
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapflow-test-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Path of a workspace binary (built by `cargo test --workspace`, next to the test's deps dir).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run the suite with `cargo test --workspace`",
        p.display()
    );
    p
}

/// Capture files under `tests/fixtures` (recursively).
pub fn fixtures() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap") && !n.ends_with(".csv") && !n.ends_with(".md"))
            {
                out.push(p);
            }
        }
    }
    let mut v = vec![];
    walk(&repo_root().join("tests/fixtures"), &mut v);
    v.sort();
    v
}

/// Every capture: the fixtures (always there) and the corpus when present.
pub fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    if let Some(dir) = corpus_dir() {
        for (file, _, _) in manifest(&dir) {
            v.push(dir.join(file));
        }
    }
    v
}

/// The flow records of a native record file (meta records left out).
pub fn read_tfr(path: &Path) -> Vec<FlowRecord> {
    let f = std::fs::File::open(path).unwrap();
    let rd = tapflow_record::RecordReader::new(f, &path.display().to_string()).unwrap();
    rd.map(|r| r.unwrap()).filter(|r| !r.is_meta()).collect()
}

/// `tapflow-probe -q [--probe-id ID] -r CAPTURE -w TFR` through the binary (as an operator
/// runs it), then its flow records. `None` when the capture yields no record file.
pub fn probe_to_tfr(capture: &Path, tfr: &Path, probe_id: Option<u32>) -> Option<Vec<FlowRecord>> {
    let _ = std::fs::remove_file(tfr);
    let mut cmd = std::process::Command::new(bin("tapflow-probe"));
    cmd.arg("-q");
    if let Some(id) = probe_id {
        cmd.args(["--probe-id", &id.to_string()]);
    }
    let out = cmd
        .arg("-r")
        .arg(capture)
        .arg("-w")
        .arg(tfr)
        .output()
        .unwrap();
    if std::fs::metadata(tfr).map(|m| m.len()).unwrap_or(0) == 0 {
        eprintln!(
            "  probe wrote nothing for {} ({})",
            capture.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(read_tfr(tfr))
}
