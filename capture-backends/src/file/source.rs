//! Where the capture bytes live: a read-only file mapping (zero copy) or a reusable streaming
//! window over a reader (stdin, decompressors).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::Mmap;

/// Default size of the streaming window. Grown only when one record does not fit.
pub(crate) const STREAM_WINDOW: usize = 4 << 20;
/// When refilling, read at least this much (if the window allows) so batches stay large, but
/// do not insist on filling the whole window: a slow pipe should not stall the first batch.
const READ_AHEAD: usize = 1 << 20;

/// Counts the raw (possibly compressed) bytes read and remembers whether the raw reader itself
/// failed, so a decoder error can be told apart from an I/O error underneath it.
#[derive(Default)]
pub(crate) struct RawCounter {
    bytes: AtomicU64,
    failed: AtomicBool,
}

impl RawCounter {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Wraps the raw input and feeds a shared [`RawCounter`].
pub(crate) struct CountingReader<R> {
    inner: R,
    counter: Arc<RawCounter>,
}

impl<R: Read> CountingReader<R> {
    pub(crate) fn new(inner: R, counter: Arc<RawCounter>) -> Self {
        CountingReader { inner, counter }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.counter.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.counter.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// A streaming window: `buf[..filled]` holds stream bytes starting at stream offset `base`.
pub(crate) struct Stream {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    filled: usize,
    base: u64,
    eof: bool,
    raw: Arc<RawCounter>,
    /// Raw input size, if known (a regular file).
    total: Option<u64>,
    /// Compression name, if the reader is a decoder.
    pub(crate) compression: Option<&'static str>,
}

impl Stream {
    pub(crate) fn new(
        reader: Box<dyn Read + Send>,
        raw: Arc<RawCounter>,
        total: Option<u64>,
        compression: Option<&'static str>,
        window: usize,
    ) -> Self {
        Stream {
            reader,
            buf: vec![0; window.max(64)],
            filled: 0,
            base: 0,
            eof: false,
            raw,
            total,
            compression,
        }
    }
}

/// The capture bytes.
pub(crate) enum Source {
    /// Whole file mapped read-only: everything is available at once.
    Map(Mmap),
    /// In-memory bytes (tests of the whole-input path without files).
    #[cfg(test)]
    Mem(Vec<u8>),
    Stream(Stream),
}

impl Source {
    /// The bytes currently available; record offsets in batches index into this.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        match self {
            Source::Map(m) => m,
            #[cfg(test)]
            Source::Mem(v) => v,
            Source::Stream(s) => s.buf.get(..s.filled).unwrap_or(&[]),
        }
    }

    /// Stream offset of `data()[0]`.
    pub(crate) fn base(&self) -> u64 {
        match self {
            Source::Stream(s) => s.base,
            _ => 0,
        }
    }

    /// True when no more bytes can arrive beyond `data()`.
    pub(crate) fn eof(&self) -> bool {
        match self {
            Source::Stream(s) => s.eof,
            _ => true,
        }
    }

    /// Gives up on the rest of the stream (after a decoder error).
    pub(crate) fn set_eof(&mut self) {
        if let Source::Stream(s) = self {
            s.eof = true;
        }
    }

    pub(crate) fn compression(&self) -> Option<&'static str> {
        match self {
            Source::Stream(s) => s.compression,
            _ => None,
        }
    }

    /// Whether the raw reader (below any decoder) failed.
    pub(crate) fn raw_failed(&self) -> bool {
        match self {
            Source::Stream(s) => s.raw.failed(),
            _ => false,
        }
    }

    pub(crate) fn raw_bytes(&self) -> u64 {
        match self {
            Source::Stream(s) => s.raw.bytes(),
            _ => 0,
        }
    }

    /// Drops the bytes before `pos` (they must no longer be referenced) and reads until at least
    /// `need` bytes follow it, or the input ends. Afterwards the old `pos` is at index 0.
    /// Only the stream variant does anything: a mapping already holds everything.
    pub(crate) fn refill(&mut self, pos: usize, need: usize) -> io::Result<()> {
        let Source::Stream(s) = self else {
            return Ok(());
        };
        let pos = pos.min(s.filled);
        if pos > 0 {
            s.buf.copy_within(pos..s.filled, 0);
            s.filled -= pos;
            s.base += pos as u64;
        }
        let want = need.max(READ_AHEAD.min(s.buf.len()));
        while s.filled < want && !s.eof {
            if s.filled == s.buf.len() {
                // Only reachable when one record needs more than the window: grow in steps as
                // data actually arrives, so a bogus length cannot reserve a huge buffer.
                let new_len = s.buf.len().saturating_mul(2).min(need).max(s.filled + 1);
                s.buf.resize(new_len, 0);
            }
            let Some(dst) = s.buf.get_mut(s.filled..) else {
                break;
            };
            match s.reader.read(dst) {
                Ok(0) => s.eof = true,
                Ok(n) => s.filled += n.min(dst.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// (consumed, total) for progress display: file bytes for a mapping, raw bytes read for a
    /// stream (compressed bytes when decompressing).
    pub(crate) fn progress(&self, pos: usize) -> (u64, Option<u64>) {
        match self {
            Source::Map(m) => (pos as u64, Some(m.len() as u64)),
            #[cfg(test)]
            Source::Mem(v) => (pos as u64, Some(v.len() as u64)),
            Source::Stream(s) => (s.raw.bytes(), s.total),
        }
    }
}
