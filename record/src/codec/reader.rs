//! [`RecordReader`]: reads blocks off any `Read`, recovers from damage with warnings.

use std::io::{self, Read};

use super::wire::{decode_raw_into, record_extent};
use super::{
    check_file_header, header_len, not_ours_message, FileHeader, HeaderCheck, RecordError,
    BLOCK_SYNC, FILE_HEADER_LEN, FILE_HEADER_PREFIX, FILE_MAGIC, FRAME_LEN, MAX_PAYLOAD,
};
use crate::model::FlowRecord;

/// Read size (and smallest input buffer).
const READ_CHUNK: usize = 64 << 10;
/// Warnings kept until [`RecordReader::take_warnings`]; later ones are only counted.
const MAX_PENDING_WARNINGS: usize = 1000;

/// A checked block frame header.
struct Frame {
    clen: usize,
    ulen: usize,
    count: u32,
    payload_crc: u32,
}

/// Checks a frame header (`b` holds [`FRAME_LEN`] bytes starting with the sync magic).
fn parse_frame(b: &[u8]) -> Result<Frame, String> {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let stored = u32_at(20);
    let computed = crc32c::crc32c(&b[..20]);
    if stored != computed {
        return Err(format!(
            "block header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    let f = Frame {
        clen: u32_at(4) as usize,
        ulen: u32_at(8) as usize,
        count: u32_at(12),
        payload_crc: u32_at(16),
    };
    if f.clen > MAX_PAYLOAD || f.ulen > MAX_PAYLOAD {
        return Err(format!(
            "block claims {} compressed / {} uncompressed bytes, over the {MAX_PAYLOAD} byte limit",
            f.clen, f.ulen
        ));
    }
    // Every record takes at least one byte; an empty block carries no payload at all.
    if f.count as usize > f.ulen || (f.ulen > 0 && f.count == 0) || (f.ulen == 0 && f.clen > 0) {
        return Err(format!(
            "block claims {} records in {} bytes ({} compressed)",
            f.count, f.ulen, f.clen
        ));
    }
    Ok(f)
}

/// True when `tail` (the last bytes of the input) is the beginning of `magic`.
fn starts_like(tail: &[u8], magic: &[u8]) -> bool {
    let n = tail.len().min(magic.len());
    n > 0 && tail[..n] == magic[..n]
}

enum State {
    /// At a block boundary (or inside a block: `block_left > 0`).
    Blocks,
    /// Scanning for the next valid block or file header after damage at `from`.
    Resync { from: u64, reason: String },
    /// End of input reached (or a fatal error returned): only `Ok(None)` from now on.
    Done,
}

/// Reads a record file or stream written by [`RecordWriter`](super::RecordWriter).
///
/// Works on any [`Read`]: partial reads are fine, and there is no need for a `BufReader`
/// (the reader buffers itself). Damage does not stop it: every record of every
/// intact block is returned; a partial last block, a corrupt block (skipped by scanning for
/// the next valid block header) or an undecodable record each produce one warning, available
/// from [`take_warnings`](Self::take_warnings). A file header where a block was expected
/// (concatenated files or streams) starts a new section: [`header`](Self::header) then
/// returns that section's header.
///
/// Errors (`Err`) are only I/O errors and a section of a newer major version. After an
/// error the reader returns `Ok(None)`, except for `WouldBlock`/`TimedOut` I/O errors, after
/// which reading can be retried without loss.
pub struct RecordReader<R: Read> {
    inner: R,
    source: String,
    header: FileHeader,

    /// Input buffer: `buf[pos..end]` is read but not yet consumed; `buf[0]` is at input
    /// offset `base`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    base: u64,
    eof: bool,

    /// Decompressed payload of the current block and the position of its next record.
    block: Vec<u8>,
    block_pos: usize,
    block_left: u32,
    block_count: u32,
    block_offset: u64,
    decompressor: zstd::bulk::Decompressor<'static>,

    state: State,
    warnings: Vec<String>,
    /// Warnings beyond [`MAX_PENDING_WARNINGS`]: how many, and the offset of the first.
    suppressed: u64,
    suppressed_from: u64,
    blocks_read: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the file header. `source` names the input in errors and warnings.
    pub fn new(r: R, source: &str) -> Result<Self, RecordError> {
        let decompressor = zstd::bulk::Decompressor::new().map_err(|err| RecordError::Io {
            source: source.to_string(),
            err,
        })?;
        let mut rd = RecordReader {
            inner: r,
            source: source.to_string(),
            header: FileHeader::default(),
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            block: Vec::new(),
            block_pos: 0,
            block_left: 0,
            block_count: 0,
            block_offset: 0,
            decompressor,
            state: State::Blocks,
            warnings: Vec::new(),
            suppressed: 0,
            suppressed_from: 0,
            blocks_read: 0,
        };
        rd.read_first_header()?;
        Ok(rd)
    }

    /// The file header; after a new section started (concatenated input), that section's.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Blocks read intact so far.
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read
    }

    /// Warnings collected since the last call, one line each, naming source and offset.
    pub fn take_warnings(&mut self) -> Vec<String> {
        if self.suppressed > 0 {
            let n = std::mem::take(&mut self.suppressed);
            self.warnings.push(format!(
                "{}: offset {}: {n} more warnings suppressed",
                self.source, self.suppressed_from
            ));
        }
        std::mem::take(&mut self.warnings)
    }

    /// The next record, or `Ok(None)` at the end of the input (clean or after a warned-about
    /// damaged tail).
    pub fn next_record(&mut self) -> Result<Option<FlowRecord>, RecordError> {
        let mut rec = FlowRecord::default();
        Ok(self
            .next_matching(&mut rec, false, &mut |_| true)?
            .then_some(rec))
    }

    /// The next record that `keep` accepts, decoded into `rec` (whose allocations are
    /// reused); `Ok(false)` at the end of the input. With `skim`, `keep` is first shown the
    /// record without its per-direction statistics (`src`/`dst` left at their defaults) and
    /// only a kept record is decoded whole: a selective filter that needs no counters skips
    /// most of the decoding work. Without `skim`, `keep` sees the whole record.
    pub fn next_matching(
        &mut self,
        rec: &mut FlowRecord,
        skim: bool,
        keep: &mut dyn FnMut(&FlowRecord) -> bool,
    ) -> Result<bool, RecordError> {
        loop {
            if self.block_left > 0 {
                let buf = &self.block[self.block_pos..];
                let res = decode_raw_into(buf, rec, skim).and_then(|n| {
                    if !keep(rec) {
                        return Ok((n, false));
                    }
                    if skim {
                        decode_raw_into(buf, rec, false)?;
                    }
                    Ok((n, true))
                });
                match res {
                    Ok((n, kept)) => {
                        self.record_done(n);
                        if kept {
                            return Ok(true);
                        }
                        continue;
                    }
                    Err(e) => {
                        // The block's checksum was good, so this is a writer bug or a record
                        // breaking the versioning rules: skip the record if its length prefix
                        // is sound, else the rest of the block.
                        let (off, count) = (self.block_offset, self.block_count);
                        let index = count - self.block_left;
                        let at = self.block_pos + e.at;
                        let extent = record_extent(&self.block[self.block_pos..]);
                        let what = if extent.is_some() {
                            "record skipped"
                        } else {
                            "rest of block skipped"
                        };
                        self.warn(
                            off,
                            format_args!(
                                "record {index} of {count} in block undecodable ({e}, at \
                                 payload byte {at}); {what}"
                            ),
                        );
                        match extent {
                            Some(n) => self.record_done(n),
                            None => self.block_left = 0,
                        }
                        continue;
                    }
                }
            }
            match self.next_block() {
                Ok(true) => {}
                Ok(false) => {
                    self.state = State::Done;
                    return Ok(false);
                }
                Err(e) => {
                    let retry = matches!(
                        &e,
                        RecordError::Io { err, .. }
                            if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
                    );
                    if !retry {
                        self.state = State::Done;
                    }
                    return Err(e);
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------

    /// Moves past a record of `n` bytes in the current block; warns about bytes left over
    /// after the block's last record.
    fn record_done(&mut self, n: usize) {
        self.block_pos += n;
        self.block_left -= 1;
        if self.block_left == 0 && self.block_pos != self.block.len() {
            let extra = self.block.len() - self.block_pos;
            let (off, count) = (self.block_offset, self.block_count);
            self.warn(
                off,
                format_args!("block has {extra} bytes after its {count} records, ignored"),
            );
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn io_err(&self, err: io::Error) -> RecordError {
        RecordError::Io {
            source: self.source.clone(),
            err,
        }
    }

    fn format_err(&self, offset: u64, message: String) -> RecordError {
        RecordError::Format {
            source: self.source.clone(),
            offset,
            message,
        }
    }

    fn warn(&mut self, offset: u64, msg: std::fmt::Arguments<'_>) {
        if self.warnings.len() >= MAX_PENDING_WARNINGS {
            if self.suppressed == 0 {
                self.suppressed_from = offset;
            }
            self.suppressed += 1;
        } else {
            self.warnings
                .push(format!("{}: offset {offset}: {msg}", self.source));
        }
    }

    /// Makes at least `need` unconsumed bytes available; `Ok(false)` if the input ends first.
    fn fill(&mut self, need: usize) -> Result<bool, RecordError> {
        while self.end - self.pos < need {
            if self.eof {
                return Ok(false);
            }
            if self.buf.len() - self.pos < need || self.end == self.buf.len() {
                if self.pos > 0 {
                    self.buf.copy_within(self.pos..self.end, 0);
                    self.base += self.pos as u64;
                    self.end -= self.pos;
                    self.pos = 0;
                }
                let want = need.max(READ_CHUNK);
                if self.buf.len() < want {
                    self.buf.resize(want, 0);
                }
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n.min(self.buf.len() - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(true)
    }

    fn read_first_header(&mut self) -> Result<(), RecordError> {
        if !self.fill(FILE_HEADER_PREFIX)? {
            let avail = &self.buf[self.pos..self.end];
            let msg = if !avail.is_empty() && starts_like(avail, &FILE_MAGIC) {
                format!("truncated file header ({} bytes)", avail.len())
            } else {
                not_ours_message(avail)
            };
            return Err(self.format_err(0, msg));
        }
        if self.buf[self.pos..self.pos + 8] != FILE_MAGIC {
            let msg = not_ours_message(&self.buf[self.pos..self.end]);
            return Err(self.format_err(0, msg));
        }
        let len = header_len(&self.buf[self.pos..self.end]).map_err(|m| self.format_err(0, m))?;
        if !self.fill(len)? {
            let n = self.end - self.pos;
            return Err(self.format_err(0, format!("truncated file header ({n} of {len} bytes)")));
        }
        match check_file_header(&self.buf[self.pos..self.end], len) {
            HeaderCheck::Ok(h, len) => {
                self.header = h;
                self.pos += len;
                Ok(())
            }
            HeaderCheck::Newer(major, minor) => Err(RecordError::NewerVersion {
                source: self.source.clone(),
                major,
                minor,
            }),
            HeaderCheck::Bad(m) => Err(self.format_err(0, m)),
        }
    }

    /// Enters resync after damage at `from` (the current position): the scan starts one byte
    /// further on.
    fn start_resync(&mut self, reason: String) {
        let from = self.offset();
        self.pos += 1;
        self.state = State::Resync { from, reason };
    }

    /// Reports the end of a resync that stopped at the current position.
    fn end_resync(&mut self, to_eof: bool) {
        if let State::Resync { from, reason } = std::mem::replace(&mut self.state, State::Blocks) {
            let skipped = self.offset() - from;
            if to_eof {
                self.warn(
                    from,
                    format_args!(
                        "{reason}; no further block found, skipped {skipped} bytes to end of input"
                    ),
                );
            } else {
                let at = self.offset();
                self.warn(
                    from,
                    format_args!(
                        "{reason}; skipped {skipped} bytes to the next block at offset {at}"
                    ),
                );
            }
        }
    }

    /// Scans for the next block frame (or file header) whose checksum is valid.
    /// `Ok(false)`: none until the end of input (warned about).
    fn resync(&mut self) -> Result<bool, RecordError> {
        loop {
            let hay = &self.buf[self.pos..self.end];
            let Some(i) = hay
                .iter()
                .position(|&c| c == BLOCK_SYNC[0] || c == FILE_MAGIC[0])
            else {
                self.pos = self.end;
                if !self.fill(1)? {
                    self.end_resync(true);
                    return Ok(false);
                }
                continue;
            };
            self.pos += i;
            let is_sync = self.buf[self.pos] == BLOCK_SYNC[0];
            let need = if is_sync {
                FRAME_LEN
            } else {
                FILE_HEADER_PREFIX
            };
            if !self.fill(need)? {
                // Too close to the end of input to check. If it looks like the start of a
                // block or header, stop here and let the caller report a partial tail.
                let tail = &self.buf[self.pos..self.end];
                if starts_like(tail, if is_sync { &BLOCK_SYNC } else { &FILE_MAGIC }) {
                    self.end_resync(false);
                    return Ok(true);
                }
                self.pos += 1;
                continue;
            }
            let cand = &self.buf[self.pos..self.end];
            let found = if is_sync {
                cand[..4] == BLOCK_SYNC && parse_frame(&cand[..FRAME_LEN]).is_ok()
            } else if cand[..8] == FILE_MAGIC {
                match header_len(cand) {
                    Ok(len) => {
                        if self.fill(len)? {
                            let cand = &self.buf[self.pos..self.end];
                            !matches!(check_file_header(cand, len), HeaderCheck::Bad(_))
                        } else {
                            // A header cut by the end of input: reported as a partial tail.
                            true
                        }
                    }
                    Err(_) => false,
                }
            } else {
                false
            };
            if found {
                self.end_resync(false);
                return Ok(true);
            }
            self.pos += 1;
        }
    }

    /// Loads the next block. `Ok(false)` at the end of input.
    fn next_block(&mut self) -> Result<bool, RecordError> {
        loop {
            match self.state {
                State::Done => return Ok(false),
                State::Resync { .. } => {
                    if !self.resync()? {
                        return Ok(false);
                    }
                }
                State::Blocks => {}
            }
            let off = self.offset();
            if !self.fill(FRAME_LEN)? {
                let tail = &self.buf[self.pos..self.end];
                let n = tail.len();
                if n == 0 {
                    return Ok(false);
                }
                if starts_like(tail, &FILE_MAGIC) {
                    self.warn(
                        off,
                        format_args!("partial file header at end of input ({n} bytes), ignored"),
                    );
                } else if starts_like(tail, &BLOCK_SYNC) {
                    self.warn(
                        off,
                        format_args!("partial block at end of input ({n} bytes), ignored"),
                    );
                } else {
                    self.warn(
                        off,
                        format_args!("unrecognized data at end of input ({n} bytes), ignored"),
                    );
                }
                self.pos = self.end;
                return Ok(false);
            }
            let head = &self.buf[self.pos..self.pos + FRAME_LEN];
            if head[..4] == BLOCK_SYNC {
                let frame = match parse_frame(head) {
                    Ok(f) => f,
                    Err(m) => {
                        self.start_resync(m);
                        continue;
                    }
                };
                let total = FRAME_LEN + frame.clen;
                if !self.fill(total)? {
                    let n = self.end - self.pos;
                    self.warn(
                        off,
                        format_args!("partial block at end of input ({n} bytes), ignored"),
                    );
                    self.pos = self.end;
                    return Ok(false);
                }
                let payload = &self.buf[self.pos + FRAME_LEN..self.pos + total];
                let crc = crc32c::crc32c(payload);
                if crc != frame.payload_crc {
                    self.start_resync(format!(
                        "block payload checksum mismatch (stored {:08x}, computed {crc:08x})",
                        frame.payload_crc
                    ));
                    continue;
                }
                self.block.clear();
                if frame.clen > 0 {
                    self.block.reserve(frame.ulen);
                    match self
                        .decompressor
                        .decompress_to_buffer(payload, &mut self.block)
                    {
                        Ok(n) if n == frame.ulen => {}
                        Ok(n) => {
                            self.start_resync(format!(
                                "block payload decompresses to {n} bytes, header says {}",
                                frame.ulen
                            ));
                            continue;
                        }
                        Err(e) => {
                            self.start_resync(format!("block payload does not decompress: {e}"));
                            continue;
                        }
                    }
                }
                self.pos += total;
                self.block_pos = 0;
                self.block_left = frame.count;
                self.block_count = frame.count;
                self.block_offset = off;
                self.blocks_read += 1;
                return Ok(true);
            } else if head[..8] == FILE_MAGIC {
                // A new section (concatenated files or streams). `head` holds FRAME_LEN >=
                // FILE_HEADER_PREFIX bytes.
                let len = match header_len(head) {
                    Ok(len) => len,
                    Err(m) => {
                        self.start_resync(m);
                        continue;
                    }
                };
                if !self.fill(len)? {
                    let n = self.end - self.pos;
                    self.warn(
                        off,
                        format_args!("partial file header at end of input ({n} bytes), ignored"),
                    );
                    self.pos = self.end;
                    return Ok(false);
                }
                match check_file_header(&self.buf[self.pos..self.end], len) {
                    HeaderCheck::Ok(h, len) => {
                        self.header = h;
                        self.pos += len;
                    }
                    HeaderCheck::Newer(major, minor) => {
                        return Err(RecordError::NewerVersion {
                            source: self.source.clone(),
                            major,
                            minor,
                        })
                    }
                    HeaderCheck::Bad(m) => self.start_resync(m),
                }
            } else {
                self.start_resync("no block sync marker where a block should start".into());
            }
        }
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<FlowRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

// The 1.0 header is what a 1.0 writer emits; keep the constant honest.
const _: () = assert!(FILE_HEADER_LEN >= FILE_HEADER_PREFIX + 4);
