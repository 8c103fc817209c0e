//! File backends: pcap and pcapng, plain or gzip/zstd compressed, from a path or a reader.
//!
//! Plain regular files are memory-mapped and batches point straight into the mapping. Anything
//! else (stdin, pipes, compressed files) goes through one reusable window buffer, compacted only
//! when the next record does not fit, so steady-state reading allocates nothing.
//!
//! Damaged input never panics: problems become [`CaptureWarning`]s with stream offsets, and
//! reading stops at the first damage that leaves the framing untrustworthy.

mod erf;
mod pcap;
mod pcapng;
mod source;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;

use crate::{Batch, Capture, CaptureError, CaptureStats, CaptureWarning, PacketDesc};
use erf::Erf;
use pcap::Pcap;
use pcapng::{First, Pcapng};
use source::{CountingReader, RawCounter, Source, Stream, STREAM_WINDOW};

/// Most packets per batch.
pub const BATCH_SIZE: usize = 256;
/// Warnings kept per source; a damaged file should not flood the log (counters still count).
const MAX_WARNINGS: u64 = 100;

/// Opens a capture file (`-` = stdin), sniffing pcap / pcapng / gzip / zstd from its magic and
/// ERF from the look of its first records (ERF has no magic; a `.erf` name is taken at its word).
///
/// Plain regular files are memory-mapped (zero copy); do not truncate a file while it is being
/// read (the process would get SIGBUS). Compressed files, FIFOs and stdin are streamed.
pub fn open(path: &str) -> Result<Box<dyn Capture>, CaptureError> {
    if path == "-" {
        return open_reader("<stdin>", Box::new(io::stdin()));
    }
    let io_err = |err| CaptureError::Io {
        source: path.to_string(),
        err,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        // FIFOs, character devices, /dev/stdin: no mapping, no known size.
        return Ok(Box::new(open_stream(
            path,
            Box::new(file),
            None,
            STREAM_WINDOW,
        )?));
    }
    let size = meta.len();
    if size == 0 {
        return Err(format_err(
            path,
            0,
            "empty file (0 bytes): not a capture".into(),
        ));
    }
    // SAFETY: the file is mapped read-only and we never write through or hand out a mutable
    // view of it. The mapping's length is fixed, and every descriptor is checked against it, so
    // another process rewriting the file can only give us garbage packets. Truncating the file
    // while we read it makes the lost pages raise SIGBUS: a documented limitation of mmap.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    let erf_name = is_erf_name(path);
    match sniff(&map).or(erf_name.then_some(Kind::Erf)) {
        Some(Kind::Pcap | Kind::Pcapng | Kind::Erf) => Ok(Box::new(FileCapture::new(
            path,
            Source::Map(map),
            erf_name,
        )?)),
        Some(Kind::Gzip | Kind::Zstd) => {
            drop(map);
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            Ok(Box::new(open_stream(
                path,
                Box::new(file),
                Some(size),
                STREAM_WINDOW,
            )?))
        }
        None => Err(unknown_format(path, &map, "")),
    }
}

/// Reads a capture from any reader (stdin, a socket, an in-memory buffer) through the
/// streaming window; `name` is used in messages.
pub fn open_reader(name: &str, r: Box<dyn Read + Send>) -> Result<Box<dyn Capture>, CaptureError> {
    Ok(Box::new(open_stream(name, r, None, STREAM_WINDOW)?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pcap,
    Pcapng,
    Gzip,
    Zstd,
    Erf,
}

/// `x.erf`, `x.erf.gz`, `x.erf.zst`: ERF by name.
fn is_erf_name(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [".erf", ".erf.gz", ".erf.zst", ".erf.zstd"]
        .iter()
        .any(|s| p.ends_with(s))
}

fn sniff(b: &[u8]) -> Option<Kind> {
    if pcap::is_magic(b) {
        Some(Kind::Pcap)
    } else if pcapng::is_magic(b) {
        Some(Kind::Pcapng)
    } else if b.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Kind::Zstd)
    } else if crate::erf::looks_like(b) {
        Some(Kind::Erf)
    } else {
        None
    }
}

fn format_err(source: &str, offset: u64, message: String) -> CaptureError {
    CaptureError::Format {
        source: source.to_string(),
        offset,
        message,
    }
}

/// The error for input that is not a capture; `ctx` says e.g. "after gzip decompression".
fn unknown_format(source: &str, head: &[u8], ctx: &str) -> CaptureError {
    let message = if head.is_empty() {
        format!("empty input{ctx}: not a capture")
    } else {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "unknown capture format{ctx}: first bytes are {} (expected pcap a1b2c3d4/a1b23c4d \
             in either byte order, pcapng 0a0d0d0a, gzip 1f8b, zstd 28b52ffd, or ERF records; \
             name an ERF file *.erf if its first records do not look like ERF)",
            shown.join(" ")
        )
    };
    format_err(source, 0, message)
}

/// Sets up the streaming path: sniff the raw magic, put a decoder in front if compressed.
fn open_stream(
    name: &str,
    raw: Box<dyn Read + Send>,
    total: Option<u64>,
    window: usize,
) -> Result<FileCapture, CaptureError> {
    let counter = Arc::new(RawCounter::default());
    let mut raw = CountingReader::new(raw, Arc::clone(&counter));
    // 16 bytes: an ERF record header (ERF has no magic number).
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match raw.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(CaptureError::Io {
                    source: name.to_string(),
                    err,
                })
            }
        }
    }
    let head = &head[..got];
    // Give the sniffed bytes back to whoever reads next.
    let chained = io::Cursor::new(head.to_vec()).chain(raw);
    let erf_name = is_erf_name(name);
    let (reader, compression): (Box<dyn Read + Send>, _) = match sniff(head) {
        Some(Kind::Pcap | Kind::Pcapng | Kind::Erf) => (Box::new(chained), None),
        Some(Kind::Gzip) => (Box::new(MultiGzDecoder::new(chained)), Some("gzip")),
        Some(Kind::Zstd) => {
            let dec =
                zstd::stream::read::Decoder::new(chained).map_err(|err| CaptureError::Io {
                    source: name.to_string(),
                    err,
                })?;
            (Box::new(dec), Some("zstd"))
        }
        None if erf_name => (Box::new(chained), None),
        None => return Err(unknown_format(name, head, "")),
    };
    let stream = Stream::new(reader, counter, total, compression, window);
    FileCapture::new(name, Source::Stream(stream), erf_name)
}

/// Reads a little-endian or big-endian integer at `off`. Callers check lengths first; a short
/// slice yields 0 rather than a panic.
#[inline]
pub(crate) fn u16_at(d: &[u8], off: usize, big: bool) -> u16 {
    match d
        .get(off..off + 2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
    {
        Some(b) if big => u16::from_be_bytes(b),
        Some(b) => u16::from_le_bytes(b),
        None => 0,
    }
}

#[inline]
pub(crate) fn u32_at(d: &[u8], off: usize, big: bool) -> u32 {
    match d
        .get(off..off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    {
        Some(b) if big => u32::from_be_bytes(b),
        Some(b) => u32::from_le_bytes(b),
        None => 0,
    }
}

#[inline]
pub(crate) fn u64_at(d: &[u8], off: usize, big: bool) -> u64 {
    match d
        .get(off..off + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
    {
        Some(b) if big => u64::from_be_bytes(b),
        Some(b) => u64::from_le_bytes(b),
        None => 0,
    }
}

/// What a format parser did with the bytes at the cursor.
#[derive(Debug)]
pub(crate) enum Step {
    /// A packet; `desc.offset` is relative to the cursor.
    Packet { consumed: usize, desc: PacketDesc },
    /// A record with no packet for us.
    Skip(usize),
    /// The record needs this many bytes from the cursor (only returned when more may come).
    Need(usize),
    /// Nothing more can be read (end of input or damage, already reported).
    End,
}

/// Counters and warnings shared with the parsers.
pub(crate) struct Ctx {
    name: String,
    stats: CaptureStats,
    warnings: Vec<CaptureWarning>,
    warned: u64,
}

impl Ctx {
    pub(crate) fn warn(&mut self, offset: u64, message: String) {
        self.warned += 1;
        let message = match self.warned {
            n if n < MAX_WARNINGS => message,
            MAX_WARNINGS => format!("{message} (further warnings suppressed)"),
            _ => return,
        };
        self.warnings.push(CaptureWarning {
            source: self.name.clone(),
            offset,
            message,
        });
    }

    /// A record that cannot be delivered: counted and reported.
    pub(crate) fn bad(&mut self, offset: u64, message: String) {
        self.stats.bad_records += 1;
        self.warn(offset, message);
    }
}

enum Format {
    Pcap(Pcap),
    Pcapng(Pcapng),
    Erf(Erf),
}

/// A pcap or pcapng reader over a [`Source`].
struct FileCapture {
    src: Source,
    /// Cursor into `src.data()`: the next record starts here.
    pos: usize,
    fmt: Format,
    descs: Vec<PacketDesc>,
    cx: Ctx,
    done: bool,
}

/// Makes `need` bytes available from the cursor if the input has them (a stream cursor moves
/// to 0). A decoder failure is reported as a warning and ends the input, so packets before a
/// damaged compressed tail are kept; a failure of the underlying reader is an error.
fn fill(src: &mut Source, pos: &mut usize, cx: &mut Ctx, need: usize) -> Result<(), CaptureError> {
    let res = src.refill(*pos, need);
    if matches!(src, Source::Stream(_)) {
        *pos = 0;
    }
    match res {
        Ok(()) => Ok(()),
        Err(err) => match src.compression() {
            Some(c) if !src.raw_failed() => {
                let off = src.base() + src.data().len() as u64;
                let msg = format!(
                    "{c} decompression failed after {} compressed bytes: {err}; stopping",
                    src.raw_bytes()
                );
                cx.warn(off, msg);
                src.set_eof();
                Ok(())
            }
            _ => Err(CaptureError::Io {
                source: cx.name.clone(),
                err,
            }),
        },
    }
}

/// A header error, mentioning any decoder trouble that explains it.
fn header_err(cx: &Ctx, msg: &str, ctx: &str) -> CaptureError {
    let mut message = format!("{msg}{ctx}");
    for w in &cx.warnings {
        message.push_str("; ");
        message.push_str(&w.message);
    }
    format_err(&cx.name, 0, message)
}

impl FileCapture {
    /// Reads the file header (pcap) or first section header (pcapng). Header problems are
    /// fatal: there is nothing useful to salvage from a file whose header we refuse.
    fn new(name: &str, mut src: Source, erf_name: bool) -> Result<FileCapture, CaptureError> {
        let mut cx = Ctx {
            name: name.to_string(),
            stats: CaptureStats::default(),
            warnings: Vec::new(),
            warned: 0,
        };
        let mut pos = 0;
        let ctx = match src.compression() {
            Some(c) => format!(" after {c} decompression"),
            None => String::new(),
        };
        // An ERF record header (a stream reads ahead much further anyway).
        fill(&mut src, &mut pos, &mut cx, 16)?;
        let fmt = match sniff(src.data()).or(erf_name.then_some(Kind::Erf)) {
            Some(Kind::Erf) => Format::Erf(Erf::default()),
            Some(Kind::Pcap) => {
                fill(&mut src, &mut pos, &mut cx, pcap::HEADER_LEN)?;
                let p = Pcap::parse_header(src.data()).map_err(|m| header_err(&cx, &m, &ctx))?;
                pos = pcap::HEADER_LEN;
                Format::Pcap(p)
            }
            Some(Kind::Pcapng) => loop {
                match Pcapng::first(src.data()) {
                    First::Ok(p, len) => {
                        pos = len;
                        break Format::Pcapng(p);
                    }
                    First::Need(n) if src.data().len() < n && !src.eof() => {
                        fill(&mut src, &mut pos, &mut cx, n)?
                    }
                    First::Need(n) => {
                        let m = format!(
                            "truncated pcapng section header: {} of {n} bytes",
                            src.data().len()
                        );
                        return Err(header_err(&cx, &m, &ctx));
                    }
                    First::Bad(m) => return Err(header_err(&cx, &m, &ctx)),
                }
            },
            _ => {
                let err = unknown_format(name, src.data(), &ctx);
                return Err(match err {
                    CaptureError::Format { message, .. } if !cx.warnings.is_empty() => {
                        header_err(&cx, &message, "")
                    }
                    e => e,
                });
            }
        };
        Ok(FileCapture {
            src,
            pos,
            fmt,
            descs: Vec::with_capacity(BATCH_SIZE),
            cx,
            done: false,
        })
    }
}

impl Capture for FileCapture {
    fn next_batch(&mut self) -> Result<Option<Batch<'_>>, CaptureError> {
        self.descs.clear();
        while !self.done && self.descs.len() < BATCH_SIZE {
            let data = self.src.data().get(self.pos..).unwrap_or(&[]);
            let eof = self.src.eof();
            let off = self.src.base() + self.pos as u64;
            let step = match &mut self.fmt {
                Format::Pcap(p) => p.step(data, eof, off, &mut self.cx),
                Format::Pcapng(p) => p.step(data, eof, off, &mut self.cx),
                Format::Erf(p) => p.step(data, eof, off, &mut self.cx),
            };
            // pcap/pcapng records of LINKTYPE_ERF hold one ERF record each: the same walk as
            // an ERF file turns it into the packet inside.
            let step = match step {
                Step::Packet { consumed, desc } if desc.link == crate::LinkType::ERF.0 => {
                    erf::unwrap(data, consumed, desc, off, &mut self.cx)
                }
                s => s,
            };
            match step {
                Step::Packet { consumed, mut desc } if consumed > 0 && consumed <= data.len() => {
                    desc.offset += self.pos;
                    self.pos += consumed;
                    let st = &mut self.cx.stats;
                    st.packets += 1;
                    st.wire_bytes += u64::from(desc.wire_len);
                    if desc.caplen < desc.wire_len {
                        st.snaplen_truncated += 1;
                    }
                    self.descs.push(desc);
                }
                Step::Skip(consumed) if consumed > 0 && consumed <= data.len() => {
                    self.pos += consumed;
                }
                // The batch points into the window: hand it out before moving the window.
                Step::Need(_) if !self.descs.is_empty() => break,
                Step::Need(n) if n > data.len() && !eof => {
                    fill(&mut self.src, &mut self.pos, &mut self.cx, n).inspect_err(|_| {
                        self.done = true;
                    })?;
                }
                Step::End => self.done = true,
                other => {
                    // A parser bug, not bad input: stop rather than loop or panic.
                    self.cx.warn(
                        off,
                        format!("internal error: parser returned {other:?}; stopping"),
                    );
                    self.done = true;
                }
            }
        }
        if self.descs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            data: self.src.data(),
            descs: &self.descs,
        }))
    }

    fn stats(&self) -> CaptureStats {
        self.cx.stats.clone()
    }

    fn take_warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.cx.warnings)
    }

    fn source_name(&self) -> &str {
        &self.cx.name
    }

    fn progress(&self) -> (u64, Option<u64>) {
        self.src.progress(self.pos)
    }
}
