//! Ground truth: what a flow probe should report about each generated flow.
//!
//! A flow is bidirectional and keyed like a tapflow record: innermost IP addresses, protocol and
//! ports (for ICMP/ICMPv6: `sport` = type << 8 | code of the initiator's message, `dport` = the
//! echo identifier; for ARP: `proto` 0, ethertype 0x0806, the sender and target IPv4 addresses).
//! `src` is the initiator. Counters are per direction (`[src→dst, dst→src]`); `bytes` is the
//! frame length on the wire without FCS (link header included, except link pseudo-headers such
//! as SLL/NULL when recounted with [`Truth::recount`]'s `exclude_link`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use super::pkt::Mac;
use super::Frame;

/// How a flow ends in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum End {
    /// TCP FIN exchange (both FINs acknowledged).
    Fin,
    /// TCP reset.
    Rst,
    /// TCP still open at the end of the capture.
    Open,
    /// Not TCP: no connection state (UDP, ICMP, ARP…).
    #[default]
    None,
}

impl End {
    pub fn name(self) -> &'static str {
        match self {
            End::Fin => "fin",
            End::Rst => "rst",
            End::Open => "open",
            End::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<End> {
        Some(match s {
            "fin" => End::Fin,
            "rst" => End::Rst,
            "open" => End::Open,
            "none" => End::None,
            _ => return None,
        })
    }
}

/// The truth about one flow.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowTruth {
    /// IP protocol number of the innermost IP layer (0 for ARP).
    pub proto: u8,
    /// 0x0800, 0x86dd or 0x0806.
    pub ethertype: u16,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// MAC addresses of the outermost Ethernet header (zero for raw IP interfaces).
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub end: End,
    /// TCP: the three-way handshake is in the capture (false = picked up mid-stream).
    pub handshake: bool,
    /// Encapsulations outermost first joined by '+', e.g. "vlan", "qinq", "mpls", "pppoe",
    /// "vxlan", "geneve", "gre", "gtpu", "6in4"; empty for none.
    pub encap: String,
    /// VXLAN/GENEVE VNI, GTP-U TEID (of the src→dst direction) or GRE key; 0 if none.
    pub tunnel_id: u32,
    /// Outer and inner VLAN id (0 = none).
    pub vlan: [u16; 2],
    /// Top two MPLS labels (0 = none).
    pub mpls: [u32; 2],
    /// IPv4 options or IPv6 hop-by-hop/destination options present.
    pub ip_options: bool,
    /// Per direction: TCP retransmitted segments, out-of-order segments, zero-window adverts.
    pub retrans: [u32; 2],
    pub ooo: [u32; 2],
    pub zero_win: [u32; 2],
    /// Per direction: packets, bytes (wire), innermost-IP bytes, transport payload bytes,
    /// IP fragments.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub ip_bytes: [u64; 2],
    pub app_bytes: [u64; 2],
    pub frags: [u32; 2],
    /// First and last packet times, ns since the epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Free text: what the flow is for in the scenario.
    pub note: String,
}

impl FlowTruth {
    /// A flow with the given key and everything else zero/empty.
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowTruth {
        let ethertype = if src.is_ipv6() { 0x86dd } else { 0x0800 };
        FlowTruth {
            proto,
            ethertype,
            src,
            sport,
            dst,
            dport,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            end: End::None,
            handshake: false,
            encap: String::new(),
            tunnel_id: 0,
            vlan: [0; 2],
            mpls: [0; 2],
            ip_options: false,
            retrans: [0; 2],
            ooo: [0; 2],
            zero_win: [0; 2],
            pkts: [0; 2],
            bytes: [0; 2],
            ip_bytes: [0; 2],
            app_bytes: [0; 2],
            frags: [0; 2],
            first_ns: 0,
            last_ns: 0,
            note: String::new(),
        }
    }
    pub fn total_pkts(&self) -> u64 {
        self.pkts[0] + self.pkts[1]
    }
    pub fn total_bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
    fn clear_counts(&mut self) {
        self.pkts = [0; 2];
        self.bytes = [0; 2];
        self.ip_bytes = [0; 2];
        self.app_bytes = [0; 2];
        self.frags = [0; 2];
        self.first_ns = 0;
        self.last_ns = 0;
    }
}

/// The truth about a whole capture.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Truth {
    pub flows: Vec<FlowTruth>,
}

/// CSV columns, in order.
pub const CSV_HEADER: &str = "flow,proto,ethertype,src,sport,dst,dport,src_pkts,src_bytes,\
dst_pkts,dst_bytes,src_ip_bytes,dst_ip_bytes,src_app_bytes,dst_app_bytes,first_ns,last_ns,end,\
handshake,encap,tunnel_id,vlan,mpls,src_frags,dst_frags,src_retrans,dst_retrans,src_ooo,dst_ooo,\
src_zero_win,dst_zero_win,ip_options,src_mac,dst_mac,note";

impl Truth {
    /// Adds one frame to its flow's counters (`exclude_link` bytes of link pseudo-header are
    /// left out of `bytes`). Frames without a flow tag are ignored.
    pub fn tally(&mut self, f: &Frame, exclude_link: u32) {
        let Some(fl) = self.flows.get_mut(f.tag.flow as usize) else {
            return;
        };
        let d = f.tag.reverse as usize;
        if fl.pkts == [0, 0] {
            fl.first_ns = f.ts_ns;
        }
        fl.first_ns = fl.first_ns.min(f.ts_ns);
        fl.last_ns = fl.last_ns.max(f.ts_ns);
        fl.pkts[d] += 1;
        fl.bytes[d] += f.wire_len.saturating_sub(exclude_link) as u64;
        fl.ip_bytes[d] += f.tag.ip_len as u64;
        fl.app_bytes[d] += f.tag.app_len as u64;
        fl.frags[d] += f.tag.frag as u32;
    }

    /// Recomputes every counter from `frames`.
    pub fn recount<'a>(&mut self, frames: impl IntoIterator<Item = &'a Frame>, exclude_link: u32) {
        for fl in &mut self.flows {
            fl.clear_counts();
        }
        for f in frames {
            self.tally(f, exclude_link);
        }
    }

    /// Drops flows that saw no packet (keeps the order of the others; frame tags are not
    /// renumbered, so call this only for output).
    pub fn without_empty(&self) -> Truth {
        Truth {
            flows: self
                .flows
                .iter()
                .filter(|f| f.total_pkts() > 0)
                .cloned()
                .collect(),
        }
    }

    pub fn total_pkts(&self) -> u64 {
        self.flows.iter().map(FlowTruth::total_pkts).sum()
    }
    pub fn total_bytes(&self) -> u64 {
        self.flows.iter().map(FlowTruth::total_bytes).sum()
    }

    /// Writes the truth as CSV ([`CSV_HEADER`] then one line per flow; flows that saw no packet
    /// are left out). `flow` is the index in [`Truth::flows`].
    pub fn write_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "{CSV_HEADER}")?;
        let mut line = String::new();
        for (i, f) in self.flows.iter().enumerate() {
            if f.total_pkts() == 0 {
                continue;
            }
            line.clear();
            let vlan = match f.vlan {
                [0, 0] => String::new(),
                [o, 0] => o.to_string(),
                [o, i] => format!("{o}/{i}"),
            };
            let mpls = match f.mpls {
                [0, 0] => String::new(),
                [o, 0] => o.to_string(),
                [o, i] => format!("{o}/{i}"),
            };
            let _ = write!(
                line,
                "{i},{},0x{:04x},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                f.proto,
                f.ethertype,
                f.src,
                f.sport,
                f.dst,
                f.dport,
                f.pkts[0],
                f.bytes[0],
                f.pkts[1],
                f.bytes[1],
                f.ip_bytes[0],
                f.ip_bytes[1],
                f.app_bytes[0],
                f.app_bytes[1],
                f.first_ns,
                f.last_ns,
                f.end.name(),
                f.handshake as u8,
                f.encap,
                f.tunnel_id,
                vlan,
                mpls,
                f.frags[0],
                f.frags[1],
                f.retrans[0],
                f.retrans[1],
                f.ooo[0],
                f.ooo[1],
                f.zero_win[0],
                f.zero_win[1],
                f.ip_options as u8,
                mac_str(&f.src_mac),
                mac_str(&f.dst_mac),
                f.note.replace([',', '\n'], ";"),
            );
            writeln!(w, "{line}")?;
        }
        Ok(())
    }

    /// Parses CSV written by [`Truth::write_csv`] (flow indices are not kept: flows are
    /// returned in file order).
    pub fn from_csv(text: &str) -> Result<Truth, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(h) if h.trim_end() == CSV_HEADER => {}
            _ => return Err("truth CSV: unexpected header".into()),
        }
        let mut flows = Vec::new();
        for (n, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            flows.push(parse_line(line).map_err(|e| format!("truth CSV line {}: {e}", n + 2))?);
        }
        Ok(Truth { flows })
    }
}

fn mac_str(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn parse_mac(s: &str) -> Result<Mac, String> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}"));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(m)
}

fn parse_pair<T: std::str::FromStr + Default + Copy>(s: &str) -> Result<[T; 2], String> {
    if s.is_empty() {
        return Ok([T::default(); 2]);
    }
    let mut it = s.split('/');
    let p = |x: Option<&str>| -> Result<T, String> {
        match x {
            None => Ok(T::default()),
            Some(v) => v.parse().map_err(|_| format!("bad number {v:?}")),
        }
    };
    Ok([p(it.next())?, p(it.next())?])
}

fn parse_line(line: &str) -> Result<FlowTruth, String> {
    let c: Vec<&str> = line.splitn(35, ',').collect();
    if c.len() != 35 {
        return Err(format!("expected 35 columns, got {}", c.len()));
    }
    fn n<T: std::str::FromStr>(s: &str) -> Result<T, String> {
        s.parse().map_err(|_| format!("bad value {s:?}"))
    }
    let ip = |s: &str| -> Result<IpAddr, String> { s.parse().map_err(|_| format!("bad IP {s:?}")) };
    let mut f = FlowTruth::new(n(c[1])?, ip(c[3])?, n(c[4])?, ip(c[5])?, n(c[6])?);
    f.ethertype = u16::from_str_radix(c[2].trim_start_matches("0x"), 16)
        .map_err(|_| format!("bad ethertype {:?}", c[2]))?;
    f.pkts = [n(c[7])?, n(c[9])?];
    f.bytes = [n(c[8])?, n(c[10])?];
    f.ip_bytes = [n(c[11])?, n(c[12])?];
    f.app_bytes = [n(c[13])?, n(c[14])?];
    f.first_ns = n(c[15])?;
    f.last_ns = n(c[16])?;
    f.end = End::parse(c[17]).ok_or_else(|| format!("bad end {:?}", c[17]))?;
    f.handshake = c[18] == "1";
    f.encap = c[19].to_string();
    f.tunnel_id = n(c[20])?;
    f.vlan = parse_pair(c[21])?;
    f.mpls = parse_pair(c[22])?;
    f.frags = [n(c[23])?, n(c[24])?];
    f.retrans = [n(c[25])?, n(c[26])?];
    f.ooo = [n(c[27])?, n(c[28])?];
    f.zero_win = [n(c[29])?, n(c[30])?];
    f.ip_options = c[31] == "1";
    f.src_mac = parse_mac(c[32])?;
    f.dst_mac = parse_mac(c[33])?;
    f.note = c[34].to_string();
    Ok(f)
}
