//! Endace DAG capture through the vendor API (`libdag`), behind the `dag` cargo feature.
//!
//! A DAG stream is a ring of ERF records in memory the card writes: `dag_advance_stream`
//! releases everything before `bottom` and returns the new `top`. A batch is the records
//! between them, walked with the same [`crate::erf::parse`] as ERF files, and points straight
//! into the stream memory (zero copy); the next `next_batch` releases it. A record cut by `top`
//! stays for the next call.
//!
//! **Untested without hardware**: this binding is declared by hand from the DAG API
//! (`dagapi.h`) and only compiled in CI (`cargo check --features dag`); the record walk it
//! relies on is the one the ERF tests cover. `build.rs` links `libdag` when the feature is on.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use crate::erf::{self, Walk};
use crate::live::{LiveCapture, LiveStats};
use crate::{Batch, Capture, CaptureError, CaptureStats, CaptureWarning, PacketDesc};

mod ffi {
    use std::os::raw::{c_char, c_int};

    // The DAG API (Endace `dagapi.h`); every function returns -1 (NULL) and sets errno on error.
    extern "C" {
        pub fn dag_open(dagname: *mut c_char) -> c_int;
        pub fn dag_close(dagfd: c_int) -> c_int;
        pub fn dag_configure(dagfd: c_int, params: *mut c_char) -> c_int;
        pub fn dag_attach_stream64(
            dagfd: c_int,
            stream_num: c_int,
            flags: u32,
            extra_window_size: u64,
        ) -> c_int;
        pub fn dag_detach_stream(dagfd: c_int, stream_num: c_int) -> c_int;
        pub fn dag_start_stream(dagfd: c_int, stream_num: c_int) -> c_int;
        pub fn dag_stop_stream(dagfd: c_int, stream_num: c_int) -> c_int;
        pub fn dag_advance_stream(dagfd: c_int, stream_num: c_int, bottom: *mut *mut u8)
            -> *mut u8;
        pub fn dag_set_stream_poll64(
            dagfd: c_int,
            stream_num: c_int,
            mindata: u64,
            maxwait: *mut libc::timeval,
            poll: *mut libc::timeval,
        ) -> c_int;
    }
}

/// Most records handed out per batch.
const BATCH: usize = 256;

/// One attached, started DAG receive stream.
pub struct DagCapture {
    name: String,
    fd: c_int,
    stream: c_int,
    /// Start of the unreleased records; `dag_advance_stream` frees everything before it.
    bottom: *mut u8,
    /// Bytes of the last batch, released (added to `bottom`) on the next call.
    consumed: usize,
    descs: Vec<PacketDesc>,
    stats: CaptureStats,
    warnings: Vec<CaptureWarning>,
    /// Stream bytes released so far: the "offset" of warnings.
    offset: u64,
}

// SAFETY: the stream memory belongs to the card/driver and this struct is its only user; the
// raw pointers are never shared, so moving the capture to a worker thread is sound.
unsafe impl Send for DagCapture {}

fn io_err(name: &str, what: &str) -> CaptureError {
    let err = std::io::Error::last_os_error();
    CaptureError::Io {
        source: name.to_string(),
        err: std::io::Error::new(err.kind(), format!("{what}: {err}")),
    }
}

impl DagCapture {
    /// Opens `device` (`/dev/dag0`), applies `config` (a `dag_configure` string, may be empty),
    /// attaches receive stream `stream` (even numbers receive) and starts it. `dag_advance_stream`
    /// is made non-blocking so `next_batch` never waits (the worker polls `poll_fd`).
    pub fn open(device: &str, stream: u32, config: &str) -> Result<DagCapture, CaptureError> {
        let name = format!("{device}:{stream}");
        let dev = CString::new(device).map_err(|_| CaptureError::Format {
            source: name.clone(),
            offset: 0,
            message: "device name contains a NUL byte".into(),
        })?;
        let stream = stream as c_int;
        // SAFETY: `dev` is a valid NUL-terminated string that outlives the call.
        let fd = unsafe { ffi::dag_open(dev.as_ptr() as *mut c_char) };
        if fd < 0 {
            return Err(io_err(&name, "dag_open"));
        }
        let mut cap = DagCapture {
            name,
            fd,
            stream: -1,
            bottom: std::ptr::null_mut(),
            consumed: 0,
            descs: Vec::with_capacity(BATCH),
            stats: CaptureStats::default(),
            warnings: Vec::new(),
            offset: 0,
        };
        if !config.is_empty() {
            let c = CString::new(config).map_err(|_| CaptureError::Format {
                source: cap.name.clone(),
                offset: 0,
                message: "DAG configuration contains a NUL byte".into(),
            })?;
            // SAFETY: valid fd from dag_open, NUL-terminated string.
            if unsafe { ffi::dag_configure(fd, c.as_ptr() as *mut c_char) } < 0 {
                return Err(io_err(&cap.name, "dag_configure"));
            }
        }
        // SAFETY: valid fd; the API allocates and maps the stream.
        if unsafe { ffi::dag_attach_stream64(fd, stream, 0, 0) } < 0 {
            return Err(io_err(&cap.name, "dag_attach_stream64"));
        }
        cap.stream = stream;
        let mut zero = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let mut poll = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: the timevals are valid for the call; mindata 0 + maxwait 0 = never block.
        if unsafe { ffi::dag_set_stream_poll64(fd, stream, 0, &mut zero, &mut poll) } < 0 {
            return Err(io_err(&cap.name, "dag_set_stream_poll64"));
        }
        // SAFETY: attached stream.
        if unsafe { ffi::dag_start_stream(fd, stream) } < 0 {
            return Err(io_err(&cap.name, "dag_start_stream"));
        }
        Ok(cap)
    }

    fn warn(&mut self, offset: u64, message: String) {
        self.stats.bad_records += 1;
        if self.warnings.len() < 100 {
            self.warnings.push(CaptureWarning {
                source: self.name.clone(),
                offset,
                message,
            });
        }
    }
}

impl Capture for DagCapture {
    fn next_batch(&mut self) -> Result<Option<Batch<'_>>, CaptureError> {
        self.descs.clear();
        if !self.bottom.is_null() {
            // SAFETY: `consumed` bytes from `bottom` lie inside the region the last advance
            // returned.
            self.bottom = unsafe { self.bottom.add(self.consumed) };
        }
        self.offset += self.consumed as u64;
        self.consumed = 0;
        // SAFETY: attached, started stream; `bottom` is null (first call) or inside the stream.
        let top = unsafe { ffi::dag_advance_stream(self.fd, self.stream, &mut self.bottom) };
        if top.is_null() || self.bottom.is_null() {
            return Err(io_err(&self.name, "dag_advance_stream"));
        }
        let len = (top as usize).saturating_sub(self.bottom as usize);
        // SAFETY: the API guarantees `bottom..top` is mapped stream memory holding the records
        // the card wrote; it stays valid until we advance `bottom` past it on the next call,
        // and the returned batch borrows `self` mutably until then.
        let region: &[u8] = unsafe { std::slice::from_raw_parts(self.bottom, len) };
        let mut pos = 0;
        while self.descs.len() < BATCH && pos < region.len() {
            let off = self.offset + pos as u64;
            match erf::parse(&region[pos..], false) {
                Walk::Packet { rlen, desc, loss } => {
                    self.stats.packets += 1;
                    self.stats.wire_bytes += u64::from(desc.wire_len);
                    if desc.caplen < desc.wire_len {
                        self.stats.snaplen_truncated += 1;
                    }
                    self.stats.drops += u64::from(loss);
                    self.descs.push(PacketDesc {
                        offset: desc.offset + pos,
                        ..desc
                    });
                    pos += rlen;
                }
                Walk::Skip(rlen) => pos += rlen,
                // The rest of the record is not written yet.
                Walk::Need(_) => break,
                Walk::Bad {
                    err,
                    skip: Some(rlen),
                } => {
                    self.warn(
                        off,
                        format!("ERF record at stream offset {off}: {err}; skipped"),
                    );
                    pos += rlen;
                }
                Walk::Bad { err, skip: None } => {
                    return Err(CaptureError::Format {
                        source: self.name.clone(),
                        offset: off,
                        message: format!("ERF record: {err}: stream framing lost"),
                    });
                }
            }
        }
        self.consumed = pos;
        Ok(Some(Batch {
            data: region,
            descs: &self.descs,
        }))
    }

    fn stats(&self) -> CaptureStats {
        self.stats.clone()
    }

    fn take_warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.warnings)
    }

    fn source_name(&self) -> &str {
        &self.name
    }
}

impl LiveCapture for DagCapture {
    fn poll_fd(&self) -> std::os::fd::RawFd {
        self.fd
    }

    /// The card's loss counters (ERF `lctr`) are the only drop class DAG reports per record.
    fn live_stats(&mut self) -> LiveStats {
        LiveStats {
            seen: self.stats.packets + self.stats.drops,
            delivered: self.stats.packets,
            ring_drops: self.stats.drops,
            ..LiveStats::default()
        }
    }
}

impl Drop for DagCapture {
    fn drop(&mut self) {
        // SAFETY: fd and stream come from a successful open/attach; each is undone once.
        unsafe {
            if self.stream >= 0 {
                ffi::dag_stop_stream(self.fd, self.stream);
                ffi::dag_detach_stream(self.fd, self.stream);
            }
            ffi::dag_close(self.fd);
        }
    }
}
