//! The probe → merge-daemon transport: a few framed messages over TCP (TLS beyond loopback).
//!
//! ```text
//! message = type u8, 0 u8, 0 u16, len u32 (LE), payload[len]
//! HELLO   probe → daemon   magic "TFXPORT1", probe_id u32, 0 u32, run u64
//! RESUME  daemon → probe   n u32, n × (run u64, committed u64)   what the daemon has committed
//! BLOCK   probe → daemon   run u64, no u64, chunk                chunk = a native record file
//! ACK     daemon → probe   run u64, committed u64                blocks ≤ committed are safe
//! REFUSE  daemon → probe   reason (UTF-8)
//! ```
//!
//! A chunk is a complete native record file (header + blocks, docs/record-format.md), so the
//! daemon decodes it with the ordinary reader and every chunk is checksummed end to end. Chunks
//! are numbered per probe run from 1; a run is the probe process's start time in ns, so a
//! restarted probe's record sequence numbers (which start at 0 again) are told apart. The
//! daemon acknowledges a chunk only once everything made from it is committed to its own
//! output (docs/merge.md §6), so the probe's spool holds every record that could still be lost.

use std::io::{self, Read, Write};

pub const HELLO: u8 = 1;
pub const RESUME: u8 = 2;
pub const BLOCK: u8 = 3;
pub const ACK: u8 = 4;
pub const REFUSE: u8 = 5;

pub const MAGIC: [u8; 8] = *b"TFXPORT1";
/// Largest message accepted (a chunk is one flush interval of records).
pub const MAX_MESSAGE: usize = 256 << 20;

/// Writes one message.
pub fn write_msg(w: &mut impl Write, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = [0u8; 8];
    head[0] = kind;
    head[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    w.write_all(&head)?;
    for p in parts {
        w.write_all(p)?;
    }
    Ok(())
}

/// Reassembles messages from reads that may stop anywhere (socket timeouts, TLS records), so
/// a read timeout never loses framing.
#[derive(Default)]
pub struct MsgReader {
    buf: Vec<u8>,
}

impl MsgReader {
    /// A complete message already received, if any.
    pub fn take(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let h = &self.buf[..8];
        let len = u32::from_le_bytes(h[4..8].try_into().expect("4")) as usize;
        if len > MAX_MESSAGE || h[1] != 0 || h[2] != 0 || h[3] != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad transport message header {:02x?}", &self.buf[..8]),
            ));
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let body = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Ok(Some((kind, body)))
    }

    /// Reads once (a timeout is no error), then returns a complete message if there is one.
    pub fn poll(&mut self, r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
        if let Some(m) = self.take()? {
            return Ok(Some(m));
        }
        self.fill(r)?;
        self.take()
    }

    /// Reads once into the buffer (a timeout is no error).
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<()> {
        let mut tmp = [0u8; 64 << 10];
        match r.read(&mut tmp) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Waits for a whole message; the socket's read timeout is the limit.
    pub fn read_blocking(&mut self, r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
        loop {
            if let Some(m) = self.take()? {
                return Ok(m);
            }
            let mut tmp = [0u8; 64 << 10];
            match r.read(&mut tmp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn hello(probe_id: u32, run: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&probe_id.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&run.to_le_bytes());
    b
}

pub fn parse_hello(b: &[u8]) -> Result<(u32, u64), String> {
    if b.len() < 24 || b[..8] != MAGIC {
        return Err("not a tapflow probe (bad HELLO)".into());
    }
    Ok((
        u32::from_le_bytes(b[8..12].try_into().expect("4")),
        u64::from_le_bytes(b[16..24].try_into().expect("8")),
    ))
}

/// Pairs of u64 (RESUME entries, ACK, BLOCK's head).
pub fn pairs(list: &[(u64, u64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 16 * list.len());
    b.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for (a, c) in list {
        b.extend_from_slice(&a.to_le_bytes());
        b.extend_from_slice(&c.to_le_bytes());
    }
    b
}

pub fn parse_pairs(b: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let n = b
        .get(..4)
        .map(|x| u32::from_le_bytes(x.try_into().expect("4")) as usize)
        .ok_or("short RESUME")?;
    if b.len() != 4 + 16 * n {
        return Err("bad RESUME length".into());
    }
    Ok((0..n)
        .map(|i| {
            let o = 4 + 16 * i;
            (
                u64::from_le_bytes(b[o..o + 8].try_into().expect("8")),
                u64::from_le_bytes(b[o + 8..o + 16].try_into().expect("8")),
            )
        })
        .collect())
}

pub fn u64_pair(a: u64, b: u64) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..8].copy_from_slice(&a.to_le_bytes());
    x[8..].copy_from_slice(&b.to_le_bytes());
    x
}

pub fn parse_u64_pair(b: &[u8]) -> Result<(u64, u64, &[u8]), String> {
    if b.len() < 16 {
        return Err("short message".into());
    }
    Ok((
        u64::from_le_bytes(b[..8].try_into().expect("8")),
        u64::from_le_bytes(b[8..16].try_into().expect("8")),
        &b[16..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut wire = Vec::new();
        write_msg(&mut wire, HELLO, &[&hello(7, 99)]).unwrap();
        write_msg(&mut wire, RESUME, &[&pairs(&[(1, 2), (3, 4)])]).unwrap();
        write_msg(&mut wire, BLOCK, &[&u64_pair(5, 6), b"chunk"]).unwrap();
        let mut r = &wire[..];
        let mut rd = MsgReader::default();
        let (k, buf) = rd.read_blocking(&mut r).unwrap();
        assert_eq!((k, parse_hello(&buf).unwrap()), (HELLO, (7, 99)));
        let (k, buf) = rd.read_blocking(&mut r).unwrap();
        assert_eq!(
            (k, parse_pairs(&buf).unwrap()),
            (RESUME, vec![(1, 2), (3, 4)])
        );
        let (k, buf) = rd.read_blocking(&mut r).unwrap();
        assert_eq!(k, BLOCK);
        let (a, b, rest) = parse_u64_pair(&buf).unwrap();
        assert_eq!((a, b, rest), (5, 6, &b"chunk"[..]));
        assert!(rd.read_blocking(&mut r).is_err());
        // The same bytes in pieces of every size come out as the same messages.
        for step in [1, 3, 7, 100] {
            let mut mr = MsgReader::default();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                let mut p = piece;
                while let Some(m) = mr.poll(&mut p).unwrap_or(None) {
                    got.push(m.0);
                }
                while let Some(m) = mr.take().unwrap() {
                    got.push(m.0);
                }
            }
            assert_eq!(got, vec![HELLO, RESUME, BLOCK], "step {step}");
        }
        assert!(parse_hello(b"TFXPORT0xxxxxxxxxxxxxxxx").is_err());
        assert!(parse_pairs(&[2, 0, 0, 0, 1]).is_err());
        // A garbage header is refused, not allocated.
        let mut bad = &[3u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..];
        assert!(MsgReader::default().read_blocking(&mut bad).is_err());
    }
}
