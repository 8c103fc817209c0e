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

/// What the output thread is given.
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
}

/// What the output thread did.
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

fn now_ns() -> u64 {
    tapflow_capture::live::realtime_ns()
}

/// Runs until every worker queue is abandoned (its worker finished) and empty.
pub fn run(
    mut cfg: OutputConfig,
    mut queues: Vec<rtrb::Consumer<FlowRecord>>,
    rotate: Arc<AtomicBool>,
) -> io::Result<OutputStats> {
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
        workers: vec![ProbeStatus::default(); queues.len()],
        status_records_per_worker: vec![0; queues.len()],
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
        a.open(now_ns(), &head);
    }
    let mut stream = cfg.listener.take().map(|l| Stream {
        listener: l,
        clients: Vec::new(),
        limit: cfg.client_buffer.max(1 << 16),
        dropped: 0,
        served: 0,
    });

    let emit = |bytes: &[u8],
                file: &mut Option<Box<dyn Write + Send>>,
                archive: &mut Option<Archive>,
                stream: &mut Option<Stream>,
                st: &mut OutputStats| {
        if bytes.is_empty() {
            return;
        }
        st.bytes += bytes.len() as u64;
        if let Some(f) = file {
            if let Err(e) = f.write_all(bytes) {
                log(&format!(
                    "record file: write failed: {e}; file output stopped"
                ));
                st.file_error = Some(e.to_string());
                *file = None;
            }
        }
        if let Some(a) = archive {
            a.write(bytes);
        }
        if let Some(s) = stream {
            s.broadcast(bytes);
        }
    };

    let mut next_flush = now_ns() + cfg.flush_ns;
    loop {
        let mut got = 0usize;
        let mut done = true;
        for (w, q) in queues.iter_mut().enumerate() {
            let n = q.slots().min(4096);
            for _ in 0..n {
                let Ok(rec) = q.pop() else { break };
                if let Some(s) = &rec.status {
                    st.status_records += 1;
                    st.workers[w].add(s);
                    st.status_records_per_worker[w] += 1;
                    log_status(&rec, s);
                } else {
                    st.flow_records += 1;
                }
                enc.write(&rec)?;
            }
            got += n;
            if !q.is_abandoned() || !q.is_empty() {
                done = false;
            }
        }
        // Whatever the writer produced is whole blocks: hand them on.
        let mut out = std::mem::take(enc.get_mut());
        emit(&out, &mut file, &mut archive, &mut stream, &mut st);
        out.clear();
        *enc.get_mut() = out;

        let now = now_ns();
        let rotate_now = rotate.swap(false, Ordering::Relaxed)
            || archive.as_ref().is_some_and(|a| now >= a.until_ns);
        if now >= next_flush || rotate_now || done {
            enc.flush_block()?;
            let mut out = std::mem::take(enc.get_mut());
            emit(&out, &mut file, &mut archive, &mut stream, &mut st);
            out.clear();
            *enc.get_mut() = out;
            if let Some(f) = &mut file {
                if let Err(e) = f.flush() {
                    log(&format!(
                        "record file: flush failed: {e}; file output stopped"
                    ));
                    st.file_error = Some(e.to_string());
                    file = None;
                }
            }
            next_flush = now + cfg.flush_ns;
        }
        if rotate_now && !done {
            if let Some(a) = &mut archive {
                a.close();
                a.open(now, &head);
            }
        }
        if let Some(s) = &mut stream {
            s.accept(&head);
            s.pump();
        }
        if done {
            break;
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(a) = &mut archive {
        a.close();
        st.archive_files = a.files;
        st.archive_errors = a.errors;
        st.archive_lost_bytes = a.lost_bytes;
    }
    if let Some(s) = &mut stream {
        s.drain(Duration::from_secs(10));
        st.readers_served = s.served;
        st.readers_dropped = s.dropped;
    }
    if let Some(mut f) = file {
        if let Err(e) = f.flush() {
            st.file_error = Some(e.to_string());
        }
    }
    Ok(st)
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
