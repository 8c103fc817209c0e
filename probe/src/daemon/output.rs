//! The output thread: takes records from every worker's queue, encodes and compresses them once,
//! and hands the same blocks to a record file, the rotated archive and every stream reader.
//!
//! Nothing here can stall capture: workers only ever see their queue, and a stream reader that
//! falls more than `client_buffer` bytes behind is disconnected with a log line.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapflow_record::{
    FileHeader, FlowRecord, ProbeStatus, RecordWriter, WriterOptions, FORMAT_MAJOR, FORMAT_MINOR,
};

use super::log;

// ---------------------------------------------------------------------------------------
// Path templates

/// Checks that a template only uses the escapes [`expand_template`] knows.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut it = t.chars();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.next() {
                Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 's' | '%') => {}
                Some(x) => {
                    return Err(format!(
                        "archive template {t:?}: unknown escape %{x} (use %Y %m %d %H %M %S %s %%)"
                    ))
                }
                None => return Err(format!("archive template {t:?} ends with a lone %")),
            }
        }
    }
    if t.ends_with('/') || t.is_empty() {
        return Err(format!("archive template {t:?} names no file"));
    }
    Ok(())
}

/// Expands `%Y %m %d %H %M %S` (UTC), `%s` (epoch seconds) and `%%` for time `secs`.
pub fn expand_template(t: &str, secs: u64) -> String {
    let (y, mo, d, h, mi, s) = tapflow_record::time::utc(secs);
    let mut out = String::with_capacity(t.len() + 16);
    let mut it = t.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{mo:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('s') => out.push_str(&secs.to_string()),
            Some('%') => out.push('%'),
            Some(x) => {
                out.push('%');
                out.push(x);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The directory part of a template that has no escapes in it (created, and handed to the
/// unprivileged user, before privileges are dropped).
pub fn template_base_dir(t: &str) -> PathBuf {
    let mut base = PathBuf::new();
    let p = Path::new(t);
    let comps: Vec<_> = p.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        if c.as_os_str().to_string_lossy().contains('%') {
            break;
        }
        base.push(c);
    }
    if base.as_os_str().is_empty() {
        base.push(".");
    }
    base
}

// ---------------------------------------------------------------------------------------
// Archive

/// `path`, or when it (or its partial file) exists already — a restart or a SIGHUP within the
/// same interval — `stem.1.ext`, `stem.2.ext` …: an archive file is never overwritten.
fn unique_path(path: PathBuf) -> PathBuf {
    let taken = |p: &Path| p.exists() || Archive::part_path(p).exists();
    if !taken(&path) {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 1.. {
        let p = path.with_file_name(format!("{stem}.{n}{ext}"));
        if !taken(&p) {
            return p;
        }
    }
    unreachable!()
}

/// A rotated archive: one file per aligned interval, written under a temporary name and
/// renamed into place when complete (so a reader never sees a half-written archive file).
struct Archive {
    template: String,
    rotate_ns: u64,
    cur: Option<(BufWriter<File>, PathBuf, PathBuf)>,
    /// End of the current file's interval.
    until_ns: u64,
    files: u64,
    errors: u64,
    lost_bytes: u64,
}

impl Archive {
    fn part_path(final_path: &Path) -> PathBuf {
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        final_path.with_file_name(format!(".{name}.part"))
    }

    /// Starts the file for the interval containing `now_ns`.
    fn open(&mut self, now_ns: u64, header: &[u8]) {
        let start = now_ns - now_ns % self.rotate_ns;
        self.until_ns = start + self.rotate_ns;
        let path = unique_path(PathBuf::from(expand_template(
            &self.template,
            start / 1_000_000_000,
        )));
        let part = Self::part_path(&path);
        let r = (|| -> io::Result<BufWriter<File>> {
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    fs::create_dir_all(dir)?;
                }
            }
            let mut f = BufWriter::with_capacity(1 << 20, File::create(&part)?);
            f.write_all(header)?;
            sync_dir(&part);
            Ok(f)
        })();
        match r {
            Ok(f) => self.cur = Some((f, part, path)),
            Err(e) => {
                self.errors += 1;
                log(&format!(
                    "archive {}: cannot start file: {e}; records of this interval go to the stream only",
                    part.display()
                ));
            }
        }
    }

    /// Completes the current file: flush, fsync, rename into place.
    fn close(&mut self) {
        if let Some((mut f, part, path)) = self.cur.take() {
            let r = f
                .flush()
                .and_then(|_| f.get_ref().sync_data())
                .and_then(|_| fs::rename(&part, &path));
            match r {
                Ok(()) => {
                    sync_dir(&path);
                    self.files += 1;
                    log(&format!("archive {} complete", path.display()));
                }
                Err(e) => {
                    self.errors += 1;
                    log(&format!(
                        "archive {}: cannot complete: {e} (data left in {})",
                        path.display(),
                        part.display()
                    ));
                }
            }
        }
    }

    /// Makes the current file durable and says where it stands.
    fn sync(&mut self) -> Option<OutputPosition> {
        let (f, part, path) = self.cur.as_mut()?;
        let r = f.flush().and_then(|_| f.get_ref().sync_data());
        if let Err(e) = r {
            self.errors += 1;
            log(&format!("archive {}: sync failed: {e}", part.display()));
            return None;
        }
        let len = f.get_ref().metadata().map(|m| m.len()).ok()?;
        Some(OutputPosition {
            part: part.to_string_lossy().into_owned(),
            path: path.to_string_lossy().into_owned(),
            len,
            until_ns: self.until_ns,
        })
    }

    /// Continues the file of a commit, cut back to the committed length. A file completed
    /// after the commit is taken back (its tail was made from input that will be replayed).
    fn reopen(&mut self, p: &OutputPosition) -> bool {
        let part = PathBuf::from(&p.part);
        let path = PathBuf::from(&p.path);
        if !part.exists() && path.exists() {
            if fs::metadata(&path).is_ok_and(|m| m.len() == p.len) {
                // Completed at a clean stop with nothing after the commit: leave it complete.
                return false;
            }
            if let Err(e) = fs::rename(&path, &part) {
                log(&format!(
                    "archive {}: cannot take back: {e}",
                    path.display()
                ));
                return false;
            }
        }
        let r = fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .and_then(|f| {
                let len = f.metadata()?.len();
                if len < p.len {
                    return Err(io::Error::other(format!(
                        "{len} bytes, shorter than the committed {}",
                        p.len
                    )));
                }
                f.set_len(p.len)?;
                let mut f = f;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
                Ok(f)
            });
        match r {
            Ok(f) => {
                log(&format!(
                    "archive {}: continued at the committed {} bytes",
                    part.display(),
                    p.len
                ));
                self.cur = Some((BufWriter::with_capacity(1 << 20, f), part, path));
                self.until_ns = p.until_ns;
                true
            }
            Err(e) => {
                self.errors += 1;
                log(&format!(
                    "archive {}: cannot continue the committed file: {e}; starting a new one",
                    part.display()
                ));
                false
            }
        }
    }

    fn write(&mut self, b: &[u8]) {
        if let Some((f, part, _)) = &mut self.cur {
            if let Err(e) = f.write_all(b) {
                self.errors += 1;
                self.lost_bytes += b.len() as u64;
                log(&format!(
                    "archive {}: write failed: {e}; file abandoned, {} bytes lost so far; next file at the next rotation",
                    part.display(),
                    self.lost_bytes
                ));
                self.cur = None;
            }
        } else {
            self.lost_bytes += b.len() as u64;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stream server

struct Client {
    sock: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    pos: usize,
}

impl Client {
    /// Writes what it can without blocking. `Err` = the reader is gone.
    fn pump(&mut self) -> io::Result<()> {
        while self.pos < self.buf.len() {
            match self.sock.write(&self.buf[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(())
    }
    fn backlog(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[allow(unsafe_code)]
fn set_sndbuf(sock: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: setsockopt on a valid socket with a c_int value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

struct Stream {
    listener: TcpListener,
    clients: Vec<Client>,
    limit: usize,
    dropped: u64,
    served: u64,
}

impl Stream {
    fn accept(&mut self, header: &[u8]) {
        loop {
            match self.listener.accept() {
                Ok((sock, peer)) => {
                    if let Err(e) = sock.set_nonblocking(true) {
                        log(&format!("stream reader {peer}: {e}; not served"));
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    // Our own buffer is the bound on how far a reader may lag; keep the
                    // kernel's share modest so the limit means something.
                    set_sndbuf(&sock, (self.limit / 4).clamp(64 << 10, 1 << 20));
                    log(&format!("stream reader {peer} connected"));
                    self.served += 1;
                    self.clients.push(Client {
                        sock,
                        peer,
                        buf: header.to_vec(),
                        pos: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: try again on the next round.
                    log(&format!("stream: accept failed: {e}"));
                    break;
                }
            }
        }
    }

    /// Queues whole blocks for every reader; a reader that already has more than the limit
    /// waiting (it fell that far behind) is dropped. The check is on what is already queued,
    /// so a reader that keeps up always takes the next block, however large.
    fn broadcast(&mut self, b: &[u8]) {
        let limit = self.limit;
        let mut dropped = 0;
        self.clients.retain_mut(|c| {
            if c.backlog() > limit {
                log(&format!(
                    "stream reader {} too slow: {} bytes behind (limit {limit}); disconnected",
                    c.peer,
                    c.backlog()
                ));
                dropped += 1;
                return false;
            }
            c.buf.extend_from_slice(b);
            true
        });
        self.dropped += dropped;
    }

    fn pump(&mut self) {
        self.clients.retain_mut(|c| match c.pump() {
            Ok(()) => true,
            Err(e) => {
                log(&format!("stream reader {} gone: {e}", c.peer));
                false
            }
        });
    }

    /// At shutdown: give readers up to `grace` to take what is queued for them (a reader that
    /// keeps up gets every record; a stuck one cannot hold the exit up for long).
    fn drain(&mut self, grace: Duration) {
        let t0 = Instant::now();
        while self.clients.iter().any(|c| c.backlog() > 0) && t0.elapsed() < grace {
            self.pump();
            std::thread::sleep(Duration::from_millis(2));
        }
        for c in &self.clients {
            let _ = c.sock.shutdown(std::net::Shutdown::Write);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The thread

/// What the outputs are given.
pub struct OutputConfig {
    pub probe_id: u32,
    /// A plain record file (or stdout), no rotation.
    pub file: Option<Box<dyn Write + Send>>,
    pub archive: Option<String>,
    pub rotate_ns: u64,
    pub listener: Option<TcpListener>,
    pub client_buffer: usize,
    pub flush_ns: u64,
    pub zstd_level: i32,
    /// Chunks for the merge daemon (one per flush), through the on-disk spool.
    pub spool: Option<super::spool::Spool>,
    /// Continue an archive file where a committed [`OutputPosition`] left it (merge daemon
    /// restart): what was written after the commit is cut off and made again.
    pub resume: Option<OutputPosition>,
}

/// What the outputs did.
#[derive(Clone, Debug, Default)]
pub struct OutputStats {
    pub flow_records: u64,
    pub status_records: u64,
    pub bytes: u64,
    pub archive_files: u64,
    pub archive_errors: u64,
    pub archive_lost_bytes: u64,
    pub readers_served: u64,
    pub readers_dropped: u64,
    /// Sum of every worker's status records (deltas), per worker index.
    pub workers: Vec<ProbeStatus>,
    /// Status records per worker index.
    pub status_records_per_worker: Vec<u64>,
    /// The record file failed (the error).
    pub file_error: Option<String>,
}

/// Where the archive stood at a commit: the file being written and its length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputPosition {
    pub part: String,
    pub path: String,
    pub len: u64,
    pub until_ns: u64,
}

impl OutputPosition {
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n",
            self.part, self.path, self.len, self.until_ns
        )
        .into_bytes()
    }
    pub fn decode(b: &[u8]) -> Option<OutputPosition> {
        let s = std::str::from_utf8(b).ok()?;
        let mut it = s.split('\n');
        Some(OutputPosition {
            part: it.next()?.to_string(),
            path: it.next()?.to_string(),
            len: it.next()?.parse().ok()?,
            until_ns: it.next()?.parse().ok()?,
        })
    }
}

fn now_ns() -> u64 {
    tapflow_capture::live::realtime_ns()
}

/// Largest chunk for the merge daemon (a chunk is cut at the next block boundary after this).
const MAX_CHUNK: usize = 8 << 20;

/// Makes a directory entry (a new or renamed file) durable.
pub fn sync_dir(path: &Path) {
    if let Some(d) = path.parent() {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        if let Ok(f) = File::open(d) {
            let _ = f.sync_all();
        }
    }
}

/// The record outputs: one encoder, its whole blocks handed to the record file, the rotated
/// archive, every stream reader and the merge spool.
pub struct Outputs {
    enc: RecordWriter<Vec<u8>>,
    head: Vec<u8>,
    file: Option<Box<dyn Write + Send>>,
    archive: Option<Archive>,
    stream: Option<Stream>,
    spool: Option<super::spool::Spool>,
    /// Blocks since the last spooled chunk.
    chunk: Vec<u8>,
    flush_ns: u64,
    next_flush: u64,
    auto_rotate: bool,
    /// Archive errors and lost bytes at the last commit.
    committed_errors: u64,
    committed_lost: u64,
    pub st: OutputStats,
}

impl Outputs {
    pub fn new(mut cfg: OutputConfig, workers: usize) -> io::Result<Outputs> {
        let header = FileHeader {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            probe_id: cfg.probe_id,
            created_ns: now_ns(),
            flags: 0,
        };
        let opts = WriterOptions {
            zstd_level: cfg.zstd_level,
            ..WriterOptions::default()
        };
        let mut enc = RecordWriter::new(Vec::with_capacity(2 << 20), &header, opts)?;
        let head = std::mem::take(enc.get_mut());
        let mut st = OutputStats {
            workers: vec![ProbeStatus::default(); workers],
            status_records_per_worker: vec![0; workers],
            ..OutputStats::default()
        };
        let mut file = cfg.file.take();
        if let Some(f) = &mut file {
            if let Err(e) = f.write_all(&head) {
                st.file_error = Some(e.to_string());
                file = None;
            }
        }
        let mut archive = cfg.archive.take().map(|t| Archive {
            template: t,
            rotate_ns: cfg.rotate_ns.max(1_000_000_000),
            cur: None,
            until_ns: 0,
            files: 0,
            errors: 0,
            lost_bytes: 0,
        });
        if let Some(a) = &mut archive {
            match cfg.resume.take() {
                Some(p) if a.reopen(&p) => {}
                _ => a.open(now_ns(), &head),
            }
        }
        let stream = cfg.listener.take().map(|l| Stream {
            listener: l,
            clients: Vec::new(),
            limit: cfg.client_buffer.max(1 << 16),
            dropped: 0,
            served: 0,
        });
        Ok(Outputs {
            enc,
            head,
            file,
            archive,
            stream,
            spool: cfg.spool.take(),
            chunk: Vec::new(),
            flush_ns: cfg.flush_ns,
            next_flush: now_ns() + cfg.flush_ns,
            auto_rotate: true,
            committed_errors: 0,
            committed_lost: 0,
            st,
        })
    }

    /// Encodes one record (whole blocks go out as they fill).
    pub fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if rec.status.is_some() || rec.merge.is_some() {
            self.st.status_records += 1;
        } else {
            self.st.flow_records += 1;
        }
        self.enc.write(rec)?;
        if self.enc.get_ref().len() >= 1 << 20 {
            self.emit_pending();
        }
        Ok(())
    }

    fn emit_pending(&mut self) {
        let mut out = std::mem::take(self.enc.get_mut());
        self.emit(&out);
        out.clear();
        *self.enc.get_mut() = out;
    }

    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.st.bytes += bytes.len() as u64;
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(bytes) {
                log(&format!(
                    "record file: write failed: {e}; file output stopped"
                ));
                self.st.file_error = Some(e.to_string());
                self.file = None;
            }
        }
        if let Some(a) = &mut self.archive {
            a.write(bytes);
        }
        if let Some(s) = &mut self.stream {
            s.broadcast(bytes);
        }
        if self.spool.is_some() {
            self.chunk.extend_from_slice(bytes);
            // Whole blocks only come through here: a chunk ends at a block boundary, and stays
            // far below the transport's message limit whatever the flush interval.
            if self.chunk.len() >= MAX_CHUNK {
                self.spool_chunk();
            }
        }
    }

    fn spool_chunk(&mut self) {
        if let Some(sp) = &self.spool {
            if !self.chunk.is_empty() {
                let mut c = Vec::with_capacity(self.head.len() + self.chunk.len());
                c.extend_from_slice(&self.head);
                c.extend_from_slice(&self.chunk);
                sp.append(&c);
                self.chunk.clear();
            }
        }
    }

    /// Ends the current block and pushes everything out (file buffers flushed, a chunk
    /// spooled).
    pub fn flush(&mut self) -> io::Result<()> {
        self.emit_pending();
        self.enc.flush_block()?;
        self.emit_pending();
        if let Some(f) = &mut self.file {
            if let Err(e) = f.flush() {
                log(&format!(
                    "record file: flush failed: {e}; file output stopped"
                ));
                self.st.file_error = Some(e.to_string());
                self.file = None;
            }
        }
        self.spool_chunk();
        Ok(())
    }

    /// Periodic work: flush on the flush interval (or `force`), rotate the archive when its
    /// interval ended (or `rotate`), serve stream readers.
    pub fn tick(&mut self, rotate: bool, force: bool) -> io::Result<()> {
        let now = now_ns();
        let rotate_now = rotate || (self.auto_rotate && self.rotation_due(now));
        if now >= self.next_flush || rotate_now || force {
            self.flush()?;
            self.next_flush = now + self.flush_ns;
        }
        if rotate_now {
            if let Some(a) = &mut self.archive {
                a.close();
                a.open(now, &self.head);
            }
        }
        self.serve();
        Ok(())
    }

    /// The archive's file interval has ended.
    pub fn rotation_due(&self, now: u64) -> bool {
        self.archive.as_ref().is_some_and(|a| now >= a.until_ns)
    }

    /// Accepts and feeds stream readers.
    pub fn serve(&mut self) {
        if let Some(s) = &mut self.stream {
            s.accept(&self.head);
            s.pump();
        }
    }

    /// Flushes everything and makes the archive durable; returns where it stands. An error
    /// when the archive lost anything since the last commit (a failed open, write or sync):
    /// the caller must not acknowledge its input then.
    pub fn commit(&mut self) -> io::Result<Option<OutputPosition>> {
        self.flush()?;
        let Some(a) = self.archive.as_mut() else {
            return Ok(None);
        };
        let pos = a.sync();
        if a.errors != self.committed_errors || a.lost_bytes != self.committed_lost || pos.is_none()
        {
            self.committed_errors = a.errors;
            self.committed_lost = a.lost_bytes;
            return Err(io::Error::other(format!(
                "the archive failed since the last commit ({} errors, {} bytes lost in all; see the log)",
                a.errors, a.lost_bytes
            )));
        }
        Ok(pos)
    }

    /// Rotate only when [`Outputs::tick`] is told to (the merge daemon puts every rotation
    /// between two commits).
    pub fn set_auto_rotate(&mut self, on: bool) {
        self.auto_rotate = on;
    }

    /// Final flush: completes the archive file, gives stream readers a grace period.
    pub fn finish(mut self) -> io::Result<OutputStats> {
        self.flush()?;
        if let Some(a) = &mut self.archive {
            a.close();
            self.st.archive_files = a.files;
            self.st.archive_errors = a.errors;
            self.st.archive_lost_bytes = a.lost_bytes;
        }
        if let Some(s) = &mut self.stream {
            s.drain(Duration::from_secs(10));
            self.st.readers_served = s.served;
            self.st.readers_dropped = s.dropped;
        }
        if let Some(mut f) = self.file.take() {
            if let Err(e) = f.flush() {
                self.st.file_error = Some(e.to_string());
            }
        }
        Ok(self.st)
    }
}

/// The probe's output thread: runs until every worker queue is abandoned (its worker
/// finished) and empty.
pub fn run(
    cfg: OutputConfig,
    mut queues: Vec<rtrb::Consumer<FlowRecord>>,
    rotate: Arc<AtomicBool>,
) -> io::Result<OutputStats> {
    let mut out = Outputs::new(cfg, queues.len())?;
    loop {
        let mut got = 0usize;
        let mut done = true;
        for (w, q) in queues.iter_mut().enumerate() {
            let n = q.slots().min(4096);
            for _ in 0..n {
                let Ok(rec) = q.pop() else { break };
                if let Some(s) = &rec.status {
                    out.st.workers[w].add(s);
                    out.st.status_records_per_worker[w] += 1;
                    log_status(&rec, s);
                }
                out.write(&rec)?;
            }
            got += n;
            if !q.is_abandoned() || !q.is_empty() {
                done = false;
            }
        }
        if done {
            break;
        }
        out.tick(rotate.swap(false, Ordering::Relaxed), false)?;
        if got == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out.finish()
}

fn log_status(rec: &FlowRecord, s: &ProbeStatus) {
    let secs = rec.ltime_ns.saturating_sub(rec.stime_ns) as f64 / 1e9;
    log(&format!(
        "worker {}{}: {:.1} s: seen {} delivered {} ring-drops {} filtered {} passed {} | decoded {} malformed {} | flows +{} evicted {} active {} | records {} dropped {}",
        s.worker,
        if s.flags & tapflow_record::status_flags::FINAL != 0 { " (final)" } else { "" },
        secs,
        s.seen,
        s.delivered,
        s.ring_drops,
        s.filtered,
        s.passed,
        s.decoded,
        s.malformed,
        s.flows_admitted,
        s.evictions,
        s.active_flows,
        s.records_queued,
        s.records_dropped
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = "archive/%Y/%m/%d/probe.%Y.%m.%d.%H.%M.%S.tfr";
        check_template(t).unwrap();
        assert_eq!(
            expand_template(t, 951_827_696),
            "archive/2000/02/29/probe.2000.02.29.12.34.56.tfr"
        );
        assert_eq!(expand_template("x.%s.%%", 42), "x.42.%");
        assert!(check_template("a/%q.tfr").unwrap_err().contains("%q"));
        assert!(check_template("a/b%").is_err());
        assert!(check_template("a/").is_err());
        assert_eq!(template_base_dir(t), PathBuf::from("archive"));
        assert_eq!(
            template_base_dir("/var/lib/tapflow/a/%Y/x.tfr"),
            PathBuf::from("/var/lib/tapflow/a")
        );
        assert_eq!(template_base_dir("x.%s.tfr"), PathBuf::from("."));
    }
}
