//! Inputs in other formats than tapflow's own: Argus 3 files (recognised by their leading
//! management record, not by name) and gzip-compressed inputs of either kind. Every source
//! (`-r FILE`, `-r -`, archive directories) goes through [`open_reader`].

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use tapflow_argus::{is_argus, ArgusReader};
use tapflow_record::{FlowRecord, RecordError, RecordReader};

/// Bytes looked at to recognise a format (an Argus MAR's cookie ends at 12).
const SNIFF: usize = 16;

/// A reader of either format, with the interface `source` uses.
pub(crate) enum AnyReader {
    Native(RecordReader<Box<dyn Read + Send>>),
    Argus(ArgusReader<Box<dyn Read + Send>>),
}

impl AnyReader {
    /// As [`RecordReader::next_matching`]; Argus records are decoded whole (`skim` is moot:
    /// a FAR is small).
    pub(crate) fn next_matching(
        &mut self,
        rec: &mut FlowRecord,
        skim: bool,
        keep: &mut dyn FnMut(&FlowRecord) -> bool,
    ) -> Result<bool, RecordError> {
        match self {
            AnyReader::Native(r) => r.next_matching(rec, skim, keep),
            AnyReader::Argus(r) => r.next_matching(rec, keep),
        }
    }

    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        match self {
            AnyReader::Native(r) => r.take_warnings(),
            AnyReader::Argus(r) => r.take_warnings(),
        }
    }
}

/// Reads up to [`SNIFF`] bytes (fewer only at the end of the input).
fn head_of(r: &mut dyn Read, name: &str) -> Result<Vec<u8>, RecordError> {
    let mut head = vec![0u8; SNIFF];
    let mut n = 0;
    while n < SNIFF {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(RecordError::Io {
                    source: name.to_string(),
                    err,
                })
            }
        }
    }
    head.truncate(n);
    Ok(head)
}

/// Opens `r` as whatever it holds: gzip is decompressed on the fly, then an Argus 3 file is
/// read by the Argus reader and anything else by the native reader (whose errors say what
/// it is not).
pub(crate) fn open_reader(
    mut r: Box<dyn Read + Send>,
    name: &str,
) -> Result<AnyReader, RecordError> {
    let mut head = head_of(&mut r, name)?;
    let mut r: Box<dyn Read + Send> = Box::new(Cursor::new(head.clone()).chain(r));
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz: Box<dyn Read + Send> = Box::new(MultiGzDecoder::new(r));
        head = head_of(&mut gz, name)?;
        r = Box::new(Cursor::new(head.clone()).chain(gz));
    }
    if is_argus(&head) {
        ArgusReader::new(r, name).map(AnyReader::Argus)
    } else {
        RecordReader::new(r, name).map(AnyReader::Native)
    }
}

/// For a file found in a directory that is not a native record file: `Some(first stime)`
/// when it is an Argus file (perhaps gzip'ed), `None` otherwise.
pub(crate) fn peek_argus(path: &Path) -> Option<Option<u64>> {
    let f = File::open(path).ok()?;
    let mut rd = match open_reader(Box::new(f), "").ok()? {
        AnyReader::Argus(rd) => rd,
        AnyReader::Native(_) => return None,
    };
    Some(rd.next_record().ok().flatten().map(|r| r.stime_ns))
}
