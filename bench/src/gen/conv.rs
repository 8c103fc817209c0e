//! Conversations: realistic exchanges between two endpoints over a [`Path`] (plain Ethernet,
//! VLAN, MPLS, PPPoE or a tunnel), emitted into a [`Capture`] that records the ground truth.
//!
//! The tap is assumed next to the initiator ("a"): a packet from a is answered by b one round
//! trip later, a packet from b is answered by a after a short host delay.

use std::net::{IpAddr, Ipv4Addr};

use super::pkt::{self, ethertype, proto, tcpflag, IpPair, Ipv4Hdr, Ipv6Ext, Ipv6Hdr, Mac};
use super::rng::Rng;
use super::truth::{End, FlowTruth, Truth};
use super::{Frame, Tag};

/// Host turnaround time at the tap side (ns).
pub const HOST_DELAY_NS: u64 = 40_000;
/// Gap between back-to-back segments of one burst (ns).
pub const BURST_GAP_NS: u64 = 12_000;

/// One end of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub mac: Mac,
    pub ip: IpAddr,
}

impl Endpoint {
    pub fn new(mac: Mac, ip: IpAddr) -> Endpoint {
        Endpoint { mac, ip }
    }
    /// An endpoint whose (locally administered) MAC is derived from its address.
    pub fn auto(ip: IpAddr) -> Endpoint {
        Endpoint {
            mac: mac_for(ip),
            ip,
        }
    }
}

/// A locally administered unicast MAC derived from an IP address (02:xx:…).
pub fn mac_for(ip: IpAddr) -> Mac {
    let h = super::rng::mix64(match ip {
        IpAddr::V4(a) => u32::from(a) as u64,
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
        }
    })
    .to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

/// How the innermost IP packets of a conversation travel. Tunnel outer addresses are listed
/// (a-side, b-side); their outer Ethernet MACs are derived from them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Encap {
    /// Plain Ethernet II.
    #[default]
    None,
    /// 802.1Q tag (one VID) or QinQ (outer 802.1ad S-tag, inner C-tag); TCIs outermost first.
    Vlan(Vec<u16>),
    /// MPLS label stack (RFC 3032), top label first.
    Mpls(Vec<u32>),
    /// PPPoE session (RFC 2516).
    Pppoe { session: u16 },
    /// VXLAN (RFC 7348) over outer IPv4/UDP 4789; the inner Ethernet uses the endpoint MACs.
    Vxlan {
        outer: (Ipv4Addr, Ipv4Addr),
        vni: u32,
    },
    /// GENEVE (RFC 8926) over outer IPv4/UDP 6081, carrying Ethernet like VXLAN.
    Geneve {
        outer: (Ipv4Addr, Ipv4Addr),
        vni: u32,
    },
    /// GRE (RFC 2784/2890) over outer IPv4, optional key.
    Gre {
        outer: (Ipv4Addr, Ipv4Addr),
        key: Option<u32>,
    },
    /// GTP-U (3GPP TS 29.281) over outer IPv4/UDP 2152, TEID per direction (a→b, b→a).
    Gtpu {
        outer: (Ipv4Addr, Ipv4Addr),
        teid: (u32, u32),
    },
    /// IPv6 in IPv4 (RFC 4213, protocol 41); the conversation must be IPv6.
    SixIn4 { outer: (Ipv4Addr, Ipv4Addr) },
    /// No link layer at all: frames are bare IP packets (LINKTYPE_RAW interfaces).
    RawIp,
}

impl Encap {
    /// Name as used in [`FlowTruth::encap`].
    pub fn name(&self) -> &'static str {
        match self {
            Encap::None | Encap::RawIp => "",
            Encap::Vlan(t) if t.len() >= 2 => "qinq",
            Encap::Vlan(_) => "vlan",
            Encap::Mpls(_) => "mpls",
            Encap::Pppoe { .. } => "pppoe",
            Encap::Vxlan { .. } => "vxlan",
            Encap::Geneve { .. } => "geneve",
            Encap::Gre { .. } => "gre",
            Encap::Gtpu { .. } => "gtpu",
            Encap::SixIn4 { .. } => "6in4",
        }
    }
    fn outer(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        match self {
            Encap::Vxlan { outer, .. }
            | Encap::Geneve { outer, .. }
            | Encap::Gre { outer, .. }
            | Encap::Gtpu { outer, .. }
            | Encap::SixIn4 { outer } => Some(*outer),
            _ => None,
        }
    }
}

/// The way between two endpoints: addresses, encapsulation, per-direction IP state.
#[derive(Clone, Debug)]
pub struct Path {
    pub a: Endpoint,
    pub b: Endpoint,
    pub encap: Encap,
    /// TTL / hop limit of packets from a and from b as seen at the tap.
    pub ttl: [u8; 2],
    /// TOS / traffic class byte for both directions.
    pub tos: u8,
    /// IPv4 options added to every packet (e.g. Router Alert).
    pub v4_options: Vec<u8>,
    /// IPv6 extension headers (before the upper layer) added to every packet.
    pub v6_ext: Vec<Ipv6Ext>,
    /// pcapng interface the frames go to.
    pub iface: u16,
    ip_id: [u16; 2],
    outer_id: [u16; 2],
    /// UDP source port entropy for VXLAN/GENEVE outer headers (RFC 7348 §5).
    entropy: u16,
}

impl Path {
    pub fn new(a: Endpoint, b: Endpoint, encap: Encap) -> Path {
        assert_eq!(
            a.ip.is_ipv6(),
            b.ip.is_ipv6(),
            "endpoints of different families"
        );
        if matches!(encap, Encap::SixIn4 { .. }) {
            assert!(a.ip.is_ipv6(), "6in4 carries IPv6");
        }
        let h = super::rng::mix64(
            u64::from(mac_for(a.ip)[5]) << 8 | u64::from(mac_for(b.ip)[4]) | 0x5a00_0000,
        );
        Path {
            a,
            b,
            encap,
            ttl: [64, 57],
            tos: 0,
            v4_options: Vec::new(),
            v6_ext: Vec::new(),
            iface: 0,
            ip_id: [(h >> 16) as u16, (h >> 32) as u16],
            outer_id: [(h >> 48) as u16, h as u16],
            entropy: 49152 | (h as u16 & 0x3fff),
        }
    }
    /// A plain Ethernet path with MACs derived from the addresses.
    pub fn plain(a: IpAddr, b: IpAddr) -> Path {
        Path::new(Endpoint::auto(a), Endpoint::auto(b), Encap::None)
    }
    pub fn with_encap(mut self, e: Encap) -> Path {
        if matches!(e, Encap::SixIn4 { .. }) {
            assert!(self.a.ip.is_ipv6(), "6in4 carries IPv6");
        }
        self.encap = e;
        self
    }
    pub fn is_v6(&self) -> bool {
        self.a.ip.is_ipv6()
    }
    /// The (src, dst) pair of a packet in direction `rev`.
    pub fn pair(&self, rev: bool) -> IpPair {
        let p = IpPair::new(self.a.ip, self.b.ip);
        if rev {
            p.reversed()
        } else {
            p
        }
    }
    /// MACs of the outermost Ethernet header for direction a→b.
    pub fn outer_macs(&self) -> (Mac, Mac) {
        match (&self.encap, self.encap.outer()) {
            (Encap::RawIp, _) => ([0; 6], [0; 6]),
            (_, Some((oa, ob))) => (mac_for(oa.into()), mac_for(ob.into())),
            _ => (self.a.mac, self.b.mac),
        }
    }

    /// A [`FlowTruth`] for this path with key (proto, sport, dport), encapsulation fields
    /// filled in.
    pub fn flow_truth(&self, proto: u8, sport: u16, dport: u16) -> FlowTruth {
        let mut f = FlowTruth::new(proto, self.a.ip, sport, self.b.ip, dport);
        let (sm, dm) = self.outer_macs();
        f.src_mac = sm;
        f.dst_mac = dm;
        f.encap = self.encap.name().to_string();
        match &self.encap {
            Encap::Vlan(t) => {
                f.vlan[0] = t[0] & 0x0fff;
                f.vlan[1] = t.get(1).map_or(0, |v| v & 0x0fff);
            }
            Encap::Mpls(l) => {
                f.mpls[0] = l[0];
                f.mpls[1] = l.get(1).copied().unwrap_or(0);
            }
            Encap::Vxlan { vni, .. } | Encap::Geneve { vni, .. } => f.tunnel_id = *vni,
            Encap::Gre { key, .. } => f.tunnel_id = key.unwrap_or(0),
            Encap::Gtpu { teid, .. } => f.tunnel_id = teid.0,
            _ => {}
        }
        f.ip_options = !self.v4_options.is_empty()
            || self
                .v6_ext
                .iter()
                .any(|e| matches!(e, Ipv6Ext::HopByHop(_) | Ipv6Ext::DestOpts(_)));
        f
    }

    fn next_id(&mut self, rev: bool) -> u16 {
        let d = rev as usize;
        self.ip_id[d] = self.ip_id[d].wrapping_add(1);
        self.ip_id[d]
    }

    /// The IPv4 header of the next packet in direction `rev`.
    pub fn v4_header(&mut self, rev: bool, l4proto: u8) -> Ipv4Hdr {
        let IpPair::V4(s, d) = self.pair(rev) else {
            panic!("v4_header on an IPv6 path")
        };
        let mut h = Ipv4Hdr::new(s, d, l4proto);
        h.ttl = self.ttl[rev as usize];
        h.tos = self.tos;
        h.id = self.next_id(rev);
        h.options = self.v4_options.clone();
        h
    }

    /// The IPv6 header of the next packet in direction `rev`.
    pub fn v6_header(&self, rev: bool, l4proto: u8) -> Ipv6Hdr {
        let IpPair::V6(s, d) = self.pair(rev) else {
            panic!("v6_header on an IPv4 path")
        };
        let mut h = Ipv6Hdr::new(s, d, l4proto);
        h.hop_limit = self.ttl[rev as usize];
        h.tclass = self.tos;
        h.flow_label = (self.entropy as u32) << 4 | rev as u32;
        h.ext = self.v6_ext.clone();
        h
    }

    /// Wraps an upper-layer segment in the path's IP header: returns the IP packet.
    pub fn ip(&mut self, rev: bool, l4proto: u8, segment: &[u8]) -> Vec<u8> {
        if self.is_v6() {
            pkt::ipv6(&self.v6_header(rev, l4proto), segment)
        } else {
            let h = self.v4_header(rev, l4proto);
            pkt::ipv4(&h, segment)
        }
    }

    /// Wraps an IP packet in the path's encapsulation and link layer: returns the frame.
    pub fn frame(&mut self, rev: bool, ip: &[u8]) -> Vec<u8> {
        let inner_et = if ip[0] >> 4 == 6 {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        let (mut sm, mut dm) = self.outer_macs();
        if rev {
            std::mem::swap(&mut sm, &mut dm);
        }
        let d = rev as usize;
        let outer_pair = self
            .encap
            .outer()
            .map(|(oa, ob)| if rev { (ob, oa) } else { (oa, ob) });
        let outer_ip = |this: &mut Path, proto: u8, payload: &[u8]| -> Vec<u8> {
            let (s, t) = outer_pair.unwrap();
            let mut h = Ipv4Hdr::new(s, t, proto);
            h.ttl = 62;
            this.outer_id[d] = this.outer_id[d].wrapping_add(1);
            h.id = this.outer_id[d];
            pkt::eth(sm, dm, &[], ethertype::IPV4, &pkt::ipv4(&h, payload))
        };
        let inner_eth = |this: &Path| -> Vec<u8> {
            let (a, b) = if rev {
                (this.b.mac, this.a.mac)
            } else {
                (this.a.mac, this.b.mac)
            };
            let mut f = pkt::eth(a, b, &[], inner_et, ip);
            f.truncate(14 + ip.len()); // no padding inside a tunnel
            f
        };
        match self.encap.clone() {
            Encap::RawIp => ip.to_vec(),
            Encap::None => pkt::eth(sm, dm, &[], inner_et, ip),
            Encap::Vlan(tags) => pkt::eth(sm, dm, &tags, inner_et, ip),
            Encap::Mpls(labels) => {
                let ttl = self.ttl[d];
                let stack: Vec<pkt::MplsLabel> = labels
                    .iter()
                    .map(|&label| pkt::MplsLabel { label, tc: 0, ttl })
                    .collect();
                pkt::eth(sm, dm, &[], ethertype::MPLS, &pkt::mpls(&stack, ip))
            }
            Encap::Pppoe { session } => {
                let pp = if inner_et == ethertype::IPV6 {
                    pkt::ppp::IPV6
                } else {
                    pkt::ppp::IPV4
                };
                pkt::eth(
                    sm,
                    dm,
                    &[],
                    ethertype::PPPOE_SESS,
                    &pkt::pppoe_session(session, pp, ip),
                )
            }
            Encap::Vxlan { outer, vni } => {
                let (s, t) = if rev { (outer.1, outer.0) } else { outer };
                let inner = inner_eth(self);
                let u = pkt::udp(
                    self.entropy,
                    pkt::port::VXLAN,
                    &pkt::vxlan(vni, &inner),
                    &IpPair::V4(s, t),
                );
                outer_ip(self, proto::UDP, &u)
            }
            Encap::Geneve { outer, vni } => {
                let (s, t) = if rev { (outer.1, outer.0) } else { outer };
                let inner = inner_eth(self);
                let g = pkt::geneve(vni, ethertype::TEB, &[], &inner);
                let u = pkt::udp(self.entropy, pkt::port::GENEVE, &g, &IpPair::V4(s, t));
                outer_ip(self, proto::UDP, &u)
            }
            Encap::Gre { key, .. } => {
                let g = pkt::gre(inner_et, key, None, ip);
                outer_ip(self, proto::GRE, &g)
            }
            Encap::Gtpu { outer, teid } => {
                let (s, t) = if rev { (outer.1, outer.0) } else { outer };
                let te = if rev { teid.1 } else { teid.0 };
                let u = pkt::udp(
                    pkt::port::GTPU,
                    pkt::port::GTPU,
                    &pkt::gtpu(te, ip),
                    &IpPair::V4(s, t),
                );
                outer_ip(self, proto::UDP, &u)
            }
            Encap::SixIn4 { .. } => outer_ip(self, proto::IPV6, ip),
        }
    }
}

/// Collects frames and the truth about their flows.
#[derive(Debug, Default)]
pub struct Capture {
    pub frames: Vec<Frame>,
    pub truth: Truth,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }
    /// Registers a flow; returns its index for [`Tag::flow`].
    pub fn add_flow(&mut self, f: FlowTruth) -> u32 {
        self.truth.flows.push(f);
        (self.truth.flows.len() - 1) as u32
    }
    pub fn flow_mut(&mut self, id: u32) -> &mut FlowTruth {
        &mut self.truth.flows[id as usize]
    }
    /// Adds a frame.
    pub fn push(&mut self, ts_ns: u64, iface: u16, data: Vec<u8>, tag: Tag) {
        let mut f = Frame::new(ts_ns, data);
        f.iface = iface;
        f.tag = tag;
        self.frames.push(f);
    }
    /// Sorts the frames by time (stable: a conversation's own order is kept for equal times),
    /// counts the truth and returns both.
    pub fn finish(mut self) -> (Vec<Frame>, Truth) {
        self.frames.sort_by_key(|f| f.ts_ns);
        self.truth.recount(&self.frames, 0);
        (self.frames, self.truth)
    }
}

/// Sends one upper-layer segment over `path` as a single frame.
#[allow(clippy::too_many_arguments)]
pub fn send_segment(
    cap: &mut Capture,
    path: &mut Path,
    flow: u32,
    rev: bool,
    ts: u64,
    l4proto: u8,
    segment: &[u8],
    app_len: usize,
) {
    let ip = path.ip(rev, l4proto, segment);
    let ip_len = ip.len() as u32;
    let data = path.frame(rev, &ip);
    let tag = Tag {
        flow,
        reverse: rev,
        ip_len,
        app_len: app_len as u32,
        frag: false,
    };
    cap.push(ts, path.iface, data, tag);
}

// ---------------------------------------------------------------------------------------------
// TCP

/// Options for one data transfer of a [`TcpConv`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOpts {
    /// The first segment is lost after the tap and retransmitted (same sequence number).
    pub retransmit_first: bool,
    /// The first two segments reach the tap swapped (needs at least two segments).
    pub swap_first_two: bool,
}

/// A TCP connection (RFC 793/9293, options of RFC 7323 and RFC 2018) between `path.a`
/// (client, initiator) and `path.b` (server).
#[derive(Debug)]
pub struct TcpConv {
    pub path: Path,
    pub flow: u32,
    /// Time of the last frame emitted (ns since the epoch).
    pub t: u64,
    /// Round-trip time between the tap (next to a) and b.
    pub rtt: u64,
    port: [u16; 2],
    nxt: [u32; 2],
    win: [u16; 2],
    wscale: [u8; 2],
    mss: u16,
    ts_base: [u32; 2],
    ts_recent: [u32; 2],
    t0: u64,
}

impl TcpConv {
    #[allow(clippy::too_many_arguments)]
    fn new_inner(
        cap: &mut Capture,
        path: Path,
        cport: u16,
        sport: u16,
        t: u64,
        rtt: u64,
        rng: &mut Rng,
        handshake: bool,
    ) -> TcpConv {
        let mut ft = path.flow_truth(proto::TCP, cport, sport);
        ft.end = End::Open;
        ft.handshake = handshake;
        let flow = cap.add_flow(ft);
        let mss = if path.is_v6() { 1440 } else { 1460 };
        TcpConv {
            path,
            flow,
            t,
            rtt,
            port: [cport, sport],
            nxt: [rng.next_u32(), rng.next_u32()],
            win: [502, 509],
            wscale: [7, 9],
            mss,
            ts_base: [rng.next_u32() >> 1, rng.next_u32() >> 1],
            ts_recent: [0, 0],
            t0: t,
        }
    }

    /// A new connection: call [`TcpConv::handshake`] next. `t` is the time of the SYN.
    pub fn new(
        cap: &mut Capture,
        path: Path,
        cport: u16,
        sport: u16,
        t: u64,
        rtt: u64,
        rng: &mut Rng,
    ) -> TcpConv {
        TcpConv::new_inner(cap, path, cport, sport, t, rtt, rng, true)
    }

    /// A connection already established before the capture started (no handshake in the
    /// capture); the first packet will be at `t` or later.
    pub fn established(
        cap: &mut Capture,
        path: Path,
        cport: u16,
        sport: u16,
        t: u64,
        rtt: u64,
        rng: &mut Rng,
    ) -> TcpConv {
        let mut c = TcpConv::new_inner(cap, path, cport, sport, t, rtt, rng, false);
        // Pretend the connection has been up for a while.
        c.nxt[0] = c.nxt[0].wrapping_add(rng.below(1 << 20) as u32);
        c.nxt[1] = c.nxt[1].wrapping_add(rng.below(1 << 24) as u32);
        c.ts_recent = [c.tsval(1, t), c.tsval(0, t)];
        c
    }

    /// Delay before the other side answers a packet sent by `rev`'s side.
    fn turn(&self, rev: bool) -> u64 {
        if rev {
            HOST_DELAY_NS
        } else {
            self.rtt
        }
    }

    fn tsval(&self, side: usize, t: u64) -> u32 {
        // 1 ms timestamp clock.
        self.ts_base[side].wrapping_add(((t - self.t0) / 1_000_000) as u32)
    }

    /// Emits one segment from side `rev` at `ts`.
    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        cap: &mut Capture,
        rev: bool,
        ts: u64,
        flags: u8,
        seq: u32,
        ack: u32,
        win: u16,
        extra_opts: &[u8],
        payload: &[u8],
    ) {
        let s = rev as usize;
        let tsv = self.tsval(s, ts);
        let mut options = Vec::new();
        if flags & tcpflag::SYN != 0 {
            // Linux order: MSS, SACK-permitted, timestamps, NOP, window scale (RFC 7323, 2018).
            options.extend_from_slice(&pkt::tcpopt::mss(self.mss));
            options.extend_from_slice(&[4, 2, 8, 10]);
            options.extend_from_slice(&tsv.to_be_bytes());
            options.extend_from_slice(&self.ts_recent[s].to_be_bytes());
            options.extend_from_slice(&pkt::tcpopt::wscale(self.wscale[s]));
        } else if flags & tcpflag::RST == 0 {
            options.extend_from_slice(&pkt::tcpopt::timestamps(tsv, self.ts_recent[s]));
            options.extend_from_slice(extra_opts);
        }
        // The peer echoes this value from now on.
        self.ts_recent[1 - s] = tsv;
        let h = pkt::TcpHdr {
            sport: self.port[s],
            dport: self.port[1 - s],
            seq,
            ack: if flags & tcpflag::ACK != 0 { ack } else { 0 },
            flags,
            window: win,
            urgent: 0,
            options,
        };
        let segment = pkt::tcp(&h, payload, &self.path.pair(rev));
        send_segment(
            cap,
            &mut self.path,
            self.flow,
            rev,
            ts,
            proto::TCP,
            &segment,
            payload.len(),
        );
        self.t = self.t.max(ts);
    }

    /// SYN, SYN-ACK, ACK with MSS, SACK-permitted, timestamps and window scale.
    pub fn handshake(&mut self, cap: &mut Capture) {
        let t = self.t;
        let [isn_a, isn_b] = self.nxt;
        self.seg(cap, false, t, tcpflag::SYN, isn_a, 0, 64240, &[], &[]);
        let t = t + self.rtt;
        self.seg(
            cap,
            true,
            t,
            tcpflag::SYN | tcpflag::ACK,
            isn_b,
            isn_a.wrapping_add(1),
            65160,
            &[],
            &[],
        );
        self.nxt = [isn_a.wrapping_add(1), isn_b.wrapping_add(1)];
        let t = t + HOST_DELAY_NS;
        let (sa, sb) = (self.nxt[0], self.nxt[1]);
        self.seg(cap, false, t, tcpflag::ACK, sa, sb, self.win[0], &[], &[]);
    }

    /// Advances the clock by `dt` (think time).
    pub fn idle(&mut self, dt: u64) {
        self.t += dt;
    }

    /// Sends `data` from side `rev` (false = client) after a host delay, segmented at the MSS,
    /// and the receiver's ACKs (one per two segments and one for the last).
    pub fn send(&mut self, cap: &mut Capture, rev: bool, data: &[u8]) {
        self.send_with(cap, rev, data, SendOpts::default());
    }

    /// Like [`TcpConv::send`] with a retransmission or a reordered pair.
    pub fn send_with(&mut self, cap: &mut Capture, rev: bool, data: &[u8], o: SendOpts) {
        let s = rev as usize;
        let r = 1 - s;
        let seg_len = (self.mss - 12) as usize; // the timestamps option takes 12 bytes
        let mut segs: Vec<(u32, &[u8])> = Vec::new();
        let mut seq = self.nxt[s];
        for chunk in data.chunks(seg_len) {
            segs.push((seq, chunk));
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        let end_seq = seq;
        let base = self.nxt[s];
        let mut t = self.t + HOST_DELAY_NS;
        let n = segs.len();
        let mut order: Vec<usize> = (0..n).collect();
        if o.swap_first_two && n >= 2 {
            order.swap(0, 1);
            self.flow_truth(cap).ooo[s] += 1;
        }
        let delay = self.turn(rev);
        let peer_ack = self.nxt[r];
        let mut last_ack_t = t;
        // Highest byte received in order by the peer, and an out-of-order block if any.
        let mut rcv_nxt = base;
        let mut held: Option<(u32, u32)> = None;
        let lost_first = o.retransmit_first && n >= 1;
        for (k, &i) in order.iter().enumerate() {
            let (sq, chunk) = segs[i];
            let last = k + 1 == n;
            let flags = tcpflag::ACK | if last { tcpflag::PSH } else { 0 };
            self.seg(cap, rev, t, flags, sq, peer_ack, self.win[s], &[], chunk);
            let seg_end = sq.wrapping_add(chunk.len() as u32);
            let lost = lost_first && i == 0;
            if !lost {
                if sq == rcv_nxt {
                    rcv_nxt = seg_end;
                    if let Some((hl, hr)) = held {
                        if hl == rcv_nxt {
                            rcv_nxt = hr;
                            held = None;
                        }
                    }
                } else {
                    held = Some(match held {
                        Some((hl, _)) => (hl, seg_end),
                        None => (sq, seg_end),
                    });
                }
            }
            // The receiver acks every second segment, the last one, and at once when out of
            // order (a duplicate ACK with a SACK block).
            let lone_loss = lost && n == 1;
            if (held.is_some() || k % 2 == 1 || last) && !lone_loss {
                let sack = held.map(|b| pkt::tcpopt::sack(&[b])).unwrap_or_default();
                let ta = t + delay;
                self.seg(
                    cap,
                    !rev,
                    ta,
                    tcpflag::ACK,
                    peer_ack,
                    rcv_nxt,
                    self.win[r],
                    &sack,
                    &[],
                );
                last_ack_t = ta;
            }
            t += BURST_GAP_NS;
        }
        if lost_first {
            // Fast retransmit after duplicate ACKs, or RTO (200 ms) for a lone segment.
            let tr = if n >= 2 {
                last_ack_t + self.turn(!rev)
            } else {
                t + 200_000_000
            };
            let (sq, chunk) = segs[0];
            self.seg(
                cap,
                rev,
                tr,
                tcpflag::ACK,
                sq,
                peer_ack,
                self.win[s],
                &[],
                chunk,
            );
            self.flow_truth(cap).retrans[s] += 1;
            let ta = tr + delay;
            self.seg(
                cap,
                !rev,
                ta,
                tcpflag::ACK,
                peer_ack,
                end_seq,
                self.win[r],
                &[],
                &[],
            );
        }
        self.nxt[s] = end_seq;
    }

    /// Side `rev`'s receive window drops to zero (a pure ACK advertising window 0) and opens
    /// again `pause` ns later (a window update).
    pub fn zero_window(&mut self, cap: &mut Capture, rev: bool, pause: u64) {
        let s = rev as usize;
        let t = self.t + HOST_DELAY_NS;
        let (sq, ak) = (self.nxt[s], self.nxt[1 - s]);
        self.seg(cap, rev, t, tcpflag::ACK, sq, ak, 0, &[], &[]);
        self.flow_truth(cap).zero_win[s] += 1;
        self.seg(
            cap,
            rev,
            t + pause,
            tcpflag::ACK,
            sq,
            ak,
            self.win[s],
            &[],
            &[],
        );
    }

    /// Orderly close started by side `rev`: FIN-ACK, FIN-ACK, ACK.
    pub fn fin(&mut self, cap: &mut Capture, rev: bool) {
        let s = rev as usize;
        let r = 1 - s;
        let f = tcpflag::FIN | tcpflag::ACK;
        let t = self.t + HOST_DELAY_NS;
        let (sq, ak) = (self.nxt[s], self.nxt[r]);
        self.seg(cap, rev, t, f, sq, ak, self.win[s], &[], &[]);
        self.nxt[s] = sq.wrapping_add(1);
        let t = t + self.turn(rev);
        let (sq2, ak2) = (self.nxt[r], self.nxt[s]);
        self.seg(cap, !rev, t, f, sq2, ak2, self.win[r], &[], &[]);
        self.nxt[r] = sq2.wrapping_add(1);
        let t = t + self.turn(!rev);
        let (sq3, ak3) = (self.nxt[s], self.nxt[r]);
        self.seg(cap, rev, t, tcpflag::ACK, sq3, ak3, self.win[s], &[], &[]);
        self.flow_truth(cap).end = End::Fin;
    }

    /// Abort by side `rev`: RST-ACK.
    pub fn rst(&mut self, cap: &mut Capture, rev: bool) {
        let s = rev as usize;
        let t = self.t + HOST_DELAY_NS;
        let (sq, ak) = (self.nxt[s], self.nxt[1 - s]);
        self.seg(
            cap,
            rev,
            t,
            tcpflag::RST | tcpflag::ACK,
            sq,
            ak,
            0,
            &[],
            &[],
        );
        self.flow_truth(cap).end = End::Rst;
    }

    pub fn flow_truth<'c>(&self, cap: &'c mut Capture) -> &'c mut FlowTruth {
        cap.flow_mut(self.flow)
    }

    /// A request/response exchange: `req` from the client, `resp` from the server.
    pub fn exchange(&mut self, cap: &mut Capture, req: &[u8], resp: &[u8]) {
        self.send(cap, false, req);
        self.t += self.rtt / 4; // server think time
        self.send(cap, true, resp);
    }
}

// ---------------------------------------------------------------------------------------------
// UDP, ICMP, ARP

/// A UDP flow (RFC 768) between `path.a` (initiator) and `path.b`.
#[derive(Debug)]
pub struct UdpConv {
    pub path: Path,
    pub flow: u32,
    port: [u16; 2],
}

impl UdpConv {
    pub fn new(cap: &mut Capture, path: Path, cport: u16, sport: u16) -> UdpConv {
        let flow = cap.add_flow(path.flow_truth(proto::UDP, cport, sport));
        UdpConv {
            path,
            flow,
            port: [cport, sport],
        }
    }
    /// One datagram from side `rev` at `ts`.
    pub fn send(&mut self, cap: &mut Capture, rev: bool, ts: u64, payload: &[u8]) {
        let s = rev as usize;
        let u = pkt::udp(
            self.port[s],
            self.port[1 - s],
            payload,
            &self.path.pair(rev),
        );
        send_segment(
            cap,
            &mut self.path,
            self.flow,
            rev,
            ts,
            proto::UDP,
            &u,
            payload.len(),
        );
    }
    /// One datagram from side `rev` sent as IP fragments of at most `max_frag` payload bytes
    /// (IPv4: RFC 791 fragmentation; IPv6: Fragment header, RFC 8200 §4.5), spaced 10 µs.
    pub fn send_fragmented(
        &mut self,
        cap: &mut Capture,
        rev: bool,
        ts: u64,
        payload: &[u8],
        max_frag: usize,
        frag_id: u32,
    ) {
        let s = rev as usize;
        let u = pkt::udp(
            self.port[s],
            self.port[1 - s],
            payload,
            &self.path.pair(rev),
        );
        let packets = if self.path.is_v6() {
            let h = self.path.v6_header(rev, proto::UDP);
            pkt::fragment_ipv6(&h, &u, max_frag, frag_id)
        } else {
            let mut h = self.path.v4_header(rev, proto::UDP);
            h.id = frag_id as u16;
            pkt::fragment_ipv4(&h, &u, max_frag)
        };
        let step = (max_frag / 8) * 8;
        for (i, ip) in packets.iter().enumerate() {
            let off = i * step;
            let piece = step.min(u.len() - off);
            // Application bytes in this piece: the UDP header is in the first one.
            let app = if off == 0 { piece - 8 } else { piece };
            let data = self.path.frame(rev, ip);
            let tag = Tag {
                flow: self.flow,
                reverse: rev,
                ip_len: ip.len() as u32,
                app_len: app as u32,
                frag: true,
            };
            cap.push(ts + i as u64 * 10_000, self.path.iface, data, tag);
        }
    }
}

/// An ICMP (RFC 792) or ICMPv6 (RFC 4443) echo series with one identifier.
#[derive(Debug)]
pub struct IcmpEcho {
    pub path: Path,
    pub flow: u32,
    pub id: u16,
}

impl IcmpEcho {
    pub fn new(cap: &mut Capture, path: Path, id: u16) -> IcmpEcho {
        let (p, req) = if path.is_v6() {
            (proto::ICMPV6, 128u16)
        } else {
            (proto::ICMP, 8u16)
        };
        let flow = cap.add_flow(path.flow_truth(p, req << 8, id));
        IcmpEcho { path, flow, id }
    }
    /// Echo request `seq` at `ts`, and the reply `rtt` later when `Some`.
    pub fn ping(&mut self, cap: &mut Capture, ts: u64, seq: u16, rtt: Option<u64>, data: &[u8]) {
        let v6 = self.path.is_v6();
        for (rev, at, ty) in [(false, ts, if v6 { 128 } else { 8 })]
            .into_iter()
            .chain(rtt.map(|r| (true, ts + r, if v6 { 129 } else { 0 })))
        {
            let rest = pkt::echo_rest(self.id, seq);
            let (l4p, msg) = if v6 {
                let pair = self.path.pair(rev);
                (proto::ICMPV6, pkt::icmpv6(ty, 0, rest, data, &pair))
            } else {
                (proto::ICMP, pkt::icmpv4(ty, 0, rest, data))
            };
            send_segment(
                cap,
                &mut self.path,
                self.flow,
                rev,
                at,
                l4p,
                &msg,
                data.len(),
            );
        }
    }
}

/// An ARP who-has from `req` for `target`'s address and, when `reply` is `Some(delay)`, the
/// is-at answer (RFC 826). Recorded as one flow with proto 0 and ethertype 0x0806.
pub fn arp_exchange(
    cap: &mut Capture,
    req: Endpoint,
    target: Endpoint,
    vlans: &[u16],
    ts: u64,
    reply: Option<u64>,
) -> u32 {
    let (IpAddr::V4(spa), IpAddr::V4(tpa)) = (req.ip, target.ip) else {
        panic!("ARP needs IPv4 addresses")
    };
    let mut ft = FlowTruth::new(0, req.ip, 0, target.ip, 0);
    ft.ethertype = ethertype::ARP;
    ft.src_mac = req.mac;
    ft.dst_mac = target.mac;
    if !vlans.is_empty() {
        ft.encap = if vlans.len() >= 2 { "qinq" } else { "vlan" }.into();
        ft.vlan = [vlans[0] & 0xfff, vlans.get(1).map_or(0, |v| v & 0xfff)];
    }
    let flow = cap.add_flow(ft);
    let who_has = pkt::arp(1, req.mac, spa, [0; 6], tpa);
    let f = pkt::eth(req.mac, [0xff; 6], vlans, ethertype::ARP, &who_has);
    cap.push(ts, 0, f, Tag { flow, ..Tag::NONE });
    if let Some(d) = reply {
        let is_at = pkt::arp(2, target.mac, tpa, req.mac, spa);
        let f = pkt::eth(target.mac, req.mac, vlans, ethertype::ARP, &is_at);
        cap.push(
            ts + d,
            0,
            f,
            Tag {
                flow,
                reverse: true,
                ..Tag::NONE
            },
        );
    }
    flow
}
