use super::*;
use crate::fields::{flgs, parse_selection, DEFAULT_FIELDS, FIELDS};
use tapflow_record::{encap, flags, observed, Addr, Cause, DirStats, Encap, FlowState};

const T0: u64 = 1_700_000_000_123_456_789; // 2023-11-14 22:13:20.123456789 UTC

fn rich() -> FlowRecord {
    FlowRecord {
        probe_id: 7,
        seq: 42,
        cause: Cause::Close,
        observed: observed::SRC_TO_DST | observed::DST_TO_SRC,
        addr_kind: AddrKind::Ipv4,
        proto: 6,
        ethertype: 0x0800,
        saddr: Addr::from_v4([10, 0, 0, 1]),
        daddr: Addr::from_v4([192, 168, 1, 9]),
        sport: 40000,
        dport: 443,
        stime_ns: T0,
        ltime_ns: T0 + 2_500_000_000,
        state: FlowState::Con,
        flags: flags::ECN_CE | flags::FRAGMENTS,
        synack_ns: 1_500_000,
        ackdat_ns: 250_000,
        smac: [0x02, 0, 0, 0, 0, 0x01],
        dmac: [0x02, 0, 0, 0, 0, 0xab],
        vlan: [100, 0],
        mpls: [0, 0],
        encap: Encap {
            kinds: encap::VXLAN,
            tunnel_id: 5000,
            outer_kind: AddrKind::Ipv4,
            outer_src: Addr::from_v4([172, 16, 0, 1]),
            outer_dst: Addr::from_v4([172, 16, 0, 2]),
        },
        src: DirStats {
            pkts: 10,
            bytes: 1500,
            ip_bytes: 1360,
            app_bytes: 800,
            ttl_min: 60,
            ttl_max: 64,
            tos: 0x10,
            tcp_flags: 0x1b,
            retrans: 2,
            out_of_order: 1,
            window: 65535,
            ipt_n: 9,
            ipt_mean_ns: 12_345_678.0,
            ipt_std_ns: 1_500_000.0,
            ..Default::default()
        },
        dst: DirStats {
            pkts: 8,
            bytes: 9000,
            ip_bytes: 8888,
            app_bytes: 7777,
            ttl_max: 57,
            tcp_flags: 0x13,
            zero_win: 1,
            loss_pkts: 3,
            ipt_n: 7,
            ipt_mean_ns: 2_000_000.0,
            ipt_std_ns: 250_000.0,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn text(f: Field, r: &FlowRecord, style: Style) -> String {
    let mut s = String::new();
    push_text(&mut s, &value(f, r), style);
    s
}

fn t(name: &str, r: &FlowRecord) -> String {
    text(Field::by_name(name).unwrap(), r, Style::default())
}

/// Every field, as text, on a record with known values.
#[test]
fn each_field_as_text() {
    let r = rich();
    let expect = [
        ("seq", "42"),
        ("probe", "7"),
        ("stime", "2023-11-14 22:13:20.123456"),
        ("ltime", "2023-11-14 22:13:22.623456"),
        ("dur", "2.500000"),
        ("trans", "1"),
        ("flgs", " X sDEF  "),
        ("proto", "tcp"),
        ("saddr", "10.0.0.1"),
        ("sport", "40000"),
        ("dir", "<->"),
        ("daddr", "192.168.1.9"),
        ("dport", "https"),
        ("pkts", "18"),
        ("bytes", "10500"),
        ("spkts", "10"),
        ("dpkts", "8"),
        ("sbytes", "1500"),
        ("dbytes", "9000"),
        ("sipbytes", "1360"),
        ("dipbytes", "8888"),
        ("sappbytes", "800"),
        ("dappbytes", "7777"),
        ("state", "CON"),
        ("cause", "close"),
        ("observed", "both"),
        ("smac", "02:00:00:00:00:01"),
        ("dmac", "02:00:00:00:00:ab"),
        ("sttl", "64"),
        ("dttl", "57"),
        ("stos", "16"),
        ("dtos", "0"),
        ("sflags", "...AP.SF"),
        ("dflags", "...A..SF"),
        ("synack", "0.001500"),
        ("ackdat", "0.000250"),
        ("tcprtt", "0.001750"),
        ("sjit", "1.500"),
        ("djit", "0.250"),
        ("sintpkt", "12.346"),
        ("dintpkt", "2.000"),
        ("sretrans", "2"),
        ("dretrans", "0"),
        ("sooo", "1"),
        ("dooo", "0"),
        ("sloss", "0"),
        ("dloss", "3"),
        ("swin", "65535"),
        ("dwin", "0"),
        ("vlan", "100"),
        ("ivlan", ""),
        ("mpls", ""),
        ("mpls2", ""),
        ("encap", "vxlan"),
        ("tunid", "5000"),
        ("osaddr", "172.16.0.1"),
        ("odaddr", "172.16.0.2"),
        // InfiniBand fields are blank on other records.
        ("slid", ""),
        ("dlid", ""),
        ("sgid", ""),
        ("dgid", ""),
        ("sqp", ""),
        ("dqp", ""),
        ("pkey", ""),
        ("opcodes", ""),
        ("ibsvc", ""),
        ("naks", ""),
        ("rnrnaks", ""),
    ];
    assert_eq!(expect.len(), FIELDS.len(), "every field is covered");
    for (name, want) in expect {
        assert_eq!(t(name, &r), want, "field {name}");
    }
}

#[test]
fn infiniband_fields_as_text() {
    use tapflow_record::{flags, ib_flags, IbInfo, IBA_TRANSPORT};
    let mut ib = IbInfo {
        slid: 17,
        dlid: 34,
        dqp: 0x123,
        pkey: 0xffff,
        naks: 2,
        ..IbInfo::default()
    };
    for op in [0x04, 0x11, 0x64, 0x81, 0x15] {
        ib.add_opcode(op);
    }
    let mut r = FlowRecord {
        addr_kind: AddrKind::Ipv6,
        proto: IBA_TRANSPORT,
        flags: flags::INFINIBAND,
        ib,
        ..FlowRecord::default()
    };
    for (name, want) in [
        ("proto", "ib"),
        ("saddr", "17"),
        ("daddr", "34"),
        ("sport", ""),
        ("dport", "291"),
        ("slid", "17"),
        ("dlid", "34"),
        ("sgid", ""),
        ("dqp", "291"),
        ("sqp", ""),
        ("pkey", "65535"),
        ("opcodes", "RC_SEND_ONLY,RC_ACK,0x15,UD_SEND_ONLY,CNP"),
        ("ibsvc", "RC+UD+CNP"),
        ("naks", "2"),
        ("rnrnaks", "0"),
    ] {
        assert_eq!(t(name, &r), want, "field {name}");
    }
    // RoCEv2 with a known source QP: GIDs are the addresses, QPs the ports.
    r.ib.flags = ib_flags::ROCEV2 | ib_flags::SQP;
    r.ib.sqp = 16;
    r.saddr = Addr(
        "::ffff:10.1.0.1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    for (name, want) in [
        ("proto", "roce"),
        ("saddr", "::ffff:10.1.0.1"),
        ("sgid", "::ffff:10.1.0.1"),
        ("sport", "16"),
        ("sqp", "16"),
    ] {
        assert_eq!(t(name, &r), want, "field {name}");
    }
}

#[test]
fn field_table_is_in_enum_order_and_names_are_unique() {
    for (i, (f, info)) in FIELDS.iter().enumerate() {
        assert_eq!(*f as usize, i);
        assert_eq!(Field::by_name(info.name), Some(*f));
        assert!(info.width >= info.title.len() || info.name == "flgs");
    }
    assert_eq!(Field::by_name("SADDR"), Some(Field::Saddr));
}

#[test]
fn times_and_durations() {
    let mut s = String::new();
    push_time(&mut s, T0, true);
    assert_eq!(s, "1700000000.123456");
    for (secs, want) in [
        (0u64, "1970-01-01 00:00:00.000000"),
        (951_782_400, "2000-02-29 00:00:00.000000"),
        (4_107_542_399, "2100-02-28 23:59:59.000000"),
        (1_700_000_000, "2023-11-14 22:13:20.000000"),
    ] {
        s.clear();
        push_time(&mut s, secs * 1_000_000_000, false);
        assert_eq!(s, want);
    }
    s.clear();
    push_secs(&mut s, 999);
    assert_eq!(s, "0.000000");
    s.clear();
    push_secs(&mut s, 86_400_000_001_000);
    assert_eq!(s, "86400.000001");
    let u = Style {
        epoch: true,
        numeric: false,
    };
    assert_eq!(text(Field::Ltime, &rich(), u), "1700000002.623456");
}

#[test]
fn ports_names_and_numeric() {
    let mut r = rich();
    let n = Style {
        epoch: false,
        numeric: true,
    };
    assert_eq!(text(Field::Dport, &r, n), "443");
    r.sport = 22;
    assert_eq!(t("sport", &r), "ssh");
    r.dport = 65000;
    assert_eq!(t("dport", &r), "65000");
    // UDP too.
    r.proto = 17;
    r.dport = 53;
    assert_eq!(t("dport", &r), "domain");
    // A protocol without ports and zero ports: blank.
    r.proto = 47;
    r.sport = 0;
    r.dport = 0;
    assert_eq!(t("sport", &r), "");
    assert_eq!(t("proto", &r), "gre");
    r.proto = 253;
    assert_eq!(t("proto", &r), "253");
    assert_eq!(t("sflags", &r), "");
}

#[test]
fn icmp_ports_are_hex_type_code_and_id() {
    let r = FlowRecord {
        addr_kind: AddrKind::Ipv4,
        proto: 1,
        saddr: Addr::from_v4([10, 0, 0, 1]),
        daddr: Addr::from_v4([10, 0, 0, 2]),
        sport: 8 << 8,
        dport: 0x1234,
        src: DirStats {
            pkts: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(t("sport", &r), "0x0800");
    assert_eq!(t("dport", &r), "0x1234");
    assert_eq!(t("proto", &r), "icmp");
    assert_eq!(t("state", &r), "ECO");
    assert_eq!(t("dir", &r), " ->");
    let mut j = String::new();
    push_json(&mut j, &value(Field::Sport, &r));
    assert_eq!(j, "2048");
}

#[test]
fn ipv6_and_l2_records() {
    let v6 = FlowRecord {
        addr_kind: AddrKind::Ipv6,
        proto: 58,
        saddr: Addr(
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        ),
        daddr: Addr("ff02::1".parse::<std::net::Ipv6Addr>().unwrap().octets()),
        sport: 135 << 8,
        ..Default::default()
    };
    assert_eq!(t("saddr", &v6), "2001:db8::1");
    assert_eq!(t("proto", &v6), "ipv6-icmp");
    assert_eq!(t("sport", &v6), "0x8700");
    assert_eq!(t("flgs", &v6), "         ");
    let arp = FlowRecord {
        addr_kind: AddrKind::L2,
        ethertype: 0x0806,
        saddr: Addr::from_mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
        daddr: Addr::from_mac([0xff; 6]),
        smac: [0, 0x11, 0x22, 0x33, 0x44, 0x55],
        dmac: [0xff; 6],
        src: DirStats {
            pkts: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(t("saddr", &arp), "00:11:22:33:44:55");
    assert_eq!(t("daddr", &arp), "ff:ff:ff:ff:ff:ff");
    assert_eq!(t("sport", &arp), "");
    assert_eq!(t("dport", &arp), "");
    assert_eq!(t("proto", &arp), "arp");
    assert_eq!(t("dir", &arp), " who");
    assert_eq!(t("flgs", &arp), " e       ");
    assert_eq!(t("osaddr", &arp), "");
    assert_eq!(t("encap", &arp), "");
    let mut lldp = arp.clone();
    lldp.ethertype = 0x88b5;
    assert_eq!(t("proto", &lldp), "0x88b5");
}

#[test]
fn flag_string_positions() {
    let mut r = FlowRecord::default();
    assert_eq!(&flgs(&r), b"         ");
    r.encap.kinds = encap::VLAN | encap::QINQ;
    assert_eq!(flgs(&r)[1], b'v');
    r.encap.kinds |= encap::MPLS;
    assert_eq!(flgs(&r)[1], b'*');
    for (k, c) in [
        (encap::MPLS, b'm'),
        (encap::GRE, b'G'),
        (encap::IPIP, b'P'),
        (encap::IP6IN4, b'6'),
        (encap::TEREDO, b'T'),
        (encap::ERSPAN, b'E'),
        (encap::PPPOE, b'p'),
        (encap::GENEVE, b'N'),
        (encap::GTPU, b'U'),
    ] {
        r.encap.kinds = k;
        assert_eq!(flgs(&r)[1], c);
    }
    r.encap.kinds = 0;
    r.dst.retrans = 1;
    assert_eq!(flgs(&r)[3], b'd');
    r.src.retrans = 1;
    assert_eq!(flgs(&r)[3], b'*');
    r.src.retrans = 0;
    r.dst.retrans = 0;
    r.src.loss_pkts = 1;
    r.src.out_of_order = 1;
    assert_eq!(flgs(&r)[3], b'g');
    r.src.loss_pkts = 0;
    assert_eq!(flgs(&r)[3], b'i');
    r.dst.out_of_order = 1;
    assert_eq!(flgs(&r)[3], b'&');
    r.src.out_of_order = 0;
    assert_eq!(flgs(&r)[3], b'r');
    r.src.zero_win = 1;
    assert_eq!(flgs(&r)[4], b'S');
    r.dst.zero_win = 1;
    assert_eq!(flgs(&r)[4], b'@');
    r.flags = flags::IP_OPTIONS;
    assert_eq!(&flgs(&r), b"   r@  O ");
    r.flags = 0;
    r.dst.frags = 2;
    assert_eq!(flgs(&r)[6], b'F');
}

#[test]
fn selection_parsing() {
    let s = |v: &[&str]| parse_selection(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(s(&[]).unwrap(), DEFAULT_FIELDS);
    assert_eq!(s(&["saddr,daddr"]).unwrap(), [Field::Saddr, Field::Daddr]);
    assert_eq!(s(&["saddr", "dur"]).unwrap(), [Field::Saddr, Field::Dur]);
    let plus = s(&["+dur"]).unwrap();
    assert_eq!(plus.len(), DEFAULT_FIELDS.len() + 1);
    assert_eq!(plus.last(), Some(&Field::Dur));
    let minus = s(&["-flgs,-state"]).unwrap();
    assert_eq!(minus.len(), DEFAULT_FIELDS.len() - 2);
    assert!(!minus.contains(&Field::Flgs));
    let e = s(&["saddr,bogus"]).unwrap_err();
    assert!(
        e.starts_with("unknown field 'bogus' in -s; valid fields: seq, probe, stime"),
        "{e}"
    );
    assert!(s(&["-saddr", "saddr", "-saddr"]).is_err());
}

fn render(r: &FlowRecord, fields: &[Field], mode: Mode, style: Style) -> String {
    let mut p = Printer::new(fields.to_vec(), mode, style);
    let mut out = Vec::new();
    p.header(&mut out).unwrap();
    p.record(r, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn aligned_columns() {
    let out = render(&rich(), DEFAULT_FIELDS, Mode::Columns, Style::default());
    assert_eq!(
        out,
        "StartTime                  Flgs      Proto             SrcAddr Sport   Dir            DstAddr Dport   TotPkts   TotBytes State\n\
         2023-11-14 22:13:20.123456  X sDEF   tcp              10.0.0.1 40000   <->        192.168.1.9 https        18      10500 CON\n"
    );
    // Column starts line up between header and record.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].find("TotBytes").unwrap() + 8,
        lines[0].find(" State").unwrap()
    );
    assert_eq!(
        lines[1].find("10500").unwrap() + 5,
        lines[1].find(" CON").unwrap()
    );
}

#[test]
fn delimited_output() {
    let f = [Field::Stime, Field::Saddr, Field::Dir, Field::Dport];
    let u = Style {
        epoch: true,
        numeric: false,
    };
    let out = render(&rich(), &f, Mode::Delimited('|'), u);
    assert_eq!(
        out,
        "StartTime|SrcAddr|Dir|Dport\n1700000000.123456|10.0.0.1|<->|https\n"
    );
}

#[test]
fn csv_header_and_quoting() {
    let f = [
        Field::Stime,
        Field::Saddr,
        Field::Sport,
        Field::Dir,
        Field::Dport,
        Field::Flgs,
    ];
    let out = render(&rich(), &f, Mode::Csv(','), Style::default());
    assert_eq!(
        out,
        "stime,saddr,sport,dir,dport,flgs\n2023-11-14 22:13:20.123456,10.0.0.1,40000,<->,443, X sDEF  \n"
    );
    let mut line = String::new();
    push_csv_cell(&mut line, "a,b", ',');
    push_csv_cell(&mut line, "say \"hi\"", ';');
    push_csv_cell(&mut line, "x;y", ',');
    push_csv_cell(&mut line, "l1\nl2", ',');
    assert_eq!(line, "\"a,b\"\"say \"\"hi\"\"\"x;y\"l1\nl2\"");
    // With -c ';' the separator is quoted, commas are not.
    let mut r = rich();
    r.encap.kinds = encap::VLAN | encap::GRE;
    let out = render(
        &r,
        &[Field::Encap, Field::Proto],
        Mode::Csv(';'),
        Style::default(),
    );
    assert_eq!(out, "encap;proto\nvlan+gre;tcp\n");
}

#[test]
fn json_lines_parse_back() {
    let all: Vec<Field> = FIELDS.iter().map(|&(f, _)| f).collect();
    let mut r = rich();
    let mut p = Printer::new(all.clone(), Mode::Json, Style::default());
    let mut out = Vec::new();
    p.header(&mut out).unwrap();
    assert!(out.is_empty(), "JSON has no header");
    p.record(&r, &mut out).unwrap();
    // Non-finite jitter, L2 ports: null.
    r.src.ipt_std_ns = f64::NAN;
    r.addr_kind = AddrKind::L2;
    r.ethertype = 0x0806;
    p.record(&r, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let o = v.as_object().unwrap();
    assert_eq!(o.len(), all.len());
    for f in &all {
        assert!(o.contains_key(f.name()), "{}", f.name());
    }
    assert!(lines[0].starts_with(r#"{"seq":42,"probe":7,"stime":1700000000.123456,"#));
    assert_eq!(o["stime"].as_f64().unwrap(), 1_700_000_000.123456);
    assert_eq!(o["dur"].as_f64().unwrap(), 2.5);
    assert_eq!(o["tcprtt"].as_f64().unwrap(), 0.00175);
    assert_eq!(o["sjit"].as_f64().unwrap(), 1.5);
    assert_eq!(o["sintpkt"].as_f64().unwrap(), 12.346);
    assert_eq!(o["sport"].as_u64(), Some(40000));
    assert_eq!(o["dport"].as_u64(), Some(443));
    assert_eq!(o["pkts"].as_u64(), Some(18));
    assert_eq!(o["trans"].as_u64(), Some(1));
    assert_eq!(o["saddr"], "10.0.0.1");
    assert_eq!(o["dir"], "<->");
    assert_eq!(o["flgs"], " X sDEF  ");
    assert_eq!(o["proto"], "tcp");
    assert_eq!(o["state"], "CON");
    assert_eq!(o["ivlan"], serde_json::Value::Null);
    assert_eq!(o["sflags"], "...AP.SF");
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["sjit"], serde_json::Value::Null);
    assert_eq!(v["sport"], serde_json::Value::Null);
    assert_eq!(v["dir"], "who");
    assert_eq!(v["saddr"], "0a:00:00:01:00:00");
}

#[test]
fn json_string_escaping() {
    let mut s = String::new();
    push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
    assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    let back: String = serde_json::from_str(&s).unwrap();
    assert_eq!(back, "a\"b\\c\nd\u{1}é");
}
