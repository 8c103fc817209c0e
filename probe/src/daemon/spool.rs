//! The spool: every chunk for the merge daemon is written here first (bounded, on disk), and a
//! sender thread streams it to the daemon and deletes what the daemon has acknowledged. So a
//! daemon that is down, restarting or unreachable costs nothing but disk, and a probe restart
//! replays what the last run had not delivered.
//!
//! Segment files `spool-<run>-<first>.tfs` hold frames
//! `"TFSP", run u64, no u64, len u32, crc32c u32, chunk[len]` (LE). A torn frame at the end of
//! a segment (a crash mid-write) is cut off when the spool is opened.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::log;
use super::tls::{self, Conn};
use super::transport as tp;

const FRAME_MAGIC: [u8; 4] = *b"TFSP";
const FRAME_HEAD: usize = 28;

#[derive(Debug)]
struct Seg {
    path: PathBuf,
    run: u64,
    first: u64,
    last: u64,
    bytes: u64,
}

#[derive(Default)]
struct State {
    segs: VecDeque<Seg>,
    /// Append handle of `segs.back()` while it belongs to this run.
    cur: Option<File>,
    total: u64,
    next_no: u64,
    acked: HashMap<u64, u64>,
    dropped_chunks: u64,
    dropped_bytes: u64,
    written_chunks: u64,
    write_errors: u64,
    closed: bool,
}

/// What the spool did (for the summary and `--stats-json`).
#[derive(Clone, Debug, Default)]
pub struct SpoolStats {
    pub chunks: u64,
    /// Chunks not spooled because the spool was full (or the disk failed): lost for the merge.
    pub dropped_chunks: u64,
    pub dropped_bytes: u64,
    pub write_errors: u64,
    /// Bytes still waiting for the daemon's acknowledgment at exit (replayed by the next run).
    pub pending_bytes: u64,
    pub connections: u64,
}

/// A handle on the spool (shared by the output thread and the sender).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<(Mutex<State>, Condvar)>,
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    run: u64,
}

fn seg_name(run: u64, first: u64) -> String {
    format!("spool-{run:020}-{first:012}.tfs")
}

/// Reads the frame at `at`: (run, no, chunk length). `Ok(None)` at the end or on a torn
/// frame; `Err` when the disk would not say (the caller retries, it does not skip).
fn frame_at(f: &File, at: u64, file_len: u64) -> io::Result<Option<(u64, u64, usize)>> {
    let mut h = [0u8; FRAME_HEAD];
    if at + FRAME_HEAD as u64 > file_len {
        return Ok(None);
    }
    f.read_exact_at(&mut h, at)?;
    if h[..4] != FRAME_MAGIC {
        return Ok(None);
    }
    let run = u64::from_le_bytes(h[4..12].try_into().expect("8"));
    let no = u64::from_le_bytes(h[12..20].try_into().expect("8"));
    let len = u32::from_le_bytes(h[20..24].try_into().expect("4")) as usize;
    if at + (FRAME_HEAD + len) as u64 > file_len {
        return Ok(None);
    }
    Ok(Some((run, no, len)))
}

fn read_chunk(f: &File, at: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut h = [0u8; FRAME_HEAD];
    f.read_exact_at(&mut h, at)?;
    buf.clear();
    buf.resize(len, 0);
    f.read_exact_at(buf, at + FRAME_HEAD as u64)?;
    let crc = u32::from_le_bytes(h[24..28].try_into().expect("4"));
    Ok(crc32c::crc32c(buf) == crc)
}

impl Spool {
    /// Opens (creates) the spool directory and takes over what earlier runs left in it. The
    /// run id is `run` (the start time), but always above every earlier run's, even when the
    /// clock stepped back: the daemon and the sender order runs by their ids.
    pub fn open(dir: &Path, max_bytes: u64, run: u64) -> Result<Spool, String> {
        fs::create_dir_all(dir).map_err(|e| format!("spool {}: {e}", dir.display()))?;
        let run_file = dir.join("last-run");
        let last: u64 = fs::read_to_string(&run_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut segs = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| format!("spool {}: {e}", dir.display()))?;
        let mut buf = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "tfs") {
                continue;
            }
            let f = File::open(&path).map_err(|e| format!("spool {}: {e}", path.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let (mut at, mut first, mut last, mut srun) = (0u64, 0u64, 0u64, 0u64);
            while let Ok(Some((r, no, n))) = frame_at(&f, at, len) {
                if !read_chunk(&f, at, n, &mut buf).unwrap_or(false) {
                    break;
                }
                if first == 0 {
                    first = no;
                    srun = r;
                }
                last = no;
                at += (FRAME_HEAD + n) as u64;
            }
            if at < len {
                log(&format!(
                    "spool {}: torn or corrupt frame at offset {at} (file is {len} bytes): cut there",
                    path.display()
                ));
                let _ = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(at));
            }
            if first == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            segs.push(Seg {
                path,
                run: srun,
                first,
                last,
                bytes: at,
            });
        }
        segs.sort_by_key(|s| (s.run, s.first));
        let run = run
            .max(last + 1)
            .max(segs.iter().map(|s| s.run + 1).max().unwrap_or(0));
        let tmp = dir.join("last-run.tmp");
        fs::write(&tmp, format!("{run}\n"))
            .and_then(|_| File::open(&tmp).and_then(|f| f.sync_all()))
            .and_then(|_| fs::rename(&tmp, &run_file))
            .map_err(|e| format!("spool {}: {e}", run_file.display()))?;
        let total = segs.iter().map(|s| s.bytes).sum();
        if !segs.is_empty() {
            log(&format!(
                "spool {}: {} chunks ({} bytes) of earlier runs to deliver",
                dir.display(),
                segs.iter().map(|s| s.last - s.first + 1).sum::<u64>(),
                total
            ));
        }
        let st = State {
            segs: segs.into(),
            total,
            next_no: 1,
            ..State::default()
        };
        Ok(Spool {
            inner: Arc::new((Mutex::new(st), Condvar::new())),
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(1 << 20, 64 << 20),
            run,
        })
    }

    pub fn run(&self) -> u64 {
        self.run
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spools one chunk (output thread). Never blocks on the network; a full spool drops the
    /// chunk (counted, logged) rather than stall capture. Its number is used up either way, so
    /// the daemon sees the gap.
    pub fn append(&self, chunk: &[u8]) {
        let mut st = self.lock();
        let no = st.next_no;
        st.next_no += 1;
        let need = (FRAME_HEAD + chunk.len()) as u64;
        if st.total + need > self.max_bytes {
            st.dropped_chunks += 1;
            st.dropped_bytes += chunk.len() as u64;
            if st.dropped_chunks.is_power_of_two() {
                log(&format!(
                    "spool {} full ({} of {} bytes): {} chunks ({} bytes) not spooled; the merge daemon will report the gap",
                    self.dir.display(),
                    st.total,
                    self.max_bytes,
                    st.dropped_chunks,
                    st.dropped_bytes
                ));
            }
            return;
        }
        let start_new = st.cur.is_none()
            || st
                .segs
                .back()
                .is_none_or(|s| s.run != self.run || s.bytes >= self.segment_bytes);
        if start_new {
            let path = self.dir.join(seg_name(self.run, no));
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => {
                    super::output::sync_dir(&path);
                    st.cur = Some(f);
                    st.segs.push_back(Seg {
                        path,
                        run: self.run,
                        first: no,
                        last: no - 1,
                        bytes: 0,
                    });
                }
                Err(e) => {
                    st.write_errors += 1;
                    st.dropped_chunks += 1;
                    st.dropped_bytes += chunk.len() as u64;
                    log(&format!("spool {}: {e}; chunk {no} lost", path.display()));
                    return;
                }
            }
        }
        let mut h = [0u8; FRAME_HEAD];
        h[..4].copy_from_slice(&FRAME_MAGIC);
        h[4..12].copy_from_slice(&self.run.to_le_bytes());
        h[12..20].copy_from_slice(&no.to_le_bytes());
        h[20..24].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        h[24..28].copy_from_slice(&crc32c::crc32c(chunk).to_le_bytes());
        let f = st.cur.as_mut().expect("open");
        // One write of the whole frame, then to disk: a chunk in the spool survives a crash.
        let mut frame = Vec::with_capacity(FRAME_HEAD + chunk.len());
        frame.extend_from_slice(&h);
        frame.extend_from_slice(chunk);
        let r = f.write_all(&frame).and_then(|_| f.sync_data());
        match r {
            Ok(()) => {
                let s = st.segs.back_mut().expect("segment");
                s.last = no;
                s.bytes += need;
                st.total += need;
                st.written_chunks += 1;
            }
            Err(e) => {
                st.write_errors += 1;
                st.dropped_chunks += 1;
                st.dropped_bytes += chunk.len() as u64;
                log(&format!(
                    "spool {}: write failed: {e}; chunk {no} lost, next chunk starts a new segment",
                    self.dir.display()
                ));
                // The segment may now end in a torn frame: stop appending to it.
                st.cur = None;
                let s = st.segs.back_mut().expect("segment");
                if let Ok(m) = fs::metadata(&s.path) {
                    let _ = OpenOptions::new()
                        .write(true)
                        .open(&s.path)
                        .and_then(|f| f.set_len(s.bytes.min(m.len())));
                }
            }
        }
        drop(st);
        self.inner.1.notify_all();
    }

    /// No more chunks will come (the probe is stopping).
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.1.notify_all();
    }

    /// The daemon has committed `run`'s chunks up to `committed`: their segments go.
    pub fn ack(&self, run: u64, committed: u64) {
        let mut st = self.lock();
        let a = st.acked.entry(run).or_insert(0);
        *a = (*a).max(committed);
        let committed = *a;
        let mut freed = 0;
        let n = st.segs.len();
        let mut keep = VecDeque::with_capacity(n);
        let segs = std::mem::take(&mut st.segs);
        for (i, s) in segs.into_iter().enumerate() {
            if s.run == run && s.last <= committed && s.last >= s.first {
                if i == n - 1 && s.run == self.run {
                    st.cur = None;
                }
                let _ = fs::remove_file(&s.path);
                freed += s.bytes;
            } else {
                keep.push_back(s);
            }
        }
        st.segs = keep;
        st.total -= freed;
    }

    /// Nothing unacknowledged is left.
    fn drained(&self) -> bool {
        let st = self.lock();
        st.segs.iter().all(|s| s.last < s.first)
    }

    pub fn stats(&self) -> SpoolStats {
        let st = self.lock();
        SpoolStats {
            chunks: st.written_chunks,
            dropped_chunks: st.dropped_chunks,
            dropped_bytes: st.dropped_bytes,
            write_errors: st.write_errors,
            pending_bytes: st.total,
            connections: 0,
        }
    }

    /// The next chunk to send after `pos` (run, no), skipping acknowledged ones.
    #[cfg(test)]
    fn next_after(&self, pos: (u64, u64), buf: &mut Vec<u8>) -> Option<(u64, u64)> {
        self.next_from(pos, &mut Cursor::default(), buf)
    }

    /// [`Spool::next_after`], resuming the file walk where `cur` says the last one ended (a
    /// long backlog is read once, not rescanned from its segment's start for every chunk).
    fn next_from(
        &self,
        pos: (u64, u64),
        cur: &mut Cursor,
        buf: &mut Vec<u8>,
    ) -> Option<(u64, u64)> {
        let segs: Vec<(PathBuf, (u64, u64), u64, u64)> = {
            let st = self.lock();
            st.segs
                .iter()
                .filter(|s| s.last >= s.first && (s.run, s.last) > pos)
                .filter(|s| st.acked.get(&s.run).is_none_or(|&a| s.last > a))
                .map(|s| {
                    (
                        s.path.clone(),
                        (s.run, s.first),
                        s.bytes,
                        *st.acked.get(&s.run).unwrap_or(&0),
                    )
                })
                .collect()
        };
        for (path, id, bytes, acked) in segs {
            // A file that cannot be opened or read now is tried again on the next round:
            // only a chunk whose checksum is wrong is ever skipped.
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    log(&format!("spool {}: {e}; retrying", path.display()));
                    return None;
                }
            };
            let mut at = if cur.seg == id { cur.offset } else { 0 };
            loop {
                let (r, no, n) = match frame_at(&f, at, bytes) {
                    Ok(Some(x)) => x,
                    Ok(None) => break,
                    Err(e) => {
                        log(&format!("spool {}: {e}; retrying", path.display()));
                        return None;
                    }
                };
                if (r, no) > pos && no > acked {
                    match read_chunk(&f, at, n, buf) {
                        Ok(true) => {
                            cur.seg = id;
                            cur.offset = at + (FRAME_HEAD + n) as u64;
                            return Some((r, no));
                        }
                        Ok(false) => log(&format!(
                            "spool {}: chunk {no} fails its checksum at offset {at}: skipped",
                            path.display()
                        )),
                        Err(e) => {
                            log(&format!("spool {}: {e}; retrying", path.display()));
                            return None;
                        }
                    }
                }
                at += (FRAME_HEAD + n) as u64;
            }
        }
        None
    }

    fn wait(&self, d: Duration) {
        let st = self.lock();
        let _ = self.inner.1.wait_timeout(st, d);
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Where the sender's walk through the spool stands: the segment (run, first chunk) and the
/// offset after the last chunk sent from it.
#[derive(Default)]
struct Cursor {
    seg: (u64, u64),
    offset: u64,
}

/// Where and how the sender connects.
#[derive(Clone)]
pub struct SenderConfig {
    pub to: String,
    /// Name the daemon's certificate must carry (default: the host part of `to`).
    pub server_name: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub probe_id: u32,
    /// After `close`, how long to keep trying to deliver before leaving the rest to the next
    /// run.
    pub drain: Duration,
}

enum Lost {
    /// Connection trouble: reconnect.
    Conn(String),
    /// The daemon refused us: say so, retry slowly.
    Refused(String),
}

/// Runs the sender until the spool is closed and drained (or the drain time ran out).
pub fn run_sender(spool: Spool, cfg: SenderConfig) -> SpoolStats {
    let mut connections = 0u64;
    let mut backoff = Duration::from_millis(200);
    let mut last_complaint: Option<Instant> = None;
    let mut closed_at: Option<Instant> = None;
    loop {
        if spool.is_closed() {
            let t = *closed_at.get_or_insert_with(Instant::now);
            if spool.drained() || t.elapsed() >= cfg.drain {
                break;
            }
        }
        match session(&spool, &cfg, &mut connections) {
            Ok(()) => break,
            Err(lost) => {
                let msg = match lost {
                    Lost::Conn(m) => m,
                    Lost::Refused(m) => {
                        backoff = Duration::from_secs(5);
                        m
                    }
                };
                if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    log(&format!(
                        "merge daemon {}: {msg}; spooling ({} bytes waiting), retrying",
                        cfg.to,
                        spool.stats().pending_bytes
                    ));
                    last_complaint = Some(Instant::now());
                }
                // Wait the whole backoff (chunks arriving meanwhile do not cut it short).
                let until = Instant::now() + backoff;
                while !spool.is_closed() {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    spool.wait(left);
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let mut s = spool.stats();
    s.connections = connections;
    if s.pending_bytes > 0 {
        log(&format!(
            "merge daemon {}: {} bytes not acknowledged at exit stay in the spool for the next run",
            cfg.to, s.pending_bytes
        ));
    }
    s
}

fn resolve(to: &str) -> Result<SocketAddr, String> {
    to.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {to}: {e}"))?
        .next()
        .ok_or_else(|| format!("{to} resolves to nothing"))
}

/// Host part of `host:port` / `[v6]:port`.
pub fn host_of(to: &str) -> String {
    let h = to.rsplit_once(':').map_or(to, |(h, _)| h);
    h.trim_start_matches('[').trim_end_matches(']').to_string()
}

#[allow(unsafe_code)]
fn readable(sock: &TcpStream, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
    n > 0 && p.revents != 0
}

/// One connection: HELLO, RESUME, then chunks out and ACKs in until drained or broken.
fn session(spool: &Spool, cfg: &SenderConfig, connections: &mut u64) -> Result<(), Lost> {
    let addr = resolve(&cfg.to).map_err(Lost::Conn)?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| Lost::Conn(format!("connect: {e}")))?;
    let _ = sock.set_nodelay(true);
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .and_then(|_| sock.set_write_timeout(Some(Duration::from_secs(30))))
        .map_err(|e| Lost::Conn(e.to_string()))?;
    let mut conn = match &cfg.tls {
        Some(t) => tls::connect(t, &cfg.server_name, sock).map_err(Lost::Refused)?,
        None => Conn::Plain(sock),
    };
    let io = |e: io::Error| Lost::Conn(e.to_string());
    tp::write_msg(
        &mut conn,
        tp::HELLO,
        &[&tp::hello(cfg.probe_id, spool.run())],
    )
    .map_err(io)?;
    conn.flush().map_err(io)?;
    let mut rd = tp::MsgReader::default();
    let (kind, buf) = rd.read_blocking(&mut conn).map_err(io)?;
    if kind == tp::REFUSE {
        return Err(Lost::Refused(format!(
            "refused us: {}",
            String::from_utf8_lossy(&buf)
        )));
    }
    if kind != tp::RESUME {
        return Err(Lost::Conn(format!(
            "unexpected message {kind} instead of RESUME"
        )));
    }
    for (run, c) in tp::parse_pairs(&buf).map_err(Lost::Conn)? {
        spool.ack(run, c);
    }
    *connections += 1;
    log(&format!(
        "merge daemon {} connected{}",
        cfg.to,
        if cfg.tls.is_some() { " (TLS)" } else { "" }
    ));
    let mut pos = (0u64, 0u64);
    let mut cursor = Cursor::default();
    let mut chunk = Vec::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        // Send what is there (bounded per round so ACKs are read in between).
        let mut sent = 0;
        while sent < 64 {
            let Some((run, no)) = spool.next_from(pos, &mut cursor, &mut chunk) else {
                break;
            };
            tp::write_msg(&mut conn, tp::BLOCK, &[&tp::u64_pair(run, no), &chunk]).map_err(io)?;
            pos = (run, no);
            sent += 1;
        }
        conn.flush().map_err(io)?;
        // ACKs.
        let wait = if sent > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        if readable(conn.tcp(), wait) {
            rd.fill(&mut conn).map_err(io)?;
        }
        while let Some((kind, buf)) = rd.take().map_err(io)? {
            match kind {
                tp::ACK => {
                    let (run, c, _) = tp::parse_u64_pair(&buf).map_err(Lost::Conn)?;
                    spool.ack(run, c);
                }
                tp::REFUSE => {
                    return Err(Lost::Refused(String::from_utf8_lossy(&buf).into_owned()));
                }
                k => return Err(Lost::Conn(format!("unexpected message {k}"))),
            }
        }
        if spool.is_closed() {
            let t = *closed_at.get_or_insert_with(Instant::now);
            if spool.drained() {
                log(&format!(
                    "merge daemon {}: every chunk acknowledged",
                    cfg.to
                ));
                return Ok(());
            }
            if t.elapsed() >= cfg.drain {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tapflow-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn chunks_survive_reopen_and_torn_tails_are_cut() {
        let d = tmp("reopen");
        let s = Spool::open(&d, 1 << 20, 100).unwrap();
        s.append(b"one");
        s.append(b"two");
        s.append(b"three");
        let mut buf = Vec::new();
        assert_eq!(s.next_after((0, 0), &mut buf), Some((100, 1)));
        assert_eq!(buf, b"one");
        s.ack(100, 1);
        assert_eq!(s.next_after((0, 0), &mut buf), Some((100, 2)));
        drop(s);
        // A crash mid-frame: garbage at the end of the segment.
        let seg = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tfs"))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"TFSP\x01\x02").unwrap();
        drop(f);
        let s = Spool::open(&d, 1 << 20, 200).unwrap();
        // The old run's chunks are all still there (ack state lives in the daemon).
        assert_eq!(s.next_after((0, 0), &mut buf), Some((100, 1)));
        assert_eq!(s.next_after((100, 2), &mut buf), Some((100, 3)));
        assert_eq!(buf, b"three");
        assert_eq!(s.next_after((100, 3), &mut buf), None);
        s.append(b"new");
        assert_eq!(s.next_after((100, 3), &mut buf), Some((200, 1)));
        s.ack(100, 3);
        s.ack(200, 1);
        assert!(s.drained());
        assert_eq!(s.stats().pending_bytes, 0);
        let segs = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "tfs"))
            .count();
        assert_eq!(segs, 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn full_spool_drops_and_counts() {
        let d = tmp("full");
        let s = Spool::open(&d, 200, 1).unwrap();
        s.append(&[0u8; 50]);
        s.append(&[0u8; 120]);
        let st = s.stats();
        assert_eq!(st.chunks, 1);
        assert_eq!(st.dropped_chunks, 1);
        assert_eq!(st.dropped_bytes, 120);
        // The number of the dropped chunk is used up: the daemon sees a gap.
        s.append(&[0u8; 10]);
        assert_eq!(s.stats().chunks, 2);
        let mut buf = Vec::new();
        assert_eq!(s.next_after((1, 1), &mut buf), Some((1, 3)));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn run_ids_only_grow() {
        let d = tmp("runs");
        let s = Spool::open(&d, 1 << 20, 1_000).unwrap();
        assert_eq!(s.run(), 1_000);
        s.append(b"x");
        drop(s);
        // The clock stepped back: the next run is still after the last.
        let s = Spool::open(&d, 1 << 20, 500).unwrap();
        assert_eq!(s.run(), 1_001);
        drop(s);
        let s = Spool::open(&d, 1 << 20, 5_000).unwrap();
        assert_eq!(s.run(), 5_000);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn host_part() {
        assert_eq!(host_of("merge.example:5610"), "merge.example");
        assert_eq!(host_of("[::1]:5610"), "::1");
        assert_eq!(host_of("10.0.0.1:1"), "10.0.0.1");
    }
}
