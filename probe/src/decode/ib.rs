//! InfiniBand transport headers (IBA vol. 1 ch. 9): LRH, GRH, BTH and the extended transport
//! headers RDETH, DETH, XRCETH, RETH, AtomicETH, AETH, AtomicAckETH, ImmDt and IETH. Native IB
//! (LINKTYPE_INFINIBAND 247, ERF type 21: LRH first) and RoCEv2 (BTH in UDP port 4791) share
//! [`parse`], which the decoder uses on the hot path and [`dissect`] (the per-packet dump the
//! tests compare with tshark) uses on the same bytes. No allocation, no panics: every read is
//! bounds-checked.

/// Bytes of the headers.
pub const LRH_LEN: usize = 8;
pub const GRH_LEN: usize = 40;
pub const BTH_LEN: usize = 12;
/// Invariant CRC after the payload (both native IB and RoCEv2) and the variant CRC after it
/// (native IB only).
pub const ICRC_LEN: usize = 4;
pub const VCRC_LEN: usize = 2;
/// RoCEv2's UDP destination port.
pub const ROCEV2_PORT: u16 = 4791;

/// Extended transport headers an opcode carries (bits of [`ext_headers`]).
pub mod ext {
    pub const RDETH: u16 = 1 << 0;
    pub const DETH: u16 = 1 << 1;
    pub const XRCETH: u16 = 1 << 2;
    pub const RETH: u16 = 1 << 3;
    pub const ATOMICETH: u16 = 1 << 4;
    pub const AETH: u16 = 1 << 5;
    pub const ATOMICACKETH: u16 = 1 << 6;
    pub const IMMDT: u16 = 1 << 7;
    pub const IETH: u16 = 1 << 8;
}

/// Transport services (opcode bits 7-5).
pub mod svc {
    pub const RC: u8 = 0;
    pub const UC: u8 = 1;
    pub const RD: u8 = 2;
    pub const UD: u8 = 3;
    pub const CNP: u8 = 4;
    pub const XRC: u8 = 5;
}

/// The extended headers of opcode `op`, in packet order (IBA table 38; XRC per annex A14).
pub const fn ext_headers(op: u8) -> u16 {
    use ext::*;
    let m = op & 0x1f;
    // What the RC table gives the operation (m) after BTH (and RDETH/DETH/XRCETH).
    let base = match m {
        0x03 | 0x05 | 0x09 => IMMDT,
        0x06 | 0x0a | 0x0c => RETH,
        0x0b => RETH | IMMDT,
        0x0d | 0x0f | 0x10 | 0x11 => AETH,
        0x12 => AETH | ATOMICACKETH,
        0x13 | 0x14 => ATOMICETH,
        0x16 | 0x17 => IETH,
        _ => 0,
    };
    let response = m >= 0x0d && m <= 0x12;
    match op >> 5 {
        svc::RC => base,
        svc::UC if m <= 0x0b => base,
        svc::RD if m <= 0x14 => RDETH | if response { 0 } else { DETH } | base,
        svc::UD if m == 0x04 => DETH,
        svc::UD if m == 0x05 => DETH | IMMDT,
        svc::XRC if response => base,
        svc::XRC => XRCETH | base,
        _ => 0,
    }
}

/// Length of the extended headers `e`.
pub const fn ext_len(e: u16) -> usize {
    use ext::*;
    let mut n = 0;
    if e & RDETH != 0 {
        n += 4;
    }
    if e & DETH != 0 {
        n += 8;
    }
    if e & XRCETH != 0 {
        n += 4;
    }
    if e & RETH != 0 {
        n += 16;
    }
    if e & ATOMICETH != 0 {
        n += 28;
    }
    if e & AETH != 0 {
        n += 4;
    }
    if e & ATOMICACKETH != 0 {
        n += 8;
    }
    if e & IMMDT != 0 {
        n += 4;
    }
    if e & IETH != 0 {
        n += 4;
    }
    n
}

/// Whether the PSN of `op` is a request's (consecutive per packet); responses and
/// acknowledgements carry the PSN of the request they answer, and UD/CNP PSNs are per sender
/// queue, not per flow.
#[inline]
pub fn psn_tracked(op: u8) -> bool {
    let m = op & 0x1f;
    matches!(op >> 5, svc::RC | svc::UC | svc::RD | svc::XRC) && !(0x0d..=0x12).contains(&m)
}

/// An RDMA READ request: the responses use the next PSNs, so the requester's next request
/// jumps by their number (unknown without the path MTU) — not a loss.
#[inline]
pub fn is_read_request(op: u8) -> bool {
    op & 0x1f == 0x0c && matches!(op >> 5, svc::RC | svc::RD | svc::XRC)
}

/// The headers of one InfiniBand packet. `Copy`, all fixed-size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hdrs {
    /// LRH present (native IB) and its fields.
    pub lrh: bool,
    pub vl: u8,
    pub lver: u8,
    pub sl: u8,
    pub lnh: u8,
    pub dlid: u16,
    pub pktlen: u16,
    pub slid: u16,
    /// GRH present and its fields.
    pub grh: bool,
    pub tclass: u8,
    pub flow_label: u32,
    pub paylen: u16,
    pub nxthdr: u8,
    pub hoplmt: u8,
    pub sgid: [u8; 16],
    pub dgid: [u8; 16],
    /// BTH present (LNH 2/3, or RoCEv2) and its fields.
    pub bth: bool,
    pub opcode: u8,
    pub se: bool,
    pub mig: bool,
    pub padcnt: u8,
    pub tver: u8,
    pub pkey: u16,
    pub dqp: u32,
    pub ackreq: bool,
    pub psn: u32,
    /// `ext::*` present (all of them were captured).
    pub ext: u16,
    pub ee_context: u32,
    pub qkey: u32,
    pub sqp: u32,
    pub xrc_srq: u32,
    pub va: u64,
    pub rkey: u32,
    pub dmalen: u32,
    pub syndrome: u8,
    pub msn: u32,
    pub imm: u32,
    pub ieth_rkey: u32,
    /// Offset of the payload after every header, from the start of the IB headers.
    pub hdr_len: usize,
}

#[inline]
fn be24(d: &[u8], o: usize) -> Option<u32> {
    let b = d.get(o..o + 3)?;
    Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}
#[inline]
fn be32(d: &[u8], o: usize) -> Option<u32> {
    let b = d.get(o..o + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
#[inline]
fn be64(d: &[u8], o: usize) -> Option<u64> {
    Some(u64::from(be32(d, o)?) << 32 | u64::from(be32(d, o + 4)?))
}

/// Why IB headers did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IbError {
    /// The LRH, GRH or BTH is cut short (the flow cannot be named).
    Truncated,
}

/// What the flow engine needs of an IB packet: the decoder's hot path reads only this.
/// [`parse`] starts from it and reads the rest (one parser: the per-packet dump the tests
/// compare with tshark sees exactly what the engine saw).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Core {
    pub lrh: bool,
    pub lnh: u8,
    pub slid: u16,
    pub dlid: u16,
    pub pktlen: u16,
    /// GRH present: the SGID starts at `GRH_GIDS` after the LRH, the DGID 16 bytes later.
    pub grh: bool,
    pub tclass: u8,
    pub hoplmt: u8,
    pub bth: bool,
    pub opcode: u8,
    pub padcnt: u8,
    pub pkey: u16,
    pub dqp: u32,
    pub psn: u32,
    /// `ext::*` present (all of them were captured), the DETH's source QP, the AETH syndrome.
    pub ext: u16,
    pub sqp: u32,
    pub syndrome: u8,
    /// Offset of the payload after every header, from the start of the IB headers.
    pub hdr_len: usize,
}

/// Offset of the SGID from the start of a native packet (LRH 8 + 8 bytes into the GRH).
pub const GRH_GIDS: usize = LRH_LEN + 8;

/// Parses LRH, GRH, BTH and the DETH/AETH fields the engine uses, from the LRH when `lrh`, else
/// from the BTH (RoCEv2). Extended headers cut short are left out of `ext`.
#[inline]
pub fn core(d: &[u8], lrh: bool) -> Result<Core, IbError> {
    let mut h = Core::default();
    let mut p = 0;
    if lrh {
        let b = d.get(..LRH_LEN).ok_or(IbError::Truncated)?;
        h.lrh = true;
        h.lnh = b[1] & 0x03;
        h.dlid = u16::from_be_bytes([b[2], b[3]]);
        h.pktlen = u16::from_be_bytes([b[4], b[5]]) & 0x07ff;
        h.slid = u16::from_be_bytes([b[6], b[7]]);
        p = LRH_LEN;
        match h.lnh {
            // Raw packets: no IBA transport.
            0 | 1 => {
                h.hdr_len = p;
                return Ok(h);
            }
            3 => {
                let g = d.get(p..p + GRH_LEN).ok_or(IbError::Truncated)?;
                h.grh = true;
                h.tclass = (u16::from_be_bytes([g[0], g[1]]) >> 4) as u8;
                h.hoplmt = g[7];
                p += GRH_LEN;
            }
            _ => {}
        }
    }
    let b = d.get(p..p + BTH_LEN).ok_or(IbError::Truncated)?;
    h.bth = true;
    h.opcode = b[0];
    h.padcnt = (b[1] >> 4) & 0x03;
    h.pkey = u16::from_be_bytes([b[2], b[3]]);
    h.dqp = u32::from_be_bytes([0, b[5], b[6], b[7]]);
    h.psn = u32::from_be_bytes([0, b[9], b[10], b[11]]);
    p += BTH_LEN;
    let want = ext_headers(h.opcode);
    let len = ext_len(want);
    if d.len() < p + len {
        // Extended headers cut by the snap length: the flow is still named.
        h.hdr_len = p;
        return Ok(h);
    }
    use ext::*;
    if want & DETH != 0 {
        let at = p + ext_len(want & RDETH);
        h.sqp = be24(d, at + 5).unwrap_or(0);
    }
    if want & AETH != 0 {
        let at = p + ext_len(want & (RDETH | DETH | XRCETH | RETH | ATOMICETH));
        h.syndrome = d.get(at).copied().unwrap_or(0);
    }
    h.ext = want;
    h.hdr_len = p + len;
    Ok(h)
}

/// Parses every IB header field at the start of `d` (see [`core`]).
pub fn parse(d: &[u8], lrh: bool) -> Result<Hdrs, IbError> {
    let c = core(d, lrh)?;
    let mut h = Hdrs {
        lrh: c.lrh,
        lnh: c.lnh,
        slid: c.slid,
        dlid: c.dlid,
        pktlen: c.pktlen,
        grh: c.grh,
        tclass: c.tclass,
        hoplmt: c.hoplmt,
        bth: c.bth,
        opcode: c.opcode,
        padcnt: c.padcnt,
        pkey: c.pkey,
        dqp: c.dqp,
        psn: c.psn,
        ext: c.ext,
        sqp: c.sqp,
        syndrome: c.syndrome,
        hdr_len: c.hdr_len,
        ..Hdrs::default()
    };
    let mut p = 0;
    if c.lrh {
        h.vl = d[0] >> 4;
        h.lver = d[0] & 0x0f;
        h.sl = d[1] >> 4;
        p = LRH_LEN;
        if c.grh {
            let g = &d[p..p + GRH_LEN];
            h.flow_label = u32::from_be_bytes([g[0], g[1], g[2], g[3]]) & 0x000f_ffff;
            h.paylen = u16::from_be_bytes([g[4], g[5]]);
            h.nxthdr = g[6];
            h.sgid.copy_from_slice(&g[8..24]);
            h.dgid.copy_from_slice(&g[24..40]);
            p += GRH_LEN;
        }
    }
    if !c.bth {
        return Ok(h);
    }
    let b = &d[p..p + BTH_LEN];
    h.se = b[1] & 0x80 != 0;
    h.mig = b[1] & 0x40 != 0;
    h.tver = b[1] & 0x0f;
    h.ackreq = b[8] & 0x80 != 0;
    p += BTH_LEN;
    use ext::*;
    let want = c.ext;
    if want & RDETH != 0 {
        h.ee_context = be24(d, p + 1).unwrap_or(0);
        p += 4;
    }
    if want & DETH != 0 {
        h.qkey = be32(d, p).unwrap_or(0);
        p += 8;
    }
    if want & XRCETH != 0 {
        h.xrc_srq = be24(d, p + 1).unwrap_or(0);
        p += 4;
    }
    if want & RETH != 0 {
        h.va = be64(d, p).unwrap_or(0);
        h.rkey = be32(d, p + 8).unwrap_or(0);
        h.dmalen = be32(d, p + 12).unwrap_or(0);
        p += 16;
    }
    if want & ATOMICETH != 0 {
        h.va = be64(d, p).unwrap_or(0);
        h.rkey = be32(d, p + 8).unwrap_or(0);
        p += 28;
    }
    if want & AETH != 0 {
        h.msn = be24(d, p + 1).unwrap_or(0);
        p += 4;
    }
    if want & ATOMICACKETH != 0 {
        p += 8;
    }
    if want & IMMDT != 0 {
        h.imm = be32(d, p).unwrap_or(0);
        p += 4;
    }
    if want & IETH != 0 {
        h.ieth_rkey = be32(d, p).unwrap_or(0);
    }
    Ok(h)
}

/// AETH syndrome classes (bits 7-5).
#[inline]
pub fn is_nak(syndrome: u8) -> bool {
    syndrome >> 5 == 0b011
}
#[inline]
pub fn is_rnr_nak(syndrome: u8) -> bool {
    syndrome >> 5 == 0b001
}

/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): the GID of an IPv4 RoCEv2 endpoint.
#[inline]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[10] = 0xff;
    g[11] = 0xff;
    g[12..].copy_from_slice(&a);
    g
}

/// The IPv4 address of an IPv4-mapped GID.
pub fn mapped_v4(g: &[u8; 16]) -> Option<[u8; 4]> {
    (g[..10] == [0; 10] && g[10] == 0xff && g[11] == 0xff).then(|| [g[12], g[13], g[14], g[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_table() {
        use ext::*;
        assert_eq!(ext_headers(0x04), 0); // RC SEND_ONLY
        assert_eq!(ext_headers(0x0a), RETH); // RC WRITE_ONLY
        assert_eq!(ext_headers(0x0b), RETH | IMMDT);
        assert_eq!(ext_headers(0x11), AETH); // RC ACK
        assert_eq!(ext_headers(0x12), AETH | ATOMICACKETH);
        assert_eq!(ext_headers(0x17), IETH);
        assert_eq!(ext_headers(0x2a), RETH); // UC WRITE_ONLY
        assert_eq!(ext_headers(0x2c), 0); // UC has no READ
        assert_eq!(ext_headers(0x64), DETH); // UD SEND_ONLY
        assert_eq!(ext_headers(0x65), DETH | IMMDT);
        assert_eq!(ext_headers(0x44), RDETH | DETH); // RD SEND_ONLY
        assert_eq!(ext_headers(0x51), RDETH | AETH); // RD ACK
        assert_eq!(ext_headers(0xa4), XRCETH);
        assert_eq!(ext_headers(0xb1), AETH);
        assert_eq!(ext_headers(0x81), 0); // CNP
        assert_eq!(ext_len(RETH | IMMDT), 20);
        assert!(psn_tracked(0x04) && !psn_tracked(0x11) && !psn_tracked(0x64));
        assert!(is_read_request(0x0c) && !is_read_request(0x2c));
        assert!(is_nak(0x60) && is_rnr_nak(0x3f) && !is_nak(0x1f));
    }

    #[test]
    fn parses_lrh_grh_bth_deth() {
        let mut p = vec![0x10, 0x23, 0x00, 0x05, 0x00, 0x10, 0x00, 0x07];
        p.extend_from_slice(&[0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x1b, 0x40]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x64, 0x00, 0xff, 0xff, 0, 0x00, 0x12, 0x34, 0x80, 0, 0, 9]);
        p.extend_from_slice(&[0x11, 0x11, 0x11, 0x11, 0, 0x00, 0x00, 0x42]);
        p.extend_from_slice(&[0u8; 8]);
        let h = parse(&p, true).unwrap();
        assert_eq!((h.vl, h.lver, h.sl, h.lnh), (1, 0, 2, 3));
        assert_eq!((h.dlid, h.slid, h.pktlen), (5, 7, 16));
        assert!(h.grh && h.bth && h.ackreq);
        assert_eq!(h.sgid[15], 1);
        assert_eq!((h.opcode, h.pkey, h.dqp, h.psn), (0x64, 0xffff, 0x1234, 9));
        assert_eq!((h.qkey, h.sqp), (0x1111_1111, 0x42));
        assert_eq!(h.hdr_len, 8 + 40 + 12 + 8);
        for cut in 0..p.len() {
            let _ = parse(&p[..cut], true);
            let _ = parse(&p[..cut], false);
        }
        assert_eq!(parse(&p[..20], true), Err(IbError::Truncated));
        // DETH cut: still a flow, without the extension.
        let h = parse(&p[..62], true).unwrap();
        assert_eq!((h.ext, h.sqp), (0, 0));
    }
}
