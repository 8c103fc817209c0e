//! InfiniBand and RoCEv2 packets, ERF records, and scenarios with known flows.
//!
//! Packets follow IBA vol. 1 ch. 9: LRH (8), optional GRH (40), BTH (12), the extended headers
//! the opcode calls for, payload, pad to a 4-byte multiple (BTH PadCnt), ICRC (4) and, natively,
//! VCRC (2). RoCEv2 puts BTH … ICRC in UDP to port 4791. The CRCs are written as zeros: nothing
//! in tapflow (or in these tests) checks them.
//!
//! ERF records (Endace "ERF types"): 16-byte header with a little-endian fixed-point timestamp,
//! type (bit 7: extension header follows), flags, big-endian rlen/lctr/wlen; 8-byte extension
//! headers; Ethernet records have a 2-byte pad and carry the frame's FCS (computed here).
//!
//! [`scenario`] builds the native-IB and RoCEv2 conversations the end-to-end tests check: RC
//! requests with a PSN lost before the tap, a reordered pair, a go-back-N retransmission and an
//! RDMA READ (whose responses consume PSNs), the acknowledgement flow with a NAK and an RNR NAK,
//! a GRH-routed flow, a UD exchange (source QP from the DETH), a UC flow with 24-bit QPs across
//! a PSN wrap, CNPs, and link-level flow-control packets. The truth ([`IbFlowTruth`]) is counted
//! from what the scenario does, not by re-running tapflow's rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::pkt::{self, Ipv4Hdr, Ipv6Hdr, Mac};

/// BTH opcodes used here (IBA table 38).
pub mod op {
    pub const RC_SEND_FIRST: u8 = 0x00;
    pub const RC_SEND_MIDDLE: u8 = 0x01;
    pub const RC_SEND_LAST: u8 = 0x02;
    pub const RC_SEND_ONLY: u8 = 0x04;
    pub const RC_SEND_ONLY_IMM: u8 = 0x05;
    pub const RC_WRITE_ONLY: u8 = 0x0a;
    pub const RC_WRITE_ONLY_IMM: u8 = 0x0b;
    pub const RC_READ_REQ: u8 = 0x0c;
    pub const RC_READ_RESP_FIRST: u8 = 0x0d;
    pub const RC_READ_RESP_MIDDLE: u8 = 0x0e;
    pub const RC_READ_RESP_LAST: u8 = 0x0f;
    pub const RC_ACK: u8 = 0x11;
    pub const RC_SEND_ONLY_INV: u8 = 0x17;
    pub const UC_WRITE_ONLY: u8 = 0x2a;
    pub const UC_SEND_ONLY: u8 = 0x24;
    pub const UD_SEND_ONLY: u8 = 0x64;
    pub const UD_SEND_ONLY_IMM: u8 = 0x65;
    pub const CNP: u8 = 0x81;
}

/// One IB transport packet (BTH and what follows), before the link layer.
#[derive(Clone, Debug, Default)]
pub struct Bth {
    pub opcode: u8,
    pub se: bool,
    pub pkey: u16,
    pub dqp: u32,
    pub ackreq: bool,
    pub psn: u32,
    /// DETH (UD): Q_Key and source QP.
    pub qkey: u32,
    pub sqp: u32,
    /// RETH: virtual address, R_Key, DMA length.
    pub va: u64,
    pub rkey: u32,
    pub dmalen: u32,
    /// AETH: syndrome and MSN.
    pub syndrome: u8,
    pub msn: u32,
    /// ImmDt / IETH value.
    pub imm: u32,
    pub payload: Vec<u8>,
}

/// Extended headers per opcode, in packet order: (DETH, RETH, AETH, ImmDt, IETH).
fn exts(op: u8) -> (bool, bool, bool, bool, bool) {
    let m = op & 0x1f;
    match op >> 5 {
        3 => (true, false, false, m == 5, false),
        0 | 1 => (
            false,
            matches!(m, 0x06 | 0x0a | 0x0b | 0x0c),
            matches!(m, 0x0d | 0x0f | 0x10 | 0x11),
            matches!(m, 0x03 | 0x05 | 0x09 | 0x0b),
            matches!(m, 0x16 | 0x17),
        ),
        _ => (false, false, false, false, false),
    }
}

impl Bth {
    /// BTH, extended headers, payload, pad and a zero ICRC.
    pub fn bytes(&self) -> Vec<u8> {
        let pad = (4 - self.payload.len() % 4) % 4;
        let mut v = Vec::with_capacity(64 + self.payload.len());
        v.push(self.opcode);
        v.push((self.se as u8) << 7 | (pad as u8) << 4);
        v.extend_from_slice(&self.pkey.to_be_bytes());
        v.push(0);
        v.extend_from_slice(&(self.dqp & 0xff_ffff).to_be_bytes()[1..]);
        v.push((self.ackreq as u8) << 7);
        v.extend_from_slice(&(self.psn & 0xff_ffff).to_be_bytes()[1..]);
        let (deth, reth, aeth, imm, ieth) = exts(self.opcode);
        if deth {
            v.extend_from_slice(&self.qkey.to_be_bytes());
            v.push(0);
            v.extend_from_slice(&(self.sqp & 0xff_ffff).to_be_bytes()[1..]);
        }
        if reth {
            v.extend_from_slice(&self.va.to_be_bytes());
            v.extend_from_slice(&self.rkey.to_be_bytes());
            v.extend_from_slice(&self.dmalen.to_be_bytes());
        }
        if aeth {
            v.push(self.syndrome);
            v.extend_from_slice(&(self.msn & 0xff_ffff).to_be_bytes()[1..]);
        }
        if imm || ieth {
            v.extend_from_slice(&self.imm.to_be_bytes());
        }
        if self.opcode == op::CNP {
            v.extend_from_slice(&[0; 16]);
        }
        v.extend_from_slice(&self.payload);
        v.extend(std::iter::repeat_n(0, pad));
        v.extend_from_slice(&[0; 4]); // ICRC
        v
    }

    /// Payload bytes as tapflow counts them (`app_bytes`).
    pub fn app_len(&self) -> u64 {
        self.payload.len() as u64 + if self.opcode == op::CNP { 16 } else { 0 }
    }
}

/// A GRH: source GID, destination GID, traffic class, flow label, hop limit.
pub type Grh = ([u8; 16], [u8; 16], u8, u32, u8);

/// LRH addressing of a native packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lrh {
    pub vl: u8,
    pub sl: u8,
    pub slid: u16,
    pub dlid: u16,
    /// GRH: (source GID, destination GID, traffic class, flow label, hop limit).
    pub grh: Option<Grh>,
}

/// A native IB packet: LRH [GRH] BTH … ICRC, zero VCRC.
pub fn native(l: &Lrh, t: &Bth) -> Vec<u8> {
    let body = t.bytes();
    let grh_len = if l.grh.is_some() { 40 } else { 0 };
    let words = (8 + grh_len + body.len()) / 4;
    let mut v = Vec::with_capacity(words * 4 + 2);
    v.push(l.vl << 4);
    v.push(l.sl << 4 | if l.grh.is_some() { 3 } else { 2 });
    v.extend_from_slice(&l.dlid.to_be_bytes());
    v.extend_from_slice(&(words as u16 & 0x07ff).to_be_bytes());
    v.extend_from_slice(&l.slid.to_be_bytes());
    if let Some((sgid, dgid, tclass, flow, hop)) = l.grh {
        let w = 6u32 << 28 | u32::from(tclass) << 20 | (flow & 0xf_ffff);
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.push(0x1b);
        v.push(hop);
        v.extend_from_slice(&sgid);
        v.extend_from_slice(&dgid);
    }
    v.extend_from_slice(&body);
    v.extend_from_slice(&[0, 0]); // VCRC
    v
}

/// A link-level flow-control packet (IBA §7.9.4): op 1, FCTBS, VL, FCCL, LPCRC.
pub fn flow_control(vl: u8, fctbs: u16, fccl: u16) -> Vec<u8> {
    let a = 0x1000 | (fctbs & 0x0fff);
    let b = u16::from(vl & 0x0f) << 12 | (fccl & 0x0fff);
    let mut v = a.to_be_bytes().to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

/// A RoCEv2 frame: Ethernet / IPv4 or IPv6 / UDP (dport 4791) / BTH … ICRC.
pub fn rocev2(smac: Mac, dmac: Mac, src: IpAddr, dst: IpAddr, sport: u16, t: &Bth) -> Vec<u8> {
    let body = t.bytes();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = Ipv4Hdr::new(s, d, 17);
            let u = pkt::udp(sport, 4791, &body, &h.pair());
            pkt::eth(smac, dmac, &[], 0x0800, &pkt::ipv4(&h, &u))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Hdr::new(s, d, 17);
            let u = pkt::udp(sport, 4791, &body, &h.pair());
            pkt::eth(smac, dmac, &[], 0x86dd, &pkt::ipv6(&h, &u))
        }
        _ => panic!("RoCEv2 endpoints of one family"),
    }
}

/// ERF record type of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErfKind {
    /// Type 2: Ethernet, 2-byte pad, FCS appended.
    Eth,
    /// Type 21: InfiniBand from the LRH.
    Ib,
    /// Type 25: InfiniBand link packet.
    IbLink,
    /// Type 48: padding (no packet).
    Pad,
}

/// One captured packet of a scenario.
#[derive(Clone, Debug)]
pub struct IbFrame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub kind: ErfKind,
    /// ERF loss counter and extension headers to write with it.
    pub lctr: u16,
    pub exts: u8,
}

/// ns → ERF fixed point, rounded so that [`tapflow_capture::erf::ts_ns`] gives `ns` back.
pub fn erf_ts(ns: u64) -> u64 {
    let secs = ns / 1_000_000_000;
    let frac = ((ns % 1_000_000_000) << 32).div_ceil(1_000_000_000);
    secs << 32 | frac.min(0xffff_ffff)
}

/// One ERF record.
pub fn erf_record(f: &IbFrame) -> Vec<u8> {
    let (ty, pad, body, wlen) = match f.kind {
        ErfKind::Eth => {
            let mut crc = flate2::Crc::new();
            crc.update(&f.data);
            let mut b = f.data.clone();
            b.extend_from_slice(&crc.sum().to_le_bytes());
            let w = b.len();
            (2u8, 2usize, b, w)
        }
        ErfKind::Ib => (21, 0, f.data.clone(), f.data.len()),
        ErfKind::IbLink => (25, 0, f.data.clone(), f.data.len()),
        ErfKind::Pad => (48, 0, f.data.clone(), 0),
    };
    let exts = usize::from(f.exts);
    let rlen = 16 + exts * 8 + pad + body.len();
    let mut v = Vec::with_capacity(rlen);
    v.extend_from_slice(&erf_ts(f.ts_ns).to_le_bytes());
    v.push(ty | if exts > 0 { 0x80 } else { 0 });
    v.push(0x04); // varying length, interface 0
    v.extend_from_slice(&(rlen as u16).to_be_bytes());
    v.extend_from_slice(&f.lctr.to_be_bytes());
    v.extend_from_slice(&(wlen as u16).to_be_bytes());
    for i in 0..exts {
        // Classification extension headers (type 3), chained.
        let more = if i + 1 < exts { 0x80 } else { 0 };
        v.extend_from_slice(&[more | 0x03, 0, 0, 0, 0, 0, 0x10, i as u8]);
    }
    v.extend(std::iter::repeat_n(0, pad));
    v.extend_from_slice(&body);
    v
}

/// An ERF file of the frames.
pub fn write_erf(frames: &[IbFrame]) -> Vec<u8> {
    frames.iter().flat_map(erf_record).collect()
}

/// A pcap of the frames that are packets (no pad records) with `linktype`; link packets
/// (ERF type 25) have no pcap link type and are left out.
pub fn write_pcap(frames: &[IbFrame], linktype: u16) -> Vec<u8> {
    let fr: Vec<super::Frame> = frames
        .iter()
        .filter(|f| matches!(f.kind, ErfKind::Eth | ErfKind::Ib))
        .map(|f| super::Frame::new(f.ts_ns, f.data.clone()))
        .collect();
    super::write::write_pcap(Vec::new(), &fr, linktype, true).expect("write to Vec")
}

/// What a probe should report about one IB flow (summed over its records).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IbFlowTruth {
    pub note: String,
    pub slid: u16,
    pub dlid: u16,
    /// GIDs (IP addresses as GIDs for RoCEv2), zero without a GRH.
    pub sgid: [u8; 16],
    pub dgid: [u8; 16],
    /// Source QP when a DETH names it.
    pub sqp: Option<u32>,
    pub dqp: u32,
    pub grh: bool,
    pub roce: bool,
    pub link: bool,
    /// Initiator → responder, responder → initiator.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub app_bytes: [u64; 2],
    pub loss: [u64; 2],
    pub ooo: [u64; 2],
    pub retrans: [u64; 2],
    pub naks: u64,
    pub rnr_naks: u64,
    pub opcodes: Vec<u8>,
    /// Packets of this flow that appear only in ERF files (link packets): pcap has no
    /// link type for them.
    pub erf_only: bool,
}

impl IbFlowTruth {
    /// One JSON object per line (the tests read it with serde_json).
    pub fn to_json(&self) -> String {
        let gid = |g: &[u8; 16]| Ipv6Addr::from(*g).to_string();
        let mut ops = self.opcodes.clone();
        ops.sort_unstable();
        ops.dedup();
        serde_json::json!({
            "note": self.note,
            "slid": self.slid,
            "dlid": self.dlid,
            "sgid": gid(&self.sgid),
            "dgid": gid(&self.dgid),
            "sqp": self.sqp,
            "dqp": self.dqp,
            "grh": self.grh,
            "roce": self.roce,
            "link": self.link,
            "pkts": self.pkts,
            "bytes": self.bytes,
            "app_bytes": self.app_bytes,
            "loss": self.loss,
            "ooo": self.ooo,
            "retrans": self.retrans,
            "naks": self.naks,
            "rnr_naks": self.rnr_naks,
            "opcodes": ops,
            "erf_only": self.erf_only,
        })
        .to_string()
    }
}

/// Which transport the scenario uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Native IB (LINKTYPE_INFINIBAND / ERF type 21), with link packets (ERF type 25).
    Native,
    /// RoCEv2 over Ethernet (IPv4 and IPv6).
    Roce,
}

/// Builds frames and truth together.
struct Gen {
    t: Transport,
    ts: u64,
    frames: Vec<IbFrame>,
    flows: Vec<IbFlowTruth>,
    n: u64,
}

/// Where a flow's packets go: native LIDs (+GRH) or RoCE addresses.
#[derive(Clone, Copy)]
struct Ends {
    lrh: Lrh,
    ip: Option<(IpAddr, IpAddr)>,
}

impl Ends {
    fn reversed(self) -> Ends {
        let mut l = self.lrh;
        std::mem::swap(&mut l.slid, &mut l.dlid);
        if let Some((s, d, tc, fl, hop)) = l.grh {
            l.grh = Some((d, s, tc, fl, hop));
        }
        Ends {
            lrh: l,
            ip: self.ip.map(|(a, b)| (b, a)),
        }
    }
}

fn gid_of(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

impl Gen {
    fn flow(&mut self, note: &str, e: Ends, sqp: Option<u32>, dqp: u32) -> usize {
        let (sgid, dgid, grh, roce) = match (e.ip, e.lrh.grh) {
            (Some((s, d)), _) => (gid_of(s), gid_of(d), false, true),
            (None, Some((s, d, ..))) => (s, d, true, false),
            (None, None) => ([0; 16], [0; 16], false, false),
        };
        self.flows.push(IbFlowTruth {
            note: note.into(),
            slid: if roce { 0 } else { e.lrh.slid },
            dlid: if roce { 0 } else { e.lrh.dlid },
            sgid,
            dgid,
            sqp,
            dqp,
            grh,
            roce,
            ..IbFlowTruth::default()
        });
        self.flows.len() - 1
    }

    /// Emits one packet of flow `fi` in direction `dir` (0 = initiator → responder).
    fn send(&mut self, fi: usize, dir: usize, e: Ends, t: &Bth) {
        self.ts += 7_000 + (self.n % 5) * 1_300;
        self.n += 1;
        let data = match e.ip {
            Some((s, d)) => {
                let sport = 0xc000 | (t.dqp as u16 & 0x3fff);
                rocev2(
                    [2, 0, 0, 0, 0, e.lrh.slid as u8],
                    [2, 0, 0, 0, 0, e.lrh.dlid as u8],
                    s,
                    d,
                    sport,
                    t,
                )
            }
            None => native(&e.lrh, t),
        };
        let f = &mut self.flows[fi];
        f.pkts[dir] += 1;
        f.bytes[dir] += data.len() as u64;
        f.app_bytes[dir] += t.app_len();
        f.opcodes.push(t.opcode);
        if exts(t.opcode).2 {
            match t.syndrome >> 5 {
                0b011 => f.naks += 1,
                0b001 => f.rnr_naks += 1,
                _ => {}
            }
        }
        let kind = if e.ip.is_some() {
            ErfKind::Eth
        } else {
            ErfKind::Ib
        };
        // Every 7th record carries extension headers, every 11th a loss count.
        let exts = (self.n % 7 == 3) as u8 + (self.n % 21 == 3) as u8;
        let lctr = if self.n % 11 == 5 {
            (self.n % 4) as u16
        } else {
            0
        };
        self.frames.push(IbFrame {
            ts_ns: self.ts,
            data,
            kind,
            lctr,
            exts,
        });
    }

    fn pad(&mut self) {
        self.frames.push(IbFrame {
            ts_ns: 0,
            data: vec![0; 8],
            kind: ErfKind::Pad,
            lctr: 0,
            exts: 0,
        });
    }
}

fn req(opcode: u8, dqp: u32, psn: u32, payload: usize) -> Bth {
    Bth {
        opcode,
        pkey: 0xffff,
        dqp,
        psn,
        ackreq: true,
        va: 0x7f00_0000_1000 + u64::from(psn) * 256,
        rkey: 0x1234_5678,
        dmalen: payload as u32,
        imm: 0xdead_0000 | psn,
        payload: (0..payload).map(|i| (i as u32 + psn) as u8).collect(),
        ..Bth::default()
    }
}

fn ack(dqp: u32, psn: u32, syndrome: u8, msn: u32) -> Bth {
    Bth {
        opcode: op::RC_ACK,
        pkey: 0xffff,
        dqp,
        psn,
        syndrome,
        msn,
        ..Bth::default()
    }
}

/// The scenario of `t`: frames in capture order (ERF pad and link records included) and the
/// truth of every flow.
pub fn scenario(t: Transport, seed: u64) -> (Vec<IbFrame>, Vec<IbFlowTruth>) {
    let mut g = Gen {
        t,
        ts: 1_700_000_000_000_000_000 + seed * 1_000_000_000,
        frames: Vec::new(),
        flows: Vec::new(),
        n: 0,
    };
    let roce = g.t == Transport::Roce;
    let ends = |slid: u16, dlid: u16, grh: bool, v6: bool| -> Ends {
        let gid = |lid: u16| {
            let mut x = [0u8; 16];
            x[0] = 0xfe;
            x[1] = 0x80;
            x[8..14].copy_from_slice(&[0x00, 0x02, 0xc9, 0x03, 0x00, 0x0a]);
            x[14..].copy_from_slice(&lid.to_be_bytes());
            x
        };
        let ip = roce.then(|| {
            if v6 {
                (
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, slid)),
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, dlid)),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::new(10, 1, (slid >> 8) as u8, slid as u8)),
                    IpAddr::V4(Ipv4Addr::new(10, 1, (dlid >> 8) as u8, dlid as u8)),
                )
            }
        });
        Ends {
            lrh: Lrh {
                vl: 0,
                sl: (slid % 4) as u8,
                slid,
                dlid,
                grh: (grh && !roce).then(|| (gid(slid), gid(dlid), 0x20, 0x1_2345, 64)),
            },
            ip,
        }
    };

    // 1. RC requester 0x11 → responder 0x22, QP 0x000123; the ACK flow goes to QP 0x000456.
    let a = ends(0x0011, 0x0022, false, false);
    let (rq, ackq) = (0x00_0123, 0x00_0456);
    let f_req = g.flow("rc requests", a, None, rq);
    let f_ack = g.flow("rc acks", a.reversed(), None, ackq);
    let base = 1000u32;
    let ops = [
        op::RC_SEND_FIRST,
        op::RC_SEND_MIDDLE,
        op::RC_SEND_LAST,
        op::RC_WRITE_ONLY,
        op::RC_WRITE_ONLY_IMM,
        op::RC_SEND_ONLY_IMM,
        op::RC_SEND_ONLY_INV,
        op::RC_SEND_ONLY,
    ];
    let mut psn = base;
    let mut msn = 0;
    for i in 0..40u32 {
        let o = ops[i as usize % ops.len()];
        let p = req(o, rq, psn, 8 + (i as usize * 13) % 57);
        match i {
            // Lost before the tap.
            5 => {}
            // Reordered: 10 arrives after 11.
            10 => {}
            11 => {
                g.send(f_req, 0, a, &p);
                let p10 = req(ops[10 % ops.len()], rq, psn - 1, 8 + (10 * 13) % 57);
                g.send(f_req, 0, a, &p10);
            }
            _ => g.send(f_req, 0, a, &p),
        }
        if i % 8 == 7 {
            msn += 1;
            g.send(f_ack, 0, a.reversed(), &ack(ackq, psn, 0x1f, msn));
        }
        psn += 1;
    }
    let f = &mut g.flows[f_req];
    f.loss[0] += 2; // PSN base+5 never seen; base+10 seen after base+11
    f.ooo[0] += 1;
    // A NAK (PSN sequence error) for base+37, and the go-back-N resend of base+37..=base+39.
    g.send(f_ack, 0, a.reversed(), &ack(ackq, base + 37, 0x60, msn));
    for k in 37..40u32 {
        let o = ops[k as usize % ops.len()];
        g.send(
            f_req,
            0,
            a,
            &req(o, rq, base + k, 8 + (k as usize * 13) % 57),
        );
    }
    g.flows[f_req].retrans[0] += 3;
    // An RNR NAK, then the request again (a retransmission).
    g.send(f_req, 0, a, &req(op::RC_SEND_ONLY, rq, psn, 16));
    g.send(f_ack, 0, a.reversed(), &ack(ackq, psn, 0x2e, msn));
    g.send(f_req, 0, a, &req(op::RC_SEND_ONLY, rq, psn, 16));
    g.flows[f_req].retrans[0] += 1;
    msn += 1;
    g.send(f_ack, 0, a.reversed(), &ack(ackq, psn, 0x1f, msn));
    psn += 1;
    // An RDMA READ of 3 packets: the responses (to the requester's QP) use PSNs psn..psn+2,
    // the next request continues at psn+3.
    let mut rd = req(op::RC_READ_REQ, rq, psn, 0);
    rd.dmalen = 3 * 256;
    g.send(f_req, 0, a, &rd);
    for (k, o) in [
        op::RC_READ_RESP_FIRST,
        op::RC_READ_RESP_MIDDLE,
        op::RC_READ_RESP_LAST,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = ack(ackq, psn + k as u32, 0x1f, msn + 1);
        r.opcode = o;
        r.payload = vec![0x5a; 256];
        g.send(f_ack, 0, a.reversed(), &r);
    }
    msn += 1;
    psn += 3;
    for k in 0..4 {
        g.send(f_req, 0, a, &req(op::RC_WRITE_ONLY, rq, psn + k, 32));
    }
    g.send(f_ack, 0, a.reversed(), &ack(ackq, psn + 3, 0x1f, msn + 1));

    // 2. GRH-routed (native) / IPv6 (RoCE) RC flow with one lost PSN.
    let b = ends(0x0101, 0x0202, true, true);
    let f_g = g.flow(if roce { "rc ipv6" } else { "rc grh" }, b, None, 0x00_abcd);
    for k in 0..12u32 {
        if k == 6 {
            continue;
        }
        g.send(f_g, 0, b, &req(op::RC_SEND_ONLY, 0x00_abcd, 50 + k, 24));
    }
    g.flows[f_g].loss[0] += 1;
    if !roce {
        g.pad();
    }

    // 3. UD both ways: the DETH names the source QP, so both directions are one flow.
    let c = ends(0x0031, 0x0032, false, false);
    let (qa, qb) = (0x00_0010, 0x00_0020);
    let f_ud = g.flow("ud", c, Some(qa), qb);
    for k in 0..6u32 {
        let mut x = req(
            if k % 2 == 0 {
                op::UD_SEND_ONLY
            } else {
                op::UD_SEND_ONLY_IMM
            },
            qb,
            200 + k,
            20,
        );
        x.qkey = 0x8001_0000;
        x.sqp = qa;
        g.send(f_ud, 0, c, &x);
        let mut y = req(op::UD_SEND_ONLY, qa, 900 + k, 12);
        y.qkey = 0x8001_0000;
        y.sqp = qb;
        g.send(f_ud, 1, c.reversed(), &y);
    }

    // 4. UC writes with 24-bit QPs across the PSN wrap, one PSN lost right at the wrap.
    let d = ends(0x00a1, 0x00b2, false, false);
    let f_uc = g.flow("uc wrap", d, None, 0xfe_dcba);
    for k in 0..8u32 {
        let p = (0xff_fffc + k) & 0xff_ffff;
        if p == 0 {
            continue;
        }
        let o = if k % 2 == 0 {
            op::UC_WRITE_ONLY
        } else {
            op::UC_SEND_ONLY
        };
        g.send(f_uc, 0, d, &req(o, 0xfe_dcba, p, 40));
    }
    g.flows[f_uc].loss[0] += 1;

    // 5. CNPs (RoCEv2 congestion notification) / link flow control (native ERF only).
    if roce {
        let e = ends(0x0022, 0x0011, false, false);
        let f_cnp = g.flow("cnp", e, None, 0x00_0789);
        for k in 0..3 {
            let x = Bth {
                opcode: op::CNP,
                pkey: 0xffff,
                dqp: 0x00_0789,
                psn: k,
                ..Bth::default()
            };
            g.send(f_cnp, 0, e, &x);
        }
    } else {
        g.flows.push(IbFlowTruth {
            note: "link flow control".into(),
            link: true,
            erf_only: true,
            ..IbFlowTruth::default()
        });
        let fl = g.flows.len() - 1;
        for k in 0..4u16 {
            g.ts += 5_000;
            let data = flow_control(k as u8 % 2, 100 + k, 200 + k);
            g.flows[fl].pkts[0] += 1;
            g.flows[fl].bytes[0] += data.len() as u64;
            g.frames.push(IbFrame {
                ts_ns: g.ts,
                data,
                kind: ErfKind::IbLink,
                lctr: 0,
                exts: 0,
            });
        }
    }
    (g.frames, g.flows)
}

/// RoCEv2 (`roce`: Ethernet/IPv4/UDP, 60 bytes) or native IB (LRH + BTH + 36 bytes, 62 bytes)
/// frames of the 64-byte class for the engine bench: `flows` distinct flows, each an RC
/// SEND_ONLY request stream with consecutive PSNs.
pub fn worst(packets: u64, flows: u64, roce: bool) -> Vec<Vec<u8>> {
    let flows = flows.max(1).min(packets.max(1));
    // The TCP worst case's pattern: flows round robin in a shuffled order, so each flow's
    // PSNs are consecutive and every lookup lands somewhere else in the table.
    let mut order: Vec<u64> = (0..flows).collect();
    super::rng::Rng::new(0x1b1b).shuffle(&mut order);
    let mut out = Vec::with_capacity(packets as usize);
    for i in 0..packets {
        let k = order[(i % flows) as usize];
        let psn = (i / flows) as u32;
        let dqp = (k as u32).wrapping_mul(2_654_435_761) & 0xff_ffff;
        if roce {
            let t = Bth {
                opcode: op::RC_SEND_ONLY,
                pkey: 0xffff,
                dqp,
                psn,
                ..Bth::default()
            };
            let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (k as u32 & 0x00ff_ffff)));
            let dst = IpAddr::V4(Ipv4Addr::new(198, 18, 0, (k % 16) as u8 + 1));
            out.push(rocev2(
                [2, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
                src,
                dst,
                0xc000,
                &t,
            ));
        } else {
            let t = Bth {
                opcode: op::RC_SEND_ONLY,
                pkey: 0xffff,
                dqp,
                psn,
                payload: vec![0x11; 36],
                ..Bth::default()
            };
            let l = Lrh {
                slid: (1 + k % 0xbfff) as u16,
                dlid: (1 + (k / 0xbfff) % 0xbfff) as u16,
                ..Lrh::default()
            };
            out.push(native(&l, &t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_timestamps_round_trip() {
        for ns in [
            0u64,
            1,
            999_999_999,
            1_700_000_000_123_456_789,
            5_500_000_000,
        ] {
            assert_eq!(tapflow_capture::erf::ts_ns(erf_ts(ns)), ns, "{ns}");
        }
    }

    #[test]
    fn sizes_and_lengths() {
        let t = req(op::RC_SEND_ONLY, 5, 1, 3);
        // BTH 12 + 3 payload + 1 pad + ICRC 4.
        assert_eq!(t.bytes().len(), 20);
        assert_eq!(t.bytes()[1] >> 4 & 3, 1);
        let n = native(&Lrh::default(), &t);
        assert_eq!(n.len(), 8 + 20 + 2);
        assert_eq!(u16::from_be_bytes([n[4], n[5]]) & 0x7ff, 7);
        let w = worst(4, 2, true);
        assert!(w.iter().all(|f| f.len() == 60), "64-byte class RoCE frames");
        let w = worst(4, 2, false);
        assert!(w.iter().all(|f| f.len() == 62));
    }
}
