//! Argus 3 writer: management records and one flow record (FAR) per tapflow record.

use std::io::{self, Write};

use tapflow_record::{flags, AddrKind, DirStats, FlowRecord};

use crate::*;

/// Which management record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarKind {
    /// Opens a file or stream: carries the cookie.
    Start,
    /// Closes a run.
    Stop,
}

/// Appends a 128-byte MAR. `srcid` is the source id (`ra -s srcid`, written as an int source
/// id), `start_ns` when the data starts, `now_ns` the wall clock, `records` the FARs written
/// (STOP only).
pub fn encode_mar(
    kind: MarKind,
    srcid: u32,
    start_ns: u64,
    now_ns: u64,
    records: u32,
    out: &mut Vec<u8>,
) {
    let at = out.len();
    out.resize(at + MAR_LEN, 0);
    let m = &mut out[at..];
    let cause = match kind {
        MarKind::Start => CAUSE_START,
        MarKind::Stop => CAUSE_STOP,
    };
    m[0] = TYPE_MAR | VERSION;
    m[1] = cause;
    m[2..4].copy_from_slice(&32u16.to_be_bytes());
    // Source id kind: int. Never the SASL bit 0x1000 (Debian's ra gives up on it).
    m[4..8].copy_from_slice(&0x0040_0000u32.to_be_bytes());
    let argusid = match kind {
        MarKind::Start => COOKIE,
        MarKind::Stop => srcid,
    };
    m[8..12].copy_from_slice(&argusid.to_be_bytes());
    put_time_us(&mut m[24..32], start_ns);
    put_time_us(&mut m[32..40], now_ns);
    m[40] = 3; // major
    m[41] = 0; // minor
    m[42] = 1; // interface type: Ethernet
    m[44..46].copy_from_slice(&5u16.to_be_bytes()); // status interval, as the probe's default
    m[46..48].copy_from_slice(&60u16.to_be_bytes());
    m[72..76].copy_from_slice(&records.to_be_bytes());
    m[120..124].copy_from_slice(&srcid.to_be_bytes());
    m[124..128].copy_from_slice(&u32::MAX.to_be_bytes());
}

fn put_time_us(b: &mut [u8], ns: u64) {
    let secs = (ns / 1_000_000_000) as u32;
    let usec = (ns % 1_000_000_000 / 1000) as u32;
    b[..4].copy_from_slice(&secs.to_be_bytes());
    b[4..8].copy_from_slice(&usec.to_be_bytes());
}

/// (seconds, nanoseconds) as the TIME DSR's nanosecond form stores them.
fn put_time_ns(out: &mut Vec<u8>, ns: u64) {
    out.extend_from_slice(&((ns / 1_000_000_000) as u32).to_be_bytes());
    out.extend_from_slice(&((ns % 1_000_000_000) as u32).to_be_bytes());
}

fn be16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn be32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn be64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A DSR header with an 8-bit length in words (`len` includes the header).
fn dsr(out: &mut Vec<u8>, ty: u8, sub: u8, qual: u8, len: u8) {
    out.extend_from_slice(&[ty, sub, qual, len]);
}

/// Appends one FAR for `r` (a flow record; status records describe no flow and are the
/// caller's to skip). DSRs in the sensor's order, TIME before anything else variable and
/// METRIC before NETWORK (argus-format.md §8).
pub fn encode_far(r: &FlowRecord, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[TYPE_FAR | VERSION, cause_byte(r.cause), 0, 0]);
    let tcp = is_tcp(r);
    let ip = r.addr_kind != AddrKind::L2;
    let (s, d) = (&r.src, &r.dst);
    let has = [s.pkts > 0, d.pkts > 0];

    // Transport: the probe id as an int source id, and the sequence number.
    dsr(out, DSR_TRANSPORT, 0x03, 0x20, 3);
    be32(out, r.probe_id);
    be32(out, r.seq as u32);

    // Flow key, src = initiator, REVERSE clear.
    match r.addr_kind {
        AddrKind::Ipv4 => {
            let frag = 0; // fragments go in the IP attribute DSR (ra's `F`)
            dsr(out, DSR_FLOW, 0x01, 0x01 | frag, 5);
            out.extend_from_slice(&r.saddr.0[..4]);
            out.extend_from_slice(&r.daddr.0[..4]);
            // ICMP: sport is type << 8 | code and dport the identifier, which is exactly the
            // ICMP layout `type code id ip_id` (ip_id 0).
            out.extend_from_slice(&[r.proto, 0]);
            be16(out, r.sport);
            be16(out, r.dport);
            out.extend_from_slice(&[0, 0]);
        }
        AddrKind::Ipv6 => {
            dsr(out, DSR_FLOW, 0x01, 0x02, 11);
            out.extend_from_slice(&r.saddr.0);
            out.extend_from_slice(&r.daddr.0);
            be32(out, u32::from(r.proto) << 24);
            be16(out, r.sport);
            be16(out, r.dport);
        }
        AddrKind::L2 => {
            // Ethernet key: destination MAC, source MAC, ethertype, dsap, ssap.
            dsr(out, DSR_FLOW, 0x01, 0x03, 5);
            out.extend_from_slice(&r.daddr.0[..6]);
            out.extend_from_slice(&r.saddr.0[..6]);
            // An 802.3 frame's "ethertype" is its length: argus writes 0 (ra: llc).
            be16(out, if r.ethertype < 0x0600 { 0 } else { r.ethertype });
            out.extend_from_slice(&[0, 0]);
        }
    }

    // Time: absolute nanoseconds (qualifier 0x19), start and end per direction with
    // packets; a record without packets keeps its range as src's.
    let mut sub = 0u8;
    let mut pairs: [u64; 4] = [0; 4];
    let mut n = 0;
    if has[0] || !has[1] {
        let (f, l) = if has[0] {
            (s.first_ns, s.last_ns)
        } else {
            (r.stime_ns, r.ltime_ns)
        };
        sub |= 0x08 | 0x10;
        pairs[n] = f;
        pairs[n + 1] = l;
        n += 2;
    }
    if has[1] {
        sub |= 0x20 | 0x40;
        pairs[n] = d.first_ns;
        pairs[n + 1] = d.last_ns;
        n += 2;
    }
    dsr(out, DSR_TIME, sub, 0x19, 1 + 2 * n as u8);
    for &t in &pairs[..n] {
        put_time_ns(out, t);
    }

    // Metric: packets, bytes and application bytes per direction, 64-bit.
    dsr(out, DSR_METRIC, 0x04, 0x04, 13);
    for v in [s.pkts, s.bytes, s.app_bytes, d.pkts, d.bytes, d.app_bytes] {
        be64(out, v);
    }

    // Network: the full TCP DSR for TCP (the compact one is corrupted by clients that
    // re-write records).
    if tcp {
        let status = tcp_status_of(r);
        dsr(out, DSR_NETWORK, NET_TCP_PERF, 0, 30);
        be32(out, status);
        be32(out, fsm_state(status));
        let mut o = 0;
        for (bit, abit) in TCP_OPTS {
            if r.tcp_opts & bit != 0 {
                o |= abit;
            }
        }
        be32(out, o);
        be32(out, (r.synack_ns / 1000).min(u64::from(u32::MAX)) as u32);
        be32(out, (r.ackdat_ns / 1000).min(u64::from(u32::MAX)) as u32);
        for dir in [s, d] {
            tcp_dir(out, dir, status);
        }
    } else if ip {
        dsr(out, DSR_NETWORK, 0, 0, 1);
    }

    // VLAN and MPLS, for the directions that have packets (ra reads the first word as src).
    if r.vlan[0] != 0 {
        let q = u8::from(has[0]) | u8::from(has[1]) << 1;
        dsr(out, DSR_VLAN, 0, q, 2);
        be16(out, r.vlan[0] & 0x0fff);
        be16(out, r.vlan[0] & 0x0fff);
    }
    if r.mpls[0] != 0 {
        let entry = (r.mpls[0] & 0xf_ffff) << 12;
        dsr(out, DSR_MPLS, 0x03, 0x11, 3);
        be32(out, entry);
        be32(out, entry);
    }

    // Jitter: active inter-packet statistics per direction, float32 µs.
    let jit = [s.ipt_n > 0, d.ipt_n > 0];
    if jit[0] || jit[1] {
        let q = u8::from(jit[0]) | u8::from(jit[1]) << 2;
        let words = 1 + 5 * (u8::from(jit[0]) + u8::from(jit[1]));
        dsr(out, DSR_JITTER, 0, q, words);
        for (dir, on) in [(s, jit[0]), (d, jit[1])] {
            if on {
                be32(out, dir.ipt_n);
                // min and max are unknown to tapflow: written as the mean.
                let mean = ns_to_us_f32(dir.ipt_mean_ns);
                for v in [mean, mean, ns_to_us_f32(dir.ipt_std_ns), mean] {
                    be32(out, v.to_bits());
                }
            }
        }
    }

    // IP attributes: the TTL (largest seen), TOS and fragments of each direction.
    if ip && (has[0] || has[1]) {
        let mut fr = [s.frags > 0, d.frags > 0];
        if r.flags & flags::FRAGMENTS != 0 && !fr[0] && !fr[1] {
            fr[0] = true;
        }
        let q =
            u8::from(has[0]) | u8::from(has[1]) << 1 | u8::from(fr[0]) << 4 | u8::from(fr[1]) << 5;
        dsr(
            out,
            DSR_IPATTR,
            0,
            q,
            1 + u8::from(has[0]) + u8::from(has[1]),
        );
        for (dir, on) in [(s, has[0]), (d, has[1])] {
            if on {
                out.extend_from_slice(&[dir.ttl_max, dir.tos, 0, 0]);
            }
        }
    }

    // Encapsulations seen, per direction with packets.
    let mut mask = 0u32;
    for (k, bit) in ENCAPS {
        if r.encap.kinds & k != 0 {
            mask |= bit;
        }
    }
    if r.encap.kinds & tapflow_record::encap::QINQ != 0 || r.vlan[0] != 0 {
        mask |= ENCAPS_8021Q;
    }
    if r.mpls[0] != 0 {
        mask |= 0x1;
    }
    if r.smac != [0; 6] || r.dmac != [0; 6] {
        mask |= ENCAPS_ETHER;
    }
    if r.flags & flags::IPSEC_AH != 0 {
        mask |= ENCAPS_AH;
    }
    if mask != 0 && (has[0] || has[1]) {
        dsr(out, DSR_ENCAPS, 0, 0, 3);
        be32(out, if has[0] { mask } else { 0 });
        be32(out, if has[1] { mask } else { 0 });
    }

    // MACs: destination host, source host, ethertype, dsap, ssap.
    if r.smac != [0; 6] || r.dmac != [0; 6] {
        dsr(out, DSR_MAC, 0, 0, 5);
        out.extend_from_slice(&r.dmac);
        out.extend_from_slice(&r.smac);
        be16(out, r.ethertype);
        out.extend_from_slice(&[0, 0]);
    }

    // Captured payload, one user-data DSR per direction (16-bit length).
    for (p, sub) in [(&r.src_payload, 0x90u8), (&r.dst_payload, 0xa0u8)] {
        let p = clip_payload(p);
        if p.is_empty() {
            continue;
        }
        let words = 2 + p.len().div_ceil(4);
        out.extend_from_slice(&[DSR_USER, sub]);
        be16(out, words as u16);
        be16(out, p.len() as u16);
        be16(out, p.len() as u16);
        out.extend_from_slice(p);
        out.resize(at + (out.len() - at).next_multiple_of(4), 0);
    }

    let words = (out.len() - at) / 4;
    // The largest FAR is far below 65535 words (payload is clipped to fit).
    let words = words.min(0xffff) as u16;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

/// A TCP FSM state for the status (informational: ra derives `state` from the status bits).
fn fsm_state(st: u32) -> u32 {
    use tcp_status::*;
    if st & (FIN | FIN_ACK | NORMAL_CLOSE) != 0 {
        10 // TIME_WAIT
    } else if st & CON_ESTABLISHED != 0 {
        4 // ESTABLISHED
    } else if st & SAW_SYN_SENT != 0 {
        3 // SYN_RECEIVED
    } else if st & SAW_SYN != 0 {
        2 // SYN_SENT
    } else {
        0
    }
}

/// One direction of the TCP_PERF DSR (48 bytes).
fn tcp_dir(out: &mut Vec<u8>, d: &DirStats, status: u32) {
    put_time_us_vec(out, d.last_ns);
    be32(out, status);
    be32(out, d.isn);
    be32(out, d.last_seq);
    be32(out, d.last_ack);
    be32(out, 0); // winnum
    be32(out, d.app_bytes.min(u64::from(u32::MAX)) as u32);
    be32(out, d.retrans);
    be32(out, 0); // ackbytes
    be32(out, 0); // winbytes
    let (w, shift) = window_parts(d.window);
    be16(out, w);
    out.extend_from_slice(&[d.tcp_flags, shift]);
}

fn put_time_us_vec(out: &mut Vec<u8>, ns: u64) {
    let mut b = [0u8; 8];
    put_time_us(&mut b, ns);
    out.extend_from_slice(&b);
}

/// Writes an Argus file: the START MAR (before the first record, so that it carries the first
/// record's probe id as source id), one FAR per flow record, and a STOP MAR at the end.
/// Status records (`FlowRecord::is_meta`) are skipped: they describe no flow.
pub struct ArgusWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
    now_ns: u64,
    srcid: Option<u32>,
    records: u32,
}

impl<W: Write> ArgusWriter<W> {
    /// `now_ns`: the wall clock the MARs carry (the caller's, to keep this pure).
    pub fn new(w: W, now_ns: u64) -> ArgusWriter<W> {
        ArgusWriter {
            w,
            buf: Vec::with_capacity(64 * 1024),
            now_ns,
            srcid: None,
            records: 0,
        }
    }

    pub fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        if r.is_meta() {
            return Ok(());
        }
        if self.srcid.is_none() {
            self.srcid = Some(r.probe_id);
            encode_mar(
                MarKind::Start,
                r.probe_id,
                r.stime_ns,
                self.now_ns,
                0,
                &mut self.buf,
            );
        }
        encode_far(r, &mut self.buf);
        self.records = self.records.saturating_add(1);
        if self.buf.len() >= 60 * 1024 {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is pending and the STOP MAR (a file with no record still gets its START
    /// MAR, so that it is a valid Argus file); returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let srcid = match self.srcid {
            Some(id) => id,
            None => {
                encode_mar(
                    MarKind::Start,
                    0,
                    self.now_ns,
                    self.now_ns,
                    0,
                    &mut self.buf,
                );
                0
            }
        };
        encode_mar(
            MarKind::Stop,
            srcid,
            self.now_ns,
            self.now_ns,
            self.records,
            &mut self.buf,
        );
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(self.w)
    }
}
