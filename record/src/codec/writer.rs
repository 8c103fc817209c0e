//! [`RecordWriter`]: header, then records batched into compressed, checksummed blocks.

use std::io::{self, Cursor, Write};

use super::wire::encode_record;
use super::{FileHeader, BLOCK_SYNC, FORMAT_MAJOR, FORMAT_MINOR, FRAME_LEN, MAX_PAYLOAD};
use crate::model::FlowRecord;

/// Largest uncompressed block the writer makes: half the reader's limit, so that even
/// incompressible data stays under the limit once compressed.
const WRITER_MAX_BLOCK: usize = MAX_PAYLOAD / 2;

/// How a [`RecordWriter`] cuts and compresses blocks.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// zstd level (negative: faster, up to 22: smaller; 0 means zstd's default, 3).
    pub zstd_level: i32,
    /// A block is written once it holds this many records (at least 1) …
    pub block_records: usize,
    /// … or this many encoded (uncompressed) bytes, whichever comes first. Capped at 32 MiB.
    pub block_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            zstd_level: 3,
            block_records: 8192,
            block_bytes: 1 << 20,
        }
    }
}

/// Writes a record file or stream: the file header, then blocks of records.
///
/// Records are buffered into a block that is compressed and written when it is full, on
/// [`flush_block`](Self::flush_block) and on [`finish`](Self::finish). Dropping the writer
/// flushes the pending block too, ignoring errors: call `finish` to see them. A crash loses
/// at most the pending block; readers skip a partially written one.
pub struct RecordWriter<W: Write> {
    /// Always `Some` until `finish` takes it.
    w: Option<W>,
    compressor: zstd::bulk::Compressor<'static>,
    block_records: usize,
    block_bytes: usize,
    /// Encoded records of the pending block.
    pending: Vec<u8>,
    pending_records: usize,
    /// Frame header + compressed payload of the block being written.
    frame: Vec<u8>,
    records_written: u64,
    bytes_written: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the file header to `w` (version fields set to this crate's format version,
    /// whatever `header` says) and flushes it.
    pub fn new(mut w: W, header: &FileHeader, opts: WriterOptions) -> io::Result<Self> {
        let compressor = zstd::bulk::Compressor::new(opts.zstd_level)?;
        let header = FileHeader {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            ..header.clone()
        };
        let bytes = header.to_bytes();
        w.write_all(&bytes)?;
        w.flush()?;
        let block_bytes = opts.block_bytes.clamp(1, WRITER_MAX_BLOCK);
        Ok(RecordWriter {
            w: Some(w),
            compressor,
            block_records: opts.block_records.clamp(1, WRITER_MAX_BLOCK),
            block_bytes,
            pending: Vec::with_capacity(block_bytes.min(1 << 20) + 4096),
            pending_records: 0,
            frame: Vec::new(),
            records_written: 0,
            bytes_written: bytes.len() as u64,
        })
    }

    /// Adds a record to the pending block, writing the block when it is full.
    ///
    /// A record whose encoding exceeds 32 MiB (huge payload vectors) is refused with
    /// `InvalidInput`. If writing a block fails the error is returned and the block stays
    /// pending (a later flush retries it).
    pub fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let start = self.pending.len();
        encode_record(rec, &mut self.pending);
        let len = self.pending.len() - start;
        if len > WRITER_MAX_BLOCK {
            self.pending.truncate(start);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "flow record of {len} bytes exceeds the {WRITER_MAX_BLOCK} byte block limit"
                ),
            ));
        }
        if self.pending.len() > WRITER_MAX_BLOCK {
            // Rare (only with very large records): write the block without this record.
            let tail = self.pending.split_off(start);
            self.flush_block()?;
            self.pending.extend_from_slice(&tail);
        }
        self.pending_records += 1;
        self.records_written += 1;
        if self.pending_records >= self.block_records || self.pending.len() >= self.block_bytes {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Compresses, frames and writes the pending records (if any), then flushes the
    /// underlying writer.
    pub fn flush_block(&mut self) -> io::Result<()> {
        let w = self.w.as_mut().expect("RecordWriter used after finish");
        if self.pending_records > 0 {
            let frame = &mut self.frame;
            frame.clear();
            frame.resize(FRAME_LEN, 0);
            frame.reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
            let clen = {
                let mut cur = Cursor::new(&mut *frame);
                cur.set_position(FRAME_LEN as u64);
                self.compressor
                    .compress_to_buffer(&self.pending, &mut cur)?
            };
            debug_assert_eq!(frame.len(), FRAME_LEN + clen);
            let payload_crc = crc32c::crc32c(&frame[FRAME_LEN..]);
            frame[0..4].copy_from_slice(&BLOCK_SYNC);
            frame[4..8].copy_from_slice(&(clen as u32).to_le_bytes());
            frame[8..12].copy_from_slice(&(self.pending.len() as u32).to_le_bytes());
            frame[12..16].copy_from_slice(&(self.pending_records as u32).to_le_bytes());
            frame[16..20].copy_from_slice(&payload_crc.to_le_bytes());
            let header_crc = crc32c::crc32c(&frame[..20]);
            frame[20..24].copy_from_slice(&header_crc.to_le_bytes());
            w.write_all(frame)?;
            self.bytes_written += frame.len() as u64;
            self.pending.clear();
            self.pending_records = 0;
        }
        w.flush()
    }

    /// Writes the pending block and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        Ok(self.w.take().expect("RecordWriter used after finish"))
    }

    /// Records accepted by [`write`](Self::write), including those still pending.
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// Bytes handed to the underlying writer so far (header and complete blocks; the pending
    /// block is not counted until it is written).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn get_ref(&self) -> &W {
        self.w.as_ref().expect("RecordWriter used after finish")
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.w.as_mut().expect("RecordWriter used after finish")
    }
}

impl<W: Write> Drop for RecordWriter<W> {
    fn drop(&mut self) {
        if self.w.is_some() && self.pending_records > 0 {
            let _ = self.flush_block();
        }
    }
}
