//! The live merge daemon: probes connect (TLS with client certificates beyond loopback), send
//! their chunks, and get them acknowledged once everything made from them is committed.
//!
//! Exactly once across restarts: every `commit_interval` the daemon flushes its outputs, makes
//! the archive durable, and writes a state file (atomically: temp file, fsync, rename) holding
//! the merger's whole state, the archive position and, per probe run, the last chunk consumed.
//! Only then are those chunks acknowledged. After a crash the daemon restores the state, cuts
//! the archive back to the committed length, and the probes replay the unacknowledged chunks
//! from their spools: what was written after the commit is written again, once.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tapflow_probe::daemon::config::{Dur, EngineSection, OutputSection};
use tapflow_probe::daemon::output::{OutputConfig, OutputPosition, OutputStats, Outputs};
use tapflow_probe::daemon::{log, tls, transport as tp};
use tapflow_record::{FlowRecord, RecordReader};

use crate::{MergeConfig, MergeSink, MergeStats, Merger};

/// `tapflow-merge --config merge.toml` (deploy/merge.example.toml).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Probe id written into merged records.
    pub probe_id: u32,
    /// Where probes connect (`host:port`).
    pub listen: String,
    /// TLS (required unless `listen` is loopback): the CA that signed the probes'
    /// certificates, and the daemon's own certificate and key.
    pub tls: Option<tls::TlsFiles>,
    /// Probe ids of the legs, in input order; the first is the clock reference.
    pub probes: Vec<u32>,
    /// With TLS: the certificate name (CN) each of `probes` must present, in the same order,
    /// so one leg's certificate cannot speak for the other. Empty: any certificate of the CA.
    pub names: Vec<String>,
    /// Where the committed state lives.
    pub state_dir: String,
    /// How often outputs and state are committed (and chunks acknowledged).
    pub commit_interval: Dur,
    /// A probe silent or disconnected this long no longer holds merging back.
    pub hold: Dur,
    pub stats_interval: Dur,
    pub skew_limit: Dur,
    pub max_flows: usize,
    pub max_buffered: usize,
    /// Stop after this long (tests) [run until SIGTERM/SIGINT].
    pub duration: Dur,
    /// The probes' flow rules (timeouts, status interval): must match theirs.
    pub engine: EngineSection,
    pub output: OutputSection,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            probe_id: 0,
            listen: "127.0.0.1:5610".into(),
            tls: None,
            probes: Vec::new(),
            names: Vec::new(),
            state_dir: "/var/lib/tapflow/merge-state".into(),
            commit_interval: Dur::Secs(10.0),
            hold: Dur::Secs(30.0),
            stats_interval: Dur::Secs(60.0),
            skew_limit: Dur::Secs(0.1),
            max_flows: 1 << 21,
            max_buffered: 8 << 20,
            duration: Dur::Secs(0.0),
            engine: EngineSection::default(),
            output: OutputSection::default(),
        }
    }
}

impl DaemonConfig {
    pub fn from_toml(text: &str, source: &str) -> Result<DaemonConfig, String> {
        toml::from_str(text).map_err(|e| format!("{source}: {e}"))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.probes.len() < 2 {
            return Err("give the probe ids of the legs: `probes = [1, 2]` (at least two)".into());
        }
        if !self.names.is_empty() && (self.names.len() != self.probes.len() || self.tls.is_none()) {
            return Err(
                "`names` needs [tls] and one certificate name per entry of `probes`".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        if !self.probes.iter().all(|p| seen.insert(*p)) {
            return Err("a probe id is listed twice in `probes`".into());
        }
        if self.output.archive.is_none() && self.output.listen.is_none() {
            return Err(
                "no output: give an archive template and/or a stream listen address".into(),
            );
        }
        if self.output.file.is_some() {
            return Err(
                "the daemon writes the rotated archive (`output.archive`), not a plain file".into(),
            );
        }
        if let Some(t) = &self.output.archive {
            tapflow_probe::daemon::output::check_template(t)?;
        }
        if self.commit_interval.secs() < 0.1 {
            return Err("commit_interval must be at least 0.1 s".into());
        }
        if self.engine.status_interval.secs() < 0.001 {
            return Err("engine.status_interval must be at least 1 ms".into());
        }
        if self.tls.is_none() {
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&self.listen)
                    .map_err(|e| format!("listen = {:?}: {e}", self.listen))?
                    .collect();
            if addrs.is_empty() || !addrs.iter().all(tls::is_loopback) {
                return Err(format!(
                    "listen = {:?} is not loopback: probes may connect from elsewhere only over TLS with client certificates (set [tls] ca, cert, key)",
                    self.listen
                ));
            }
        }
        Ok(())
    }

    pub fn merge_config(&self) -> MergeConfig {
        MergeConfig {
            probe_id: self.probe_id,
            flow: self.engine.engine_config(self.probe_id, 1, 0),
            max_flows: self.max_flows.max(1),
            max_buffered: self.max_buffered.max(1024),
            skew_limit_ns: self.skew_limit.ns(),
            stats_interval_ns: self.stats_interval.ns(),
        }
    }
}

/// What a daemon run did.
#[derive(Debug, Default)]
pub struct DaemonSummary {
    pub merge: MergeStats,
    pub output: OutputStats,
    pub chunks: u64,
    pub duplicate_chunks: u64,
    pub missing_chunks: u64,
    pub damaged_chunks: u64,
    pub commits: u64,
    pub restored: bool,
    pub connections: u64,
    pub refused: u64,
}

impl DaemonSummary {
    pub fn to_json(&self) -> String {
        let m = &self.merge;
        format!(
            "{{\"restored\":{},\"commits\":{},\"connections\":{},\"refused\":{},\"chunks\":{},\"duplicate_chunks\":{},\"missing_chunks\":{},\"damaged_chunks\":{},\"records_in\":{},\"duplicates\":{},\"gaps\":{},\"late\":{},\"joined\":{},\"one_sided\":{},\"records_out\":{},\"flow_records\":{},\"status_records\":{},\"archive_files\":{}}}\n",
            self.restored,
            self.commits,
            self.connections,
            self.refused,
            self.chunks,
            self.duplicate_chunks,
            self.missing_chunks,
            self.damaged_chunks,
            m.records_in,
            m.duplicates,
            m.gaps,
            m.late,
            m.joined,
            m.one_sided,
            m.records_out,
            self.output.flow_records,
            self.output.status_records,
            self.output.archive_files
        )
    }
}

/// Merged records into the outputs; the first write error is kept for the loop to act on.
struct OutSink<'a> {
    out: &'a mut Outputs,
    err: &'a mut Option<String>,
}

impl MergeSink for OutSink<'_> {
    fn record(&mut self, r: &FlowRecord) {
        if let Err(e) = self.out.write(r) {
            self.err.get_or_insert(e.to_string());
        }
    }
}

enum Event {
    Block {
        input: usize,
        probe: u32,
        run: u64,
        no: u64,
        chunk: Vec<u8>,
    },
    Conn {
        input: usize,
        up: bool,
    },
}

/// Per probe: per run, the last chunk committed (what RESUME and ACK say).
type Committed = HashMap<u32, BTreeMap<u64, u64>>;

struct Shared {
    committed: Mutex<Committed>,
    /// Per probe, the id of its current connection (a newer one replaces an older).
    active: Mutex<HashMap<u32, u64>>,
    next_conn: AtomicU64,
    stop: Arc<AtomicBool>,
    connections: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn committed_of(&self, probe: u32) -> Vec<(u64, u64)> {
        let c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&probe)
            .map(|m| m.iter().map(|(&r, &n)| (r, n)).collect())
            .unwrap_or_default()
    }
}

const STATE_MAGIC: &[u8; 8] = b"TFMSTAT1";

/// The committed state file: consumed chunks, archive position, merger state.
fn write_state(
    dir: &Path,
    consumed: &Committed,
    pos: &Option<OutputPosition>,
    merger: &Merger,
) -> io::Result<()> {
    let mut b = Vec::with_capacity(1 << 20);
    b.extend_from_slice(STATE_MAGIC);
    let n: usize = consumed.values().map(|m| m.len()).sum();
    b.extend_from_slice(&(n as u32).to_le_bytes());
    for (p, m) in consumed {
        for (r, c) in m {
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&r.to_le_bytes());
            b.extend_from_slice(&c.to_le_bytes());
        }
    }
    let pb = pos.as_ref().map(|p| p.encode()).unwrap_or_default();
    b.extend_from_slice(&(pb.len() as u32).to_le_bytes());
    b.extend_from_slice(&pb);
    merger.snapshot(&mut b)?;
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("merge.state.tmp");
    let fin = dir.join("merge.state");
    let mut f = File::create(&tmp)?;
    f.write_all(&b)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, &fin)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

type Restored = (Committed, Option<OutputPosition>, Merger);

fn read_state(dir: &Path, cfg: &MergeConfig, inputs: usize) -> Result<Option<Restored>, String> {
    let path = dir.join("merge.state");
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |what: &str| format!("{}: {what}; move it away to start afresh", path.display());
    if b.len() < 20 || &b[..8] != STATE_MAGIC {
        return Err(bad("not a tapflow-merge state file"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4")) {
        return Err(bad("checksum mismatch (damaged)"));
    }
    let mut r = &body[8..];
    let mut take = |n: usize| -> Result<&[u8], String> {
        if r.len() < n {
            return Err(bad("truncated"));
        }
        let (a, rest) = r.split_at(n);
        r = rest;
        Ok(a)
    };
    let n = u32::from_le_bytes(take(4)?.try_into().expect("4")) as usize;
    let mut consumed = Committed::new();
    for _ in 0..n {
        let p = u32::from_le_bytes(take(4)?.try_into().expect("4"));
        let run = u64::from_le_bytes(take(8)?.try_into().expect("8"));
        let c = u64::from_le_bytes(take(8)?.try_into().expect("8"));
        consumed.entry(p).or_default().insert(run, c);
    }
    let pl = u32::from_le_bytes(take(4)?.try_into().expect("4")) as usize;
    let pb = take(pl)?;
    let pos = if pl == 0 {
        None
    } else {
        Some(OutputPosition::decode(pb).ok_or_else(|| bad("bad archive position"))?)
    };
    let mut rest = r;
    let merger = Merger::restore(cfg.clone(), inputs, &mut rest)
        .map_err(|e| bad(&format!("merger state: {e}")))?;
    Ok(Some((consumed, pos, merger)))
}

/// Runs the daemon until `stop` (SIGTERM/SIGINT) or the configured duration.
pub fn run(cfg: &DaemonConfig, stop: Arc<AtomicBool>) -> Result<DaemonSummary, String> {
    cfg.validate()?;
    let t0 = Instant::now();
    let mcfg = cfg.merge_config();
    let inputs = cfg.probes.len();
    let state_dir = PathBuf::from(&cfg.state_dir);
    fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let tls_cfg = match &cfg.tls {
        Some(t) => Some(tls::server_config(t)?),
        None => None,
    };
    let mut summary = DaemonSummary::default();
    let (consumed, pos, mut merger) = match read_state(&state_dir, &mcfg, inputs)? {
        Some((c, p, m)) => {
            log(&format!(
                "restored the committed state from {} ({} flows held; archive {})",
                state_dir.join("merge.state").display(),
                m.active_flows(),
                p.as_ref()
                    .map_or("none".into(), |p| format!("{} at {} bytes", p.part, p.len))
            ));
            summary.restored = true;
            (c, p, m)
        }
        None => (Committed::new(), None, Merger::new(mcfg.clone(), inputs)),
    };
    let listener =
        TcpListener::bind(&cfg.listen).map_err(|e| format!("listen {}: {e}", cfg.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listen {}: {e}", cfg.listen))?;
    let stream_listener = match &cfg.output.listen {
        Some(a) => {
            let l = TcpListener::bind(a).map_err(|e| format!("stream listen {a}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("stream listen {a}: {e}"))?;
            Some(l)
        }
        None => None,
    };
    if let Some(t) = &cfg.output.archive {
        let base = tapflow_probe::daemon::output::template_base_dir(t);
        fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    }
    let mut out = Outputs::new(
        OutputConfig {
            probe_id: cfg.probe_id,
            file: None,
            archive: cfg.output.archive.clone(),
            rotate_ns: cfg.output.rotate.ns(),
            listener: stream_listener,
            client_buffer: cfg.output.client_buffer,
            flush_ns: cfg.output.flush_interval.ns().max(10_000_000),
            zstd_level: cfg.output.zstd_level,
            spool: None,
            resume: pos,
        },
        0,
    )
    .map_err(|e| format!("output: {e}"))?;
    out.set_auto_rotate(false);
    log(&format!(
        "listening for probes {:?} on {}{}",
        cfg.probes,
        cfg.listen,
        if tls_cfg.is_some() {
            " (TLS, client certificates required)"
        } else {
            " (loopback, plain TCP)"
        }
    ));

    let shared = Arc::new(Shared {
        committed: Mutex::new(consumed.clone()),
        active: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
        stop: stop.clone(),
        connections: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    // Chunks are at most ~8 MiB: this bounds what waits for the merge thread.
    let (tx, rx) = sync_channel::<Event>(32);
    let acceptor = {
        let shared = shared.clone();
        let legs = Legs {
            probes: cfg.probes.clone(),
            names: cfg.names.clone(),
        };
        std::thread::Builder::new()
            .name("merge-accept".into())
            .spawn(move || accept_loop(listener, tls_cfg, legs, shared, tx))
            .map_err(|e| format!("cannot start the acceptor: {e}"))?
    };

    let r = merge_loop(
        cfg,
        &mut merger,
        &mut out,
        consumed,
        &shared,
        rx,
        &state_dir,
        t0,
        &mut summary,
    );
    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    r?;
    summary.merge = merger.stats();
    summary.output = out.finish().map_err(|e| format!("output: {e}"))?;
    summary.connections = shared.connections.load(Ordering::Relaxed);
    summary.refused = shared.refused.load(Ordering::Relaxed);
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn merge_loop(
    cfg: &DaemonConfig,
    merger: &mut Merger,
    out: &mut Outputs,
    mut consumed: Committed,
    shared: &Shared,
    rx: Receiver<Event>,
    state_dir: &Path,
    t0: Instant,
    summary: &mut DaemonSummary,
) -> Result<(), String> {
    let inputs = cfg.probes.len();
    let hold = Duration::from_secs_f64(cfg.hold.secs());
    let commit_every = Duration::from_secs_f64(cfg.commit_interval.secs());
    let limit = (cfg.duration.secs() > 0.0).then(|| Duration::from_secs_f64(cfg.duration.secs()));
    let mut last_data = vec![Instant::now(); inputs];
    let mut up = vec![false; inputs];
    let mut stalled = vec![false; inputs];
    let mut last_commit = Instant::now();
    let mut write_err: Option<String> = None;
    let commit = |merger: &Merger,
                  out: &mut Outputs,
                  consumed: &Committed,
                  summary: &mut DaemonSummary|
     -> Result<(), String> {
        let pos = out.commit().map_err(|e| format!("output: {e}"))?;
        write_state(state_dir, consumed, &pos, merger)
            .map_err(|e| format!("state {}: {e}", state_dir.display()))?;
        *shared.committed.lock().unwrap_or_else(|e| e.into_inner()) = consumed.clone();
        summary.commits += 1;
        Ok(())
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) || limit.is_some_and(|l| t0.elapsed() >= l) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Conn { input, up: u }) => {
                up[input] = u;
                last_data[input] = Instant::now();
            }
            Ok(Event::Block {
                input,
                probe,
                run,
                no,
                chunk,
            }) => {
                last_data[input] = Instant::now();
                let c = consumed.entry(probe).or_default();
                let prev = c.get(&run).copied().unwrap_or(0);
                // Runs older than every run still listed were pruned: their chunks are done.
                let pruned = c.len() >= MAX_RUNS && c.keys().next().is_some_and(|&r| run < r);
                if no <= prev || pruned {
                    summary.duplicate_chunks += 1;
                } else {
                    take_chunk(
                        merger,
                        out,
                        summary,
                        &mut write_err,
                        c,
                        input,
                        probe,
                        run,
                        no,
                        prev,
                        &chunk,
                    );
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Inputs silent or away beyond the hold time stop holding the merge back.
        for p in 0..inputs {
            let s = last_data[p].elapsed() >= hold;
            if s != stalled[p] {
                log(&format!(
                    "probe {}: {}",
                    cfg.probes[p],
                    if s {
                        format!("silent for {:.0} s: merging without it (its late records will be one-sided)", hold.as_secs_f64())
                    } else {
                        "back: merging waits for it again".into()
                    }
                ));
                stalled[p] = s;
            }
            merger.set_input_state(p, up[p], stalled[p]);
        }
        merger.advance(&mut OutSink {
            out,
            err: &mut write_err,
        });
        if let Some(e) = write_err.take() {
            return Err(format!("output: {e}"));
        }
        let now = tapflow_capture::live::realtime_ns();
        if out.rotation_due(now) {
            // A rotation sits between two commits, so a restart never has to guess which
            // archive file holds the committed records.
            commit(merger, out, &consumed, summary)?;
            out.tick(true, true).map_err(|e| format!("output: {e}"))?;
            commit(merger, out, &consumed, summary)?;
            last_commit = Instant::now();
        } else {
            out.tick(false, false).map_err(|e| format!("output: {e}"))?;
        }
        if last_commit.elapsed() >= commit_every {
            commit(merger, out, &consumed, summary)?;
            last_commit = Instant::now();
        }
    }
    // A stop is a restart point: commit, do not flush the flows (the next run continues them).
    commit(merger, out, &consumed, summary)?;
    log("stopped: state committed; a restart continues every flow held");
    Ok(())
}

/// Most runs remembered per probe (a probe that restarted this often while its spool still
/// held the oldest is far beyond any sane deployment; older chunks are then taken as done).
const MAX_RUNS: usize = 4096;

/// Feeds one new chunk to the merger.
#[allow(clippy::too_many_arguments)]
fn take_chunk(
    merger: &mut Merger,
    out: &mut Outputs,
    summary: &mut DaemonSummary,
    write_err: &mut Option<String>,
    c: &mut BTreeMap<u64, u64>,
    input: usize,
    probe: u32,
    run: u64,
    no: u64,
    prev: u64,
    chunk: &[u8],
) {
    if no > prev + 1 {
        summary.missing_chunks += no - prev - 1;
        log(&format!(
            "probe {probe} run {run}: chunks {}..{} never arrived (the probe's spool was full or failed); its records are missing",
            prev + 1,
            no - 1
        ));
    }
    c.insert(run, no);
    // Old runs of a probe are kept a while for late replays, not for ever.
    while c.len() > MAX_RUNS {
        let first = *c.keys().next().expect("non-empty");
        c.remove(&first);
    }
    summary.chunks += 1;
    match RecordReader::new(io::Cursor::new(chunk), "chunk") {
        Ok(mut rd) => {
            loop {
                match rd.next_record() {
                    Ok(Some(rec)) => merger.push_run(
                        input,
                        run,
                        rec,
                        &mut OutSink {
                            out,
                            err: write_err,
                        },
                    ),
                    Ok(None) => break,
                    Err(e) => {
                        summary.damaged_chunks += 1;
                        log(&format!(
                            "probe {probe} run {run} chunk {no}: {e}; its good records were kept"
                        ));
                        break;
                    }
                }
            }
            for w in rd.take_warnings() {
                log(&format!("probe {probe} run {run} chunk {no}: {w}"));
            }
        }
        Err(e) => {
            summary.damaged_chunks += 1;
            log(&format!("probe {probe} run {run} chunk {no}: {e}; skipped"));
        }
    }
}

/// Who may connect: probe ids, and (optional) the certificate name each must present.
#[derive(Clone)]
struct Legs {
    probes: Vec<u32>,
    names: Vec<String>,
}

fn accept_loop(
    listener: TcpListener,
    tls_cfg: Option<Arc<rustls::ServerConfig>>,
    probes: Legs,
    shared: Arc<Shared>,
    tx: SyncSender<Event>,
) {
    let mut conns = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((sock, peer)) => {
                let shared = shared.clone();
                let tx = tx.clone();
                let tls_cfg = tls_cfg.clone();
                let probes = probes.clone();
                if let Ok(h) = std::thread::Builder::new()
                    .name(format!("merge-conn-{peer}"))
                    .spawn(move || {
                        if let Err(e) = serve(sock, tls_cfg, &probes, &shared, &tx) {
                            log(&format!("probe connection from {peer}: {e}"));
                        }
                    })
                {
                    conns.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                log(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        conns.retain(|h| !h.is_finished());
    }
    for h in conns {
        let _ = h.join();
    }
}

/// One probe connection.
fn serve(
    sock: TcpStream,
    tls_cfg: Option<Arc<rustls::ServerConfig>>,
    legs: &Legs,
    shared: &Shared,
    tx: &SyncSender<Event>,
) -> Result<(), String> {
    let peer = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|_| sock.set_write_timeout(Some(Duration::from_secs(30))))
        .map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    let mut conn = match &tls_cfg {
        Some(t) => tls::accept(t, sock).inspect_err(|_| {
            shared.refused.fetch_add(1, Ordering::Relaxed);
        })?,
        None => tls::Conn::Plain(sock),
    };
    let who = conn
        .peer_name()
        .map_or(peer.clone(), |n| format!("{n} ({peer})"));
    let mut rd = tp::MsgReader::default();
    let (kind, body) = rd
        .read_blocking(&mut conn)
        .map_err(|e| format!("{who}: {e}"))?;
    if kind != tp::HELLO {
        return Err(format!("{who}: expected HELLO, got message {kind}"));
    }
    let (probe, run) = tp::parse_hello(&body).map_err(|e| format!("{who}: {e}"))?;
    let probes = &legs.probes;
    let refuse = |conn: &mut tls::Conn, why: String| {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        let _ = tp::write_msg(conn, tp::REFUSE, &[why.as_bytes()]);
        let _ = conn.flush();
        Err(format!("{who}: {why}"))
    };
    let Some(input) = probes.iter().position(|&p| p == probe) else {
        return refuse(
            &mut conn,
            format!("probe id {probe} is not one of this daemon's legs {probes:?}"),
        );
    };
    if let Some(want) = legs.names.get(input) {
        let name = conn.peer_name();
        if name.as_deref() != Some(want.as_str()) {
            return refuse(
                &mut conn,
                format!("probe id {probe} must present certificate {want:?}, not {name:?}"),
            );
        }
    }
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    if let Some(old) = shared
        .active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(probe, id)
    {
        log(&format!(
            "probe {probe}: new connection from {who} replaces connection {old}"
        ));
    }
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let resume = shared.committed_of(probe);
    tp::write_msg(&mut conn, tp::RESUME, &[&tp::pairs(&resume)])
        .and_then(|_| conn.flush())
        .map_err(|e| format!("{who}: {e}"))?;
    let mut sent: BTreeMap<u64, u64> = resume.into_iter().collect();
    log(&format!(
        "probe {probe} (leg {input}) connected from {who}, run {run}"
    ));
    let _ = tx.send(Event::Conn { input, up: true });
    conn.tcp()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let current = || {
        shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&probe)
            == Some(&id)
    };
    let result = loop {
        if shared.stop.load(Ordering::Relaxed) || !current() {
            break Ok(());
        }
        match rd.poll(&mut conn) {
            Ok(Some((tp::BLOCK, body))) => {
                let (r, no, chunk) = match tp::parse_u64_pair(&body) {
                    Ok(x) => x,
                    Err(e) => break Err(format!("{who}: {e}")),
                };
                let ev = Event::Block {
                    input,
                    probe,
                    run: r,
                    no,
                    chunk: chunk.to_vec(),
                };
                if tx.send(ev).is_err() {
                    break Ok(());
                }
            }
            Ok(Some((k, _))) => break Err(format!("{who}: unexpected message {k}")),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break Err(format!("probe {probe} disconnected"));
            }
            Err(e) => break Err(format!("{who}: {e}")),
        }
        // Acknowledge what has been committed since.
        for (r, c) in shared.committed_of(probe) {
            if sent.get(&r) != Some(&c) {
                if let Err(e) = tp::write_msg(&mut conn, tp::ACK, &[&tp::u64_pair(r, c)])
                    .and_then(|_| conn.flush())
                {
                    return Err(format!("{who}: {e}"));
                }
                sent.insert(r, c);
            }
        }
    };
    let was_current = {
        let mut a = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        let cur = a.get(&probe) == Some(&id);
        if cur {
            a.remove(&probe);
        }
        cur
    };
    if was_current {
        let _ = tx.send(Event::Conn { input, up: false });
    }
    result
}

/// Reads a whole file (helper for the CLI's config).
pub fn read_config(path: &str) -> Result<DaemonConfig, String> {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| format!("{path}: {e}"))?;
    DaemonConfig::from_toml(&s, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<(), String> {
        DaemonConfig::from_toml(text, "t")?.validate()
    }

    #[test]
    fn plain_tcp_only_on_loopback() {
        let out = "probes = [1, 2]\n[output]\narchive = \"/tmp/x.%s.tfr\"\n";
        cfg(&format!("listen = \"127.0.0.1:5610\"\n{out}")).unwrap();
        let e = cfg(&format!("listen = \"0.0.0.0:5610\"\n{out}")).unwrap_err();
        assert!(e.contains("not loopback") && e.contains("TLS"), "{e}");
        let e =
            cfg("listen = \"127.0.0.1:5610\"\nprobes = [1]\n[output]\narchive = \"/tmp/x.tfr\"\n")
                .unwrap_err();
        assert!(e.contains("at least two"), "{e}");
        let e = cfg("probes = [1, 1]\n[output]\narchive = \"/tmp/x.tfr\"\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = cfg("probes = [1, 2]\n").unwrap_err();
        assert!(e.contains("no output"), "{e}");
        let e = cfg("probes = [1, 2]\n[output]\nfile = \"/tmp/x.tfr\"\n").unwrap_err();
        assert!(e.contains("archive"), "{e}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/merge.example.toml");
        let c = read_config(path).unwrap();
        c.validate().unwrap();
        assert_eq!(c.probes, vec![1, 2]);
        assert!(c.tls.is_some());
        assert_eq!(c.merge_config().flow.status_interval_ns, 5_000_000_000);
    }

    #[test]
    fn damaged_state_is_refused_clearly() {
        let dir = std::env::temp_dir().join(format!("tapflow-mstate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mcfg = MergeConfig::default();
        assert!(read_state(&dir, &mcfg, 2).unwrap().is_none());
        let m = Merger::new(mcfg.clone(), 2);
        let mut consumed = Committed::new();
        consumed.entry(1).or_default().insert(77, 5);
        let pos = Some(OutputPosition {
            part: "/a/.x.part".into(),
            path: "/a/x".into(),
            len: 36,
            until_ns: 9,
        });
        write_state(&dir, &consumed, &pos, &m).unwrap();
        let (c, p, _) = read_state(&dir, &mcfg, 2).unwrap().unwrap();
        assert_eq!(c, consumed);
        assert_eq!(p, pos);
        // A flipped byte anywhere is caught by the checksum, and named.
        let path = dir.join("merge.state");
        let mut b = fs::read(&path).unwrap();
        b[20] ^= 1;
        fs::write(&path, &b).unwrap();
        let e = read_state(&dir, &mcfg, 2).err().unwrap();
        assert!(e.contains("merge.state") && e.contains("checksum"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
