//! Scenarios: whole captures made of conversations.
//!
//! - [`demo`]: the README demo, a small realistic mix over about two minutes.
//! - [`worst`]: the worst case for a flow table: minimum-size frames at 10GbE line rate
//!   (14.88 Mpps), every packet of a different live flow.
//! - [`mix`]: a bigger realistic mix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::conv::{
    arp_exchange, send_segment, Capture, Encap, Endpoint, IcmpEcho, Path, SendOpts, TcpConv,
    UdpConv,
};
use super::pkt::{self, ethertype, proto, tcpflag, Ipv6Ext, Mac};
use super::rng::{mix64, Rng};
use super::truth::{FlowTruth, Truth};
use super::{Frame, Tag, EPOCH_NS};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("valid IPv6 literal"))
}

/// The LAN gateway's MAC: traffic to off-LAN servers goes to it.
pub const GW_MAC: Mac = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];

/// A client on the LAN to a server behind the gateway.
fn wan(client: IpAddr, server: IpAddr) -> Path {
    Path::new(
        Endpoint::auto(client),
        Endpoint::new(GW_MAC, server),
        Encap::None,
    )
}

/// An HTTP/1.1 request (RFC 9112).
pub fn http_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tapflow-gen/1\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// An HTTP/1.1 200 response with a `body_len`-byte HTML body.
pub fn http_response(body_len: usize) -> Vec<u8> {
    let mut body = String::from("<html><body>\n");
    let line = "<p>tapflow synthetic page: nothing to see here, just bytes.</p>\n";
    while body.len() + line.len() + 15 <= body_len {
        body.push_str(line);
    }
    while body.len() + 15 < body_len {
        body.push('.');
    }
    body.push_str("\n</body></html>");
    body.truncate(body_len);
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

/// TLS 1.2/1.3 application-data records (RFC 8446 §5.1 outer framing) totalling about `len`
/// bytes of opaque, random-looking content.
pub fn tls_records(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 5);
    let mut left = len.max(22);
    while left > 0 {
        let body = (left.saturating_sub(5)).clamp(17, 16_384);
        out.extend_from_slice(&[0x17, 0x03, 0x03]);
        out.extend_from_slice(&(body as u16).to_be_bytes());
        out.extend_from_slice(&rng.bytes(body));
        left = left.saturating_sub(body + 5);
    }
    out
}

/// A DNS query/response pair over UDP (RFC 1035); the answers are addresses of the query type
/// (A: 4 bytes, AAAA: 16 bytes) or TXT strings.
#[allow(clippy::too_many_arguments)]
fn dns(
    cap: &mut Capture,
    path: Path,
    cport: u16,
    t: u64,
    rtt: u64,
    id: u16,
    name: &str,
    qtype: u16,
    answers: &[Vec<u8>],
) -> UdpConv {
    let mut u = UdpConv::new(cap, path, cport, pkt::port::DNS);
    u.send(cap, false, t, &pkt::dns_query(id, name, qtype));
    u.send(
        cap,
        true,
        t + rtt,
        &pkt::dns_response(id, name, qtype, 300, answers),
    );
    u
}

fn txt_rdata(n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut r = vec![255u8];
            for _ in 0..255 {
                r.push(b'a' + rng.below(26) as u8);
            }
            r
        })
        .collect()
}

/// A short HTTP session: handshake, one GET, one response, FIN from the client.
fn http_session(
    cap: &mut Capture,
    path: Path,
    cport: u16,
    t: u64,
    rtt: u64,
    body: usize,
    rng: &mut Rng,
) {
    let mut c = TcpConv::new(cap, path, cport, 80, t, rtt, rng);
    c.handshake(cap);
    c.exchange(
        cap,
        &http_request("www.example.test", "/"),
        &http_response(body),
    );
    c.idle(20 * MS);
    c.fin(cap, false);
}

/// A short TLS session on port 443: handshake, one exchange, FIN from the client.
#[allow(clippy::too_many_arguments)]
fn tls_session(
    cap: &mut Capture,
    path: Path,
    cport: u16,
    t: u64,
    rtt: u64,
    req: usize,
    resp: usize,
    rng: &mut Rng,
) -> TcpConv {
    let mut c = TcpConv::new(cap, path, cport, 443, t, rtt, rng);
    c.handshake(cap);
    let (q, r) = (tls_records(rng, req), tls_records(rng, resp));
    c.exchange(cap, &q, &r);
    c.idle(30 * MS);
    c.fin(cap, false);
    c
}

/// The README demo capture: about 300 packets over two minutes, plain Ethernet, covering the
/// cases a flow probe must get right (see the `note` column of the truth for each flow).
pub fn demo(seed: u64) -> (Vec<Frame>, Truth) {
    let cap = demo_capture(seed);
    cap.finish()
}

/// [`demo`] plus a second pcapng interface (index 1, LINKTYPE_RAW) carrying a UDP exchange as
/// bare IPv4 packets.
pub fn demo_two_ifaces(seed: u64) -> (Vec<Frame>, Truth) {
    let mut cap = demo_capture(seed);
    let mut p = Path::plain(v4(10, 9, 9, 1), v4(10, 9, 9, 2)).with_encap(Encap::RawIp);
    p.iface = 1;
    let mut u = UdpConv::new(&mut cap, p, 5353, 5353);
    u.path.ttl = [255, 255];
    let q = pkt::dns_query(0, "printer.local", 1);
    let t = EPOCH_NS + 33 * SEC;
    u.send(&mut cap, false, t, &q);
    let a = pkt::dns_response(0, "printer.local", 1, 120, &[vec![10, 9, 9, 2]]);
    u.send(&mut cap, true, t + 3 * MS, &a);
    cap.flow_mut(u.flow).note = "raw IPv4 on interface 1 (pcapng LINKTYPE_RAW), mDNS".into();
    cap.finish()
}

fn note(cap: &mut Capture, flow: u32, s: &str) {
    cap.flow_mut(flow).note = s.to_string();
}

fn demo_capture(seed: u64) -> Capture {
    let rng = Rng::new(seed);
    let mut cap = Capture::new();
    let t0 = EPOCH_NS;
    let cl1 = v4(192, 168, 10, 21);
    let cl2 = v4(192, 168, 10, 22);
    let cl3 = v4(192, 168, 10, 23);
    let gw = v4(192, 168, 10, 1);
    let web = v4(203, 0, 113, 10);
    let api = v4(198, 51, 100, 20);
    let c6a = v6("2001:db8:10::21");
    let c6b = v6("2001:db8:10::22");
    let c6c = v6("2001:db8:10::23");
    let gw6 = v6("2001:db8:10::1");
    let web6 = v6("2001:db8:beef::10");

    // 1. A TLS connection already open when the capture starts (no handshake), closed at 2.5 s.
    let mut r = rng.fork(1);
    let mut c = TcpConv::established(
        &mut cap,
        wan(cl1, web),
        50312,
        443,
        t0 + 3 * MS,
        18 * MS,
        &mut r,
    );
    let (q, a) = (tls_records(&mut r, 200), tls_records(&mut r, 2600));
    c.exchange(&mut cap, &q, &a);
    c.idle(1200 * MS);
    let (q, a) = (tls_records(&mut r, 120), tls_records(&mut r, 400));
    c.exchange(&mut cap, &q, &a);
    c.idle(1200 * MS);
    c.fin(&mut cap, false);
    note(
        &mut cap,
        c.flow,
        "TCP picked up mid-stream (no handshake), FIN close",
    );

    // 2. ARP for the gateway.
    let f = arp_exchange(
        &mut cap,
        Endpoint::auto(cl2),
        Endpoint::new(GW_MAC, gw),
        &[],
        t0 + 500 * MS,
        Some(300_000),
    );
    note(&mut cap, f, "ARP who-has / is-at");

    // 3. DNS over IPv4, then the HTTP fetch it resolved.
    let mut r = rng.fork(3);
    let u = dns(
        &mut cap,
        Path::new(Endpoint::auto(cl2), Endpoint::new(GW_MAC, gw), Encap::None),
        40001,
        t0 + 600 * MS,
        4 * MS,
        0x1a2b,
        "www.example.test",
        1,
        &[vec![203, 0, 113, 10], vec![203, 0, 113, 11]],
    );
    note(&mut cap, u.flow, "DNS A query/response over IPv4");
    let before = cap.truth.flows.len() as u32;
    http_session(
        &mut cap,
        wan(cl2, web),
        40100,
        t0 + 610 * MS,
        22 * MS,
        3000,
        &mut r,
    );
    note(&mut cap, before, "HTTP GET, 3 kB response, FIN");

    // 4. DNS over IPv6 and a TLS session over IPv6 whose response has a reordered pair.
    let mut r = rng.fork(4);
    let u = dns(
        &mut cap,
        Path::new(Endpoint::auto(c6b), Endpoint::new(GW_MAC, gw6), Encap::None),
        40002,
        t0 + 2 * SEC,
        5 * MS,
        0x2b3c,
        "www.example.test",
        28,
        &[web6_octets(web6)],
    );
    note(&mut cap, u.flow, "DNS AAAA query/response over IPv6");
    let mut c = TcpConv::new(
        &mut cap,
        wan(c6b, web6),
        40200,
        443,
        t0 + 2 * SEC + 10 * MS,
        25 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    let q = tls_records(&mut r, 300);
    c.send(&mut cap, false, &q);
    c.idle(5 * MS);
    let a = tls_records(&mut r, 5000);
    c.send_with(
        &mut cap,
        true,
        &a,
        SendOpts {
            swap_first_two: true,
            ..Default::default()
        },
    );
    c.idle(40 * MS);
    c.fin(&mut cap, false);
    note(
        &mut cap,
        c.flow,
        "TCP over IPv6 with an out-of-order pair, FIN",
    );

    // 5. An upload with one retransmitted segment.
    let mut r = rng.fork(5);
    let mut c = TcpConv::new(
        &mut cap,
        wan(cl3, api),
        40300,
        443,
        t0 + 5 * SEC,
        30 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    let q = tls_records(&mut r, 4000);
    c.send_with(
        &mut cap,
        false,
        &q,
        SendOpts {
            retransmit_first: true,
            ..Default::default()
        },
    );
    c.idle(10 * MS);
    let a = tls_records(&mut r, 180);
    c.send(&mut cap, true, &a);
    c.idle(50 * MS);
    c.fin(&mut cap, true);
    note(
        &mut cap,
        c.flow,
        "TCP upload with one retransmitted segment, server closes",
    );

    // 6. A connection the server resets.
    let mut r = rng.fork(6);
    let mut c = TcpConv::new(
        &mut cap,
        wan(cl1, v4(198, 51, 100, 30)),
        40400,
        443,
        t0 + 8 * SEC,
        35 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    let q = tls_records(&mut r, 250);
    c.send(&mut cap, false, &q);
    c.idle(35 * MS);
    c.rst(&mut cap, true);
    note(&mut cap, c.flow, "TCP reset by the server");

    // 7. ICMP echo over IPv4 and ICMPv6 echo.
    let mut e = IcmpEcho::new(&mut cap, wan(cl1, v4(203, 0, 113, 1)), 0x0c1a);
    let data: Vec<u8> = (0..56u8).collect();
    for s in 0..4u16 {
        e.ping(
            &mut cap,
            t0 + 10 * SEC + s as u64 * SEC,
            s + 1,
            Some(12 * MS + s as u64 * 100_000),
            &data,
        );
    }
    note(&mut cap, e.flow, "ICMP echo, 4 requests and replies");
    let mut e = IcmpEcho::new(&mut cap, wan(c6a, v6("2001:db8:beef::1")), 0x0c1b);
    for s in 0..3u16 {
        e.ping(
            &mut cap,
            t0 + 12 * SEC + 500 * MS + s as u64 * SEC,
            s + 1,
            Some(14 * MS),
            &data,
        );
    }
    note(&mut cap, e.flow, "ICMPv6 echo, 3 requests and replies");

    // 8. A long TLS session (about a minute) with periodic exchanges and a zero-window episode:
    //    long enough for status records.
    let mut r = rng.fork(8);
    let mut c = TcpConv::new(
        &mut cap,
        wan(cl2, v4(198, 51, 100, 40)),
        40500,
        443,
        t0 + 15 * SEC,
        28 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    for i in 0..10 {
        let (q, a) = (
            tls_records(&mut r, 90 + 10 * i),
            tls_records(&mut r, 700 + 150 * i),
        );
        c.exchange(&mut cap, &q, &a);
        if i == 4 {
            c.zero_window(&mut cap, false, 300 * MS);
        }
        c.idle(6 * SEC);
    }
    c.fin(&mut cap, false);
    note(
        &mut cap,
        c.flow,
        "long TCP session (~60 s) with a zero-window advert, FIN",
    );

    // 9. An unanswered UDP probe (sent twice).
    let mut u = UdpConv::new(&mut cap, wan(cl3, v4(198, 51, 100, 99)), 51000, 33434);
    u.path.ttl = [64, 64];
    u.send(&mut cap, false, t0 + 20 * SEC, &[0u8; 24]);
    u.send(&mut cap, false, t0 + 21 * SEC, &[0u8; 24]);
    note(&mut cap, u.flow, "unanswered UDP probe, two tries");

    // 10. VLAN, QinQ, MPLS and PPPoE.
    let mut r = rng.fork(10);
    let p =
        Path::plain(v4(192, 168, 100, 5), v4(192, 168, 100, 10)).with_encap(Encap::Vlan(vec![100]));
    let f = cap.truth.flows.len() as u32;
    http_session(&mut cap, p, 41000, t0 + 25 * SEC, 2 * MS, 1200, &mut r);
    note(&mut cap, f, "HTTP in 802.1Q VLAN 100");
    let p = Path::plain(v4(10, 20, 30, 5), v4(10, 20, 30, 6))
        .with_encap(Encap::Vlan(vec![0x2000 | 200, 300]));
    let c = tls_session(&mut cap, p, 41100, t0 + 30 * SEC, 3 * MS, 150, 900, &mut r);
    note(
        &mut cap,
        c.flow,
        "TLS in QinQ (802.1ad S-tag 200, C-tag 300)",
    );
    let p = Path::plain(v4(172, 16, 1, 5), v4(172, 16, 2, 6))
        .with_encap(Encap::Mpls(vec![16001, 16002]));
    let f = cap.truth.flows.len() as u32;
    http_session(&mut cap, p, 42000, t0 + 35 * SEC, 9 * MS, 800, &mut r);
    note(&mut cap, f, "HTTP over an MPLS label stack 16001/16002");
    let p = wan(v4(100, 70, 0, 5), web).with_encap(Encap::Pppoe { session: 0x0011 });
    let c = tls_session(
        &mut cap,
        p,
        46000,
        t0 + 60 * SEC,
        21 * MS,
        200,
        1500,
        &mut r,
    );
    note(&mut cap, c.flow, "TLS over PPPoE session 0x0011");

    // 11. Tunnels: VXLAN, GENEVE, GRE, GTP-U, 6in4.
    let mut r = rng.fork(11);
    let p = Path::plain(v4(192, 168, 50, 11), v4(192, 168, 50, 12)).with_encap(Encap::Vxlan {
        outer: (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)),
        vni: 5001,
    });
    let c = tls_session(&mut cap, p, 43000, t0 + 40 * SEC, MS, 300, 2000, &mut r);
    note(&mut cap, c.flow, "TLS inside VXLAN VNI 5001");
    let p = Path::plain(v4(192, 168, 60, 2), v4(192, 168, 60, 1)).with_encap(Encap::Geneve {
        outer: (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 4)),
        vni: 7001,
    });
    let u = dns(
        &mut cap,
        p,
        47000,
        t0 + 62 * SEC,
        2 * MS,
        0x4d5e,
        "db.internal.test",
        1,
        &[vec![192, 168, 60, 9]],
    );
    note(&mut cap, u.flow, "DNS inside GENEVE VNI 7001");
    let p = Path::plain(v4(10, 1, 1, 10), v4(10, 2, 2, 20)).with_encap(Encap::Gre {
        outer: (
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(203, 0, 113, 1),
        ),
        key: Some(42),
    });
    let f = cap.truth.flows.len() as u32;
    http_session(&mut cap, p, 44000, t0 + 45 * SEC, 15 * MS, 1000, &mut r);
    note(&mut cap, f, "HTTP inside GRE with key 42");
    let p = Path::plain(v4(100, 64, 1, 7), web).with_encap(Encap::Gtpu {
        outer: (Ipv4Addr::new(10, 100, 0, 1), Ipv4Addr::new(10, 100, 0, 2)),
        teid: (0x0100_0001, 0x0200_0002),
    });
    let c = tls_session(
        &mut cap,
        p,
        45000,
        t0 + 50 * SEC,
        40 * MS,
        250,
        1800,
        &mut r,
    );
    note(
        &mut cap,
        c.flow,
        "TLS inside GTP-U (TEID 0x01000001 up, 0x02000002 down)",
    );
    let p = Path::plain(v6("2001:db8:6::2"), web6).with_encap(Encap::SixIn4 {
        outer: (
            Ipv4Addr::new(198, 51, 100, 200),
            Ipv4Addr::new(192, 0, 2, 1),
        ),
    });
    let f = cap.truth.flows.len() as u32;
    http_session(&mut cap, p, 44100, t0 + 55 * SEC, 30 * MS, 1500, &mut r);
    note(&mut cap, f, "HTTP over IPv6 in IPv4 (6in4 protocol 41)");

    // 12. Fragmented UDP: large DNS TXT answers over IPv4 and IPv6.
    let mut r = rng.fork(12);
    let mut u = UdpConv::new(
        &mut cap,
        Path::new(Endpoint::auto(cl1), Endpoint::new(GW_MAC, gw), Encap::None),
        48000,
        53,
    );
    let t = t0 + 65 * SEC;
    let name = "big.example.test";
    u.send(&mut cap, false, t, &pkt::dns_query(0x5e6f, name, 16));
    let resp = pkt::dns_response(0x5e6f, name, 16, 60, &txt_rdata(11, &mut r));
    u.send_fragmented(&mut cap, true, t + 6 * MS, &resp, 1480, 0x7a11);
    note(
        &mut cap,
        u.flow,
        "DNS TXT answer of ~3 kB in 3 IPv4 fragments",
    );
    let mut u = UdpConv::new(
        &mut cap,
        Path::new(Endpoint::auto(c6a), Endpoint::new(GW_MAC, gw6), Encap::None),
        48001,
        53,
    );
    let t = t0 + 70 * SEC;
    u.send(&mut cap, false, t, &pkt::dns_query(0x6f70, name, 16));
    let resp = pkt::dns_response(0x6f70, name, 16, 60, &txt_rdata(9, &mut r));
    u.send_fragmented(&mut cap, true, t + 7 * MS, &resp, 1232, 0x0bad_cafe);
    note(
        &mut cap,
        u.flow,
        "DNS TXT answer in IPv6 fragments (Fragment header)",
    );

    // 13. IP options: an IGMPv2 report with Router Alert, an MLDv2 report with a hop-by-hop
    //     Router Alert.
    igmp_join(&mut cap, cl3, Ipv4Addr::new(224, 0, 0, 251), t0 + 80 * SEC);
    mld_report(&mut cap, v6("fe80::23"), t0 + 80 * SEC + 2 * MS);

    // 14. An IPv6 TLS session left open at the end of the capture.
    let mut r = rng.fork(14);
    let mut c = TcpConv::new(
        &mut cap,
        wan(c6c, v6("2001:db8:beef::20")),
        49000,
        443,
        t0 + 90 * SEC,
        26 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    for i in 0..3 {
        let (q, a) = (tls_records(&mut r, 150), tls_records(&mut r, 600 + 200 * i));
        c.exchange(&mut cap, &q, &a);
        c.idle(4 * SEC);
    }
    note(
        &mut cap,
        c.flow,
        "TCP over IPv6 left open at the end of the capture",
    );

    // 15. HTTP keep-alive: several requests on one connection.
    let mut r = rng.fork(15);
    let mut c = TcpConv::new(
        &mut cap,
        wan(cl3, web),
        49100,
        80,
        t0 + 95 * SEC,
        20 * MS,
        &mut r,
    );
    c.handshake(&mut cap);
    for (i, p) in ["/", "/style.css", "/app.js", "/logo.png"]
        .iter()
        .enumerate()
    {
        c.exchange(
            &mut cap,
            &http_request("www.example.test", p),
            &http_response(400 + 700 * i),
        );
        c.idle(3 * SEC);
    }
    c.fin(&mut cap, true);
    note(
        &mut cap,
        c.flow,
        "HTTP keep-alive, 4 requests, server closes",
    );
    cap
}

fn web6_octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V6(v) => v.octets().to_vec(),
        IpAddr::V4(v) => v.octets().to_vec(),
    }
}

/// An IGMPv2 membership report (RFC 2236) with the Router Alert option (RFC 2113), TTL 1.
fn igmp_join(cap: &mut Capture, host: IpAddr, group: Ipv4Addr, t: u64) {
    let mut p = Path::new(
        Endpoint::auto(host),
        Endpoint::new(multicast_mac_v4(group), group.into()),
        Encap::None,
    );
    p.ttl = [1, 1];
    p.v4_options = vec![0x94, 0x04, 0x00, 0x00];
    p.tos = 0xc0;
    let mut ft = p.flow_truth(2, 0, 0);
    ft.note = "IGMPv2 report with IPv4 Router Alert option".into();
    let flow = cap.add_flow(ft);
    let mut m = vec![0x16, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    let c = pkt::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    // tapflow counts the IP payload of protocols it does not decode as application bytes.
    let n = m.len();
    send_segment(cap, &mut p, flow, false, t, 2, &m, n);
}

fn multicast_mac_v4(g: Ipv4Addr) -> Mac {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// An MLDv2 report (RFC 3810 §5.2) for ff02::fb with a Hop-by-Hop Router Alert (RFC 2711).
fn mld_report(cap: &mut Capture, host: IpAddr, t: u64) {
    let dst: Ipv6Addr = "ff02::16".parse().unwrap();
    let o = dst.octets();
    let mac = [0x33, 0x33, o[12], o[13], o[14], o[15]];
    let mut p = Path::new(
        Endpoint::auto(host),
        Endpoint::new(mac, dst.into()),
        Encap::None,
    );
    p.ttl = [1, 1];
    p.v6_ext = vec![Ipv6Ext::HopByHop(vec![0x05, 0x02, 0x00, 0x00])];
    let mut ft = p.flow_truth(proto::ICMPV6, 143 << 8, 0);
    ft.note = "MLDv2 report with a hop-by-hop Router Alert".into();
    let flow = cap.add_flow(ft);
    let mut rec = vec![4, 0, 0, 0]; // CHANGE_TO_EXCLUDE_MODE, no sources
    rec.extend_from_slice(&"ff02::fb".parse::<Ipv6Addr>().unwrap().octets());
    let m = pkt::icmpv6(143, 0, [0, 0, 0, 1], &rec, &p.pair(false));
    send_segment(
        cap,
        &mut p,
        flow,
        false,
        t,
        proto::ICMPV6,
        &m,
        // Application bytes follow the 8-byte ICMP header (RFC 4443 §2.1 + the 4-byte body
        // word), as tapflow counts them for every ICMP type.
        rec.len(),
    );
}

// ---------------------------------------------------------------------------------------------
// Worst case

/// Ns between minimum-size frames at 10 Gb/s: (64 + 8 preamble + 12 IFG) × 8 bit / 10 Gb/s
/// = 67.2 ns, i.e. 14.88 Mpps.
pub const LINE_RATE_GAP_PS: u64 = 67_200;

/// The worst case for a flow table, as an iterator of frames: `packets` 60-byte frames (64 on
/// the wire with the FCS) spaced at 14.88 Mpps, spread over `flows` distinct flows: TCP SYNs
/// from random sources and ports to 16 victims (a flow's later packets retransmit the same SYN:
/// same sequence number) and, for a `udp_frac` share of the flows, UDP probes with an 18-byte
/// payload. Flows are visited in one shuffled order, round after round, so all of them are live
/// at once.
pub fn worst(packets: u64, flows: u64, seed: u64, udp_frac: f64) -> Worst {
    assert!(
        flows > 0 && flows <= u32::MAX as u64,
        "flows must be in 1..2^32"
    );
    let mut rng = Rng::new(seed ^ 0x0077_0257);
    let used = flows.min(packets.max(1));
    let mut order: Vec<u32> = (0..used as u32).collect();
    rng.shuffle(&mut order);
    Worst {
        packets,
        flows: used,
        seed,
        udp_frac,
        order,
        i: 0,
    }
}

/// Iterator returned by [`worst`].
#[derive(Clone, Debug)]
pub struct Worst {
    packets: u64,
    flows: u64,
    seed: u64,
    udp_frac: f64,
    order: Vec<u32>,
    i: u64,
}

/// The fixed parameters of one worst-case flow.
struct WorstFlow {
    udp: bool,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    h: u64,
}

impl Worst {
    fn flow(&self, k: u32) -> WorstFlow {
        let h = mix64(self.seed ^ mix64(k as u64 ^ 0x5151_0000_0000));
        let udp = ((h >> 11) as f64 / (1u64 << 53) as f64) < self.udp_frac;
        // A bijection on u32 so that every flow index gets a distinct (source, port) pair.
        let mut x = k.wrapping_mul(0x9e37_79b1);
        x ^= x >> 16;
        x = x.wrapping_mul(0x85eb_ca6b);
        x ^= x >> 13;
        let src = Ipv4Addr::from(0x0a00_0000 | (x >> 8));
        let sport = 1024 + (x & 0xff) as u16 * 251 + ((h >> 32) % 251) as u16;
        // Victims: 198.18.0.1-16 (RFC 2544 benchmarking range).
        let dst = Ipv4Addr::new(198, 18, 0, 1 + ((h >> 40) % 16) as u8);
        let dport = if udp {
            [53, 123, 161, 1900, 5060, 11211][((h >> 48) % 6) as usize]
        } else {
            [80, 443, 22, 25, 3389, 8080][((h >> 48) % 6) as usize]
        };
        WorstFlow {
            udp,
            src,
            dst,
            sport,
            dport,
            h,
        }
    }

    /// The truth template: one flow per flow index (counters zero; tally frames into it).
    pub fn truth(&self) -> Truth {
        let mut t = Truth::default();
        for k in 0..self.flows as u32 {
            let w = self.flow(k);
            let mut f = FlowTruth::new(
                if w.udp { proto::UDP } else { proto::TCP },
                w.src.into(),
                w.sport,
                w.dst.into(),
                w.dport,
            );
            f.src_mac = WORST_SRC_MAC;
            f.dst_mac = WORST_DST_MAC;
            if !w.udp {
                f.end = super::End::Open;
                f.handshake = false;
            }
            t.flows.push(f);
        }
        t
    }

    /// Total number of frames.
    pub fn len(&self) -> u64 {
        self.packets
    }
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    fn frame(&self, i: u64) -> Frame {
        let round = i / self.flows;
        let k = self.order[(i % self.flows) as usize];
        let w = self.flow(k);
        let pair = pkt::IpPair::V4(w.src, w.dst);
        let (l4p, seg, app) = if w.udp {
            let mut payload = [0u8; 18];
            payload[..8].copy_from_slice(&w.h.to_be_bytes());
            payload[8..16].copy_from_slice(&round.to_be_bytes());
            (proto::UDP, pkt::udp(w.sport, w.dport, &payload, &pair), 18)
        } else {
            let h = pkt::TcpHdr {
                sport: w.sport,
                dport: w.dport,
                seq: w.h as u32,
                flags: tcpflag::SYN,
                window: 64240,
                ..Default::default()
            };
            (proto::TCP, pkt::tcp(&h, &[], &pair), 0)
        };
        let mut ih = pkt::Ipv4Hdr::new(w.src, w.dst, l4p);
        ih.flags_frag = 0;
        ih.id = ((w.h >> 16) as u16).wrapping_add(round as u16);
        let ip = pkt::ipv4(&ih, &seg);
        let ip_len = ip.len() as u32;
        let data = pkt::eth(WORST_SRC_MAC, WORST_DST_MAC, &[], ethertype::IPV4, &ip);
        let mut f = Frame::new(EPOCH_NS + i * LINE_RATE_GAP_PS / 1000, data);
        f.tag = Tag {
            flow: k,
            reverse: false,
            ip_len,
            app_len: app,
            frag: false,
        };
        f
    }
}

const WORST_SRC_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0xbe, 0x01];
const WORST_DST_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0xbe, 0x02];

impl Iterator for Worst {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        if self.i >= self.packets {
            return None;
        }
        let f = self.frame(self.i);
        self.i += 1;
        Some(f)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.packets - self.i) as usize;
        (n, Some(n))
    }
}

// ---------------------------------------------------------------------------------------------
// Realistic mix

/// A bigger realistic mix of about `packets` frames over `flows` flows (TCP web/TLS sessions of
/// varied sizes, some reset or left open, DNS over IPv4/IPv6, ICMP echo, unanswered UDP),
/// started at random times at an average of about 1 Mpps. The count is approximate: each flow
/// gets a packet budget and is shaped to fit it.
pub fn mix(packets: u64, flows: u64, seed: u64) -> (Vec<Frame>, Truth) {
    let mut rng = Rng::new(seed ^ 0x0313_3700);
    let mut cap = Capture::new();
    let flows = flows.max(1);
    let duration = packets.max(1) * 1000; // ns
    let mut left = packets as i64;
    for k in 0..flows {
        let flows_left = (flows - k) as i64;
        let budget = (left / flows_left).max(1);
        let t = EPOCH_NS + rng.below(duration);
        let mut r = rng.fork(k);
        let v6 = r.below(4) == 0;
        let client = if v6 {
            IpAddr::V6(Ipv6Addr::from(
                0x2001_0db8_0100_0000_0000_0000_0000_0000u128 | (k as u128 + 1),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0a10_0000 | (k as u32 & 0x000f_ffff)))
        };
        let sidx = r.below(64) as u32;
        let server = if v6 {
            IpAddr::V6(Ipv6Addr::from(
                0x2001_0db8_0200_0000_0000_0000_0000_0000u128 | (sidx as u128 + 1),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(0xcb00_7100 | (sidx + 1))) // 203.0.113.x
        };
        let cport = 32768 + ((k as u32 + (k >> 15) as u32) % 28000) as u16;
        let rtt = r.range(1, 80) * MS;
        let before = cap.frames.len() as i64;
        if budget >= 9 {
            let mut c = TcpConv::new(&mut cap, wan(client, server), cport, 443, t, rtt, &mut r);
            c.handshake(&mut cap);
            // 1 request segment + 1 ack, n response segments + n/2 acks, 3 for the close.
            let n = ((budget - 8) * 2 / 3).max(1) as usize;
            let qlen = 200 + r.below(300) as usize;
            let q = tls_records(&mut r, qlen);
            let a = tls_records(&mut r, n * 1436 - 30);
            c.exchange(&mut cap, &q, &a);
            match r.below(20) {
                0 => c.rst(&mut cap, r.below(2) == 0),
                1 => {}
                _ => {
                    c.idle(r.range(1, 200) * MS);
                    c.fin(&mut cap, r.below(3) == 0)
                }
            }
        } else if budget >= 4 && r.below(3) == 0 {
            let mut e = IcmpEcho::new(&mut cap, wan(client, server), (k & 0xffff) as u16);
            for s in 0..(budget / 2) as u16 {
                e.ping(&mut cap, t + s as u64 * SEC, s + 1, Some(rtt), &[0u8; 32]);
            }
        } else if budget >= 2 {
            let qt = if v6 { 28 } else { 1 };
            let ans = if v6 {
                vec![0u8; 16]
            } else {
                vec![203, 0, 113, 77]
            };
            dns(
                &mut cap,
                wan(client, server),
                cport,
                t,
                rtt,
                k as u16,
                "host.example.test",
                qt,
                &[ans],
            );
        } else {
            let mut u = UdpConv::new(
                &mut cap,
                wan(client, server),
                cport,
                33434 + (k % 64) as u16,
            );
            u.send(&mut cap, false, t, &[0u8; 18]);
        }
        left -= cap.frames.len() as i64 - before;
    }
    cap.finish()
}
