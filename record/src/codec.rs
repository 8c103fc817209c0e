//! The native record codec: a file (or stream) header, then framed, checksummed,
//! zstd-compressed blocks of protobuf-like encoded [`FlowRecord`]s.
//!
//! The byte layout, versioning and recovery rules are specified in `docs/record-format.md`;
//! keep the two in step.
//!
//! * [`RecordWriter`] writes a header, then one block per `block_records` records or
//!   `block_bytes` encoded bytes (whichever fills first), and on [`RecordWriter::flush_block`].
//! * [`RecordReader`] reads any [`std::io::Read`] (files, pipes, sockets; partial reads are fine),
//!   returns every record of every intact block, and reports damage (a partial last block,
//!   a corrupt block) as warnings instead of errors: see [`RecordReader::take_warnings`].
//! * [`encode_record`] / [`decode_record`] are the per-record encoding, usable on their own.

use std::fmt;
use std::io;

#[cfg(doc)]
use crate::model::FlowRecord;

mod reader;
mod wire;
mod writer;

pub use reader::RecordReader;
pub use wire::{decode_record, encode_record};
pub use writer::{RecordWriter, WriterOptions};

/// Major version of the format this crate writes and the only major it reads.
/// A reader refuses a file with a newer major ([`RecordError::NewerVersion`]).
pub const FORMAT_MAJOR: u16 = 1;
/// Minor version this crate writes. Readers accept any minor of their major: newer minors
/// only add things an older reader can skip (record fields, header bytes).
pub const FORMAT_MINOR: u16 = 3;

/// File magic, the first 8 bytes of every file and of every section of a stream.
pub(crate) const FILE_MAGIC: [u8; 8] = *b"TAPFLOW\0";
/// Length of the file header as written by 1.0 (newer minors may write a longer one).
pub(crate) const FILE_HEADER_LEN: usize = 36;
/// The part of the header every version keeps in place: magic, major, minor, header_len,
/// reserved.
pub(crate) const FILE_HEADER_PREFIX: usize = 16;
/// Largest `header_len` a reader accepts.
pub(crate) const MAX_FILE_HEADER_LEN: usize = 4096;

/// Sync magic that starts every block frame.
pub(crate) const BLOCK_SYNC: [u8; 4] = [0xF7, b'T', b'F', b'B'];
/// Length of a block frame header.
pub(crate) const FRAME_LEN: usize = 24;
/// Largest compressed or uncompressed block payload a reader accepts (64 MiB).
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// The header at the start of a file (and of every section of a stream).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FileHeader {
    /// Format version. [`RecordWriter`] always writes [`FORMAT_MAJOR`].[`FORMAT_MINOR`],
    /// whatever the header it is given says; a reader reports what the file says.
    pub major: u16,
    pub minor: u16,
    /// Probe that wrote the file (records carry their own `probe_id` too).
    pub probe_id: u32,
    /// When the file was created, ns since the epoch.
    pub created_ns: u64,
    /// Application-defined bits; format 1.0 defines none and readers ignore them.
    pub flags: u32,
}

impl FileHeader {
    /// The 1.0 header bytes (with `self.major`/`self.minor` as given).
    pub(crate) fn to_bytes(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        b[0..8].copy_from_slice(&FILE_MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..14].copy_from_slice(&(FILE_HEADER_LEN as u16).to_le_bytes());
        // 14..16 reserved, zero.
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20..24].copy_from_slice(&self.probe_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_ns.to_le_bytes());
        let crc = crc32c::crc32c(&b[..FILE_HEADER_LEN - 4]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Outcome of checking a complete file header (`b` holds at least `header_len` bytes).
pub(crate) enum HeaderCheck {
    /// Valid; the header and its length in bytes.
    Ok(FileHeader, usize),
    /// Checksum-valid header of a major version this reader does not know.
    Newer(u16, u16),
    /// Not a valid header; the message says why.
    Bad(String),
}

/// `header_len` from the fixed prefix (`b` holds at least [`FILE_HEADER_PREFIX`] bytes), or
/// why it is unusable.
pub(crate) fn header_len(b: &[u8]) -> Result<usize, String> {
    let len = u16::from_le_bytes([b[12], b[13]]) as usize;
    if !(FILE_HEADER_LEN..=MAX_FILE_HEADER_LEN).contains(&len) {
        return Err(format!(
            "bad file header length {len} (expected {FILE_HEADER_LEN}..={MAX_FILE_HEADER_LEN})"
        ));
    }
    Ok(len)
}

/// Checks a header whose magic matched and whose `header_len` bytes are all in `b`.
pub(crate) fn check_file_header(b: &[u8], len: usize) -> HeaderCheck {
    let stored = u32::from_le_bytes([b[len - 4], b[len - 3], b[len - 2], b[len - 1]]);
    let computed = crc32c::crc32c(&b[..len - 4]);
    if stored != computed {
        return HeaderCheck::Bad(format!(
            "file header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    let major = u16::from_le_bytes([b[8], b[9]]);
    let minor = u16::from_le_bytes([b[10], b[11]]);
    if major > FORMAT_MAJOR {
        return HeaderCheck::Newer(major, minor);
    }
    if major < FORMAT_MAJOR {
        return HeaderCheck::Bad(format!(
            "unsupported record format {major}.{minor} (this reader supports {FORMAT_MAJOR}.x)"
        ));
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut created = [0u8; 8];
    created.copy_from_slice(&b[24..32]);
    HeaderCheck::Ok(
        FileHeader {
            major,
            minor,
            flags: u32_at(16),
            probe_id: u32_at(20),
            created_ns: u64::from_le_bytes(created),
        },
        len,
    )
}

/// "not a tapflow record file" with the first bytes, and a hint when they are a known format.
pub(crate) fn not_ours_message(b: &[u8]) -> String {
    if b.is_empty() {
        return "empty input, not a tapflow record file".into();
    }
    let n = b.len().min(4);
    let hex: Vec<String> = b[..n].iter().map(|x| format!("{x:02x}")).collect();
    let hint = match b[..n] {
        [0x1f, 0x8b, ..] => ", looks like gzip: decompress it first",
        [0x28, 0xb5, 0x2f, 0xfd] => ", looks like zstd: decompress it first",
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => ", looks like a pcap capture",
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => ", looks like a pcap capture",
        [0x0a, 0x0d, 0x0d, 0x0a] => ", looks like a pcapng capture",
        _ => "",
    };
    format!("not a tapflow record file (magic {}{hint})", hex.join(" "))
}

/// Why a record file or stream could not be read.
#[derive(Debug)]
pub enum RecordError {
    /// Reading the underlying input failed.
    Io { source: String, err: io::Error },
    /// The input is not valid record data (bad file header, undecodable record …).
    /// `offset` is the byte offset in the input (for [`decode_record`]: in its buffer).
    Format {
        source: String,
        offset: u64,
        message: String,
    },
    /// The input was written by a newer major version of the format.
    NewerVersion {
        source: String,
        major: u16,
        minor: u16,
    },
}

impl RecordError {
    /// The name of the input the error is about (empty for [`decode_record`]).
    pub fn source_name(&self) -> &str {
        match self {
            RecordError::Io { source, .. }
            | RecordError::Format { source, .. }
            | RecordError::NewerVersion { source, .. } => source,
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = self.source_name();
        if !src.is_empty() {
            write!(f, "{src}: ")?;
        }
        match self {
            RecordError::Io { err, .. } => write!(f, "read error: {err}"),
            RecordError::Format {
                offset, message, ..
            } => write!(f, "offset {offset}: {message}"),
            RecordError::NewerVersion { major, minor, .. } => write!(
                f,
                "written by record format {major}.{minor}, this reader supports \
                 {FORMAT_MAJOR}.x: upgrade tapflow"
            ),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
