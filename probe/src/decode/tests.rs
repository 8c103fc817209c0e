use super::*;
use crate::testutil::*;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn dec(data: &[u8], link: u16) -> (Decoder, R<PacketSummary>) {
    let mut d = Decoder::new(64);
    let mut s = PacketSummary::default();
    let r = d
        .decode(data, data.len() as u32, LinkType(link), 1_000, &mut s)
        .map(|_| s);
    (d, r)
}

fn ok(data: &[u8]) -> PacketSummary {
    dec(data, 1).1.expect("decodes")
}

#[test]
fn ethernet_ipv4_tcp_with_options() {
    let opts = [
        2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
    ];
    let seg = tcp_opts(40000, 80, 1000, 0, tcpf::SYN, 29200, &opts, &[]);
    let f = eth(MAC_A, MAC_B, 0x0800, &ipv4(A, B, 6, &seg));
    let s = ok(&f);
    assert_eq!(s.key.proto, 6);
    assert_eq!(&s.key.a[..4], &A);
    assert_eq!((s.key.port_a, s.key.port_b), (40000, 80));
    assert_eq!(s.bytes as usize, f.len());
    assert_eq!(s.ip_len, 20 + 40);
    assert_eq!(s.app_len, 0);
    assert!(s.tcp.valid);
    assert_eq!(s.tcp.seq, 1000);
    assert_eq!(s.tcp.win, 29200);
    assert_eq!(
        s.tcp.opts,
        tcp_opts::MSS | tcp_opts::WSCALE | tcp_opts::SACK_OK | tcp_opts::TSTAMP
    );
    assert_eq!(s.tcp.wscale, 7);
    assert_eq!(s.role, Role::Initiator);
    assert_eq!(s.smac, MAC_A);
    assert_eq!(s.ttl, 64);
}

#[test]
fn vlan_qinq_and_mpls_are_skipped_and_recorded() {
    let inner = ipv4(A, B, 17, &udp(5000, 53, b"q"));
    let f = eth(
        MAC_A,
        MAC_B,
        0x88a8,
        &vlan(100, 0x8100, &vlan(200, 0x0800, &inner)),
    );
    let s = ok(&f);
    assert_eq!(s.vlan, [100, 200]);
    assert_ne!(s.encap.kinds & encap::QINQ, 0);
    assert_eq!((s.key.port_a, s.key.port_b), (5000, 53));
    assert_eq!(s.app_len, 1);
    // Two MPLS labels (16 and 17, the second bottom-of-stack) over IPv4.
    let mut m = (16u32 << 12 | 64).to_be_bytes().to_vec();
    m.extend_from_slice(&(17u32 << 12 | 0x100 | 64).to_be_bytes());
    m.extend_from_slice(&inner);
    let s = ok(&eth(MAC_A, MAC_B, 0x8847, &m));
    assert_eq!(s.mpls, [16, 17]);
    assert_eq!(s.key.port_b, 53);
}

#[test]
fn pppoe_session_carries_ip_and_discovery_is_l2() {
    let mut p = vec![0x11, 0x00, 0x12, 0x34, 0, 0];
    let ip = ipv4(A, B, 17, &udp(1, 2, &[]));
    p[4..6].copy_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&[0x00, 0x21]);
    p.extend_from_slice(&ip);
    let s = ok(&eth(MAC_A, MAC_B, 0x8864, &p));
    assert_eq!(s.key.kind, 4);
    assert_ne!(s.encap.kinds & encap::PPPOE, 0);
    let s = ok(&eth(MAC_A, MAC_B, 0x8863, &[0x11, 0x09, 0, 0, 0, 0]));
    assert_eq!(s.key.kind, 0);
    assert_eq!(s.key.ethertype, 0x8863);
}

#[test]
fn arp_and_llc_become_l2_flows() {
    let s = ok(&eth(MAC_A, [0xff; 6], 0x0806, &[0; 28]));
    assert_eq!(s.key.kind, AddrKind::L2 as u8);
    assert_eq!(s.key.ethertype, 0x0806);
    assert_eq!(&s.key.a[..6], &MAC_A);
    let s = ok(&eth(MAC_A, MAC_B, 38, &[0x42, 0x42, 0x03, 0, 0]));
    assert_eq!((s.key.kind, s.key.ethertype), (0, 0));
}

#[test]
fn ipv6_extension_headers_and_ah_are_walked() {
    // Hop-by-hop (8 bytes) → routing (8 bytes) → destination options (8) → UDP.
    let ext = [
        43, 0, 1, 4, 0, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0,
    ];
    let f = eth(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(v6(1), v6(2), 0, &ext, &udp(546, 547, b"abc")),
    );
    let s = ok(&f);
    assert_eq!(s.key.proto, 17);
    assert_eq!(s.key.port_a, 546);
    assert_eq!(s.app_len, 3);
    assert_ne!(s.flags & flags::IP_OPTIONS, 0);
    // AH (RFC 4302, 12-byte ICV → payload len 4) protecting TCP.
    let mut ah = vec![6, 4, 0, 0];
    ah.extend_from_slice(&[0; 20]);
    let f = eth(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(v6(1), v6(2), 51, &ah, &tcp(1, 22, 0, 0, tcpf::ACK, &[])),
    );
    let s = ok(&f);
    assert_eq!((s.key.proto, s.key.port_b), (6, 22));
    assert_ne!(s.flags & flags::IPSEC_AH, 0);
}

#[test]
fn ipv4_fragments_inherit_ports_from_the_first() {
    let payload = udp(7777, 53, &[0u8; 64]);
    let first = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4_full(A, B, 17, 99, 0x2000, &[], &payload[..32]),
    );
    let later = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4_full(A, B, 17, 99, 4, &[], &payload[32..]),
    );
    let mut d = Decoder::new(64);
    let mut s = PacketSummary::default();
    d.decode(&first, first.len() as u32, LinkType(1), 1, &mut s)
        .unwrap();
    assert_eq!(s.frag, fragpos::FIRST);
    d.decode(&later, later.len() as u32, LinkType(1), 2, &mut s)
        .unwrap();
    assert_eq!(s.frag, fragpos::LATER);
    assert_eq!((s.key.port_a, s.key.port_b), (7777, 53));
    assert_eq!(d.stats.frag_matched, 1);
    // A later fragment of an unseen datagram keeps port 0 and is counted.
    let orphan = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4_full(A, B, 17, 100, 4, &[], &[0; 8]),
    );
    d.decode(&orphan, orphan.len() as u32, LinkType(1), 3, &mut s)
        .unwrap();
    assert_eq!((s.key.port_a, d.stats.frag_unmatched), (0, 1));
}

#[test]
fn ipv6_fragments_inherit_ports_and_atomic_fragments_are_whole() {
    let payload = tcp(5555, 443, 1, 1, tcpf::ACK, &[1; 40]);
    let fh = |off: u16, more: bool| {
        let mut h = vec![6, 0];
        h.extend_from_slice(&(off << 3 | more as u16).to_be_bytes());
        h.extend_from_slice(&7u32.to_be_bytes());
        h
    };
    let mut d = Decoder::new(64);
    let mut s = PacketSummary::default();
    let f1 = eth(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(v6(1), v6(2), 44, &fh(0, true), &payload[..24]),
    );
    let f2 = eth(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(v6(1), v6(2), 44, &fh(3, false), &payload[24..]),
    );
    d.decode(&f1, f1.len() as u32, LinkType(1), 1, &mut s)
        .unwrap();
    d.decode(&f2, f2.len() as u32, LinkType(1), 2, &mut s)
        .unwrap();
    assert_eq!(
        (s.key.port_a, s.key.port_b, s.frag),
        (5555, 443, fragpos::LATER)
    );
    let atomic = eth(
        MAC_A,
        MAC_B,
        0x86dd,
        &ipv6(v6(1), v6(2), 44, &fh(0, false), &payload),
    );
    d.decode(&atomic, atomic.len() as u32, LinkType(1), 3, &mut s)
        .unwrap();
    assert_eq!((s.frag, s.key.port_b), (fragpos::NONE, 443));
}

#[test]
fn tunnels_are_keyed_by_the_innermost_flow() {
    let inner_ip = ipv4(
        [192, 168, 0, 1],
        [192, 168, 0, 2],
        6,
        &tcp(1234, 80, 5, 0, tcpf::SYN, &[]),
    );
    let inner_eth = eth(MAC_B, MAC_A, 0x0800, &inner_ip);
    let outer = |payload: &[u8], proto: u8| {
        eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4([1, 1, 1, 1], [2, 2, 2, 2], proto, payload),
        )
    };
    let check = |f: Vec<u8>, kind: u16, id: u32| {
        let s = ok(&f);
        assert_eq!(&s.key.a[..4], &[192, 168, 0, 1], "kind {kind:#x}");
        assert_eq!((s.key.proto, s.key.port_b), (6, 80));
        assert_ne!(s.encap.kinds & kind, 0);
        assert_eq!(s.encap.tunnel_id, id);
        assert_eq!(&s.encap.outer_src.0[..4], &[1, 1, 1, 1]);
        assert_eq!(s.smac, MAC_A, "outer MACs are kept");
        assert_eq!(s.bytes as usize, f.len(), "bytes are the outer frame's");
    };
    // VXLAN, VNI 4242.
    let mut vx = vec![0x08, 0, 0, 0];
    vx.extend_from_slice(&(4242u32 << 8).to_be_bytes());
    vx.extend_from_slice(&inner_eth);
    check(outer(&udp(50000, 4789, &vx), 17), encap::VXLAN, 4242);
    // GENEVE with one 8-byte option, VNI 77, Ethernet payload.
    let mut gn = vec![0x02, 0, 0x65, 0x58];
    gn.extend_from_slice(&(77u32 << 8).to_be_bytes());
    gn.extend_from_slice(&[0; 8]);
    gn.extend_from_slice(&inner_eth);
    check(outer(&udp(50000, 6081, &gn), 17), encap::GENEVE, 77);
    // GTP-U G-PDU with sequence number, TEID 0xabcdef.
    let mut gt = vec![0x32, 0xff, 0, 0];
    gt.extend_from_slice(&0xabcdefu32.to_be_bytes());
    gt.extend_from_slice(&[0, 1, 0, 0]);
    gt.extend_from_slice(&inner_ip);
    check(outer(&udp(2152, 2152, &gt), 17), encap::GTPU, 0xabcdef);
    // GRE with key 9 carrying IPv4.
    let mut gre = vec![0x20, 0, 0x08, 0];
    gre.extend_from_slice(&9u32.to_be_bytes());
    gre.extend_from_slice(&inner_ip);
    check(outer(&gre, 47), encap::GRE, 9);
    // ERSPAN type II (GRE with sequence number), session 5.
    let mut er = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 5, 0, 0, 0, 0];
    er.extend_from_slice(&inner_eth);
    check(outer(&er, 47), encap::ERSPAN, 5);
    // IP-in-IP.
    check(outer(&inner_ip, 4), encap::IPIP, 0);
}

#[test]
fn six_in_four_and_teredo_reach_the_inner_ipv6() {
    let inner = ipv6(v6(1), v6(2), 17, &[], &udp(1000, 53, b"x"));
    let f = eth(MAC_A, MAC_B, 0x0800, &ipv4(A, B, 41, &inner));
    let s = ok(&f);
    assert_eq!((s.key.kind, s.key.port_b), (6, 53));
    assert_ne!(s.encap.kinds & encap::IP6IN4, 0);
    let f = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(A, B, 17, &udp(3544, 40000, &inner)),
    );
    let s = ok(&f);
    assert_ne!(s.encap.kinds & encap::TEREDO, 0);
    assert_eq!(s.key.kind, 6);
}

#[test]
fn a_bad_inner_packet_keeps_the_outer_flow() {
    // VXLAN with a truncated inner frame: still the outer UDP flow, counted.
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    vx.extend_from_slice(&[1, 2, 3]);
    let f = eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(A, B, 17, &udp(50000, 4789, &vx)),
    );
    let (d, r) = dec(&f, 1);
    let s = r.unwrap();
    assert_eq!((s.key.proto, s.key.port_b), (17, 4789));
    assert_eq!(s.encap.kinds, 0);
    assert_eq!(d.stats.tunnel_inner_bad, 1);
}

#[test]
fn icmp_request_and_reply_share_a_key() {
    let req = ok(&eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(A, B, 1, &icmp(8, 0, 0x77, 1, &[0; 8])),
    ));
    let rep = ok(&eth(
        MAC_B,
        MAC_A,
        0x0800,
        &ipv4(B, A, 1, &icmp(0, 0, 0x77, 1, &[0; 8])),
    ));
    assert_eq!(req.key.canonical().0, rep.key.canonical().0);
    assert_eq!((req.role, rep.role), (Role::Initiator, Role::Responder));
    assert_eq!(req.key.port_a, 0x0800);
    assert_eq!(req.key.port_b, 0x77);
    let unreach = ok(&eth(
        MAC_B,
        MAC_A,
        0x0800,
        &ipv4(B, A, 1, &icmp(3, 3, 0, 0, &[0; 28])),
    ));
    assert_eq!((unreach.key.port_a, unreach.key.port_b), (0x0303, 0));
}

#[test]
fn cooked_raw_and_loopback_link_types() {
    let ip = ipv4(A, B, 17, &udp(1, 2, &[]));
    // Linux SLL: 16-byte header, protocol at 14.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0xa, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let (d, r) = dec(&sll, 113);
    assert_eq!(
        r.unwrap().bytes as usize,
        ip.len(),
        "SLL header left out of bytes"
    );
    assert_eq!(d.stats.link_pseudo_bytes, 16);
    // SLL2: protocol first, 20 bytes.
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0xa, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    assert_eq!(dec(&sll2, 276).1.unwrap().key.port_b, 2);
    // Raw IP in its three link types.
    for l in [101, 228, 12] {
        assert_eq!(dec(&ip, l).1.unwrap().key.proto, 17);
    }
    let ip6 = ipv6(v6(1), v6(2), 17, &[], &udp(1, 2, &[]));
    assert_eq!(dec(&ip6, 229).1.unwrap().key.kind, 6);
    // BSD NULL in little-endian (AF 2) and big-endian (AF 24 = BSD IPv6) byte order.
    let mut null = vec![2, 0, 0, 0];
    null.extend_from_slice(&ip);
    assert_eq!(dec(&null, 0).1.unwrap().key.kind, 4);
    let mut null6 = vec![0, 0, 0, 24];
    null6.extend_from_slice(&ip6);
    assert_eq!(dec(&null6, 0).1.unwrap().key.kind, 6);
    // PPP with address/control bytes.
    let mut ppp = vec![0xff, 0x03, 0x00, 0x21];
    ppp.extend_from_slice(&ip);
    let (d, r) = dec(&ppp, 9);
    assert_eq!(r.unwrap().key.kind, 4);
    assert_eq!(d.stats.link_pseudo_bytes, 4);
}

#[test]
fn malformed_packets_are_counted_by_reason() {
    let (d, r) = dec(&[0u8; 10], 1);
    assert_eq!(r.unwrap_err(), Malformed::TruncatedLink);
    assert_eq!(d.stats.malformed[Malformed::TruncatedLink as usize], 1);
    assert_eq!(d.stats.malformed_bytes, 10);
    let f = eth(MAC_A, MAC_B, 0x0800, &[0x45, 0, 0, 20]);
    assert_eq!(dec(&f, 1).1.unwrap_err(), Malformed::TruncatedIp);
    let f = eth(MAC_A, MAC_B, 0x0800, &ipv4(A, B, 6, &[0, 80]));
    assert_eq!(dec(&f, 1).1.unwrap_err(), Malformed::TruncatedTransport);
    let mut bad = ipv4(A, B, 6, &tcp(1, 2, 0, 0, 0, &[]));
    bad[0] = 0x43;
    assert_eq!(
        dec(&eth(MAC_A, MAC_B, 0x0800, &bad), 1).1.unwrap_err(),
        Malformed::BadIpHeader
    );
    assert_eq!(
        dec(&[1, 2, 3], 12345).1.unwrap_err(),
        Malformed::UnsupportedLink
    );
    assert_eq!(dec(&[], 1).1.unwrap_err(), Malformed::Empty);
}

#[test]
fn lying_length_fields_are_tolerated() {
    // IPv4 total length below the header length: trust the frame (argus counts these too).
    let mut ip = ipv4(A, B, 17, &udp(1, 53, &[0; 20]));
    ip[2] = 0;
    ip[3] = 4;
    let s = ok(&eth(MAC_A, MAC_B, 0x0800, &ip));
    assert_eq!(s.ip_len as usize, ip.len());
    // UDP length beyond the packet.
    let mut u = udp(1, 53, &[0; 4]);
    u[4] = 0xff;
    let s = ok(&eth(MAC_A, MAC_B, 0x0800, &ipv4(A, B, 17, &u)));
    assert_eq!(s.app_len, 4);
}

#[test]
fn snaplen_truncated_tcp_keeps_its_flow() {
    let f = eth_tcp(A, B, 1234, 80, 1, 1, tcpf::ACK, &[0; 100]);
    let mut d = Decoder::new(16);
    let mut s = PacketSummary::default();
    // Captured through the ports only.
    d.decode(&f[..14 + 20 + 6], f.len() as u32, LinkType(1), 1, &mut s)
        .unwrap();
    assert_eq!((s.key.port_a, s.key.port_b), (1234, 80));
    assert!(!s.tcp.valid);
    assert_eq!(s.bytes as usize, f.len(), "wire length counts");
    assert_eq!(s.app_len, 100);
    assert_eq!(d.stats.snaplen_truncated, 1);
}

/// Every prefix and many bit flips of a set of varied frames decode or fail cleanly.
#[test]
fn never_panics_on_damaged_input() {
    let mut frames = vec![
        eth_tcp(A, B, 1, 2, 3, 4, tcpf::SYN, &[1, 2, 3]),
        eth(
            MAC_A,
            MAC_B,
            0x86dd,
            &ipv6(
                v6(1),
                v6(2),
                0,
                &[44, 0, 1, 4, 0, 0, 0, 0, 17, 0, 0, 9, 0, 0, 0, 1],
                &udp(1, 2, &[]),
            ),
        ),
        eth(
            MAC_A,
            MAC_B,
            0x0800,
            &ipv4(
                A,
                B,
                47,
                &[
                    0xb0, 0, 0x88, 0xbe, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 5,
                ],
            ),
        ),
    ];
    let mut gt = vec![0x36, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0x85, 1, 0, 0, 0];
    gt.extend_from_slice(&ipv4(A, B, 6, &tcp(1, 2, 0, 0, 0, &[])));
    frames.push(eth(
        MAC_A,
        MAC_B,
        0x0800,
        &ipv4(A, B, 17, &udp(2152, 2152, &gt)),
    ));
    let mut d = Decoder::new(16);
    let mut s = PacketSummary::default();
    let mut x = 0x9e37_79b9u64;
    for f in &frames {
        for cut in 0..=f.len() {
            for link in [0u16, 1, 9, 101, 105, 113, 127, 239, 276] {
                let _ = d.decode(&f[..cut], f.len() as u32, LinkType(link), 1, &mut s);
            }
        }
        for _ in 0..2000 {
            let mut g = f.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % g.len();
                g[i] ^= (x >> 32) as u8;
            }
            let _ = d.decode(&g, g.len() as u32, LinkType(1), 1, &mut s);
        }
    }
}
